"""Start the study flow from the command line on a machine with no Prefect server or account.

Prefect's home defaults to ``.prefect/`` in the working folder (git-ignored), so a run needs no
set-up and leaves nothing in the user's home; the temporary local API starts by itself. Anonymous
usage analytics are off unless the user turned them on: with them on, the temporary server printed
"database is locked" tracebacks during clean runs.
"""

from __future__ import annotations

import os
from pathlib import Path

PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    # The temporary API server can take more than Prefect's default 20 s to start on a busy 2-core machine.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}


def configure_prefect(project_dir: Path) -> None:
    """Set Prefect's home and quiet defaults, unless the user already set them."""
    os.environ.setdefault("PREFECT_HOME", str((project_dir / ".prefect").resolve()))
    for name, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(name, value)


def run_study(
    spec,
    extract_dir: Path | None,
    out_dir: Path,
    *,
    persons: int = 20_000,
    refresh: bool = False,
    bootstrap_runner: str = "process",
    cluster_address: str | None = None,
    **engine_options,
):
    """Run :func:`pipelines.flows.study_flow` and return its :class:`StudyRun`."""
    configure_prefect(Path.cwd())
    from pipelines.flows import study_flow  # after the environment is set: Prefect reads it on import

    return study_flow(
        spec=spec,
        extract_dir=extract_dir,
        out_dir=out_dir,
        synthetic_persons=persons,
        refresh=refresh,
        bootstrap_runner=bootstrap_runner,
        cluster_address=cluster_address,
        **engine_options,
    )
