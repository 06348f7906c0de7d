# Two commands for a new machine: `make up` (run the dev platform) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
TOOLS := .tools
STACK ?= dev
OUT ?= build/render/$(STACK)
STATE_DIR := $(CURDIR)/.pulumi-state
export PULUMI_CONFIG_PASSPHRASE ?=

.PHONY: up test lint test-consumer render render-all venv tools check-tools clean down

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements-dev.txt
	touch $@

$(TOOLS)/.installed: requirements-tools.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q -r requirements-tools.txt
	touch $@

venv: $(VENV)/.installed
tools: $(TOOLS)/.installed

## make test: create the venvs, install everything, the static checks (make lint: a finding fails the
## build), the whole test suite (with the reason of every skipped test: -rs), then the consumer check.
## PYTEST_ARGS: more pytest options (.ci/run adds a JUnit report).
test: venv tools
	$(MAKE) lint
	$(VENV)/bin/python -m pytest -rs $(PYTEST_ARGS)
	$(MAKE) test-consumer

## make lint: ruff (the explicit rule set `select` in pyproject.toml) on the whole repository, mypy
## (files and strictness in pyproject.toml) on the library. Both pinned in requirements-dev.txt.
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

CONSUMER_VENV := build/consumer-venv
## make test-consumer: the library as another team gets it. A fresh venv, `pip install .` (a real
## install, not editable) through the example's requirements, then examples/team-app's tests.
test-consumer:
	rm -rf $(CONSUMER_VENV) build/lib build/bdist.*
	$(PYTHON) -m venv $(CONSUMER_VENV)
	cd examples/team-app && $(CURDIR)/$(CONSUMER_VENV)/bin/pip install -q -r requirements-dev.txt
	rm -rf build/lib build/bdist.*
	cd /tmp && $(CURDIR)/$(CONSUMER_VENV)/bin/python -c 'import cnplatform.microservice, pathlib, sysconfig; \
	  site = pathlib.Path(sysconfig.get_paths()["purelib"]); \
	  assert pathlib.Path(cnplatform.__file__).parent == site / "cnplatform", cnplatform.__file__; \
	  stray = [n for n in ("components", "stacks", "tests", "services") if (site / n).exists()]; \
	  assert not stray, f"not the library: {stray} in site-packages"'
	cd examples/team-app && $(CURDIR)/$(CONSUMER_VENV)/bin/python -m pytest

## make render STACK=dev|staging|prod: offline render (no Pulumi CLI, no cluster, no cloud).
render: venv
	$(VENV)/bin/python -m stacks.render --stack $(STACK) $(if $(CONFIG),--config $(CONFIG)) --out $(OUT)

render-all: venv
	for s in dev staging prod; do $(VENV)/bin/python -m stacks.render --stack $$s --out build/render/$$s -q || exit 1; done

## make deploy-image REGISTRY=<prefix> [STACK=staging|prod]: once per Jenkins cluster (and after an edit of
## ci/images/deploy/Dockerfile), build the pipelines' deploy image (Pulumi + aws + gke-gcloud-auth-plugin),
## push it by content tag unless the registry has it (immutable), print the digest reference for
## cicd.deploy_image. REGISTRY: the registry of the cluster Jenkins runs on (docs/cicd.md).
.PHONY: deploy-image
deploy-image: venv
	@test -n "$(REGISTRY)" || { echo "make deploy-image REGISTRY=<registry prefix of the Jenkins cluster>"; exit 2; }
	$(VENV)/bin/python ci/images/deploy_image.py "$(REGISTRY)" --stack "$(STACK)"

## Every missing or too-old tool in one pass (Python, Pulumi CLI, Docker and its engine, kind and its
## version, kubectl), then what to do without them.
KIND_MIN := 0.31.0
PYTHON_MIN := 3.11
check-tools:
	@missing=0; \
	py=$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null); \
	if [ -z "$$py" ]; then missing=1; echo "missing: $(PYTHON) (Python >= $(PYTHON_MIN)) -> https://www.python.org/downloads/  (or make up PYTHON=python3.11)"; \
	elif [ "$$(printf '%s\n%s\n' "$(PYTHON_MIN)" "$$py" | sort -V | head -n1)" != "$(PYTHON_MIN)" ]; then \
	  missing=1; echo "too old: $(PYTHON) is Python $$py (needs >= $(PYTHON_MIN)) -> install Python $(PYTHON_MIN)+ and run: make up PYTHON=python$(PYTHON_MIN)"; fi; \
	for t in pulumi docker kind kubectl; do \
	  if ! command -v $$t >/dev/null 2>&1; then missing=1; case $$t in \
	    pulumi) echo "missing: Pulumi CLI -> curl -fsSL https://get.pulumi.com | sh   (https://www.pulumi.com/docs/install/)";; \
	    docker) echo "missing: Docker engine -> https://docs.docker.com/engine/install/ (Docker Desktop on macOS/Windows)";; \
	    kind) echo "missing: kind -> go install sigs.k8s.io/kind@v$(KIND_MIN)  or  https://kind.sigs.k8s.io/docs/user/quick-start/#installation";; \
	    kubectl) echo "missing: kubectl -> https://kubernetes.io/docs/tasks/tools/";; \
	  esac; fi; \
	done; \
	if command -v kind >/dev/null 2>&1; then \
	  have=$$(kind version 2>/dev/null | sed -n 's/^kind v\([0-9.]*\).*/\1/p'); \
	  if [ -z "$$have" ] || [ "$$(printf '%s\n%s\n' "$(KIND_MIN)" "$$have" | sort -V | head -n1)" != "$(KIND_MIN)" ]; then \
	    missing=1; echo "too old: kind $${have:-?} (the node image needs kind >= v$(KIND_MIN)) -> go install sigs.k8s.io/kind@v$(KIND_MIN)"; fi; \
	fi; \
	if command -v docker >/dev/null 2>&1 && ! docker info >/dev/null 2>&1; then missing=1; echo "Docker is installed but the engine is not running: start Docker"; fi; \
	if [ $$missing = 1 ]; then echo; echo "Without them you can still see everything the platform would create: make render STACK=dev"; exit 1; fi

## The local state backend is scoped to these targets (PULUMI_BACKEND_URL): `pulumi login` would change
## the user's global backend for every other project too.
up down: export PULUMI_BACKEND_URL = file://$(STATE_DIR)
up: check-tools venv
	mkdir -p $(STATE_DIR)
	pulumi stack select $(STACK) --create --secrets-provider passphrase
	pulumi up --stack $(STACK)

down:
	pulumi destroy --stack $(STACK)

clean:
	rm -rf build .pytest_cache

## make e2e-tools: build (or reuse, cached) the e2e tools into .tools/e2e/bin: the Kubernetes control
## plane + kwok + kubectl, then the Pulumi CLI, language host and providers. Idempotent.
.PHONY: e2e-tools e2e
e2e-tools:
	bash e2e/tools/build_kube.sh && bash e2e/tools/build_pulumi.sh

$(VENV)/.e2e-installed: e2e/requirements.txt $(VENV)/.installed
	$(VENV)/bin/pip install -q -r e2e/requirements.txt
	touch $@

## make e2e: tools (built or reused), then both tiers against fresh simulated clusters (e2e/README.md).
## Last line: e2e tier1=ok|fail tier2=ok|fail up_s=.. preview_s=.. destroy_s=..
e2e: $(VENV)/.e2e-installed e2e-tools
	$(VENV)/bin/python -m pytest e2e/tests -p no:cacheprovider -q -rs
	$(VENV)/bin/python -m e2e.run
