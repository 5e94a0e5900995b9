"""Synthetic claims + EHR extract with known truth.

``generate(out_dir, persons=..., seed=...)`` writes one file per contract table (see
:mod:`ipm_outcomes.contract`) plus ``truth.json`` (true marginal contrasts of early vs delayed
referral to Interventional Pain Medicine, IPM) and ``truth_persons.parquet`` (what was planted for
each person). The data are built so that a naive analysis is wrong:

* **Confounding by indication.** A severity score made of *measured* baseline covariates
  (radiculopathy at index, opioid use in the 90 days before index, depression, anxiety, sleep
  disorder, Charlson conditions, prior lumbar imaging) and workers' compensation raises the IPM
  referral hazard and lowers the return-to-work (RTW) hazard and the PROMIS physical-function
  recovery. Because every confounder is recorded in the claims, adjusted estimators can recover the
  truth; crude comparisons cannot.
* **Referral stops at RTW.** In the observed world a person who returns to work before their
  natural referral time is never referred, so quick recoverers end up "delayed" (the immortal-time
  trap of ever/never or fixed-window comparisons).
* **Traps in the codes.** Dotted and undotted ICD-10-CM, legacy ``M54.5`` after 2021-10-01 (not a
  low-back-pain code then), back codes outside the value set (``M54.9``, ``M54.6``, ``M54.2``),
  non-IPM injections (20610, 64450) and non-IPM taxonomies (general anaesthesiology, PM&R), EHR-only
  IPM visits, hyphenated 10-digit NDCs, enrolment gaps either side of the 30-day bridge, work-status
  records outside the [-7, +14] window, death and disenrolment during follow-up.

The truth (``truth.json``) is simulated, not derived by formula: every eligible person in the RTW
population is re-simulated many times under "early" (IPM within the 42-day grace period, referral
day drawn from the person's own natural referral distribution truncated to days 0-42) and "delayed"
(no IPM within 42 days; natural referral hazard switched off until day 43, natural afterwards), with
common random numbers, uncensored. Early referral multiplies the RTW hazard by ``effect_rtw_hr``
from the referral day on and adds ``effect_promis_pf`` T-score points to PROMIS physical function
(phased in over 30 days). A later referral keeps a linearly shrinking share of the benefit, all of
it at day 42 and none from day 180 (a "window of opportunity"; see ``STRATEGY_DEFINITIONS``). With
``effect_rtw_hr=1`` and ``effect_promis_pf=0`` every true contrast is exactly 0 while the
confounding, and so the bias of a naive comparison, is unchanged.

Costs (issue 16): in the follow-up year of each eligible person the allowed amounts come from a cost
process per person-day (covariates, and a planted effect of referral, ``cost_effects``) that runs until
death or day 365 whatever the enrolment; disenrolment only hides its claims. ``truth.json`` gives the
true mean ``cost_total_365`` and ``cost_lbp_365`` per strategy (see ``COST_DEFINITIONS``).

Everything is vectorised numpy; tables are written chunk by chunk with pyarrow (Parquet or CSV), and
every random stream is keyed on (seed, stream, chunk), so the same seed gives byte-identical files.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .contract import DIAGNOSIS_COLUMN_PREFIX, TABLE_FILE_SUFFIXES, TABLES_BY_NAME
from .errors import IpmError
from .spec import load_spec
from .vocabulary import INSTRUMENTS as VOCABULARY_INSTRUMENTS

__all__ = ["DATA_END", "DATA_START", "EXTENDED", "FILE_FORMATS", "Mechanisms", "SynthSummary", "generate"]

FILE_FORMATS = ("csv", "parquet")

#: The extract's calendar window: nothing is dated outside it; DATA_END is "the end of data".
DATA_START = date(2019, 1, 1)
DATA_END = date(2024, 12, 31)
#: ICD-10-CM FY2022 split M54.5 into M54.50/M54.51/M54.59; M54.5 is an lbp code only before this day.
LEGACY_M545_END = date(2021, 10, 1)

# Cohort and exposure rules the planted data are built around: the shipped study spec's, read from it
# (a spec of one's own that changes them analyses the same extract under other rules, as a site would).
_SHIPPED = load_spec()
GRACE_DAYS = _SHIPPED.exposure.grace_period_days
FOLLOWUP_DAYS = _SHIPPED.cohort.followup_days
WASHOUT_DAYS = _SHIPPED.cohort.washout_days
GAP_BRIDGE_DAYS = _SHIPPED.cohort.enrollment_gap_days
AGE_MIN, AGE_MAX = _SHIPPED.cohort.age_min, _SHIPPED.cohort.age_max
RTW_WINDOW = tuple(_SHIPPED.outcomes.rtw.population_window_days)
#: A referral on day r > GRACE_DAYS keeps a fraction (LATE_BENEFIT_END - r) / (LATE_BENEFIT_END - 42)
#: of the log hazard ratio (and of the PROMIS-PF gain); from day LATE_BENEFIT_END on it gives none.
LATE_BENEFIT_END = 180
HORIZONS = tuple(_SHIPPED.analysis.horizons_days)


@dataclass(frozen=True)
class Mechanisms:
    """Optional features of real referral processes (issue 19). The defaults are the classic world.

    Attributes
    ----------
    post_rtw_referral_rate
        After a person is back at work, referral still happens at this multiple of the natural rate
        (0: referral stops at RTW). Such a referral comes after the outcome and does not change it.
    referral_halving_day
        The referral hazard halves from this day after index on (None: constant).
    ehr_first_contact_share
        Share of first IPM contacts recorded only as an EHR encounter with an IPM taxonomy (the rest
        are an IPM visit claim, sometimes followed by a procedure, or the procedure itself).
    logistic_referral
        The daily referral probability is logistic-linear in recorded baseline covariates
        (radiculopathy, opioid use, depression, workers' compensation, age; everyone is referable),
        so a main-effects pooled-logistic referral model is correctly specified. Otherwise: a cure
        mixture (referable or not) with an exponential time to referral, both driven by severity.
    competing_rate_scale
        Multiplies the long-term-disability hazard (the main competing event).
    disenrolment_within_days
        Disenrolling persons (30%) leave 20 to this many days after index.
    pro_referral_drivers
        The daily referral probability also depends on the PROMIS physical function and NRS pain
        scores of the baseline PRO visit (85% of EHR-linked persons, on a day in [index-25, index]): the
        referring clinician sees them. A person's function beyond what severity and age say also
        shortens the time to RTW, so the recorded scores are confounders. Needs ``logistic_referral``.
    pro_at_first_contact
        Share of first IPM contacts at which the PRO instruments are recorded again (the pain
        clinic's intake questionnaire), on the contact day.
    work_status_at_first_contact
        Share of first IPM contacts at which the work status is recorded (the intake form): a person
        still off work on the contact day gets an absence record that day.
    """

    post_rtw_referral_rate: float = 0.0
    referral_halving_day: int | None = None
    ehr_first_contact_share: float = 0.2
    logistic_referral: bool = False
    competing_rate_scale: float = 1.0
    disenrolment_within_days: int = 1000
    pro_referral_drivers: bool = False
    pro_at_first_contact: float = 0.0
    work_status_at_first_contact: float = 0.0

    def __post_init__(self):
        if self.pro_referral_drivers and not self.logistic_referral:
            raise IpmError("Mechanisms(pro_referral_drivers=True) needs logistic_referral=True")
        if not 0.0 <= self.pro_at_first_contact <= 1.0:
            raise IpmError(f"pro_at_first_contact={self.pro_at_first_contact!r}: must be a share in [0, 1]")


#: The mechanisms of issue 19: referral after RTW at 0.3 times the rate, the referral hazard
#: halving after four months, a quarter of first contacts EHR-only, a daily referral probability
#: logistic-linear in recorded baseline covariates including the baseline PROMIS-PF and pain scores,
#: competing events in about 10% and disenrolment in about 25% of the RTW population, and the PRO
#: instruments recorded again at most first IPM contacts (intake questionnaires).
EXTENDED = Mechanisms(
    post_rtw_referral_rate=0.3,
    referral_halving_day=120,
    ehr_first_contact_share=0.25,
    logistic_referral=True,
    competing_rate_scale=2.2,
    disenrolment_within_days=420,
    pro_referral_drivers=True,
    pro_at_first_contact=0.8,
)

N_DX = 4  # diagnosis_code_1 .. diagnosis_code_4
CHUNK_PERSONS = 50_000
_ID_BLOCK = 10**8  # identifiers per chunk (claim, pharmacy claim and encounter numbers)
_MAX_WORKERS = 4
_MC_TARGET = 400_000  # potential-outcome draws aimed at per strategy in the truth simulation
_MIN_DRAWS, _MAX_DRAWS = 20, 1000
_BLOCK_CELLS = 1_000_000  # persons x draws simulated at once in the truth simulation

_EPOCH = date(1970, 1, 1)
_PRO_VISITS_OWN_ENCOUNTER = 7  # PRO visit rows with an encounter of their own (baseline, horizons, extras)


def _dn(d: date) -> int:
    return (d - _EPOCH).days


D_START, D_END, D_LEGACY = _dn(DATA_START), _dn(DATA_END), _dn(LEGACY_M545_END)
NEVER = 10**6  # relative day meaning "does not happen"
NO_DEATH = 10**7  # absolute day number for "alive through the data"

EXCLUSION_REASONS = (
    "no lbp claim",
    "not a new episode",
    "insufficient enrollment",
    "age",
    "red flag",
    "prior IPM",
)

# ----------------------------------------------------------------------------------------------
# Code books. Codes are stored in their canonical (dotted) form; claims write them dotted or not.
# ----------------------------------------------------------------------------------------------

# Low back pain (the study's lbp value set). Index claims use only codes whose meaning is not in
# doubt (radicular vs not), so that "radiculopathy at index" has one answer.
LBP_LEGACY = "M54.5"
LBP_LOW_BACK_PAIN_FY22 = ("M54.50", "M54.59", "M54.51")  # from 2021-10-01
LBP_NONRADIC = (
    "M51.26", "M51.27", "M51.86", "M51.87", "M48.061", "M47.816", "M47.817",
    "M43.16", "M43.17", "M53.3", "M53.86", "M53.87", "S33.5XXA", "S39.012A",
)  # fmt: skip
LBP_RADIC = ("M54.16", "M54.17", "M51.16")
LBP_FOLLOWUP_EXTRA = (
    "M54.30", "M54.31", "M54.32", "M54.40", "M54.41", "M54.42", "M51.17", "M48.062", "M48.07",
    "M47.26", "M47.27",
)  # fmt: skip
LBP_FY2025 = ("M51.360", "M51.369", "M51.370", "M51.379")  # valid from 2024-10-01 only
LBP_ALL = (LBP_LEGACY,) + LBP_LOW_BACK_PAIN_FY22 + LBP_NONRADIC + LBP_RADIC + LBP_FOLLOWUP_EXTRA + LBP_FY2025
# Back and pain codes outside the lbp value set: a naive "M54%" or "back pain" match is wrong.
NEAR_MISS_DX = ("M54.9", "M54.6", "M54.2", "M54.12", "G89.29", "G89.4", "M25.561", "M25.511")

RED_FLAGS_ANY = (
    "C18.9", "C34.90", "C79.51", "S32.009A", "S32.10XA", "S22.009A", "M48.50XA", "M80.08XA",
    "M46.26", "M46.46", "G06.1", "A18.01", "G83.4",
)  # fmt: skip
RED_FLAGS_FEMALE = ("C50.911",)
RED_FLAGS_PREGNANCY = ("Z34.00", "Z33.1", "Z3A.24", "O09.90")
RED_FLAGS_MALE = ("C61",)

# Chronic conditions: (name, ICD-10-CM, prevalence at age 45, counts toward Charlson).
# Charlson codes follow Quan et al. 2005 (Med Care 43:1130); malignancy is left out because every
# C code is a red flag here.
CONDITIONS = (
    ("mi", "I25.2", 0.010, True),
    ("chf", "I50.9", 0.008, True),
    ("pvd", "I73.9", 0.008, True),
    ("cvd", "I63.9", 0.008, True),
    ("dementia", "F03.90", 0.002, True),
    ("copd", "J44.9", 0.035, True),
    ("rheumatic", "M06.9", 0.012, True),
    ("pud", "K27.9", 0.008, True),
    ("mild_liver", "K76.0", 0.030, True),
    ("diabetes", "E11.9", 0.070, True),
    ("diabetes_cc", "E11.22", 0.015, True),
    ("hemiplegia", "G81.90", 0.002, True),
    ("renal", "N18.4", 0.008, True),
    ("severe_liver", "K76.6", 0.002, True),
    ("hiv", "B20", 0.003, True),
    ("depression", "F32.9", 0.120, False),
    ("anxiety", "F41.1", 0.100, False),
    ("sleep", "G47.00", 0.070, False),
    ("hypertension", "I10", 0.220, False),
    ("hyperlipidemia", "E78.5", 0.180, False),
    ("obesity", "E66.9", 0.120, False),
    ("asthma", "J45.909", 0.060, False),
    ("gerd", "K21.9", 0.090, False),
    ("hypothyroid", "E03.9", 0.050, False),
)
_COND = {name: k for k, (name, *_rest) in enumerate(CONDITIONS)}
ACUTE_DX = (
    "J06.9", "J02.9", "Z00.00", "Z00.01", "J20.9", "B34.9", "R10.9", "N39.0", "L30.9", "H10.9",
    "R53.83", "Z23", "R07.9", "K59.00", "R42", "G43.909", "M25.561", "M25.511", "M54.2", "M54.9",
    "M54.6", "S93.401A", "L70.0", "Z01.419",
)  # fmt: skip

ICD = tuple(
    dict.fromkeys(
        LBP_ALL + NEAR_MISS_DX + RED_FLAGS_ANY + RED_FLAGS_FEMALE + RED_FLAGS_PREGNANCY + RED_FLAGS_MALE
        + tuple(c[1] for c in CONDITIONS) + ACUTE_DX
    )
)  # fmt: skip

IPM_TAXONOMIES = ("208VP0014X", "208VP0000X", "207LP2900X", "2081P2900X", "2084P2900X")
TAXONOMIES = IPM_TAXONOMIES + (
    "207Q00000X",  # family medicine
    "207R00000X",  # internal medicine
    "363L00000X",  # nurse practitioner
    "363A00000X",  # physician assistant
    "207P00000X",  # emergency medicine
    "225100000X",  # physical therapist
    "2085R0202X",  # diagnostic radiology
    "207X00000X",  # orthopaedic surgery
    "208100000X",  # physical medicine & rehabilitation (not its pain subspecialty)
    "207L00000X",  # anesthesiology (not its pain subspecialty)
    "111N00000X",  # chiropractor
    "282N00000X",  # general acute care hospital
    "261QA1903X",  # ambulatory surgical center
    "291U00000X",  # clinical medical laboratory
)
_T = {code: k for k, code in enumerate(TAXONOMIES)}
T_PCP = np.array([_T["207Q00000X"], _T["207R00000X"], _T["363L00000X"], _T["363A00000X"]])
T_IPM = np.arange(len(IPM_TAXONOMIES))
_ORG_TAXONOMIES = {"282N00000X", "261QA1903X", "291U00000X"}
NPI_POOL = 400  # providers per taxonomy

POS_CODES = ("11", "02", "22", "23", "21", "24", "81", "19")
_P = {code: k for k, code in enumerate(POS_CODES)}

# CPT/HCPCS with a typical allowed amount (USD) used as the centre of a log-normal price.
HCPCS_PRICES = {
    "99202": 75, "99203": 110, "99204": 165, "99212": 55, "99213": 90, "99214": 130, "99215": 180,
    "99244": 190, "99283": 260, "99284": 420, "99285": 640, "99395": 160, "99396": 170, "99222": 210,
    "G0439": 120, "36415": 4, "80053": 11, "85025": 8, "83036": 10, "80061": 14, "81003": 3,
    "93000": 17, "71046": 30, "90471": 20, "90686": 22, "97110": 30, "97140": 28, "97112": 32,
    "97161": 95, "97530": 34, "98940": 30, "72148": 410, "72131": 300, "72100": 40,
    "62323": 210, "62321": 200, "64483": 240, "64484": 90, "64493": 200, "64494": 110,
    "64635": 480, "20552": 55, "64490": 190, "20610": 60, "20550": 50, "64450": 70,
}  # fmt: skip
HCPCS = tuple(HCPCS_PRICES)
_H = {code: k for k, code in enumerate(HCPCS)}
IPM_PROCEDURES = ("62323", "64483", "64493", "64635", "20552", "62321")
MODIFIERS = ("25", "GP", "RT", "LT", "50", "26", "59")
_M = {code: k for k, code in enumerate(MODIFIERS)}

# Drug reference: illustrative NDCs in the 11-digit 5-4-2 billing form. MME conversion factors are
# the CDC 2022 clinical practice guideline values (oxycodone 1.5, hydrocodone 1, tramadol 0.2,
# codeine 0.15).
NDC_ROWS = (
    # ndc, ingredient, strength_per_unit, unit, is_opioid, mme factor, units/day, price/unit
    ("00406055201", "oxycodone hydrochloride", 5.0, "mg", True, 1.5, 4, 0.45),
    ("00406055301", "oxycodone hydrochloride", 10.0, "mg", True, 1.5, 3, 0.75),
    ("00406051201", "oxycodone hydrochloride and acetaminophen", 5.0, "mg", True, 1.5, 4, 0.40),
    ("00406012301", "hydrocodone bitartrate and acetaminophen", 5.0, "mg", True, 1.0, 4, 0.30),
    ("00406036701", "hydrocodone bitartrate and acetaminophen", 10.0, "mg", True, 1.0, 4, 0.40),
    ("65162062710", "tramadol hydrochloride", 50.0, "mg", True, 0.2, 4, 0.15),
    ("00093005001", "acetaminophen and codeine phosphate", 30.0, "mg", True, 0.15, 4, 0.20),
    ("53746046401", "ibuprofen", 800.0, "mg", False, None, 3, 0.10),
    ("68462019001", "naproxen", 500.0, "mg", False, None, 2, 0.12),
    ("29300012510", "meloxicam", 15.0, "mg", False, None, 1, 0.08),
    ("00591565601", "cyclobenzaprine hydrochloride", 10.0, "mg", False, None, 3, 0.10),
    ("59762502401", "gabapentin", 300.0, "mg", False, None, 3, 0.12),
    ("68180051301", "lisinopril", 10.0, "mg", False, None, 1, 0.05),
    ("00093104801", "metformin hydrochloride", 500.0, "mg", False, None, 2, 0.05),
    ("00378395077", "atorvastatin calcium", 20.0, "mg", False, None, 1, 0.08),
    ("16729021101", "sertraline hydrochloride", 50.0, "mg", False, None, 1, 0.07),
    ("00093310905", "amoxicillin", 500.0, "mg", False, None, 3, 0.09),
)
_NDC_OPIOID = np.array([k for k, r in enumerate(NDC_ROWS) if r[4]])
_NDC_ACUTE = np.array([7, 8, 9, 10, 11])  # NSAIDs, muscle relaxant, gabapentin
_NDC_CHRONIC = {"hypertension": 12, "diabetes": 13, "hyperlipidemia": 14, "depression": 15}
_NDC_ANTIBIOTIC = 16

GENDERS = ("male", "female", "unknown")
PAYERS = ("commercial", "medicare", "medicaid", "workers_comp", "other")
STATES = ("CA", "TX", "FL", "NY", "PA", "IL", "OH", "GA", "NC", "MI", "NJ", "VA", "WA", "AZ", "MA")
ENCOUNTER_TYPES = ("office", "telehealth", "procedure", "ed", "inpatient", "other")
WORK_STATUSES = (
    "working", "modified_duty", "off_work", "disability_short_term", "disability_long_term",
    "retired", "unemployed",
)  # fmt: skip
_W = {s: k for k, s in enumerate(WORK_STATUSES)}
# the vocabulary's instruments, and one no spec lists (gad7): scores a load keeps and the cohort ignores
INSTRUMENTS = (*VOCABULARY_INSTRUMENTS, "gad7")
EVENT_TYPES = ("censored", "rtw", "disability_long_term", "retired", "death")

_ICD_INDEX = {code: k for k, code in enumerate(ICD)}


def _icd(*codes: str) -> np.ndarray:
    return np.array([_ICD_INDEX[c] for c in codes], dtype=np.int64)


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`generate` wrote: files, row counts, planted cohort counts and headline truth."""

    out_dir: Path
    persons: int
    seed: int
    file_format: str
    effect_rtw_hr: float
    effect_promis_pf: float
    files: dict[str, Path]
    rows: dict[str, int]
    counts: dict[str, int]
    truth: dict[str, float]
    wall_seconds: float = field(compare=False)

    def describe(self) -> str:
        """A short multi-line human-readable account (what the CLI prints)."""
        c = self.counts
        t = {k: (float("nan") if v is None else v) for k, v in self.truth.items()}
        lines = [
            f"Synthetic extract: {self.persons:,} persons, seed {self.seed}, {self.file_format} ({self.wall_seconds:.1f} s)",
            f"  folder: {self.out_dir}",
        ]
        for name, n in self.rows.items():
            lines.append(f"  {name:<16} {n:>12,} rows")
        cohort = (
            f"  cohort: {c['eligible']:,} eligible ({c['early']:,} early, {c['delayed']:,} delayed), "
            f"{c['rtw_population']:,} in RTW population"
        )
        rtw = (
            f"  truth, RTW by 180 d: {t['cif_rtw_180_early']:.3f} early vs {t['cif_rtw_180_delayed']:.3f} delayed "
            f"(RD {t['rd_rtw_180']:+.3f})"
        )
        pf = (
            f"  truth, PROMIS-PF at 180 d: difference {t['promis_pf_180_difference']:+.2f} "
            f"(set: HR {self.effect_rtw_hr:g}, PF {self.effect_promis_pf:+g})"
        )
        lines += [cohort, rtw, pf, "  known answers: truth.json, truth_persons.parquet"]
        return "\n".join(lines)


def generate(
    out_dir: str | Path,
    *,
    persons: int,
    seed: int,
    file_format: str = "csv",
    effect_rtw_hr: float = 1.5,
    effect_promis_pf: float = 3.0,
    mechanisms: Mechanisms | None = None,
    progress: bool = False,
    shift_years: int = 0,
    secondary_effects: dict[str, float] | None = None,
    cost_effects: dict[str, float] | None = None,
) -> SynthSummary:
    """Write a synthetic claims + EHR extract with known truth into ``out_dir``.

    Parameters
    ----------
    out_dir
        Folder to write into (created). Existing contract-table files in it are replaced.
    persons
        Number of persons with an eligibility record (>= 1). A few EHR-only persons are added.
    seed
        Non-negative integer; the same seed (and arguments) gives byte-identical files.
    file_format
        ``"csv"`` (header row, ISO dates, empty field for null) or ``"parquet"``.
    effect_rtw_hr
        True hazard ratio of RTW from the day of an IPM referral within 42 days (1 = no effect).
    effect_promis_pf
        True PROMIS physical-function gain (T-score points) at 180 days from referral within 42 days.
    mechanisms
        Optional features of real referral processes (:class:`Mechanisms`; :data:`EXTENDED` turns on
        those of issue 19). Default: the classic world, byte-identical to earlier versions.
    progress
        Show a progress bar over the tables being generated and written.
    shift_years
        Shift every date by :func:`date_shift_days` of this many years, and birth years by as many
        years, as a date-shifted de-identified extract is (load it with ``ingest --reference-date``).
        Nothing else changes: the same persons, intervals and truth.
    secondary_effects
        True hazard ratio of each secondary outcome (issue 16: new depression or anxiety, new sleep
        disorder, long-term opioid therapy, lumbar surgery, ED visit for low back pain) for a referral
        within 42 days; None = :data:`SECONDARY_EFFECTS`, :data:`NULL_SECONDARY_EFFECTS` = no effect.
        Negative-control outcomes are always generated from covariates only.
    cost_effects
        The effect of referral on costs (``lbp_rate_ratio``: rate ratio of back-pain-related claims
        after a referral within 42 days; ``referral_cost``: the referral's own cost); None =
        :data:`COST_EFFECTS`, :data:`NULL_COST_EFFECTS` = no effect. In the follow-up year of the
        eligible persons allowed amounts come from a cost process (see :data:`COST_DEFINITIONS`).

    Returns
    -------
    SynthSummary
        Paths, row counts (one entry per table written), planted counts and headline truth.

    Notes
    -----
    Files written: ``eligibility`` (one row per person per enrolment span), ``medical_claim`` (one
    row per claim line; ``diagnosis_code_1..4``), ``pharmacy_claim`` (one row per fill),
    ``ndc_reference`` (one row per NDC), ``ehr_encounter`` (one row per encounter), ``ehr_pro`` (one
    row per person per assessment per instrument), ``ehr_work_status`` (one row per recorded
    status), ``truth_persons.parquet`` (one row per person with an eligibility record) and
    ``truth.json``.
    """
    if isinstance(persons, bool) or not isinstance(persons, (int, np.integer)) or persons < 1:
        raise IpmError(f"persons={persons!r}: must be a whole number >= 1; pass e.g. --persons 20000")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise IpmError(f"seed={seed!r}: must be a whole number >= 0; pass e.g. --seed 20261128")
    if file_format not in FILE_FORMATS:
        raise IpmError(f"file format {file_format!r} is not supported; use one of: {', '.join(FILE_FORMATS)}")
    if not (isinstance(effect_rtw_hr, (int, float)) and math.isfinite(effect_rtw_hr) and effect_rtw_hr > 0):
        raise IpmError(f"effect_rtw_hr={effect_rtw_hr!r}: must be a positive finite hazard ratio (1 = no effect)")
    if not (isinstance(effect_promis_pf, (int, float)) and math.isfinite(effect_promis_pf)):
        raise IpmError(f"effect_promis_pf={effect_promis_pf!r}: must be a finite number of T-score points")
    if isinstance(shift_years, bool) or not isinstance(shift_years, (int, np.integer)) or abs(shift_years) > 500:
        raise IpmError(f"shift_years={shift_years!r}: must be a whole number of years between -500 and 500")
    if mechanisms is not None and not isinstance(mechanisms, Mechanisms):
        raise IpmError(f"mechanisms={mechanisms!r}: must be a synth.Mechanisms (e.g. synth.EXTENDED) or None")
    persons, seed = int(persons), int(seed)
    effect_rtw_hr, effect_promis_pf = float(effect_rtw_hr), float(effect_promis_pf)
    secondary_effects = _check_secondary_effects(secondary_effects)
    cost_effects = _check_cost_effects(cost_effects)

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise IpmError(f"{out}: exists and is not a folder; choose a folder for the extract")
    out.mkdir(parents=True, exist_ok=True)
    _clear_previous(out)

    started = time.perf_counter()
    table_names = list(_TABLE_BUILDERS)
    steps = ["persons"] + table_names + ["truth"]
    files: dict[str, Path] = {}
    rows: dict[str, int] = {}
    workers = max(1, min(_MAX_WORKERS, os.cpu_count() or 1))
    with _Progress(progress, len(steps)) as bar, ThreadPoolExecutor(max_workers=workers) as pool:
        bar.update("simulating persons")
        world = _simulate_world(persons, seed, effect_rtw_hr, effect_promis_pf, mechanisms or Mechanisms())
        world.secondary = _simulate_secondary(world, secondary_effects)
        world.cost_effects = cost_effects
        world.cost_day0 = np.zeros((2, world.n))  # day-0 amounts (all, back-pain related), added up as written
        bar.advance()
        for name in table_names:
            bar.update(f"writing {name}")
            path = out / f"{name}.{file_format}"
            with _TableWriter(path, _schema(name), file_format, shift_years) as writer:
                # Chunks are built in worker threads (numpy and pyarrow release the GIL) and written
                # in order; each chunk has its own random stream and identifier block, so the
                # files do not depend on the number of threads.
                pending: deque = deque()
                for chunk_no, start in enumerate(range(0, world.n, CHUNK_PERSONS)):
                    stop = min(world.n, start + CHUNK_PERSONS)
                    rng = _rng(seed, _STREAMS[name], chunk_no)
                    pending.append(pool.submit(_TABLE_BUILDERS[name], world, start, stop, rng, chunk_no))
                    while len(pending) > workers:
                        _write_chunk(writer, pending.popleft().result())
                while pending:
                    _write_chunk(writer, pending.popleft().result())
            files[name] = path
            rows[name] = writer.rows
            bar.advance()
        bar.update("simulating truth")
        truth = _truth(world, seed)
        truth["secondary_outcomes"] = _secondary_truth(world)
        truth["costs"] = _cost_truth(world)
        truth_persons = _truth_persons_table(world)
        pq.write_table(shift_dates(truth_persons, shift_years), out / "truth_persons.parquet", compression="zstd")
        (out / "truth.json").write_text(json.dumps(truth, indent=2, sort_keys=True, allow_nan=False) + "\n")
        files["truth_persons"] = out / "truth_persons.parquet"
        files["truth"] = out / "truth.json"
        bar.advance()

    rtw, pf = truth["rtw"], truth["promis_pf_180"]
    return SynthSummary(
        out_dir=out,
        persons=persons,
        seed=seed,
        file_format=file_format,
        effect_rtw_hr=effect_rtw_hr,
        effect_promis_pf=effect_promis_pf,
        files=files,
        rows=rows,
        counts={k: truth["counts"][k] for k in ("eligible", "rtw_population", "early", "delayed")},
        truth={
            "cif_rtw_180_early": rtw["cumulative_incidence"]["early"]["180"],
            "cif_rtw_180_delayed": rtw["cumulative_incidence"]["delayed"]["180"],
            "rd_rtw_180": rtw["risk_difference"]["180"],
            "promis_pf_180_difference": pf["difference"],
        },
        wall_seconds=time.perf_counter() - started,
    )


# ----------------------------------------------------------------------------------------------
# Plumbing: random streams, progress, writers, schemas
# ----------------------------------------------------------------------------------------------

_STREAMS = {
    "persons": 1,
    "eligibility": 2,
    "medical_claim": 3,
    "pharmacy_claim": 4,
    "ndc_reference": 5,
    "ehr_encounter": 6,
    "ehr_pro": 7,
    "ehr_work_status": 8,
    "truth": 9,
}


def _rng(seed: int, *keys: int) -> np.random.Generator:
    # One independent stream per (seed, purpose, chunk): adding a table or reordering work never
    # shifts the draws of another.
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, *keys])))


