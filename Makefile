# The README's two commands: `make demo` (the whole study on the embedded synthetic extract)
# and `make test`. Each creates the virtual environment and installs what it needs on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test test-integration test-slow test-spark test-all clean-data

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# setuptools announces, as a warning, that an editable install of a package outside src/ (pipelines/)
	@# uses an import finder: information, not a problem, and a screen of it on every fresh install.
	PYTHONWARNINGS=ignore::UserWarning $(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(INSTALLED)

demo: $(INSTALLED)
	$(BIN)/ipm-outcomes run

# Two processes (pytest-xdist), each taking whole test files so a module's fixtures are built once.
test: $(INSTALLED)
	$(BIN)/python -m pytest -n 2 --dist loadfile

# The pipeline end to end (tests/integration/): synth -> ingest -> cohort -> analyze -> report, the
# Prefect flow, the notebooks. Those also marked slow run with test-slow, not twice.
test-integration: $(INSTALLED)
	$(BIN)/python -m pytest -n 2 --dist loadfile -m 'integration and not slow and not spark'

test-slow: $(INSTALLED)
	$(BIN)/python -m pytest -m 'slow and not spark'

# The Spark engine's tests: pyspark (the [spark] extra) and Java 17 (Debian: openjdk-17-jre-headless).
test-spark: $(INSTALLED)
	PYTHONWARNINGS=ignore::UserWarning $(BIN)/python -m pip install --quiet -e '.[dev,spark]'
	$(BIN)/python -m pytest -m spark

test-all: $(INSTALLED)
	$(BIN)/python -m pytest -m ''

clean-data:
	find data/interim data/processed -mindepth 1 ! -name .gitkeep -delete
