"""The analysis stage's output contract: results.json, the result tables, and what is unavailable."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from ipm_outcomes import analysis, cohort, ingest, lineage, synth
from ipm_outcomes.errors import IpmError
from ipm_outcomes.spec import load_spec

ESTIMATE_KEYS = {"analysis", "outcome", "method", "measure", "arm", "horizon_days", "estimate", "ci_low", "ci_high", "n"}
OUTCOMES = {"rtw", "promis_pf", "promis_pi", "odi", "eq5d_index", "nrs_pain"}
METHODS = {"ccw", "landmark_iptw", "tv_cox", "naive", "ancova_iptw"}
CONTRASTS = {
    "risk_difference",
    "risk_ratio",
    "hazard_ratio",
    "rmst_difference",
    "mean_difference",
    "responder_risk_difference",
}
ARM_LEVELS = {"cumulative_incidence", "restricted_mean_days_off_work", "adjusted_mean", "responder_proportion"}


def _spec(root: Path, replicates: int):
    path = root / "spec.toml"
    path.write_text(f'extends = "default"\n[analysis]\nbootstrap_replicates = {replicates}\n')
    return load_spec(path)


def _pipeline(root: Path, persons: int, seed: int, replicates: int, drop: tuple[str, ...] = (), **effects):
    spec = _spec(root, replicates)
    synth.generate(root / "extract", persons=persons, seed=seed, file_format="parquet", **effects)
    for table in drop:
        (root / "extract" / f"{table}.parquet").unlink()
    ingest.load_extract(root / "extract", root / "db.duckdb")
    cohort.build(spec, root / "db.duckdb")
    summary = analysis.run(spec, root / "db.duckdb", root / "results", workers=2)
    results = json.loads((root / "results" / "results.json").read_text())
    return spec, summary, results


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("analysis_small")
    return (root, *_pipeline(root, persons=4000, seed=11, replicates=10))


def test_results_json_top_level(small):
    root, spec, summary, results = small
    for key in (
        "study",
        "spec_sha256",
        "data_sha256",
        "package_version",
        "attrition",
        "cohort",
        "estimates",
        "diagnostics",
        "tables",
        "unavailable",
    ):
        assert key in results, key
    assert results["study"] == spec.study.name
    assert len(results["spec_sha256"]) == 64 and len(results["data_sha256"]) == 64
    con = duckdb.connect(str(root / "db.duckdb"), read_only=True)
    n, early, rtw = con.execute(
        "select count(*), count(*) filter (where exposure = 'early'), count(*) filter (where in_rtw_population) "
        "from marts.cohort"
    ).fetchone()
    attrition = con.execute("select count(*) from marts.attrition").fetchone()[0]
    con.close()
    assert results["cohort"] == {"n": n, "n_early": early, "n_delayed": n - early, "n_rtw_population": rtw}
    assert len(results["attrition"]) == attrition
    assert {"step", "remaining", "excluded"} <= set(results["attrition"][0])
    assert summary.n == n and summary.primary is not None


def test_estimates_follow_the_contract(small):
    _, spec, _, results = small
    est = pd.DataFrame(results["estimates"])
    assert set(est.columns) == ESTIMATE_KEYS
    assert set(est.outcome) <= OUTCOMES and set(est.method) <= METHODS
    # keyed by the analysis plan's ids, which results.json carries; one estimate per key
    plan = {item["id"]: item for item in results["plan"]}
    assert set(est.analysis) <= set(plan)
    assert all(plan[a]["method"] == m and plan[a]["outcome"] == o for a, m, o in zip(est.analysis, est.method, est.outcome))
    assert not est.duplicated(["analysis", "outcome", "measure", "arm", "horizon_days"]).any()
    assert set(est.measure) <= CONTRASTS | ARM_LEVELS
    assert est.loc[est.measure.isin(CONTRASTS), "arm"].isna().all()
    assert set(est.loc[est.measure.isin(ARM_LEVELS), "arm"]) == {"early", "delayed"}
    # every contrast has its two arm levels beside it, from the same method and horizon
    pairs = {
        "risk_difference": "cumulative_incidence",
        "risk_ratio": "cumulative_incidence",
        "rmst_difference": "restricted_mean_days_off_work",
        "mean_difference": "adjusted_mean",
        "responder_risk_difference": "responder_proportion",
    }
    for row in est[est.measure.isin(pairs)].itertuples():
        arms = est[
            (est.analysis == row.analysis)
            & (est.outcome == row.outcome)
            & (est.method == row.method)
            & (est.measure == pairs[row.measure])
            & (est.horizon_days == row.horizon_days)
        ]
        assert sorted(arms.arm) == ["delayed", "early"], row
        if row.measure == "risk_difference":
            e = arms.set_index("arm").estimate
            assert row.estimate == pytest.approx(e["early"] - e["delayed"])
    # the primary analysis at every horizon, with intervals around the estimates
    ccw = est[(est.method == "ccw") & (est.measure == "risk_difference")]
    assert sorted(ccw.horizon_days) == sorted(spec.analysis.horizons_days)
    assert ((ccw.ci_low <= ccw.estimate) & (ccw.estimate <= ccw.ci_high)).all()
    assert est[(est.method == "tv_cox")].measure.tolist() == ["hazard_ratio"]
    assert est[est.measure == "hazard_ratio"].horizon_days.isna().all()


def test_tables_are_listed_with_their_grain_and_exist(small):
    root, _, summary, results = small
    for name, entry in results["tables"].items():
        path = root / "results" / entry["file"]
        assert path.exists(), name
        assert entry["grain"], name
        assert len(pd.read_parquet(path)) == entry["rows"]
    assert set(summary.tables) == set(results["tables"])
    curves = pd.read_parquet(root / "results" / "rtw_curves.parquet")
    assert {"method", "arm", "day", "estimate", "ci_low", "ci_high", "n_at_risk"} <= set(curves.columns)
    assert set(curves.method) == {"ccw", "landmark_iptw", "naive"}
    ccw = curves[(curves.method == "ccw") & (curves.arm == "early")]
    assert ccw.day.tolist() == list(range(366)) and ccw.estimate.is_monotonic_increasing
    t1 = pd.read_parquet(root / "results" / "table1.parquet")
    assert set(t1.arm) == {"early", "delayed"}
    smd = pd.read_parquet(root / "results" / "smd.parquet")
    assert {"covariate", "smd_before", "smd_after"} <= set(smd.columns)
    timing = pd.read_parquet(root / "results" / "referral_timing.parquet")
    cats = pd.read_parquet(root / "results" / "delay_categories.parquet")
    assert cats.n.sum() == results["cohort"]["n"]
    assert timing.n.sum() == results["cohort"]["n"] - int(cats.set_index("delay_category").n.get("never", 0))


def test_diagnostics_and_e_value(small):
    _, spec, _, results = small
    d = results["diagnostics"]
    names = {c["name"] for c in d["checks"]}
    assert {
        "cohort_description:covariate_balance",
        "cohort_description:equipoise",
        "landmark_iptw:covariate_balance",
        "landmark_iptw:equipoise",
        "primary:early_strategy_effective_sample_share",
        "primary:delayed_strategy_effective_sample_share",
    } <= names
    # each strategy's share is its reported effective sample size over its weighted clones
    records = {r["arm"]: r for r in d["ccw_weights"]}
    for record in (records["early"], records["delayed"]):
        check = next(c for c in d["checks"] if c["name"] == f"primary:{record['arm']}_strategy_effective_sample_share")
        assert check["value"] == pytest.approx(record["ess"] / record["n_weighted"], rel=1e-12)
        assert check["passed"] == (check["value"] >= spec.analysis.diagnostics.min_effective_sample_share)
    for c in d["checks"]:
        assert c["passed"] in (True, False) and c["threshold"]
    assert set(d["effective_sample_size"]) == {"early", "delayed"}
    assert d["weight_truncation"]["percentiles"] == list(spec.analysis.weight_truncation_percentiles)
    rr = next(
        e
        for e in results["estimates"]
        if e["method"] == "ccw" and e["measure"] == "risk_ratio" and e["horizon_days"] == 180
    )
    from ipm_outcomes.diagnostics import e_value

    assert d["e_value"]["estimate"] == pytest.approx(e_value(rr["estimate"])["estimate"])


def test_unavailable_outcomes_are_reported_not_crashed(tmp_path):
    _, summary, results = _pipeline(tmp_path, persons=1500, seed=3, replicates=0, drop=("ehr_pro",))
    assert "qol" in results["unavailable"] and "ehr_pro" in results["unavailable"]["qol"]
    assert not any(e["outcome"] != "rtw" for e in results["estimates"])
    assert any(e["outcome"] == "rtw" for e in results["estimates"])
    assert "qol" in summary.unavailable


def test_empty_cohort_is_a_finding(tmp_path):
    from ipm_outcomes.contract import create_empty_raw_tables

    db = tmp_path / "empty.duckdb"
    con = duckdb.connect(str(db))
    create_empty_raw_tables(con)
    con.close()
    spec = _spec(tmp_path, 5)
    cohort.build(spec, db)
    summary = analysis.run(spec, db, tmp_path / "results", workers=1)
    results = json.loads((tmp_path / "results" / "results.json").read_text())
    assert results["cohort"] == {"n": 0, "n_early": 0, "n_delayed": 0, "n_rtw_population": 0}
    assert results["estimates"] == []
    assert "all" in results["unavailable"]
    assert summary.primary is None and "empty" in summary.describe()


def test_missing_marts_is_one_clear_error(tmp_path):
    db = tmp_path / "raw_only.duckdb"
    duckdb.connect(str(db)).close()
    with pytest.raises(IpmError, match="ipm-outcomes cohort"):
        analysis.run(load_spec(), db, tmp_path / "out")


def test_marts_are_read_in_key_order_whatever_order_they_were_written(tmp_path):
    """The bootstrap resamples rows by position: the same marts must give the same rows in the same
    order on every run, although DuckDB writes them in parallel in no fixed order."""
    from ipm_outcomes.analysis import _read

    db = tmp_path / "study.duckdb"
    con = duckdb.connect(str(db))
    con.execute("create schema marts")
    con.execute("create table marts.cohort as select * from (values ('p3'), ('p1'), ('p2')) v(person_id)")
    con.execute("create table marts.rtw_outcome as select * from (values ('p2'), ('p1')) v(person_id)")
    con.execute(
        "create table marts.qol_outcome as select * from (values ('p1', 'odi', 180), ('p1', 'odi', 90),"
        " ('p1', 'eq5d_index', 90)) v(person_id, instrument, horizon_days)"
    )
    con.execute("create table marts.attrition as select * from (values ('rtw', 1), ('cohort', 2), ('cohort', 1))"
                " v(population, step_order)")
    con.execute("create schema meta")
    con.execute("create table meta.load as select 'x' as extract_path, timestamp '2026-01-01' as loaded_at")
    spec = load_spec()
    lineage.record_cohort_build(con, spec, lineage.read_load(con), "x")
    con.close()

    inputs = _read(spec, db)

    assert inputs.cohort["person_id"].tolist() == ["p1", "p2", "p3"]
    assert inputs.rtw["person_id"].tolist() == ["p1", "p2"]
    assert inputs.qol[["instrument", "horizon_days"]].values.tolist() == [["eq5d_index", 90], ["odi", 90], ["odi", 180]]
    assert inputs.attrition.values.tolist() == [["cohort", 1], ["cohort", 2], ["rtw", 1]]
