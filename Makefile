# flowfed entry points. Every target works on a fresh machine: the control-plane
# binaries are built from Go modules on first use and cached per version.
SHELL := /bin/bash
NAME ?= hub
NODE ?= 0
PLANE := tests/controlplane/plane.sh
CARGO ?= cargo
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := member_kubeconfig product_policy

.PHONY: help deps controlplane up down image demo crds lint test bench fuzz

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

deps: ## install what this machine lacks (Debian packages, the musl target, rustfmt, clippy)
	@scripts/host-deps.sh test

controlplane: deps ## build (or find cached) the control plane, the node's binaries, etcd, helm, containerd
	@tests/controlplane/build.sh >/dev/null

up: controlplane ## start control plane NAME (default hub), NODE=1 with a node that runs Pods
	@FLOWFED_NODE=$(NODE) $(PLANE) up $(NAME)

down: ## stop control plane NAME (default hub) and remove its state
	@$(PLANE) down $(NAME)

image: ## build the operator image without a daemon: target/image/flowfed.oci.tar, digest last
	@scripts/image.sh

demo: controlplane ## the national network on a local node: image, Helm, gateway Pods (Ctrl-C stops)
	@scripts/demo.sh

crds: ## regenerate crds/ from the Rust types, and the chart's copy
	$(CARGO) run -q -p flowfed -- crdgen --out crds
	cp crds/*.yaml charts/flowfed/crds/

lint: ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test: controlplane lint ## everything CI runs: lint, unit, property and integration tests
	$(CARGO) test --workspace --no-fail-fast

bench: controlplane ## measure write limits, propagation, release-to-visible and scale; writes bench/results.json
	$(CARGO) build --release -p flowfed -p flowfed-tests --bin flowfed --bin flowfed-bench
	target/release/flowfed-bench

fuzz: ## fuzz kubeconfig Secrets and the visibility policy, FUZZ_SECONDS each (nightly toolchain; installs cargo-fuzz)
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	@for target in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/corpus/$$target && \
		$(CARGO) +nightly fuzz run $$target fuzz/corpus/$$target fuzz/seeds/$$target -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done
