# The two set-up commands of the README: `make demo` and `make test`.
# Both create .venv (if needed) and install foveal with its pinned ranges from pyproject.toml.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	scripts/fetch_ort_web.sh || echo "onnxruntime-web not fetched; the in-browser test will be skipped"
	touch $@

.PHONY: install demo lint test test-slow test-all
install: $(VENV)/.installed

## Train LeNet-5 on scikit-learn's digits (ships offline) and write an HTML report under runs/.
demo: install
	$(VENV)/bin/foveal train --output runs

## Linter: pyflakes and import order (configured in pyproject.toml, [tool.ruff]).
lint: install
	$(VENV)/bin/ruff check .

## Fast test suite, the default tier (marker expression `not slow`, from pyproject's addopts); lint first.
test: lint
	$(PY) -m pytest -n 2 -q

## The slow tier only (CI runs it after `make test`); pytest's exit 5 (no slow test collected) is not a failure.
test-slow: install
	$(PY) -m pytest -n 2 -q -m slow || { rc=$$?; [ $$rc -eq 5 ] && echo "no slow tests collected"; [ $$rc -eq 5 ] || exit $$rc; }

## Everything, including slow tests.
test-all: install
	$(PY) -m pytest -n 2 -q -m "slow or not slow"
