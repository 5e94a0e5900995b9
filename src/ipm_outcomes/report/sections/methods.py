"""Section 10, methods and provenance: the target trial and its emulation, the confidence intervals, the
reporting checklist, the input files, value sets and study spec as run."""

from __future__ import annotations

from ...disclosure import MISSING_LABEL
from ...report_data import spec_as_toml
from ...vocabulary import METHODS
from ..context import ReportContext
from ..display import DisplayTable, Section

_CHECKLIST = [
    # (section id, guideline, item, what the section reports)
    ("summary", "TARGET (abstract, introduction)", "Study identified as a target-trial emulation; causal question stated",
     "The question, the compared strategies and the primary answer with its 95% CI."),
    ("population", "RECORD 6.1 / STROBE 6a", "Eligibility criteria; codes and algorithms used to select the population",
     "CONSORT flow with each criterion; the value sets are listed under Methods."),
    ("population", "RECORD 13.1 / STROBE 13", "Selection of persons in each stage, with a flow diagram",
     "Attrition diagram and table for the cohort and the return-to-work population."),
    ("population", "STROBE 14 / TARGET (results)", "Baseline characteristics by treatment strategy",
     "Table 1 by exposure group with standardized mean differences before and after weighting."),
    ("timing", "TARGET (methods: treatment strategies, assignment)", "Treatment strategies and the grace period",
     "Distribution of days to first IPM contact with the grace period marked; delay categories."),
    ("rtw", "STROBE 16 / TARGET (results: estimates)", "Effect estimates for each causal contrast with precision",
     "Cumulative incidence curves, risk differences and ratios at each horizon, days off work."),
    ("qol", "STROBE 16 / TARGET (results: estimates)", "Secondary outcomes with precision; missing data",
     "Adjusted means, differences, responder rates; numbers observed and missing."),
    ("dose", "STROBE 17", "Other analyses: dose-response", "Return to work across referral-delay categories."),
    ("robustness", "STROBE 17 / TARGET (results: sensitivity)", "Sensitivity and subgroup analyses",
     "Method comparison incl. the naive (biased) contrast, grace periods, referral definition, E-value, subgroups."),
    ("robustness", "RECORD 19.1", "Limitations: bias from data not collected for research (immortal time, misclassification)",
     "The naive contrast shown as biased; the E-value for unmeasured confounding."),
    ("diagnostics", "TARGET (methods: identifying assumptions)", "Positivity and exchangeability diagnostics",
     "Preference-score overlap, covariate balance (love plot), weight distribution, pass/fail table."),
    ("methods", "TARGET (methods: target trial protocol and emulation)", "Protocol components and how each is emulated",
     "Target-trial specification table (eligibility, strategies, time zero, follow-up, outcomes, contrasts, analysis)."),
    ("methods", "RECORD 7.1", "Complete list of codes and algorithms for exposure, outcomes, confounders",
     "Value sets with their versions (content hashes); the study spec as run."),
    ("methods", "RECORD 12.1 / 12.2 / 12.3", "Data access, cleaning and linkage",
     "Input files with hashes and row counts; claims and EHR linked by person identifier at ingest."),
    ("methods", "RECORD 22.1 / TARGET (other information)", "Access to protocol, code and data",
     "Study spec as run, package version, random seed; the pipeline is open source."),
]


_SECTION_TITLES = {
    "summary": "1. Executive summary",
    "population": "2. Study population",
    "timing": "3. Referral timing",
    "rtw": "4. Return to work",
    "qol": "5. Quality of life",
    "dose": "6. How early matters",
    "robustness": "7. Robustness",
    "diagnostics": "8. Diagnostics",
    "methods": "9. Methods and provenance",
    "limitations": "10. Limitations",
}


