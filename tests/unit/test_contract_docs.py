"""data/README.md documents the contract exactly: its generated section is what contract.py renders now."""

from __future__ import annotations

from pathlib import Path

from ipm_outcomes.contract import (
    DATA_DICTIONARY_BEGIN,
    DATA_DICTIONARY_END,
    MEDICAL_CLAIM_DIAGNOSIS_COLUMNS,
    PRO_RANGES,
    TABLES,
    render_data_dictionary,
)
from ipm_outcomes.validation import RULES, Problem

README = Path(__file__).parents[2] / "data" / "README.md"
REGENERATE = (
    "data/README.md is out of date with src/ipm_outcomes/contract.py; regenerate its dictionary with: "
    ".venv/bin/python -c \"import re, pathlib; from ipm_outcomes.contract import *; p = pathlib.Path('data/README.md'); "
    "t = p.read_text(); i = t.index(DATA_DICTIONARY_BEGIN); j = t.index(DATA_DICTIONARY_END) + len(DATA_DICTIONARY_END); "
    "p.write_text(t[:i] + render_data_dictionary().rstrip('\\n') + t[j:])\""
)


def generated_section(text: str) -> str:
    start = text.index(DATA_DICTIONARY_BEGIN)
    end = text.index(DATA_DICTIONARY_END) + len(DATA_DICTIONARY_END)
    return text[start:end] + "\n"


def test_readme_dictionary_is_the_rendered_contract():
    assert generated_section(README.read_text()) == render_data_dictionary(), REGENERATE


def test_every_table_and_column_is_documented():
    text = README.read_text()
    for table in TABLES:
        assert f"### `{table.name}` ({'required' if table.required else 'optional'}" in text
        assert f"Grain: {table.grain}." in text
        for column in table.columns:
            assert f"| `{column.name}` | {column.type} | {'yes' if column.nullable else 'no'} |" in text
            if column.allowed:
                assert ", ".join(f"`{v}`" for v in column.allowed) in text
    for column in MEDICAL_CLAIM_DIAGNOSIS_COLUMNS:
        assert f"| `{column.name}` | {column.type} |" in text
    for instrument, (lo, hi) in PRO_RANGES.items():
        assert f"| `{instrument}` | {lo:g} | {hi:g} |" in text


def test_every_rule_and_report_field_is_documented():
    text = README.read_text()
    for rule in RULES:
        assert f"| `{rule}` |" in text
    for field in Problem.__dataclass_fields__:
        assert f"`{field}`" in text
