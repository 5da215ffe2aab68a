# The one entry point for people and CI. `make run` and `make test` work on a
# fresh clone: they install what they need first.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMPS := .make
PROTO_FILES := $(shell find protos -name '*.proto')

.PHONY: help install protos protos-check broker postgres run test lint bench clean

help:
	@echo "make run          start the whole mesh locally (installs, starts RabbitMQ)"
	@echo "make test         protos-check, lint, then every test (installs, starts RabbitMQ and PostgreSQL)"
	@echo "make lint         ruff check, ruff format --check, mypy"
	@echo "make bench        throughput and latency of a fresh mesh vs a bare relay"
	@echo "make protos       regenerate gen/ from protos/; make protos-check compares"
	@echo "make install      the virtualenv, the package and generated code"
	@echo "make broker       make sure RabbitMQ answers on 127.0.0.1:5672"
	@echo "make postgres     make sure PostgreSQL answers on 127.0.0.1:5432"
	@echo "make clean        remove generated code, caches and stamps (not .venv, not var/)"

# The virtualenv with the package and its dev tools. The editable install maps
# the top-level packages present when it runs, and gen/ only exists after
# protos are built, so it runs again once they are.
$(STAMPS)/venv: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet -e ".[dev]"
	bash scripts/protos.sh
	$(PIP) install --quiet --no-deps -e .
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/protos: $(STAMPS)/venv $(PROTO_FILES) scripts/protos.sh
	bash scripts/protos.sh
	@touch $@

install: $(STAMPS)/protos

protos: $(STAMPS)/venv
	bash scripts/protos.sh
	@touch $(STAMPS)/protos

protos-check: $(STAMPS)/venv
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	bash scripts/protos.sh "$$tmp/gen"; \
	if ! diff -r -q -x __pycache__ "$$tmp/gen" gen; then \
		echo "gen/ does not match protos/: run 'make protos'" >&2; exit 1; \
	fi; \
	echo "gen/ matches protos/"

broker:
	bash scripts/ensure-rabbitmq.sh

postgres:
	bash scripts/ensure-postgres.sh

run: install broker
	$(VENV)/bin/sendmesh run

# CI runs only this target, so it checks everything: generated code, lint
# and types, then every test.
test: install broker postgres protos-check lint
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy services shared tests cli

bench: install broker
	$(VENV)/bin/sendmesh bench

clean:
	rm -rf gen $(STAMPS) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +

# promtool (Prometheus' rule and metrics checker) from PATH or .tools/bin/,
# else extracted from Debian's prometheus package; the daemon is not installed.
.PHONY: promtool monitoring-check

promtool:
	@bash scripts/ensure-promtool.sh >/dev/null

# deploy/monitoring: promtool check and unit tests of the rules, the dashboard's
# PromQL and metric names, and promtool's lint of every service's /metrics.
monitoring-check: install broker
	@promtool=$$(bash scripts/ensure-promtool.sh); \
	"$$promtool" check rules deploy/monitoring/rules.yaml; \
	cd deploy/monitoring && "$$promtool" test rules rules.test.yaml
	$(VENV)/bin/pytest -q tests/deploy/test_monitoring.py tests/integration/shared/test_promtool_metrics.py

# Renders every Kubernetes overlay, then checks the manifests against the code
# and the CRD schemas, and the Dockerfile (tests/deploy; offline, needs kubectl).
.PHONY: deploy-check
KUBECTL ?= kubectl
deploy-check: install
	@for overlay in deploy/k8s/overlays/*/; do \
		$(KUBECTL) kustomize "$$overlay" > /dev/null && echo "rendered $$overlay"; \
	done
	$(PY) deploy/schemas/crd2jsonschema.py --check
	$(PY) deploy/k8s/components/monitoring/sync_rules.py --check
	KUBECTL=$$(command -v $(KUBECTL)) $(VENV)/bin/pytest -q tests/deploy
