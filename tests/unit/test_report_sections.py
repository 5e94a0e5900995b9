"""The report split by section renders exactly the report the single builder rendered.

``tests/fixtures/report_golden/`` holds, for four cases (the small and tiny results fixtures, an empty
cohort, no early persons), the HTML, every CSV table and the data of every figure as rendered by the code
before issue 15 split ``report.py`` into one module per section (``make_report_golden.py`` made them).
Today's code must render the same bytes: any change of the report's content fails here, and a deliberate
one is recorded by running that script again and reviewing its diff.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "report_golden"
sys.path.insert(0, str(GOLDEN))
import make_report_golden  # noqa: E402


@pytest.mark.parametrize("case", sorted(make_report_golden.CASES))
def test_the_report_is_byte_identical_to_the_stored_copy(case, tmp_path):
    html, record = make_report_golden.render_recorded(make_report_golden.results_for(case, tmp_path), tmp_path / "report")
    stored = json.loads((GOLDEN / f"{case}.json").read_text(encoding="utf-8"))
    assert record["table_order"] == stored["table_order"]
    assert record["figure_order"] == stored["figure_order"]
    for name, text in stored["tables"].items():
        assert record["tables"][name] == text, f"table {name} differs"
    for name, figure in stored["figures"].items():
        assert record["figures"][name] == figure, f"figure {name} is drawn from other data"
    assert (record["verdict"], record["withheld_cells"]) == (stored["verdict"], stored["withheld_cells"])
    assert html == (GOLDEN / f"{case}.html").read_text(encoding="utf-8")
