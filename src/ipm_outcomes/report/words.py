"""The report's plain-language sentences: each a function of estimates and the disclosure policy.

These are the sentences a reader quotes (the executive summary's answer, the quality-of-life findings,
the E-value, the naive comparison, the diagnostics verdict); each is tested on hand-made estimates in
``tests/unit/test_report_wording.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..disclosure import DisclosurePolicy
from ..report_data import Estimate
from ..vocabulary import OUTCOMES
from .display import finite, fixed, short_name

_NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight",
                 9: "nine", 10: "ten", 11: "eleven", 12: "twelve"}


def days_in_words(days: int) -> str:
    """A period for a lay reader: 42 -> "six weeks", 180 -> "six months", 365 -> "one year"."""
    days = int(days)
    if days in (365, 366):
        return "one year"
    if days % 30 == 0 and 2 <= days // 30 <= 12 and days >= 60:
        return f"{_NUMBER_WORDS[days // 30]} months"
    if days % 7 == 0 and 1 <= days // 7 <= 12:
        weeks = days // 7
        return f"{_NUMBER_WORDS[weeks]} week{'s' if weeks > 1 else ''}"
    return f"{days} days"


def classify(ci_low: float | None, ci_high: float | None, null: float = 0.0, higher_is_better: bool = True) -> str:
    """``"beneficial"``, ``"harmful"`` or ``"null"`` from a confidence interval and the direction of benefit."""
    if ci_low is None or ci_high is None:
        return "null"
    if ci_low > null:
        return "beneficial" if higher_is_better else "harmful"
    if ci_high < null:
        return "harmful" if higher_is_better else "beneficial"
    return "null"


def _fmt_points(x: float, digits: int) -> str:
    return fixed(abs(x), digits)


@dataclass(frozen=True)
class Finding:
    """A plain-language result: its verdict and the sentence(s) stating it."""

    verdict: str  # beneficial | harmful | null | unavailable | empty
    sentence: str
    headline: str


def primary_finding(
    difference: Estimate | None,
    early: Estimate | None,
    delayed: Estimate | None,
    *,
    grace_days: int,
    horizon_days: int,
    policy: DisclosurePolicy,
) -> Finding:
    """The executive-summary sentence for the primary return-to-work contrast.

    The wording follows the direction of the risk difference (early minus delayed) and whether its 95%
    confidence interval excludes zero; arm levels are quoted only when each comes from at least
    ``min_cell_size`` persons.
    """
    grace = days_in_words(grace_days)
    when = days_in_words(horizon_days)
    who = f"Patients first seen by IPM within {grace}"
    if difference is None or not finite(difference.estimate) or policy.too_few(difference.n):
        return Finding(
            "unavailable",
            f"Too few patients followed one of the two strategies to estimate the difference in return to work by "
            f"{when}: fewer than {policy.min_cell_size} persons were referred within {grace} (or not), or were still "
            f"off work and followed by {when}.",
            "Too few patients to estimate the primary result",
        )
    if not finite(difference.ci_low) or not finite(difference.ci_high):
        return Finding(
            "unavailable",
            f"By {when}, the difference in the share back at work (early minus delayed) was "
            f"{fixed(100 * difference.estimate, 1, '+')} percentage points, but no confidence interval could be "
            "computed (the bootstrap replicates failed), so these data cannot say whether early referral helps.",
            "Primary result without a confidence interval",
        )
    d, lo, hi = (100 * difference.estimate, 100 * difference.ci_low, 100 * difference.ci_high)
    verdict = classify(difference.ci_low, difference.ci_high)
    levels = None
    if (
        early is not None and delayed is not None and early.estimate is not None and delayed.estimate is not None
        and not policy.too_few(early.n) and not policy.too_few(delayed.n)
    ):
        levels = (100 * early.estimate, 100 * delayed.estimate)
    # Whole numbers read best; one decimal when rounding would make the arms and the difference disagree.
    digits = 0
    if levels is not None and round(levels[0]) - round(levels[1]) != round(d):
        digits = 1
    if round(d, digits) == 0 or round(lo, digits) == round(hi, digits):
        digits = 1
    num = lambda x: fixed(x, digits)  # noqa: E731
    ci = f"95% CI {num(lo)} to {num(hi)}"
    level_text = f"{num(levels[0])}% vs {num(levels[1])}% were back at work by {when}, " if levels else ""
    unit = "percentage point" + ("" if abs(round(d, digits)) == 1 else "s")
    if verdict == "beneficial":
        sentence = (f"{who} returned to work sooner: {level_text}"
                    f"a difference of {_fmt_points(d, digits)} {unit} ({ci}).")
        if not levels:
            sentence = (f"{who} returned to work sooner: by {when}, {_fmt_points(d, digits)} {unit} more were back "
                        f"at work ({ci}).")
        headline = "Early IPM referral: faster return to work"
    elif verdict == "harmful":
        sentence = (f"{who} returned to work more slowly: {level_text}"
                    f"{_fmt_points(d, digits)} {unit} fewer ({ci}).")
        if not levels:
            sentence = (f"{who} returned to work more slowly: by {when}, {_fmt_points(d, digits)} {unit} fewer were "
                        f"back at work ({ci}).")
        headline = "Early IPM referral: slower return to work"
    else:
        sentence = (f"The study found no clear difference in return to work between patients first seen by IPM "
                    f"within {grace} and those seen later: {level_text}"
                    f"a difference of {num(d)} {unit} ({ci}). The interval includes zero, so the data are "
                    f"compatible with early referral helping by up to {_fmt_points(max(hi, 0), digits)} points "
                    f"or hindering by up to {_fmt_points(min(lo, 0), digits)} points.")
        headline = "Early IPM referral: no clear difference in return to work"
    return Finding(verdict, sentence, headline)


def qol_finding(
    difference: Estimate | None,
    *,
    instrument: str,
    horizon_days: int,
    mcid: float | None,
    policy: DisclosurePolicy,
) -> str | None:
    """One sentence on a quality-of-life contrast (adjusted mean difference, early minus delayed)."""
    if difference is None or not finite(difference.estimate) or policy.too_few(difference.n):
        return None
    if not finite(difference.ci_low) or not finite(difference.ci_high):
        return None  # no interval: nothing can be said about the difference
    outcome = OUTCOMES.get(instrument)
    higher_better = outcome.higher_is_better if outcome else True
    name = short_name(instrument)
    digits = 2 if instrument == "eq5d_index" else 1
    d, lo, hi = difference.estimate, difference.ci_low, difference.ci_high
    verdict = classify(lo, hi, 0.0, higher_better)
    better = "higher is better" if higher_better else "lower is better"
    when = days_in_words(horizon_days)
    ci = f"95% CI {fixed(lo, digits)} to {fixed(hi, digits)}"
    direction = "higher" if d > 0 else "lower"
    mcid_text = ""
    if mcid:
        mcid_text = (f" The smallest change patients notice is about {mcid:g} points, so the difference is "
                     f"{'at least' if abs(d) >= mcid else 'smaller than'} that.")
    if verdict == "null":
        return (f"On {name} ({better}) at {when}, there was no clear difference between the groups: "
                f"{fixed(d, digits, '+')} points ({ci}).{mcid_text}")
    word = "better" if verdict == "beneficial" else "worse"
    return (f"On {name} ({better}) at {when}, early referral was followed by {word} scores: "
            f"{fixed(abs(d), digits)} points {direction} ({ci}).{mcid_text}")


def e_value_sentence(estimate: float, ci_bound: float | None, rr_low: float | None, rr_high: float | None) -> str:
    """The E-value in words; when the interval of the risk ratio already includes 1, no confounding is
    needed to make it compatible with no effect, and the sentence says that instead of "1.00 to move it"."""
    head = (f"An unmeasured confounder would need to be associated with both early referral and return to work by a "
            f"risk ratio of {estimate:.2f} each (beyond the measured covariates) to explain away the primary estimate")
    includes_null = finite(rr_low) and finite(rr_high) and rr_low <= 1.0 <= rr_high
    if includes_null or (finite(ci_bound) and float(ci_bound) <= 1.0 + 1e-9):
        return (head + "; its confidence interval already includes no effect, so no unmeasured confounding is "
                "needed to make the data compatible with no effect (VanderWeele & Ding 2017).")
    if not finite(ci_bound):
        return head + "; the confidence interval was not available (VanderWeele & Ding 2017)."
    return (head + f", and of {float(ci_bound):.2f} to move its confidence interval to include no effect "
            "(VanderWeele & Ding 2017).")


def naive_sentence(naive: float, primary: float, *, horizon_days: int, grace_days: int) -> str:
    """What the naive comparison would have said, in points at a day, and why it is biased.

    Grouping patients by when they were eventually referred puts everyone who went back to work before a
    referral in the delayed group (they are never referred), and sicker patients are referred sooner:
    both push the naive estimate against early referral, often past zero.
    """
    n, p = 100 * naive, 100 * primary
    unit = lambda x: "point" if abs(round(x, 1)) == 1 else "points"  # noqa: E731
    if n * p < 0 and abs(p) >= 0.5:
        how = "It points the opposite way"
    elif abs(n) > abs(p):
        how = "It is further from no difference"
    else:
        how = "It is closer to no difference"
    return (f"A simple comparison of patients by when they were eventually referred would have given "
            f"{fixed(n, 1, '+')} percentage {unit(n)} back at work by day {horizon_days} (early minus delayed), against "
            f"{fixed(p, 1, '+')} {unit(p)} from the primary analysis. {how}, because patients who return to work quickly "
            f"are never referred and so count as delayed, and sicker patients are referred sooner (within "
            f"{grace_days} days). This report does not rely on it.")


def diagnostics_sentence(checks, value_text: Callable[[Any], str]) -> tuple[str, bool | None]:
    """Whether the study diagnostics passed, in one sentence; and the overall pass (None if unknown).

    ``value_text(check)`` is a failed check's value as the report may show it (the report passes the
    diagnostics table's disclosure gate); required, because a raw value can give a small count back.
    """
    known = [c for c in checks if c.passed is not None]
    if not known:
        return "Study diagnostics were not available in these results.", None
    failed = [c for c in known if not c.passed]
    names = ", ".join(c.label[0].lower() + c.label[1:] for c in known)
    if not failed:
        return f"All {len(known)} study diagnostics passed ({names}).", True
    what = "; ".join(
        f"{c.label}: {value_text(c)} (threshold {c.threshold})"
        if c.value is not None
        else c.label
        for c in failed
    )
    return (f"{len(failed)} of {len(known)} study diagnostics failed ({what}): the estimates should be read "
            "with caution.", False)


