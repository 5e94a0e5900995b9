"""Small-cell suppression for everything the report displays (CMS cell-size suppression policy).

The rule for claims-based research output: no displayed count of 1 to ``min_cell_size - 1`` persons
(default 1-10), shown instead as ``"<11"``; zero may be shown. A suppressed count must not be
recoverable from the numbers that are shown (totals, the other cells of a row or column, the steps of
an attrition diagram), so a second, *complementary* cell is withheld where needed and shown as ``"*"``.
Percentages, means and curves computed from fewer than ``min_cell_size`` persons are withheld too.

Two tools do the work:

* coarsening, for displays whose categories may be merged without losing their meaning
  (:func:`merge_small_bins` for histograms, :func:`merge_attrition_steps` for CONSORT diagrams,
  :func:`truncate_curve` for survival-type curves): afterwards every shown count is 0 or large;
* :class:`CountLedger`, for tables whose cells are fixed: every displayed count is registered with the
  additive identities a reader knows (``total = sum of parts``), and :meth:`CountLedger.protect`
  withholds complementary cells until a linear-programming attack on the shown numbers cannot
  pin down any small cell to a single value.

The attack model: a reader knows every shown number exactly, that a ``"<11"`` cell lies in
``1..min_cell_size-1``, that a ``"*"`` cell is at least ``min_cell_size`` (complements are never
chosen among zeros, so a reader could tell), that counts are non-negative, and every registered identity.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .errors import IpmError

#: How a complementary (secondary) suppression is shown.
COMPLEMENT_LABEL = "*"
#: How a number that is not available (not estimable, not in the results) is shown.
MISSING_LABEL = "\u2014"


class DisclosureError(IpmError):
    """Suppression could not make a table safe (no cell left to withhold)."""


@dataclass(frozen=True)
class DisclosurePolicy:
    """The cell-size threshold and how suppressed values are shown.

    Parameters
    ----------
    min_cell_size
        Smallest count of persons that may be displayed (besides zero). Spec ``[report] min_cell_size``,
        default 11 (CMS).
    """

    min_cell_size: int = 11

    def __post_init__(self) -> None:
        if int(self.min_cell_size) != self.min_cell_size or self.min_cell_size < 1:
            raise IpmError(
                f"report.min_cell_size must be a positive whole number, got {self.min_cell_size!r}: "
                "set it in the [report] section of the study spec (CMS policy: 11)"
            )

    @property
    def small_label(self) -> str:
        """The text shown in place of a small count, e.g. ``"<11"``."""
        return f"<{self.min_cell_size}"

    def is_small(self, n: float | int | None) -> bool:
        """True for a count of persons that must not be shown (1 to ``min_cell_size - 1``)."""
        if n is None or (isinstance(n, float) and math.isnan(n)):
            return False
        return 0 < n < self.min_cell_size

    def too_few(self, n: float | int | None) -> bool:
        """True when a statistic is derived from fewer than ``min_cell_size`` persons (zero included)."""
        if n is None or (isinstance(n, float) and math.isnan(n)):
            return True
        return n < self.min_cell_size

    def format_count(self, n: float | int | None) -> str:
        """A count as displayed: ``"0"``, ``"<11"`` or ``"1,234"``; missing as an em dash."""
        if n is None or (isinstance(n, float) and math.isnan(n)):
            return MISSING_LABEL
        n = int(round(n))
        if self.is_small(n):
            return self.small_label
        return f"{n:,}"

    def implied_count_small(self, proportion: float | None, n: float | int | None) -> bool:
        """True when a proportion of ``n`` persons reveals a small count of persons with, or without, it.

        ``"97% of 100"`` discloses 3 persons just as ``"3 of 100"`` would.
        """
        if proportion is None or n is None:
            return False
        if isinstance(proportion, float) and math.isnan(proportion):
            return False
        if isinstance(n, float) and math.isnan(n):
            return False
        with_it = round(proportion * n)
        without = round((1.0 - proportion) * n)
        return self.is_small(with_it) or self.is_small(without)


# --------------------------------------------------------------------------------------------------
# Coarsening
# --------------------------------------------------------------------------------------------------


def merge_small_bins(edges: Sequence[float], counts: Sequence[int], policy: DisclosurePolicy) -> pd.DataFrame:
    """Merge adjacent histogram bins until every bin holds 0 or at least ``min_cell_size`` persons.

    Runs of empty bins stay as they are (zero may be shown); a small bin is merged with the bins to
    its right until the merged count is large; a small remainder at the end joins the previous bin.

    Parameters
    ----------
    edges
        Bin edges, ``len(counts) + 1`` increasing values.
    counts
        Persons per bin.

    Returns
    -------
    pandas.DataFrame
        One row per displayed bin: ``left``, ``right``, ``n`` (0 or >= ``min_cell_size``), ``suppressed``
        (True only when the whole histogram holds fewer than ``min_cell_size`` persons; its single
        bin's ``n`` is then NaN and must not be drawn).
    """
    edges = [float(e) for e in edges]
    counts = [int(c) for c in counts]
    if len(edges) != len(counts) + 1:
        raise ValueError("edges must have one more element than counts")
    out: list[list] = []  # [left, right, n]
    pending: list | None = None
    for left, right, n in zip(edges[:-1], edges[1:], counts):
        if pending is None:
            if n == 0 or not policy.is_small(n):
                out.append([left, right, n])
            else:
                pending = [left, right, n]
        else:
            pending[1] = right
            pending[2] += n
            if not policy.is_small(pending[2]):
                out.append(pending)
                pending = None
    if pending is not None:
        # Fold the small tail into the nearest non-empty bin to its left, absorbing any empty bins between.
        while out and out[-1][2] == 0:
            out.pop()
            pending[0] = out[-1][1] if out else edges[0]
        if out:
            out[-1][1] = pending[1]
            out[-1][2] += pending[2]
        else:
            pending[0] = edges[0]
            out.append(pending)
    frame = pd.DataFrame(out, columns=["left", "right", "n"])
    frame["n"] = frame["n"].astype(float)
    frame["suppressed"] = [policy.is_small(n) for n in frame["n"]]
    frame.loc[frame["suppressed"], "n"] = np.nan
    return frame


def merge_attrition_steps(steps: Sequence[dict], policy: DisclosurePolicy) -> list[dict]:
    """Merge CONSORT steps so that no displayed exclusion count is small.

    A step whose exclusion is small is merged with the step after it (or, for the last step, with the
    one before it); the intermediate count between them is no longer shown, so the small exclusion
    cannot be recovered from the remaining counts on either side.

    Parameters
    ----------
    steps
        Ordered steps, each ``{"step": str, "remaining": int, "excluded": int | None}``; the first
        is the starting population (its ``excluded`` is ignored).

    Returns
    -------
    list of dict
        One dict per displayed step with ``step`` (label; merged labels joined with "; "),
        ``remaining``, ``excluded``, ``merged`` (number of original steps folded into this one).
    """
    if not steps:
        return []
    first = dict(steps[0])
    rows = [
        {"step": s["step"], "remaining": int(s["remaining"]), "excluded": int(s["excluded"] or 0), "merged": 1}
        for s in steps[1:]
    ]
    changed = True
    while changed and len(rows) > 1:
        changed = False
        for i, row in enumerate(rows):
            if policy.is_small(row["excluded"]):
                j = i + 1 if i + 1 < len(rows) else i - 1
                a, b = (row, rows[j]) if j > i else (rows[j], row)
                merged = {
                    "step": f"{a['step']}; {b['step']}",
                    "remaining": b["remaining"],
                    "excluded": a["excluded"] + b["excluded"],
                    "merged": a["merged"] + b["merged"],
                }
                lo = min(i, j)
                rows[lo : lo + 2] = [merged]
                changed = True
                break
    head = {
        "step": first["step"],
        "remaining": int(first["remaining"]),
        "excluded": None,
        "merged": 1,
    }
    return [head, *rows]


def truncate_curve(curve: pd.DataFrame, policy: DisclosurePolicy, at_risk: str = "n_at_risk") -> pd.DataFrame:
    """Cut a curve where fewer than ``min_cell_size`` persons remain at risk.

    Parameters
    ----------
    curve
        One row per time point of one curve, sorted by time, with an ``at_risk`` column.

    Returns
    -------
    pandas.DataFrame
        The rows before the first time point with ``0 < at_risk < min_cell_size`` (or ``at_risk == 0``:
        an estimate from nobody is no estimate).
    """
    if curve.empty:
        return curve
    at = curve[at_risk].to_numpy(dtype=float)
    bad = np.flatnonzero(np.isnan(at) | (at < policy.min_cell_size))
    if bad.size == 0:
        return curve
    return curve.iloc[: bad[0]]


# --------------------------------------------------------------------------------------------------
# Ledger: cell suppression with complementary suppression
# --------------------------------------------------------------------------------------------------

SHOWN = "shown"
SMALL = "small"  # primary suppression, displayed as "<11"
COMPLEMENT = "complement"  # secondary suppression, displayed as "*"
IMPLICIT = "implicit"  # never displayed (e.g. the "no" row of a yes/no variable) but known to exist


@dataclass
class _Cell:
    value: int
    displayed: bool
    priority: int
    status: str = SHOWN


@dataclass
class CountLedger:
    """Every count the report displays, the identities between them, and which ones to withhold.

    Register counts with :meth:`add` (the key is any hashable; the same key used twice must carry the
    same value: it is the same number shown in two places), identities with :meth:`add_identity`, then
    call :meth:`protect` once and read :meth:`display` for each key.

    ``priority`` steers the choice of complementary cells: lower first. Use 0 for detail cells,
    1 for subtotals, 2 for headline totals (the cohort size) that should stay visible if at all possible.
    """

    policy: DisclosurePolicy = field(default_factory=DisclosurePolicy)
    cells: dict[Hashable, _Cell] = field(default_factory=dict)
    identities: list[tuple[Hashable, tuple[Hashable, ...]]] = field(default_factory=list)
    protected: bool = False
    #: A small cell is safe while the shown numbers leave at least this many whole values possible for it.
    min_feasible_values: int = 2

    # -- registration -------------------------------------------------------------------------------

    def add(self, key: Hashable, value: float | int, *, displayed: bool = True, priority: int = 0) -> Hashable:
        """Register one count; returns ``key``. NaN or None values are not counts and are not registered."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return key
        value_int = int(round(float(value)))
        if value_int < 0:
            raise ValueError(f"count {key!r} is negative ({value})")
        existing = self.cells.get(key)
        if existing is not None:
            if existing.value != value_int:
                raise ValueError(f"count {key!r} registered twice with different values")
            existing.displayed = existing.displayed or displayed
            existing.priority = max(existing.priority, priority)
            return key
        self.cells[key] = _Cell(value=value_int, displayed=displayed, priority=priority)
        self.protected = False
        self._by_cell = None
        return key

    def add_identity(self, total: Hashable, parts: Iterable[Hashable], *, only_if_holds: bool = False) -> bool:
        """Declare ``total = sum(parts)`` (a reader can add up a column).

        Returns True if recorded. With ``only_if_holds``, an identity that the registered values do not
        satisfy (a partition with missing levels) is skipped; otherwise it raises.
        """
        parts = tuple(parts)
        missing = [k for k in (total, *parts) if k not in self.cells]
        if missing:
            if only_if_holds:
                return False
            raise KeyError(f"identity mentions unregistered counts: {missing}")
        holds = self.cells[total].value == sum(self.cells[k].value for k in parts)
        if not holds:
            if only_if_holds:
                return False
            raise ValueError(f"identity {total!r} = sum{parts!r} does not hold for the registered values")
        self.identities.append((total, parts))
        self.protected = False
        self._by_cell = None
        return True

    # -- protection ---------------------------------------------------------------------------------

    def protect(self) -> "CountLedger":
        """Choose primary and complementary suppressions; returns self."""
        policy = self.policy
        for cell in self.cells.values():
            if not cell.displayed:
                cell.status = IMPLICIT
            elif policy.is_small(cell.value):
                cell.status = SMALL
            else:
                cell.status = SHOWN
        primary = [k for k, c in self.cells.items() if policy.is_small(c.value)]
        degree = defaultdict(int)
        for total, parts in self.identities:
            for k in (total, *parts):
                degree[k] += 1
        self._by_cell = defaultdict(list)
        for idx, (total, parts) in enumerate(self.identities):
            for k in (total, *parts):
                self._by_cell[k].append(idx)
        # Withholding a cell only widens what a reader can infer about the others, so a small cell once
        # found safe stays safe: check each again only while it is pinned.
        safe: set = set()
        # Each round withholds at least one more cell; there are finitely many cells, so this ends.
        for _ in range(2 * len(self.cells) + 2):
            key = None
            for k in primary:
                if k in safe:
                    continue
                if self._is_pinned(k):
                    key = k
                    break
                safe.add(k)
            if key is not None:
                candidates = self._complement_candidates(key)
                if not candidates:
                    raise DisclosureError(
                        f"cannot protect the small count {key!r}: every related count is already withheld or zero; "
                        "merge categories in the results or raise report.min_cell_size consciously"
                    )
                choice = min(
                    candidates, key=lambda k: (self.cells[k].priority, degree[k], self.cells[k].value, str(k))
                )
                self.cells[choice].status = COMPLEMENT
                continue
            # A free-standing count (in no identity: a number at risk, a row count) equal to a complement may
            # be the same number under another name, which would undo the complement: withhold it too.
            withheld = {c.value for c in self.cells.values() if c.status == COMPLEMENT}
            echoes = [
                c for k, c in self.cells.items() if c.status == SHOWN and c.value in withheld and not degree[k]
            ]
            if not echoes:
                self.protected = True
                return self
            for cell in echoes:
                cell.status = COMPLEMENT
        raise DisclosureError("complementary suppression did not converge")  # pragma: no cover

    def _component(self, key: Hashable) -> tuple[list[Hashable], list[tuple[Hashable, tuple[Hashable, ...]]]]:
        """Hidden cells connected to ``key`` through identities, and those identities."""
        by_cell = getattr(self, "_by_cell", None)
        if by_cell is None:
            by_cell = defaultdict(list)
            for idx, (total, parts) in enumerate(self.identities):
                for k in (total, *parts):
                    by_cell[k].append(idx)
        cells = self.cells
        seen_cells = {key}
        seen_ids: set[int] = set()
        stack = [key]
        while stack:
            k = stack.pop()
            for idx in by_cell.get(k, ()):
                if idx in seen_ids:
                    continue
                seen_ids.add(idx)
                total, parts = self.identities[idx]
                for other in (total, *parts):
                    if cells[other].status != SHOWN and other not in seen_cells:
                        seen_cells.add(other)
                        stack.append(other)
        return sorted(seen_cells, key=str), [self.identities[i] for i in sorted(seen_ids)]

    def _bounds(self, key: Hashable) -> tuple[float, float | None]:
        cell = self.cells[key]
        t = self.policy.min_cell_size
        if cell.status == SMALL:
            return (1.0, float(t - 1))
        if cell.status == COMPLEMENT:
            return (float(t), None)
        return (0.0, None)  # implicit: only non-negativity is known

    def feasible_range(self, key: Hashable) -> tuple[float, float]:
        """The smallest and largest value of a withheld cell consistent with everything shown.

        Linear-programming bounds (continuous relaxation); ``inf`` when unbounded. For a shown cell,
        its value twice.
        """
        from scipy.optimize import linprog

        cell = self.cells[key]
        if cell.status == SHOWN:
            return (float(cell.value), float(cell.value))
        variables, identities = self._component(key)
        if not identities:
            lo, hi = self._bounds(key)
            return (lo, math.inf if hi is None else hi)
        index = {k: i for i, k in enumerate(variables)}
        a_eq = np.zeros((len(identities), len(variables)))
        b_eq = np.zeros(len(identities))
        for row, (total, parts) in enumerate(identities):
            for k, coef in [(total, 1.0)] + [(p, -1.0) for p in parts]:
                if k in index:
                    a_eq[row, index[k]] += coef
                else:
                    b_eq[row] -= coef * self.cells[k].value
        bounds = [self._bounds(k) for k in variables]
        c = np.zeros(len(variables))
        c[index[key]] = 1.0
        lo = linprog(c, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
        hi = linprog(-c, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
        if lo.status == 2 or hi.status == 2:  # infeasible: cannot happen for true values
            raise DisclosureError(f"the registered identities around {key!r} are inconsistent")  # pragma: no cover
        low = lo.fun if lo.status == 0 else -math.inf
        high = -hi.fun if hi.status == 0 else math.inf
        return (float(low), float(high))

    def _is_pinned(self, key: Hashable) -> bool:
        """True when the shown numbers narrow a small cell to fewer than ``min_feasible_values`` values."""
        need = self.min_feasible_values
        prior_low, prior_high = self._bounds(key)
        if prior_high is not None and _whole_values(prior_low, prior_high) < need:
            return False  # the label alone says as much (e.g. min_cell_size 2): nothing more to protect
        low, high = self.feasible_range(key)
        return _whole_values(low, high) < need

    def _complement_candidates(self, key: Hashable) -> list[Hashable]:
        _, identities = self._component(key)
        out = []
        for total, parts in identities:
            for k in (total, *parts):
                cell = self.cells[k]
                # Never a zero: a withheld zero would be told apart from "<11" and "*" alike.
                if cell.status == SHOWN and cell.value > 0 and k not in out:
                    out.append(k)
        return out

    # -- reading ------------------------------------------------------------------------------------

    def _require_protected(self) -> None:
        if not self.protected:
            raise RuntimeError("call CountLedger.protect() before reading displayed values")

    def status(self, key: Hashable) -> str:
        """``"shown"``, ``"small"`` (``<11``), ``"complement"`` (``*``) or ``"implicit"``."""
        self._require_protected()
        return self.cells[key].status

    def withheld(self, key: Hashable) -> bool:
        """True when the count is not displayed as a number (small, complement or implicit)."""
        self._require_protected()
        return key in self.cells and self.cells[key].status != SHOWN

    def display(self, key: Hashable) -> str:
        """The count as it may be displayed; an unregistered key shows as an em dash."""
        self._require_protected()
        cell = self.cells.get(key)
        if cell is None:
            return MISSING_LABEL
        if cell.status == SMALL:
            return self.policy.small_label
        if cell.status in (COMPLEMENT, IMPLICIT):
            return COMPLEMENT_LABEL
        return f"{cell.value:,}"

    def value_if_shown(self, key: Hashable) -> int | None:
        """The count when it is displayed, else None (for percentages and plots)."""
        self._require_protected()
        cell = self.cells.get(key)
        if cell is None or cell.status != SHOWN:
            return None
        return cell.value

    def supports(self, *keys: Hashable) -> bool:
        """True when a statistic on the persons counted by ``keys`` may be shown.

        The gate for derived numbers (percentages, means, SMDs, curve points, shares): each group the
        statistic describes must be a registered count that is displayed as a number and holds at least
        ``min_cell_size`` persons. A group shown as ``<11`` is too small; one withheld as a complement
        (``*``) or never displayed is not small, but a statistic on it (a percentage, an SMD) is an
        equation in its size that could give it back, and with it the small cell it protects.
        """
        self._require_protected()
        for key in keys:
            cell = self.cells.get(key)
            if cell is None or cell.status != SHOWN or cell.value < self.policy.min_cell_size:
                return False
        return True

    def withheld_values(self) -> set[int]:
        """The true values of all withheld displayed cells (used to withhold equal free-standing counts)."""
        self._require_protected()
        return {c.value for c in self.cells.values() if c.displayed and c.status != SHOWN}

    def counts(self) -> dict[str, int]:
        """How many cells are shown, small, complement, implicit (for the report's disclosure note)."""
        out = {SHOWN: 0, SMALL: 0, COMPLEMENT: 0, IMPLICIT: 0}
        for c in self.cells.values():
            out[c.status] += 1
        return out


def _whole_values(low: float, high: float) -> float:
    """How many whole numbers lie in [low, high] (inf when unbounded)."""
    if math.isinf(high):
        return math.inf
    return max(0, math.floor(high + 1e-7) - math.ceil(low - 1e-7) + 1)


def check_released_table(name: str, frame: pd.DataFrame, person_counts: Iterable[str], policy: DisclosurePolicy) -> None:
    """The last gate before a table leaves the library: no cell of a column that counts persons shows 1 to
    ``min_cell_size - 1``.

    Every count a reader gets is meant to come from :meth:`CountLedger.display` (shown as ``"<11"`` or
    ``"*"`` when withheld); this gate catches one that did not, whatever its table. ``person_counts`` are the
    table's columns that count persons: those the display marks as counts and those showing a column that
    the results data model (:data:`ipm_outcomes.report_data.TABLES`) declares a person count.

    Raises
    ------
    DisclosureError
        One line naming the table, the column and the row.
    """
    for column in person_counts:
        if column not in frame.columns:
            continue
        for row, text in enumerate(frame[column].tolist()):
            value = _whole_number(text)
            if value is not None and policy.is_small(value):
                raise DisclosureError(
                    f"report table {name!r} column {column!r} row {row}: {text!r} is a count of 1 to "
                    f"{policy.min_cell_size - 1} persons; a report section must show counts through the "
                    "CountLedger (ReportContext.c), never from a results table directly"
                )


def _whole_number(text) -> int | None:
    """A displayed whole number ("7", "1,234", 7) as an int; anything else (a label, "<11", "*", "12.5%") None."""
    if isinstance(text, (int, np.integer)) and not isinstance(text, bool):
        return int(text)
    if isinstance(text, float) and text.is_integer():
        return int(text)
    if isinstance(text, str) and text.strip() and text.strip().replace(",", "").isdigit():
        return int(text.strip().replace(",", ""))
    return None


def format_percent(count: int | None, denominator: int | None, digits: int = 1) -> str:
    """``count / denominator`` as a percentage, or an em dash when either is withheld or zero."""
    if count is None or denominator is None or denominator == 0:
        return MISSING_LABEL
    return f"{100.0 * count / denominator:.{digits}f}%"
