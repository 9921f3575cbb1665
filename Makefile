# Every target bootstraps what it needs, and only that: .venv from the pinned dependency
# group(s) it uses (requirements/*.txt, services/*/requirements.txt), kubectl and helm into
# .tools/ (see generator/tools/). `make help` lists the targets.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TOOLS_STAMP := .tools/tools.json

# Dependency groups, each a lock file with hashes made by `make lock` from its .in file.
LOCK_generator := requirements/generator.txt
LOCK_dev := requirements/dev.txt
LOCK_inference := services/inference/requirements.txt
LOCK_training := services/training/requirements.txt
GROUPS := generator dev inference training
installed = $(foreach group,$(1),$(VENV)/.installed-$(group))
GENERATOR := $(call installed,generator) $(TOOLS_STAMP)
EVERYTHING := $(call installed,$(GROUPS)) $(TOOLS_STAMP)

# jsii prints an end-of-life banner for Node.js 20, the newest the registries offer.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PYTHONDONTWRITEBYTECODE := 1

MODEL_ROOT ?= models
MODEL ?= mnist
PORT ?= 8080
WORKERS ?= 1

.PHONY: help
help: ## List every target with what it does
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# --- bootstrap ---------------------------------------------------------------

$(PY):
	$(PYTHON) -m venv $(VENV)

.SECONDEXPANSION:
$(VENV)/.installed-%: $$(LOCK_$$*) | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r $<
	@touch $@

$(TOOLS_STAMP): generator/tools/__init__.py | $(call installed,generator)
	$(PY) -m generator.tools

.PHONY: venv tools lock
venv: $(call installed,$(GROUPS)) ## Install every dependency group into .venv (no work when up to date)
tools: $(GENERATOR) ## Provide kubectl (with kustomize) and helm; print their versions

# One resolution for all groups (requirements/constraints.txt), then each group's lock from it,
# so the groups agree on every shared package and can share one .venv.
LOCK_INPUTS := $(foreach group,$(GROUPS),$(LOCK_$(group):.txt=.in))
PIP_COMPILE = $(VENV)/bin/pip-compile --quiet --strip-extras --allow-unsafe --no-header \
  --no-emit-index-url --no-emit-find-links
lock: $(call installed,dev) ## Re-pin every dependency group from its .in file (exact versions and hashes)
	$(PIP_COMPILE) --output-file requirements/constraints.txt $(LOCK_INPUTS)
	@for input in $(LOCK_INPUTS); do \
	  echo "lock: $${input%.in}.txt"; \
	  $(PIP_COMPILE) --generate-hashes --constraint requirements/constraints.txt \
	    --output-file "$${input%.in}.txt" "$$input"; \
	done

# --- the main job --------------------------------------------------------------

.PHONY: synth check
synth: $(GENERATOR) ## Generate overlays/base, overlays/components and argocd/ from platform.yaml
	$(PY) -m generator synth

check: synth ## Regenerate and fail if the committed generated files were stale
	@git diff --exit-code --stat -- overlays/base overlays/components argocd \
	  || { echo "generated files are stale: run 'make synth' and commit the result" >&2; exit 1; }

# --- tests and checks --------------------------------------------------------

.PHONY: test validate lint
test: $(EVERYTHING) ## Run every test suite (real kustomize, helm, gunicorn, TensorFlow, LiteRT)
	$(PY) -m pytest -n 2 --dist loadfile

validate: $(GENERATOR) ## Render every overlay; check schemas, policies, cross-references (ARGS="--output junit")
	$(PY) -m generator validate $(ARGS)

lint: $(GENERATOR) $(call installed,dev) ## yamllint every YAML file, hadolint the Dockerfiles, helm lint --strict the chart
	$(PY) -m generator lint

# --- release workflow: each edits overlay files only, never a cluster -------------

# DRY_RUN=1 prints the edit as a diff and writes nothing.
DRY = $(if $(DRY_RUN),--dry-run)

.PHONY: promote canary switch set-image diff status
promote: $(GENERATOR) ## Copy image and model version between overlays: make promote FROM=staging TO=prod
	$(PY) -m generator promote --from "$(FROM)" --to "$(TO)" $(DRY)

canary: $(GENERATOR) ## Set the canary weight: make canary ENV=prod-canary WEIGHT=25 (100 promotes, 0 aborts)
	$(PY) -m generator canary --env "$(ENV)" --weight "$(WEIGHT)" $(DRY)

switch: $(GENERATOR) ## Flip the active slot: make switch ENV=prod-blue-green
	$(PY) -m generator switch --env "$(ENV)" $(DRY)

set-image: $(GENERATOR) ## Pin an image: make set-image ENV=dev IMAGE=server TAG=... (or DIGEST=sha256:...)
	$(PY) -m generator set-image --env "$(ENV)" --image "$(IMAGE)" $(if $(TAG),--tag "$(TAG)") $(if $(DIGEST),--digest "$(DIGEST)") $(if $(SLOT),--variant "$(SLOT)") $(DRY)

diff: $(GENERATOR) ## Show rendered changes against BASE (default origin/main); MARKDOWN=1 for a PR comment
	$(PY) -m generator diff --base "$(or $(BASE),origin/main)" $(if $(MARKDOWN),--markdown)

status: $(GENERATOR) ## One table of every environment: strategy, image, model version, replicas, weight or slot
	$(PY) -m generator status

# --- services ------------------------------------------------------------------

.PHONY: train serve
train: $(call installed,training) ## Train the MNIST model into models/mnist/<next version> (MODEL_ROOT=, MODEL=; WORKERS=2 for 2 local workers)
	$(PY) -m services.training.$(if $(filter 1,$(WORKERS)),train,launch --workers $(WORKERS)) \
	  --model-root $(MODEL_ROOT) --model-name $(MODEL)

serve: $(call installed,inference) ## Serve the trained models with gunicorn on port 8080 (PORT= to change)
	MODEL_BASE_PATH=$(MODEL_ROOT) MODEL_NAME=$(MODEL) PORT=$(PORT) \
	  $(VENV)/bin/gunicorn --config services/inference/gunicorn.conf.py

# --- benchmarks (not part of make test) ----------------------------------------

.PHONY: bench bench-validate bench-train
bench: $(EVERYTHING) ## Benchmark the model server against the HTTP ceiling and a tutorial-style server
	$(PY) -m benchmarks.serving

bench-validate: $(GENERATOR) ## Benchmark make validate against kubernetes-validate, and on a large platform
	$(PY) -m benchmarks.validation

bench-train: $(call installed,training) ## Training samples/s with 1 and 2 local workers (MultiWorkerMirroredStrategy)
	$(PY) -m benchmarks.training

.PHONY: clean
clean: ## Remove the local toolchain, caches and trained models
	rm -rf $(VENV) .tools .cache .pytest_cache .hypothesis $(MODEL_ROOT)
