"""The one immutable input every report section reads: the results, the disclosure decisions, the roles.

:func:`build_context` runs once per report, before any section: it names the plan's analyses by their role
(:class:`Roles`), runs the disclosure first pass (:func:`~ipm_outcomes.report.counts.count_everything`, which
says why that pass is global) and decides which standardized mean differences may be shown (Table 1 and the
love plot read that one decision). A section receives the :class:`ReportContext` and returns its
:class:`~ipm_outcomes.report.display.Section`; nothing a section does changes what another one sees.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import pandas as pd

from ..disclosure import MISSING_LABEL, DisclosurePolicy, format_percent
from ..plan import AnalysisItem
from ..report_data import Estimate, ReportData, estimate_from_row
from .counts import ARM_KEYS, Counts, count_everything


@dataclass(frozen=True)
class Roles:
    """The plan's analyses the report reads, by role (results are keyed by these ids).

    primary
        the id of the primary analysis (None when the plan has none).
    naive
        the id of the biased comparison shown for contrast (None when not planned).
    comparisons
        the return-to-work comparisons by method: the primary, the secondary ones and the biased one, in
        plan order.
    qol
        quality-of-life outcome -> the id of its analysis.
    description
        the id of the cohort description (Table 1 and its weighting; None when not planned).
    """

    primary: str | None
    naive: str | None
    comparisons: tuple[AnalysisItem, ...]
    qol: Mapping[str, str]
    description: str | None

    @classmethod
    def of(cls, data: ReportData) -> Roles:
        primary = data.primary_analysis
        comparisons = tuple(data.analyses("rtw", ("primary", "secondary", "bias_illustration")))
        return cls(
            primary=primary.id if primary else None,
            naive=next((a.id for a in comparisons if a.role == "bias_illustration"), None),
            comparisons=comparisons,
            qol=MappingProxyType({a.outcome: a.id for a in data.plan if a.method == "ancova_iptw"}),
            description=next((a.id for a in data.plan if a.role == "description"), None),
        )


@dataclass(frozen=True)
class ReportContext:
    """What every section reads: the results, the disclosure policy and decisions, the analyses' roles.

    The read helpers apply the disclosure gate: :meth:`c` is a count as it may be displayed, :meth:`v` its
    value only when shown, :meth:`enough` whether an estimate may be shown, :meth:`contrast` a contrast only
    when both its arms may be.
    """

    data: ReportData
    policy: DisclosurePolicy
    roles: Roles
    counts: Counts
    #: covariate -> (SMD before, SMD after), only where the disclosure gate lets them through (see :func:`_smds_shown`)
    smds_shown: Mapping[str, tuple[float, float]]

    @property
    def t(self) -> int:
        """The smallest count of persons that may be shown (besides zero)."""
        return self.policy.min_cell_size

    # -- counts ---------------------------------------------------------------------------------------

    def has(self, key: Hashable) -> bool:
        """True when the first pass registered a count under ``key``."""
        return key in self.counts.ledger.cells

    def c(self, key) -> str:
        """The count as it may be displayed ("1,234", "<11", "*"); an em dash when not registered."""
        return self.counts.ledger.display(key) if self.has(key) else MISSING_LABEL

    def v(self, key) -> int | None:
        """The count when it is shown, else None (for percentages and figures)."""
        return self.counts.ledger.value_if_shown(key) if self.has(key) else None

    def pct(self, key, den_key, digits: int = 1) -> str:
        return format_percent(self.v(key), self.v(den_key), digits)

    def supports(self, *keys: Hashable) -> bool:
        """The ledger's gate for a derived number on the persons counted by ``keys``."""
        return self.counts.ledger.supports(*keys)

    def true_count(self, key: Hashable) -> int | None:
        """The registered value of a count, shown or not: for decisions only, never to display."""
        cell = self.counts.ledger.cells.get(key)
        return None if cell is None else cell.value

    def withheld_cells(self) -> dict[str, int]:
        """How many registered counts are shown, small, complement, implicit."""
        return self.counts.ledger.counts()

    # -- estimates ------------------------------------------------------------------------------------

    def est(self, analysis, outcome, measure, horizon=None, arm=None) -> Estimate | None:
        """The estimate with this key (analysis id, outcome, measure, horizon, arm), else None."""
        return self.data.estimate(analysis, outcome, measure, horizon, arm)

    def enough(self, *estimates: Estimate | None) -> bool:
        """Every estimate may be shown: present, finite, and passed by the disclosure gate (:meth:`supported`)."""
        return all(self.supported(e) for e in estimates)

    def supported(self, e: Estimate | None) -> bool:
        """The disclosure gate for one estimate: the persons it describes are a shown count of at least
        min_cell_size (its arm size, registered in the ledger), and for a return-to-work arm the curve it
        is read from still has min_cell_size persons at risk at its horizon (persons uncensored, i.e.
        still following the strategy, not clones)."""
        if e is None or e.estimate is None or not math.isfinite(e.estimate) or self.policy.too_few(e.n):
            return False
        key = self.counts.estimates.get((e.analysis, e.outcome, e.measure, e.horizon_days, e.arm))
        if key is not None and not self.supports(key):
            return False
        reach = self.counts.curve_reach
        if e.arm is not None and e.horizon_days is not None and (e.analysis, e.arm) in reach:
            return reach[(e.analysis, e.arm)] >= e.horizon_days
        return True

    def arms_ok(self, analysis, outcome, horizon=None) -> bool:
        """Both arms of a contrast pass the gate (arms at any horizon when horizon is None)."""
        df = self.data.estimates
        arms = df[(df["analysis"] == analysis) & (df["outcome"] == outcome) & df["arm"].notna()]
        if horizon is not None:
            arms = arms[arms["horizon_days"] == horizon]
        return all(self.supported(estimate_from_row(r)) for r in arms.to_dict("records"))

    def contrast(self, analysis, outcome, measure, horizon=None) -> Estimate | None:
        """A contrast (a difference or ratio between the arms) when it and both its arms may be shown, else None."""
        e = self.est(analysis, outcome, measure, horizon)
        if e is None or e.estimate is None or not math.isfinite(e.estimate) or self.policy.too_few(e.n):
            return None
        if not self.arms_ok(analysis, outcome, horizon):
            return None
        return e

    def rmst_horizon(self, analysis) -> int | None:
        """The longest horizon at which the days-off difference of ``analysis`` may be shown (both arms
        still followed by enough persons up to it); its last horizon, withheld, when none may."""
        df = self.data.estimates
        part = df[(df["analysis"] == analysis) & (df["outcome"] == "rtw") & (df["measure"] == "rmst_difference")]
        horizons = sorted({int(h) for h in part["horizon_days"].dropna()}, reverse=True)
        if not horizons:
            return None
        return next((h for h in horizons if self.contrast(analysis, "rtw", "rmst_difference", h)), horizons[0])


