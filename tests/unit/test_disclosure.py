"""Small-cell suppression: the policy, coarsening, and complementary suppression against back-calculation."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from ipm_outcomes.disclosure import (
    COMPLEMENT_LABEL,
    CountLedger,
    DisclosureError,
    DisclosurePolicy,
    format_percent,
    merge_attrition_steps,
    merge_small_bins,
    truncate_curve,
)
from ipm_outcomes.errors import IpmError

POLICY = DisclosurePolicy(11)


# -- policy ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "shown"),
    [(0, "0"), (1, "<11"), (7, "<11"), (10, "<11"), (11, "11"), (1234, "1,234"), (None, "\u2014"), (float("nan"), "\u2014")],
)
def test_format_count_hides_one_to_ten_and_shows_zero(n, shown):
    assert POLICY.format_count(n) == shown


def test_threshold_is_a_setting():
    policy = DisclosurePolicy(5)
    assert policy.format_count(4) == "<5"
    assert policy.format_count(5) == "5"
    assert policy.small_label == "<5"


@pytest.mark.parametrize("bad", [0, -3, 2.5])
def test_threshold_must_be_a_positive_whole_number(bad):
    with pytest.raises(IpmError, match="min_cell_size"):
        DisclosurePolicy(bad)


def test_implied_count_of_a_percentage():
    # 97% of 100 reveals 3 persons without the attribute; 50% of 100 reveals nothing small.
    assert POLICY.implied_count_small(0.97, 100)
    assert POLICY.implied_count_small(0.05, 100)
    assert not POLICY.implied_count_small(0.5, 100)
    assert not POLICY.implied_count_small(0.0, 100)  # zero may be shown


def test_format_percent_needs_both_numbers():
    assert format_percent(25, 200) == "12.5%"
    assert format_percent(None, 200) == "\u2014"
    assert format_percent(25, None) == "\u2014"
    assert format_percent(0, 0) == "\u2014"


# -- coarsening --------------------------------------------------------------------------------------


def test_merge_small_bins_known_answer():
    out = merge_small_bins([0, 7, 14, 21, 28, 35, 42], [30, 3, 20, 0, 4, 2], POLICY)
    # 3 joins the next bin (3 + 20 = 23); the zero bin stays; the small tail 4 + 2 folds into [7, 14) ... [14, 21)
    # through the empty bin before it.
    assert out[["left", "right"]].values.tolist() == [[0, 7], [7, 42]]
    assert out["n"].tolist() == [30, 29]
    assert not out["suppressed"].any()


def test_merge_small_bins_keeps_zero_runs_and_never_shows_small():
    rng = np.random.default_rng(3)
    for _ in range(200):
        counts = rng.choice([0, 0, 1, 2, 5, 9, 10, 11, 14, 40], size=rng.integers(1, 15))
        edges = np.arange(len(counts) + 1)
        out = merge_small_bins(edges, counts, POLICY)
        shown = out.loc[~out["suppressed"], "n"]
        assert not shown.between(1, 10).any()
        # Total preserved unless the whole histogram is too small to show.
        if out["suppressed"].any():
            assert len(out) == 1 and 1 <= counts.sum() <= 10
        else:
            assert shown.sum() == counts.sum()
        assert out["left"].iloc[0] == 0 and out["right"].iloc[-1] == len(counts)


def test_merge_attrition_steps_joins_a_small_exclusion_with_the_next():
    steps = [
        {"step": "extract", "remaining": 5000, "excluded": None},
        {"step": "A", "remaining": 4410, "excluded": 590},
        {"step": "B", "remaining": 4404, "excluded": 6},
        {"step": "C", "remaining": 4316, "excluded": 88},
    ]
    out = merge_attrition_steps(steps, POLICY)
    assert [(s["step"], s["remaining"], s["excluded"]) for s in out] == [
        ("extract", 5000, None),
        ("A", 4410, 590),
        ("B; C", 4316, 94),
    ]
    # The intermediate count 4,404 is gone, so 6 = 4410 - 4404 cannot be computed.
    assert all(s["remaining"] != 4404 for s in out)


def test_merge_attrition_last_small_step_joins_the_previous():
    steps = [
        {"step": "extract", "remaining": 100, "excluded": None},
        {"step": "A", "remaining": 60, "excluded": 40},
        {"step": "B", "remaining": 58, "excluded": 2},
    ]
    out = merge_attrition_steps(steps, POLICY)
    assert [(s["step"], s["remaining"], s["excluded"]) for s in out] == [("extract", 100, None), ("A; B", 58, 42)]


def test_truncate_curve_stops_before_fewer_than_eleven_at_risk():
    curve = pd.DataFrame({"day": [0, 1, 2, 3, 4], "estimate": [0, 0.1, 0.2, 0.3, 0.4], "n_at_risk": [40, 20, 11, 10, 3]})
    out = truncate_curve(curve, POLICY)
    assert out["day"].tolist() == [0, 1, 2]
    assert truncate_curve(curve.assign(n_at_risk=5), POLICY).empty


# -- ledger: primary and complementary suppression -------------------------------------------------


def _table(values: dict, total: int, policy=POLICY) -> CountLedger:
    ledger = CountLedger(policy)
    ledger.add("total", total, priority=2)
    for key, value in values.items():
        ledger.add(key, value)
    ledger.add_identity("total", list(values))
    return ledger.protect()


def test_one_small_cell_gets_a_complement():
    ledger = _table({"a": 5, "b": 40, "c": 55}, 100)
    shown = {k: ledger.display(k) for k in ("total", "a", "b", "c")}
    # 5 alone would be 100 - 40 - 55; the next-smallest cell (40) is withheld too.
    assert shown == {"total": "100", "a": "<11", "b": COMPLEMENT_LABEL, "c": "55"}


def test_complement_domain_is_respected():
    # total 13 = a (1) + b (12). Withholding b as "*" would not do: a reader knows b >= 11, so a <= 2 --
    # two values left. With total 12 = 1 + 11, "*" would pin a = 1: the total must go too.
    ledger = _table({"a": 1, "b": 11}, 12)
    assert ledger.display("a") == "<11"
    lo, hi = ledger.feasible_range("a")
    assert hi - lo >= 1
    assert ledger.display("total") == COMPLEMENT_LABEL


def test_implicit_cell_is_protected():
    # "97 of 100 have the attribute" reveals the 3 without it, though "3" is never displayed.
    ledger = CountLedger(POLICY)
    ledger.add("n", 100, priority=2)
    ledger.add("yes", 97)
    ledger.add("no", 3, displayed=False)
    ledger.add_identity("n", ["yes", "no"])
    ledger.protect()
    assert ledger.display("yes") == COMPLEMENT_LABEL
    assert ledger.display("n") == "100"


def test_the_same_number_elsewhere_is_withheld_with_its_complement():
    ledger = CountLedger(POLICY)
    ledger.add("total", 100, priority=2)
    ledger.add("a", 5)
    ledger.add("b", 40)
    ledger.add("c", 55)
    ledger.add_identity("total", ["a", "b", "c"])
    ledger.add("b_elsewhere", 40)  # e.g. the same group size printed under a curve
    ledger.protect()
    assert ledger.display("b") == COMPLEMENT_LABEL
    assert ledger.display("b_elsewhere") == COMPLEMENT_LABEL


def test_zero_cells_are_never_complements():
    ledger = _table({"a": 4, "z": 0, "b": 96}, 100)
    assert ledger.display("z") == "0"
    assert ledger.display("a") == "<11"
    assert ledger.display("b") == COMPLEMENT_LABEL


def test_identity_that_does_not_hold_is_refused_or_skipped():
    ledger = CountLedger(POLICY)
    ledger.add("t", 10)
    ledger.add("a", 4)
    with pytest.raises(ValueError, match="does not hold"):
        ledger.add_identity("t", ["a"])
    assert ledger.add_identity("t", ["a"], only_if_holds=True) is False


def test_same_key_twice_must_agree():
    ledger = CountLedger(POLICY)
    ledger.add("k", 12)
    ledger.add("k", 12)
    with pytest.raises(ValueError, match="twice"):
        ledger.add("k", 13)


def test_reading_before_protect_is_an_error():
    ledger = CountLedger(POLICY)
    ledger.add("k", 12)
    with pytest.raises(RuntimeError, match="protect"):
        ledger.display("k")


def test_unprotectable_table_raises_a_clear_error():
    # With min_cell_size 3, "<3" means 1 or 2. c = a + b with all three small forces a = b = 1, c = 2,
    # and no shown non-zero cell is left to withhold.
    ledger = CountLedger(DisclosurePolicy(3))
    ledger.add("a", 1)
    ledger.add("b", 1)
    ledger.add("c", 2)
    ledger.add("zero", 0)
    ledger.add_identity("c", ["a", "b", "zero"])
    with pytest.raises(DisclosureError, match="cannot protect"):
        ledger.protect()


# -- back-calculation: brute force, independent of the ledger's linear programming -------------------


def _solutions(shown: dict, hidden: dict, identities, t: int = 11, cap: int = 60):
    """Every assignment of whole numbers to the hidden cells consistent with what a reader sees.

    ``hidden`` maps a cell to its label: "<11" -> 1..t-1, "*" -> t..cap. Depth-first search that fills a
    cell directly when an identity leaves it as the only unknown (so wide "*" ranges are rarely walked).
    """
    domains = {k: (1, t - 1) if label == f"<{t}" else (t, cap) for k, label in hidden.items()}

    def search(values):
        for total, parts in identities:
            cells = [total, *parts]
            unknown = [c for c in cells if c not in values]
            if not unknown:
                if values[total] != sum(values[p] for p in parts):
                    return
            elif len(unknown) == 1:
                (u,) = unknown
                rest = sum(values[p] for p in parts if p != u)
                value = values[total] - rest if u != total else rest
                lo, hi = domains[u]
                if lo <= value <= hi:
                    yield from search({**values, u: value})
                return
        open_cells = [k for k in domains if k not in values]
        if not open_cells:
            yield {k: values[k] for k in domains}
            return
        cell = min(open_cells, key=lambda k: domains[k][1] - domains[k][0])
        lo, hi = domains[cell]
        for value in range(lo, hi + 1):
            yield from search({**values, cell: value})

    yield from search(dict(shown))


@pytest.mark.parametrize(
    "cells",
    [
        {"a": 5, "b": 40, "c": 15},
        {"a": 1, "b": 2, "c": 30},
        {"a": 1, "b": 11, "c": 11},
        {"a": 10, "b": 12, "c": 13, "d": 14},
        {"a": 3, "b": 9, "c": 8, "d": 25},
    ],
)
def test_withheld_cells_cannot_be_recovered_from_the_total(cells):
    total = sum(cells.values())
    ledger = _table(cells, total)
    shown = {k: int(ledger.display(k).replace(",", "")) for k in ["total", *cells] if not ledger.withheld(k)}
    hidden = {k: ledger.display(k) for k in ["total", *cells] if ledger.withheld(k)}
    solutions = list(_solutions(shown, hidden, [("total", list(cells))], cap=total + 5))
    assert solutions, "the true values must be among the solutions"
    for key, label in hidden.items():
        if label == "<11":
            possible = {s[key] for s in solutions}
            assert len(possible) >= 2, f"{key} is recoverable: only {possible} fits {shown}"


def test_two_by_two_with_margins_cannot_be_back_calculated():
    """Rows = exposure group, columns = yes/no, with row, column and grand totals displayed."""
    cells = {"e_yes": 4, "e_no": 60, "d_yes": 30, "d_no": 90}
    ledger = CountLedger(POLICY)
    for k, v in cells.items():
        ledger.add(k, v)
    ledger.add("e", 64, priority=1)
    ledger.add("d", 120, priority=1)
    ledger.add("yes", 34, priority=1)
    ledger.add("no", 150, priority=1)
    ledger.add("n", 184, priority=2)
    identities = [("e", ["e_yes", "e_no"]), ("d", ["d_yes", "d_no"]), ("yes", ["e_yes", "d_yes"]),
                  ("no", ["e_no", "d_no"]), ("n", ["e", "d"])]
    for total, parts in identities:
        ledger.add_identity(total, parts)
    ledger.protect()
    keys = list(ledger.cells)
    shown = {k: ledger.cells[k].value for k in keys if not ledger.withheld(k)}
    hidden = {k: ledger.display(k) for k in keys if ledger.withheld(k)}
    assert hidden["e_yes"] == "<11"
    assert len(hidden) >= 4  # a 2x2 with margins needs a rectangle of withheld cells
    possible = {s["e_yes"] for s in _solutions(shown, hidden, identities, cap=200)}
    assert len(possible) >= 2, possible


def test_attrition_chain_cannot_be_back_calculated():
    """After merging, a CONSORT chain with shown totals leaves no small exclusion recoverable."""
    steps = [
        {"step": "extract", "remaining": 500, "excluded": None},
        {"step": "A", "remaining": 440, "excluded": 60},
        {"step": "B", "remaining": 433, "excluded": 7},
        {"step": "C", "remaining": 431, "excluded": 2},
        {"step": "D", "remaining": 400, "excluded": 31},
    ]
    merged = merge_attrition_steps(steps, POLICY)
    shown = [s["excluded"] for s in merged[1:]]
    assert not any(1 <= e <= 10 for e in shown)
    # Each displayed pair of consecutive remaining counts differs by a displayed, large exclusion.
    for prev, cur in zip(merged, merged[1:]):
        assert prev["remaining"] - cur["remaining"] == cur["excluded"] >= 11
    assert sum(shown) == 100


def test_linear_programming_agrees_with_brute_force():
    rng = np.random.default_rng(11)
    for _ in range(25):
        cells = {f"c{i}": int(rng.choice([1, 3, 8, 12, 15, 20, 35])) for i in range(rng.integers(2, 5))}
        total = sum(cells.values())
        ledger = _table(cells, total)
        shown = {k: ledger.cells[k].value for k in ledger.cells if not ledger.withheld(k)}
        hidden = {k: ledger.display(k) for k in ledger.cells if ledger.withheld(k)}
        solutions = list(_solutions(shown, hidden, [("total", list(cells))], cap=total + 5))
        for key, label in hidden.items():
            possible = {s[key] for s in solutions}
            lo, hi = ledger.feasible_range(key)
            # The LP bounds are exact here (totally unimodular sums): they match the enumeration.
            assert min(possible) == np.ceil(lo - 1e-9)
            assert np.isinf(hi) or max(possible) == np.floor(hi + 1e-9)
            if label == "<11":
                assert len(possible) >= 2
