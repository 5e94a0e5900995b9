"""Figure functions: data in, Figure out; never shown, never saved; consistent, labelled, colour-blind safe."""

from __future__ import annotations

import re

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from ipm_outcomes import plots


@pytest.fixture(autouse=True)
def no_show_no_save(monkeypatch, tmp_path):
    """Fail if a plot function shows or saves anything."""
    import matplotlib.pyplot as plt

    def forbidden(*args, **kwargs):
        raise AssertionError("plot functions must not show or save")

    monkeypatch.setattr(plt, "show", forbidden)
    monkeypatch.setattr(plt, "savefig", forbidden)
    monkeypatch.setattr(Figure, "savefig", forbidden)
    monkeypatch.chdir(tmp_path)
    yield
    assert list(tmp_path.iterdir()) == []


def _curve(level: float, days: int = 365) -> pd.DataFrame:
    day = np.arange(days + 1)
    est = level * (1 - np.exp(-day / 90))
    return pd.DataFrame({"day": day, "estimate": est, "ci_low": est * 0.95, "ci_high": np.minimum(est * 1.05, 1)})


def _draw(fig: Figure) -> list[tuple[str, str | None]]:
    fig.canvas.draw()
    return plots.figure_texts(fig)


def test_backend_is_agg():
    assert matplotlib.get_backend().lower() == "agg"


def test_attrition_diagram_shows_display_strings_as_count_annotations():
    steps = [
        {"label": "Persons in the extract", "remaining": "5,000", "excluded": None},
        {"label": "Aged 18-64", "remaining": "4,100", "excluded": "900", "excluded_label": "Aged 18-64"},
        {"label": "No red flags", "remaining": "<11", "excluded": "*", "excluded_label": "No red flags"},
    ]
    fig = plots.attrition_diagram(steps, [("Early IPM", "<11"), ("Delayed or no IPM", "*")], title="Flow")
    assert isinstance(fig, Figure)
    counts = [t for t, gid in _draw(fig) if gid == plots.COUNT_GID]
    joined = "\n".join(counts)
    for text in ("n = 5,000", "n = 4,100", "n = 900", "n = <11", "n = *"):
        assert text in joined
    assert len(counts) == 3 + 2 + 2  # main boxes, exclusion boxes, arm boxes


def test_cumulative_incidence_axes_labels_legend_and_risk_table():
    curves = {"early": _curve(0.9), "delayed": _curve(0.8).iloc[:200]}  # delayed truncated at day 199
    risk = {"early": [(0, "859"), (180, "182"), (365, "25")], "delayed": [(0, "1,321"), (180, "<11"), (365, "0")]}
    fig = plots.cumulative_incidence(curves, risk, horizons=[90, 180, 365], title="Early patients returned sooner")
    texts = _draw(fig)
    main = fig.axes[0]
    assert main.get_ylabel() == "Back at work (cumulative incidence)"
    assert "Days since index" in main.get_xlabel()
    assert main.get_title(loc="left") == "Early patients returned sooner"
    assert [t.get_text() for t in main.get_legend().get_texts()] == ["Early IPM", "Delayed or no IPM"]
    colours = [matplotlib.colors.to_hex(line.get_color()).upper() for line in main.get_lines()[:2]]
    assert colours == [plots.OKABE_ITO["blue"], plots.OKABE_ITO["orange"]]
    # The delayed curve stops where it was truncated.
    assert main.get_lines()[1].get_xdata().max() == 199
    at_risk = [t for t, gid in texts if gid == plots.COUNT_GID]
    assert at_risk == ["859", "182", "25", "1,321", "<11", "0"]
    assert main.yaxis.get_major_formatter()(0.5, 0) == "50%"


def test_cumulative_incidence_with_no_curves_says_so():
    fig = plots.cumulative_incidence({"early": _curve(0.9).iloc[:0]}, None)
    assert any("Too few persons" in t for t, _ in _draw(fig))


def test_referral_histogram_marks_grace_period_and_withheld_bins():
    bins = pd.DataFrame({"left": [0, 15, 43], "right": [14, 42, 90], "n": [120.0, 300.0, np.nan], "label": ["120", "300", "<11"]})
    fig = plots.referral_histogram(bins, grace_days=42, title="Half by day 20")
    texts = _draw(fig)
    ax = fig.axes[0]
    heights = [round(p.get_height(), 6) for p in ax.patches if isinstance(p, matplotlib.patches.Rectangle) and p.get_height() > 0
               and p.get_width() > 1 and p.get_facecolor()[3] > 0]
    assert heights == [round(120 / 15 * 7, 6), round(300 / 28 * 7, 6)]  # persons per week
    assert ("<11", plots.COUNT_GID) in texts
    assert any("grace period (day 42)" in t for t, _ in texts)
    assert ax.get_ylabel() == "Persons per week"


