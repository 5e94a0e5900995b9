"""Disclosure control on whole reports: no count of 1-10 anywhere, and no way to work one out.

Two fixtures (tests/fixtures/results_*, written by results_small/make_fixtures.py): ``results_tiny``, a
cohort of 37 persons (9 early) where most cells are small, and ``results_small``, 3,560 persons with a few
deliberately small cells (an attrition step excluding 6, 4 early-arm persons with payer type "other",
a delay category of 7) where complementary suppression must do its job; and ``harms``, the small one with the
other harms of delay (tests/fixtures/report_golden/make_report_golden.py; its attack is in test_report_harms.py).
"""

from __future__ import annotations

import csv
import json
import re
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ipm_outcomes.report import render

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SMALL_LABEL = "<11"
COMPLEMENT = "*"
#: CSV columns that hold counts of persons (or rows): the report names them so on purpose.
COUNT_COLUMN = re.compile(r"^(n|n_.*|.*_n|remaining|excluded|rows|n_at_risk)$")
#: CSV columns that hold days, step numbers or sizes of code lists: not counts of persons or records.
NOT_COUNTS = {"step_order", "day", "horizon_days", "first_day", "last_day", "codes"}
SMALL_INT = re.compile(r"^\s*([1-9]|10)\s*$")
#: Count-like phrases in running text: "n = 7", "7 persons", "7 (3.1%)".
COUNT_PHRASES = [
    re.compile(r"\bn\s*=\s*(\d[\d,]*)\b"),
    re.compile(r"\b(\d[\d,]*)\s+(?:persons|people|patients|adults|participants|clones)\b"),
    re.compile(r"(?<![\d.])(\d[\d,]*)\s+\(\d+(?:\.\d+)?%\)"),
]


def _is_small(text: str) -> bool:
    m = SMALL_INT.match(text)
    return bool(m)


class _Cells(HTMLParser):
    """Collects the text of every <td class="... n ..."> and the visible text outside <style>/<pre>."""

    def __init__(self):
        super().__init__()
        self.count_cells: list[str] = []
        self.text: list[str] = []
        self._in_count = False
        self._skip = 0
        self._buf: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("style", "pre", "script"):
            self._skip += 1
        if tag == "td" and "n" in (attrs.get("class") or "").split():
            self._in_count = True
            self._buf = []

    def handle_endtag(self, tag):
        if tag in ("style", "pre", "script"):
            self._skip -= 1
        if tag == "td" and self._in_count:
            self.count_cells.append("".join(self._buf).strip())
            self._in_count = False

    def handle_data(self, data):
        if self._in_count:
            self._buf.append(data)
        if not self._skip:
            self.text.append(data)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    return render(FIXTURES / "results_tiny", out, pdf=False)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("small")
    return render(FIXTURES / "results_small", out, pdf=False)


@pytest.fixture(scope="module")
def harms(tmp_path_factory):
    """The small fixture with the other harms of delay (the golden copy's hand-made ``harms`` case: secondary
    outcomes with 1-10 events in an arm, a population leaving out 5 of a group, a negative control with 5 events)."""
    import sys

    sys.path.insert(0, str(FIXTURES / "report_golden"))
    import make_report_golden

    out = tmp_path_factory.mktemp("harms")
    return render(make_report_golden.results_for("harms", out), out / "report", pdf=False)


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _scan_csvs(summary) -> tuple[int, list[str]]:
    problems, count_cells = [], 0
    for path in summary.tables:
        for i, row in enumerate(_read_csv(path)):
            for column, value in row.items():
                if column in NOT_COUNTS or value is None:
                    continue
                if COUNT_COLUMN.match(column):
                    count_cells += 1
                if _is_small(value):
                    problems.append(f"{path.name} row {i} {column}={value!r}")
                for pattern in COUNT_PHRASES:
                    for m in pattern.finditer(value):
                        if _is_small(m.group(1)):
                            problems.append(f"{path.name} row {i} {column}: {value!r}")
    return count_cells, problems


def _scan_html(summary) -> tuple[list[str], list[str]]:
    parser = _Cells()
    parser.feed(summary.html.read_text(encoding="utf-8"))
    text = " ".join(parser.text)
    problems = [f"count cell {c!r}" for c in parser.count_cells if _is_small(c)]
    for pattern in COUNT_PHRASES:
        for m in pattern.finditer(text):
            if _is_small(m.group(1)):
                problems.append(f"text: ...{text[max(0, m.start() - 60): m.end() + 20]}...")
    return parser.count_cells, problems


def _scan_figures(summary) -> tuple[int, list[str]]:
    problems, counted = [], 0
    for name, texts in summary.figure_text.items():
        for text, gid in texts:
            if gid == "count":
                counted += 1
                token = text.split("n = ")[-1].strip()
                if _is_small(token):
                    problems.append(f"{name}: {text!r}")
            for pattern in COUNT_PHRASES:
                for m in pattern.finditer(text):
                    if _is_small(m.group(1)):
                        problems.append(f"{name}: {text!r}")
    return counted, sorted(set(problems))


