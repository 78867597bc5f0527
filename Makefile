# mlpipeline-operator. `make demo` trains and serves the example locally; `make test` runs everything.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CRD := crds/mlpipeline.dev_mlpipelines.yaml
CHART_CRD := charts/mlpipeline-operator/crds/mlpipeline.dev_mlpipelines.yaml
export MLP_CACHE ?= $(HOME)/.cache/mlpipeline
export KUBECONFIG := $(CURDIR)/.cluster/kubeconfig
export RAY_USAGE_STATS_ENABLED := 0

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv || $(BIN)/pip install --quiet uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[dev]'
	touch $@

install: $(STAMP) ## create .venv with the package, its dependencies and the dev tools

DEEP := $(VENV)/.installed-deep
$(DEEP): $(STAMP)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[dev,deep]'
	touch $@

BENCH := $(VENV)/.installed-bench
$(BENCH): $(STAMP)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[dev,bench]'
	touch $@

install-deep: $(DEEP) ## add the deep-learning extra to .venv: PyTorch (with its CUDA libraries, ~5 GB) and XGBoost

prometheus: ## install Debian's Prometheus (the canary analysis queries a real one)
	command -v prometheus >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; }

LABEL_STUDIO_VERSION := 1.23.2
LABEL_STUDIO := $(MLP_CACHE)/label-studio-$(LABEL_STUDIO_VERSION)

label-studio: $(STAMP) ## install Label Studio (people label there) in a venv of its own: its pinned dependencies clash with ours
	test -f $(LABEL_STUDIO)/.installed || { rm -rf $(LABEL_STUDIO) && $(BIN)/uv venv --quiet --python $(PYTHON) $(LABEL_STUDIO) && $(BIN)/uv pip install --quiet --python $(LABEL_STUDIO)/bin/python label-studio==$(LABEL_STUDIO_VERSION) && touch $(LABEL_STUDIO)/.installed; }
	@# a data directory with the database migrated, copied by each test that starts Label Studio
	test -d $(LABEL_STUDIO)/migrated-data || { rm -rf $(LABEL_STUDIO)/migrated-data.tmp && LABEL_STUDIO_BASE_DATA_DIR=$(LABEL_STUDIO)/migrated-data.tmp LATEST_VERSION_CHECK=false $(LABEL_STUDIO)/bin/label-studio version >/dev/null && mv $(LABEL_STUDIO)/migrated-data.tmp $(LABEL_STUDIO)/migrated-data; }

control-plane: ## build (once, cached) kube-apiserver, controller-manager, scheduler, etcd, kwok, helm
	hack/build-control-plane.sh

cluster: control-plane node-binaries image ## start the local cluster: kwok's fake nodes, the real node real-0 with the image, the example data
	hack/cluster.sh up
	hack/node.sh up
	. .cluster/image/image.env && hack/node.sh import "$$IMAGE_ARCHIVE" "$$IMAGE_REPO"
	hack/example-data.sh default

cluster-down: ## stop the real node, then the local cluster (nothing left mounted or running)
	hack/cluster.sh down

crds: $(STAMP) ## generate the CRD YAML from the API models
	$(BIN)/mlpipeline crd -o $(CRD)
	cp $(CRD) $(CHART_CRD)

crds-check: $(STAMP) ## fail when crds/ is stale
	$(BIN)/mlpipeline crd | diff -u $(CRD) - || { echo "crds/ is stale: run 'make crds'"; exit 1; }
	diff -u $(CRD) $(CHART_CRD) || { echo "the chart's CRD is stale: run 'make crds'"; exit 1; }

examples: $(STAMP) ## regenerate the example data sets
	$(BIN)/python examples/make_data.py examples/data

lint: $(DEEP) ## ruff, mypy and the import contracts (pyproject.toml's [tool.importlinter])
	$(BIN)/ruff check operator tests bench examples
	$(BIN)/ruff format --check operator tests bench examples
	$(BIN)/mypy operator/mlpipeline
	$(BIN)/lint-imports

fmt: $(STAMP) ## format the code
	$(BIN)/ruff format operator tests bench examples
	$(BIN)/ruff check --fix operator tests bench examples

demo: $(STAMP) ## train the iris example with Ray Tune and serve it with BentoML (Ctrl-C stops)
	$(BIN)/mlpipeline run -f examples/iris.yaml --workdir .mlpipeline

test-unit: $(DEEP)
	$(BIN)/pytest tests/unit

test-workload: $(DEEP) prometheus label-studio
	$(BIN)/pytest tests/workload

test-cluster: control-plane $(STAMP)
	$(BIN)/pytest tests/cluster

test-real: control-plane node-binaries image $(STAMP)
	$(BIN)/pytest tests/real

test: ## lint, then every tier: unit and workload beside the builds, cluster and real tiers (hack/test.sh)
	hack/test.sh

bench: bench-serving bench-canary bench-cycle bench-labeling bench-tune bench-scale ## every benchmark (JSON on stdout)

bench-serving: $(STAMP) ## adaptive batching against unbatched serving and a plain Starlette app (3 interleaved runs each): successful requests/s, p50/p99, errors
	$(BIN)/python -m bench.serving

bench-canary: $(STAMP) prometheus ## seconds from a canary going bad to its rollback, share of failed requests (3 interleaved runs each)
	$(BIN)/python -m bench.canary

bench-cycle: $(STAMP) prometheus ## two data sets x (inputs shifted, behaviour changed): stale vs automatically retrained vs by hand, human labels, refused requests
	$(BIN)/python -m bench.cycle

bench-tune: $(DEEP) ## search algorithms (grid, random, Bayesian, each with and without ASHA, 3 seeds) and a tune step's fixed cost
	$(BIN)/python -m bench.tune

bench-scale: control-plane $(STAMP) ## N pipelines on the kwok cluster against a bare client creating the same Jobs (PIPELINES=100)
	$(BIN)/python -m bench.scale --pipelines $(or $(PIPELINES),100)

bench-labeling: $(BENCH) ## accuracy against human labels spent on 4 data sets: automated round vs a random sample of the same labels vs seed only vs everything (5 seeds, ~5 min)
	$(BIN)/python -m bench.labeling

run: $(STAMP) ## run the operator against the cluster in KUBECONFIG (default: the local one, its store, image and real node; ARGS="--namespace x")
	hack/local-operator.sh $(ARGS)

clean: ## remove the venv and local state (keeps the binary cache)
	-hack/cluster.sh down
	rm -rf $(VENV) .mlpipeline .cluster

.PHONY: help install prometheus label-studio bench bench-serving bench-canary bench-cycle bench-labeling control-plane node-binaries cluster cluster-down crds crds-check examples lint fmt demo test test-unit test-workload test-cluster test-real run clean image

image: $(STAMP) ## build the OCI image without a container engine (.cluster/image/*.tar; cached by content)
	hack/build-image.sh

node-binaries: ## build (once, cached) kubelet, kube-proxy, containerd and the pause image; apt runc, CNI plugins
	hack/build-node.sh
