"""docs/calibration.md runs as written, and its worked example finds what it says it finds."""

import re
from pathlib import Path

import numpy as np
import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "calibration.md"


@pytest.fixture(scope="module")
def example():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 4
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)  # noqa: S102 - the page's own code
    return namespace


def test_the_worked_example_says_what_it_finds(example):
    cal, few, table = example["cal"], example["few"], example["table"].set_index("outcome")
    text = DOC.read_text()
    assert f"`{cal.reason_}`" in text and f"`{few.reason_}`" in text
    assert cal.reason_ == "calibrated on 21 of 24 negative controls (3 had no events in an arm)"
    null = cal.null_
    assert f"mean {null.mean:.3f} (standard error {null.mean_se:.3f}) and spread {null.sd:.3f} ({null.sd_se:.3f})" in text
    assert abs(null.mean - 0.1) < 2 * null.mean_se and abs(null.sd - 0.15) < 2 * null.sd_se
    assert f"EASE is {cal.ease_:.3f}, which passes" in text and cal.ease_passes_
    rtw, surgery = table.loc["return_to_work"], table.loc["lumbar_surgery"]
    assert (f"1.35 ({rtw.ci_low:.2f} to {rtw.ci_high:.2f}, p < 0.001) becomes {rtw.calibrated_rr:.2f} "
            f"({rtw.calibrated_ci_low:.2f} to {rtw.calibrated_ci_high:.2f}), calibrated\np = {rtw.calibrated_p:.2f}") in text
    assert rtw.p < 0.001 and rtw.calibrated_ci_low < 1 < rtw.calibrated_ci_high
    assert (f"{surgery.rr:.2f} ({surgery.ci_low:.2f} to {surgery.ci_high:.2f}), becomes {surgery.calibrated_rr:.2f} "
            f"({surgery.calibrated_ci_low:.2f} to {surgery.calibrated_ci_high:.2f})") in text
    assert few.calibrate(example["contrasts"], log_rr="log_hr", se="se_log_hr").calibrated_rr.isna().all()


def test_the_example_draws_both_figures(example):
    assert example["effect"].axes and example["intervals"].axes
    assert np.isfinite(example["cal"].ease_)
