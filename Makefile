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

# The test targets run with PYTHONDONTWRITEBYTECODE unset (where an environment sets it): pytest then caches
# the test modules it rewrites for its assertions, and Python the compiled foveal modules, so a second run's
# two workers each start about 5 CPU-s sooner (collection 11.4 -> 6.4 CPU-s, measured 2026-12-07; the first,
# cache-writing run costs what it did).
PYTEST := env -u PYTHONDONTWRITEBYTECODE $(PY) -m pytest

## Fast test suite, the default tier (marker expression `not slow`, from pyproject's addopts); lint first.
test: lint
	$(PYTEST) -n 2 -q

## The slow tier only (CI runs it after `make test`); pytest's exit 5 (no slow test collected) is not a failure.
test-slow: install
	$(PYTEST) -n 2 -q -m slow || { rc=$$?; [ $$rc -eq 5 ] && echo "no slow tests collected"; [ $$rc -eq 5 ] || exit $$rc; }

## Everything, including slow tests.
test-all: install
	$(PYTEST) -n 2 -q -m "slow or not slow"
