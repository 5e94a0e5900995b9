"""Long steps are never silent when their output is not a terminal: one line per stage, and the
bootstrap's replicates at a modest rate."""

from __future__ import annotations

import io

import numpy as np
import pytest

from ipm_outcomes import cohort, ingest, progress
from ipm_outcomes.db import SQL_LAYERS
from ipm_outcomes.estimators import bootstrap
from ipm_outcomes.portable_sql import build_order
from ipm_outcomes.spec import load_spec


def _mean(sample):
    return {"mean": np.array(sample["x"].mean())}


@pytest.mark.parametrize("workers", [1, 2])
def test_bootstrap_reports_replicates_as_chunks_finish(workers):
    data = {"x": np.arange(50, dtype=float)}
    seen = []
    with bootstrap.progress_reporter(lambda done, total: seen.append((done, total))):
        result = bootstrap.run(_mean, data, _mean(data), n_replicates=40, seed=3, workers=workers)
    assert seen[-1] == (40, 40)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen) and len(seen) > 1
    plain = bootstrap.run(_mean, data, _mean(data), n_replicates=40, seed=3, workers=1)
    np.testing.assert_array_equal(result.replicates["mean"], plain.replicates["mean"])  # reporting changes nothing


def test_replicate_lines_come_at_a_modest_rate_and_the_last_always(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    stream = io.StringIO()
    with progress.StageProgress("analysis", True, 2, stream=stream) as bar:  # started at 0 s
        for done, at in ((10, 1.0), (20, 2.0), (30, 20.0), (35, 21.0), (40, 22.0)):
            now[0] = at
            bar.replicates(done, 40)
    lines = [line.split(" (")[0] for line in stream.getvalue().splitlines()]
    assert lines == ["analysis: bootstrap: 10/40 replicates", "analysis: bootstrap: 30/40 replicates",
                     "analysis: bootstrap: 40/40 replicates"]


def test_nothing_is_printed_when_progress_is_off():
    stream = io.StringIO()
    with progress.StageProgress("cohort", False, 2, stream=stream) as bar:
        bar.step("staging.person")
        bar.replicates(1, 1)
    assert stream.getvalue() == ""


def test_cohort_and_ingest_print_one_line_per_stage_when_logged(good_extract, tmp_path, capsys):
    db = tmp_path / "study.duckdb"
    ingest.load_extract(good_extract, db, progress=True)
    cohort.build(load_spec(), db, progress=True)
    err = capsys.readouterr().err.splitlines()
    cohort_lines = [line for line in err if line.startswith("cohort: [")]
    order = build_order(SQL_LAYERS)
    assert len(cohort_lines) == sum(len(tables) for tables in order.values())
    assert cohort_lines[0].startswith("cohort: [1/") and f" staging.{order['staging'][0]} (" in cohort_lines[0]
    assert any(line.startswith("ingest: [1/") for line in err)
