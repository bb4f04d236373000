# hlplay — the two commands of README.md, and the checks developers run.
VENV ?= .venv
PY := $(VENV)/bin/python
HLPLAY := $(VENV)/bin/hlplay

.PHONY: bootstrap demo test lint bench clean

bootstrap:
	@bash scripts/bootstrap.sh

# Command 1: the main job, end to end, on the built-in lab.
demo:
	@bash scripts/demo.sh

# Command 2: install what the tests need and run them all.
test:
	@bash scripts/test.sh $(PYTEST_ARGS)

lint: bootstrap
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

bench: bootstrap
	$(PY) -m pip install -q -e '.[bench]'
	for b in bench/*.py; do $(PY) $$b; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
