"""The banner above the title: where the data come from (synthetic, or the extract's name and period)."""

from __future__ import annotations

from ..context import ReportContext
from ..display import Section


def build(ctx: ReportContext) -> Section:
    """Where the data come from, for the banner: synthetic (the generator's marker) or the extract's name
    and the period of its index dates, from the provenance the analysis recorded."""
    src = ctx.data.provenance.get("data_source") or {}
    period = src.get("index_period")
    when = f"index dates {period[0]} to {period[1]}" if period else "period not recorded"
    if src.get("synthetic"):
        return Section({"synthetic": True,
                        "text": "Synthetic data: this report was made from a generated extract (ipm-outcomes synth). "
                                "Its numbers describe no real patients and must not be used for decisions.",
                        "page": "SYNTHETIC DATA — no real patients"})
    if src.get("extract"):
        return Section({"synthetic": False, "text": f"Data: extract “{src['extract']}”, {when}.", "page": ""})
    return Section({"synthetic": False, "text": "Data source: not recorded in these results.", "page": ""})
