"""The install is quiet: every folder of the package is declared, so setuptools has nothing to warn about."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_every_package_folder_is_declared():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    source = ROOT / "src"
    folders = {
        ".".join(folder.relative_to(source).parts)
        for folder in (source / "ipm_outcomes").rglob("*")
        if folder.is_dir() and folder.name != "__pycache__" and any(folder.iterdir())
    }
    folders.add("ipm_outcomes")
    assert sorted(set(config["packages"]) - {"pipelines"}) == sorted(folders)
