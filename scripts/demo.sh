#!/usr/bin/env bash
# The national network on one machine: a local control plane, flowfed installed
# with Helm, the national example with a stand-in gateway per node, the example
# products, and the operator running with the chart's ServiceAccount identity.
# The local plane has no kubelet, so the operator runs here as a local process
# rather than as the chart's Deployment. Ctrl-C stops everything it started,
# the plane included.
set -euo pipefail
cd "$(dirname "$0")/.."

port="${DEMO_PORT:-8080}"
kubeconfig="$(tests/controlplane/plane.sh up hub)"
eval "$(tests/controlplane/build.sh --print)"
export KUBECONFIG="$kubeconfig"
k() { "$KUBECTL" "$@"; }

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  tests/controlplane/plane.sh down hub
  echo "demo stopped; plane removed"
}
trap cleanup EXIT
# Turn Ctrl-C and SIGTERM into a normal exit, so the EXIT trap always runs.
trap 'exit 130' INT TERM

echo "== building flowfed"
cargo build -q -p flowfed -p flowfed-tests --bin flowfed --bin flowfed-gateways

echo "== helm install flowfed (CRDs, RBAC, dashboards)"
"$HELM" upgrade --install flowfed charts/flowfed --namespace flowfed-system --create-namespace >/dev/null
k wait --for condition=Established -f crds/ --timeout=60s >/dev/null

# The operator's identity: the chart's ServiceAccount, through a TokenRequest token.
operator_kubeconfig="$(dirname "$kubeconfig")/operator.kubeconfig"
server="$(k config view --raw --minify -o jsonpath='{.clusters[0].cluster.server}')"
ca="$(k config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')"
token="$(k create token flowfed -n flowfed-system --duration=24h)"
cat >"$operator_kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: hub, cluster: {server: "$server", certificate-authority-data: "$ca"}}]
users: [{name: flowfed, user: {token: "$token"}}]
contexts: [{name: hub, context: {cluster: hub, user: flowfed}}]
current-context: hub
KC
chmod 600 "$operator_kubeconfig"

echo "== the national network and its products"
k apply -f examples/national/ >/dev/null
k apply -f examples/products/ >/dev/null
target/debug/flowfed-gateways --manifests examples/national/nodes.yaml >/dev/null &
pids+=($!)
KUBECONFIG="$operator_kubeconfig" RUST_LOG="${RUST_LOG:-warn,flowfed=info}" \
  target/debug/flowfed run --http-addr "127.0.0.1:$port" --leader-election --lease-namespace flowfed-system &
pids+=($!)

k wait --for=jsonpath='{.status.interconnected}'=true fed/national --timeout=180s >/dev/null
k wait --for=condition=Synced dp/port-logistics-index -n dfn-shanghai-lingang --timeout=120s >/dev/null
sleep 2

cat <<MSG

================================================================================
 flowfed demo: the national network is interconnected.
================================================================================
MSG
echo; echo "\$ kubectl get fed national"; k get fed national
echo; echo "\$ kubectl get dfn   (first 8 of $(k get dfn --no-headers | wc -l))"; k get dfn | sed -n "1,9p"
echo; echo "Critical nodes: $(k get fed national -o jsonpath='{.status.criticalNodes}')  provinces covered: $(k get fed national -o jsonpath='{.status.provincesCovered}')"
echo; echo "\$ kubectl get dp -A"; k get dp -A
echo; echo "Port logistics index (standard contract) is listed at: $(k get dp -n dfn-shanghai-lingang port-logistics-index -o jsonpath='{.status.visibleIn}')"
echo; echo "Patient registry (sensitive, no mechanism) is blocked:"
k get dp -n dfn-chengdu patient-registry -o jsonpath='{range .status.blocked[*]}  {.node}: {.reason}{"\n"}{end}'
echo; echo "\$ kubectl get ce -n dfn-hong-kong   (Hong Kong's view of the national catalog)"; k get ce -n dfn-hong-kong
cat <<MSG

Metrics:  curl -s http://127.0.0.1:$port/metrics | grep ^flowfed_
kubectl:  export KUBECONFIG=$kubeconfig
          $KUBECTL get flowfed
Ctrl-C stops the operator, the gateways and the plane.
MSG
wait "${pids[@]}"