class _Progress:
    def __init__(self, enabled: bool, total: int):
        self.enabled = enabled
        self.total = total
        self._progress = None
        self._task = None

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]synth[/] {task.description:<28}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("starting", total=self.total)
        return self

    def update(self, description: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=description)

    def advance(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.__exit__(*exc)
        return False


_ARROW_TYPES = {"VARCHAR": pa.string(), "INTEGER": pa.int32(), "DATE": pa.date32(), "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_()}


def _schema(table_name: str) -> pa.Schema:
    table = TABLES_BY_NAME[table_name]
    fields = [pa.field(c.name, _ARROW_TYPES[c.type]) for c in table.columns]
    if table.has_diagnosis_columns:
        fields += [pa.field(f"{DIAGNOSIS_COLUMN_PREFIX}{k}", pa.string()) for k in range(1, N_DX + 1)]
    return pa.schema(fields)


def _clear_previous(out: Path) -> None:
    names = list(TABLES_BY_NAME) + ["truth_persons"]
    for name in names:
        if (out / name).is_dir():
            raise IpmError(f"{out / name}: a folder of parquet parts is in the way; write to an empty folder instead")
        for suffix in TABLE_FILE_SUFFIXES:
            p = out / f"{name}{suffix}"
            if p.is_file():
                p.unlink()
    for p in (out / "truth.json", out / "truth_persons.parquet"):
        if p.is_file():
            p.unlink()


class _TableWriter:
    """Append arrow tables to one Parquet or CSV file, deterministically.

    Code columns arrive as dictionary arrays (no string copies). Parquet keeps them as dictionary
    pages and does not store the arrow schema, so every reader sees plain strings; CSV casts them.
    """

    def __init__(self, path: Path, schema: pa.Schema, file_format: str, shift_years: int = 0):
        self.path, self.schema, self.format = path, schema, file_format
        self.shift_years = shift_years
        self.rows = 0
        self._writer = None

    def __enter__(self):
        if self.format == "csv":
            self._file = open(self.path, "wb")
            # Plain header (pyarrow would quote the names); no value written here holds a comma or quote.
            self._file.write((",".join(self.schema.names) + "\n").encode())
            self._writer = pacsv.CSVWriter(
                self._file,
                self.schema,
                write_options=pacsv.WriteOptions(include_header=False, quoting_style="none"),
            )
        return self

    def _open_parquet(self, schema: pa.Schema) -> None:
        dict_cols = [f.name for f in schema if pa.types.is_dictionary(f.type) or f.type in (pa.bool_(), pa.int32())]
        # Min/max statistics cost as much as the encoding for text; keep them for dates only.
        stats = [f.name for f in schema if f.type == pa.date32()] or False
        self._writer = pq.ParquetWriter(
            self.path,
            schema,
            compression="snappy",
            use_dictionary=dict_cols,
            write_statistics=stats,
            store_schema=False,
        )

    def write(self, table: pa.Table) -> None:
        table = shift_dates(table.select(self.schema.names), self.shift_years)
        if self.format == "csv":
            table = table.cast(self.schema)
        else:
            target = pa.schema(
                [f if pa.types.is_dictionary(table.schema.field(f.name).type) else self.schema.field(f.name) for f in table.schema]
            )
            table = table.cast(target)
            if self._writer is None:
                self._open_parquet(target)
        self._writer.write_table(table)
        self.rows += table.num_rows

    def __exit__(self, exc_type, *rest):
        if self._writer is None:  # nothing written: an empty file with the declared schema
            self._open_parquet(self.schema)
        self._writer.close()
        if self.format == "csv":
            self._file.close()
        return False


def date_shift_days(years: int) -> int:
    """The fixed number of days by which ``synth --shift-years`` moves every date: the days from
    2000-01-01 to the same day ``years`` years later. Every interval between dates is kept; a date
    also keeps its month and day when ``years`` is a multiple of 4 and the shift crosses no century
    year that is not a leap year (2100)."""
    return (date(2000 + years, 1, 1) - date(2000, 1, 1)).days


def shift_dates(table: pa.Table, years: int) -> pa.Table:
    """``table`` with every date column moved by :func:`date_shift_days` and birth years by ``years``
    (as a de-identified extract whose dates were shifted looks)."""
    if not years:
        return table
    import pyarrow.compute as pc

    days = date_shift_days(years)
    for i, column in enumerate(table.schema):
        if column.type == pa.date32():
            shifted = pc.add(table.column(i).cast(pa.int32()), pa.scalar(days, pa.int32())).cast(pa.date32())
        elif column.name == "birth_year":
            shifted = pc.add(table.column(i), years).cast(column.type)
        else:
            continue
        table = table.set_column(i, column, shifted)
    return table


def _write_chunk(writer: _TableWriter, table: pa.Table | None) -> None:
    if table is not None:
        writer.write(table)


def _first_id(chunk_no: int, m: int) -> int:
    """Identifiers are numbered per chunk of persons (block chunk_no * 10**8), so chunks can be built
    independently and in parallel."""
    if m >= _ID_BLOCK:
        raise RuntimeError("too many rows in one chunk for its identifier block")
    return chunk_no * _ID_BLOCK + 1


def _strings(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """``prefix`` + zero-padded ``numbers`` as a string array, built as one fixed-width byte buffer."""
    numbers = np.asarray(numbers, dtype=np.int64)
    m = len(numbers)
    if m and int(numbers.max()) >= 10**width:
        width = len(str(int(numbers.max())))
    size = len(prefix) + width
    buf = np.empty((m, size), dtype=np.uint8)
    buf[:, : len(prefix)] = np.frombuffer(prefix.encode(), dtype=np.uint8)
    rest = numbers.copy()
    for k in range(size - 1, len(prefix) - 1, -1):
        buf[:, k] = 48 + rest % 10
        rest //= 10
    offsets = np.arange(0, (m + 1) * size, size, dtype=np.int32 if (m + 1) * size < 2**31 else np.int64)
    kind = pa.string() if offsets.dtype == np.int32 else pa.large_string()
    arr = pa.Array.from_buffers(kind, m, [None, pa.py_buffer(offsets), pa.py_buffer(buf)])
    return arr if kind == pa.string() else arr.cast(pa.string())


def _pid(p: np.ndarray) -> pa.Array:
    """person_id of person index p (P00000001 is index 0)."""
    return _strings("P", np.asarray(p, dtype=np.int64) + 1, 8)


def _book(values) -> pa.Array:
    """A code book for :func:`_take`; values must be distinct (see the note at _ICD_BOOK)."""
    values = list(values)
    if len(set(values)) != len(values):
        raise ValueError("code book values must be distinct")
    return pa.array(values, pa.string())


def _take(book: pa.Array, idx: np.ndarray) -> pa.Array:
    """Strings from a code book by index (as a dictionary array); negative index -> null."""
    idx = np.asarray(idx, dtype=np.int32)
    return pa.DictionaryArray.from_arrays(pa.array(idx, mask=idx < 0), book)


def _dates(days: np.ndarray) -> pa.Array:
    days = np.asarray(days, dtype=np.int64)
    return pa.array(days.astype(np.int32), type=pa.date32())


def _year(days: np.ndarray) -> np.ndarray:
    return np.asarray(days, dtype="int64").astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970


def _expit(x):
    return 1.0 / (1.0 + np.exp(-x))


def _choice(rng: np.random.Generator, options: np.ndarray, n: int, p=None) -> np.ndarray:
    options = np.asarray(options)
    if p is None:
        return options[rng.integers(0, len(options), n)]
    cdf = np.cumsum(np.asarray(p, dtype=float))
    cdf /= cdf[-1]
    return options[np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(options) - 1)]


# ----------------------------------------------------------------------------------------------
# The planted world (one value per person)
# ----------------------------------------------------------------------------------------------


class _World:
    """Per-person arrays of everything planted (one element per person with an eligibility record).

    Absolute day numbers (days since 1970-01-01): ``I`` (planted index), ``first_lbp``, ``span_s`` /
    ``span_e``, ``death_day`` and the planted look-back facts ``red_day``, ``pipm_day``,
    ``prior_lbp_day``, ``legacy_trap_day``. Everything else dated (``w0``, ``referral_day``,
    ``contact_day``, ``followon_day``, ``d_rtw``, ``ev_day``, ``censor_day``, ``followup_end``,
    ``pro_days``, ``*_rel``) counts days from ``I``. ``NEVER`` marks "does not happen".
    """

    def __init__(self, n: int, seed: int, hr: float, pf: float, mech: Mechanisms | None = None):
        self.n, self.seed, self.hr, self.pf = n, seed, hr, pf
        self.mech = mech or Mechanisms()


def _late_weight(r: np.ndarray) -> np.ndarray:
    """Share of the full early-referral benefit kept by a referral on day ``r`` (0 for never)."""
    r = np.asarray(r, dtype=float)
    w = np.clip((LATE_BENEFIT_END - r) / (LATE_BENEFIT_END - GRACE_DAYS), 0.0, 1.0)
    return np.where(r <= GRACE_DAYS, 1.0, w)


def _to_day(t: np.ndarray) -> np.ndarray:
    """Continuous time since index -> the day the event is recorded (day 365 is pushed to 366, so
    nothing sits on the follow-up boundary)."""
    d = np.where(np.isfinite(t) & (t < NEVER), np.ceil(t), NEVER).astype(np.int64)
    return np.where(d == FOLLOWUP_DAYS, FOLLOWUP_DAYS + 1, d)


def _referral_day(t: np.ndarray) -> np.ndarray:
    d = np.where(np.isfinite(t) & (t < NEVER), np.floor(t), NEVER).astype(np.int64)
    return np.where(d == FOLLOWUP_DAYS, FOLLOWUP_DAYS + 1, d)


def _rtw_continuous(E, start, theta, kappa, r, hr):
    """Invert the RTW cumulative hazard: Weibull from ``start``, multiplied by ``hr**w(r)`` from day ``r``."""
    hr_w = np.power(hr, _late_weight(r))
    r_eff = np.minimum(r, 10_000).astype(float)
    H_r = (np.maximum(r_eff - start, 0.0) / theta) ** kappa
    # hr_w == 1 takes the untreated branch exactly, so the null scenario has no rounding noise.
    before = (E < H_r) | (hr_w == 1.0)
    t_before = start + theta * np.power(E, 1.0 / kappa)
    t_after = start + theta * np.power(np.maximum(H_r + (E - H_r) / hr_w, 0.0), 1.0 / kappa)
    return np.where(before, t_before, t_after)


def _first_event(d_rtw, d_ltd, d_ret, d_death):
    """First event day and type (1 rtw, 2 ltd, 3 retired, 4 death); ties go to the earlier type."""
    stack = np.stack([d_rtw, d_ltd, d_ret, d_death])
    kind = np.argmin(stack, axis=0)  # argmin returns the first minimum: rtw > ltd > retired > death
    return np.take_along_axis(stack, kind[None], axis=0)[0], kind + 1


def _nudge_death(d_death, *others):
    # A death recorded on the same day as another event would leave the order of the two to the
    # reader; move it one day later.
    for _ in range(2):
        for o in others:
            d_death = np.where((d_death == o) & (d_death < NEVER), d_death + 1, d_death)
    return d_death


def _referral_hazard_inverse(H: np.ndarray, lam: np.ndarray, lam2: np.ndarray, halving: float) -> np.ndarray:
    """Time at which the referral cumulative hazard reaches ``H`` (rate ``lam``, ``lam2`` from ``halving``)."""
    H_half = lam * halving
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(H < H_half, H / lam, halving + (H - H_half) / lam2)


def _referral_cumulative_hazard(t: np.ndarray, lam: np.ndarray, lam2: np.ndarray, halving: float) -> np.ndarray:
    return lam * np.minimum(t, halving) + lam2 * np.maximum(t - halving, 0.0)


class _Rows:
    """The referral-rate attributes of a world restricted to rows ``rows`` (for the truth draws)."""

    def __init__(self, w: _World, rows: np.ndarray):
        self.mech, self.ref_halving = w.mech, w.ref_halving
        self.ref_rate, self.ref_rate2 = w.ref_rate[rows], w.ref_rate2[rows]


def _post_rtw_referral_day(w: _World, d_rtw: np.ndarray, E: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Referral day after RTW on day ``d_rtw`` at ``post_rtw_referral_rate`` times the natural hazard."""
    c = w.mech.post_rtw_referral_rate
    start = np.minimum(d_rtw[idx], 10_000).astype(float)
    lam, lam2 = w.ref_rate[idx], w.ref_rate2[idx]
    H0 = _referral_cumulative_hazard(start, lam, lam2, w.ref_halving)
    t = _referral_hazard_inverse(H0 + E[idx] / c, lam, lam2, w.ref_halving)
    return np.maximum(_referral_day(t), d_rtw[idx])


def _simulate_world(n: int, seed: int, hr: float, pf_effect: float, mech: Mechanisms | None = None) -> _World:
    rng = _rng(seed, _STREAMS["persons"])
    mech = mech or Mechanisms()
    # Draws for the optional mechanisms come from a stream of their own, so the classic world's
    # draws (and files) do not change.
    mrng = _rng(seed, _STREAMS["persons"], 1)
    w = _World(n, seed, hr, pf_effect, mech)
    idx = np.arange(n)

    # --- demographics, index date -------------------------------------------------------------
    w.sex = _choice(rng, np.arange(3), n, [0.47, 0.52, 0.01])
    w.has_lbp = rng.random(n) < 0.70
    lo, hi = _dn(date(2019, 7, 1)), _dn(date(2024, 9, 30))
    I = rng.integers(lo, hi + 1, n)
    # Keep index dates clear of the 365-day look-back hitting the data start exactly.
    I = np.where((I - D_START >= 350) & (I - D_START <= 380), I + 40, I)
    w.I = I
    u = rng.random(n)
    age = 18 + np.floor(rng.beta(1.8, 1.6, n) * 47)  # 18..64, mean about 43
    age = np.where(u < 0.03, rng.integers(15, 18, n), np.where(u < 0.08, rng.integers(65, 81, n), age)).astype(np.int64)
    w.birth_year = _year(I) - age
    w.age = age
    old = age >= 65
    payer_young = _choice(rng, np.arange(5), n, [0.68, 0.03, 0.14, 0.08, 0.07])
    payer_old = _choice(rng, np.array([1, 0, 4]), n, [0.85, 0.10, 0.05])
    w.payer = np.where(old, payer_old, payer_young)
    w.state = np.where(rng.random(n) < 0.03, -1, rng.integers(0, len(STATES), n))
    w.ehr = rng.random(n) < 0.90
    wc = (w.payer == 3).astype(float)

    # --- chronic conditions (present throughout the data window) -------------------------------
    prev = np.array([c[2] for c in CONDITIONS])
    age_factor = np.exp(0.04 * (age - 45))[:, None]
    w.cond = rng.random((n, len(CONDITIONS))) < np.minimum(prev[None, :] * age_factor, 0.6)
    pregnant_ok = (w.sex == 1) & (age <= 45)
    charlson_cols = [k for k, c in enumerate(CONDITIONS) if c[3]]
    w.charlson_n = w.cond[:, charlson_cols].sum(1)
    # the conditions as a ragged list per person (row-major nonzero is person-ordered)
    _, cond_k = np.nonzero(w.cond)
    w.cond_ptr = np.concatenate([[0], np.cumsum(w.cond.sum(1))]).astype(np.int64)
    w.cond_codes = np.append(_icd(*(c[1] for c in CONDITIONS))[cond_k], -1)
    depr = w.cond[:, _COND["depression"]]
    anx = w.cond[:, _COND["anxiety"]]
    sleep = w.cond[:, _COND["sleep"]]

    # --- enrolment spans: A [pre-index gap] B (holds the index) [post-index gap] C ---------------
    late = rng.random(n) < 0.05
    E0 = np.where(late, I - rng.integers(60, 331, n), I - 400 - rng.integers(0, 1500, n))
    E0 = np.maximum(E0, D_START)
    u = rng.random(n)
    has_pre = u < 0.14
    pre_len = np.where(u < 0.10, rng.integers(1, 26, n), rng.integers(45, 121, n))  # bridged | not
    pre_end = I - 61 - rng.integers(0, 200, n)
    pre_start = pre_end - pre_len + 1
    has_pre &= pre_start - 1 >= E0 + 30
    disenrol = rng.random(n) < 0.30
    E1 = np.minimum(np.where(disenrol, I + rng.integers(20, mech.disenrolment_within_days, n), D_END), D_END)
    u = rng.random(n)
    has_post = u < 0.14
    post_len = np.where(u < 0.08, rng.integers(1, 26, n), rng.integers(45, 201, n))
    post_start = I + rng.integers(30, 301, n)
    has_post &= post_start + post_len + 30 <= E1
    span_s = np.empty((3, n), np.int64)
    span_e = np.empty((3, n), np.int64)
    span_s[0] = np.where(has_pre, E0, 1)
    span_e[0] = np.where(has_pre, pre_start - 1, 0)
    span_s[1] = np.where(has_pre, pre_end + 1, E0)
    span_e[1] = np.where(has_post, post_start - 1, E1)
    span_s[2] = np.where(has_post, post_start + post_len, 1)
    span_e[2] = np.where(has_post, E1, 0)

    # --- planted baseline facts (LBP persons); all before index, inside [I-60, I] which is always enrolled
    lbp = w.has_lbp
    w.radic = lbp & (rng.random(n) < _expit(-0.7 + 0.02 * (age - 45)))
    w.opioid = lbp & (rng.random(n) < _expit(-1.3 + 0.9 * w.radic + 0.4 * depr + 0.5 * wc))
    w.prior_img = lbp & (rng.random(n) < 0.07 + 0.08 * w.radic)
    w.prior_pt = lbp & (rng.random(n) < 0.10)
    # Severity: measured covariates only, so adjusted analyses can recover the truth.
    sev = (
        0.9 * w.radic + 0.6 * w.opioid + 0.4 * depr + 0.2 * anx + 0.2 * sleep
        + 0.25 * np.minimum(w.charlson_n, 3) + 0.3 * w.prior_img
    ) - 0.75  # fmt: skip
    w.sev = sev

    # --- index code (radicular or not; legacy M54.5 before 2021-10-01) -------------------------
    radic_code = _choice(rng, _icd(*LBP_RADIC), n, [0.45, 0.2, 0.35])
    lbp_fy22 = _choice(rng, _icd(*LBP_LOW_BACK_PAIN_FY22), n, [0.8, 0.15, 0.05])
    generic = np.where(I < D_LEGACY, _ICD_INDEX[LBP_LEGACY], lbp_fy22)
    other = _choice(rng, _icd(*LBP_NONRADIC), n)
    w.index_code = np.where(w.radic, radic_code, np.where(rng.random(n) < 0.65, generic, other))
    w.index_dx_pos = np.where(rng.random(n) < 0.8, 1, 2)
    w.index_ed = rng.random(n) < 0.08

    # --- red flags: in the look-back (excludes), on the index claim, or harmless (too old / later)
    u = rng.random(n)
    red_rel = np.full(n, NEVER)
    red_rel = np.where(u < 0.05, -rng.integers(20, 331, n), red_rel)
    red_rel = np.where((u >= 0.05) & (u < 0.06), 0, red_rel)
    red_rel = np.where((u >= 0.06) & (u < 0.08), -rng.integers(400, 701, n), red_rel)
    red_rel = np.where((u >= 0.08) & (u < 0.11), rng.integers(30, 301, n), red_rel)
    w.red_rel = np.where(lbp, red_rel, NEVER)
    red_code = _choice(rng, _icd(*RED_FLAGS_ANY), n)
    red_code = np.where((w.sex == 1) & (rng.random(n) < 0.3), _ICD_INDEX[RED_FLAGS_FEMALE[0]], red_code)
    red_code = np.where((w.sex == 0) & (rng.random(n) < 0.2), _ICD_INDEX[RED_FLAGS_MALE[0]], red_code)
    preg = _choice(rng, _icd(*RED_FLAGS_PREGNANCY), n)
    red_code = np.where(pregnant_ok & (rng.random(n) < 0.5), preg, red_code)
    w.red_code = red_code

    # --- prior IPM contact: in the look-back (excludes) or older (harmless) ----------------------
    u = rng.random(n)
    pipm_rel = np.where(u < 0.04, -rng.integers(20, 331, n), np.where(u < 0.06, -rng.integers(400, 801, n), NEVER))
    w.pipm_rel = np.where(lbp, pipm_rel, NEVER)
    w.pipm_kind = _choice(rng, np.arange(3), n, [0.4, 0.4, 0.2])  # 0 procedure, 1 IPM visit claim, 2 EHR only
    w.pipm_kind = np.where(~w.ehr & (w.pipm_kind == 2), 1, w.pipm_kind)

    # --- prior LBP claim in the first data year (index then lacks 365 days of enrolment) ---------
    # Only where the clipped claim stays within the washout: 2020 is a leap year, so an index on
    # 2020-12-31 is 366 days after 2019-12-31 and would start a genuinely new episode.
    last_2019 = _dn(date(2019, 12, 31))
    prior = lbp & (_year(I) == 2020) & (I - last_2019 <= 365) & (rng.random(n) < 0.25)
    P = np.minimum(I - rng.integers(30, 301, n), _dn(date(2019, 12, 31)))
    w.prior_lbp_day = np.where(prior, P, NEVER * 10)

    # --- legacy M54.5 after 2021-10-01, before index: not an lbp code then ------------------------
    trap_lo = np.maximum(D_LEGACY, I - 300)
    trap = lbp & (I - 1 > trap_lo) & (rng.random(n) < 0.05)
    w.legacy_trap_day = np.where(trap, trap_lo + (rng.random(n) * (I - 1 - trap_lo)).astype(np.int64), NEVER * 10)

    # --- natural referral process ---------------------------------------------------------------
    w.ref_pi = _expit(-0.1 + 1.0 * sev + 0.5 * wc - 0.01 * (age - 45))
    w.ref_rate = math.log(2) / 40 * np.exp(0.5 * sev + 0.3 * wc)
    referable = rng.random(n) < w.ref_pi
    R = np.where(referable, rng.exponential(1.0, n) / w.ref_rate, np.inf)
    w.ref_halving = math.inf if mech.referral_halving_day is None else float(mech.referral_halving_day)
    w.ref_rate2 = w.ref_rate
    if mech.logistic_referral:
        # daily referral probability logistic-linear in recorded baseline covariates, from day 0
        logit = -5.3 + 0.9 * w.radic + 0.6 * w.opioid + 0.4 * depr + 0.5 * wc - 0.01 * (age - 45)
        if mech.pro_referral_drivers:
            logit = logit + _baseline_pro_referral_logit(w, mrng, sev)
        p_day = _expit(logit)
        w.ref_pi = np.ones(n)
        w.ref_rate = -np.log1p(-p_day)
        referable = np.ones(n, dtype=bool)
        w.ref_rate2 = w.ref_rate
    if mech.referral_halving_day is not None:
        w.ref_rate2 = (
            -np.log1p(-(1.0 - np.exp(-w.ref_rate)) / 2) if mech.logistic_referral else w.ref_rate / 2
        )
    if mech.logistic_referral or mech.referral_halving_day is not None:
        H = mrng.exponential(1.0, n)
        R = np.where(referable, _referral_hazard_inverse(H, w.ref_rate, w.ref_rate2, w.ref_halving), np.inf)
    w.referable = referable
    r = np.where(lbp, _referral_day(R), NEVER)
    w.ref_kind = _choice(rng, np.arange(3), n, [0.3, 0.5, 0.2])  # first contact: procedure | visit claim | EHR
    if mech.ehr_first_contact_share != 0.2:
        share = mech.ehr_first_contact_share
        w.ref_kind = _choice(mrng, np.arange(3), n, [0.375 * (1 - share), 0.625 * (1 - share), share])
    w.ref_kind = np.where(~w.ehr & (w.ref_kind == 2), 1, w.ref_kind)
    w.followon_rel = np.where(rng.random(n) < np.where(w.ref_kind == 0, 0.4, 0.6), rng.integers(7, 46, n), NEVER)

    # --- employment and the work absence --------------------------------------------------------
    p_emp = np.where(age >= 65, 0.25, np.where(age < 18, 0.35, 0.78))
    p_emp = np.where(w.payer == 2, 0.5, np.where((w.payer == 1) & (age < 65), 0.15, p_emp))
    p_emp = np.where(w.payer == 3, 1.0, p_emp)
    w.employed = lbp & (rng.random(n) < p_emp)
    w.off_work = w.employed & (rng.random(n) < _expit(-0.1 + 0.8 * sev + 1.2 * wc))
    near_miss = rng.random(n) < 0.08
    w0 = rng.integers(-6, 13, n)
    w0 = np.where(near_miss, np.where(rng.random(n) < 0.5, -rng.integers(9, 41, n), rng.integers(17, 46, n)), w0)
    w.w0 = w0
    w.w0_status = np.where(rng.random(n) < 0.7, _W["off_work"], _W["disability_short_term"])
    w.rtw_start = np.maximum(w0, 0) + 1.0
    w.rtw_theta = 90.0 * np.exp(0.8 * sev + 0.4 * wc + 0.15 * (age - 45) / 10)
    if mech.pro_referral_drivers:
        w.rtw_theta = w.rtw_theta * np.exp(-0.05 * w.pf_dev)  # better function than severity says: back sooner
    w.ltd_rate = 0.0008 * mech.competing_rate_scale * np.exp(0.9 * sev + 0.5 * wc)
    w.ret_rate = 0.00005 + 0.0004 * (age >= 58) * np.exp(0.1 * np.maximum(age - 58, 0))
    w.death_rate = 0.000008 * np.exp(0.5 * np.minimum(w.charlson_n, 4) + 0.06 * (age - 45))
    E = rng.exponential(1.0, (4, n))
    d_death = _to_day(1.0 + E[3] / w.death_rate)

    # --- death: recorded when inside the data; enrolment ends within a month after it ----------
    nonlbp_death = rng.random(n) < 0.015
    death_nonlbp = span_s[1] + 30 + (rng.random(n) * 2500).astype(np.int64)
    w.span_s, w.span_e = span_s, span_e

    # The RTW process with the natural referral (referral stops once the person is back at work).
    kappa = 0.9
    w.kappa = kappa
    t_rtw = _rtw_continuous(E[0], w.rtw_start, w.rtw_theta, kappa, r.astype(float), hr)
    d_rtw = np.where(w.off_work & w.ehr, _to_day(t_rtw), NEVER)
    d_ltd = np.where(w.off_work & w.ehr, _to_day(60.0 + E[1] / w.ltd_rate), NEVER)
    d_ret = np.where(w.off_work & w.ehr, _to_day(14.0 + E[2] / w.ret_rate), NEVER)
    d_death = np.where(lbp, _nudge_death(d_death, d_rtw, d_ltd, d_ret), NEVER)
    death_abs = np.where(lbp, I + d_death, np.where(nonlbp_death, death_nonlbp, NO_DEATH))
    death_abs = np.where(death_abs <= D_END, death_abs, NO_DEATH)
    w.death_day = death_abs
    w.d_rtw, w.d_ltd, w.d_ret = d_rtw, d_ltd, d_ret
    w.d_death = np.where(death_abs < NO_DEATH, death_abs - I, NEVER)

    # Enrolment ends 1-30 days after death (coverage to the end of the month or so).
    end_after_death = np.where(death_abs < NO_DEATH, death_abs + rng.integers(1, 31, n), NO_DEATH)
    final_end = np.minimum(E1, np.minimum(end_after_death, D_END))
    span_e = np.minimum(span_e, final_end[None, :])
    w.span_s, w.span_e = span_s, span_e

    # --- eligibility by the cohort rules (literal reading; see _exclusions) -------------------
    _plant_check(w)
    w.first_lbp = np.where(lbp, np.minimum(I, w.prior_lbp_day), NEVER * 10)
    w.exclusion = _exclusions(w)
    w.eligible = w.exclusion < 0

    # --- referral observed in follow-up, RTW events, censoring -----------------------------------
    # A first contact on a day without coverage can only be seen in the EHR.
    on_day = np.minimum(r, 4000)
    enrolled_r = _enrolled(w, idx, I + on_day)
    r = np.where((r < NEVER) & ~enrolled_r & ~w.ehr, NEVER, r)
    w.ref_kind = np.where((r < NEVER) & ~enrolled_r, 2, w.ref_kind)
    w.natural_referral_day = r  # uncensored (the landmark truth's exposure)
    # Rebuild RTW with the final natural referral day (only changes persons whose r became NEVER).
    t_rtw = _rtw_continuous(E[0], w.rtw_start, w.rtw_theta, kappa, r.astype(float), hr)
    d_rtw = np.where(w.off_work & w.ehr, _to_day(t_rtw), NEVER)
    w.d_rtw = d_rtw

    _, seg_end = _bridged_segment(w, idx, I)
    c_enrol = seg_end - I
    ev_day, ev_kind = _first_event(w.d_rtw, w.d_ltd, w.d_ret, w.d_death)
    # An event on the last covered day would leave "event or censored" to the reader: extend that
    # span by one day (only where enrolment, not the data end or day 365, ends follow-up).
    tie = w.has_lbp & (ev_day == c_enrol) & (c_enrol < np.minimum(D_END - I, FOLLOWUP_DAYS)) & (ev_kind != 4)
    if tie.any():
        k = np.argmax((span_e == seg_end[None, :]) & (span_s <= span_e), axis=0)
        span_e[k[tie], np.nonzero(tie)[0]] += 1
        w.span_e = span_e
        _, seg_end = _bridged_segment(w, idx, I)
        c_enrol = seg_end - I
    censor = np.minimum(np.minimum(c_enrol, D_END - I), FOLLOWUP_DAYS)
    w.censor_day = censor
    w.followup_end = np.minimum(censor, w.d_death)
    w.ev_day, w.ev_kind = ev_day, ev_kind

    # Referral seen in the data: before follow-up ends, before RTW (referral stops at RTW).
    stopped = r >= d_rtw
    w.referral_day = np.where((r < w.followup_end) & ~stopped & w.has_lbp, r, NEVER)
    # Contacts after day 365 (still covered) are written too; they are outside follow-up.
    late_ok = (r > FOLLOWUP_DAYS) & (r < NEVER) & ~stopped & _enrolled(w, idx, I + np.minimum(r, 4000))
    w.contact_day = np.where(w.referral_day < NEVER, w.referral_day, np.where(late_ok & w.has_lbp, r, NEVER))
    w.r_post = np.full(n, NEVER)
    if mech.post_rtw_referral_rate > 0:
        # Back at work, referral goes on at a fraction of the rate, from the RTW day itself (after
        # the return): it is recorded (inside follow-up it is the first IPM contact) but came after
        # the outcome. A contact on a day without coverage is seen only in the EHR.
        post = _post_rtw_referral_day(w, d_rtw, mrng.exponential(1.0, n), idx)
        post = np.where(stopped & w.referable & w.has_lbp & (d_rtw < NEVER), post, NEVER)
        covered = _enrolled(w, idx, I + np.minimum(post, 4000))
        post = np.where(covered | w.ehr, post, NEVER)
        w.ref_kind = np.where((post < NEVER) & ~covered, 2, w.ref_kind)
        w.r_post = post
        w.referral_day = np.where(post < w.followup_end, post, w.referral_day)
        w.contact_day = np.where(post < NEVER, post, w.contact_day)
    # Procedure-only referral: the first IPM procedure claim inside follow-up.
    proc_first = np.where((w.ref_kind == 0) & (w.contact_day < NEVER), w.contact_day, NEVER)
    fo = np.where(w.contact_day < NEVER, w.contact_day + w.followon_rel, NEVER)
    fo = np.where(fo < NEVER, fo, NEVER)
    fo = np.where(fo == w.followup_end, fo + 1, fo)  # keep procedures off the follow-up boundary
    fo_ok = (fo < NEVER) & _enrolled(w, idx, I + np.minimum(fo, 4000))
    w.followon_day = np.where(fo_ok, fo, NEVER)
    proc = np.minimum(proc_first, w.followon_day)
    w.referral_day_proc = np.where(proc < w.followup_end, proc, NEVER)

    # Observed RTW outcome (RTW population only is reported).
    w.in_rtw = (
        w.eligible & w.off_work & w.ehr & (w0 >= RTW_WINDOW[0]) & (w0 <= RTW_WINDOW[1]) & (I + w0 < w.death_day)
    )
    observed = ev_day <= censor
    w.obs_time = np.where(observed, ev_day, censor)
    w.obs_kind = np.where(observed, ev_kind, 0)

    # --- QoL latent trajectories -----------------------------------------------------------------
    pf_dev = rng.normal(0, 5, n)
    if mech.pro_referral_drivers:
        pf_dev = w.pf_dev
    w.pf_base = 36.0 - 3.5 * sev - 0.08 * (age - 45) + pf_dev
    w.pf_gain = 9.0 - 2.5 * sev - 1.0 * wc + rng.normal(0, 3, n)
    w.pro_u = rng.normal(0, 1, (4, n))  # person-level offsets of the other instruments
    if mech.pro_referral_drivers:
        w.pro_u[2] = w.pain_u
    # The referral that acts on PROMIS-PF in the observed world (none once stopped by RTW, unless
    # the person is referred after RTW).
    w.r_effect = np.where(stopped, w.r_post, r)

    # --- PRO visits (days from index): baseline, one per follow-up window, extras between windows
    linked = lbp & w.ehr
    days = np.full((7, n), NEVER, dtype=np.int64)
    days[0] = np.where(rng.random(n) < 0.85, rng.integers(-25, 11, n), NEVER)
    if mech.pro_referral_drivers:
        days[0] = w.baseline_pro_day
    young, medicaid = (age < 30).astype(float), (w.payer == 2).astype(float)
    for j, h in enumerate(HORIZONS, start=1):
        referred = (w.referral_day < h - 30).astype(float)
        # more missing for the young, Medicaid and the not-yet-referred (MAR given measured data)
        p_obs = _expit(0.9 - 0.5 * young - 0.6 * medicaid + 0.7 * referred - 0.3 * h / 365)
        days[j] = np.where(rng.random(n) < p_obs, h + rng.integers(-25, 26, n), NEVER)
    for j, (a, b) in enumerate(((20, 56), (125, 146), (215, 331)), start=4):
        days[j] = np.where(rng.random(n) < 0.25, rng.integers(a, b, n), NEVER)
    pf_noise = rng.normal(0, 2.5, (7, n))
    if mech.pro_referral_drivers:
        pf_noise[0] = w.baseline_pf_noise
    if mech.pro_at_first_contact > 0:
        # the intake questionnaire: one more PRO visit, on the first IPM contact's day
        intake = (w.contact_day < NEVER) & (mrng.random(n) < mech.pro_at_first_contact)
        intake &= w.contact_day != days[0]  # a contact on the baseline visit's day is that visit
        days = np.vstack([days, np.where(intake, w.contact_day, NEVER)])
        pf_noise = np.vstack([pf_noise, mrng.normal(0, 2.5, (1, n))])
    absolute = I[None, :] + days
    ok = linked[None, :] & (days < NEVER) & (absolute <= D_END) & (absolute < w.death_day[None, :])
    w.pro_days = np.where(ok, days, NEVER)
    w.pf_noise = pf_noise
    _coverage_index(w)
    return w


def _baseline_pro_referral_logit(w: _World, mrng: np.random.Generator, sev: np.ndarray) -> np.ndarray:
    """The referral logit's part from the baseline PRO visit's recorded PROMIS-PF and NRS pain scores
    (:attr:`Mechanisms.pro_referral_drivers`); 0 for a person without that visit. Draws, and keeps on
    ``w``, what the visit records, so the files carry exactly the scores the referral saw."""
    n = w.n
    w.pf_dev = mrng.normal(0, 5, n)
    w.pain_u = mrng.normal(0, 1, n)
    w.baseline_pf_noise = mrng.normal(0, 2.5, n)
    w.baseline_pain_noise = mrng.normal(0, 1.2, n)
    visit = w.has_lbp & w.ehr & (mrng.random(n) < 0.85)
    w.baseline_pro_day = np.where(visit, mrng.integers(-25, 1, n), NEVER)
    pf_index = 36.0 - 3.5 * sev - 0.08 * (w.age - 45) + w.pf_dev  # the untreated latent up to day 0
    pf = np.round(np.clip(pf_index + w.baseline_pf_noise, 10, 90), 1)
    pain = _nrs_pain(pf_index - 36.0, w.pain_u, w.baseline_pain_noise)
    w.baseline_pf_recorded = np.where(visit, pf, np.nan)
    w.baseline_pain_recorded = np.where(visit, pain, np.nan)
    return np.where(visit, -0.06 * (pf - 36.0) + 0.25 * (pain - 6.6), 0.0)


def _nrs_pain(z: np.ndarray, u: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """The recorded NRS pain score (0..10) of a person ``z`` PROMIS-PF points from 36 on the day."""
    return np.round(np.clip(6.6 - 0.16 * z + 0.8 * u + noise, 0, 10))


def _pf_latent(w: _World, p: np.ndarray, t: np.ndarray, r: np.ndarray) -> np.ndarray:
    """PROMIS physical function (T-score) of person p on day t after index, referred on day r."""
    t = np.asarray(t, dtype=float)
    base = w.pf_base[p] + w.pf_gain[p] * (1.0 - np.exp(-np.maximum(t, 0.0) / 35.0))
    ramp = np.clip((t - np.minimum(r, 10_000)) / 30.0, 0.0, 1.0)
    return base + w.pf * _late_weight(r) * ramp


def _untreated_latent(w: _World, p: np.ndarray, t: np.ndarray) -> np.ndarray:
    t = np.asarray(t, dtype=float)
    return w.pf_base[p] + w.pf_gain[p] * (1.0 - np.exp(-np.maximum(t, 0.0) / 35.0))


def _plant_check(w: _World) -> None:
    """Which planted pre-index facts made it into the data (claims need coverage on the day)."""
    idx = np.arange(w.n)
    I = w.I
    red_day = np.where(w.red_rel < NEVER, I + w.red_rel, NEVER * 10)
    red_ok = (w.red_rel < NEVER) & (_enrolled(w, idx, red_day) | (w.red_rel == 0))
    w.red_day = np.where(red_ok, red_day, NEVER * 10)
    pipm_day = np.where(w.pipm_rel < NEVER, I + w.pipm_rel, NEVER * 10)
    ok = (w.pipm_rel < NEVER) & ((w.pipm_kind == 2) | _enrolled(w, idx, pipm_day))
    ok &= pipm_day >= D_START
    w.pipm_day = np.where(ok, pipm_day, NEVER * 10)
    prior_ok = (w.prior_lbp_day < NEVER) & _enrolled(w, idx, w.prior_lbp_day)
    w.prior_lbp_day = np.where(prior_ok, w.prior_lbp_day, NEVER * 10)
    trap_ok = (w.legacy_trap_day < NEVER) & _enrolled(w, idx, w.legacy_trap_day)
    w.legacy_trap_day = np.where(trap_ok, w.legacy_trap_day, NEVER * 10)


def _enrolled(w: _World, idx: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Whether person ``idx`` is covered (and alive, and inside the data window) on absolute ``day``."""
    day = np.asarray(day)
    ok = np.zeros(len(idx), dtype=bool)
    for k in range(3):
        ok |= (day >= w.span_s[k, idx]) & (day <= w.span_e[k, idx])
    return ok & (day <= w.death_day[idx]) & (day >= D_START) & (day <= D_END)


def _bridged_segment(w: _World, idx: np.ndarray, day: np.ndarray):
    """First and last day of the enrolment stretch holding ``day`` once gaps <= 30 days are bridged."""
    s, e = w.span_s[:, idx], w.span_e[:, idx]
    valid = s <= e
    big = np.int64(NEVER)
    gap_ab = np.where(valid[0] & valid[1], s[1] - e[0] - 1, big)
    gap_bc = np.where(valid[1] & valid[2], s[2] - e[1] - 1, big)
    b_ab, b_bc = gap_ab <= GAP_BRIDGE_DAYS, gap_bc <= GAP_BRIDGE_DAYS
    inside = valid & (day >= s) & (day <= e)
    k = np.argmax(inside, axis=0)
    start = np.select(
        [k == 0, k == 1, k == 2],
        [s[0], np.where(b_ab, s[0], s[1]), np.where(b_bc, np.where(b_ab, s[0], s[1]), s[2])],
    )
    end = np.select(
        [k == 0, k == 1, k == 2],
        [np.where(b_ab, np.where(b_bc, e[2], e[1]), e[0]), np.where(b_bc, e[2], e[1]), e[2]],
    )
    has = inside.any(axis=0)
    return np.where(has, start, big * 10), np.where(has, end, -big)


def _exclusions(w: _World) -> np.ndarray:
    """First failing cohort rule per person (index into EXCLUSION_REASONS), -1 if eligible.

    The literal reading of the rules: index = the first claim with an lbp diagnosis. Persons with a
    planted earlier LBP claim (first data year) therefore index on that claim and fail the enrolment
    rule; they also fail under the reading "first lbp claim that starts a new episode", so the set of
    eligible persons is the same under both.
    """
    idx = np.arange(w.n)
    f = w.first_lbp
    lbp = w.has_lbp
    start, _end = _bridged_segment(w, idx, np.where(lbp, f, w.I))
    insufficient = start > f - WASHOUT_DAYS
    age_f = _year(np.where(lbp, f, w.I)) - w.birth_year
    bad_age = (age_f < AGE_MIN) | (age_f > AGE_MAX)
    red = (w.red_day >= f - WASHOUT_DAYS) & (w.red_day <= f)
    pipm = (w.pipm_day >= f - WASHOUT_DAYS) & (w.pipm_day <= f - 1)
    not_new = np.zeros(w.n, dtype=bool)  # the first lbp claim has none before it by construction
    rules = [~lbp, not_new, insufficient, bad_age, red, pipm]
    out = np.full(w.n, -1, dtype=np.int64)
    for k in range(len(rules) - 1, -1, -1):
        out = np.where(rules[k], k, out)
    return out


# ----------------------------------------------------------------------------------------------
# Table builders (one chunk of persons at a time)
# ----------------------------------------------------------------------------------------------


def _person_ids(start: int, stop: int) -> pa.Array:
    return _pid(np.arange(start, stop))


def _build_eligibility(w: _World, start: int, stop: int, rng, chunk_no: int) -> pa.Table:
    """One row per person per enrolment span, for persons start..stop-1."""
    idx = np.arange(start, stop)
    s, e = w.span_s[:, idx], w.span_e[:, idx]
    valid = (s <= e).T.ravel()  # person-major: A, B, C per person
    p = np.repeat(idx, 3)[valid]
    ss, ee = s.T.ravel()[valid], e.T.ravel()[valid]
    death = w.death_day[p]
    pid = _pid(p)
    return pa.table(
        {
            "person_id": pid,
            "gender": _take(_book(GENDERS), w.sex[p]),
            "birth_year": pa.array(w.birth_year[p].astype(np.int32)),
            "death_date": pa.array(death.astype(np.int32), type=pa.date32(), mask=death >= NO_DEATH),
            "enrollment_start_date": _dates(ss),
            "enrollment_end_date": _dates(ee),
            "payer_type": _take(_book(PAYERS), w.payer[p]),
            "state": _take(_book(STATES), w.state[p]),
        }
    )


class _Claims:
    """Claim headers (one row per claim, up to 3 lines) collected from several planted sources."""

    def __init__(self):
        self.parts: list[dict[str, np.ndarray]] = []

    def add(self, p, day, *, ctype=0, pos, tax, dx, hc, mod=(), los=0):
        p = np.asarray(p, dtype=np.int64)
        m = len(p)
        if m == 0:
            return
        if len(self.parts) >= 64:  # the sort key keeps 6 bits for the source
            raise RuntimeError("too many claim sources for the sort key")

        def col(v, fill=-1):
            return np.broadcast_to(np.asarray(v, dtype=np.int32), (m,)) if v is not None else np.full(m, fill, np.int32)

        dx = list(dx) + [-1] * (N_DX - len(dx))
        hc = list(hc) + [-1] * (3 - len(hc))
        mod = list(mod) + [-1] * (3 - len(mod))
        self.parts.append(
            {
                "p": p.astype(np.int32),
                "day": col(day),
                "ctype": col(ctype),
                "pos": col(pos),
                "tax": col(tax),
                "los": col(los),
                "dx": np.stack([col(v) for v in dx], axis=1),
                "hc": np.stack([col(v) for v in hc], axis=1),
                "mod": np.stack([col(v) for v in mod], axis=1),
                "seq": np.full(m, len(self.parts), np.int32),
            }
        )

    def concat(self) -> dict[str, np.ndarray]:
        keys = self.parts[0].keys()
        return {k: np.concatenate([part[k] for part in self.parts]) for k in keys}


def _lbp_code_on(code: np.ndarray, day: np.ndarray) -> np.ndarray:
    """The lbp code as it would be written on ``day`` (M54.5 before 2021-10-01, M54.50 after)."""
    legacy, new = _ICD_INDEX[LBP_LEGACY], _ICD_INDEX["M54.50"]
    fy22 = _icd(*LBP_LOW_BACK_PAIN_FY22)
    code = np.where((code == legacy) & (day >= D_LEGACY), new, code)
    code = np.where(np.isin(code, fy22) & (day < D_LEGACY), legacy, code)
    return code


def _coverage_index(w: _World) -> None:
    """Per person: covered days in each span slot (up to death and the data end), for sampling dates."""
    s, e = w.span_s, np.minimum(w.span_e, np.minimum(w.death_day, D_END)[None, :])
    length = np.maximum(e - s + 1, 0)
    w.cov_c0 = length[0]
    w.cov_c1 = length[0] + length[1]
    w.cov_len = w.cov_c1 + length[2]
    w.cov_base = np.stack([s[0], s[1] - w.cov_c0, s[2] - w.cov_c1])


def _enrolled_days(w: _World, p: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Map uniform u in [0, 1) to a covered day of person p (spans weighted by length)."""
    off = np.floor(u * w.cov_len[p]).astype(np.int64)
    slot = (off >= w.cov_c0[p]).astype(np.int64) + (off >= w.cov_c1[p])
    return off + w.cov_base[slot, p]


def _enrolled_length(w: _World, p: np.ndarray) -> np.ndarray:
    return w.cov_len[p]


def _pick(rng, codes, m, p=None):
    return _choice(rng, np.asarray(codes), m, p)


def _h(*codes):
    return np.array([_H[c] for c in codes])


def _build_medical_claim(w: _World, start: int, stop: int, rng, chunk_no: int) -> pa.Table:
    """One row per claim line for persons start..stop-1: background care for everyone, the planted
    low-back-pain episode (index, look-back facts, follow-up care, IPM contacts) for the rest."""
    idx = np.arange(start, stop)
    n = len(idx)
    cl = _Claims()
    lbp = idx[w.has_lbp[idx]]
    I = w.I
    cond = w.cond

    # --- background care for everyone ---------------------------------------------------------
    L = _enrolled_length(w, idx)
    rate = 1.8 + 0.5 * cond[idx].sum(1) + 0.02 * np.maximum(w.age[idx] - 40, 0)
    k = rng.poisson(rate * L / 365.25)
    p = np.repeat(idx, k)
    m = len(p)
    day = _enrolled_days(w, p, rng.random(m))
    # dx: an acute reason or a chronic condition first, then up to three chronic conditions
    chronic_pick = _chronic_codes(w, p, rng, 3)
    acute = _pick(rng, _icd(*ACUTE_DX), m)
    first_is_chronic = (chronic_pick[:, 0] >= 0) & (rng.random(m) < 0.5)
    dx1 = np.where(first_is_chronic, chronic_pick[:, 0], acute)
    dx2 = np.where(first_is_chronic, chronic_pick[:, 1], chronic_pick[:, 0])
    dx3 = np.where(first_is_chronic, chronic_pick[:, 2], chronic_pick[:, 1])
    kind = _choice(rng, np.arange(5), m, [0.76, 0.12, 0.06, 0.02, 0.04])
    em = _pick(rng, _h("99212", "99213", "99214", "99215", "99203"), m, [0.15, 0.5, 0.25, 0.04, 0.06])
    lab = np.where(rng.random(m) < 0.3, _pick(rng, _h("36415", "80053", "85025", "83036", "80061", "81003"), m), -1)
    extra = np.where(rng.random(m) < 0.12, _pick(rng, _h("93000", "90471", "71046"), m), -1)
    tele = rng.random(m) < 0.1
    office = kind == 0
    cl.add(
        p[office], day[office], pos=np.where(tele, _P["02"], _P["11"])[office],
        tax=_pick(rng, T_PCP, m)[office], dx=[dx1[office], dx2[office], dx3[office]],
        hc=[em[office], lab[office], extra[office]],
        mod=[np.where((lab[office] >= 0) & (rng.random(office.sum()) < 0.3), _M["25"], -1)],
    )  # fmt: skip
    opd = kind == 1
    cl.add(
        p[opd], day[opd], ctype=1, pos=_P["22"], tax=_T["282N00000X"], dx=[dx1[opd], dx2[opd]],
        hc=[_pick(rng, _h("80053", "85025", "71046", "93000"), int(opd.sum())), _H["36415"]],
    )  # fmt: skip
    ed = kind == 2
    ned = int(ed.sum())
    ed_code = _pick(rng, _h("99283", "99284", "99285"), ned, [0.5, 0.4, 0.1])
    cl.add(p[ed], day[ed], ctype=1, pos=_P["23"], tax=_T["282N00000X"], dx=[acute[ed], dx2[ed]], hc=[ed_code, _H["71046"]])
    cl.add(p[ed], day[ed], pos=_P["23"], tax=_T["207P00000X"], dx=[acute[ed], dx2[ed]], hc=[ed_code])
    ip = kind == 3
    nip = int(ip.sum())
    cl.add(p[ip], day[ip], ctype=1, pos=_P["21"], tax=_T["282N00000X"], dx=[dx1[ip], dx2[ip], dx3[ip]], hc=[-2], los=rng.integers(1, 6, nip))
    cl.add(p[ip], day[ip], pos=_P["21"], tax=_pick(rng, T_PCP[:2], nip), dx=[dx1[ip], dx2[ip]], hc=[_H["99222"]])
    prev = kind == 4
    npv = int(prev.sum())
    cl.add(
        p[prev], day[prev], pos=_P["11"], tax=_pick(rng, T_PCP, npv), dx=[_ICD_INDEX["Z00.00"], dx2[prev]],
        hc=[np.where(w.age[p[prev]] >= 65, _H["G0439"], _pick(rng, _h("99395", "99396"), npv)), _H["90471"], _H["90686"]],
    )  # fmt: skip

    # Near-miss back and joint care for anyone (codes outside the lbp / IPM value sets)
    nm = idx[rng.random(n) < 0.04]
    nm_day = _enrolled_days(w, nm, rng.random(len(nm)))
    nm_dx = _pick(rng, _icd("M54.9", "M54.6", "M54.2", "M25.561"), len(nm))
    nm_kind = rng.random(len(nm))
    cl.add(nm, nm_day, pos=_P["11"], tax=_T["207X00000X"], dx=[nm_dx], hc=[np.where(nm_kind < 0.5, _H["20610"], _H["99213"])])
    chiro = nm[nm_kind > 0.8]
    cl.add(chiro, nm_day[nm_kind > 0.8] + 7, pos=_P["11"], tax=_T["111N00000X"], dx=[_ICD_INDEX["M54.9"]], hc=[_H["98940"]])

    # Persons without an lbp episode: occasional red flags, IPM contacts and legacy M54.5 after 2021-10
    other = idx[~w.has_lbp[idx]]
    no = len(other)
    rf = other[rng.random(no) < 0.02]
    cl.add(rf, _enrolled_days(w, rf, rng.random(len(rf))), pos=_P["11"], tax=_pick(rng, T_PCP, len(rf)),
           dx=[_pick(rng, _icd(*RED_FLAGS_ANY), len(rf))], hc=[_H["99214"]])  # fmt: skip
    bi = other[rng.random(no) < 0.015]
    cl.add(bi, _enrolled_days(w, bi, rng.random(len(bi))), pos=_P["11"], tax=_pick(rng, T_IPM, len(bi)),
           dx=[_pick(rng, _icd("M54.2", "M54.12", "G89.29"), len(bi))], hc=[_pick(rng, _h("20552", "64490"), len(bi))])  # fmt: skip
    lg = other[rng.random(no) < 0.01]
    lg_day = _enrolled_days(w, lg, rng.random(len(lg)))
    lg_keep = lg_day >= D_LEGACY
    cl.add(lg[lg_keep], lg_day[lg_keep], pos=_P["11"], tax=_pick(rng, T_PCP, int(lg_keep.sum())), dx=[_ICD_INDEX[LBP_LEGACY]], hc=[_H["99213"]])

    # --- the low-back-pain episode (planted) ---------------------------------------------------
    nl = len(lbp)
    Il = I[lbp]
    code0 = w.index_code[lbp]
    # chronic condition visits in [-55, -5]: every condition is recorded inside the look-back
    cp, cc = np.nonzero(cond[lbp])
    cp_p = lbp[cp]
    cl.add(cp_p, I[cp_p] - rng.integers(5, 56, len(cp)), pos=_P["11"], tax=_pick(rng, T_PCP, len(cp)),
           dx=[_icd(*(c[1] for c in CONDITIONS))[cc]], hc=[_pick(rng, _h("99213", "99214"), len(cp))])  # fmt: skip
    pt = lbp[w.prior_pt[lbp]]
    cl.add(pt, I[pt] - rng.integers(5, 56, len(pt)), pos=_P["11"], tax=_T["225100000X"],
           dx=[_pick(rng, _icd("M25.561", "M54.2", "M25.511"), len(pt))], hc=[_H["97110"], _H["97140"]], mod=[_M["GP"], _M["GP"]])  # fmt: skip
    im = lbp[w.prior_img[lbp]]
    cl.add(im, I[im] - rng.integers(5, 56, len(im)), pos=_P["22"], tax=_T["2085R0202X"],
           dx=[_pick(rng, _icd("M54.9", "M54.6"), len(im))], hc=[_pick(rng, _h("72148", "72131"), len(im))], mod=[_M["26"]])  # fmt: skip

    # index claim: lbp code in position 1 (or 2 behind another reason); red flag in position 3 for some
    ctx = np.where(w.cond[lbp].any(1), _chronic_codes(w, lbp, rng, 1)[:, 0], _pick(rng, _icd("Z00.00", "J06.9"), nl))
    ctx = np.where(ctx < 0, _ICD_INDEX["J06.9"], ctx)
    first = w.index_dx_pos[lbp] == 1
    d1 = np.where(first, code0, ctx)
    d2 = np.where(first, np.where(rng.random(nl) < 0.4, ctx, -1), code0)
    d3 = np.where(w.red_rel[lbp] == 0, w.red_code[lbp], -1)
    ed = w.index_ed[lbp]
    em = _pick(rng, _h("99213", "99214", "99203", "99204"), nl, [0.45, 0.3, 0.15, 0.1])
    cl.add(lbp[~ed], Il[~ed], pos=_P["11"], tax=_pick(rng, T_PCP, int((~ed).sum())), dx=[d1[~ed], d2[~ed], d3[~ed]], hc=[em[~ed]])
    ne = int(ed.sum())
    cl.add(lbp[ed], Il[ed], ctype=1, pos=_P["23"], tax=_T["282N00000X"], dx=[d1[ed], d2[ed], d3[ed]], hc=[_H["99284"], _H["72100"]])
    cl.add(lbp[ed], Il[ed], pos=_P["23"], tax=_T["207P00000X"], dx=[d1[ed], d2[ed], d3[ed]], hc=[_pick(rng, _h("99283", "99284"), ne)])

    # imaging around index, follow-up visits, physical therapy: lbp codes only up to day 365
    radic = w.radic[lbp]
    img = rng.random(nl) < 0.15 + 0.25 * radic
    img_rel = np.where(rng.random(nl) < 0.3, 0, rng.integers(1, 46, nl))
    ip_ = lbp[img]
    cl.add(ip_, Il[img] + img_rel[img], pos=_P["22"], tax=_T["2085R0202X"],
           dx=[_lbp_code_on(code0[img], Il[img] + img_rel[img])], hc=[_H["72148"]], mod=[_M["26"]])  # fmt: skip
    nfu = rng.poisson(1.2 + 0.6 * radic)
    fp = np.repeat(lbp, nfu)
    fr = rng.integers(7, 301, len(fp))
    fcode = np.where(rng.random(len(fp)) < 0.6, np.repeat(code0, nfu), _pick(rng, _icd(*(LBP_NONRADIC + LBP_FOLLOWUP_EXTRA)), len(fp)))
    fday = I[fp] + fr
    fcode = _lbp_code_on(fcode, fday)
    fy25 = fday >= _dn(date(2024, 10, 1))
    fcode = np.where(fy25 & (rng.random(len(fp)) < 0.3), _pick(rng, _icd(*LBP_FY2025), len(fp)), fcode)
    ftax = _pick(rng, np.concatenate([T_PCP, [_T["207X00000X"], _T["208100000X"], _T["111N00000X"]]]), len(fp))
    fhc = np.where(ftax == _T["111N00000X"], _H["98940"], _pick(rng, _h("99213", "99214"), len(fp)))
    cl.add(fp, fday, pos=np.where(rng.random(len(fp)) < 0.15, _P["02"], _P["11"]), tax=ftax, dx=[fcode], hc=[fhc])
    has_pt = rng.random(nl) < 0.3 + 0.15 * radic
    npt = np.where(has_pt, rng.integers(2, 9, nl), 0)
    pp = np.repeat(lbp, npt)
    seq = np.arange(len(pp)) - np.repeat(np.cumsum(npt) - npt, npt)
    pday = I[pp] + np.repeat(rng.integers(3, 41, nl), npt) + 7 * seq
    pcode = _lbp_code_on(np.repeat(code0, npt), pday)
    cl.add(pp, pday, pos=_P["11"], tax=_T["225100000X"], dx=[pcode],
           hc=[np.where(seq == 0, _H["97161"], _H["97110"]), np.where(seq == 0, -1, _pick(rng, _h("97140", "97112", "97530"), len(pp)))],
           mod=[_M["GP"], _M["GP"]])  # fmt: skip
    # non-IPM injections and general anaesthesiology / PM&R after index (value-set traps)
    nm2 = lbp[rng.random(nl) < 0.04]
    nm2_day = I[nm2] + rng.integers(10, 200, len(nm2))
    cl.add(nm2, nm2_day, pos=_P["11"], tax=_pick(rng, np.array([_T["207L00000X"], _T["208100000X"], _T["207X00000X"]]), len(nm2)),
           dx=[_lbp_code_on(w.index_code[nm2], nm2_day)], hc=[_pick(rng, _h("64450", "20610", "20550", "99204"), len(nm2))])  # fmt: skip

    # red flags (look-back, old or later; the index-claim ones are already on the index claim)
    rf = lbp[(w.red_rel[lbp] != 0) & (w.red_rel[lbp] < NEVER)]
    cl.add(rf, I[rf] + w.red_rel[rf], pos=_P["11"], tax=_pick(rng, T_PCP, len(rf)), dx=[w.red_code[rf]], hc=[_H["99214"]])
    # prior IPM contacts (non-lbp reasons: neck pain, chronic pain)
    pi = lbp[w.pipm_rel[lbp] < NEVER]
    _add_ipm_contact(cl, w, rng, pi, I[pi] + w.pipm_rel[pi], w.pipm_kind[pi], _pick(rng, _icd("M54.2", "M54.12", "G89.29", "M25.511"), len(pi)))
    # prior LBP claim and the legacy M54.5 trap
    pl = lbp[w.prior_lbp_day[lbp] < NEVER]
    cl.add(pl, w.prior_lbp_day[pl], pos=_P["11"], tax=_pick(rng, T_PCP, len(pl)),
           dx=[_lbp_code_on(w.index_code[pl], w.prior_lbp_day[pl])], hc=[_H["99213"]])  # fmt: skip
    lt = lbp[w.legacy_trap_day[lbp] < NEVER]
    cl.add(lt, w.legacy_trap_day[lt], pos=_P["11"], tax=_pick(rng, T_PCP, len(lt)), dx=[_ICD_INDEX[LBP_LEGACY]], hc=[_H["99213"]])

    # referral: first IPM contact, a follow-on procedure, later IPM visits
    rp = lbp[w.contact_day[lbp] < NEVER]
    rday = I[rp] + w.contact_day[rp]
    _add_ipm_contact(cl, w, rng, rp, rday, w.ref_kind[rp], _episode_dx(w, rp, rday))
    fo = lbp[w.followon_day[lbp] < NEVER]
    foday = I[fo] + w.followon_day[fo]
    _add_ipm_contact(cl, w, rng, fo, foday, np.zeros(len(fo), np.int64), _episode_dx(w, fo, foday))
    again = rp[rng.random(len(rp)) < 0.3]
    aday = I[again] + w.contact_day[again] + rng.integers(30, 121, len(again))
    _add_ipm_contact(cl, w, rng, again, aday, np.ones(len(again), np.int64), _episode_dx(w, again, aday))

    return _claims_table(w, cl, rng, chunk_no, start, stop)


def _episode_dx(w: _World, p: np.ndarray, day: np.ndarray) -> np.ndarray:
    """The person's lbp code as written on ``day``; past day 365 the visit is coded as chronic pain,
    so no lbp diagnosis falls more than 365 days after the index (one episode per person)."""
    code = _lbp_code_on(w.index_code[p], day)
    return np.where(day - w.I[p] <= FOLLOWUP_DAYS, code, _ICD_INDEX["G89.29"])


# What an IPM contact bills (read by the cost truth, :func:`_ipm_contact_mean_cost`, too).
_IPM_PROCEDURE_P = (0.3, 0.25, 0.2, 0.1, 0.1, 0.05)  # shares of IPM_PROCEDURES
_IPM_FACILITY_SHARE = 0.7  # procedures with a facility claim too
_IPM_VISIT_CODES = ("99204", "99244", "99214")  # an IPM visit claim: one of these, equally often
_IPM_EHR_VISIT_CODE = "99204"  # the claim of a visit the EHR shows with the IPM taxonomy


def _add_ipm_contact(cl: _Claims, w: _World, rng, p, day, kind, dx) -> None:
    """kind 0: IPM procedure (professional claim by an IPM provider + facility claim);
    kind 1: visit billed by an IPM provider; kind 2: visit seen only in the EHR (its claim has no
    rendering taxonomy). EHR encounters are written by the encounter builder."""
    p, day, kind, dx = (np.asarray(a, dtype=np.int64) for a in (p, day, kind, dx))
    m = len(p)
    proc = _pick(rng, _h(*IPM_PROCEDURES), m, _IPM_PROCEDURE_P)
    side = _pick(rng, np.array([_M["RT"], _M["LT"], _M["50"]]), m)
    side = np.where(np.isin(proc, _h("64483", "64493", "64635")), side, -1)
    tax = _pick(rng, T_IPM, m, [0.4, 0.2, 0.25, 0.1, 0.05])
    k0, k1, k2 = kind == 0, kind == 1, kind == 2
    cl.add(p[k0], day[k0], pos=_P["24"], tax=tax[k0], dx=[dx[k0]], hc=[proc[k0]], mod=[side[k0]])
    fac = k0 & (rng.random(m) < _IPM_FACILITY_SHARE)
    cl.add(p[fac], day[fac], ctype=1, pos=_P["24"], tax=_T["261QA1903X"], dx=[dx[fac]], hc=[proc[fac]], mod=[side[fac]])
    cl.add(p[k1], day[k1], pos=_P["11"], tax=tax[k1], dx=[dx[k1]], hc=[_pick(rng, _h(*_IPM_VISIT_CODES), int(k1.sum()))])
    cl.add(p[k2], day[k2], pos=_P["11"], tax=-1, dx=[dx[k2]], hc=[_H[_IPM_EHR_VISIT_CODE]])


def _chronic_codes(w: _World, p: np.ndarray, rng, k: int) -> np.ndarray:
    """Up to k distinct chronic-condition codes of each person p (random start), -1 where fewer."""
    lo = w.cond_ptr[p]
    cnt = w.cond_ptr[p + 1] - lo
    off = np.floor(rng.random(len(p)) * cnt).astype(np.int64)
    out = np.full((len(p), k), -1, dtype=np.int64)
    safe = np.maximum(cnt, 1)
    for j in range(k):
        pos = lo + (off + j) % safe
        out[:, j] = np.where(j < cnt, w.cond_codes[np.minimum(pos, len(w.cond_codes) - 1)], -1)
    return out


# Code books must hold each string once: the parquet writer's dictionary encoding is not
# byte-reproducible when an arrow dictionary repeats a value.
_ICD_DOTTED = [c for c in ICD if "." in c]
_ICD_BOOK = _book(list(ICD) + [c.replace(".", "") for c in _ICD_DOTTED])
_ICD_UNDOTTED = np.array(
    [len(ICD) + _ICD_DOTTED.index(c) if "." in c else k for k, c in enumerate(ICD)] + [-1], dtype=np.int64
)  # index -1 (null) maps to -1


def _icd_written(code: np.ndarray, dotted: np.ndarray) -> np.ndarray:
    """Book index of each code as written (with or without the dot); -1 stays null."""
    return np.where(dotted | (code < 0), code, _ICD_UNDOTTED[code])
_HCPCS_BOOK = _book(HCPCS)
_TAX_BOOK = _book(TAXONOMIES)
_POS_BOOK = _book(POS_CODES)
_MOD_BOOK = _book(MODIFIERS)
_PRICES = np.array([HCPCS_PRICES[c] for c in HCPCS], dtype=float)


def _npi_book() -> pa.Array:
    # NPIs with a valid Luhn check digit (prefix 80840), 1xxxxxxxx for people, 2xxxxxxxx for organisations.
    rng = _rng(0, 99)
    base = np.empty((len(TAXONOMIES), NPI_POOL), dtype=np.int64)
    for t, code in enumerate(TAXONOMIES):
        first = 2 if code in _ORG_TAXONOMIES else 1
        base[t] = first * 10**8 + rng.choice(10**8, NPI_POOL, replace=False)
    base = base.ravel()
    digits = (base[:, None] // 10 ** np.arange(8, -1, -1)) % 10
    doubled = digits[:, 0::2] * 2  # positions 1,3,5,7,9 from the left (rightmost of the base is doubled)
    s = (doubled // 10 + doubled % 10).sum(1) + digits[:, 1::2].sum(1) + 24
    check = (10 - s % 10) % 10
    return _book(f"{b}{c}" for b, c in zip(base.tolist(), check.tolist()))


_NPI_BOOK = _npi_book()


_LINE_PRICE_SIGMA = 0.25  # log-normal spread of a medical claim line's allowed amount around its price
_AMOUNT_NULL_SHARE = 0.01  # medical claim lines without amounts


def _claims_table(w: _World, cl: _Claims, rng, chunk_no: int, start: int, stop: int) -> pa.Table:
    """Claim headers -> one row per claim line (grain of medical_claim), sorted by person, date."""
    c = cl.concat()
    sel = np.nonzero(_enrolled(w, c["p"], c["day"]))[0]
    # order by person, date, source: one int64 key (person < 2**17 per chunk, day < 2**12, source < 2**6)
    key = ((c["p"][sel].astype(np.int64) - start) << 18) | ((c["day"][sel].astype(np.int64) - D_START) << 6) | c["seq"][sel]
    order = sel[np.argsort(key, kind="stable")]
    m = len(order)
    first_id = _first_id(chunk_no, m)
    # lines: one per procedure code; -2 marks a line without a code (inpatient facility)
    hc = c["hc"][order]
    present = hc != -1
    nlines = present.sum(1)
    lc = np.repeat(np.arange(m), nlines)
    src = order[lc]  # line -> row of the unsorted claim arrays (one gather per column)
    line_no = np.arange(len(lc)) - np.repeat(np.cumsum(nlines) - nlines, nlines) + 1
    line_hc = hc[present]
    line_mod = c["mod"][order][present]
    nl = len(lc)
    dotted = (rng.random(m) < 0.6)[lc]
    price = np.where(line_hc >= 0, _PRICES[np.maximum(line_hc, 0)], 9000.0)
    allowed = np.round(price * rng.lognormal(0.0, _LINE_PRICE_SIGMA, nl), 2)
    p = c["p"][src]
    u = rng.random(nl)
    paid_share = np.where(w.payer[p] == 2, 0.5 + 0.25 * u, 0.6 + 0.35 * u)  # Medicaid pays less
    paid = np.round(allowed * paid_share, 2)
    amount_null = rng.random(nl) < _AMOUNT_NULL_SHARE
    tax = c["tax"][src]
    npi = np.where(tax >= 0, tax * NPI_POOL + rng.integers(0, NPI_POOL, m)[lc], -1)
    start_day = c["day"][src]
    end_day = np.minimum(start_day + c["los"][src], D_END)
    cols = {
        "claim_id": _strings("CL", first_id + np.arange(m), 10).take(pa.array(lc)),
        "claim_line_number": pa.array(line_no.astype(np.int32)),
        "person_id": _person_ids(start, stop).take(pa.array(p - start)),
        "claim_type": _take(_book(["professional", "institutional"]), c["ctype"][src]),
        "claim_start_date": _dates(start_day),
        "claim_end_date": _dates(end_day),
        "place_of_service_code": _take(_POS_BOOK, c["pos"][src]),
        "rendering_npi": _take(_NPI_BOOK, npi),
        "rendering_taxonomy_code": _take(_TAX_BOOK, tax),
        "hcpcs_code": _take(_HCPCS_BOOK, np.where(line_hc >= 0, line_hc, -1)),
        "hcpcs_modifier_1": _take(_MOD_BOOK, line_mod),
        "allowed_amount": pa.array(allowed, mask=amount_null),
        "paid_amount": pa.array(paid, mask=amount_null),
    }
    dx = c["dx"][src]
    for k in range(N_DX):
        cols[f"{DIAGNOSIS_COLUMN_PREFIX}{k + 1}"] = _take(_ICD_BOOK, _icd_written(dx[:, k], dotted))
    return pa.table(cols)


_NDC11 = [row[0] for row in NDC_ROWS]
# The contract also accepts the hyphenated 10-digit form; write it where the labeler has a leading 0.
_NDC_HYPHENATED = [f"{c[1:5]}-{c[5:9]}-{c[9:]}" for c in _NDC11 if c[0] == "0"]
_NDC_BOOK = _book(_NDC11 + _NDC_HYPHENATED)
_NDC_AS_HYPHENATED = np.array(
    [len(_NDC11) + _NDC_HYPHENATED.index(f"{c[1:5]}-{c[5:9]}-{c[9:]}") if c[0] == "0" else k for k, c in enumerate(_NDC11)]
)
_NDC_UNITS = np.array([row[6] for row in NDC_ROWS], dtype=float)
_NDC_PRICE = np.array([row[7] for row in NDC_ROWS], dtype=float)


def _build_pharmacy_claim(w: _World, start: int, stop: int, rng, chunk_no: int) -> pa.Table:
    """One row per fill (claim line 1): planted pre-index opioid use, opioids and analgesics after
    index, chronic medicines in 90-day supplies and antibiotics, all inside coverage."""
    idx = np.arange(start, stop)
    I = w.I
    parts = []  # (p, day, ndc, days_supply)
    # opioid use in the 90 days before index (planted, always inside coverage)
    op = idx[w.opioid[idx]]
    nf = rng.integers(1, 4, len(op))
    p = np.repeat(op, nf)
    ndc = np.repeat(_pick(rng, _NDC_OPIOID, len(op), [0.15, 0.1, 0.15, 0.2, 0.1, 0.25, 0.05]), nf)
    parts.append((p, I[p] - rng.integers(2, 56, len(p)), ndc, _pick(rng, np.array([5, 7, 10, 14, 30]), len(p))))
    # opioids after index (never on the index day), more for the sicker
    lbp = idx[w.has_lbp[idx]]
    po = lbp[rng.random(len(lbp)) < _expit(-1.0 + 0.8 * w.sev[lbp])]
    nf = rng.integers(1, 5, len(po))
    p = np.repeat(po, nf)
    parts.append((p, I[p] + rng.integers(1, 181, len(p)), _pick(rng, _NDC_OPIOID, len(p)), _pick(rng, np.array([5, 7, 14, 30]), len(p))))
    # NSAIDs, muscle relaxants, gabapentin around index
    ac = lbp[rng.random(len(lbp)) < 0.5]
    nf = rng.integers(1, 3, len(ac))
    p = np.repeat(ac, nf)
    parts.append((p, I[p] + rng.integers(0, 31, len(p)), _pick(rng, _NDC_ACUTE, len(p)), _pick(rng, np.array([10, 14, 30]), len(p))))
    # chronic medicines, 90-day supplies through coverage
    L = _enrolled_length(w, idx)
    for cond_name, ndc_k in _NDC_CHRONIC.items():
        on = idx[w.cond[idx, _COND[cond_name]] & (rng.random(len(idx)) < 0.5)]
        nf = rng.poisson(_enrolled_length(w, on) / 90.0)
        p = np.repeat(on, nf)
        parts.append((p, _enrolled_days(w, p, rng.random(len(p))), np.full(len(p), ndc_k), np.full(len(p), 90)))
    # antibiotics for anyone
    nf = rng.poisson(0.3 * L / 365.25)
    p = np.repeat(idx, nf)
    parts.append((p, _enrolled_days(w, p, rng.random(len(p))), np.full(len(p), _NDC_ANTIBIOTIC), np.full(len(p), 10)))

    p = np.concatenate([x[0] for x in parts])
    day = np.concatenate([x[1] for x in parts])
    ndc = np.concatenate([x[2] for x in parts]).astype(np.int64)
    supply = np.concatenate([x[3] for x in parts]).astype(np.int64)
    keep = _enrolled(w, p, day)
    p, day, ndc, supply = p[keep], day[keep], ndc[keep], supply[keep]
    order = np.lexsort((ndc, day, p))
    p, day, ndc, supply = p[order], day[order], ndc[order], supply[order]
    m = len(p)
    first_id = _first_id(chunk_no, m)
    qty = supply * _NDC_UNITS[ndc] * np.where(rng.random(m) < 0.2, 1.5, 1.0)
    allowed = np.round(qty * _NDC_PRICE[ndc] * rng.lognormal(0.0, 0.2, m) + 2.0, 2)
    paid = np.round(allowed * rng.uniform(0.5, 0.9, m), 2)
    hyphen = rng.random(m) < 0.1
    return pa.table(
        {
            "claim_id": _strings("RX", np.arange(first_id, first_id + m), 10),
            "claim_line_number": pa.array(np.ones(m, dtype=np.int32)),
            "person_id": _pid(p),
            "dispensing_date": _dates(day),
            "ndc_code": _take(_NDC_BOOK, np.where(hyphen, _NDC_AS_HYPHENATED[ndc], ndc)),
            "quantity": pa.array(qty),
            "days_supply": pa.array(supply.astype(np.int32)),
            "allowed_amount": pa.array(allowed),
            "paid_amount": pa.array(paid),
        }
    )


def _build_ndc_reference(w: _World, start: int, stop: int, rng, chunk_no: int) -> pa.Table | None:
    """One row per NDC (written with the first chunk only)."""
    if chunk_no != 0:
        return None
    return pa.table(
        {
            "ndc_code": pa.array(_NDC11),
            "ingredient": pa.array([r[1] for r in NDC_ROWS]),
            "strength_per_unit": pa.array([r[2] for r in NDC_ROWS], pa.float64()),
            "strength_unit": pa.array([r[3] for r in NDC_ROWS]),
            "is_opioid": pa.array([r[4] for r in NDC_ROWS]),
            "mme_conversion_factor": pa.array([r[5] for r in NDC_ROWS], pa.float64()),
        }
    )


_ENC = {t: k for k, t in enumerate(ENCOUNTER_TYPES)}


def _build_ehr_encounter(w: _World, start: int, stop: int, rng, chunk_no: int) -> pa.Table:
    """One row per encounter: background visits, the index visit, PRO visits and IPM visits (EHR
    mirrors of IPM claims and EHR-only IPM visits); the last chunk adds a few EHR-only persons."""
    idx = np.arange(start, stop)
    I = w.I
    linked = idx[w.ehr[idx]]
    parts = []  # (p, day, type, tax, dx)
    # background encounters across the data window
    alive_to = np.minimum(w.death_day[linked], D_END)
    span = np.maximum(alive_to - D_START + 1, 0)
    k = rng.poisson(0.8 * span / 365.25)
    p = np.repeat(linked, k)
    m = len(p)
    day = D_START + np.floor(rng.random(m) * np.repeat(span, k)).astype(np.int64)
    etype = _choice(rng, np.array([_ENC["office"], _ENC["telehealth"], _ENC["ed"], _ENC["inpatient"], _ENC["other"]]), m, [0.7, 0.15, 0.08, 0.02, 0.05])
    tax = np.where(etype == _ENC["ed"], _T["207P00000X"], _pick(rng, T_PCP, m))
    tax = np.where((etype == _ENC["other"]) | (rng.random(m) < 0.05), -1, tax)
    chronic = _chronic_codes(w, p, rng, 1)[:, 0]
    dx = np.where((chronic >= 0) & (rng.random(m) < 0.4), chronic, _pick(rng, _icd(*ACUTE_DX), m))
    dx = np.where(rng.random(m) < 0.1, -1, dx)
    parts.append((p, day, etype, tax, dx))
    # neck-pain IPM visits for persons without an lbp episode
    bi = linked[~w.has_lbp[linked] & (rng.random(len(linked)) < 0.01)]
    parts.append((bi, D_START + np.floor(rng.random(len(bi)) * 2000).astype(np.int64), np.full(len(bi), _ENC["office"]),
                  _pick(rng, T_IPM, len(bi)), np.full(len(bi), _ICD_INDEX["M54.2"])))  # fmt: skip
    # the episode: index visit, PRO visits, IPM contacts (first, follow-on) and prior IPM
    lb = linked[w.has_lbp[linked]]
    iv = lb[rng.random(len(lb)) < 0.9]
    ed = w.index_ed[iv]
    parts.append((iv, I[iv], np.where(ed, _ENC["ed"], _ENC["office"]), np.where(ed, _T["207P00000X"], _pick(rng, T_PCP, len(iv))),
                  _lbp_code_on(w.index_code[iv], I[iv])))  # fmt: skip
    pv, pj = np.nonzero((w.pro_days[:_PRO_VISITS_OWN_ENCOUNTER, lb] < NEVER).T)  # an intake's encounter is the IPM contact's
    pv = lb[pv]
    pday = I[pv] + w.pro_days[pj, pv]
    parts.append((pv, pday, np.where(rng.random(len(pv)) < 0.8, _ENC["office"], _ENC["telehealth"]),
                  _pick(rng, np.concatenate([T_PCP, [_T["208100000X"], _T["207X00000X"]]]), len(pv)), _episode_dx(w, pv, pday)))  # fmt: skip
    c = lb[w.contact_day[lb] < NEVER]
    kind = w.ref_kind[c]
    mirror = (kind == 2) | (rng.random(len(c)) < 0.7)
    c, kind = c[mirror], kind[mirror]
    cday = I[c] + w.contact_day[c]
    parts.append((c, cday, np.where(kind == 0, _ENC["procedure"], _ENC["office"]), _pick(rng, T_IPM, len(c)), _episode_dx(w, c, cday)))
    f = lb[(w.followon_day[lb] < NEVER) & (rng.random(len(lb)) < 0.7)]
    fday = I[f] + w.followon_day[f]
    parts.append((f, fday, np.full(len(f), _ENC["procedure"]), _pick(rng, T_IPM, len(f)), _episode_dx(w, f, fday)))
    pi = lb[w.pipm_day[lb] < NEVER]
    pi = pi[(w.pipm_kind[pi] == 2) | (rng.random(len(pi)) < 0.5)]
    parts.append((pi, w.pipm_day[pi], np.full(len(pi), _ENC["office"]), _pick(rng, T_IPM, len(pi)),
                  _pick(rng, _icd("M54.2", "M54.12", "G89.29"), len(pi))))  # fmt: skip

    p = np.concatenate([x[0] for x in parts]).astype(np.int64)
    day = np.concatenate([x[1] for x in parts]).astype(np.int64)
    etype = np.concatenate([x[2] for x in parts]).astype(np.int64)
    tax = np.concatenate([x[3] for x in parts]).astype(np.int64)
    dx = np.concatenate([x[4] for x in parts]).astype(np.int64)
    keep = (day >= D_START) & (day <= D_END) & (day <= w.death_day[p])
    p, day, etype, tax, dx = p[keep], day[keep], etype[keep], tax[keep], dx[keep]
    if stop == w.n:  # a few EHR-only persons with no eligibility record (ingest counts them)
        extra = max(1, w.n // 500)
        ep = np.repeat(np.arange(extra), 2)
        eday = D_START + rng.integers(0, D_END - D_START + 1, len(ep))
        day = np.concatenate([day, eday])
        p = np.concatenate([p, w.n + ep])
        etype = np.concatenate([etype, np.full(len(ep), _ENC["office"])])
        tax = np.concatenate([tax, _pick(rng, T_PCP, len(ep))])
        dx = np.concatenate([dx, _pick(rng, _icd(*ACUTE_DX), len(ep))])
    order = np.lexsort((etype, day, p))
    m = len(order)
    first_id = _first_id(chunk_no, m)
    dotted = rng.random(m) < 0.5
    dx = dx[order]
    return pa.table(
        {
            "person_id": _pid(p[order]),
            "encounter_id": _strings("EN", np.arange(first_id, first_id + m), 10),
            "encounter_date": _dates(day[order]),
            "encounter_type": _take(_book(ENCOUNTER_TYPES), etype[order]),
            "provider_taxonomy_code": _take(_TAX_BOOK, tax[order]),
            "primary_diagnosis_code": _take(_ICD_BOOK, _icd_written(dx, dotted)),
        }
    )


def _build_ehr_pro(w: _World, start: int, stop: int, rng, chunk_no: int) -> pa.Table:
    """One row per person per assessment per instrument, on the planted PRO visit days."""
    idx = np.arange(start, stop)
    pv, pj = np.nonzero((w.pro_days[:, idx] < NEVER).T)
    p = idx[pv]
    t = w.pro_days[pj, p]
    m = len(p)
    z = _untreated_latent(w, p, t) - 36.0
    u = w.pro_u[:, p]
    depr = w.cond[p, _COND["depression"]].astype(float)
    anx = w.cond[p, _COND["anxiety"]].astype(float)
    pf = np.round(np.clip(_pf_latent(w, p, t, w.r_effect[p]) + w.pf_noise[pj, p], 10, 90), 1)
    scores = [
        pf,
        np.round(np.clip(72 - 0.8 * z + 2 * u[0] + rng.normal(0, 3, m), 10, 90), 1),
        np.round(np.clip(46 - 1.4 * z + 5 * u[1] + rng.normal(0, 6, m), 0, 100)),
        np.round(np.clip(0.56 + 0.014 * z + 0.05 * u[3] + rng.normal(0, 0.06, m), -0.594, 1.0), 3),
        _nrs_pain(z, u[2], _pain_noise(w, p, pj, rng.normal(0, 1.2, m))),
        np.round(np.clip(4 + 5 * depr + 1.5 * anx - 0.12 * z + rng.normal(0, 2.5, m), 0, 27)),
        np.round(np.clip(3 + 5 * anx + rng.normal(0, 2.5, m), 0, 21)),
    ]
    present = np.stack(
        [
            np.ones(m, bool),
            rng.random(m) < 0.97,
            rng.random(m) < 0.8,
            rng.random(m) < 0.7,
            (rng.random(m) < 0.97) | ((pj == 0) & w.mech.pro_referral_drivers),  # the score the referral saw
            rng.random(m) < 0.6,
            (pj == 0) & (rng.random(m) < 0.2),
        ]
    )
    vis, ins = np.nonzero(present.T)  # visit-major, instruments in order
    score = np.stack(scores)[ins, vis]
    day = w.I[p[vis]] + t[vis]
    order = np.lexsort((ins, day, p[vis]))
    return pa.table(
        {
            "person_id": _pid(p[vis][order]),
            "assessment_date": _dates(day[order]),
            "instrument": _take(_book(INSTRUMENTS), ins[order]),
            "score": pa.array(score[order] + 0.0),
        }
    )


def _pain_noise(w: _World, p: np.ndarray, visit: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """The NRS pain noise of each assessment: the baseline visit's is the one the referral saw."""
    if not w.mech.pro_referral_drivers:
        return noise
    return np.where(visit == 0, w.baseline_pain_noise[p], noise)


def _build_ehr_work_status(w: _World, start: int, stop: int, rng, chunk_no: int) -> pa.Table:
    """One row per recorded work status: the absence near index, later absence records (after
    day 14), the first event (RTW / long-term disability / retired) and background statuses."""
    idx = np.arange(start, stop)
    I = w.I
    lb = idx[w.has_lbp[idx] & w.ehr[idx]]
    parts = []  # (p, day, status)
    emp = lb[w.employed[lb] & (rng.random(len(lb)) < 0.4)]
    parts.append((emp, I[emp] - rng.integers(60, 401, len(emp)), np.full(len(emp), _W["working"])))
    off = lb[w.off_work[lb]]
    parts.append((off, I[off] + w.w0[off], w.w0_status[off]))
    # still off: one or two more absence records before the first event, after the [-7, +14] window
    # (so the planted first record alone decides who is in the RTW population)
    lo = np.maximum(w.w0[off], RTW_WINDOW[1]) + 1
    room = np.minimum(w.ev_day[off], 400) - lo
    nmid = np.where(room >= 1, _choice(rng, np.arange(3), len(off), [0.4, 0.4, 0.2]), 0)
    mp = np.repeat(off, nmid)
    mday = np.repeat(lo, nmid) + np.floor(rng.random(len(mp)) * np.repeat(room, nmid)).astype(np.int64)
    parts.append((mp, I[mp] + mday, np.repeat(w.w0_status[off], nmid)))
    if w.mech.work_status_at_first_contact > 0:
        # the intake form of the first IPM contact: still off work that day
        c = off[(w.contact_day[off] < w.ev_day[off]) & (w.contact_day[off] < NEVER)]
        c = c[rng.random(len(c)) < w.mech.work_status_at_first_contact]
        parts.append((c, I[c] + w.contact_day[c], w.w0_status[c]))
    # the first event (death is recorded in eligibility, not here)
    ev = off[np.isin(w.ev_kind[off], (1, 2, 3))]
    kind = w.ev_kind[ev]
    status = np.select(
        [kind == 1, kind == 2, kind == 3],
        [np.where(rng.random(len(ev)) < 0.75, _W["working"], _W["modified_duty"]), _W["disability_long_term"], _W["retired"]],
    )
    parts.append((ev, I[ev] + w.ev_day[ev], status))
    back = ev[(kind == 1) & (rng.random(len(ev)) < 0.4)]
    parts.append((back, I[back] + w.ev_day[back] + rng.integers(30, 201, len(back)), np.full(len(back), _W["working"])))
    at_work = lb[w.employed[lb] & ~w.off_work[lb] & (rng.random(len(lb)) < 0.6)]
    parts.append((at_work, I[at_work] + rng.integers(-5, 61, len(at_work)), np.full(len(at_work), _W["working"])))
    not_emp = lb[~w.employed[lb]]
    ret = not_emp[(w.age[not_emp] >= 60) & (rng.random(len(not_emp)) < 0.5)]
    parts.append((ret, I[ret] - rng.integers(0, 301, len(ret)), np.full(len(ret), _W["retired"])))
    une = not_emp[(w.age[not_emp] < 60) & (rng.random(len(not_emp)) < 0.4)]
    parts.append((une, I[une] + rng.integers(-30, 31, len(une)), np.full(len(une), _W["unemployed"])))
    # persons without an lbp episode
    bg = idx[~w.has_lbp[idx] & w.ehr[idx]]
    bg = bg[rng.random(len(bg)) < 0.2]
    st = _choice(rng, np.array([_W["working"], _W["unemployed"], _W["retired"]]), len(bg), [0.7, 0.2, 0.1])
    st = np.where((st == _W["retired"]) & (w.age[bg] < 60), _W["working"], st)
    parts.append((bg, D_START + rng.integers(0, D_END - D_START + 1, len(bg)), st))

    p = np.concatenate([x[0] for x in parts]).astype(np.int64)
    day = np.concatenate([x[1] for x in parts]).astype(np.int64)
    status = np.concatenate([x[2] for x in parts]).astype(np.int64)
    keep = (day >= D_START) & (day <= D_END) & (day < w.death_day[p])
    p, day, status = p[keep], day[keep], status[keep]
    order = np.lexsort((status, day, p))
    return pa.table(
        {
            "person_id": _pid(p[order]),
            "status_date": _dates(day[order]),
            "work_status": _take(_book(WORK_STATUSES), status[order]),
        }
    )


_TABLE_BUILDERS = {
    "eligibility": _build_eligibility,
    "medical_claim": _build_medical_claim,
    "pharmacy_claim": _build_pharmacy_claim,
    "ndc_reference": _build_ndc_reference,
    "ehr_encounter": _build_ehr_encounter,
    "ehr_pro": _build_ehr_pro,
    "ehr_work_status": _build_ehr_work_status,
}


# ----------------------------------------------------------------------------------------------
# Truth
# ----------------------------------------------------------------------------------------------

STRATEGY_DEFINITIONS = {
    "time_zero": "the index date (day 0); days are whole days after index",
    "grace_period_days": GRACE_DAYS,
    "natural_referral": (
        "Each person's natural IPM referral time is a cure-mixture: with probability pi_i the person is "
        "referable and the continuous time R ~ Exponential(rate_i); otherwise R = infinity. pi_i and rate_i "
        "rise with severity (radiculopathy, opioid use, depression, anxiety, sleep disorder, Charlson "
        "conditions, prior imaging) and workers' compensation. The referral day is floor(R) (365 is moved "
        "to 366). In the observed world referral is stopped by an earlier RTW (nobody is referred after "
        "returning to work)."
    ),
    "early": (
        "IPM within the 42-day grace period: R is drawn from the person's own natural referral-time "
        "distribution conditioned on R < 43 (Exponential(rate_i) truncated to [0, 43)), so the referral day "
        "is 0..42 for everyone."
    ),
    "delayed": (
        "No IPM within 42 days: the natural referral hazard is switched off on [0, 43) and runs as natural "
        "afterwards, i.e. R is the natural time conditioned on R >= 43: referable with probability "
        "pi_i*exp(-43*rate_i) / (pi_i*exp(-43*rate_i) + 1 - pi_i), then R = 43 + Exponential(rate_i); "
        "otherwise never referred. As in the observed world, this usual-care referral does not happen once "
        "the person has returned to work (irrelevant for RTW itself; it matters for PROMIS-PF and costs); "
        "with the post-RTW referral mechanism a referable person back at work is referred at that slower "
        "rate from max(RTW day, 43) on: never inside the grace period, whatever the work status."
    ),
    "effect_on_rtw": (
        "From the referral day r on, the RTW hazard is multiplied by effect_rtw_hr**w(r), w(r) = 1 for "
        f"r <= {GRACE_DAYS}, ({LATE_BENEFIT_END} - r) / {LATE_BENEFIT_END - GRACE_DAYS} for "
        f"{GRACE_DAYS} < r < {LATE_BENEFIT_END}, 0 afterwards (later referral gives a shrinking benefit). "
        "Competing events (long-term disability, retirement, death) are not affected directly."
    ),
    "effect_on_promis_pf": (
        "PROMIS-PF gains effect_promis_pf*w(r), phased in linearly over the 30 days after referral."
    ),
    "outcomes": (
        "RTW day = first working/modified_duty record; competing = long-term disability, retired or death, "
        "whichever comes first; potential outcomes are uncensored (no disenrolment, no end of data). "
        "cumulative_incidence[t] = P(RTW on or before day t as the first event); restricted mean days not "
        "returned = E[min(RTW day, 365)] with a competing event counted as not returned (= integral over "
        "0..365 of 1 - CIF_RTW). PROMIS-PF at 180 = the noise-free latent T-score on day 180."
    ),
    "populations": (
        "RTW contrasts: eligible persons in the RTW population (off_work / disability_short_term record in "
        "[index-7, index+14]). PROMIS-PF contrasts: all eligible persons (promis_pf_180.rtw_population "
        "gives the RTW population too). Both are the planted persons, each simulated under both strategies "
        "with common random numbers (same RTW/competing/death draws), so the null scenario gives exactly 0."
    ),
}

COHORT_RULES = {
    "index": "first medical claim with an lbp diagnosis in any position (legacy M54.5 only before 2021-10-01)",
    "new_episode": "no lbp diagnosis in the 365 days before index",
    "enrollment": "an enrolment stretch (gaps <= 30 days bridged) covering index-365 .. index",
    "age": "index year - birth_year in 18..64",
    "red_flag": "no red-flag diagnosis from index-365 through index",
    "prior_ipm": "no IPM contact (procedure claim, professional claim with IPM taxonomy, EHR encounter with IPM taxonomy) in index-365 .. index-1",
    "exclusion_order": list(EXCLUSION_REASONS),
    "note": (
        "With index = the first lbp claim, 'not a new episode' cannot fail; persons planted with an earlier "
        "LBP claim (in the first data year, within 365 days of a later one) index on that claim and fail "
        "the enrolment rule. Under the reading 'first lbp claim that starts a new episode' they fail as "
        "'not a new episode' instead; the eligible set is the same."
    ),
}


def _draws(n_units: int) -> int:
    return int(np.clip(math.ceil(_MC_TARGET / max(n_units, 1)), _MIN_DRAWS, _MAX_DRAWS))


def _strategy_days(rng, pi, lam, K, lam2=None, halving=math.inf):
    """Referral days under early, delayed and natural referral; arrays of shape (K, n).

    ``lam2`` and ``halving``: the rate from day ``halving`` on (the referral hazard halving)."""
    if lam2 is not None and math.isfinite(halving):
        return _strategy_days_piecewise(rng, pi, lam, lam2, halving, K)
    n = len(pi)
    u = rng.random((K, n))
    early = -np.log1p(-u * -np.expm1(-(GRACE_DAYS + 1) * lam)) / lam
    s43 = np.exp(-(GRACE_DAYS + 1) * lam)
    p_after = pi * s43 / (pi * s43 + 1.0 - pi)
    later = rng.random((K, n)) < p_after
    delayed = np.where(later, (GRACE_DAYS + 1) + rng.exponential(1.0, (K, n)) / lam, np.inf)
    natural = np.where(rng.random((K, n)) < pi, rng.exponential(1.0, (K, n)) / lam, np.inf)
    early_day = np.minimum(_referral_day(early), GRACE_DAYS)  # guards the rare u -> 1 rounding
    return {"early": early_day, "delayed": _referral_day(delayed), "natural": _referral_day(natural)}


def _strategy_days_piecewise(rng, pi, lam, lam2, halving, K):
    """:func:`_strategy_days` with a referral rate that changes on day ``halving`` (a cumulative
    hazard H(t) inverted piecewise): early = H drawn from Exp(1) restricted to [0, H(43)); delayed =
    referable-later persons get H(43) + Exp(1)."""
    n = len(pi)
    H43 = _referral_cumulative_hazard(np.float64(GRACE_DAYS + 1), lam, lam2, halving)
    u = rng.random((K, n))
    early = _referral_hazard_inverse(-np.log1p(-u * -np.expm1(-H43)), lam, lam2, halving)
    s43 = np.exp(-H43)
    p_after = pi * s43 / (pi * s43 + 1.0 - pi)
    later = rng.random((K, n)) < p_after
    delayed = np.where(later, _referral_hazard_inverse(H43 + rng.exponential(1.0, (K, n)), lam, lam2, halving), np.inf)
    natural = np.where(
        rng.random((K, n)) < pi, _referral_hazard_inverse(rng.exponential(1.0, (K, n)), lam, lam2, halving), np.inf
    )
    early_day = np.minimum(_referral_day(early), GRACE_DAYS)
    return {"early": early_day, "delayed": _referral_day(delayed), "natural": _referral_day(natural)}


def _truth(w: _World, seed: int) -> dict:
    # Tiny extracts can have an empty RTW population or an empty exposure group; their contrasts are
    # written as null rather than warned about.
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _truth_unguarded(w, seed)


def _blocks(draws: int, units: int):
    """Ranges of draws processed together, so no (draws x units) array exceeds about a million cells."""
    size = max(1, min(draws, _BLOCK_CELLS // max(units, 1)))
    return [(k, min(draws, k + size)) for k in range(0, draws, size)]


def _summary(values: np.ndarray) -> tuple[float, float]:
    """Mean over draws and its Monte-Carlo standard error."""
    se = float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0
    return float(np.mean(values)), se


def _truth_unguarded(w: _World, seed: int) -> dict:
    rng = _rng(seed, _STREAMS["truth"])
    strategies = ("early", "delayed")

    # --- RTW: the eligible RTW population, K potential-outcome draws per person -------------------
    pop = np.nonzero(w.in_rtw)[0]
    K = _draws(len(pop))
    cif = {s: np.zeros((len(HORIZONS), K)) for s in strategies}  # per draw
    comp = {s: np.zeros((len(HORIZONS), K)) for s in strategies}
    dnr = {s: np.zeros(K) for s in strategies}
    naive = np.zeros((2, 2))  # [early seen, not], [persons, RTW by 180]
    start, theta = w.rtw_start[pop], w.rtw_theta[pop]
    for k0, k1 in _blocks(K, len(pop)):
        B = k1 - k0
        days = _strategy_days(rng, w.ref_pi[pop], w.ref_rate[pop], B, w.ref_rate2[pop], w.ref_halving)
        E = rng.exponential(1.0, (4, B, len(pop)))
        # common random numbers: the same RTW/competing/death draws under every strategy
        d_ltd = _to_day(60.0 + E[1] / w.ltd_rate[pop])
        d_ret = _to_day(14.0 + E[2] / w.ret_rate[pop])
        d_death0 = _to_day(1.0 + E[3] / w.death_rate[pop])
        for name, r in days.items():
            d_rtw = _to_day(_rtw_continuous(E[0], start, theta, w.kappa, r.astype(float), w.hr))
            ev, kind = _first_event(d_rtw, d_ltd, d_ret, _nudge_death(d_death0, d_rtw, d_ltd, d_ret))
            if name == "natural":
                # the naive comparison: exposure = referral seen by day 42 (referral stops at RTW)
                seen_early = np.where(r < d_rtw, r, NEVER) <= GRACE_DAYS
                rtw180 = (ev <= 180) & (kind == 1)
                naive[0] += (seen_early.sum(), (rtw180 & seen_early).sum())
                naive[1] += ((~seen_early).sum(), (rtw180 & ~seen_early).sum())
                continue
            for h, t in enumerate(HORIZONS):
                cif[name][h, k0:k1] = ((ev <= t) & (kind == 1)).mean(axis=1)
                comp[name][h, k0:k1] = ((ev <= t) & (kind >= 2)).mean(axis=1)
            dnr[name][k0:k1] = np.where(kind == 1, np.minimum(ev, FOLLOWUP_DAYS), FOLLOWUP_DAYS).mean(axis=1)

    rtw = {"cumulative_incidence": {}, "competing_cumulative_incidence": {}, "risk_difference": {}, "risk_ratio": {},
           "competing_risk_difference": {}, "monte_carlo_se": {}}  # fmt: skip
    for s in strategies:
        rtw["cumulative_incidence"][s] = {str(t): _r(cif[s][h].mean()) for h, t in enumerate(HORIZONS)}
        rtw["competing_cumulative_incidence"][s] = {str(t): _r(comp[s][h].mean()) for h, t in enumerate(HORIZONS)}
    for h, t in enumerate(HORIZONS):
        rd, se = _summary(cif["early"][h] - cif["delayed"][h])
        rtw["risk_difference"][str(t)] = _r(rd)
        rtw["monte_carlo_se"][f"risk_difference_{t}"] = _r(se)
        e_, d_ = cif["early"][h].mean(), cif["delayed"][h].mean()
        rtw["risk_ratio"][str(t)] = _r(e_ / d_) if d_ > 0 else None
        rtw["competing_risk_difference"][str(t)] = _r((comp["early"][h] - comp["delayed"][h]).mean())
    diff, se = _summary(dnr["early"] - dnr["delayed"])
    rtw["restricted_mean_days_not_returned_365"] = {
        "early": _r(dnr["early"].mean()),
        "delayed": _r(dnr["delayed"].mean()),
        "difference": _r(diff),
    }
    rtw["monte_carlo_se"]["restricted_mean_days_difference"] = _r(se)
    naive_rd = naive[0, 1] / naive[0, 0] - naive[1, 1] / naive[1, 0] if naive[:, 0].all() else math.nan
    true_rd = rtw["risk_difference"]["180"]

    # --- PROMIS-PF at 180 days: all eligible persons (and the RTW population among them) ----------
    coh = np.nonzero(w.eligible)[0]
    Kc = _draws(len(coh))
    in_rtw_c = w.in_rtw[coh]
    pf_all = {s: np.zeros(Kc) for s in strategies}
    pf_rtw = {s: np.zeros(Kc) for s in strategies}
    for k0, k1 in _blocks(Kc, len(coh)):
        cdays = _strategy_days(rng, w.ref_pi[coh], w.ref_rate[coh], k1 - k0, w.ref_rate2[coh], w.ref_halving)
        # Under "early" IPM happens by day 42 regardless; under "delayed" care after day 42 is usual care.
        cdays["delayed"] = _delayed_usual_care(w, rng, coh, cdays["delayed"])
        for s in strategies:
            pf = _pf_latent(w, coh[None, :], np.full((k1 - k0, len(coh)), 180.0), cdays[s])
            pf_all[s][k0:k1] = pf.mean(axis=1)
            pf_rtw[s][k0:k1] = pf[:, in_rtw_c].mean(axis=1)
    pf_diff, pf_se = _summary(pf_all["early"] - pf_all["delayed"])
    obs_early = w.eligible & (w.referral_day <= GRACE_DAYS)
    obs_delayed = w.eligible & ~obs_early
    pf_obs = _pf_latent(w, np.arange(w.n), np.full(w.n, 180.0), w.r_effect)
    naive_pf = pf_obs[obs_early].mean() - pf_obs[obs_delayed].mean() if obs_early.any() and obs_delayed.any() else math.nan
    promis = {
        "population": "eligible cohort",
        "early": _r(pf_all["early"].mean()),
        "delayed": _r(pf_all["delayed"].mean()),
        "difference": _r(pf_diff),
        "monte_carlo_se": _r(pf_se),
        "rtw_population": {
            "early": _r(pf_rtw["early"].mean()),
            "delayed": _r(pf_rtw["delayed"].mean()),
            "difference": _r((pf_rtw["early"] - pf_rtw["delayed"]).mean()),
        },
    }

    if true_rd is None or not math.isfinite(naive_rd):
        direction, why = None, "not estimable: the RTW population or one exposure group is empty"
    elif naive_rd < true_rd:
        direction = "toward_harm"
        why = (
            "Sicker persons (radiculopathy, opioid use, comorbidity) are referred sooner and return to work more "
            "slowly, and persons who return to work quickly are never referred and so count as delayed; both "
            "make early referral look worse than it is."
        )
    else:
        direction = "toward_benefit"
        why = "In this draw the crude early-vs-delayed comparison overstates the benefit of early referral."
    counts = _counts(w)
    landmark = _landmark_truth(w, seed)
    return {
        "generator": {
            "module": "ipm_outcomes.synth",
            "seed": seed,
            "persons": w.n,
            "data_start": DATA_START.isoformat(),
            "data_end": DATA_END.isoformat(),
        },
        "seed": seed,
        "effect_settings": {
            "effect_rtw_hr": w.hr,
            "effect_promis_pf": w.pf,
            "grace_period_days": GRACE_DAYS,
            "late_benefit_end_day": LATE_BENEFIT_END,
            "other_instruments": "no true effect on promis_pi, odi, eq5d_index, nrs_pain, phq9 (negative-control outcomes)",
        },
        "mechanisms": asdict(w.mech),
        "strategy_definitions": STRATEGY_DEFINITIONS,
        "cohort_rules": COHORT_RULES,
        "simulation": {
            "draws_per_person_rtw": K,
            "draws_per_person_promis_pf": Kc,
            "rtw_population_size": len(pop),
            "cohort_size": len(coh),
            "censoring": "none: truth is the uncensored potential outcome",
        },
        "counts": counts,
        "rtw": rtw,
        "promis_pf_180": promis,
        "landmark": landmark,
        "naive_bias_direction": direction,
        "naive_bias_explanation": why,
        "naive_comparison": {
            "rtw_risk_difference_180_naive": _r(naive_rd),
            "rtw_risk_difference_180_true": true_rd,
            "promis_pf_180_difference_naive": _r(naive_pf),
            "promis_pf_180_difference_true": promis["difference"],
            "definition": "crude difference between persons referred by day 42 and the rest, uncensored, natural referral",
        },
    }


def _landmark_rtw(w: _World, pop: np.ndarray, rng: np.random.Generator, draws: int) -> dict[str, np.ndarray]:
    """RTW as the first event by each horizon, given no event through the landmark day L = 42.

    Each person of ``pop`` is simulated ``draws`` times from day L on under two regimes: referred by
    L (the RTW hazard multiplied by ``hr``, as for every referral by day 42) and not referred by L
    (untreated until the natural referral day after L: the ``delayed`` strategy's day, which is the
    natural one conditioned on R >= L + 1). Every event time is a threshold on a cumulative hazard
    drawn from Exp(1), so given no event through L the remaining threshold is a fresh Exp(1) whatever
    the path before L (memorylessness): nothing about how the person reached day L is needed.

    Returns ``{"early": ..., "delayed": ...}``, boolean arrays of shape (horizons, draws, persons).
    """
    L = GRACE_DAYS
    start, theta = w.rtw_start[pop], w.rtw_theta[pop]
    H_L = (np.maximum(L - start, 0.0) / theta) ** w.kappa  # untreated RTW cumulative hazard at L
    later = _strategy_days(rng, w.ref_pi[pop], w.ref_rate[pop], draws, w.ref_rate2[pop], w.ref_halving)["delayed"]
    E = rng.exponential(1.0, (4, draws, len(pop)))
    # the remaining time to each competing event given none through L (long-term disability cannot
    # start before day 60, retirement before day 14, death before day 1)
    d_ltd = _to_day(max(60.0, L) + E[1] / w.ltd_rate[pop])
    d_ret = _to_day(max(14.0, L) + E[2] / w.ret_rate[pop])
    d_death0 = _to_day(max(1.0, L) + E[3] / w.death_rate[pop])
    t_rtw = {
        "early": start + theta * np.power(H_L + E[0] / w.hr, 1.0 / w.kappa),
        "delayed": _rtw_continuous(H_L + E[0], start, theta, w.kappa, later.astype(float), w.hr),
    }
    out = {}
    for name, t in t_rtw.items():
        d_rtw = _to_day(t)
        ev, kind = _first_event(d_rtw, d_ltd, d_ret, _nudge_death(d_death0, d_rtw, d_ltd, d_ret))
        out[name] = np.stack([(ev <= day) & (kind == 1) for day in HORIZONS])
    return out


def _landmark_truth(w: _World, seed: int) -> dict:
    """Truth of the landmark analysis at the end of the grace period (day L = 42).

    The landmark population is the RTW population still at risk after day L in the uncensored
    natural world (no RTW or competing event on days 0..L); "referred" = natural referral on days
    0..L. Its persons are simulated from day L on under referral by L and no referral by L
    (:func:`_landmark_rtw`); ATE = mean over the landmark population, ATT = mean over those
    referred by L.
    """
    L = GRACE_DAYS
    rng = _rng(seed, _STREAMS["truth"], 1)
    pop = np.nonzero(w.in_rtw & (w.ev_day > L))[0]
    treated = w.natural_referral_day[pop] <= L
    K = _draws(len(pop))
    arms = ("early", "delayed")
    cif = {(e, a): np.zeros((len(HORIZONS), K)) for e in ("ate", "att") for a in arms}
    for k0, k1 in _blocks(K, len(pop)):
        for name, rtw in _landmark_rtw(w, pop, rng, k1 - k0).items():
            cif[("ate", name)][:, k0:k1] = rtw.mean(axis=2)
            cif[("att", name)][:, k0:k1] = rtw[:, :, treated].mean(axis=2)
    out: dict = {
        "landmark_day": L,
        "population": (
            "RTW population persons with no RTW or competing event on days 0..42 (uncensored natural world); "
            "referred = natural referral on days 0..42"
        ),
        "population_size": len(pop),
        "referred_by_landmark": int(treated.sum()),
        "draws_per_person": K,
        "definition": (
            "cumulative_incidence[t] = P(RTW on or before day t as the first event | at risk after day 42), "
            "clock from index, under referral by day 42 ('early': RTW hazard times effect_rtw_hr from day 42 on) "
            "and no referral by day 42 ('delayed': natural referral afterwards); ate averages over the landmark "
            "population, att over its persons referred by day 42. The overlap weighting has no truth here."
        ),
    }
    for est in ("ate", "att"):
        part: dict = {"cumulative_incidence": {a: {} for a in arms}, "risk_difference": {}, "monte_carlo_se": {}}
        for h, day in enumerate(HORIZONS):
            for a in arms:
                part["cumulative_incidence"][a][str(day)] = _r(cif[(est, a)][h].mean())
            rd, se = _summary(cif[(est, "early")][h] - cif[(est, "delayed")][h])
            part["risk_difference"][str(day)] = _r(rd)
            part["monte_carlo_se"][f"risk_difference_{day}"] = _r(se)
        out[est] = part
    return out


def _r(x) -> float | None:
    """Rounded for a stable, readable truth.json; None where a population is empty."""
    x = float(x)
    return round(x, 6) if math.isfinite(x) else None


def _counts(w: _World) -> dict:
    elig = w.eligible
    early = elig & (w.referral_day <= GRACE_DAYS)
    reasons = {reason: int((w.exclusion == k).sum()) for k, reason in enumerate(EXCLUSION_REASONS)}
    rtw = w.in_rtw
    return {
        "persons": int(w.n),
        "with_lbp_claim": int(w.has_lbp.sum()),
        "eligible": int(elig.sum()),
        "excluded_by_reason": reasons,
        "early": int(early.sum()),
        "delayed": int((elig & ~early).sum()),
        "rtw_population": int(rtw.sum()),
        "rtw_population_early": int((rtw & early).sum()),
        "rtw_population_delayed": int((rtw & ~early).sum()),
        "rtw_observed_events": {
            "censored": int((rtw & (w.obs_kind == 0)).sum()),
            "rtw": int((rtw & (w.obs_kind == 1)).sum()),
            "competing": int((rtw & (w.obs_kind >= 2)).sum()),
        },
    }


def _delay_category(day: np.ndarray) -> np.ndarray:
    cats = np.array(["0-14", "15-42", "43-90", "91-180", ">180", "never"])
    k = np.select([day <= 14, day <= 42, day <= 90, day <= 180, day < NEVER], [0, 1, 2, 3, 4], 5)
    return cats[k]


def _truth_persons_table(w: _World) -> pa.Table:
    """One row per person with an eligibility record: the planted facts downstream code must find."""
    n = w.n
    lbp, elig, rtw = w.has_lbp, w.eligible, w.in_rtw
    f = w.first_lbp

    def opt_int(values, mask):
        return pa.array(np.where(mask, values, 0).astype(np.int32), mask=~mask)

    def opt_float(values, mask):
        return pa.array(np.where(mask, values, 0.0).astype(float), mask=~mask)

    ref = w.referral_day
    proc = w.referral_day_proc
    event = np.where(w.obs_kind == 0, 0, np.where(w.obs_kind == 1, 1, 2))
    etype = np.array(EVENT_TYPES)[w.obs_kind]
    # observed PROMIS-PF on the baseline and 180-day visits (each window holds at most one visit)
    pf_at = {}
    for j in (0, 2):
        t = w.pro_days[j]
        has = elig & (t < NEVER)
        val = np.round(np.clip(_pf_latent(w, np.arange(n), np.where(has, t, 0), w.r_effect) + w.pf_noise[j], 10, 90), 1)
        pf_at[j] = (val, has)
    exposure = np.where(ref <= GRACE_DAYS, "early", "delayed")
    reason = np.array(EXCLUSION_REASONS + ("",))[np.where(w.exclusion < 0, len(EXCLUSION_REASONS), w.exclusion)]
    return pa.table(
        {
            "person_id": _person_ids(0, n),
            "index_date": pa.array(np.where(lbp, f, 0).astype(np.int32), type=pa.date32(), mask=~lbp),
            "eligible": pa.array(elig),
            "exclusion_reason": pa.array(reason, mask=elig),
            "age_at_index": opt_int(_year(np.where(lbp, f, w.I)) - w.birth_year, lbp),
            "in_rtw_population": pa.array(rtw),
            "referral_day": opt_int(ref, elig & (ref < NEVER)),
            "referral_day_procedure_only": opt_int(proc, elig & (proc < NEVER)),
            "exposure": pa.array(exposure, mask=~elig),
            "delay_category": pa.array(_delay_category(ref), mask=~elig),
            "followup_end_day": opt_int(w.followup_end, elig),
            "rtw_time_days": opt_int(w.obs_time, rtw),
            "rtw_event": opt_int(event, rtw),
            "rtw_event_type": pa.array(etype, mask=~rtw),
            "rtw_censor_day": opt_int(w.censor_day, rtw),
            "radiculopathy": pa.array(w.radic),
            "opioid_use": pa.array(w.opioid),
            # the other planted drivers of the (extended) referral process: depression, workers' comp
            "depression": pa.array(w.cond[:, _COND["depression"]]),
            "workers_comp": pa.array(w.payer == 3),
            "severity": opt_float(w.sev, lbp),
            "employed": pa.array(w.employed),
            "off_work": pa.array(w.off_work),
            "promis_pf_baseline_observed": opt_float(*pf_at[0]),
            "promis_pf_180_observed": opt_float(*pf_at[2]),
            "promis_pf_180_latent": opt_float(_pf_latent(w, np.arange(n), np.full(n, 180.0), w.r_effect), elig),
            "prior_lbp_planted": pa.array(w.prior_lbp_day < NEVER),
            "legacy_m545_trap": pa.array(w.legacy_trap_day < NEVER),
        }
    )


# ----------------------------------------------------------------------------------------------
# Secondary outcomes and negative-control outcomes (issue 16). Kept apart from the RTW / PROMIS
# world above: their draws come from a stream of their own, their rows are appended to the chunks
# the builders above write, and their truth is a separate block of truth.json.
# ----------------------------------------------------------------------------------------------

#: True hazard ratio of each secondary outcome for an IPM referral within the grace period (a later
#: referral on day r keeps w(r) of the log hazard ratio, as for return to work); < 1: early referral
#: prevents the harm.
SECONDARY_EFFECTS: dict[str, float] = {
    "new_depression_anxiety": 0.7,
    "new_sleep_disorder": 0.75,
    "long_term_opioid": 0.6,
    "lumbar_surgery": 0.65,
    "ed_visit_lbp": 0.7,
}
#: The null setting: referral changes no secondary outcome (every true contrast is exactly 0).
NULL_SECONDARY_EFFECTS: dict[str, float] = dict.fromkeys(SECONDARY_EFFECTS, 1.0)

#: Daily hazard at severity 0 and log hazard ratio per unit of severity: the sicker are referred sooner
#: and suffer more of every harm (confounding by indication, as for return to work).
_SECONDARY_HAZARD: dict[str, tuple[float, float]] = {
    "new_depression_anxiety": (0.00035, 0.5),
    "new_sleep_disorder": (0.0003, 0.4),
    "long_term_opioid": (0.0004, 0.7),
    "lumbar_surgery": (0.00012, 0.8),
    "ed_visit_lbp": (0.00025, 0.6),
}

#: One ICD-10-CM code per negative-control outcome of the packaged ``negative_controls`` value set.
NEGATIVE_CONTROL_CODES: dict[str, str] = {
    "ingrown_nail": "L60.0",
    "otitis_externa": "H60.90",
    "allergic_rhinitis": "J30.9",
    "conjunctivitis": "H10.9",
    "cataract": "H25.9",
    "onychomycosis": "B35.1",
    "tinea_pedis": "B35.3",
    "seborrheic_keratosis": "L82.1",
    "actinic_keratosis": "L57.0",
    "viral_warts": "B07.9",
    "impacted_cerumen": "H61.23",
    "sunburn": "L55.0",
    "refraction_disorder": "H52.4",
    "rosacea": "L71.9",
    "acne": "L70.0",
    "lipoma": "D17.9",
    "hordeolum_chalazion": "H00.019",
    "scabies_pediculosis": "B86",
    "varicose_veins_leg": "I83.90",
    "alopecia_areata": "L63.9",
    "presbycusis": "H91.13",
    "pterygium": "H11.009",
    "melanocytic_nevi": "D22.9",
    "epidermal_cyst": "L72.0",
}
#: Negative controls: daily hazard exp(-8.6 + 0.4 * severity + 0.02 * (age - 45)) for every one, so they
#: share the confounding of the secondary outcomes but have no path from referral.
_NC_LOG_RATE, _NC_SEVERITY, _NC_AGE = -8.6, 0.4, 0.02

_SECONDARY_STREAM = 10  # random stream of everything in this section (see _rng)
_LTOT_NDC = 0  # NDC_ROWS index of the long-term opioid fill (oxycodone 5 mg, 4 a day, 90 days)
_SURGERY_CPT = ("63030", "63047", "22612", "22633")
_SURGERY_PRICE = {"63030": 1400.0, "63047": 1600.0, "22612": 2300.0, "22633": 2800.0}

SECONDARY_DEFINITIONS = {
    "effect": (
        "From the referral day r on, the outcome's hazard is multiplied by hr**w(r) (w as for return to work: "
        "1 for r <= 42, shrinking to 0 at day 180); hr per outcome in effect_hazard_ratios."
    ),
    "hazard": (
        "constant daily hazard base * exp(beta * severity) from index (day 1 is the first day an outcome can "
        "occur); an outcome on or after the person's death day does not happen"
    ),
    "populations": (
        "eligible persons; new_depression_anxiety excludes persons with planted depression or anxiety and "
        "new_sleep_disorder those with a sleep disorder (their codes are recorded before index); "
        "long_term_opioid_opioid_naive = no planted opioid use before index"
    ),
    "long_term_opioid": (
        "first of the planted 90-day fill and the day the extract's own post-index opioid fills first reach "
        "90 days' supply within 180 days (the latter does not depend on referral)"
    ),
    "strategies": "as for PROMIS-PF: early = IPM by day 42; delayed = usual care after day 42, stopped by RTW",
    "death": "each person's planted death day, the same under both strategies",
    "not_included": (
        "events planted on days without coverage are not written (a bridged enrolment gap of up to 25 days); "
        "the truth counts them"
    ),
}


@dataclass
class _Secondary:
    """Planted secondary-outcome and negative-control days (days from index; NEVER = none)."""

    effects: dict[str, float]
    days: dict[str, np.ndarray]  # outcome -> planted day (observed world)
    depression_code: np.ndarray  # per person: True -> F32.9, False -> F41.1
    surgery_code: np.ndarray  # index into _SURGERY_CPT
    nc_days: np.ndarray  # (len(NEGATIVE_CONTROL_CODES), n)


def _check_secondary_effects(effects) -> dict[str, float]:
    if effects is None:
        return dict(SECONDARY_EFFECTS)
    if not isinstance(effects, dict) or set(effects) != set(SECONDARY_EFFECTS):
        raise IpmError(
            f"secondary_effects={effects!r}: give a hazard ratio for each of {', '.join(SECONDARY_EFFECTS)} "
            "(synth.NULL_SECONDARY_EFFECTS for no effect)"
        )
    for name, hr in effects.items():
        if isinstance(hr, bool) or not isinstance(hr, (int, float)) or not (math.isfinite(hr) and hr > 0):
            raise IpmError(f"secondary_effects[{name!r}]={hr!r}: must be a positive finite hazard ratio (1 = no effect)")
    return {name: float(hr) for name, hr in effects.items()}


def _secondary_time(E: np.ndarray, lam: np.ndarray, r: np.ndarray, hr: float) -> np.ndarray:
    """Invert a constant hazard ``lam`` multiplied by ``hr**w(r)`` from day ``r`` on (continuous days)."""
    hr_w = np.power(hr, _late_weight(r))
    r_eff = np.minimum(r, 10_000).astype(float)
    before = (E < lam * r_eff) | (hr_w == 1.0)  # hr_w == 1: the untreated branch exactly (null: no noise)
    return np.where(before, E / lam, r_eff + (E - lam * r_eff) / (lam * hr_w))


def _secondary_population(w: _World) -> dict[str, np.ndarray]:
    cond = w.cond
    new_dep = ~(cond[:, _COND["depression"]] | cond[:, _COND["anxiety"]])
    everyone = np.ones(w.n, dtype=bool)
    return {
        "new_depression_anxiety": new_dep,
        "new_sleep_disorder": ~cond[:, _COND["sleep"]],
        "long_term_opioid": everyone,
        "lumbar_surgery": everyone,
        "ed_visit_lbp": everyone,
    }


def _secondary_rates(w: _World) -> dict[str, np.ndarray]:
    return {name: base * np.exp(beta * w.sev) for name, (base, beta) in _SECONDARY_HAZARD.items()}


def _nc_rate(w: _World, p) -> np.ndarray:
    return np.exp(_NC_LOG_RATE + _NC_SEVERITY * w.sev[p] + _NC_AGE * (w.age[p] - 45))


def _simulate_secondary(w: _World, effects: dict[str, float]) -> _Secondary:
    """Plant the secondary outcomes (for the eligible cohort, under the referral each person had) and
    the negative controls (from covariates only) in the observed world."""
    rng = _rng(w.seed, _SECONDARY_STREAM)
    n = w.n
    planted = w.eligible
    alive = w.d_death  # relative death day (NEVER: none)
    rates = _secondary_rates(w)
    populations = _secondary_population(w)
    days: dict[str, np.ndarray] = {}
    for name in SECONDARY_EFFECTS:
        E = rng.exponential(1.0, n)
        d = _to_day(_secondary_time(E, rates[name], w.r_effect, effects[name]))
        ok = planted & populations[name] & (d >= 1) & (d <= FOLLOWUP_DAYS) & (d < alive)
        days[name] = np.where(ok, d, NEVER)
    depression_code = rng.random(n) < 0.6
    surgery_code = rng.integers(0, len(_SURGERY_CPT), n)
    E = rng.exponential(1.0, (len(NEGATIVE_CONTROL_CODES), n))
    d = _to_day(E / _nc_rate(w, np.arange(n))[None, :])
    ok = planted[None, :] & (d >= 1) & (d <= FOLLOWUP_DAYS) & (d < alive[None, :])
    return _Secondary(effects, days, depression_code, surgery_code, np.where(ok, d, NEVER))


def _secondary_rows(w: _World, start: int, stop: int):
    """Planted medical claim lines of persons start..stop-1: (person, day from index, dx, hcpcs, pos, taxonomy)."""
    sec: _Secondary = w.secondary
    idx = np.arange(start, stop)
    rows = []  # (p, day, dx, hcpcs, pos, taxonomy, typical price)

    def add(p, day, dx, hcpcs, pos, tax, price):
        rows.append((p, day, np.asarray(dx, dtype=object), np.asarray(hcpcs, dtype=object), pos, tax, np.asarray(price, float)))

    for name in ("new_depression_anxiety", "new_sleep_disorder"):
        p = idx[sec.days[name][idx] < NEVER]
        if name == "new_depression_anxiety":
            dx = np.where(sec.depression_code[p], "F32.9", "F41.1")
        else:
            dx = np.full(len(p), "G47.00", dtype=object)
        add(p, sec.days[name][p], dx, np.full(len(p), "99213", dtype=object), "11", "207Q00000X", np.full(len(p), 90.0))
    for name, pos, tax in (("lumbar_surgery", "22", "207X00000X"), ("ed_visit_lbp", "23", "207P00000X")):
        p = idx[sec.days[name][idx] < NEVER]
        day = sec.days[name][p]
        dx = np.array(ICD, dtype=object)[_lbp_code_on(w.index_code[p], w.I[p] + day)]
        if name == "lumbar_surgery":
            cpt = np.array(_SURGERY_CPT, dtype=object)[sec.surgery_code[p]]
            price = np.array([_SURGERY_PRICE[c] for c in cpt], dtype=float)
        else:
            cpt, price = np.full(len(p), "99284", dtype=object), np.full(len(p), 420.0)
        add(p, day, dx, cpt, pos, tax, price)
    for k, code in enumerate(NEGATIVE_CONTROL_CODES.values()):
        p = idx[sec.nc_days[k, idx] < NEVER]
        add(p, sec.nc_days[k, p], np.full(len(p), code, dtype=object), np.full(len(p), "99213", dtype=object), "11",
            "207Q00000X", np.full(len(p), 90.0))  # fmt: skip
    return rows


def _secondary_claims_table(w: _World, start: int, stop: int, chunk_no: int, schema: pa.Schema) -> pa.Table | None:
    """The planted secondary-outcome and negative-control claim lines (one line per claim), or None."""
    rows = _secondary_rows(w, start, stop)
    p = np.concatenate([r[0] for r in rows]).astype(np.int64)
    if len(p) == 0:
        return None
    rng = _rng(w.seed, _SECONDARY_STREAM, 1, chunk_no)
    day = w.I[p] + np.concatenate([r[1] for r in rows]).astype(np.int64)
    dx = np.concatenate([r[2] for r in rows])
    hcpcs = np.concatenate([r[3] for r in rows])
    pos = np.concatenate([np.full(len(r[0]), r[4], dtype=object) for r in rows])
    tax = np.concatenate([np.full(len(r[0]), r[5], dtype=object) for r in rows])
    price = np.concatenate([r[6] for r in rows])
    keep = _enrolled(w, p, day) & (day <= D_END)  # no claims without coverage, as for every other claim
    p, day, dx, hcpcs, pos, tax, price = (a[keep] for a in (p, day, dx, hcpcs, pos, tax, price))
    m = len(p)
    if m == 0:
        return None
    allowed = np.round(price * rng.lognormal(0.0, 0.25, m), 2)
    ids = _strings("SO", chunk_no * _ID_BLOCK + 1 + np.arange(m), 10)
    cols = {
        "claim_id": ids,
        "claim_line_number": pa.array(np.ones(m, dtype=np.int32)),
        "person_id": _pid(p),
        "claim_type": pa.array(np.full(m, "professional", dtype=object), pa.string()),
        "claim_start_date": _dates(day),
        "claim_end_date": _dates(day),
        "place_of_service_code": pa.array(pos, pa.string()),
        "rendering_npi": pa.nulls(m, pa.string()),
        "rendering_taxonomy_code": pa.array(tax, pa.string()),
        "hcpcs_code": pa.array(hcpcs, pa.string()),
        "hcpcs_modifier_1": pa.nulls(m, pa.string()),
        "allowed_amount": pa.array(allowed),
        "paid_amount": pa.array(np.round(allowed * 0.8, 2)),
        f"{DIAGNOSIS_COLUMN_PREFIX}1": pa.array(dx, pa.string()),
    }
    for k in range(2, N_DX + 1):
        cols[f"{DIAGNOSIS_COLUMN_PREFIX}{k}"] = pa.nulls(m, pa.string())
    return pa.table({name: cols[name] for name in schema.names}).cast(schema)


def _secondary_fills_table(w: _World, start: int, stop: int, chunk_no: int, schema: pa.Schema) -> pa.Table | None:
    """The planted long-term opioid fills (one 90-day fill on the planted day), or None."""
    idx = np.arange(start, stop)
    planted = w.secondary.days["long_term_opioid"]
    p = idx[planted[idx] < NEVER]
    day = w.I[p] + planted[p]
    p, day = p[_enrolled(w, p, day)], day[_enrolled(w, p, day)]
    m = len(p)
    if m == 0:
        return None
    rng = _rng(w.seed, _SECONDARY_STREAM, 2, chunk_no)
    qty = np.full(m, 90 * _NDC_UNITS[_LTOT_NDC])
    allowed = np.round(qty * _NDC_PRICE[_LTOT_NDC] * rng.lognormal(0.0, 0.2, m) + 2.0, 2)
    cols = {
        "claim_id": _strings("SR", chunk_no * _ID_BLOCK + 1 + np.arange(m), 10),
        "claim_line_number": pa.array(np.ones(m, dtype=np.int32)),
        "person_id": _pid(p),
        "dispensing_date": _dates(day),
        "ndc_code": pa.array(np.full(m, _NDC11[_LTOT_NDC], dtype=object), pa.string()),
        "quantity": pa.array(qty),
        "days_supply": pa.array(np.full(m, 90, dtype=np.int32)),
        "allowed_amount": pa.array(allowed),
        "paid_amount": pa.array(np.round(allowed * 0.7, 2)),
    }
    return pa.table({name: cols[name] for name in schema.names}).cast(schema)


def _with_secondary(build, planted):
    """A table builder that appends the planted secondary-outcome rows to ``build``'s chunk."""

    def builder(w: _World, start: int, stop: int, rng, chunk_no: int) -> pa.Table:
        table = build(w, start, stop, rng, chunk_no)
        extra = planted(w, start, stop, chunk_no, table.schema) if getattr(w, "secondary", None) else None
        return table if extra is None else pa.concat_tables([table, extra])

    builder.__name__ = build.__name__
    return builder


_TABLE_BUILDERS["medical_claim"] = _with_secondary(_TABLE_BUILDERS["medical_claim"], _secondary_claims_table)
_TABLE_BUILDERS["pharmacy_claim"] = _with_secondary(_TABLE_BUILDERS["pharmacy_claim"], _secondary_fills_table)


def _background_ltot_day(w: _World) -> np.ndarray:
    """Per person: the day (from index) the extract's own opioid fills first reach 90 days' supply
    within 180 days (NEVER: not by day 365). These fills do not depend on referral; the pharmacy
    chunks are rebuilt from their own random streams, so this reads exactly what the file holds."""
    opioid = [row[0] for row in NDC_ROWS if row[4]]
    opioid += [f"{c[1:5]}-{c[5:9]}-{c[9:]}" for c in opioid if c[0] == "0"]  # as written hyphenated
    out = np.full(w.n, NEVER, dtype=np.int64)
    for chunk_no, start in enumerate(range(0, w.n, CHUNK_PERSONS)):
        stop = min(w.n, start + CHUNK_PERSONS)
        table = _build_pharmacy_claim(w, start, stop, _rng(w.seed, _STREAMS["pharmacy_claim"], chunk_no), chunk_no)
        is_opioid = pc.is_in(table["ndc_code"].cast(pa.string()), value_set=pa.array(opioid)).to_numpy(zero_copy_only=False)
        p = pc.utf8_slice_codeunits(table["person_id"], 1).cast(pa.int64()).to_numpy()[is_opioid] - 1
        day = table["dispensing_date"].to_numpy().astype("datetime64[D]").astype(np.int64)[is_opioid] - w.I[p]
        supply = table["days_supply"].to_numpy()[is_opioid].astype(np.int64)
        keep = (day >= 1) & (day <= FOLLOWUP_DAYS)
        key = p[keep] * 1000 + day[keep]  # person-major, day-minor (days 1..365)
        order = np.argsort(key, kind="stable")
        key, supply = key[order], supply[keep][order]
        # supply dispensed on days max(1, d - 179) .. d: a difference of cumulative sums; the window's
        # lowest key, p * 1000 - 178, stays above the previous person's last, (p - 1) * 1000 + 365
        total = np.concatenate([[0], np.cumsum(supply)])
        lo = np.searchsorted(key, key - 179, side="left")
        hit = total[np.arange(1, len(key) + 1)] - total[lo] >= 90
        np.minimum.at(out, key[hit] // 1000, key[hit] % 1000)
    return out


def _delayed_usual_care(w: _World, rng, coh: np.ndarray, delayed: np.ndarray) -> np.ndarray:
    """Referral days under "delayed": usual care after day 42 refers nobody already back at work, except
    after RTW at the slower rate when that mechanism is on, and then (as in the observed world) only a
    person who would be referred at all: a delayed day of ``NEVER`` (not referable) stays ``NEVER``.
    The strategy is no IPM through day 42 whatever the work status, so a person back at work before
    day 43 is referred at the slower rate from day 43 on, never inside the grace period."""
    late = delayed.astype(float)
    E0 = rng.exponential(1.0, late.shape)
    d_rtw = _to_day(_rtw_continuous(E0, w.rtw_start[coh], w.rtw_theta[coh], w.kappa, late, w.hr))
    after_rtw = NEVER
    if w.mech.post_rtw_referral_rate > 0:
        after_rtw = _post_rtw_referral_day(
            _Rows(w, coh),
            np.broadcast_to(np.maximum(d_rtw, GRACE_DAYS + 1), late.shape),
            rng.exponential(1.0, late.shape),
            np.s_[:],
        )
    stops = w.off_work[coh] & w.ehr[coh] & (delayed < NEVER)
    return np.where(stops & (delayed >= d_rtw), after_rtw, delayed)


def _secondary_truth(w: _World) -> dict:
    """True cumulative incidences of the secondary outcomes per strategy at 90/180/365 days, their
    differences and ratios, the naive (observed-world, uncensored) difference at 180 days, and the
    negative controls' null truth: every eligible person simulated under both strategies with common
    random numbers, as for PROMIS-PF."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _secondary_truth_unguarded(w)


def _secondary_truth_unguarded(w: _World) -> dict:
    sec: _Secondary = w.secondary
    rng = _rng(w.seed, _SECONDARY_STREAM, 3)
    coh = np.nonzero(w.eligible)[0]
    K = _draws(len(coh))
    rates = {k: v[coh] for k, v in _secondary_rates(w).items()}
    pops = {k: v[coh] for k, v in _secondary_population(w).items()}
    pops_ltot_naive = ~w.opioid[coh]
    death = w.d_death[coh]
    background = _background_ltot_day(w)[coh]
    background = np.where(background <= death, background, NEVER)  # a fill on the death day still counts
    names = [*SECONDARY_EFFECTS, "long_term_opioid_opioid_naive"]
    cif = {name: {s: np.zeros((len(HORIZONS), K)) for s in ("early", "delayed")} for name in names}
    for k0, k1 in _blocks(K, len(coh)):
        B = k1 - k0
        days = _strategy_days(rng, w.ref_pi[coh], w.ref_rate[coh], B, w.ref_rate2[coh], w.ref_halving)
        refs = {"early": days["early"], "delayed": _delayed_usual_care(w, rng, coh, days["delayed"])}
        for name, hr in sec.effects.items():
            E = rng.exponential(1.0, (B, len(coh)))  # common to both strategies
            for s, r in refs.items():
                d = _to_day(_secondary_time(E, rates[name][None, :], r.astype(float), hr))
                d = np.where(d < death[None, :], d, NEVER)
                if name == "long_term_opioid":
                    d = np.minimum(d, background[None, :])
                for h, t in enumerate(HORIZONS):
                    hit = d <= t
                    cif[name][s][h, k0:k1] = hit[:, pops[name]].mean(axis=1)
                    if name == "long_term_opioid":
                        cif[names[-1]][s][h, k0:k1] = hit[:, pops_ltot_naive].mean(axis=1)
    observed_early = (w.referral_day[coh] <= GRACE_DAYS)
    out: dict = {
        "effect_hazard_ratios": dict(sec.effects),
        "definitions": SECONDARY_DEFINITIONS,
        "draws_per_person": K,
    }
    for name in names:
        base = "long_term_opioid" if name == names[-1] else name
        pop = pops_ltot_naive if name == names[-1] else pops[name]
        entry: dict = {"persons": int(pop.sum()), "cumulative_incidence": {}, "risk_difference": {}, "risk_ratio": {},
                       "monte_carlo_se": {}}  # fmt: skip
        for s in ("early", "delayed"):
            entry["cumulative_incidence"][s] = {str(t): _r(cif[name][s][h].mean()) for h, t in enumerate(HORIZONS)}
        for h, t in enumerate(HORIZONS):
            rd, se = _summary(cif[name]["early"][h] - cif[name]["delayed"][h])
            e_, d_ = cif[name]["early"][h].mean(), cif[name]["delayed"][h].mean()
            entry["risk_difference"][str(t)] = _r(rd)
            entry["risk_ratio"][str(t)] = _r(e_ / d_) if d_ > 0 else None
            entry["monte_carlo_se"][f"risk_difference_{t}"] = _r(se)
        seen = sec.days[base][coh]
        if base == "long_term_opioid":
            seen = np.minimum(seen, background)
        hit = seen <= 180
        a, b = pop & observed_early, pop & ~observed_early
        entry["naive_risk_difference_180"] = _r(hit[a].mean() - hit[b].mean()) if a.any() and b.any() else None
        out[name] = entry
    nc_hit = sec.nc_days[:, coh] <= 180
    a, b = observed_early, ~observed_early
    out["negative_controls"] = {
        "outcomes": list(NEGATIVE_CONTROL_CODES),
        "codes": dict(NEGATIVE_CONTROL_CODES),
        "risk_difference": dict.fromkeys(map(str, HORIZONS), 0.0),
        "risk_ratio": dict.fromkeys(map(str, HORIZONS), 1.0),
        "definition": (
            "each generated from covariates only (daily hazard exp(-8.6 + 0.4 * severity + 0.02 * (age - 45)) "
            "from index, none on or after death): referral has no effect, so every true contrast is 0 (ratio 1); "
            "background visits also carry the conjunctivitis (H10.9) and acne (L70.0) codes"
        ),
        "naive_risk_difference_180": {
            name: _r(nc_hit[k][a].mean() - nc_hit[k][b].mean()) if a.any() and b.any() else None
            for k, name in enumerate(NEGATIVE_CONTROL_CODES)
        },
    }
    return out


# ----------------------------------------------------------------------------------------------
# Costs (issue 16). In the follow-up year of every eligible person (days 1..365 after the index)
# allowed amounts come from one cost process per person-day, which runs until death or day 365
# whatever the enrolment: disenrolment only hides its claims from the extract, so the truth is the
# uncensored mean. The encounter claims written above keep their rows and codes on those days but
# carry no amount (their cost is in the process). Day 0 keeps the amounts written above: they are
# also the end of the baseline cost window (a model covariate), which the process leaves untouched.
# Draws come from a stream of their own, so every other row of the extract is unchanged.
# ----------------------------------------------------------------------------------------------

#: The planted effect of referral on costs: from the day after a referral on day r, the daily rate of
#: back-pain-related claims is multiplied by ``lbp_rate_ratio**w(r)`` (w as for return to work: 1 up to
#: day 42, shrinking to 0 at day 180); the referral itself costs ``referral_cost`` (mean, USD) on its day.
COST_EFFECTS: dict[str, float] = {"lbp_rate_ratio": 0.5, "referral_cost": 400.0}
#: The null setting: referral changes no cost (neither the rate nor a cost of its own).
NULL_COST_EFFECTS: dict[str, float] = {"lbp_rate_ratio": 1.0, "referral_cost": 0.0}

_COST_STREAM = 11  # random stream of everything in this section (see _rng)
#: Back-pain-related claims per day: rate * exp(severity effect * severity) * episode profile(t), the
#: profile highest early in the episode; amounts log-normal around the price.
_COST_LBP = {"rate": 0.04, "severity": 0.5, "price": 140.0, "sigma": 0.6}
#: Other claims per day: rate * exp(0.25 * min(Charlson conditions, 4) + 0.015 * (age - 45) + 0.2 * severity).
_COST_OTHER = {"rate": 0.02, "price": 180.0, "sigma": 1.0}
_REFERRAL_COST_SIGMA = 0.3
_COST_DX_OTHER = "J06.9"


def _episode_profile(t: np.ndarray) -> np.ndarray:
    return 0.4 + 1.6 * np.exp(-np.asarray(t, dtype=float) / 45.0)


#: sum of the profile over days 1..t, for t = 0..365
_PROFILE_SUM = np.concatenate([[0.0], np.cumsum(_episode_profile(np.arange(1, FOLLOWUP_DAYS + 1)))])

COST_DEFINITIONS = {
    "outcomes": (
        "cost_total_365: allowed amounts of medical and pharmacy claims on days 0..365 after index (none after "
        "death); cost_lbp_365: those of medical claim lines related to low back pain (the spec's value sets)"
    ),
    "process": (
        "days 1..min(death, 365): back-pain-related claims at daily rate 0.04 * exp(0.5 * severity) * "
        "(0.4 + 1.6 * exp(-t / 45)), log-normal amounts around 140 (sigma 0.6), the rate multiplied by "
        "lbp_rate_ratio**w(r) from the day after the referral day r; the referral costs referral_cost on day r; "
        "other claims at daily rate 0.02 * exp(0.25 * min(Charlson, 4) + 0.015 * (age - 45) + 0.2 * severity), "
        "log-normal around 180 (sigma 1.0). Written only on enrolled days; other claims on those days carry 0"
    ),
    "day_0": (
        "the claims of the index day keep their amounts, the same under both strategies except an IPM contact "
        "on day 0 (referral on day 0), counted at its expected amount"
    ),
    "strategies": "as for the secondary outcomes: early = IPM by day 42; delayed = usual care after day 42, stopped by RTW",
    "population": "eligible persons; each person's planted death day under both strategies",
    "truth": (
        "mean over persons of the expected cost given the person's covariates, death day and referral day, "
        "averaged over draws of the referral day under each strategy; monte_carlo_se from the draws"
    ),
}


def _check_cost_effects(effects) -> dict[str, float]:
    if effects is None:
        return dict(COST_EFFECTS)
    if not isinstance(effects, dict) or set(effects) != set(COST_EFFECTS):
        raise IpmError(f"cost_effects={effects!r}: give {' and '.join(COST_EFFECTS)} (synth.NULL_COST_EFFECTS for no effect)")
    ratio, cost = effects["lbp_rate_ratio"], effects["referral_cost"]
    for name, value, ok in (("lbp_rate_ratio", ratio, "a positive finite rate ratio (1 = no effect)"),
                            ("referral_cost", cost, "a finite amount >= 0")):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise IpmError(f"cost_effects[{name!r}]={value!r}: must be {ok}")
    if ratio <= 0 or cost < 0:
        raise IpmError(f"cost_effects={effects!r}: lbp_rate_ratio must be > 0 and referral_cost >= 0")
    return {"lbp_rate_ratio": float(ratio), "referral_cost": float(cost)}


def _lognormal_mean(price: float, sigma: float) -> float:
    return price * math.exp(sigma**2 / 2)


def _cost_rates(w: _World, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(last day of costs, back-pain claim scale, other claims per day) of persons p."""
    end = np.minimum(w.d_death[p], FOLLOWUP_DAYS)
    lbp = _COST_LBP["rate"] * np.exp(_COST_LBP["severity"] * w.sev[p])
    other = _COST_OTHER["rate"] * np.exp(0.25 * np.minimum(w.charlson_n[p], 4) + 0.015 * (w.age[p] - 45) + 0.2 * w.sev[p])
    return end, lbp, other


def _lbp_profile_split(end: np.ndarray, r: np.ndarray, ratio: np.ndarray):
    """(profile sum up to the referral day, profile sum of the days after it, weighted by the ratio)."""
    before = _PROFILE_SUM[np.clip(np.minimum(end, r), 0, FOLLOWUP_DAYS)]
    after = _PROFILE_SUM[np.clip(end, 0, FOLLOWUP_DAYS)] - before
    return before, ratio * after


def _expected_process_cost(w: _World, p, r, effects) -> tuple[np.ndarray, np.ndarray]:
    """Expected (total, back-pain) cost of days 1..365 of persons p referred on day r (any shape
    broadcasting against p)."""
    end, lbp, other = _cost_rates(w, p)
    ratio = np.power(effects["lbp_rate_ratio"], _late_weight(r))
    before, after = _lbp_profile_split(end, r, ratio)
    referral = effects["referral_cost"] * ((r >= 1) & (r <= end))
    lbp_cost = lbp * (before + after) * _lognormal_mean(_COST_LBP["price"], _COST_LBP["sigma"]) + referral
    other_cost = other * np.maximum(end, 0) * _lognormal_mean(_COST_OTHER["price"], _COST_OTHER["sigma"])
    return lbp_cost + other_cost, lbp_cost


def _ipm_contact_mean_cost(kind: np.ndarray) -> np.ndarray:
    """Expected allowed amount of the first IPM contact's claims (:func:`_add_ipm_contact`) by kind."""
    price = {c: HCPCS_PRICES[c] for c in HCPCS_PRICES}
    procedure = sum(q * price[c] for q, c in zip(_IPM_PROCEDURE_P, IPM_PROCEDURES))
    by_kind = np.array(
        [
            (1 + _IPM_FACILITY_SHARE) * procedure,
            np.mean([price[c] for c in _IPM_VISIT_CODES]),
            price[_IPM_EHR_VISIT_CODE],
        ]
    )
    return by_kind[kind] * math.exp(_LINE_PRICE_SIGMA**2 / 2) * (1 - _AMOUNT_NULL_SHARE)


def _cost_claims_table(w: _World, start: int, stop: int, chunk_no: int, schema: pa.Schema) -> pa.Table | None:
    """The cost process's claim lines of persons start..stop-1 (one line per claim), on enrolled days."""
    effects = w.cost_effects
    rng = _rng(w.seed, _COST_STREAM, 1, chunk_no)
    idx = np.arange(start, stop)
    p = idx[w.eligible[idx]]
    end, lbp, other = _cost_rates(w, p)
    r = w.r_effect[p]
    ratio = np.power(effects["lbp_rate_ratio"], _late_weight(r))
    before, after = _lbp_profile_split(end, r, ratio)
    # back-pain claims: Poisson count, days by inverting the cumulative rate (profile sums)
    k = rng.poisson(lbp * (before + after))
    lp = np.repeat(np.arange(len(p)), k)
    v = rng.random(len(lp)) * (before + after)[lp]
    target = np.where(v <= before[lp], v, before[lp] + (v - before[lp]) / ratio[lp])
    lday = np.clip(np.searchsorted(_PROFILE_SUM, target, side="left"), 1, np.maximum(end[lp], 1))
    lamount = _COST_LBP["price"] * rng.lognormal(0.0, _COST_LBP["sigma"], len(lp))
    # other claims: uniform over days 1..end
    k = rng.poisson(other * np.maximum(end, 0))
    op = np.repeat(np.arange(len(p)), k)
    oday = 1 + np.floor(rng.random(len(op)) * end[op]).astype(np.int64)
    oamount = _COST_OTHER["price"] * rng.lognormal(0.0, _COST_OTHER["sigma"], len(op))
    # the referral's own cost on its day
    rp = np.flatnonzero((r >= 1) & (r <= end)) if effects["referral_cost"] > 0 else np.zeros(0, np.int64)
    s = _REFERRAL_COST_SIGMA
    ramount = effects["referral_cost"] * rng.lognormal(-(s**2) / 2, s, len(rp))

    person = p[np.concatenate([lp, rp, op])]
    day = np.concatenate([lday, r[rp], oday]).astype(np.int64)
    amount = np.round(np.concatenate([lamount, ramount, oamount]), 2)
    back_pain = np.concatenate([np.ones(len(lp) + len(rp), bool), np.zeros(len(op), bool)])
    hcpcs = np.concatenate([np.full(len(lp), "99213"), np.full(len(rp), "99214"), np.full(len(op), "99213")]).astype(object)
    absolute = w.I[person] + day
    keep = _enrolled(w, person, absolute)  # disenrolment hides claims; it does not stop costs
    person, absolute, amount, back_pain, hcpcs = (a[keep] for a in (person, absolute, amount, back_pain, hcpcs))
    m = len(person)
    if m == 0:
        return None
    order = np.lexsort((absolute, person))
    person, absolute, amount, back_pain, hcpcs = (a[order] for a in (person, absolute, amount, back_pain, hcpcs))
    dx = np.where(back_pain, np.array(ICD, dtype=object)[_episode_dx(w, person, absolute)], _COST_DX_OTHER)
    cols = {
        "claim_id": _strings("CP", chunk_no * _ID_BLOCK + 1 + np.arange(m), 10),
        "claim_line_number": pa.array(np.ones(m, dtype=np.int32)),
        "person_id": _pid(person),
        "claim_type": pa.array(np.full(m, "professional", dtype=object), pa.string()),
        "claim_start_date": _dates(absolute),
        "claim_end_date": _dates(absolute),
        "place_of_service_code": pa.array(np.full(m, "11", dtype=object), pa.string()),
        "rendering_npi": pa.nulls(m, pa.string()),
        "rendering_taxonomy_code": pa.array(np.full(m, "207Q00000X", dtype=object), pa.string()),
        "hcpcs_code": pa.array(hcpcs, pa.string()),
        "hcpcs_modifier_1": pa.nulls(m, pa.string()),
        "allowed_amount": pa.array(amount),
        "paid_amount": pa.array(np.round(amount * 0.8, 2)),
        f"{DIAGNOSIS_COLUMN_PREFIX}1": pa.array(dx, pa.string()),
    }
    for j in range(2, N_DX + 1):
        cols[f"{DIAGNOSIS_COLUMN_PREFIX}{j}"] = pa.nulls(m, pa.string())
    return pa.table({name: cols[name] for name in schema.names}).cast(schema)


@functools.cache
def _lbp_related():
    """``(diagnosis columns, hcpcs, absolute days) -> bool`` per line: what the cohort build counts as
    back-pain related for cost_lbp_365 (a diagnosis in its diagnosis value sets on the service date, or
    its own procedure code in its procedure value sets)."""
    from .valuesets import load_valuesets, normalise_code

    outcome = _SHIPPED.outcomes.cost_lbp_365
    sets = load_valuesets(_SHIPPED)
    dx_entries = [e for n in outcome.diagnosis_valuesets for e in sets[n].entries]
    proc_entries = [e for n in outcome.procedure_valuesets for e in sets[n].entries]

    def match(entries, codes: np.ndarray, days: np.ndarray) -> np.ndarray:
        idx, uniques = _factorize(codes)
        lo = np.full(len(uniques), np.iinfo(np.int64).max)
        hi = np.full(len(uniques), np.iinfo(np.int64).min)
        for u, code in enumerate(uniques):
            for e in entries:
                if e.matches(normalise_code(code)):
                    lo[u] = min(lo[u], _dn(e.valid_from) if e.valid_from else np.iinfo(np.int64).min)
                    hi[u] = max(hi[u], _dn(e.valid_to) if e.valid_to else np.iinfo(np.int64).max)
        ok = idx >= 0
        out = np.zeros(len(codes), dtype=bool)
        out[ok] = (days[ok] >= lo[idx[ok]]) & (days[ok] <= hi[idx[ok]])
        return out

    def related(dx_columns: list[np.ndarray], hcpcs: np.ndarray, days: np.ndarray) -> np.ndarray:
        out = match(proc_entries, hcpcs, days)
        for codes in dx_columns:
            out |= match(dx_entries, codes, days)
        return out

    return related


def _factorize(codes: np.ndarray):
    """Codes -> (index per value, -1 for null; the distinct codes)."""
    import pandas as pd

    idx, uniques = pd.factorize(pd.Series(codes, dtype=object), use_na_sentinel=True)
    return np.asarray(idx, dtype=np.int64), list(uniques)


def _follow_up_amounts(w: _World, table: pa.Table, date_col: str, medical: bool) -> pa.Table:
    """Zero the amounts of eligible persons' lines on days 1..365 (the cost process carries them) and
    add up their day-0 amounts (all, and back-pain related on medical lines) into ``w.cost_day0``."""
    if table.num_rows == 0:
        return table
    p = pc.utf8_slice_codeunits(table["person_id"], 1).cast(pa.int64()).to_numpy() - 1
    known = p < w.n  # the EHR-only persons have no claims, but stay safe
    p = np.where(known, p, 0)
    day = table[date_col].to_numpy().astype("datetime64[D]").astype(np.int64)
    rel = day - w.I[p]
    eligible = known & w.eligible[p]
    follow = eligible & (rel >= 1) & (rel <= FOLLOWUP_DAYS)
    allowed = table["allowed_amount"].to_numpy(zero_copy_only=False).astype(float)
    null = np.isnan(allowed)
    day0 = eligible & (rel == 0) & ~null
    if getattr(w, "cost_day0", None) is not None and day0.any():
        np.add.at(w.cost_day0[0], p[day0], allowed[day0])
        if medical:
            rows = np.flatnonzero(day0)
            dx = [table[f"{DIAGNOSIS_COLUMN_PREFIX}{j}"].take(pa.array(rows)).to_numpy(zero_copy_only=False) for j in range(1, N_DX + 1)]
            hcpcs = table["hcpcs_code"].take(pa.array(rows)).to_numpy(zero_copy_only=False)
            related = _lbp_related()(dx, hcpcs, day[rows])
            np.add.at(w.cost_day0[1], p[rows[related]], allowed[rows[related]])
    if not follow.any():
        return table
    for name in ("allowed_amount", "paid_amount"):
        values = table[name].to_numpy(zero_copy_only=False).astype(float)
        column = pa.array(np.where(follow, 0.0, np.nan_to_num(values)), mask=np.isnan(values), type=table.schema.field(name).type)
        table = table.set_column(table.schema.get_field_index(name), name, column)
    return table




def _with_costs(build, medical: bool):
    """A table builder whose follow-up amounts come from the cost process (medical: with its lines)."""
    date_col = "claim_start_date" if medical else "dispensing_date"

    def builder(w: _World, start: int, stop: int, rng, chunk_no: int) -> pa.Table:
        table = build(w, start, stop, rng, chunk_no)
        if getattr(w, "cost_effects", None) is None:
            return table
        table = _follow_up_amounts(w, table, date_col, medical)
        extra = _cost_claims_table(w, start, stop, chunk_no, table.schema) if medical else None
        return table if extra is None else pa.concat_tables([table, extra])

    builder.__name__ = build.__name__
    return builder


_TABLE_BUILDERS["medical_claim"] = _with_costs(_TABLE_BUILDERS["medical_claim"], medical=True)
_TABLE_BUILDERS["pharmacy_claim"] = _with_costs(_TABLE_BUILDERS["pharmacy_claim"], medical=False)


def _cost_truth(w: _World) -> dict:
    """True mean cost_total_365 and cost_lbp_365 per strategy over the eligible cohort, their difference
    (early - delayed) with Monte-Carlo standard errors, and the naive (observed referral, uncensored)
    difference. Needs ``w.cost_day0`` (the day-0 amounts, added up while the claims are written)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _cost_truth_unguarded(w)


def _cost_truth_unguarded(w: _World) -> dict:
    effects = w.cost_effects
    rng = _rng(w.seed, _COST_STREAM, 3)
    coh = np.nonzero(w.eligible)[0]
    K = _draws(len(coh))
    contact = _ipm_contact_mean_cost(w.ref_kind[coh])
    # day 0: the amounts written, with the observed day-0 IPM contact replaced by the strategy's
    day0_total = w.cost_day0[0][coh] - (w.contact_day[coh] == 0) * contact
    day0_lbp = w.cost_day0[1][coh] - (w.contact_day[coh] == 0) * contact
    draws = {(o, s): np.zeros(K) for o in ("total", "lbp") for s in ("early", "delayed")}
    for k0, k1 in _blocks(K, len(coh)):
        days = _strategy_days(rng, w.ref_pi[coh], w.ref_rate[coh], k1 - k0, w.ref_rate2[coh], w.ref_halving)
        refs = {"early": days["early"], "delayed": _delayed_usual_care(w, rng, coh, days["delayed"])}
        for s, r in refs.items():
            total, lbp = _expected_process_cost(w, coh[None, :], r, effects)
            on_day0 = (r == 0) * contact[None, :]
            draws[("total", s)][k0:k1] = (total + on_day0 + day0_total[None, :]).mean(axis=1)
            draws[("lbp", s)][k0:k1] = (lbp + on_day0 + day0_lbp[None, :]).mean(axis=1)
    observed_total, observed_lbp = _expected_process_cost(w, coh, w.r_effect[coh], effects)
    observed = {"total": observed_total + w.cost_day0[0][coh], "lbp": observed_lbp + w.cost_day0[1][coh]}
    early_seen = w.referral_day[coh] <= GRACE_DAYS
    out: dict = {
        "effects": dict(effects),
        "definitions": COST_DEFINITIONS,
        "persons": len(coh),
        "draws_per_person": K,
        "currency": "USD",
    }
    for outcome, key in (("cost_total_365", "total"), ("cost_lbp_365", "lbp")):
        diff, se = _summary(draws[(key, "early")] - draws[(key, "delayed")])
        entry = {"mean": {}, "monte_carlo_se": {}, "difference": _r(diff)}
        for s in ("early", "delayed"):
            mean, s_se = _summary(draws[(key, s)])
            entry["mean"][s] = _r(mean)
            entry["monte_carlo_se"][s] = _r(s_se)
        entry["monte_carlo_se"]["difference"] = _r(se)
        a, b = early_seen, ~early_seen
        naive = observed[key][a].mean() - observed[key][b].mean() if a.any() and b.any() else math.nan
        entry["naive_difference"] = _r(naive)
        out[outcome] = entry
    return out


def cost_effects_for_ratio(ratio: float) -> dict[str, float]:
    """The cost effects of ``synth --cost-ratio``: :data:`NULL_COST_EFFECTS` for 1, otherwise the rate
    ratio with the default cost of the referral itself."""
    if isinstance(ratio, (int, float)) and not isinstance(ratio, bool) and ratio == 1:
        return dict(NULL_COST_EFFECTS)
    return _check_cost_effects({**COST_EFFECTS, "lbp_rate_ratio": ratio})