def build(ctx: ReportContext) -> Section:
    d = ctx.data
    s = d.spec_get
    tables = {}
    grace = d.grace_period_days
    protocol = [
        ("Eligibility", f"Adults aged {s('cohort', 'age_min', default='?')}-{s('cohort', 'age_max', default='?')} with a new "
         f"low back pain episode (no LBP diagnosis in the prior {s('cohort', 'washout_days', default='?')} days), "
         f"continuously enrolled {s('cohort', 'baseline_enrollment_days', default='?')} days before index, no red-flag "
         "diagnosis, no IPM contact in the prior year.",
         "Claims diagnoses and enrollment spans (value sets below); first eligible episode per person."),
        ("Treatment strategies", f"(1) First IPM contact within {grace} days of index; (2) no IPM contact within {grace} days.",
         "IPM contact = IPM procedure code or pain-medicine provider taxonomy on a claim."),
        ("Assignment", "Randomised in the target trial.",
         "Each person is cloned into both strategies; clones are censored when they deviate and weighted by "
         "inverse probability of remaining uncensored given baseline covariates."),
        ("Time zero and follow-up", f"Index date (first LBP visit); follow-up to {s('cohort', 'followup_days', default=365)} days, "
         "end of enrollment or data, or death.", "Same; eligibility and strategy assignment align at index (no immortal time)."),
        ("Outcomes", "Return to work (competing: long-term disability, retirement, death); quality of life at "
         f"{', '.join(str(x) for x in s('outcomes', 'qol', 'horizons_days', default=d.horizons))} days.",
         "EHR work-status records; PROMIS, ODI, EQ-5D, NRS assessments nearest each horizon."),
        ("Causal contrast", "Per-protocol effect of the two strategies.",
         "Risk differences and ratios of cumulative incidence (Aalen-Johansen, weighted); cause-specific hazard ratio; "
         "days off work; IPTW-ANCOVA mean differences."),
        ("Analysis", f"Person-level bootstrap ({d.provenance.get('bootstrap_replicates', s('analysis', 'bootstrap_replicates', default='?'))} replicates), "
         f"seed {d.seed}.", "Sensitivity: landmark IPTW, time-varying Cox, grace periods, referral definition, E-value."),
    ]
    tables["target_trial"] = DisplayTable(
        columns=[("component", "Component"), ("target_trial", "Target trial"), ("emulation", "Emulation with these data")],
        rows=[list(r) for r in protocol],
        caption="Target-trial specification and its emulation.",
    )
    files = d.provenance.get("files") or []
    if files:
        tables["provenance_files"] = DisplayTable(
            columns=[("table", "Table"), ("file", "File"), ("rows", "Rows"), ("sha256", "SHA-256")],
            rows=[[str(f.get("table", "")), str(f.get("file", "")), ctx.c(("prov", i)) if f.get("rows") is not None else MISSING_LABEL,
                   str(f.get("sha256", ""))] for i, f in enumerate(files)],
            caption="Input files loaded, with their content hashes and row counts.",
            count_columns={"rows"},
        )
    vs = d.provenance.get("valuesets") or []
    if vs:
        tables["valuesets"] = DisplayTable(
            columns=[("name", "Value set"), ("source", "Source"), ("codes", "Codes"), ("sha256", "SHA-256")],
            rows=[[str(v.get("name", "")), str(v.get("source", v.get("file", ""))), str(v.get("codes", v.get("rows", ""))),
                   str(v.get("sha256", ""))] for v in vs],
            caption="Value sets (code lists) as run; the hash identifies the exact version.",
        )
    packages = d.provenance.get("packages") or {}
    tables["checklist"] = DisplayTable(
        columns=[("section", "Report section"), ("guideline", "Guideline item"), ("item", "Requirement"), ("where", "What this report shows")],
        rows=[[_SECTION_TITLES[sec], g, item, what] for sec, g, item, what in _CHECKLIST],
        caption="Reporting checklist: where this report addresses RECORD (routinely collected health data) and "
                "TARGET (target-trial emulation) items.",
    )
    if d.intervals:
        tables["intervals"] = DisplayTable(
            columns=[("method", "Method"), ("interval", "How the 95% confidence interval was computed")],
            rows=[[METHODS.get(m, m), text] for m, text in d.intervals.items()],
            caption="Confidence intervals by method.",
        )
    return Section({
        "cohort_load": _cohort_load_facts(d.provenance),
        "spec_toml": spec_as_toml(d.spec) if d.spec else "(the results do not include the study spec)",
        "spec_sha256": d.spec_sha256,
        "data_sha256": d.data_sha256,
        "seed": d.seed,
        "packages": sorted(packages.items()),
        "results_dir": str(d.results_dir),
        "table_grains": sorted(d.table_grains.items()),
    }, tables)


def _cohort_load_facts(provenance: dict) -> list[tuple[str, str]]:
    """What the cohort was built from, as (term, description) pairs: the load, its time, its calendar."""
    load = provenance.get("cohort_load") or {}
    if not load:
        return []
    facts = [
        ("Extract analysed", str(load.get("extract_path") or "—")),
        ("Extract loaded", f"{load.get('loaded_at') or '—'}; cohort built {provenance.get('cohort_built_at') or '—'}"),
    ]
    if load.get("dates_shifted"):
        facts.append(
            (
                "Dates",
                f"shifted for de-identification: plausibility checked against the reference date "
                f"{load.get('reference_date')}, and the code systems' calendar rules moved by "
                f"{load.get('date_shift_days')} days with them; calendar years shown are shifted years",
            )
        )
    else:
        facts.append(("Dates", "as recorded in the extract (not shifted)"))
    return facts


