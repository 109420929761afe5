# flowfed entry points. Every target works on a fresh machine: the control-plane
# binaries are built from Go modules on first use and cached per version.
SHELL := /bin/bash
NAME ?= hub
PLANE := tests/controlplane/plane.sh
CARGO ?= cargo
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := member_kubeconfig product_policy

.PHONY: help controlplane up down demo crds lint test bench fuzz

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

controlplane: ## build (or find cached) kube-apiserver, kube-controller-manager, kubectl, etcd, helm
	@tests/controlplane/build.sh

up: ## start control plane NAME (default hub); kubeconfig in .flowfed/NAME/kubeconfig
	@$(PLANE) up $(NAME)

down: ## stop control plane NAME (default hub) and remove its state
	@$(PLANE) down $(NAME)

demo: ## run the national example network locally: plane, gateways, operator (Ctrl-C stops)
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