def build_context(data: ReportData, policy: DisclosurePolicy) -> ReportContext:
    """The context of one report: roles, the disclosure first pass, the SMDs that may be shown."""
    roles = Roles.of(data)
    counts = count_everything(data, policy, roles.qol)
    return ReportContext(data=data, policy=policy, roles=roles, counts=counts,
                         smds_shown=MappingProxyType(_smds_shown(data, policy, counts)))


def _smds_shown(data: ReportData, policy: DisclosurePolicy, counts: Counts) -> dict[str, tuple[float, float]]:
    """Covariate -> (SMD before, SMD after), only where the disclosure gate lets them through.

    An SMD is a formula in the counts of its row and the group sizes: for a yes/no row it has a
    single solution, so next to a withheld cell it gives the cell back. It is shown only when every
    count of its row (each level, for a categorical characteristic) is shown and both groups it
    compares pass :meth:`CountLedger.supports`; for a measurement, when each group's mean rests on
    at least min_cell_size persons. Table 1 and the love plot read this one decision.
    """
    smd = data.table("smd")
    t1 = counts.table1
    if smd is None or smd.empty or t1 is None:
        return {}
    L = counts.ledger
    shown = lambda k: k in L.cells and L.status(k) == "shown"  # noqa: E731
    out = {}
    for var in dict.fromkeys(t1["variable"]):
        part = t1[t1["variable"] == var]
        stat = str(part["statistic"].iloc[0] or "n_pct")
        levels = list(dict.fromkeys(part["level"]))
        groups_ok = True
        for arm, arm_key in ARM_KEYS.items():
            rows = part[part["arm"] == arm]
            if rows.empty:
                groups_ok = False
                continue
            den = rows["denominator"].iloc[0]
            den_key = arm_key if L.cells.get(arm_key) and L.cells[arm_key].value == den else ("t1", "den", var, arm)
            if not L.supports(den_key) or (stat != "n_pct" and policy.too_few(rows["n"].min())):
                groups_ok = False
        if not groups_ok:
            continue
        if stat != "n_pct":
            names = [var]
        else:
            cells = [("t1", var, level, arm) for level in levels for arm in ("early", "delayed")]
            if not all(shown(k) for k in cells):
                continue
            names = [var] if levels == [None] else [var] + [f"{var}_{level}" for level in levels]
        for r in smd[smd["covariate"].astype(str).isin(names)].itertuples(index=False):
            if pd.notna(r.smd_before) and pd.notna(r.smd_after):
                out[str(r.covariate)] = (float(r.smd_before), float(r.smd_after))
    return out
