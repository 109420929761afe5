#!/usr/bin/env bash
# Starts and stops local Kubernetes control planes (etcd + kube-apiserver +
# kube-controller-manager) built by build.sh. Each plane has a name, its own
# temporary state directory, free loopback ports, its own CA and keys, RBAC
# authorization and an admin identity; its kubeconfig (certificates embedded, so
# it can be stored in a Secret) is written to $FLOWFED_PLANES_DIR/<name>/kubeconfig
# (default: .flowfed/<name>/kubeconfig in the repository).
#
# With FLOWFED_NODE=1, `up` also starts a node that runs Pods (containerd, kubelet,
# kube-scheduler, kube-proxy; see node.sh): one such plane per machine, as root.
# Its API server is then reached on the node's bridge address, from Pods too.
#
# Usage:
#   plane.sh up NAME                 start (or keep) plane NAME; returns when /readyz is ok
#                                    (and, with a node, when the node is Ready)
#   plane.sh down NAME               stop exactly the processes it started, remove its state
#   plane.sh stop NAME COMPONENT     stop one component (etcd, kube-apiserver,
#                                    kube-controller-manager; with a node also containerd,
#                                    kubelet, kube-scheduler, kube-proxy), keeping its data
#   plane.sh import NAME ARCHIVE     load an OCI image archive into the node's containerd
#   plane.sh start NAME COMPONENT    start a stopped component again, same ports and data
#   plane.sh status NAME             exit 0 when the plane's API server answers /readyz
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
planes="${FLOWFED_PLANES_DIR:-$repo/.flowfed}"
components=(etcd kube-apiserver kube-controller-manager)

die() { echo "flowfed: $*" >&2; exit 1; }

# shellcheck source=node.sh
source "$here/node.sh"
has_node() { [[ -f "$meta/node" ]]; }

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2; }

