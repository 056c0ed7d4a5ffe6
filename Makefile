# mlplatform: `make demo` runs the embedded platform end to end, `make test` runs the tests.
# Every target has a `## description`; `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/mlplatform
TENANTS ?= fraud search
LOOP_TENANT ?= fraud
PYTEST_ARGS ?=
BENCH_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv lock demo demo-services demo-loop test test-fast verify pipelines schema clean up down status gateway crds schema-check tools bench image-venv

help: ## List every target with one line each
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

venv: $(VENV)/.installed ## Create .venv from requirements/dev.txt (the lock), then mlplatform itself

# Everything installs from a lock with pip (hash-checked); the project last, editable, with no deps.
# prune.py first removes what the lock no longer names (before the install, which may put another
# distribution's files in the same place), so `pip freeze --all` equals the lock (a test checks).
$(VENV)/.installed: pyproject.toml requirements/dev.txt $(addsuffix /pyproject.toml,$(filter-out .,$(OWN_PACKAGES)))
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) requirements/prune.py requirements/dev.txt
	$(PIP_LOCKED) -r requirements/dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation $(addprefix -e ,$(OWN_PACKAGES))
	@touch $@

# --- dependencies ----------------------------------------------------------------------------------
# pyproject.toml holds the policy (ranges); requirements/*.txt hold the fact (every package pinned,
# with hashes, for Python 3.11 on Linux x86_64): runtime.txt is what the image installs, dev.txt the
# same pins plus tests and cluster tools, checkov.txt checkov's own venv.
# torch is locked as its CPU build (torch==2.13.0+cpu), which PyPI does not have: pip and uv find it
# on PyTorch's CPU wheel index, or in a local wheel folder that pip's own configuration names
# (find-links), as on our CI machines, where that index cannot be reached. Never a CUDA build.
TORCH_CPU_WHEEL := torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl
# TORCH_INDEX: platform/cluster/versions.env (included below; the image build uses the same)
PIP_FIND_LINKS_DIRS = $(PIP_FIND_LINKS) $(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null)
TORCH_WHEELS ?= $(or $(firstword $(foreach d,$(PIP_FIND_LINKS_DIRS),$(if $(wildcard $(d)/$(TORCH_CPU_WHEEL)),$(d)))),$(TORCH_INDEX))
PIP_LOCKED = $(PY) -m pip install --quiet --require-hashes --find-links $(TORCH_WHEELS)
# The project's own packages: the platform and the tenants in requirements/runtime.in, installed
# from source (editable, --no-deps) after the lock.
OWN_PACKAGES := . $(shell sed -n 's|^-e \./\([^[ ]*\).*|\1|p' requirements/runtime.in)
NO_EMIT_OWN = --no-emit-package mlplatform $(foreach p,$(filter-out .,$(OWN_PACKAGES)),--no-emit-package \
	$(shell sed -n 's/^name = "\(.*\)"/\1/p' $(p)/pyproject.toml))
LOCK_ARGS ?=
UV_COMPILE = $(VENV)/bin/uv pip compile --quiet --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	--generate-hashes --find-links $(TORCH_WHEELS) --custom-compile-command 'make lock' $(LOCK_ARGS)

lock: venv ## Re-lock requirements/*.txt from pyproject.toml (LOCK_ARGS=--upgrade: newest allowed versions)
	$(UV_COMPILE) $(NO_EMIT_OWN) requirements/runtime.in requirements/installers.in -o requirements/runtime.txt
	$(UV_COMPILE) $(NO_EMIT_OWN) requirements/dev.in requirements/installers.in -c requirements/runtime.txt \
		-o requirements/dev.txt
	echo 'checkov==$(CHECKOV_VERSION)' | $(UV_COMPILE) - requirements/installers.in -o requirements/checkov.txt

demo: venv ## Run the embedded platform end to end (TENANTS="fraud search"; writes runs/latest/summary.json)
	$(CLI) demo $(TENANTS)

demo-services: venv ## The demo against PostgreSQL, Redis and a real `mlflow server` (the cluster's hand-offs on one machine)
	$(CLI) demo $(TENANTS) --profile services