@pytest.mark.parametrize("which", ["tiny", "small", "harms"])
def test_no_count_of_one_to_ten_in_any_csv(which, request):
    summary = request.getfixturevalue(which)
    count_cells, problems = _scan_csvs(summary)
    assert count_cells > 100, "the scan must see the count columns"
    assert problems == []


@pytest.mark.parametrize("which", ["tiny", "small", "harms"])
def test_no_count_of_one_to_ten_in_the_html(which, request):
    summary = request.getfixturevalue(which)
    cells, problems = _scan_html(summary)
    assert len(cells) > 100
    assert problems == []


@pytest.mark.parametrize("which", ["tiny", "small", "harms"])
def test_no_count_of_one_to_ten_in_figure_annotations(which, request):
    summary = request.getfixturevalue(which)
    counted, problems = _scan_figures(summary)
    assert counted >= 10, "attrition boxes and numbers at risk are count annotations"
    assert problems == []


def test_the_scans_catch_a_leak(tiny, tmp_path):
    """The scanners are not blind: a small count planted in a copy of the outputs is found."""
    planted = tmp_path / "leak.csv"
    planted.write_text("population,remaining,excluded\ncohort,37,7\n")
    leaky = type(tiny)(**{**tiny.__dict__, "tables": [planted]})
    assert _scan_csvs(leaky)[1] == ["leak.csv row 0 excluded='7'"]
    html = tmp_path / "leak.html"
    html.write_text("<table><tr><td class='num n'>9</td></tr></table><p>Of these, 4 patients returned.</p>")
    leaky = type(tiny)(**{**tiny.__dict__, "html": html})
    assert len(_scan_html(leaky)[1]) == 2
    leaky = type(tiny)(**{**tiny.__dict__, "figure_text": {"f": [("n = 3", "count"), ("Early IPM\nn = 12", "count")]}})
    assert _scan_figures(leaky)[1] == ["f: 'n = 3'"]


def test_tiny_cohort_suppresses_what_it_must(tiny):
    table1 = {r["characteristic"].strip(): r for r in _read_csv(tiny.out_dir / "tables" / "table1.csv")}
    # 9 early persons: every early count is small, every early percentage and mean is withheld.
    assert {r["early_n"] for r in table1.values() if r["early_n"]} == {SMALL_LABEL}
    assert {r["early_pct"] for r in table1.values() if r["early_pct"]} == {"\u2014", "withheld (fewer than 11)"}
    assert table1["Age, years, mean (SD)"]["early_pct"].startswith("withheld")
    # n = 37 = 9 + 28: with the early count hidden, the delayed count must go too.
    results = json.loads((FIXTURES / "results_tiny" / "results.json").read_text())
    assert results["cohort"] == {"n": 37, "n_early": 9, "n_delayed": 28, "n_rtw_population": 21}
    html = unescape(tiny.html.read_text(encoding="utf-8"))
    assert "The study followed 37 adults" in html
    assert f"{SMALL_LABEL} were first seen by IPM" in html
    assert f"and {COMPLEMENT} later or not at all" in html
    # Early-arm curves stop at once (fewer than 11 at risk from day 0): no estimate from fewer than 11.
    rtw = _read_csv(tiny.out_dir / "tables" / "rtw_risk.csv")
    assert {r["early"] for r in rtw} == {"\u2014"} and {r["risk_difference"] for r in rtw} == {"\u2014"}
    assert tiny.verdict == "unavailable"


def test_small_attrition_step_is_merged_not_shown(small):
    rows = _read_csv(small.out_dir / "tables" / "attrition.csv")
    cohort = [r for r in rows if r["population"] == "Study cohort"]
    # The red-flag step excluded 6: it is merged with the next step (6 + 88 = 94) and its remaining count
    # (3,648) disappears, so 3,654 - 3,648 cannot be computed.
    assert [r["remaining"] for r in cohort] == ["5,000", "4,410", "4,101", "3,654", "3,560"]
    assert [r["excluded"] for r in cohort] == ["", "590", "309", "447", "94"]
    assert cohort[-1]["step"].startswith("No red-flag diagnosis") and "; No IPM contact" in cohort[-1]["step"]


def _value(text: str):
    text = text.strip()
    if text in (SMALL_LABEL, COMPLEMENT):
        return text
    return int(text.replace(",", ""))


def _feasible(shown: dict, hidden: dict, identities, cap: int) -> dict:
    """Possible values of each hidden cell given the shown cells and the identities (exhaustive search)."""
    domains = {k: range(1, 11) if label == SMALL_LABEL else range(11, cap + 1) for k, label in hidden.items()}
    possible = {k: set() for k in hidden}

    def search(values):
        for total, parts in identities:
            unknown = [c for c in (total, *parts) if c not in values]
            if not unknown:
                if values[total] != sum(values[p] for p in parts):
                    return
            elif len(unknown) == 1:
                (u,) = unknown
                rest = sum(values[p] for p in parts if p != u)
                value = values[total] - rest if u != total else rest
                if value in domains[u]:
                    search({**values, u: value})
                return
        todo = [k for k in domains if k not in values]
        if not todo:
            for k in hidden:
                possible[k].add(values[k])
            return
        cell = min(todo, key=lambda k: len(domains[k]))
        for v in domains[cell]:
            search({**values, cell: v})

    search(dict(shown))
    return possible


