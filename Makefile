# Two commands (see README): `make run` and `make test`. Each installs what it needs first;
# the install steps are skipped when nothing they depend on has changed.

PYTHON ?= $(shell command -v python3.11 >/dev/null 2>&1 && echo python3.11 || echo python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)

.PHONY: run test lint install assistant

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Minhu needs Python >= 3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing Minhu into $(VENV) ..."
	@$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

# The Rasa venv (Python 3.10) and the model, trained only when its inputs changed: a one-line note on the
# terminal, the progress (and Rasa's warnings) in data/logs/rasa-train.log (the last lines on the terminal
# if it fails). Without python3.10 a local `make test` skips the end-to-end tests; with CI=true it fails here.
assistant:
	@if [ "$$CI" = true ] || command -v python3.10 >/dev/null 2>&1; then \
		MINHU_SCRIPT_LOG="$${MINHU_DATA_DIR:-data}/logs/rasa-train.log" scripts/rasa-train.sh >/dev/null; \
	else echo "python3.10 not found: skipping the Rasa model (end-to-end tests will be skipped)"; fi

run: $(STAMP) assistant
	@$(BIN)/minhu db upgrade
	@$(BIN)/minhu run

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint assistant
	$(BIN)/pytest
