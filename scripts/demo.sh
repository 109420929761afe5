#!/usr/bin/env bash
# The national network on one machine, installed the way a user installs it:
# a local control plane with a real node (kubelet + containerd), flowfed's image
# built by `make image` and loaded into the node, `helm install` into a
# namespace that enforces the restricted Pod Security level, stand-in city
# gateways as a Pod behind a Service, the national example and its products.
# Ctrl-C (or SIGTERM) stops everything it started: `plane.sh down` removes the
# node's Pods, mounts, interfaces and iptables rules with the plane.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/host-deps.sh node image
plane=tests/controlplane/plane.sh
name="${FLOWFED_DEMO_PLANE:-hub}"
eval "$(tests/controlplane/build.sh --print)"

sleeper=""
cleanup() {
  # Nothing may cut the cleanup short: not a second Ctrl-C, not a closed
  # terminal or pipe (SIGPIPE), not a failing command.
  trap '' INT TERM PIPE
  trap - EXIT
  set +e
  [[ -n "$sleeper" ]] && kill "$sleeper" 2>/dev/null
  echo "stopping the plane and its node..."
  # plane.sh down bounds each wait and kills what does not stop.
  timeout 120 "$plane" down "$name" || echo "plane.sh down did not finish; run it again: $plane down $name"
  echo "demo stopped; plane removed"
}
trap cleanup EXIT
# Turn Ctrl-C and SIGTERM into a normal exit, so the EXIT trap always runs.
trap 'exit 130' INT TERM

echo "== a control plane with a node (first time: builds the node's binaries)"
kubeconfig="$(FLOWFED_NODE=1 "$plane" up "$name")"
export KUBECONFIG="$kubeconfig"
k() { "$KUBECTL" "$@"; }

echo "== make image: flowfed's image and the stand-in gateways' image, loaded into the node"
scripts/image.sh | tail -n 2
scripts/image.sh flowfed-gateways flowfed/gateways:dev target/image/gateways.oci.tar | tail -n 1 >/dev/null
"$plane" import "$name" target/image/flowfed.oci.tar
"$plane" import "$name" target/image/gateways.oci.tar

echo "== helm install flowfed (restricted namespace)"
k create namespace flowfed-system >/dev/null
k label namespace flowfed-system pod-security.kubernetes.io/enforce=restricted >/dev/null
"$HELM" install flowfed charts/flowfed --namespace flowfed-system --wait --timeout 3m >/dev/null
k get pods -n flowfed-system -o wide

echo "== stand-in gateways: one Pod answering /<node>/healthz, behind a Service"
k apply -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Namespace
metadata:
  name: flowfed-gateways
  labels: {pod-security.kubernetes.io/enforce: restricted}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: gateways, namespace: flowfed-gateways}
spec:
  selector: {matchLabels: {app: gateways}}
  template:
    metadata: {labels: {app: gateways}}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: gateways
        image: flowfed/gateways:dev
        imagePullPolicy: Never
        args: ["0.0.0.0:18080"]
        ports: [{containerPort: 18080}]
        readinessProbe: {httpGet: {path: /healthz, port: 18080}, periodSeconds: 2}
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
---
apiVersion: v1
kind: Service
metadata: {name: gateways, namespace: flowfed-gateways}
spec:
  selector: {app: gateways}
  ports: [{port: 18080, targetPort: 18080}]
YAML
k rollout status deployment/gateways -n flowfed-gateways --timeout=120s >/dev/null
gateways="$(k get service gateways -n flowfed-gateways -o jsonpath='{.spec.clusterIP}')"

echo "== the national network and its products (each node's gateway: the Service, /<node>/healthz)"
# (kubectl notes that flowfed made the node namespaces first: not news here.)
k apply -f examples/national/ >/dev/null 2> >(grep -v last-applied-configuration >&2)
for node in $(k get dfn -o jsonpath='{.items[*].metadata.name}'); do
  k patch dfn "$node" --type merge \
    -p "{\"spec\":{\"endpoint\":{\"url\":\"http://$gateways:18080/$node/healthz\"}}}" >/dev/null
done
k apply -f examples/products/ >/dev/null 2> >(grep -v last-applied-configuration >&2)

k wait --for=jsonpath='{.status.interconnected}'=true fed/national --timeout=180s >/dev/null
k wait --for=condition=Synced dp/port-logistics-index -n dfn-shanghai-lingang --timeout=120s >/dev/null
sleep 2
operator_ip="$(k get pods -n flowfed-system -l app.kubernetes.io/name=flowfed -o jsonpath='{.items[0].status.podIP}')"

cat <<MSG

================================================================================
 flowfed demo: the national network is interconnected.
================================================================================
MSG
echo; echo "\$ kubectl get fed national"; k get fed national
echo; echo "\$ kubectl get dfn   (first 8 of $(k get dfn --no-headers | wc -l))"; k get dfn | sed -n "1,9p"
echo; echo "Critical nodes: $(k get fed national -o jsonpath='{.status.criticalNodes}')  provinces covered: $(k get fed national -o jsonpath='{.status.provincesCovered}')"
echo; echo "\$ kubectl get dp -A"; k get dp -A
echo; echo "Port logistics index (off Lingang's negative list) is listed at: $(k get dp -n dfn-shanghai-lingang port-logistics-index -o jsonpath='{.status.visibleIn}')"
echo; echo "Patient registry (sensitive, no processor named) is blocked:"
k get dp -n dfn-chengdu patient-registry -o jsonpath='{range .status.blocked[*]}  {.node}: {.reason}{"\n"}{end}'
echo; echo "\$ kubectl get ce -n dfn-hong-kong   (Hong Kong's view of the national catalog)"; k get ce -n dfn-hong-kong
cat <<MSG

Metrics:  curl -s http://$operator_ip:8080/metrics | grep ^flowfed_     (the operator Pod)
kubectl:  export KUBECONFIG=$kubeconfig
          $KUBECTL get flowfed
          $KUBECTL logs -n flowfed-system deployment/flowfed
Ctrl-C stops the operator, the gateways and the plane with its node.
MSG
# Wait for Ctrl-C or SIGTERM (the traps above end the script).
while true; do sleep 3600 & sleeper=$!; wait "$sleeper"; done