[[ $# -ge 2 ]] || usage
cmd="$1"
name="$2"
[[ "$name" =~ ^[a-z0-9][a-z0-9-]{0,40}$ ]] || die "plane name '$name' must be lower-case letters, digits and '-'"
meta="$planes/$name"

pid_alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }

component_pid() { cat "$meta/$1.pid" 2>/dev/null || true; }

# free_ports N: N distinct free TCP ports on 127.0.0.1, chosen by the kernel.
free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

readyz() {
  local port
  port="$(cat "$meta/apiserver-port" 2>/dev/null)" || return 1
  curl -sf --max-time 2 --cacert "$state/pki/ca.crt" \
    --cert "$state/pki/admin.crt" --key "$state/pki/admin.key" \
    "https://$(apiserver_host):$port/readyz" >/dev/null 2>&1
}

apiserver_host() { if has_node; then echo "$node_gateway"; else echo 127.0.0.1; fi; }

load_state() {
  state="$(cat "$meta/state" 2>/dev/null)" || die "plane '$name' is not up (no $meta/state)"
}

# start_component COMPONENT: run the component's launch script in the background,
# in a session of its own: a Ctrl-C to the caller (the demo, a test run) must not
# kill the plane's processes out of order; `down` stops them.
start_component() {
  local c="$1"
  local pid
  pid="$(component_pid "$c")"
  if pid_alive "$pid"; then return 0; fi
  setsid "$state/run-$c.sh" >>"$state/$c.log" 2>&1 </dev/null &
  echo $! >"$meta/$c.pid"
}

stop_component() {
  local c="$1" pid
  pid="$(component_pid "$c")"
  if pid_alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do pid_alive "$pid" || break; sleep 0.1; done
    pid_alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do pid_alive "$pid" || break; sleep 0.1; done
  fi
  rm -f "$meta/$c.pid"
}

# wait_ready: poll /readyz; fail with the log of whichever component died.
wait_ready() {
  local deadline=$((SECONDS + ${FLOWFED_READY_TIMEOUT:-120}))
  while ! readyz; do
    for c in etcd kube-apiserver; do
      if [[ -f "$meta/$c.pid" ]] && ! pid_alive "$(component_pid "$c")"; then
        tail -n 20 "$state/$c.log" >&2 || true
        die "$c of plane '$name' exited during start; full log: $state/$c.log"
      fi
    done
    [[ $SECONDS -lt $deadline ]] || die "plane '$name' not ready after ${FLOWFED_READY_TIMEOUT:-120}s; logs in $state"
    sleep 0.2
  done
}

# In the PKI directory: key NAME makes NAME.key; sign NAME SUBJECT EXTENSIONS
# makes NAME.crt, signed by the plane's CA (node.sh signs the node's too).
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }
sign() {
  key "$1"
  openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
    -days 3650 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

gen_pki() {
  local pki="$state/pki"
  mkdir -p "$pki"
  (
    cd "$pki"
    key ca
    openssl req -x509 -new -key ca.key -days 3650 -subj "/CN=flowfed-$name-ca" -out ca.crt 2>/dev/null
    sign apiserver "/CN=kube-apiserver" \
      "subjectAltName=IP:127.0.0.1,IP:::1,IP:$service_ip,IP:$node_gateway,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc
extendedKeyUsage=serverAuth
keyUsage=critical,digitalSignature,keyEncipherment"
    sign admin "/O=system:masters/CN=flowfed-admin" "extendedKeyUsage=clientAuth
keyUsage=critical,digitalSignature"
    sign controller-manager "/CN=system:kube-controller-manager" "extendedKeyUsage=clientAuth
keyUsage=critical,digitalSignature"
    key service-account
    openssl pkey -in service-account.key -pubout -out service-account.pub 2>/dev/null
  )
}

# write_kubeconfig FILE USER(cert basename) SERVER
write_kubeconfig() {
  local pki="$state/pki"
  cat >"$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: $name
  cluster:
    server: $3
    certificate-authority-data: $(base64 -w0 <"$pki/ca.crt")
users:
- name: $2@$name
  user:
    client-certificate-data: $(base64 -w0 <"$pki/$2.crt")
    client-key-data: $(base64 -w0 <"$pki/$2.key")
contexts:
- name: $name
  context: {cluster: $name, user: $2@$name}
current-context: $name
KC
  chmod 600 "$1"
}

write_launch_scripts() {
  local bins etcd_port peer_port api_port pki="$state/pki" host node_flags=""
  bins="$("$here/build.sh" --print)"
  eval "$bins"
  read -r etcd_port peer_port api_port < <(free_ports 3)
  echo "$api_port" >"$meta/apiserver-port"
  host="$(apiserver_host)"
  server_url="https://$host:$api_port"
  if has_node; then
    # The kubelet by its address on the bridge, never by a name to resolve.
    node_flags="--kubelet-client-certificate $pki/apiserver-kubelet-client.crt --kubelet-client-key $pki/apiserver-kubelet-client.key"
    node_flags+=" --kubelet-preferred-address-types InternalIP --kubelet-certificate-authority $pki/ca.crt"
  fi
  local fsync_flag="--unsafe-no-fsync"
  [[ "${FLOWFED_ETCD_FSYNC:-0}" == 1 ]] && fsync_flag=""

  cat >"$state/run-etcd.sh" <<RUN
#!/usr/bin/env bash
exec "$ETCD" --name default --data-dir "$state/etcd" \\
  --listen-client-urls http://127.0.0.1:$etcd_port --advertise-client-urls http://127.0.0.1:$etcd_port \\
  --listen-peer-urls http://127.0.0.1:$peer_port --initial-advertise-peer-urls http://127.0.0.1:$peer_port \\
  --initial-cluster default=http://127.0.0.1:$peer_port --listen-metrics-urls "" \\
  --quota-backend-bytes 8589934592 --log-level warn $fsync_flag
RUN

  cat >"$state/run-kube-apiserver.sh" <<RUN
#!/usr/bin/env bash
exec "$KUBE_APISERVER" --etcd-servers http://127.0.0.1:$etcd_port \\
  --bind-address $host --advertise-address $host --secure-port $api_port \\
  --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \\
  --client-ca-file "$pki/ca.crt" --authorization-mode Node,RBAC \
  --enable-admission-plugins NodeRestriction $node_flags \\
  --service-account-issuer https://kubernetes.default.svc \\
  --service-account-key-file "$pki/service-account.pub" \\
  --service-account-signing-key-file "$pki/service-account.key" \\
  --service-cluster-ip-range $service_cidr --allow-privileged=true \\
  --enable-priority-and-fairness=false --max-requests-inflight 800 \\
  --profiling=false --v=0
RUN

  write_kubeconfig "$state/controller-manager.kubeconfig" controller-manager "$server_url"
  cat >"$state/run-kube-controller-manager.sh" <<RUN
#!/usr/bin/env bash
exec "$KUBE_CONTROLLER_MANAGER" --kubeconfig "$state/controller-manager.kubeconfig" \\
  --authentication-kubeconfig "$state/controller-manager.kubeconfig" \\
  --authorization-kubeconfig "$state/controller-manager.kubeconfig" \\
  --bind-address 127.0.0.1 --secure-port 0 --leader-elect=false \\
  --use-service-account-credentials \\
  --service-account-private-key-file "$pki/service-account.key" \\
  --root-ca-file "$pki/ca.crt" --cluster-name "$name" \\
  --controllers '*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller' \\
  --concurrent-gc-syncs 5 --profiling=false --v=0
RUN
  chmod +x "$state"/run-*.sh
  write_kubeconfig "$meta/kubeconfig" admin "$server_url"
  if has_node; then node_write_launch_scripts; fi
}

case "$cmd" in
  up)
    if [[ -f "$meta/state" ]]; then
      load_state
      if readyz; then echo "$meta/kubeconfig"; exit 0; fi
      # A stale plane (crashed or half-started): clear it and start afresh.
      "${BASH_SOURCE[0]}" down "$name" >/dev/null
    fi
    "$here/build.sh" >/dev/null
    mkdir -p "$meta"
    # A start that fails stops what it started (FLOWFED_KEEP_FAILED=1 keeps it
    # for a post-mortem); the logs' tails are printed before.
    if [[ "${FLOWFED_KEEP_FAILED:-0}" != 1 ]]; then
      trap '[[ $? -eq 0 ]] || { "${BASH_SOURCE[0]}" down "$name" >/dev/null 2>&1; rm -rf "$meta"; }' EXIT
    fi
    if [[ "${FLOWFED_NODE:-0}" == 1 ]]; then
      node_preflight
      touch "$meta/node"
    fi
    state="$(mktemp -d "${TMPDIR:-/tmp}/flowfed-$name.XXXXXX")"
    echo "$state" >"$meta/state"
    gen_pki
    if has_node; then
      node_gen_pki
      node_network_up
    fi
    write_launch_scripts
    start_component etcd
    start_component kube-apiserver
    wait_ready
    start_component kube-controller-manager
    if has_node; then node_up; fi
    echo "$meta/kubeconfig"
    ;;
  down)
    [[ -f "$meta/state" ]] || exit 0
    state="$(cat "$meta/state")"
    if has_node; then node_down; fi
    for c in kube-controller-manager kube-apiserver etcd; do stop_component "$c"; done
    [[ "$state" == */flowfed-"$name".* ]] && rm -rf "$state"
    rm -rf "$meta"
    ;;
  stop|start)
    [[ $# -eq 3 ]] || usage
    load_state
    has_node && components+=("${node_components[@]}")
    [[ " ${components[*]} " == *" $3 "* ]] || die "unknown component '$3' (one of: ${components[*]})"
    if [[ "$cmd" == stop ]]; then
      stop_component "$3"
    else
      start_component "$3"
      if [[ "$3" != kube-controller-manager ]]; then
        wait_ready
        # kube-controller-manager gives up when the API server is gone for a
        # while; bring it back with the API server.
        start_component kube-controller-manager
      fi
    fi
    ;;
  status)
    load_state
    readyz
    ;;
  import)
    [[ $# -eq 3 ]] || usage
    load_state
    has_node || die "plane '$name' has no node (start it with FLOWFED_NODE=1)"
    eval "$("$here/build.sh" --print)"
    node_import "$3"
    ;;
  *) usage ;;
esac