def test_forest_marks_the_biased_row_and_null_line():
    rows = pd.DataFrame([
        {"label": "Clone-censor-weight (primary)", "estimate": 0.09, "ci_low": 0.05, "ci_high": 0.14, "text": "+9.0", "style": ""},
        {"label": "Naive (biased: immortal time)", "estimate": 0.2, "ci_low": 0.16, "ci_high": 0.24, "text": "+20.0", "style": "biased"},
        {"label": "Withheld", "estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan, "text": "\u2014", "style": ""},
    ])
    fig = plots.forest(rows, null=0.0, xlabel="Risk difference, percentage points", percent=True, title="Naive overstates")
    ax = fig.axes[0]
    labels = {t.get_text(): t for t in ax.texts}
    assert labels["Naive (biased: immortal time)"].get_style() == "italic"
    markers = [line for line in ax.get_lines() if line.get_marker() in ("D", "o")]
    assert len(markers) == 2  # the withheld row draws nothing
    assert markers[1].get_markerfacecolor() == "white"  # hollow: biased
    assert ax.get_xlabel() == "Risk difference, percentage points"
    log = plots.forest(rows.assign(estimate=[1.3, 1.6, np.nan], ci_low=[1.1, 1.4, np.nan], ci_high=[1.5, 1.8, np.nan]),
                       null=1.0, log=True, xlabel="Hazard ratio")
    assert log.axes[0].get_xscale() == "log"


def test_forest_header_rows():
    rows = pd.DataFrame([{"label": "Sex (interaction p = 0.40)", "header": True},
                         {"label": "Female", "estimate": 0.1, "ci_low": 0.0, "ci_high": 0.2, "text": "+10"}])
    fig = plots.forest(rows, xlabel="x")
    bold = [t for t in fig.axes[0].texts if t.get_text().startswith("Sex")]
    assert bold and bold[0].get_fontweight() == "bold"
    assert len([line for line in fig.axes[0].get_lines() if line.get_marker() == "D"]) == 1


def test_love_plot_threshold_and_order():
    smd = pd.DataFrame({"label": ["Age", "Radiculopathy", "Sex"], "smd_before": [0.05, -0.31, 0.12], "smd_after": [0.01, 0.02, -0.03]})
    fig = plots.love_plot(smd, threshold=0.1, title="Balanced")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Age", "Sex", "Radiculopathy"]  # by |SMD| before
    assert ax.get_xlabel().startswith("Absolute standardized mean difference")
    assert any(line.get_xdata()[0] == 0.1 for line in ax.get_lines() if line.get_linestyle() == "--")


def test_binned_distribution_skips_withheld_bins_and_shades_equipoise():
    bins = {
        "early": pd.DataFrame({"left": [0, 0.3, 0.7], "right": [0.3, 0.7, 1.0], "n": [20.0, 50.0, np.nan]}),
        "delayed": pd.DataFrame({"left": [0, 0.5], "right": [0.5, 1.0], "n": [np.nan, np.nan]}),
    }
    fig = plots.binned_distribution(bins, xlabel="Preference score", ylabel="Share per unit", shade=(0.3, 0.7), shade_label="equipoise")
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["equipoise", "Early IPM"]  # the delayed arm is entirely withheld: not drawn


def test_dose_response_and_qol_means():
    points = pd.DataFrame({
        "delay_category": ["0-14", "15-42", ">180", "0-14", "15-42", ">180"],
        "horizon_days": [180, 180, 180, 365, 365, 365],
        "estimate": [0.7, 0.65, np.nan, 0.8, 0.77, np.nan],
        "ci_low": [0.6, 0.55, np.nan, 0.7, 0.7, np.nan],
        "ci_high": [0.8, 0.75, np.nan, 0.9, 0.85, np.nan],
        "label": ["", "", "n <11", "", "", "n <11"],
    })
    fig = plots.dose_response(points, title="Falls with delay")
    texts = _draw(fig)
    assert ("n <11", plots.COUNT_GID) in texts
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["0-14 days", "15-42 days", ">180 days"]
    means = pd.DataFrame({"instrument": ["odi"] * 4, "horizon_days": [90, 180, 90, 180], "arm": ["early", "early", "delayed", "delayed"],
                          "estimate": [30.0, 28, 33, 32], "ci_low": [29.0, 27, 32, 31], "ci_high": [31.0, 29, 34, 33]})
    fig = plots.qol_means(means, labels={"odi": "ODI (0-100), lower is better"}, title="ODI lower with early IPM")
    assert fig.axes[0].get_title() == "ODI (0-100), lower is better"


def test_an_interval_that_excludes_its_estimate_is_drawn_from_its_bounds():
    """A percentile bootstrap interval can lie wholly on one side of the point estimate (seen with
    10 replicates: estimate 0.956, interval 0.835 to 0.937); the bar spans the interval as given."""
    points = pd.DataFrame({
        "delay_category": ["0-14", "15-42"], "horizon_days": [180, 180],
        "estimate": [0.956, 0.93], "ci_low": [0.835, 0.83], "ci_high": [0.937, 0.96], "label": ["", ""],
    })
    fig = plots.dose_response(points)
    _draw(fig)
    bars = [c for c in fig.axes[0].collections if len(c.get_segments()) == 2]
    assert len(bars) == 1
    first = bars[0].get_segments()[0]
    assert sorted(first[:, 1].tolist()) == pytest.approx([0.835, 0.937])
    means = pd.DataFrame({"instrument": ["odi", "odi"], "horizon_days": [90, 180], "arm": ["early", "early"],
                          "estimate": [30.0, 28.0], "ci_low": [31.0, 27.0], "ci_high": [33.0, 29.0]})
    fig = plots.qol_means(means, labels={"odi": "ODI"})
    _draw(fig)
    bars = [c for c in fig.axes[0].collections if len(c.get_segments()) == 2]
    assert sorted(bars[0].get_segments()[0][:, 1].tolist()) == pytest.approx([31.0, 33.0])


def test_plot_functions_draw_on_a_given_axes():
    fig = Figure()
    ax = fig.add_subplot()
    out = plots.forest(pd.DataFrame([{"label": "a", "estimate": 0.1, "ci_low": 0, "ci_high": 0.2, "text": "x"}]), xlabel="x", ax=ax)
    assert out is fig
    out = plots.love_plot(pd.DataFrame({"label": ["a"], "smd_before": [0.2], "smd_after": [0.05]}), ax=ax)
    assert out is fig


def _tick_boxes(fig, axis="x"):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    ax = fig.axes[0]
    labels = ax.get_xticklabels() if axis == "x" else ax.get_yticklabels()
    return [(t.get_text(), t.get_window_extent(renderer)) for t in labels if t.get_text() and t.get_visible()]


def test_hazard_ratio_ticks_do_not_overlap():
    """0.67 and 0.75 side by side printed as "0.670.75"; ticks are spread so that no two labels touch."""
    frame = pd.DataFrame({"label": ["a", "b", "c"], "estimate": [0.62, 0.7, 2.3], "ci_low": [0.28, 0.6, 1.1],
                          "ci_high": [0.8, 0.85, 4.5], "text": ["", "", ""]})
    boxes = _tick_boxes(plots.forest(frame, null=1.0, log=True, title="t", xlabel="HR"))
    assert len(boxes) >= 3
    for (_, a), (_, b) in zip(boxes, boxes[1:]):
        assert a.x1 < b.x0, [t for t, _ in boxes]


def test_weight_axis_reads_plain_numbers():
    bins = {"early": pd.DataFrame({"left": [0.3, 0.6, 1.2], "right": [0.6, 1.2, 3.0], "n": [20.0, 40.0, 15.0]})}
    fig = plots.binned_distribution(bins, xlabel="w", ylabel="share", log_x=True)
    texts = [t for t, _ in _tick_boxes(fig)]
    minor = [t.get_text() for t in fig.axes[0].get_xminorticklabels() if t.get_text()]
    assert texts and all(re.fullmatch(r"\d+(\.\d+)?", t) for t in texts), texts
    assert minor == []


def test_love_plot_threshold_is_in_the_legend_not_over_the_title():
    frame = pd.DataFrame({"label": ["Age", "Sex"], "smd_before": [0.3, -0.05], "smd_after": [0.02, 0.01]})
    fig = plots.love_plot(frame, threshold=0.1, title="After weighting every covariate is balanced")
    ax = fig.axes[0]
    assert "Balance threshold (0.1)" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert not [t for t in ax.texts if "threshold" in t.get_text()]
    colours = {line.get_label(): matplotlib.colors.to_hex(line.get_color()) for line in ax.get_lines()}
    assert plots.ARM_COLOURS["delayed"].lower() not in {c.lower() for c in colours.values()}


def test_qol_panels_span_at_least_three_mcids():
    """A 1-point difference on a 10-point MCID must not fill the panel."""
    rows = []
    for arm, level in (("early", 31.0), ("delayed", 32.0)):
        for h in (90, 180):
            rows.append({"instrument": "odi", "horizon_days": h, "arm": arm, "estimate": level,
                         "ci_low": level - 0.5, "ci_high": level + 0.5})
    fig = plots.qol_means(pd.DataFrame(rows), labels={"odi": "ODI"}, mcid={"odi": 10.0})
    lo, hi = fig.axes[0].get_ylim()
    assert hi - lo >= 30.0


def _nc_table() -> pd.DataFrame:
    rng = np.random.default_rng(4)
    return pd.DataFrame({"log_rr": rng.normal(0.1, 0.2, 20), "se_log_rr": rng.uniform(0.05, 0.3, 20)})


def test_calibration_effect_draws_the_packages_boundaries_and_no_counts():
    from scipy.stats import norm

    controls = _nc_table()
    estimates = pd.DataFrame({"log_rr": [0.4], "se_log_rr": [0.08]})
    fig = plots.calibration_effect(controls, null_mean=0.1, null_sd=0.15, estimates=estimates, ease=0.1234,
                                   title="Negative controls")
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    z = norm.ppf(0.975)
    trad = lines["Traditional p < 0.05 below the dashed line"]
    npt_x = np.log(trad.get_xdata())
    np.testing.assert_allclose(trad.get_ydata(), np.abs(npt_x) / z, atol=1e-12)
    cal = lines["Calibrated p < 0.05 in the orange area"]
    log_x = np.log(cal.get_xdata())
    # EmpiricalCalibration logRrtoSE: sqrt(max(0, (mu - log x)^2 / z^2 - sigma^2)); calibrated p = 0.05 on it
    np.testing.assert_allclose(cal.get_ydata(), np.sqrt(np.maximum((0.1 - log_x) ** 2 / z**2 - 0.15**2, 0)), atol=1e-12)
    on = cal.get_ydata() > 0
    from ipm_outcomes.calibration import EmpiricalNull, calibrate_p

    np.testing.assert_allclose(calibrate_p(EmpiricalNull(0.1, 0.15, 0), log_x[on], cal.get_ydata()[on]), 0.05, atol=1e-9)
    dots = lines["Negative controls"]
    np.testing.assert_allclose(dots.get_xdata(), np.exp(controls.log_rr))
    np.testing.assert_allclose(dots.get_ydata(), controls.se_log_rr)
    assert ax.get_xscale() == "log"
    texts = [t for t, _gid in _draw(fig)]
    assert "Expected absolute systematic error = 0.12" in texts
    assert all(gid != plots.COUNT_GID for _t, gid in _draw(fig))
    # the only numbers drawn (ticks aside) are alpha and EASE: nothing that could be a count of persons
    numbers = {n for t in texts for n in re.findall(r"\d+(?:\.\d+)?", t)}
    assert numbers <= {"0.05", "0.12"}


def test_calibration_effect_without_a_null_draws_only_the_traditional_boundary():
    fig = plots.calibration_effect(_nc_table(), null_mean=None, null_sd=None)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert not any(label.startswith("Calibrated") for label in labels)
    assert "Traditional p < 0.05 below the dashed line" in labels


def test_calibrated_intervals_pairs_each_contrast():
    rows = pd.DataFrame({"label": ["Return to work", "Surgery"], "rr": [1.5, 0.8], "ci_low": [1.3, 0.6],
                         "ci_high": [1.7, 1.1], "calibrated_rr": [1.4, np.nan], "calibrated_ci_low": [0.9, np.nan],
                         "calibrated_ci_high": [2.1, np.nan]})
    fig = plots.calibrated_intervals(rows, title="Calibrated and uncalibrated")
    texts = [t for t, _gid in _draw(fig)]
    for text in ("Return to work", "Surgery", "1.50 (1.30 to 1.70)", "1.40 (0.90 to 2.10)", "not calibrated"):
        assert text in texts
    assert texts.count("calibrated") == 2 and texts.count("uncalibrated") == 2
    assert fig.axes[0].get_xscale() == "log"
