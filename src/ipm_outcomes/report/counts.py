"""The report's first pass: every count of persons it may display, registered once, protected once.

Why one pass for the whole report, before any section: disclosure control is a property of the numbers
a reader gets, not of one table. The same count appears in several sections (the early group's size is
Table 1's column total, the return-to-work table's "n early", the quality-of-life denominators, the
subgroups' totals), and a reader can add up numbers across sections (an attrition step, the delay
categories and the cohort size form one identity). So every count is registered in one
:class:`~ipm_outcomes.disclosure.CountLedger` under one key (an equal count elsewhere is an alias of the
same key, see :func:`_alias`), with every identity a reader knows, and complementary suppression is
decided once over all of them (:meth:`CountLedger.protect`). A count withheld in one section is then
withheld everywhere it appears, and no section can undo another's protection.

The registration order is part of the result: a count registered later aliases to an equal count
registered earlier (Table 1's group counts before the subgroups', the delay categories before the
dose-response bands, the estimates' arm sizes before the quality-of-life counts), and the ledger protects
the small cells in the order they were registered, so which complementary cells it withholds depends on it.
:func:`count_everything` is the one place that order is written, each step receiving what it aliases to as
an argument. It returns :class:`Counts`, immutable; the sections read it and never register anything.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from ..disclosure import CountLedger, DisclosurePolicy, merge_attrition_steps, merge_small_bins, truncate_curve
from ..report_data import TABLES, ReportData
from .display import opt_int

#: The cohort's counts: every persons count a reader may add up to one of these is tied to it.
COHORT, EARLY, DELAYED, RTW_POPULATION = ("cohort", "n"), ("cohort", "n_early"), ("cohort", "n_delayed"), ("cohort", "n_rtw")
#: The group sizes of the two strategies, by arm.
ARM_KEYS = {"early": EARLY, "delayed": DELAYED}
#: The days of the numbers-at-risk rows under the return-to-work curves.
AT_RISK_DAYS = (0, 90, 180, 270, 365)


@dataclass(frozen=True)
class Counts:
    """What the first pass decided: the protected ledger and, per display, the ledger keys of its counts.

    ``ledger`` is protected before this object exists and only read afterwards (``display``,
    ``value_if_shown``, ``supports``, ``status``). The other fields say which key each displayed count has:

    attrition
        population -> its CONSORT steps after merging small exclusions, each a mapping with ``step``,
        ``remaining``, ``excluded``, ``merged``, ``rkey`` (key of remaining) and ``ekey`` (of excluded; None
        for the first step).
    table1
        the Table 1 rows of the two exposure groups (levels None where missing), or None when absent.
    delay
        delay category label -> key of its persons.
    referral_bins, referral_per_day
        the referral-time histogram after merging small bins (one row per bin: ``left``, ``right`` (last
        day), ``key``, ``category``) and the persons per day it was made from (None when absent).
    estimates
        (analysis, outcome, measure, horizon, arm) -> key of the estimate's persons.
    dose
        (delay category, horizon) -> key of the dose-response band's persons.
    curves, curve_reach, at_risk
        analysis -> arm -> the curve cut where fewer than min_cell_size persons remain at risk;
        (analysis, arm) -> the last day it reaches (-1: none); analysis -> arm -> ((day, key of the
        number at risk), ...).
    qol
        (instrument, horizon, arm) -> key of the persons with a score; (instrument, horizon, arm,
        "missing") -> key of those without.
    subgroups
        (subgroup, level) -> person-count column -> key.
    overlap_bins, weight_bins
        arm -> ((left, right, key), ...) of the preference-score and weight histograms.
    weight_summary, weight_method
        the weights' per-arm description (count, mean, 50%, 99%, max) and the weighting they come from.
    secondary
        the secondary-outcome analyses (table ``secondary_estimates``): (analysis, arm) -> key of the arm's
        persons; (analysis, arm, horizon) -> key of the persons with the event by then.
    costs
        the cost analyses (table ``cost_estimates``): (analysis, arm or "all") -> key of the persons.
    """

    ledger: CountLedger
    attrition: Mapping[str, tuple[Mapping[str, Any], ...]]
    table1: pd.DataFrame | None
    delay: Mapping[str, Hashable]
    referral_bins: pd.DataFrame
    referral_per_day: pd.Series | None
    estimates: Mapping[tuple, Hashable]
    dose: Mapping[tuple, Hashable]
    curves: Mapping[str, Mapping[str, pd.DataFrame]]
    curve_reach: Mapping[tuple[str, str], int]
    at_risk: Mapping[str, Mapping[str, tuple[tuple[int, Hashable], ...]]]
    qol: Mapping[tuple, Hashable]
    subgroups: Mapping[tuple[str, str], Mapping[str, Hashable]]
    overlap_bins: Mapping[str, tuple[tuple[float, float, Hashable], ...]]
    weight_bins: Mapping[str, tuple[tuple[float, float, Hashable], ...]]
    weight_summary: pd.DataFrame | None
    weight_method: str | None
    secondary: Mapping[tuple, Hashable]
    costs: Mapping[tuple, Hashable]


def _frozen(mapping: dict) -> Mapping:
    return MappingProxyType(mapping)


def delay_bands(data: ReportData) -> list[tuple[str, int | None, int | None]]:
    """Referral-delay categories as (label, first day, last day); never referred: (label, None, None)."""
    cats = data.table("delay_categories")
    if cats is None:
        return []
    return [(str(r["delay_category"]), opt_int(r["first_day"]), opt_int(r["last_day"])) for r in cats.to_dict("records")]


def count_everything(data: ReportData, policy: DisclosurePolicy, qol_analyses: Mapping[str, str]) -> Counts:
    """Register every count the report may display, in the order that fixes each count's key, and protect them.

    ``qol_analyses`` maps each quality-of-life outcome to the id of its analysis (its counts alias that
    analysis's arm sizes).
    """
    ledger = CountLedger(policy)
    co = data.cohort
    ledger.add(COHORT, co.n, priority=3)
    ledger.add(EARLY, co.n_early, priority=2)
    ledger.add(DELAYED, co.n_delayed, priority=2)
    ledger.add(RTW_POPULATION, co.n_rtw_population, priority=2)
    ledger.add_identity(COHORT, [EARLY, DELAYED], only_if_holds=True)
    attrition = _attrition(ledger, data, policy)
    table1 = _table1(ledger, data)
    delay, referral_bins, referral_per_day = _timing(ledger, data, policy)
    estimates = _estimates(ledger, data)
    dose = _dose(ledger, data, delay)
    curves, curve_reach, at_risk = _curves(ledger, data, policy)
    qol = _qol(ledger, data, estimates, qol_analyses)
    subgroups = _subgroups(ledger, data)
    overlap_bins, weight_bins, weight_summary, weight_method = _distributions(ledger, data, policy)
    secondary = _secondary(ledger, data)
    costs = _costs(ledger, data)
    for i, f in enumerate(data.provenance.get("files") or []):
        if f.get("rows") is not None:
            ledger.add(("prov", i), int(f["rows"]))
    trunc = (data.diagnostics.get("weight_truncation") or {}).get("n_truncated")
    if trunc is not None:
        ledger.add(("diag", "n_truncated"), int(trunc))
    for arm, ess in (data.diagnostics.get("effective_sample_size") or {}).items():
        if ess is not None and not pd.isna(ess):
            ledger.add(("diag", "ess", arm), int(round(float(ess))))
    ledger.protect()
    return Counts(
        ledger=ledger,
        attrition=attrition,
        table1=table1,
        delay=delay,
        referral_bins=referral_bins,
        referral_per_day=referral_per_day,
        estimates=estimates,
        dose=dose,
        curves=curves,
        curve_reach=curve_reach,
        at_risk=at_risk,
        qol=qol,
        subgroups=subgroups,
        overlap_bins=overlap_bins,
        weight_bins=weight_bins,
        weight_summary=weight_summary,
        weight_method=weight_method,
        secondary=secondary,
        costs=costs,
    )


# --------------------------------------------------------------------------------------------------
# one number, one key


def _alias(ledger: CountLedger, value: int, candidates: Iterable, fallback, *, displayed: bool = True, priority: int = 0):
    """The key of a registered count with this value among ``candidates``, else register ``fallback``."""
    for key in candidates:
        cell = ledger.cells.get(key)
        if cell is not None and cell.value == int(value):
            ledger.add(key, value, displayed=displayed, priority=priority)  # now shown here too
            return key
    ledger.add(fallback, value, displayed=displayed, priority=priority)
    return fallback


def _alias_any(ledger: CountLedger, value: int, fallback):
    """A registered displayed count with this value (cohort sizes first), else ``fallback`` as an unshown count.

    Used for the total of a partition that is not printed itself: if a reader can see that total
    elsewhere, the identity must hold against that number. Tying it to an unrelated equal number only
    adds a constraint, which can only make the protection stricter.
    """
    value = int(value)
    for key in (COHORT, EARLY, DELAYED, RTW_POPULATION):
        if key in ledger.cells and ledger.cells[key].value == value:
            return key
    for key, cell in ledger.cells.items():
        if cell.displayed and cell.value == value:
            return key
    ledger.add(fallback, value, displayed=False)
    return fallback


# --------------------------------------------------------------------------------------------------
# the steps, in the order count_everything calls them


def _attrition(ledger: CountLedger, data: ReportData, policy: DisclosurePolicy) -> Mapping[str, tuple[Mapping[str, Any], ...]]:
    out = {}
    for pop, steps in data.attrition.items():
        merged = merge_attrition_steps(
            [{"step": s.step, "remaining": s.remaining, "excluded": s.excluded} for s in steps], policy
        )
        keys = []
        for i, s in enumerate(merged):
            last = i == len(merged) - 1
            cands = []
            if pop == "cohort" and last:
                cands = [COHORT]
            if pop != "cohort" and i == 0:
                cands = [COHORT]
            if pop == "rtw" and last:
                cands = [RTW_POPULATION]
            rk = _alias(ledger, s["remaining"], cands, ("attr", pop, i, "remaining"), priority=2 if i == 0 else 1)
            ek = None
            if i > 0:
                ek = ("attr", pop, i, "excluded")
                ledger.add(ek, s["excluded"])
                ledger.add_identity(keys[-1][0], [rk, ek], only_if_holds=True)
            keys.append((rk, ek))
        out[pop] = tuple(_frozen(dict(s, rkey=rk, ekey=ek)) for s, (rk, ek) in zip(merged, keys))
    return _frozen(out)


def _table1(ledger: CountLedger, data: ReportData) -> pd.DataFrame | None:
    t1 = data.table("table1")
    if t1 is None or t1.empty:
        return None
    t1 = t1[t1["arm"].isin(list(ARM_KEYS))].copy()
    t1["level"] = t1["level"].where(t1["level"].notna(), None)
    order = list(dict.fromkeys(t1["variable"]))
    for var in order:
        part = t1[t1["variable"] == var]
        stat = str(part["statistic"].iloc[0] or "n_pct")
        levels = list(dict.fromkeys(part["level"]))
        if stat == "n_pct":
            for arm, arm_key in ARM_KEYS.items():
                rows = part[part["arm"] == arm]
                if rows.empty:
                    continue
                den = rows["denominator"].iloc[0]
                den_key = _alias(ledger, int(den), [arm_key], ("t1", "den", var, arm), priority=1) if den is not None and not pd.isna(den) else None
                keys = []
                for level in levels:
                    r = rows[rows["level"].isna()] if level is None else rows[rows["level"] == level]
                    if r.empty:
                        continue
                    k = ("t1", var, level, arm)
                    ledger.add(k, int(r["n"].iloc[0]))
                    keys.append(k)
                if den_key is not None:
                    rest = int(ledger.cells[den_key].value) - sum(ledger.cells[k].value for k in keys)
                    if rest >= 0:
                        if rest > 0 or levels == [None]:
                            rk = ("t1", var, "__rest__", arm)
                            ledger.add(rk, rest, displayed=False)
                            keys.append(rk)
                        ledger.add_identity(den_key, keys, only_if_holds=True)
    return t1


def _timing(ledger: CountLedger, data: ReportData, policy: DisclosurePolicy):
    """The delay categories' persons (tied to the cohort and its two groups) and the referral histogram's bins."""
    delay: dict[str, tuple] = {}
    no_bins = pd.DataFrame(columns=["left", "right", "key", "category"])
    cats = data.table("delay_categories")
    if cats is None or cats.empty:
        return _frozen(delay), no_bins, None
    bands = delay_bands(data)
    for label, n in zip(cats["delay_category"], cats["n"]):
        k = ("delay", str(label))
        ledger.add(k, int(n))
        delay[str(label)] = k
    ledger.add_identity(COHORT, list(delay.values()), only_if_holds=True)
    grace = data.grace_period_days
    early = [delay[lab] for lab, lo, hi in bands if hi is not None and hi <= grace]
    late = [delay[lab] for lab in delay if delay[lab] not in early]
    if early:
        ledger.add_identity(EARLY, early, only_if_holds=True)
        ledger.add_identity(DELAYED, late, only_if_holds=True)
    timing = data.table("referral_timing")
    if timing is None or timing.empty:
        return _frozen(delay), no_bins, None
    per_day = timing.groupby("day")["n"].sum()
    max_day = int(per_day.index.max())
    rows = []
    for label, lo, hi in bands:
        if lo is None or (label in delay and ledger.cells[delay[label]].value == 0):
            continue
        hi_eff = max(hi if hi is not None else max_day, lo)
        # Bins of (nearly) equal width within each band, about a week each: stepping by 7 from the band's
        # start left a one-day bin at its end (day 14 of 0-14), drawn as a weekly rate seven times too tall.
        k = max(1, math.ceil((hi_eff + 1 - lo) / 7))
        edges = sorted(set(int(round(x)) for x in np.linspace(lo, hi_eff + 1, k + 1)))
        counts = [int(per_day[(per_day.index >= a) & (per_day.index < b)].sum()) for a, b in zip(edges[:-1], edges[1:])]
        merged = merge_small_bins(edges, counts, policy)
        keys = []
        for j, b in enumerate(merged.itertuples(index=False)):
            true_n = sum(c for c, a in zip(counts, edges[:-1]) if b.left <= a < b.right)
            k = ("refbin", label, j)
            ledger.add(k, true_n)
            keys.append(k)
            rows.append({"left": int(b.left), "right": int(b.right) - 1, "key": k, "category": label})
        if label in delay:
            ledger.add_identity(delay[label], keys, only_if_holds=True)
    return _frozen(delay), pd.DataFrame(rows), per_day


def _estimates(ledger: CountLedger, data: ReportData) -> Mapping[tuple, Hashable]:
    """Arm sizes and contrast sizes of every estimate, with the identity contrast = early + delayed."""
    df = data.estimates
    keys: dict[tuple, Hashable] = {}
    if df.empty:
        return _frozen(keys)
    for row in df.itertuples(index=False):
        if pd.isna(row.n):
            continue
        h = None if pd.isna(row.horizon_days) else int(row.horizon_days)
        arm = row.arm if isinstance(row.arm, str) else None
        ek = (row.analysis, row.outcome, row.measure, h, arm)
        cands = []
        if arm == "early":
            cands = [EARLY]
        elif arm == "delayed":
            cands = [DELAYED]
        elif row.outcome == "rtw":
            cands = [RTW_POPULATION, COHORT]
        else:
            cands = [COHORT]
        key = ("est", row.analysis, row.outcome, h, arm or "all")
        if key in ledger.cells and ledger.cells[key].value != int(row.n):
            key = ("est", row.analysis, row.outcome, row.measure, h, arm or "all")
        keys[ek] = _alias(ledger, int(row.n), cands, key)
    groups: dict[tuple, dict] = {}
    for (analysis, outcome, measure, h, arm), key in keys.items():
        groups.setdefault((analysis, outcome, h), {})[arm or "all"] = key
    for g in groups.values():
        if {"all", "early", "delayed"} <= set(g) and len({g["all"], g["early"], g["delayed"]}) == 3:
            ledger.add_identity(g["all"], [g["early"], g["delayed"]], only_if_holds=True)
    return _frozen(keys)


def _dose(ledger: CountLedger, data: ReportData, delay: Mapping[str, Hashable]) -> Mapping[tuple, Hashable]:
    """The dose-response bands' persons: a band's persons are its delay category's (one number, one key)."""
    dr = data.table("dose_response")
    keys: dict[tuple, Hashable] = {}
    if dr is None or dr.empty:
        return _frozen(keys)
    for r in dr.to_dict("records"):
        if r["n"] is None or pd.isna(r["n"]):
            continue
        label, h = str(r["delay_category"]), int(r["horizon_days"])
        cands = [delay[label]] if label in delay else []
        keys[(label, h)] = _alias(ledger, int(r["n"]), cands, ("dose", label, h))
    return _frozen(keys)


def _curves(ledger: CountLedger, data: ReportData, policy: DisclosurePolicy):
    """Each return-to-work curve cut where too few remain at risk, and its numbers at risk."""
    curves_table = data.table("rtw_curves")
    curves: dict[str, Mapping[str, pd.DataFrame]] = {}
    reach: dict[tuple[str, str], int] = {}
    at_risk: dict[str, Mapping[str, tuple]] = {}
    if curves_table is None or curves_table.empty:
        return _frozen(curves), _frozen(reach), _frozen(at_risk)
    for analysis in [a.id for a in data.plan if a.id in set(curves_table["analysis"])]:
        kept_curves, rows = {}, {}
        for arm in ("early", "delayed"):
            c = curves_table[(curves_table["analysis"] == analysis) & (curves_table["arm"] == arm)].sort_values("day")
            if c.empty:
                continue
            kept = truncate_curve(c, policy)
            kept_curves[arm] = kept[["day", "estimate", "ci_low", "ci_high"]]
            reach[(analysis, arm)] = int(kept["day"].max()) if not kept.empty else -1
            cells = []
            for day in AT_RISK_DAYS:
                upto = c[c["day"] <= day]
                if upto.empty:
                    continue
                n = int(upto["n_at_risk"].iloc[-1])
                k = ("nar", analysis, arm, day)
                ledger.add(k, n)
                cells.append((day, k))
            rows[arm] = tuple(cells)
        curves[analysis], at_risk[analysis] = _frozen(kept_curves), _frozen(rows)
    return _frozen(curves), _frozen(reach), _frozen(at_risk)


def _qol(ledger: CountLedger, data: ReportData, estimates: Mapping[tuple, Hashable],
         qol_analyses: Mapping[str, str]) -> Mapping[tuple, Hashable]:
    """Persons with and without a score per instrument, horizon and group (those with one are the adjusted
    mean's persons; with and without add up to the group)."""
    q = data.table("qol_summary")
    keys: dict[tuple, Hashable] = {}
    if q is None or q.empty:
        return _frozen(keys)
    for row in q.itertuples(index=False):
        arm_key = ARM_KEYS.get(row.arm)
        if arm_key is None:
            continue
        h = int(row.horizon_days)
        k = ("qol", row.instrument, h, row.arm)
        k = _alias(ledger, int(row.n), [estimates.get((qol_analyses.get(row.instrument), row.instrument, "adjusted_mean", h, row.arm))], k)
        keys[(row.instrument, h, row.arm)] = k
        missing = getattr(row, "n_missing", None)
        if missing is not None and not pd.isna(missing):
            mk = ("qol_missing", row.instrument, h, row.arm)
            ledger.add(mk, int(missing))
            keys[(row.instrument, h, row.arm, "missing")] = mk
            ledger.add_identity(arm_key, [k, mk], only_if_holds=True)
    return _frozen(keys)


def _subgroups(ledger: CountLedger, data: ReportData) -> Mapping[tuple[str, str], Mapping[str, Hashable]]:
    """Each subgroup level's persons (its person-count columns), tied to Table 1's equal counts and to the
    cohort counts its levels partition."""
    s = data.table("subgroups")
    out: dict[tuple[str, str], Mapping[str, Hashable]] = {}
    if s is None or s.empty:
        return _frozen(out)
    for name in dict.fromkeys(s["subgroup"]):
        part = s[s["subgroup"] == name]
        # the table's person counts (the results data model says which columns count persons), each with
        # the cohort count its levels partition
        totals = {"n": COHORT, "n_early": EARLY, "n_delayed": DELAYED}
        cols = {c: totals[c] for c in TABLES["subgroups"].person_counts}
        per_col: dict[str, list] = {c: [] for c in cols}
        for row in part.to_dict("records"):
            keys = {}
            level = str(row["level"])
            for col in cols:
                if col in row and row[col] is not None and not pd.isna(row[col]):
                    # The same group counts appear in Table 1: one number, one key.
                    arm = {"n_early": "early", "n_delayed": "delayed"}.get(col)
                    cands = []
                    if arm:
                        cands = [("t1", name, level, arm)]
                        if level.lower() in ("yes", "true", "1"):
                            cands.append(("t1", name, None, arm))
                        if level.lower() in ("no", "false", "0"):
                            cands.append(("t1", name, "__rest__", arm))
                    keys[col] = _alias(ledger, int(row[col]), cands, ("sub", name, level, col))
                    per_col[col].append(keys[col])
            if {"n", "n_early", "n_delayed"} <= set(keys):
                ledger.add_identity(keys["n"], [keys["n_early"], keys["n_delayed"]], only_if_holds=True)
            out[(name, str(row["level"]))] = _frozen(keys)
        for col in cols:
            if per_col[col]:
                total_value = sum(ledger.cells[k].value for k in per_col[col])
                total = _alias_any(ledger, total_value, ("sub", name, "__total__", col))
                ledger.add_identity(total, per_col[col], only_if_holds=True)
    return _frozen(out)


def _binned(ledger: CountLedger, policy: DisclosurePolicy, name: str, values: pd.Series, arms: pd.Series,
            edges: np.ndarray) -> Mapping[str, tuple[tuple[float, float, Hashable], ...]]:
    """Merge per-arm histogram bins and register them with their arm total."""
    out = {}
    for arm in ("early", "delayed"):
        x = values[arms == arm].to_numpy(dtype=float)
        x = x[~np.isnan(x)]
        if x.size == 0:
            continue
        counts, _ = np.histogram(np.clip(x, edges[0], edges[-1]), bins=edges)
        merged = merge_small_bins(edges, counts, policy)
        total_key = _alias_any(ledger, int(x.size), (name, arm, "total"))
        keys = []
        rows = []
        for j, b in enumerate(merged.itertuples(index=False)):
            mask = (edges[:-1] >= b.left - 1e-12) & (edges[:-1] < b.right - 1e-12)
            true_n = int(counts[mask].sum())
            k = (name, arm, j)
            ledger.add(k, true_n)
            keys.append(k)
            rows.append((float(b.left), float(b.right), k))
        ledger.add_identity(total_key, keys, only_if_holds=True)
        out[arm] = tuple(rows)
    return _frozen(out)


def _distributions(ledger: CountLedger, data: ReportData, policy: DisclosurePolicy):
    """The preference-score and weight histograms (bins merged, each tied to its group's size)."""
    overlap_bins, weight_bins, weight_summary, weight_method = _frozen({}), _frozen({}), None, None
    ov = data.table("overlap")
    if ov is not None and not ov.empty:
        overlap_bins = _binned(ledger, policy, "overlap", ov["preference_score"], ov["arm"], np.linspace(0, 1, 21))
    w = data.table("weights")
    if w is not None and not w.empty:
        if "method" in w.columns:
            methods = list(dict.fromkeys(w["method"]))
            w = w[w["method"] == methods[0]]
            weight_method = methods[0]
        pos = w["weight"][w["weight"] > 0]
        if not pos.empty:
            lo, hi = float(pos.min()), float(pos.max())
            edges = np.geomspace(max(lo * 0.999, 1e-3), hi * 1.001 + 1e-9, 31)
            weight_bins = _binned(ledger, policy, "weights", w["weight"].clip(lower=edges[0]), w["arm"], edges)
            weight_summary = w.groupby("arm")["weight"].describe(percentiles=[0.5, 0.99])
    return overlap_bins, weight_bins, weight_summary, weight_method


def _arm_persons(ledger: CountLedger, value: int, arm: str, shared: tuple, own: tuple) -> Hashable:
    """The persons of a strategy in an outcome's population: the cohort's group when equal (one number, one
    key), else the count ``shared`` by the analyses of that population when equal, else ``own`` (the analysis's);
    a count other than the group's is tied to the group by the persons left out (an unshown count, so that a
    small difference between the group and this count is protected like any shown one)."""
    group = ARM_KEYS[arm]
    fallback = shared if shared not in ledger.cells else own
    key = _alias(ledger, value, [group, shared], fallback, priority=1)
    if key != group and group in ledger.cells:
        rest = ledger.cells[group].value - int(value)
        if rest >= 0:
            out = ledger.add(key + ("left_out",), rest, displayed=False)
            ledger.add_identity(group, [key, out], only_if_holds=True)
    return key


def _secondary(ledger: CountLedger, data: ReportData) -> Mapping[tuple, Hashable]:
    """Each secondary-outcome arm's persons and its persons with the event by each horizon.

    What a reader can work out from them is registered with them: the persons without the event by a horizon
    (the arm minus those with it; a cumulative incidence shown beside the arm's size gives it too), and the
    events between two horizons (two shown event counts, or two points of the figure, give their difference).
    The arm's persons are shared by the analyses of one population (the clone-censor-weight and the naive
    comparison of an outcome).
    """
    se = data.table("secondary_estimates")
    keys: dict[tuple, Hashable] = {}
    if se is None or se.empty:
        return _frozen(keys)
    items = {i.id: i for i in data.plan}
    ci = se[(se["measure"] == "cumulative_incidence") & se["arm"].isin(list(ARM_KEYS))]
    for analysis in dict.fromkeys(ci["analysis"]):
        item = items.get(analysis)
        population = (item.outcome, (item.settings or {}).get("population")) if item else (analysis, None)
        for arm in ARM_KEYS:
            rows = ci[(ci["analysis"] == analysis) & (ci["arm"] == arm)].sort_values("horizon_days")
            if rows.empty or rows["n"].isna().all():
                continue
            n = int(rows["n"].dropna().iloc[0])
            nk = _arm_persons(ledger, n, arm, ("sec", population, arm, "n"), ("sec", analysis, arm, "n"))
            keys[(analysis, arm)] = nk
            previous = None
            for r in rows.itertuples(index=False):
                if pd.isna(r.n_events):
                    continue
                h, events = int(r.horizon_days), int(r.n_events)
                ek = ledger.add(("sec_events", analysis, arm, h), events)
                keys[(analysis, arm, h)] = ek
                if events <= n:
                    without = ledger.add(("sec_events", analysis, arm, h, "without"), n - events, displayed=False)
                    ledger.add_identity(nk, [ek, without], only_if_holds=True)
                if previous is not None and events >= ledger.cells[previous].value:
                    between = ledger.add(("sec_events", analysis, arm, h, "since"), events - ledger.cells[previous].value,
                                         displayed=False)
                    ledger.add_identity(ek, [previous, between], only_if_holds=True)
                previous = ek
    return _frozen(keys)


def _costs(ledger: CountLedger, data: ReportData) -> Mapping[tuple, Hashable]:
    """The persons of each cost analysis's arms (the cohort's groups when equal) and of its difference (the
    cohort)."""
    cost = data.table("cost_estimates")
    keys: dict[tuple, Hashable] = {}
    if cost is None or cost.empty:
        return _frozen(keys)
    for r in cost.itertuples(index=False):
        if pd.isna(r.n):
            continue
        arm = r.arm if isinstance(r.arm, str) else None
        if arm in ARM_KEYS:
            key = ("cost", r.analysis, arm, "n")
            keys[(r.analysis, arm)] = _arm_persons(ledger, int(r.n), arm, key, key)
        else:
            keys[(r.analysis, "all")] = _alias(ledger, int(r.n), [COHORT], ("cost", r.analysis, "all", "n"))
    for (analysis, arm), key in list(keys.items()):
        if arm == "all" and (analysis, "early") in keys and (analysis, "delayed") in keys:
            ledger.add_identity(key, [keys[(analysis, "early")], keys[(analysis, "delayed")]], only_if_holds=True)
    return _frozen(keys)
