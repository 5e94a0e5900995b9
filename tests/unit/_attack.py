"""An attacker who reads every number a report run wrote for readers and tries to recover small counts.

The reader knows: every shown number exactly; that a ``<11`` cell is 1..10 and a ``*`` cell at least 11;
the identities any reader can see (a column adds up to its total, early + delayed = all, the steps of an
attrition diagram, histogram bins add up to their category); and the formulas of the derived numbers
next to the counts, with their shown rounding:

* a percentage of a count with a known (shown or hidden) denominator, ``round(100 n / N, 1)``;
* the standardized mean difference of a binary row of Table 1,
  ``(p1 - p0) / sqrt((p1 (1 - p1) + p0 (1 - p0)) / 2)`` rounded to 3 decimals;
* a share reported for a group (a responder share, an unweighted cumulative incidence) is ``k / n`` for
  some whole ``k`` (soft: dropped when it contradicts everything else, e.g. censoring made it no ratio).

For each suppressed (``<11``) cell it searches the values 1..10 consistent with all of this and reports the
cells with exactly one consistent value; so too for each count of persons that is never shown but is the
difference of shown ones (:meth:`Problem.persons`: the persons of a group left out of an outcome's population,
those without the event by a day, the events between two days), when that single value is 1..10. Complementary (``*``) cells are searched too, and any of them
pinned to a value whose complement in an identity is small counts as a recovered small count through the
small cell. Only the files written for readers are read (tables/*.csv, report.html, figure texts).
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path

SMALL = "<11"
COMPLEMENT = "*"
MISSING = "\u2014"


class Budget(Exception):
    pass


@dataclass
class Problem:
    """Integer unknowns, linear identities and formula constraints read from a report."""

    cap: int = 10**6
    lo: dict = field(default_factory=dict)
    hi: dict = field(default_factory=dict)
    fixed: dict = field(default_factory=dict)
    labels: dict = field(default_factory=dict)  # name -> shown text for hidden cells
    where: dict = field(default_factory=dict)  # name -> where it was read
    linear: list = field(default_factory=list)  # (total, parts, exact)
    formulas: list = field(default_factory=list)  # (names, fn, soft, what)
    derived: dict = field(default_factory=dict)  # name -> what it is: never shown, but a count of persons too

    # -- reading -----------------------------------------------------------------------------------

    def cell(self, name, text: str, where: str = "") -> str | None:
        """Register a displayed count; returns the name, or None when the text is not a count."""
        text = (text or "").strip()
        if text == SMALL:
            self._hidden(name, 1, 10, text, where)
        elif text == COMPLEMENT:
            self._hidden(name, 11, None, text, where)
        elif re.fullmatch(r"\d[\d,]*", text):
            value = int(text.replace(",", ""))
            if name in self.fixed and self.fixed[name] != value:
                raise AssertionError(f"{name} shown as {self.fixed[name]} and {value}")
            self.fixed[name] = value
            self.where.setdefault(name, where)
        else:
            return None
        return name

    def _hidden(self, name, lo, hi, label, where):
        if name in self.fixed:
            return  # shown elsewhere: a reader knows it
        self.lo[name] = max(self.lo.get(name, 0), lo)
        if hi is not None:
            self.hi[name] = min(self.hi.get(name, hi), hi)
        self.labels.setdefault(name, label)
        self.where.setdefault(name, where)

    def unknown(self, name, lo=0, hi=None):
        """An unknown count that is never shown (e.g. the 'no' row of a yes/no characteristic)."""
        if name not in self.fixed and name not in self.lo:
            self.lo[name] = lo
            if hi is not None:
                self.hi[name] = hi
        return name

    def persons(self, name, what: str):
        """An unknown count of persons that is never shown but that shown numbers may give away (the
        difference of two shown counts): a leak when they pin it to one value of 1..10."""
        self.unknown(name, 0)
        self.derived[name] = what
        return name

    def identity(self, total, parts, exact: bool = True):
        parts = [p for p in parts if p is not None]
        if total is None or not parts:
            return
        self.linear.append((total, tuple(parts), exact))

    def formula(self, names, fn, *, soft: bool = False, what: str = ""):
        self.formulas.append((tuple(names), fn, soft, what))

    # -- solving -----------------------------------------------------------------------------------

    def known(self, name) -> bool:
        return name in self.fixed or name in self.lo

    def _domain(self, name):
        if name in self.fixed:
            v = self.fixed[name]
            return v, v
        return self.lo.get(name, 0), self.hi.get(name, self.cap)

    def prepare(self):
        """Drop constraints on names never registered; tighten bounds of hidden cells by their totals."""
        self.linear = [(t, p, e) for t, p, e in self.linear if self.known(t) and all(self.known(x) for x in p)]
        self.formulas = [f for f in self.formulas if all(self.known(x) for x in f[0])]
        for _ in range(3):
            for total, parts, _exact in self.linear:
                _, thi = self._domain(total)
                for p in parts:
                    if p not in self.fixed and thi < self.hi.get(p, self.cap):
                        self.hi[p] = thi
        self._by_var = {}
        for i, (t, p, _) in enumerate(self.linear):
            for x in (t, *p):
                self._by_var.setdefault(x, []).append(("L", i))
        for i, (names, *_rest) in enumerate(self.formulas):
            for x in names:
                self._by_var.setdefault(x, []).append(("F", i))

    def _component(self, start):
        seen, stack, cons = {start}, [start], set()
        while stack:
            v = stack.pop()
            for c in self._by_var.get(v, ()):
                if c in cons:
                    continue
                cons.add(c)
                names = (lambda t, p, e: (t, *p))(*self.linear[c[1]]) if c[0] == "L" else self.formulas[c[1]][0]
                for x in names:
                    if x not in seen and x not in self.fixed:
                        seen.add(x)
                        stack.append(x)
        return seen, cons

    def feasible(self, target, value, *, use_soft=(), budget: int = 400_000) -> bool:
        """Is there an assignment of every unknown connected to ``target`` with ``target = value``?"""
        variables, cons = self._component(target)
        linear = [self.linear[i] for k, i in cons if k == "L"]
        formulas = [self.formulas[i] for k, i in cons if k == "F" and (i in use_soft or not self.formulas[i][2])]
        values = dict(self.fixed)
        values[target] = value
        by_var: dict = {}
        for i, (t, p, _) in enumerate(linear):
            for x in (t, *p):
                by_var.setdefault(x, []).append(("L", i))
        for i, (names, *_r) in enumerate(formulas):
            for x in names:
                by_var.setdefault(x, []).append(("F", i))
        nodes = [0]

        def ok_linear(i) -> tuple[bool, object]:
            total, parts, exact = linear[i]
            lo_sum = hi_sum = 0
            free = []
            for p in parts:
                if p in values:
                    lo_sum += values[p]
                    hi_sum += values[p]
                else:
                    a, b = self._domain(p)
                    lo_sum += a
                    hi_sum += b
                    free.append(p)
            if total in values:
                t = values[total]
                if exact:
                    if not (lo_sum <= t <= hi_sum):
                        return False, None
                    if len(free) == 1:
                        return True, (free[0], t - (lo_sum - self._domain(free[0])[0]))
                elif lo_sum > t:
                    return False, None
                return True, None
            if not free and exact:
                return True, (total, lo_sum)
            a, b = self._domain(total)
            if exact and (hi_sum < a or lo_sum > b):
                return False, None
            return True, None

        def consistent(changed) -> list | None:
            """Check constraints touching ``changed``; return derived assignments or None if violated."""
            derived = []
            for kind, i in by_var.get(changed, ()):
                if kind == "L":
                    good, d = ok_linear(i)
                    if not good:
                        return None
                    if d is not None:
                        derived.append(d)
                else:
                    names, fn, _soft, _what = formulas[i]
                    if all(n in values for n in names) and not fn(*[values[n] for n in names]):
                        return None
            return derived

        order = sorted(variables - {target}, key=lambda v: (self._domain(v)[1] - self._domain(v)[0], str(v)))

        def search(pending) -> bool:
            nodes[0] += 1
            if nodes[0] > budget:
                raise Budget(str(target))
            while pending:
                name, v = pending.pop()
                if name in values:
                    if values[name] != v:
                        return False
                    continue
                a, b = self._domain(name)
                if not (a <= v <= b):
                    return False
                values[name] = v
                assigned.append(name)
                d = consistent(name)
                if d is None:
                    return False
                pending.extend(d)
            todo = [v for v in order if v not in values]
            if not todo:
                return True
            name = todo[0]
            a, b = self._domain(name)
            for v in range(a, min(b, a + 20_000) + 1):
                mark = len(assigned)
                if search([(name, v)]):
                    return True
                for n in assigned[mark:]:
                    values.pop(n, None)
                del assigned[mark:]
            return False

        assigned: list = []
        start = consistent(target)
        if start is None:
            return False
        return search(list(start))

    def possible(self, name, *, budget: int = 400_000) -> set[int]:
        """Values 1..10 (for a ``<11`` cell) or the first few (for ``*``) consistent with everything shown."""
        lo, hi = self._domain(name)
        candidates = range(lo, min(hi, lo + 40) + 1) if self.labels.get(name) == COMPLEMENT else range(lo, hi + 1)
        out = {v for v in candidates if self._try(name, v, (), budget)}
        # Each soft formula (a share that may be k / n) the reader tries on its own; one that contradicts
        # the hard constraints (censoring or weights made it no ratio) is dropped.
        _, cons = self._component(name)
        for kind, i in sorted(cons):
            if kind == "F" and self.formulas[i][2] and len(out) > 1:
                narrowed = {v for v in out if self._try(name, v, (i,), budget)}
                if narrowed:
                    out = narrowed
        return out

    def _try(self, name, v, use_soft, budget):
        try:
            return self.feasible(name, v, use_soft=use_soft, budget=budget)
        except Budget:
            return True  # not refuted within the budget: counts as possible (see attack())


def attack(problem: Problem) -> tuple[dict, list]:
    """``({name: (where, value)}, inconsistent)``: every ``<11`` cell with a single consistent value, and
    the cells with none (the attacker's model of the report is wrong there; a test must look at them)."""
    problem.prepare()
    out, inconsistent = {}, []
    for name, label in problem.labels.items():
        if label != SMALL or name in problem.fixed:
            continue
        values = problem.possible(name)
        if len(values) == 1:
            out[name] = (problem.where.get(name, ""), values.pop())
        elif not values:
            inconsistent.append(problem.where.get(name, str(name)))
    for name, what in problem.derived.items():
        if name in problem.fixed:
            continue
        small = {v for v in range(0, 11) if problem._try(name, v, (), 400_000)}
        if len(small) == 1 and min(small) >= 1 and not any(problem._try(name, v, (), 400_000)
                                                              for v in range(11, 60)):
            out[name] = (what, small.pop())
    return out, inconsistent


# --------------------------------------------------------------------------------------------------
# Reading a report folder
# --------------------------------------------------------------------------------------------------


def _rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _pct(text: str) -> float | None:
    m = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)%.*", text or "")
    return float(m.group(1)) if m else None


