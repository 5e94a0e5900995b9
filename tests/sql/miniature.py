"""Hand-made miniature extracts, written straight into the raw schema, for exact-row cohort tests.

Dates are given as day offsets from :data:`BASE` (the intended index date of most test persons) or as
``datetime.date``. Codes are written normalised, as ingest would store them.

    ex = Extract()
    ex.person("p1", birth_year=1980)                      # enrolled BASE-500 .. BASE+500
    ex.claim("p1", 0, "M54.50")                           # lbp diagnosis on day 0 -> index
    ex.claim("p1", 10, "M54.50", hcpcs="64483")           # IPM procedure on day 10
    marts = ex.build(tmp_path)
    marts.cohort_row("p1")["days_to_referral"] == 10
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ipm_outcomes import cohort, contract, db
from ipm_outcomes.spec import StudySpec, packaged_spec_path, spec_from_dict

BASE = dt.date(2022, 6, 15)

Day = int | dt.date


def day(offset: Day, base: dt.date = BASE) -> dt.date:
    """A date from an offset in days from ``base`` (dates pass through)."""
    return offset if isinstance(offset, dt.date) else base + dt.timedelta(days=offset)


def norm(code: str | None) -> str | None:
    return None if code is None else code.replace(".", "").strip().upper()


def spec_with(overrides: dict[str, object] | None = None) -> StudySpec:
    """The packaged default spec with dotted-key overrides, e.g. {"exposure.grace_period_days": 28}."""
    path = packaged_spec_path()
    with open(path, "rb") as handle:
        data = tomllib.load(handle)
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, last = dotted.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    return spec_from_dict(data, source=path)


@dataclass
class Marts:
    """The four marts of a build as DataFrames, plus the build summary."""

    cohort: pd.DataFrame
    rtw: pd.DataFrame
    qol: pd.DataFrame
    attrition: pd.DataFrame
    eligibility: pd.DataFrame  # intermediate.person_eligibility
    summary: cohort.CohortSummary
    db_path: Path

    def cohort_row(self, person_id: str) -> dict:
        rows = self.cohort[self.cohort.person_id == person_id]
        assert len(rows) == 1, f"{person_id}: expected one cohort row, found {len(rows)}"
        return _plain(rows.iloc[0].to_dict())

    def in_cohort(self, person_id: str) -> bool:
        return bool((self.cohort.person_id == person_id).any())

    def excluded_by(self, person_id: str) -> str | None:
        rows = self.eligibility[self.eligibility.person_id == person_id]
        assert len(rows) == 1, f"{person_id}: not among persons with an lbp diagnosis"
        value = rows.iloc[0]["excluded_by"]
        return None if pd.isna(value) else value

    def rtw_row(self, person_id: str) -> dict | None:
        rows = self.rtw[self.rtw.person_id == person_id]
        assert len(rows) <= 1
        return None if rows.empty else _plain(rows.iloc[0].to_dict())

    def mart(self, name: str) -> pd.DataFrame:
        """Any mart of the build (``marts.<name>``), in key order."""
        con = db.connect(self.db_path, read_only=True)
        try:
            return con.execute(f"select * from marts.{name} order by all").df()
        finally:
            con.close()

    def qol_rows(self, person_id: str, instrument: str) -> list[dict]:
        rows = self.qol[(self.qol.person_id == person_id) & (self.qol.instrument == instrument)]
        return [_plain(r) for r in rows.sort_values("horizon_days").to_dict("records")]


def _plain(row: dict) -> dict:
    """NaN/NaT/pd.NA -> None, numpy scalars -> Python, Timestamps -> date, for exact comparisons."""
    out = {}
    for key, value in row.items():
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            out[key] = None
        elif isinstance(value, pd.Timestamp):
            out[key] = value.date()
        elif hasattr(value, "item"):
            out[key] = value.item()
        else:
            out[key] = value
    return out


@dataclass
class Extract:
    """Rows for each raw table, added person by person."""

    eligibility: list[tuple] = field(default_factory=list)
    medical_claim: list[tuple] = field(default_factory=list)
    pharmacy_claim: list[tuple] = field(default_factory=list)
    ndc_reference: list[tuple] = field(default_factory=list)
    ehr_encounter: list[tuple] = field(default_factory=list)
    ehr_pro: list[tuple] = field(default_factory=list)
    ehr_work_status: list[tuple] = field(default_factory=list)
    _claims: int = 0

    def person(
        self,
        person_id: str,
        *,
        birth_year: int = 1980,
        gender: str = "female",
        spans: tuple[tuple[Day, Day], ...] = ((-500, 500),),
        payer: str | tuple[str, ...] = "commercial",
        death: Day | None = None,
    ) -> Extract:
        payers = (payer,) * len(spans) if isinstance(payer, str) else payer
        for (start, end), payer_type in zip(spans, payers, strict=True):
            self.eligibility.append(
                (
                    person_id,
                    gender,
                    birth_year,
                    None if death is None else day(death),
                    day(start),
                    day(end),
                    payer_type,
                    "MA",
                )
            )
        return self

    def claim(
        self,
        person_id: str,
        on: Day,
        *diagnoses: str,
        hcpcs: str | None = None,
        taxonomy: str | None = None,
        claim_type: str = "professional",
        allowed: float | None = None,
        pos: str | None = "11",
    ) -> Extract:
        """One claim line on ``on`` with the given diagnoses (positions 1..n), in place of service ``pos``."""
        self._claims += 1
        claim_id = f"c{self._claims}"
        date = day(on)
        self.medical_claim.append(
            (
                claim_id,
                1,
                person_id,
                claim_type,
                date,
                date,
                pos,
                None,
                norm(taxonomy),
                norm(hcpcs),
                None,
                allowed,
                None if allowed is None else allowed * 0.8,
                tuple(norm(code) for code in diagnoses or ("Z0000",)),
            )
        )
        return self

    def encounter(
        self,
        person_id: str,
        on: Day,
        taxonomy: str | None = None,
        diagnosis: str | None = None,
        encounter_type: str = "office",
    ) -> Extract:
        self._claims += 1
        self.ehr_encounter.append(
            (person_id, f"e{self._claims}", day(on), encounter_type, norm(taxonomy), norm(diagnosis))
        )
        return self

    def pro(self, person_id: str, on: Day, instrument: str, score: float) -> Extract:
        self.ehr_pro.append((person_id, day(on), instrument, score))
        return self

    def work(self, person_id: str, on: Day, status: str) -> Extract:
        self.ehr_work_status.append((person_id, day(on), status))
        return self

    def fill(
        self, person_id: str, on: Day, ndc: str, quantity: float, days_supply: int, allowed: float | None = None
    ) -> Extract:
        self._claims += 1
        self.pharmacy_claim.append(
            (f"rx{self._claims}", 1, person_id, day(on), ndc, quantity, days_supply, allowed, None)
        )
        return self

    def drug(self, ndc: str, ingredient: str, strength: float, is_opioid: bool, mme_factor: float | None) -> Extract:
        self.ndc_reference.append((ndc, ingredient, strength, "mg", is_opioid, mme_factor))
        return self

    # -- writing and building ------------------------------------------------------------------

    def write(self, db_path: Path) -> Path:
        con = db.connect(db_path)
        try:
            # diagnosis_code_1..N as wide as the claim with the most diagnoses, padded with nulls
            positions = max([len(contract.DEFAULT_DIAGNOSIS_POSITIONS)] + [len(c[-1]) for c in self.medical_claim])
            contract.create_empty_raw_tables(con, range(1, positions + 1))
            tables = {
                "eligibility": self.eligibility,
                "medical_claim": [(*c[:-1], *c[-1], *(None,) * (positions - len(c[-1]))) for c in self.medical_claim],
                "pharmacy_claim": self.pharmacy_claim,
                "ndc_reference": self.ndc_reference,
                "ehr_encounter": self.ehr_encounter,
                "ehr_pro": self.ehr_pro,
                "ehr_work_status": self.ehr_work_status,
            }
            for table, rows in tables.items():
                if rows:
                    marks = ", ".join("?" for _ in rows[0])
                    con.executemany(f"insert into raw.{table} values ({marks})", rows)
        finally:
            con.close()
        return db_path

    def build(
        self,
        tmp_path: Path,
        spec: StudySpec | None = None,
        overrides: dict[str, object] | None = None,
        name: str = "mini.duckdb",
    ) -> Marts:
        db_path = self.write(Path(tmp_path) / name)
        spec = spec or spec_with(overrides)
        summary = cohort.build(spec, db_path)
        return read_marts(db_path, summary)


def read_marts(db_path: Path, summary: cohort.CohortSummary) -> Marts:
    con = db.connect(db_path, read_only=True)
    try:
        frames = {
            name: con.execute(f"select * from {table} order by all").df()
            for name, table in {
                "cohort": "marts.cohort",
                "rtw": "marts.rtw_outcome",
                "qol": "marts.qol_outcome",
                "attrition": "marts.attrition",
                "eligibility": "intermediate.person_eligibility",
            }.items()
        }
    finally:
        con.close()
    frames["attrition"] = frames["attrition"].sort_values(["population", "step_order"]).reset_index(drop=True)
    return Marts(**frames, summary=summary, db_path=db_path)