demo-loop: venv ## The loop live: LOOP_TENANT=fraud (drift -> alert -> retrain -> rollout) or search (clicks -> NDCG)
	$(CLI) loop $(LOOP_TENANT)

test: venv tools ## Run the whole test suite (unit, integration, slow end-to-end, cluster verification)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: venv tools ## Run the tests without the slow end-to-end ones
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

bench: venv ## Run every benchmark beside its baseline -> bench/results.json, docs/benchmarks.md (BENCH_ARGS=--quick)
	$(PY) -m bench.run $(BENCH_ARGS)

pipelines: venv ## Compile the KFP pipelines into pipelines/compiled/
	$(CLI) pipelines compile

schema: venv ## Regenerate charts/tenant/values.schema.json from TenantConfig
	$(CLI) schema --out charts/tenant/values.schema.json

clean: ## Remove embedded runtime state (.mlplatform/) and demo runs (runs/)
	rm -rf .mlplatform runs local_outputs

# --- the image's install, outside Docker (tests/topology runs the chart's containers in a sandbox) --
# Installed as the Dockerfile installs it: a venv from Debian's python3.11 (not under root's home,
# readable by uid 10001), the runtime lock hash-checked, then the project and tenants NOT editable.
# .venv's pip installs into it (--python), so the venv itself needs no pip of its own first.
IMAGE_VENV ?= /opt/mlplatform/venv
IMAGE_PYTHON ?= /usr/bin/python3.11

image-venv: venv ## Install the image's Python (runtime lock + project, not editable) into IMAGE_VENV
	@test -x $(IMAGE_VENV)/bin/python || $(IMAGE_PYTHON) -m venv --without-pip $(IMAGE_VENV)
	$(PY) -m pip --python $(IMAGE_VENV)/bin/python install --quiet --require-hashes \
		--find-links $(TORCH_WHEELS) -r requirements/runtime.txt
	@# setuptools builds in the tree: a stale build/ would put deleted modules into the install
	rm -rf $(OWN_PACKAGES:%=%/build)
	$(PY) -m pip --python $(IMAGE_VENV)/bin/python install --quiet --no-deps --no-build-isolation \
		--force-reinstall $(OWN_PACKAGES:%=./%)
	rm -rf $(OWN_PACKAGES:%=%/build)
	$(IMAGE_VENV)/bin/mlplatform --help >/dev/null
	chmod -R a+rX $(IMAGE_VENV)

# --- cluster path (platform/cluster, charts/, mlplatform.verify) ------------------------------------
# versions.env holds plain KEY=value lines: one source of pinned versions for make and the scripts.
include platform/cluster/versions.env
CHECKOV_VENV := $(VENV)/tools/checkov

tools: $(CHECKOV_VENV)/bin/checkov ## Install checkov into its own venv (its pins conflict with ray's)

# checkov 3.3 pins packaging<24 while ray and pytest need packaging>=24: it cannot live in .venv.
$(CHECKOV_VENV)/bin/checkov: requirements/checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --require-hashes -r requirements/checkov.txt
	@touch $@

up: venv ## Create the kind cluster and install the whole stack and every tenant (needs Docker)
	platform/cluster/up.sh

down: ## Delete the kind cluster (KEEP_CLUSTER=1: uninstall releases, keep the cluster)
	platform/cluster/down.sh

status: ## Show what runs on the kind cluster and the port-forward URLs
	platform/cluster/status.sh

gateway: ## Forward the tenants' Gateway on kind to localhost:GATEWAY_LOCAL_PORT (versions.env; until Ctrl-C)
	platform/cluster/forward-gateway.sh

verify: venv tools ## Static cluster checks: helm render, schemas, policy, checkov, promtool, amtool (no cluster)
	$(PY) -m mlplatform.verify .

crds: ## Download the pinned upstream CRDs into MLPLATFORM_CRDS_DIR (default ../shared/crds; needs network)
	platform/cluster/crds.sh

schema-check: venv ## Fail when charts/tenant/values.schema.json is stale (run `make schema` to fix)
	$(PY) -c 'import json, sys; from mlplatform.config import tenant_json_schema as s; \
		sys.exit(0 if json.load(open("charts/tenant/values.schema.json")) == s() else "values.schema.json is stale: run make schema")'
