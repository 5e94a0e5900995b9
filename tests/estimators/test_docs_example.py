"""docs/estimators.md runs as written, and its worked example finds what it says it finds."""

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "estimators.md"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.fixture(scope="module")
def example():
    blocks = _python_blocks(DOC.read_text())
    assert len(blocks) >= 5
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)  # noqa: S102 - the page's own code
    return namespace


def test_every_block_runs_and_the_ipw_estimate_recovers_the_simulated_effect(example):
    diff = example["ipw"].summary.set_index("measure").loc["mean_difference"]
    assert diff.ci_low < 1500 < diff.ci_high  # the truth the page simulates
    assert example["naive"] < diff.ci_low  # the confounded comparison is outside it, as the page says
    assert example["naive"] == pytest.approx(-1700, abs=100)
    assert diff.estimate == pytest.approx(1360, abs=20) and diff.ci_low == pytest.approx(850, abs=20)
    assert diff.ci_high == pytest.approx(1880, abs=20)


def test_the_example_shows_declared_categoricals_and_named_arms(example):
    summary = example["design"].summary()
    assert set(summary[summary.source == "region"].kind) == {"categorical"}
    lm = example["lm"]
    assert set(lm.summary.contrast.dropna()) == {"trained vs not trained"}
    assert lm.bootstrap_.n_replicates == 50 and lm.bootstrap_.failed == 0
