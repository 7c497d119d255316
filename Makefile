# Two entry points (README): `make quickstart` runs the main job, `make test` the suite.
# Both bootstrap .venv from nothing on first use.
PY := .venv/bin/python
STAMP := .venv/.installed

.PHONY: quickstart test test-fast setup clean

$(STAMP): pyproject.toml requirements/constraints.txt scripts/setup_env.sh
	bash scripts/setup_env.sh

setup: $(STAMP)

quickstart: $(STAMP)
	.venv/bin/spatial-clap quickstart --output-dir runs/quickstart

test: $(STAMP)
	$(PY) -m pytest -q tests

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests

clean:
	rm -rf .venv runs
