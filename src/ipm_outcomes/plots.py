"""Figure functions for the report: data in, :class:`matplotlib.figure.Figure` out.

Every function takes already-disclosure-controlled data (counts as display strings, curves truncated,
bins merged) and an optional ``ax``; none calls ``plt.show()`` or saves: :mod:`ipm_outcomes.report`
saves. Text that displays a count of persons is tagged with ``gid="count"`` so tests can find every
such annotation (:func:`figure_texts`).

Style: one look for all figures (:func:`report_style`), the Okabe-Ito colour-blind-safe palette,
axes labelled with units, and a title that states the finding (passed in by the report).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from contextlib import contextmanager

import matplotlib

# No matplotlib.use() here: importing the library must not change a notebook's backend. The command
# line chooses a headless one (cli.main) and report.render draws off-screen figures.
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator
from scipy.stats import norm

from .vocabulary import ARMS

#: Okabe & Ito (2008) colour-blind-safe palette.
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
    "grey": "#999999",
}
ARM_COLOURS = {"early": OKABE_ITO["blue"], "delayed": OKABE_ITO["orange"]}
METHOD_COLOURS = {
    "ccw": OKABE_ITO["blue"],
    "landmark_iptw": OKABE_ITO["green"],
    "tv_cox": OKABE_ITO["purple"],
    "naive": OKABE_ITO["grey"],
    "ancova_iptw": OKABE_ITO["blue"],
}
COUNT_GID = "count"

_STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 9.5,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.labelsize": 9.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#E3E3E3",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "legend.frameon": False,
    "legend.fontsize": 9,
    "xtick.labelsize": 8.5,
    "ytick.labelsize": 8.5,
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "svg.fonttype": "none",
}


@contextmanager
def report_style():
    """Matplotlib settings shared by every report figure."""
    with plt.rc_context(_STYLE):
        yield


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width)) if text else ""


def _new(ax, figsize) -> tuple[Figure, plt.Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _spread_log_ticks(ticks: list[float], keep: float, lo: float, hi: float, most: int = 7) -> list[float]:
    """Log-axis ticks at least 1/``most`` of the axis apart (0.67 and 0.75 printed side by side read as
    "0.670.75"); ``keep`` (the null) always stays."""
    if len(ticks) < 2 or hi <= lo:
        return ticks
    gap = (np.log(hi) - np.log(lo)) / most
    kept = [keep] if keep in ticks else []
    for t in sorted(ticks, key=lambda t: abs(np.log(t) - np.log(keep))):
        if all(abs(np.log(t) - np.log(k)) >= gap for k in kept):
            kept.append(t)
    return sorted(kept)


def _title(ax, title: str | None, width: int = 80) -> None:
    if title:
        ax.set_title(_wrap(title, width), loc="left")


def _estimates_with_intervals(ax, xs, est, lo, hi, *, colour: str, cap: float, lw: float, ms: float, label: str) -> None:
    """Points joined by a line, each with a vertical bar from its interval's low to its high bound.

    The bar is drawn from the bounds, not as distances from the estimate (``errorbar``): a
    percentile bootstrap interval need not contain its point estimate, and then a distance would
    be negative. A bound that is NaN (withheld) leaves that bar out.
    """
    ax.plot(xs, est, "o-", color=colour, lw=lw, ms=ms, label=label, zorder=2)
    bounded = ~(np.isnan(lo) | np.isnan(hi))
    ax.vlines(xs[bounded], lo[bounded], hi[bounded], color=colour, lw=lw, zorder=1)
    for bound in (lo, hi):
        ax.plot(xs[bounded], bound[bounded], linestyle="none", marker="_", ms=cap, mew=lw, color=colour, zorder=1)


def _percent(ax, axis: str = "y", digits: int = 0) -> None:
    fmt = FuncFormatter(lambda v, _pos: f"{100 * v:.{digits}f}%")
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)


def figure_texts(fig: Figure) -> list[tuple[str, str | None]]:
    """Every piece of text drawn in a figure as ``(text, gid)``, tick labels excluded.

    Call after the figure was drawn (saved): tick labels are only final then. Tests scan these for counts.
    """
    tick_labels = set()
    for ax in fig.axes:
        for t in ax.get_xticklabels() + ax.get_yticklabels():
            tick_labels.add(id(t))
    out = []
    for artist in fig.findobj(matplotlib.text.Text):
        text = artist.get_text()
        if text and id(artist) not in tick_labels and artist.get_visible():
            out.append((text, artist.get_gid()))
    return out


# --------------------------------------------------------------------------------------------------
# Study population
# --------------------------------------------------------------------------------------------------


def attrition_diagram(
    steps: Sequence[Mapping[str, str | None]],
    arms: Sequence[tuple[str, str]] = (),
    *,
    title: str | None = None,
    ax=None,
) -> Figure:
    """CONSORT-style flow: population boxes down the left, exclusion boxes to the right.

    Parameters
    ----------
    steps
        In order; each ``{"label": str, "remaining": str, "excluded": str | None, "excluded_label": str}``
        with counts already formatted for display (e.g. ``"3,560"``, ``"<11"``). The first step's
        ``excluded`` is None.
    arms
        Optional final split as ``(label, count text)`` pairs, drawn side by side under the last box.
    """
    n_rows = len(steps) + (1 if arms else 0)
    fig, ax = _new(ax, (8.2, 1.0 * n_rows + 0.5))
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ys = [1 - (i + 0.5) / n_rows for i in range(n_rows)]
    step_y = 1 / n_rows
    main_x, side_x = 0.3, 0.78
    arrow = dict(arrowstyle="-|>", color="#444444", lw=0.9, shrinkA=0, shrinkB=0)

    def box(x, y, text, face, edge, size):
        return ax.text(x, y, text, ha="center", va="center", fontsize=size, linespacing=1.35, gid=COUNT_GID,
                       bbox=dict(boxstyle="round,pad=0.55", facecolor=face, edgecolor=edge, linewidth=0.9))

    mains = []
    for i, step in enumerate(steps):
        text = f"{_wrap(str(step['label']), 46)}\nn = {step['remaining']}"
        mains.append(box(main_x, ys[i], text, "#EAF2F8", OKABE_ITO["blue"], 8.6))
        if i == 0:
            continue
        ax.annotate("", xy=(main_x, ys[i]), xytext=(main_x, ys[i - 1]),
                    arrowprops=dict(arrow, patchA=mains[i - 1].get_bbox_patch(), patchB=mains[i].get_bbox_patch()))
        if step.get("excluded") is not None:
            y_mid = ys[i] + step_y / 2
            label = str(step.get("excluded_label") or step["label"])
            side = box(side_x, y_mid, f"{_wrap('Excluded, did not meet: ' + label, 40)}\nn = {step['excluded']}", "#FBF3E6",
                       OKABE_ITO["orange"], 7.6)
            ax.annotate("", xy=(side_x, y_mid), xytext=(main_x, y_mid),
                        arrowprops=dict(arrow, color="#888888", patchB=side.get_bbox_patch()))
    if arms:
        xs = np.linspace(0.14, 0.64, len(arms)) if len(arms) > 1 else [main_x]
        for x, (label, count) in zip(xs, arms):
            colour = ARM_COLOURS["early"] if "early" in label.lower() else ARM_COLOURS["delayed"]
            arm_box = box(x, ys[-1], f"{_wrap(label, 34)}\nn = {count}", "#FFFFFF", colour, 8.6)
            ax.annotate("", xy=(x, ys[-1]), xytext=(main_x, ys[-2]),
                        arrowprops=dict(arrow, patchA=mains[-1].get_bbox_patch(), patchB=arm_box.get_bbox_patch()))
    _title(ax, title, 90)
    return fig


# --------------------------------------------------------------------------------------------------
# Return to work
# --------------------------------------------------------------------------------------------------


def cumulative_incidence(
    curves: Mapping[str, pd.DataFrame],
    risk_table: Mapping[str, Sequence[tuple[int, str]]] | None = None,
    *,
    horizons: Sequence[int] = (),
    max_day: int = 365,
    title: str | None = None,
    ylabel: str = "Back at work (cumulative incidence)",
    ax=None,
) -> Figure:
    """Step curves with 95% confidence bands per arm and a numbers-at-risk table under the axis.

    Parameters
    ----------
    curves
        Arm -> DataFrame with ``day``, ``estimate``, ``ci_low``, ``ci_high`` (proportions), already
        truncated where fewer than ``min_cell_size`` persons remain at risk.
    risk_table
        Arm -> ``[(day, count text), ...]`` shown under the x axis.
    """
    arms = list(curves)
    if ax is None:
        n_rows = len(risk_table or {})
        fig = Figure(figsize=(8.2, 4.6 + 0.28 * n_rows), layout="constrained")
        grid = fig.add_gridspec(2, 1, height_ratios=[4.2, 0.42 + 0.28 * n_rows])
        ax = fig.add_subplot(grid[0])
        table_ax = fig.add_subplot(grid[1], sharex=ax) if risk_table else None
    else:
        fig, table_ax = ax.figure, None
    for arm in arms:
        df = curves[arm]
        colour = ARM_COLOURS.get(arm, OKABE_ITO["black"])
        label = ARMS.get(arm, arm)
        if df.empty:
            continue
        ax.step(df["day"], df["estimate"], where="post", color=colour, lw=1.8, label=label)
        if df["ci_low"].notna().any():
            ax.fill_between(df["day"], df["ci_low"], df["ci_high"], step="post", color=colour, alpha=0.18, lw=0)
    for h in horizons:
        ax.axvline(h, color="#BBBBBB", lw=0.8, ls=":")
    ax.set_xlim(0, max_day)
    ax.set_ylim(0, 1)
    _percent(ax)
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator([0, 30, 60, 90, 120, 150, 180, 210, 240, 270, 300, 330, 365]))
    if any(not curves[a].empty for a in arms):
        ax.legend(loc="lower right")
    else:
        ax.text(0.5, 0.5, "Too few persons to draw curves", transform=ax.transAxes, ha="center", va="center", color="#666666")
    _title(ax, title)
    if table_ax is not None:
        table_ax.set_axis_off()
        table_ax.grid(False)
        rows = list(risk_table.items())
        table_ax.set_ylim(len(rows) - 0.4, -1.1)
        table_ax.text(0, -0.95, "Number at risk", fontsize=8.2, fontweight="bold", transform=table_ax.get_yaxis_transform(), ha="left")
        for r, (arm, cells) in enumerate(rows):
            table_ax.text(-0.05, r, ARMS.get(arm, arm), ha="right", va="center", fontsize=8,
                          color=ARM_COLOURS.get(arm, "black"), transform=table_ax.get_yaxis_transform())
            for day, text in cells:
                table_ax.text(day, r, text, ha="center", va="center", fontsize=8, gid=COUNT_GID)
        ax.set_xlabel("")
        table_ax.set_xlabel("Days since index (first low back pain visit)")
        table_ax.xaxis.set_visible(False)
        ax.tick_params(labelbottom=True)
        fig.text(0.5, 0.0, "", ha="center")
        ax.set_xlabel("Days since index (first low back pain visit)")
    else:
        ax.set_xlabel("Days since index (first low back pain visit)")
    return fig


# --------------------------------------------------------------------------------------------------
# Referral timing and dose-response
# --------------------------------------------------------------------------------------------------


def referral_histogram(
    bins: pd.DataFrame,
    *,
    grace_days: int,
    title: str | None = None,
    ax=None,
) -> Figure:
    """Days from index to first IPM contact, as persons per week in (possibly merged) bins.

    Parameters
    ----------
    bins
        One row per displayed bin: ``left``, ``right`` (first and last day, inclusive), ``n`` (NaN when
        withheld) and ``label`` (display text for withheld bins, e.g. ``"<11"``).
    """
    fig, ax = _new(ax, (8.2, 3.6))
    for row in bins.itertuples(index=False):
        width = row.right - row.left + 1
        colour = ARM_COLOURS["early"] if row.right <= grace_days else ARM_COLOURS["delayed"]
        if pd.isna(row.n):
            ax.axvspan(row.left, row.right + 1, ymin=0, ymax=0.06, facecolor="none", edgecolor="#777777", hatch="////", lw=0.6)
            ax.text((row.left + row.right + 1) / 2, 0.08, str(row.label), transform=ax.get_xaxis_transform(),
                    ha="center", va="bottom", fontsize=7.5, color="#555555", gid=COUNT_GID)
            continue
        ax.bar(row.left, row.n / width * 7, width=width, align="edge", color=colour, alpha=0.85, edgecolor="white", lw=0.4)
    ax.axvline(grace_days + 1, color=OKABE_ITO["black"], ls="--", lw=1)
    ax.text(grace_days + 3, 0.97, f"end of grace period (day {grace_days})", transform=ax.get_xaxis_transform(),
            ha="left", va="top", fontsize=8, bbox=dict(facecolor="white", edgecolor="none", alpha=0.85, pad=1.5))
    ax.set_xlabel("Days from index to first IPM contact")
    ax.set_ylabel("Persons per week")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    right = float(bins["right"].max()) + 1 if not bins.empty else 365
    ax.set_xlim(0, max(right, grace_days + 30))
    _title(ax, title)
    return fig


def dose_response(
    points: pd.DataFrame,
    *,
    title: str | None = None,
    ylabel: str = "Back at work (cumulative incidence)",
    ax=None,
) -> Figure:
    """Estimate and 95% CI per referral-delay category, one series per horizon.

    Parameters
    ----------
    points
        ``delay_category`` (ordered), ``horizon_days``, ``estimate``, ``ci_low``, ``ci_high`` (NaN when
        withheld), ``label`` (note drawn for withheld points).
    """
    fig, ax = _new(ax, (8.2, 3.8))
    categories = list(dict.fromkeys(points["delay_category"]))
    x = {c: i for i, c in enumerate(categories)}
    horizons = sorted(points["horizon_days"].dropna().unique())
    palette = [OKABE_ITO["blue"], OKABE_ITO["vermillion"], OKABE_ITO["green"]]
    offsets = np.linspace(-0.12, 0.12, len(horizons)) if len(horizons) > 1 else [0.0]
    for k, h in enumerate(horizons):
        part = points[points["horizon_days"] == h]
        xs = np.array([x[c] for c in part["delay_category"]]) + offsets[k]
        est = part["estimate"].to_numpy(dtype=float)
        lo = part["ci_low"].to_numpy(dtype=float)
        hi = part["ci_high"].to_numpy(dtype=float)
        ok = ~np.isnan(est)
        colour = palette[k % len(palette)]
        _estimates_with_intervals(ax, xs[ok], est[ok], lo[ok], hi[ok], colour=colour, cap=6, lw=1.4, ms=5,
                                  label=f"by day {int(h)}")
        for xi, okay, lab in zip(xs, ok, part.get("label", [""] * len(part))):
            if not okay and lab:
                ax.text(xi, 0.04, str(lab), ha="center", va="bottom", fontsize=7.5, color="#555555",
                        transform=ax.get_xaxis_transform(), gid=COUNT_GID)
    ax.set_xticks(range(len(categories)), [f"{c} days" if c[0].isdigit() or c[0] == ">" else c for c in categories])
    ax.set_xlabel("Days from index to first IPM contact (delay category)")
    ax.set_ylim(0, 1)
    _percent(ax)
    ax.set_ylabel(ylabel)
    ax.legend(loc="lower left")
    _title(ax, title)
    return fig


# --------------------------------------------------------------------------------------------------
# Other harms of delay (secondary outcomes)
# --------------------------------------------------------------------------------------------------


def secondary_incidence(
    points: pd.DataFrame,
    *,
    labels: Mapping[str, str],
    horizons: Sequence[int],
    title: str | None = None,
) -> Figure:
    """Cumulative incidence (95% CI) per strategy at each horizon, one panel per outcome.

    Points at the report's horizons, not step curves: a step of a curve is the events of one day, a count of
    persons a reader could read back; the points are the cumulative incidences the table shows.

    Parameters
    ----------
    points
        ``analysis`` (one panel each, in order), ``horizon_days``, ``arm``, ``estimate``, ``ci_low``,
        ``ci_high`` (proportions); points withheld by the disclosure gate are left out.
    labels
        Analysis -> panel title (the outcome in words).
    horizons
        The days on the x axis.
    """
    panels = list(labels)
    cols = min(3, max(1, len(panels)))
    rows = int(np.ceil(len(panels) / cols)) if panels else 1
    fig = Figure(figsize=(8.2, 2.5 * rows + 0.7), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    xs = {int(h): i for i, h in enumerate(horizons)}
    top = float(np.nanmax(points["ci_high"].to_numpy(dtype=float))) if len(points) else 0.0
    top = min(1.0, max(0.05, 1.15 * top)) if np.isfinite(top) else 1.0
    for i, ax in enumerate(axes.flat):
        if i >= len(panels):
            ax.set_axis_off()
            continue
        name = panels[i]
        part = points[points["analysis"] == name]
        for k, arm in enumerate(("early", "delayed")):
            a = part[part["arm"] == arm]
            x = np.array([xs[int(h)] for h in a["horizon_days"]], dtype=float) + (-0.1 if k == 0 else 0.1)
            _estimates_with_intervals(ax, x, a["estimate"].to_numpy(dtype=float), a["ci_low"].to_numpy(dtype=float),
                                      a["ci_high"].to_numpy(dtype=float), colour=ARM_COLOURS[arm], cap=4, lw=1.3,
                                      ms=4.5, label=ARMS[arm])
        if part.empty:
            ax.text(0.5, 0.5, "Too few persons to show", transform=ax.transAxes, ha="center", va="center",
                    color="#666666", fontsize=8)
        ax.set_xticks(range(len(xs)), [f"day {h}" for h in xs])
        ax.set_xlim(-0.5, len(xs) - 0.5)
        ax.set_ylim(0, top)
        _percent(ax)
        ax.set_title(_wrap(labels[name], 34), loc="left", fontsize=9)
    handles, names = [], []
    for ax in axes.flat:
        for h, n in zip(*ax.get_legend_handles_labels()):
            if n not in names:
                handles.append(h)
                names.append(n)
    if handles:
        fig.legend(handles, names, loc="outside lower center", ncol=2, fontsize=8)
    if title:
        fig.suptitle(_wrap(title, 90), fontsize=10.5)
    return fig


# --------------------------------------------------------------------------------------------------
# Quality of life
# --------------------------------------------------------------------------------------------------


def qol_means(
    means: pd.DataFrame,
    *,
    labels: Mapping[str, str],
    title: str | None = None,
    mcid: Mapping[str, float] | None = None,
) -> Figure:
    """Adjusted mean score by arm and horizon, one panel per instrument.

    Each panel's y-axis spans at least three MCIDs (the smallest change patients notice) and the MCID is
    drawn as a grey band around the delayed group's mean: auto-scaled axes made a 1-point difference
    look large.

    Parameters
    ----------
    means
        ``instrument``, ``horizon_days``, ``arm``, ``estimate``, ``ci_low``, ``ci_high`` (NaN when withheld).
    labels
        Instrument -> axis label with units and direction.
    """
    instruments = list(dict.fromkeys(means["instrument"]))
    cols = min(3, max(1, len(instruments)))
    rows = int(np.ceil(len(instruments) / cols)) if instruments else 1
    fig = Figure(figsize=(8.2, 2.55 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= len(instruments):
            ax.set_axis_off()
            continue
        inst = instruments[i]
        part = means[means["instrument"] == inst]
        for j, arm in enumerate(("early", "delayed")):
            p = part[part["arm"] == arm].sort_values("horizon_days")
            if p.empty:
                continue
            xs = p["horizon_days"].to_numpy(dtype=float) + (j - 0.5) * 6
            est = p["estimate"].to_numpy(dtype=float)
            lo = p["ci_low"].to_numpy(dtype=float)
            hi = p["ci_high"].to_numpy(dtype=float)
            ok = ~np.isnan(est)
            _estimates_with_intervals(ax, xs[ok], est[ok], lo[ok], hi[ok], colour=ARM_COLOURS[arm], cap=5,
                                      lw=1.3, ms=4, label=ARMS[arm])
        m = (mcid or {}).get(inst)
        if m:
            values = part[["estimate", "ci_low", "ci_high"]].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            if values.size:
                centre = (values.min() + values.max()) / 2
                half = max((values.max() - values.min()) / 2 * 1.15, 1.5 * m)
                ax.set_ylim(centre - half, centre + half)
                ref = part[(part["arm"] == "delayed")]["estimate"].dropna()
                base = float(ref.mean()) if not ref.empty else centre
                ax.axhspan(base - m / 2, base + m / 2, color="#DDDDDD", alpha=0.6, lw=0, zorder=0,
                           label=f"MCID ({m:g} points)" if i == 0 else None)
        ax.set_title(_wrap(labels.get(inst, inst), 34), fontsize=9, fontweight="normal")
        ax.set_xlabel("Days since index")
        ax.set_xticks(sorted(part["horizon_days"].unique()))
        if i == 0:
            ax.legend(loc="best", fontsize=7.5)
    if title:
        fig.suptitle(_wrap(title, 95), x=0.0, ha="left", fontsize=11, fontweight="bold")
    return fig


# --------------------------------------------------------------------------------------------------
# Robustness
# --------------------------------------------------------------------------------------------------


def forest(
    rows: pd.DataFrame,
    *,
    null: float = 0.0,
    xlabel: str,
    title: str | None = None,
    log: bool = False,
    percent: bool = False,
    ax=None,
) -> Figure:
    """Forest plot: one row per estimate with its 95% CI and the estimate printed on the right.

    Parameters
    ----------
    rows
        In display order: ``label``, ``estimate``, ``ci_low``, ``ci_high`` (NaN when withheld), ``text``
        (the right-hand column), optional ``colour``, ``style`` ("biased" draws a hollow grey marker
        and italic label), ``header`` (True for a group heading row without an estimate).
    null
        Value of no effect (0 for differences, 1 for ratios), drawn as a vertical line.
    """
    n = len(rows)
    fig, ax = _new(ax, (8.2, 0.34 * n + 1.3))
    ys = np.arange(n)[::-1]
    for y, row in zip(ys, rows.to_dict("records")):
        if row.get("header") is True:
            ax.text(-0.02, y, str(row["label"]), transform=ax.get_yaxis_transform(), ha="right", va="center",
                    fontsize=8.6, fontweight="bold")
            continue
        biased = row.get("style") == "biased"
        colour = row.get("colour") or (OKABE_ITO["grey"] if biased else OKABE_ITO["blue"])
        ax.text(-0.02, y, str(row["label"]), transform=ax.get_yaxis_transform(), ha="right", va="center",
                fontsize=8.4, style="italic" if biased else "normal", color="#555555" if biased else "black")
        ax.text(1.02, y, str(row.get("text", "")), transform=ax.get_yaxis_transform(), ha="left", va="center",
                fontsize=8.2, gid=row.get("gid"))
        est = row.get("estimate")
        if est is None or pd.isna(est):
            continue
        lo, hi = row.get("ci_low"), row.get("ci_high")
        if lo is not None and not pd.isna(lo):
            ax.plot([lo, hi], [y, y], color=colour, lw=1.5)
        ax.plot([est], [y], marker="D" if not biased else "o", ms=6, color=colour,
                markerfacecolor="white" if biased else colour, markeredgewidth=1.4)
    ax.axvline(null, color="#555555", lw=0.9)
    ax.set_yticks([])
    ax.set_ylim(-0.7, n - 0.3)
    ax.spines["left"].set_visible(False)
    ax.grid(axis="y", visible=False)
    if log:
        ax.set_xscale("log")
        values = rows[["estimate", "ci_low", "ci_high"]].to_numpy(dtype=float) if not rows.empty else np.array([[null]])
        values = values[np.isfinite(values) & (values > 0)]
        lo, hi = (min(values.min(), null), max(values.max(), null)) if values.size else (null / 2, null * 2)
        ticks = [t for t in (0.1, 0.2, 0.25, 0.33, 0.5, 0.67, 0.75, 1, 1.25, 1.5, 2, 3, 4, 5, 10) if lo / 1.3 <= t <= hi * 1.3]
        ticks = _spread_log_ticks(ticks, null, lo / 1.3, hi * 1.3)
        ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks or [null]))
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}"))
    if percent:
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{100 * v:+.0f}" if v else "0"))
    ax.set_xlabel(xlabel)
    _title(ax, title, 70)
    return fig


# --------------------------------------------------------------------------------------------------
# Diagnostics
# --------------------------------------------------------------------------------------------------


def love_plot(smd: pd.DataFrame, *, threshold: float = 0.1, title: str | None = None, ax=None) -> Figure:
    """Absolute standardized mean differences before and after weighting, one row per covariate.

    Parameters
    ----------
    smd
        ``label``, ``smd_before``, ``smd_after`` (signed or absolute; plotted as absolute).
    """
    df = smd.assign(b=smd["smd_before"].abs(), a=smd["smd_after"].abs()).sort_values("b")
    fig, ax = _new(ax, (8.2, 0.22 * len(df) + 1.4))
    ys = np.arange(len(df))
    ax.hlines(ys, df["a"], df["b"], color="#CCCCCC", lw=1)
    # grey and black: blue and orange mean "early" and "delayed" in every other figure
    ax.plot(df["b"], ys, "o", color=OKABE_ITO["grey"], ms=5, label="Before weighting", markerfacecolor="white", markeredgewidth=1.3)
    ax.plot(df["a"], ys, "D", color=OKABE_ITO["black"], ms=4.5, label="After weighting")
    # the threshold is named in the legend, not by a label that collides with the title
    ax.axvline(threshold, color=OKABE_ITO["vermillion"], ls="--", lw=0.9, label=f"Balance threshold ({threshold:g})")
    ax.set_yticks(ys, df["label"], fontsize=7.8)
    ax.set_xlabel("Absolute standardized mean difference (early vs delayed)")
    ax.set_xlim(left=0)
    ax.legend(loc="lower right")
    _title(ax, title)
    return fig


def binned_distribution(
    bins: Mapping[str, pd.DataFrame],
    *,
    xlabel: str,
    ylabel: str,
    shade: tuple[float, float] | None = None,
    shade_label: str = "",
    log_x: bool = False,
    title: str | None = None,
    ax=None,
) -> Figure:
    """Per-arm distributions drawn from (merged) bins as step outlines of persons per bin width.

    Parameters
    ----------
    bins
        Arm -> DataFrame with ``left``, ``right``, ``n`` (NaN = withheld: not drawn).
    shade
        An x range to shade (e.g. the 0.3-0.7 equipoise band).
    """
    fig, ax = _new(ax, (8.2, 3.5))
    if shade is not None:
        ax.axvspan(*shade, color="#EEEEEE", zorder=0, label=shade_label or None)
    drawn = False
    for arm, df in bins.items():
        df = df.dropna(subset=["n"])
        if df.empty:
            continue
        width = (df["right"] - df["left"]).to_numpy(dtype=float)
        density = df["n"].to_numpy(dtype=float) / width
        total = df["n"].sum()
        share = density / total if total else density
        xs = np.r_[df["left"].to_numpy(dtype=float), df["right"].to_numpy(dtype=float)[-1]]
        ax.stairs(share, xs, color=ARM_COLOURS.get(arm, "black"), lw=1.6, label=ARMS.get(arm, arm),
                  fill=False, baseline=0)
        drawn = True
    if log_x:
        ax.set_xscale("log")
        # plain numbers at 1-2-5 steps; no "4x10^-1" minor labels
        ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if drawn or shade_label:
        ax.legend(loc="upper right")
    if not drawn:
        ax.text(0.5, 0.5, "Too few persons to draw", transform=ax.transAxes, ha="center", color="#666666")
    _title(ax, title)
    return fig


# --------------------------------------------------------------------------------------------------
# Empirical calibration
# --------------------------------------------------------------------------------------------------


def _calibrated_boundary(log_x: np.ndarray, z: float, mean: float, sd: float) -> np.ndarray:
    """The standard error below which an estimate at ``log_x`` has calibrated p < alpha (EmpiricalCalibration
    ``logRrtoSE``): ``sqrt(max(0, (mu - log x)^2 / z^2 - sigma^2))``."""
    return np.sqrt(np.maximum((mean - log_x) ** 2 / z**2 - sd**2, 0.0))


def calibration_effect(
    controls: pd.DataFrame,
    *,
    null_mean: float | None,
    null_sd: float | None,
    estimates: pd.DataFrame | None = None,
    alpha: float = 0.05,
    ease: float | None = None,
    xlabel: str = "Hazard ratio",
    title: str | None = None,
    ax=None,
) -> Figure:
    """Negative-control estimates against their standard errors, with the p = alpha boundaries.

    EmpiricalCalibration's ``plotCalibrationEffect`` (``R/Plots.R``): the effect estimate on a log x axis, its
    standard error on the y axis; below the dashed lines an estimate has a traditional p < alpha (``se <
    |log x| / z``), inside the shaded orange area a calibrated p < alpha under the empirical null (the boundary
    of ``logRrtoSE``). Negative controls are dots, the study's estimates (if given) diamonds.

    Disclosure: the figure draws estimates and standard errors only, no count, and its text is the axis
    labels, the legend and the optional EASE; nothing in it is a number of persons. A standard error is not
    an exact function of event counts for the bootstrap or robust standard errors of this study, but a Wald
    standard error of a crude 2x2 table is (``sqrt(1/a - 1/n1 + 1/b - 1/n2)``): pass only estimates that the
    report's disclosure gate lets through, as for every estimate shown.

    Parameters
    ----------
    controls
        The usable negative controls: ``log_rr`` and ``se_log_rr`` (e.g. ``EmpiricalCalibration.controls_``
        where ``used``).
    null_mean, null_sd
        The fitted empirical null (log scale); None when calibration was skipped (only the traditional
        boundary is drawn).
    estimates
        Optional contrasts of interest: ``log_rr``, ``se_log_rr``.
    ease
        Optional expected absolute systematic error to print in the corner.
    """
    z = float(norm.ppf(1 - alpha / 2))
    fig, ax = _new(ax, (6.6, 4.4))
    points = [controls[["log_rr", "se_log_rr"]]]
    if estimates is not None and len(estimates):
        points.append(estimates[["log_rr", "se_log_rr"]])
    allp = pd.concat(points).astype(float)
    allp = allp[np.isfinite(allp["log_rr"]) & np.isfinite(allp["se_log_rr"])]
    lo = min(0.25, float(np.exp(allp["log_rr"].min())) / 1.25) if len(allp) else 0.25
    hi = max(4.0, float(np.exp(allp["log_rr"].max())) * 1.25) if len(allp) else 4.0
    top = max(0.25, float(allp["se_log_rr"].max()) * 1.2) if len(allp) else 1.5
    log_x = np.arange(np.log(lo), np.log(hi) + 0.01, 0.01)
    x = np.exp(log_x)
    traditional = np.abs(log_x) / z
    ax.fill_between(x, 0, traditional, color="#000000", alpha=0.08, lw=0, zorder=0)
    ax.plot(x, traditional, color="#555555", ls="--", lw=1.2, zorder=1,
            label=f"Traditional p < {alpha:g} below the dashed line")
    if null_mean is not None and null_sd is not None:
        calibrated = _calibrated_boundary(log_x, z, float(null_mean), float(null_sd))
        ax.fill_between(x, 0, calibrated, color=OKABE_ITO["orange"], alpha=0.35, lw=0, zorder=0)
        ax.plot(x, calibrated, color=OKABE_ITO["orange"], lw=1.4, zorder=1,
                label=f"Calibrated p < {alpha:g} in the orange area")
    ax.axvline(1.0, color="#333333", lw=0.9, zorder=1)
    ax.plot(np.exp(controls["log_rr"].astype(float)), controls["se_log_rr"].astype(float), "o", ms=5,
            color=OKABE_ITO["blue"], alpha=0.7, zorder=3, label="Negative controls")
    if estimates is not None and len(estimates):
        ax.plot(np.exp(estimates["log_rr"].astype(float)), estimates["se_log_rr"].astype(float), "D", ms=8,
                color=OKABE_ITO["yellow"], markeredgecolor="#000000", zorder=4, label="Study estimates")
    if ease is not None and np.isfinite(ease):
        ax.text(0.02, 0.97, f"Expected absolute systematic error = {ease:.2f}", transform=ax.transAxes,
                ha="left", va="top", fontsize=8.6)
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(0, top)
    ticks = [t for t in (0.1, 0.125, 0.25, 0.5, 1, 2, 4, 6, 8, 10, 20) if lo <= t <= hi]
    ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}"))
    ax.set_xlabel(f"{xlabel} (log scale)")
    ax.set_ylabel("Standard error of the log estimate")
    # below the axes: inside, it would hide controls with a large standard error
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8)
    _title(ax, title)
    return fig


def calibrated_intervals(rows: pd.DataFrame, *, xlabel: str = "Hazard ratio", title: str | None = None, ax=None) -> Figure:
    """Uncalibrated and calibrated 95% intervals of each contrast, one above the other (log scale).

    Parameters
    ----------
    rows
        One row per contrast, in display order: ``label``, ``rr``, ``ci_low``, ``ci_high``, ``calibrated_rr``,
        ``calibrated_ci_low``, ``calibrated_ci_high`` (as :meth:`ipm_outcomes.calibration.EmpiricalCalibration.calibrate`
        returns them, with a ``label``); calibrated values NaN when calibration was skipped.

    Disclosure: ratios and their intervals only, no count; pass only contrasts the report's gate lets through.
    """
    def fmt(est, lo, hi) -> str:
        if pd.isna(est):
            return "not calibrated"
        return f"{est:.2f} ({lo:.2f} to {hi:.2f})"

    forest_rows = []
    for row in rows.to_dict("records"):
        forest_rows.append({"label": row["label"], "header": True})
        forest_rows.append({"label": "uncalibrated", "estimate": row["rr"], "ci_low": row["ci_low"],
                            "ci_high": row["ci_high"], "colour": OKABE_ITO["grey"],
                            "text": fmt(row["rr"], row["ci_low"], row["ci_high"])})
        forest_rows.append({"label": "calibrated", "estimate": row["calibrated_rr"],
                            "ci_low": row["calibrated_ci_low"], "ci_high": row["calibrated_ci_high"],
                            "colour": OKABE_ITO["blue"],
                            "text": fmt(row["calibrated_rr"], row["calibrated_ci_low"], row["calibrated_ci_high"])})
    return forest(pd.DataFrame(forest_rows), null=1.0, xlabel=xlabel, title=title, log=True, ax=ax)
