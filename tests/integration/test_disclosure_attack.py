"""The attacker test: no suppressed count can be worked back from everything a report run writes.

Each study is generated, loaded, built, analysed and rendered for real; the attacker
(:mod:`_attack`) reads only what a reader gets (tables/*.csv, report.html) and, for each ``<11`` cell,
searches the values 1..10 consistent with every shown number: totals and partitions, percentages with
their rounding, the SMD formula of Table 1's binary rows, shares that are k / n. A cell with a single
consistent value is a disclosure. On the code before the disclosure gate, the 300-person study of
seed 5 gave back 21 cells this way (a "Sex unknown, delayed" cell of 1, payer cells of 3, 5, 2, 9, an
anxiety pair of 5 and 7 from the SMDs; the naive comparison's early arm of 8 from "62.5%").
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from _attack import SMALL, Problem, attack, read_report


def _study(root: Path, persons: int, seed: int, replicates: int = 10, console: dict | None = None):
    from ipm_outcomes import analysis, cohort, ingest, synth
    from ipm_outcomes.report import render
    from ipm_outcomes.spec import load_spec

    spec_file = root / "spec.toml"
    spec_file.write_text(f'extends = "default"\n[analysis]\nbootstrap_replicates = {replicates}\n')
    spec = load_spec(spec_file)
    console = {} if console is None else console
    synth.generate(root / "extract", persons=persons, seed=seed)
    console["ingest"] = ingest.load_extract(root / "extract", root / "db.duckdb")
    console["cohort"] = cohort.build(spec, root / "db.duckdb")
    console["analyze"] = analysis.run(spec, root / "db.duckdb", root / "results", workers=1)
    return render(root / "results", root / "report", pdf=False)


@pytest.fixture(scope="module")
def study5(tmp_path_factory):
    root = tmp_path_factory.mktemp("s300_5")
    console: dict = {}
    summary = _study(root, 300, 5, console=console)
    return root, summary, console


def _assert_safe(summary, min_hidden: int = 10):
    problem = read_report(summary.out_dir)
    hidden = [k for k, v in problem.labels.items() if v == SMALL]
    assert len(hidden) >= min_hidden, "the attacker must see suppressed cells (else it proves nothing)"
    recovered, inconsistent = attack(problem)
    assert inconsistent == [], "the attacker's model of the report is wrong here"
    assert recovered == {}, "\n".join(f"{w}: {v}" for w, v in recovered.values())


def test_attack_recovers_nothing_from_a_300_person_study(study5):
    _assert_safe(study5[1])


@pytest.mark.slow
@pytest.mark.parametrize("persons,seed", [(300, 11), (400, 23), (250, 42)])
def test_attack_recovers_nothing_from_other_small_studies(tmp_path, persons, seed):
    _assert_safe(_study(tmp_path, persons, seed))


@pytest.mark.slow
def test_attack_recovers_nothing_from_the_demo_sized_study(tmp_path):
    # a large study has few small cells (8 on this one: "Sex unknown", payer "Medicare" and their subgroups)
    _assert_safe(_study(tmp_path, 5000, 7, replicates=20), min_hidden=5)


def test_attack_recovers_nothing_from_the_hand_made_fixture_report(tmp_path):
    """results_small: hand-made numbers (subgroups over the whole cohort, SMDs not from the counts)."""
    from ipm_outcomes.report import render

    summary = render(Path(__file__).resolve().parents[1] / "fixtures" / "results_small", tmp_path, pdf=False)
    recovered, inconsistent = attack(read_report(summary.out_dir, subgroups_of="N", exact_smd=False))
    assert inconsistent == []
    assert recovered == {}, "\n".join(f"{w}: {v}" for w, v in recovered.values())


def test_the_attacker_finds_what_an_smd_gives_away():
    """A miniature: 30 early (shown), 107 delayed (shown), a binary row "<11" / "<11" with its SMD."""
    from _attack import smd_binary

    p = Problem()
    for name, value in (("E", "30"), ("D", "107")):
        p.cell(name, value)
    p.cell("a", SMALL)
    p.cell("b", SMALL)
    # true a = 5, b = 7: SMD = (5/30 - 7/107) / sqrt((p1 q1 + p0 q0) / 2)
    p1, p0 = 5 / 30, 7 / 107
    smd = (p1 - p0) / (((p1 * (1 - p1) + p0 * (1 - p0)) / 2) ** 0.5)
    p.formula(["a", "E", "b", "D"], smd_binary(round(smd, 3)))
    recovered, _ = attack(p)
    assert {k: v for k, (_, v) in recovered.items()} == {"a": 5, "b": 7}
    q = Problem()
    q.cell("E", "30")
    q.cell("D", "107")
    q.cell("a", SMALL)
    q.cell("b", SMALL)
    assert attack(q) == ({}, [])


def test_ccw_arm_sizes_are_persons_who_follow_each_strategy(study5):
    """n early of the clone-censor-weight arms counts persons referred within the grace period (not clones)."""
    root, summary, _ = study5
    con = duckdb.connect(str(root / "db.duckdb"), read_only=True)
    try:
        early, delayed = con.execute(
            "select count(*) filter (where c.exposure = 'early'), count(*) filter (where c.exposure <> 'early') "
            "from marts.rtw_outcome r join marts.cohort c using (person_id)"
        ).fetchone()
    finally:
        con.close()
    import csv

    with open(summary.out_dir / "tables" / "rtw_risk.csv", newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["method"].startswith("Clone-censor")]
    assert rows
    shown = {r["n_early"] for r in rows}, {r["n_delayed"] for r in rows}
    policy_small = lambda n: 0 < n < 11  # noqa: E731
    assert shown[0] == {SMALL if policy_small(early) else f"{early:,}"} or shown[0] == {"*"}
    assert shown[1] == {SMALL if policy_small(delayed) else f"{delayed:,}"} or shown[1] == {"*"}
    html = summary.html.read_text(encoding="utf-8")
    assert re.search(r"persons, not clones", html)


def test_love_plot_shows_only_smds_the_table_shows(study5, tmp_path, monkeypatch):
    """The love plot is drawn from the same decision as Table 1: no SMD there that Table 1 withholds."""
    import csv

    from ipm_outcomes import plots
    from ipm_outcomes.report import render

    root, summary, _ = study5
    with open(summary.out_dir / "tables" / "table1.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    withheld = [r for r in rows if (r["early_n"] in (SMALL, "*") or r["delayed_n"] in (SMALL, "*"))]
    assert withheld, "the study must have withheld cells for this test to mean something"
    assert all(not r["smd_before"] and not r["smd_after"] for r in withheld)
    drawn, original = [], plots.love_plot
    monkeypatch.setattr(plots, "love_plot", lambda frame, **kw: drawn.append(frame) or original(frame, **kw))
    render(root / "results", tmp_path / "again", pdf=False)
    (frame,) = drawn
    shown = sorted(round(float(r["smd_before"]), 3) for r in rows if r["smd_before"])
    assert sorted(round(float(x), 3) for x in frame["smd_before"]) == shown


#: Count-shaped places in the console summaries: "retired: 1", "(-7)", "4 early", "n = 3".
CONSOLE_SMALL = [
    re.compile(r"(?<![\w@-]): ([1-9]|10)(?![\d,.\-%])"),
    re.compile(r"\(-([1-9]|10)\)"),
    re.compile(r"(?<![\d.,-])([1-9]|10) (?:early|delayed|never|persons?|in the)\b"),
    re.compile(r"\b([1-9]|10) persons? with no eligibility row"),
]


def _console_leaks(text: str) -> list[str]:
    return [m.group(0) for p in CONSOLE_SMALL for m in p.finditer(text)]


def test_console_summaries_pass_the_gate(study5):
    """ingest, cohort and analyze print no count of 1-10 persons by default; --show-small-counts does."""
    _, _, console = study5
    for name, summary in console.items():
        assert _console_leaks(summary.describe()) == [], name
    # The scan is not blind: the ungated lines of this study hold small counts (bands of 6 and 4,
    # attrition steps of 7 and 5, "retired: 1", one person with no eligibility row).
    assert _console_leaks(console["cohort"].describe(None))
    assert _console_leaks(console["ingest"].describe(None))
    assert "<11" in console["cohort"].describe()


def test_cli_show_small_counts_flag(study5, tmp_path):
    from typer.testing import CliRunner

    from ipm_outcomes.cli import app

    root, _, _ = study5
    spec = root / "spec.toml"
    runner = CliRunner()
    gated = runner.invoke(app, ["cohort", "--db", str(root / "db.duckdb"), "--spec", str(spec)])
    assert gated.exit_code == 0, gated.output
    assert _console_leaks(gated.output) == []
    shown = runner.invoke(app, ["cohort", "--db", str(root / "db.duckdb"), "--spec", str(spec), "--show-small-counts"])
    assert shown.exit_code == 0 and _console_leaks(shown.output)