def _split(cells: dict) -> tuple[dict, dict]:
    shown = {k: v for k, v in cells.items() if isinstance(v, int)}
    hidden = {k: v for k, v in cells.items() if not isinstance(v, int)}
    return shown, hidden


def test_payer_type_cannot_be_back_calculated_across_tables(small):
    """Table 1 and the subgroup table both show payer type by group, and the group sizes are shown."""
    tables = small.out_dir / "tables"
    results = json.loads((FIXTURES / "results_small" / "results.json").read_text())
    cohort = results["cohort"]
    t1 = _read_csv(tables / "table1.csv")
    start = next(i for i, r in enumerate(t1) if r["characteristic"] == "Payer type")
    levels = t1[start + 1 : start + 5]
    assert [r["characteristic"].strip() for r in levels] == ["Commercial", "Medicaid", "Medicare advantage", "Other"]
    cells = {"n_early": cohort["n_early"], "n_delayed": cohort["n_delayed"], "n": cohort["n"]}
    identities = [("n", ["n_early", "n_delayed"])]
    for arm in ("early", "delayed"):
        keys = []
        for r in levels:
            key = (arm, r["characteristic"].strip())
            cells[key] = _value(r[f"{arm}_n"])
            keys.append(key)
        identities.append((f"n_{arm}", keys))
    sub = [r for r in _read_csv(tables / "subgroups.csv") if r["subgroup"] == "Payer type"]
    for r in sub:
        level = r["level"]
        cells[("sub", level)] = _value(r["n"])
        for arm in ("early", "delayed"):
            assert _value(r[f"n_{arm}"]) == cells[(arm, level)] or not isinstance(cells[(arm, level)], int)
        identities.append((("sub", level), [("early", level), ("delayed", level)]))
    identities.append(("n", [("sub", r["level"]) for r in sub]))
    shown, hidden = _split(cells)
    assert hidden[("early", "Other")] == SMALL_LABEL
    assert any(v == COMPLEMENT for v in hidden.values()), "a complementary cell must be withheld"
    possible = _feasible(shown, hidden, identities, cap=cohort["n"])
    assert 4 in possible[("early", "Other")], "the true value must remain possible"
    for key, label in hidden.items():
        if label == SMALL_LABEL:
            assert len(possible[key]) >= 2, f"{key} recoverable: {possible[key]}"


def test_delay_categories_cannot_be_back_calculated(small):
    """Delay categories sum to the cohort; early categories to the early group; histogram bins to categories."""
    tables = small.out_dir / "tables"
    results = json.loads((FIXTURES / "results_small" / "results.json").read_text())
    cohort = results["cohort"]
    cats = _read_csv(tables / "delay_categories.csv")
    cells = {"n": cohort["n"], "n_early": cohort["n_early"], "n_delayed": cohort["n_delayed"]}
    bounds = {}
    for r in cats:
        label = r["delay_category"].removesuffix(" days")
        cells[label] = _value(r["n"])
        m = re.fullmatch(r"(\d+)-(\d+)", label) or re.fullmatch(r">(\d+)", label)
        if m:
            bounds[label] = (int(m.group(1)), int(m.group(2))) if m.lastindex == 2 else (int(m.group(1)) + 1, 10**6)
    assert cells[">180"] == SMALL_LABEL
    identities = [("n", [r["delay_category"].removesuffix(" days") for r in cats]), ("n", ["n_early", "n_delayed"]),
                  ("n_early", ["0-14", "15-42"]), ("n_delayed", ["43-90", "91-180", ">180", "never"])]
    bins = _read_csv(tables / "referral_timing_bins.csv")
    for label, (lo, hi) in bounds.items():
        members = [b for b in bins if lo <= int(b["first_day"]) and int(b["last_day"]) <= hi]
        if not members:
            continue
        keys = []
        for b in members:
            key = ("bin", b["first_day"])
            cells[key] = _value(b["n"])
            keys.append(key)
        identities.append((label, keys))
    for r in _read_csv(tables / "dose_response.csv"):
        assert _value(r["n"]) == cells[r["delay_category"]]  # the same number, shown the same way
    shown, hidden = _split(cells)
    possible = _feasible(shown, hidden, identities, cap=cohort["n"])
    assert 7 in possible[">180"]
    assert len(possible[">180"]) >= 2, possible[">180"]


def test_threshold_comes_from_results_and_can_be_overridden(tmp_path):
    summary = render(FIXTURES / "results_tiny", tmp_path / "t5", pdf=False, min_cell_size=5)
    assert summary.min_cell_size == 5
    rows = _read_csv(tmp_path / "t5" / "tables" / "attrition.csv")
    # With a threshold of 5, the 9 early / 28 delayed split and exclusions of 5-9 are displayable.
    assert "&lt;5" in summary.html.read_text(encoding="utf-8")
    assert any(r["excluded"] == "9" for r in rows)