def _decimals(text: str) -> int:
    m = re.match(r"\s*-?\d+(?:\.(\d+))?", text)
    return len(m.group(1)) if m and m.group(1) else 0


def pct_formula(shown: float, digits: int = 1):
    """n / N rounds to ``shown`` percent."""
    half = 0.5 * 10 ** (-digits) + 1e-9

    def fn(n, N):
        return N > 0 and abs(100.0 * n / N - shown) <= half

    return fn


def ratio_exists(shown: float, digits: int = 1):
    """Some whole k with k / n rounding to ``shown`` percent."""
    half = 0.5 * 10 ** (-digits) + 1e-9

    def fn(n):
        if n <= 0:
            return False
        k = round(shown * n / 100.0)
        return any(0 <= kk <= n and abs(100.0 * kk / n - shown) <= half for kk in (k - 1, k, k + 1))

    return fn


def smd_binary(shown: float, digits: int = 3):
    half = 0.5 * 10 ** (-digits) + 1e-9

    def fn(a, Na, b, Nb):
        if Na <= 0 or Nb <= 0 or a > Na or b > Nb:
            return False
        p1, p0 = a / Na, b / Nb
        sd = math.sqrt((p1 * (1 - p1) + p0 * (1 - p0)) / 2)
        smd = 0.0 if sd == 0 and p1 == p0 else ((p1 - p0) / sd if sd else math.inf)
        return abs(smd - shown) <= half

    return fn


