#!/usr/bin/env bash
# The national network on one machine: a local control plane, the CRDs and
# examples, one stand-in gateway per node on loopback, and the operator.
# Ctrl-C stops the gateways and the operator; `make down` stops the plane.
set -euo pipefail
cd "$(dirname "$0")/.."

kubeconfig="$(tests/controlplane/plane.sh up hub)"
kubectl="$(tests/controlplane/build.sh --print | sed -n 's/^KUBECTL=//p')"
export KUBECONFIG="$kubeconfig"

cargo build -q -p flowfed -p flowfed-tests --bins
"$kubectl" apply --server-side -f crds/ >/dev/null
"$kubectl" wait --for condition=Established -f crds/ --timeout=60s >/dev/null
"$kubectl" apply -f examples/national/ >/dev/null
"$kubectl" apply -f examples/products/ >/dev/null

target/debug/flowfed-gateways --manifests examples/national/nodes.yaml &
gateways=$!
trap 'kill $gateways 2>/dev/null || true' EXIT

cat <<MSG
flowfed demo: operator starting with metrics on http://127.0.0.1:${DEMO_PORT:-8080}/metrics
In another shell:
  export KUBECONFIG=$kubeconfig
  $kubectl get flowfed
  $kubectl get fed national -o yaml
MSG
target/debug/flowfed run --http-addr "127.0.0.1:${DEMO_PORT:-8080}"
