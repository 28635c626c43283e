# The two quick-start commands: `make demo` and `make test`. Both install into .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export DBT_SEND_ANONYMOUS_USAGE_STATS := False

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,lint,tableau,spark]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/aps-usage demo

test: $(STAMP)
	$(PY) -m pytest

# ruff for Python, sqlfluff (dbt templater: compiles the project on an empty data dir) for SQL
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	@# the templater compiles every model, and a source resolves only where its (empty) Delta
	@# table exists; sqlfluff only warns about a model it could not compile, so that fails here
	tmp=$$(mktemp -d) && $(PY) -c "import sys; from extractor.dataset import DataDir; DataDir(sys.argv[1]).ensure_tables()" $$tmp \
	  && { APS_USAGE_DATA_DIR=$$tmp $(VENV)/bin/sqlfluff lint dbt_project/models > $$tmp/sqlfluff.log 2>&1; rc=$$?; \
	       cat $$tmp/sqlfluff.log; [ $$rc -eq 0 ] && ! grep -q "Skipped file" $$tmp/sqlfluff.log; }
	$(PY) -m extractor.generate --check

bench: $(STAMP)
	for b in bench/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) data dbt_project/target dbt_project/logs
