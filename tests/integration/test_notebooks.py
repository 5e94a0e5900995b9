"""The analyst notebooks run top to bottom against a small synthetic study, and are committed clean."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from ipm_outcomes import analysis, cohort, ingest, synth
from ipm_outcomes.study import StudyPaths

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks_for_each_phase():
    names = [path.name for path in NOTEBOOKS]
    assert len(names) >= 3
    for name in names:
        phase, _, topic = name.partition("-")
        assert phase.count(".") == 1 and all(part.isdigit() for part in phase.split(".")), name
        assert topic.endswith(".ipynb"), name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: clear outputs before committing"


@pytest.fixture(scope="module")
def study_root(tmp_path_factory, fast_spec):
    root = tmp_path_factory.mktemp("notebook-study")
    spec = fast_spec
    paths = StudyPaths(root=root, study=spec.study.name)
    paths.make_dirs()
    synth.generate(paths.synthetic_extract_dir, persons=3_000, seed=11, file_format="parquet")
    ingest.load_extract(paths.synthetic_extract_dir, paths.db_path)
    cohort.build(spec, paths.db_path, export_dir=paths.marts_dir)
    analysis.run(spec, paths.db_path, paths.results_dir, workers=1)
    return root


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path, study_root, monkeypatch):
    monkeypatch.setenv("IPM_OUTCOMES_ROOT", str(study_root))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [out for cell in notebook.cells for out in cell.get("outputs", [])]
    assert [out for out in outputs if out.get("output_type") == "error"] == []
    # the study was run stage by stage from one load and one spec: nothing to warn about
    mismatches = [out["text"] for out in outputs if out.get("name") == "stderr" and "UserWarning" in out.get("text", "")]
    assert mismatches == []