def read_report(out_dir: Path, *, subgroups_of: str = "R", exact_smd: bool = True) -> Problem:
    """Everything a reader gets from a report folder, as a :class:`Problem`.

    ``subgroups_of``: the population the subgroup table partitions ("R", the return-to-work population,
    as the analysis writes it; "N" for hand-made results). ``exact_smd=False`` for hand-made results
    whose SMDs were not computed from their counts (the formula is then tried as a soft constraint).
    """
    out_dir = Path(out_dir)
    tables = out_dir / "tables"
    html = unescape((out_dir / "report.html").read_text(encoding="utf-8"))
    text = re.sub(r"<[^>]+>", " ", html)
    text = re.sub(r"\s+", " ", text)
    P = Problem()

    # cohort sizes, as the executive summary states them
    m = re.search(r"The study followed (\S+) adults", text)
    if m:
        P.cell("N", m.group(1), "summary: cohort")
    m = re.search(r"Of these, (\S+) were first seen by IPM .*? and (\S+) later or not at all", text)
    if m:
        P.cell("E", m.group(1), "summary: early")
        P.cell("D", m.group(2), "summary: delayed")
    m = re.search(r"studied among the (\S+) who were off work", text)
    if m:
        P.cell("R", m.group(1), "summary: return-to-work population")
    for arm, key in (("Early IPM", "E"), ("Delayed or no IPM", "D")):
        m = re.search(rf"{arm} \(n = ([^)]+)\)", text)
        if m:
            P.cell(key, m.group(1), "Table 1 header")
    P.identity("N", ["E", "D"])

    # attrition
    for pop in dict.fromkeys(r["population"] for r in _rows(tables / "attrition.csv")):
        steps = [r for r in _rows(tables / "attrition.csv") if r["population"] == pop]
        prev = None
        for r in steps:
            rk = P.cell(("attr", pop, r["step_order"], "remaining"), r["remaining"], f"attrition {pop} {r['step']}")
            ek = P.cell(("attr", pop, r["step_order"], "excluded"), r["excluded"], f"attrition {pop} {r['step']}")
            if prev is not None and rk is not None and ek is not None:
                P.identity(prev, [rk, ek])
            prev = rk
        if steps and pop == "Study cohort":
            last = ("attr", pop, steps[-1]["step_order"], "remaining")
            P.identity("N", [last])
        if steps and pop != "Study cohort":
            P.identity(("attr", pop, steps[-1]["step_order"], "remaining"), ["R"])

    # Table 1: counts, percentages of the arm, SMDs of binary rows
    rows = _rows(tables / "table1.csv")
    arms = (("early", "E"), ("delayed", "D"))
    block, block_name = [], None

    def flush():
        if block_name is None or not block:
            return
        for arm, total in arms:
            P.identity(total, [(block_name, lvl, arm) for lvl in block])

    for r in rows:
        label = r["characteristic"]
        indented = label.startswith("\u2003") or label.startswith(" ")
        has_counts = bool(r["early_n"] or r["delayed_n"])
        if not indented:
            flush()
            block, block_name = [], None
            if not has_counts:
                block_name = label.strip()
                continue
        if not has_counts:
            continue
        var, level = (block_name, label.strip()) if indented else (label.strip(), "yes")
        names = {}
        for arm, total in arms:
            k = P.cell((var, level, arm), r[f"{arm}_n"], f"Table 1 {var}: {level}, {arm}")
            names[arm] = k
            p = _pct(r[f"{arm}_pct"])
            if k is not None and p is not None:
                P.formula([k, total], pct_formula(p, _decimals(r[f"{arm}_pct"])), what=f"Table 1 % {var} {level} {arm}")
            if k is not None and not indented:
                P.identity(total, [k, P.unknown((var, "no", arm))])
        if indented:
            block.append(level)
        smd = r.get("smd_before", "").strip()
        if smd and names["early"] is not None and names["delayed"] is not None:
            P.formula([names["early"], "E", names["delayed"], "D"], smd_binary(float(smd), _decimals(smd)),
                      soft=not exact_smd, what=f"SMD {var} {level}")
    flush()

    # subgroups: n = early + delayed per level; levels add up to the return-to-work population
    sub = _rows(tables / "subgroups.csv")
    for name in dict.fromkeys(r["subgroup"] for r in sub):
        part = [r for r in sub if r["subgroup"] == name]
        for r in part:
            ks = [P.cell(("sub", name, r["level"], c), r[c], f"subgroups {name}: {r['level']} {c}") for c in ("n", "n_early", "n_delayed")]
            P.identity(ks[0], ks[1:])
        total = {"R": ("R", "RE", "RD"), "N": ("N", "E", "D")}[subgroups_of]
        for t, col in zip(total, ("n", "n_early", "n_delayed")):
            P.identity(t, [("sub", name, r["level"], col) for r in part])

    # return-to-work arms: sizes per method, percentages that are k / n for the unweighted naive comparison
    for r in _rows(tables / "rtw_risk.csv"):
        method = r["method"]
        ke = P.cell(("rtw", method, "early"), r["n_early"], f"rtw_risk {method} n early")
        kd = P.cell(("rtw", method, "delayed"), r["n_delayed"], f"rtw_risk {method} n delayed")
        if method.startswith("Clone-censor") and not (
            ke in P.fixed and kd in P.fixed and "R" in P.fixed and P.fixed[ke] + P.fixed[kd] != P.fixed["R"]
        ):
            # arm sizes of persons following each strategy (not clones: clones would add up to twice R)
            if ke:
                P.identity("RE", [ke])
            if kd:
                P.identity("RD", [kd])
            P.identity("R", [ke, kd])
        elif method.startswith("Naive"):
            P.identity("R", [ke, kd])
            for arm, k in (("early", ke), ("delayed", kd)):
                p = _pct(r[arm])
                if k is not None and p is not None:
                    P.formula([k], ratio_exists(p, 1), soft=True, what=f"naive % {arm} day {r['horizon_days']}")
    P.identity("R", ["RE", "RD"])
    if P.known("R"):
        P.unknown("RE", 0)
        P.unknown("RD", 0)

    # delay categories and histogram bins
    cats = _rows(tables / "delay_categories.csv")
    early_cats, late_cats, grace = [], [], _grace(text)
    for r in cats:
        label = r["delay_category"].removesuffix(" days")
        k = P.cell(("delay", label), r["n"], f"delay category {label}")
        p = _pct(r.get("pct", ""))
        if k is not None and p is not None:
            P.formula([k, "N"], pct_formula(p, _decimals(r["pct"])), what=f"delay % {label}")
        m = re.fullmatch(r"(\d+)-(\d+)", label)
        (early_cats if m and grace and int(m.group(2)) <= grace else late_cats).append(("delay", label))
    if cats:
        P.identity("N", [("delay", r["delay_category"].removesuffix(" days")) for r in cats])
        P.identity("E", early_cats)
        P.identity("D", late_cats)
    bins = _rows(tables / "referral_timing_bins.csv")
    for r in cats:
        label = r["delay_category"].removesuffix(" days")
        m = re.fullmatch(r"(\d+)-(\d+)", label) or re.fullmatch(r">(\d+)", label)
        if not m:
            continue
        lo, hi = (int(m.group(1)), int(m.group(2))) if m.lastindex == 2 else (int(m.group(1)) + 1, 10**9)
        members = [b for b in bins if lo <= int(b["first_day"]) and int(b["last_day"]) <= hi]
        keys = [P.cell(("bin", b["first_day"]), b["n"], f"histogram bin from day {b['first_day']}") for b in members]
        if members:
            P.identity(("delay", label), keys)
    for r in _rows(tables / "dose_response.csv"):
        P.cell(("delay", r["delay_category"]), r["n"], f"dose-response {r['delay_category']}")

    # quality of life: with a score + missing = the arm; responder shares are k / n
    for r in _rows(tables / "qol_means.csv"):
        arm = "E" if r["arm"].startswith("Early") else "D"
        k = P.cell(("qol", r["instrument"], r["horizon_days"], arm), r["n"], f"qol {r['instrument']} day {r['horizon_days']} {r['arm']}")
        km = P.cell(("qolm", r["instrument"], r["horizon_days"], arm), r["n_missing"], f"qol missing {r['instrument']} {r['horizon_days']} {r['arm']}")
        P.identity(arm, [k, km])
        p = _pct(r.get("responders", ""))
        if k is not None and p is not None:
            P.formula([k], ratio_exists(p, _decimals(r["responders"])), soft=True, what="responder share")
    # other harms of delay: an outcome's persons per strategy are within the group (those left out are persons
    # too); its events by each day are within those persons (those without are persons too) and grow with the
    # day (the events between two days are persons too); a shown share is k / n
    harms = _rows(tables / "harms_incidence.csv")
    for outcome in dict.fromkeys(r["outcome"] for r in harms):
        part = [r for r in harms if r["outcome"] == outcome]
        for arm, total in (("early", "E"), ("delayed", "D")):
            nk = P.cell(("harms", outcome, arm), part[0][f"n_{arm}"], f"harms {outcome}: n {arm}")
            if nk is not None:
                P.identity(total, [nk, P.persons(("harms", outcome, arm, "left out"), f"harms {outcome}: {arm} left out")])
            previous = None
            for r in part:
                day = r["horizon_days"]
                ek = P.cell(("harms", outcome, arm, day), r[f"events_{arm}"], f"harms {outcome}: events {arm} day {day}")
                if ek is not None and nk is not None:
                    P.identity(nk, [ek, P.persons(("harms", outcome, arm, day, "without"),
                                                  f"harms {outcome}: {arm} without the event by day {day}")])
                if ek is not None and previous is not None:
                    P.identity(ek, [previous, P.persons(("harms", outcome, arm, day, "since"),
                                                        f"harms {outcome}: {arm} events up to day {day} since the day before")])
                previous = ek
                p = _pct(r[arm])
                if nk is not None and p is not None:
                    P.formula([nk], ratio_exists(p, _decimals(r[arm])), soft=True, what=f"harms % {outcome} {arm} {day}")
    for r in _rows(tables / "harms_costs.csv"):
        for arm, total in (("early", "E"), ("delayed", "D")):
            k = P.cell(("harms_cost", r["outcome"], r["method"], arm), r[f"n_{arm}"], f"costs {r['outcome']}: n {arm}")
            if k is not None:
                P.identity(total, [k, P.persons(("harms_cost", r["outcome"], r["method"], arm, "left out"),
                                                f"costs {r['outcome']}: {arm} left out")])
    P.cap = max([v for v in P.fixed.values()] + [10])
    return P


def _grace(text: str) -> int | None:
    m = re.search(r"within (\d+) days", text)
    return int(m.group(1)) if m else 42
