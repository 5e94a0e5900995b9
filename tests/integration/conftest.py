"""The integration tier: the pipeline end to end (synth -> ingest -> cohort -> analyze -> report, the
Prefect flow, the notebooks). Every test in this folder is marked ``integration``, which the default run
leaves out; ``make test-integration`` runs them (those also marked ``slow`` run with ``make test-slow``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before pytest's own hook deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)
