# Sourced by plane.sh: the plane's node, a real kubelet that runs Pods.
#
#   containerd (CRI, overlayfs, runc built by build.sh, cgroupfs: the host is cgroup v1)
#   kubelet    (system:node:<plane>-node, authorized by Node,RBAC + NodeRestriction)
#   kube-scheduler, kube-proxy (iptables mode)
#   CNI bridge + host-local + portmap + loopback, Debian's plugins
#
# Networking stays on this machine: the node's bridge `flowfed0` holds
# $node_gateway, the API server binds and advertises that address (Pods reach it
# through the `kubernetes` Service), and Pods get addresses in $pod_subnet inside
# network namespaces the node creates. A Pod's only routes are its subnet and the
# Service range: nothing can be sent to any other address.
#
# kube-proxy's chains and the bridge are host-wide, so one node runs per machine:
# a lock file names the plane that holds it. `node_down` removes every process,
# mount, interface, cgroup and iptables rule the node made, and restores the two
# sysctls it changed.

node_bridge=flowfed0
node_gateway=10.244.0.1
pod_subnet=10.244.0.0/24
service_cidr=10.96.0.0/16
service_ip=10.96.0.1
node_lock=/run/flowfed-node.lock
node_components=(containerd kubelet kube-scheduler kube-proxy)

node_name() { echo "$name-node"; }

# node_preflight: root, the host tools the node needs, and the lock.
node_preflight() {
  [[ $EUID -eq 0 ]] || die "a plane with a node needs root (bridges, iptables, mounts)"
  local tool missing=()
  for tool in ip iptables sysctl mount; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  [[ -x /usr/lib/cni/bridge ]] || missing+=("CNI plugins")
  [[ ${#missing[@]} -eq 0 ]] || die "the node needs ${missing[*]}: run scripts/host-deps.sh node"
  if [[ -f "$node_lock" ]]; then
    local holder
    holder="$(cat "$node_lock")"
    if [[ "$holder" != "$meta" && -f "$holder/state" ]]; then
      die "plane $(basename "$holder") already runs this machine's node; stop it first (plane.sh down $(basename "$holder"))"
    fi
  fi
  echo "$meta" >"$node_lock"
}

node_gen_pki() {
  local pki="$state/pki" node
  node="$(node_name)"
  (
    cd "$pki"
    client="extendedKeyUsage=clientAuth
keyUsage=critical,digitalSignature"
    sign kubelet "/O=system:nodes/CN=system:node:$node" "$client"
    sign kube-scheduler "/CN=system:kube-scheduler" "$client"
    sign kube-proxy "/CN=system:kube-proxy" "$client"
    sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client"
    sign kubelet-serving "/O=system:nodes/CN=system:node:$node" "subjectAltName=IP:$node_gateway,DNS:$node
extendedKeyUsage=serverAuth
keyUsage=critical,digitalSignature,keyEncipherment"
  )
}

# node_network_up: the bridge with the gateway address (so the API server can
# bind it before the first Pod), forwarding and bridged traffic through iptables.
node_network_up() {
  ip link show "$node_bridge" >/dev/null 2>&1 || ip link add "$node_bridge" type bridge
  ip addr replace "$node_gateway/24" dev "$node_bridge"
  ip link set "$node_bridge" up
  local key
  for key in net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables; do
    [[ -f "$meta/sysctl.$key" ]] || sysctl -n "$key" >"$meta/sysctl.$key"
    sysctl -qw "$key=1"
  done
}

node_write_launch_scripts() {
  local pki="$state/pki" node kubelet_port kubelet_healthz proxy_healthz proxy_metrics
  node="$(node_name)"
  read -r kubelet_port kubelet_healthz proxy_healthz proxy_metrics < <(free_ports 4)
  mkdir -p "$state/containerd" "$state/cni/net.d" "$state/kubelet" "$state/kube-proxy"

  cat >"$state/containerd/config.toml" <<TOML
version = 3
root = "$state/containerd/root"
state = "$state/containerd/state"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing", "io.containerd.snapshotter.v1.blockfile"]
[grpc]
  address = "$state/containerd/containerd.sock"
[ttrpc]
  address = "$state/containerd/containerd.sock.ttrpc"
[plugins.'io.containerd.cri.v1.runtime']
  netns_mounts_under_state_dir = true
  # This sandbox lacks CAP_SYS_RESOURCE: no OOM score below containerd's own.
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = 'runc'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = '$RUNC'
        Root = '$state/containerd/runc'
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['/usr/lib/cni']
    conf_dir = '$state/cni/net.d'
[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = '$PAUSE_IMAGE'
TOML

  cat >"$state/cni/net.d/10-flowfed.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "flowfed-$name",
  "plugins": [
    {"type": "bridge", "bridge": "$node_bridge", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$pod_subnet", "gateway": "$node_gateway"}]],
              "routes": [{"dst": "$service_cidr"}], "dataDir": "$state/cni/ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON

  cat >"$state/run-containerd.sh" <<RUN
#!/usr/bin/env bash
export PATH="$CONTAINERD_BIN:\$PATH"
exec "$CONTAINERD_BIN/containerd" --config "$state/containerd/config.toml" --log-level warn
RUN

  write_kubeconfig "$state/kubelet.kubeconfig" kubelet "$server_url"
  cat >"$state/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_gateway
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $kubelet_healthz
tlsCertFile: $pki/kubelet-serving.crt
tlsPrivateKeyFile: $pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
cgroupRoot: /flowfed-$name
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$state/containerd/containerd.sock
imageServiceEndpoint: unix://$state/containerd/containerd.sock
evictionHard: {memory.available: 100Mi, nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 64
podPidsLimit: 4096
oomScoreAdj: 0
YAML
  cat >"$state/run-kubelet.sh" <<RUN
#!/usr/bin/env bash
exec "$KUBELET" --config "$state/kubelet/config.yaml" --kubeconfig "$state/kubelet.kubeconfig" \\
  --root-dir "$state/kubelet/root" --cert-dir "$state/kubelet/pki" \\
  --hostname-override "$node" --node-ip "$node_gateway" --v=0
RUN

  write_kubeconfig "$state/kube-scheduler.kubeconfig" kube-scheduler "$server_url"
  cat >"$state/run-kube-scheduler.sh" <<RUN
#!/usr/bin/env bash
exec "$KUBE_SCHEDULER" --kubeconfig "$state/kube-scheduler.kubeconfig" \\
  --authentication-kubeconfig "$state/kube-scheduler.kubeconfig" \\
  --authorization-kubeconfig "$state/kube-scheduler.kubeconfig" \\
  --bind-address 127.0.0.1 --secure-port 0 --leader-elect=false --profiling=false --v=0
RUN

  write_kubeconfig "$state/kube-proxy.kubeconfig" kube-proxy "$server_url"
  cat >"$state/kube-proxy/config.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $state/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $pod_subnet
hostnameOverride: $node
bindAddress: $node_gateway
healthzBindAddress: 127.0.0.1:$proxy_healthz
metricsBindAddress: 127.0.0.1:$proxy_metrics
nodePortAddresses: ["$node_gateway/32"]
conntrack: {maxPerCore: 0, min: 0}
oomScoreAdj: 0
YAML
  cat >"$state/run-kube-proxy.sh" <<RUN
#!/usr/bin/env bash
exec "$KUBE_PROXY" --config "$state/kube-proxy/config.yaml" --v=0
RUN
  chmod +x "$state"/run-*.sh
}

# ctr repeats containerd's cgroup v1 deprecation notice on every call: drop it.
ctr_node() {
  "$CONTAINERD_BIN/ctr" --address "$state/containerd/containerd.sock" --namespace k8s.io "$@" \
    2> >(grep -v 'DEPRECATION: The support for cgroup v1' >&2)
}

# node_import ARCHIVE: make an OCI archive's image available to the kubelet.
node_import() {
  ctr_node images import --no-unpack=false --platform linux/amd64 "$1" >/dev/null
}

# node_cgroup_root: the kubelet's cgroupRoot must exist in every hierarchy;
# cpuset needs its cpus and mems copied from the parent before tasks can join.
node_cgroup_root() {
  local controller dir
  for controller in /sys/fs/cgroup/*/; do
    [[ -d "$controller" && ! -L "${controller%/}" ]] || continue
    dir="${controller}flowfed-$name"
    mkdir -p "$dir"
    if [[ -f "${controller}cpuset.cpus" ]]; then
      cat "${controller}cpuset.cpus" >"$dir/cpuset.cpus"
      cat "${controller}cpuset.mems" >"$dir/cpuset.mems"
    fi
  done
}

node_up() {
  eval "$("$here/build.sh" --print)"
  node_cgroup_root
  start_component containerd
  local deadline=$((SECONDS + 60))
  until ctr_node version >/dev/null 2>&1; do
    pid_alive "$(component_pid containerd)" || { tail -n 20 "$state/containerd.log" >&2; die "containerd exited; log: $state/containerd.log"; }
    [[ $SECONDS -lt $deadline ]] || die "containerd not answering after 60s; log: $state/containerd.log"
    sleep 0.2
  done
  node_import "$PAUSE_ARCHIVE"
  start_component kube-scheduler
  start_component kubelet
  start_component kube-proxy
  node_wait_ready
}

node_wait_ready() {
  local deadline=$((SECONDS + ${FLOWFED_READY_TIMEOUT:-120})) node
  node="$(node_name)"
  until [[ "$(kubectl_admin get node "$node" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]; do
    for c in "${node_components[@]}"; do
      if ! pid_alive "$(component_pid "$c")"; then
        tail -n 20 "$state/$c.log" >&2 || true
        die "$c of plane '$name' exited during start; full log: $state/$c.log"
      fi
    done
    [[ $SECONDS -lt $deadline ]] || die "node $node not Ready after ${FLOWFED_READY_TIMEOUT:-120}s; logs in $state"
    sleep 0.5
  done
}

kubectl_admin() { "$KUBECTL" --kubeconfig "$meta/kubeconfig" "$@"; }

# node_down: everything the node made, in the order that frees it.
node_down() {
  eval "$("$here/build.sh" --print)"
  local c pid f
  for c in kube-proxy kubelet kube-scheduler; do stop_component "$c"; done
  # Container processes and the shims that reap them: the containers by the
  # node's own cgroups, the shims by the containerd address only this plane uses.
  node_kill_cgroup_procs
  for pid in $(node_shim_pids); do kill -KILL "$pid" 2>/dev/null || true; done
  stop_component containerd
  # Again once containerd is gone: a sandbox it was starting has no new shim now.
  for pid in $(node_shim_pids); do kill -KILL "$pid" 2>/dev/null || true; done
  node_kill_cgroup_procs
  # Mounts under the state directory (overlay rootfs, Pod volumes, netns), deepest first.
  awk -v s="$state/" 'index($2, s) == 1 {print $2}' /proc/self/mounts | sort -r | while IFS= read -r f; do
    umount -l "$f" 2>/dev/null || true
  done
  node_remove_cgroups
  ip link del "$node_bridge" 2>/dev/null || true
  [[ -n "${KUBE_PROXY:-}" && -x "$KUBE_PROXY" ]] && "$KUBE_PROXY" --cleanup >/dev/null 2>&1 || true
  node_remove_chains
  for f in "$meta"/sysctl.*; do
    [[ -f "$f" ]] && sysctl -qw "${f##*/sysctl.}=$(cat "$f")" || true
  done
  [[ "$(cat "$node_lock" 2>/dev/null)" == "$meta" ]] && rm -f "$node_lock"
  return 0
}

node_shim_pids() {
  local f
  local cmdline
  for f in /proc/[0-9]*/cmdline; do
    # No `tr | grep -q` pipe: under pipefail, grep's early exit fails the pipe.
    cmdline="$(tr '\0' ' ' <"$f" 2>/dev/null)" || continue
    if [[ "$cmdline" == *"-address $state/containerd/containerd.sock"* ]]; then
      f="${f#/proc/}"
      echo "${f%/cmdline}"
    fi
  done
}

node_cgroup_dirs() {
  local controller
  for controller in /sys/fs/cgroup/*/; do
    [[ -d "$controller/flowfed-$name" ]] && echo "$controller/flowfed-$name"
  done
  [[ -f /sys/fs/cgroup/cgroup.controllers && -d "/sys/fs/cgroup/flowfed-$name" ]] && echo "/sys/fs/cgroup/flowfed-$name"
  return 0
}

node_kill_cgroup_procs() {
  local dir pid
  while IFS= read -r dir; do
    while IFS= read -r pid; do
      [[ -n "$pid" ]] && kill -KILL "$pid" 2>/dev/null || true
    done < <(find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null)
  done < <(node_cgroup_dirs)
  sleep 0.2
}

node_remove_cgroups() {
  local dir
  while IFS= read -r dir; do
    find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done < <(node_cgroup_dirs)
}

# Chains kube-proxy's --cleanup leaves: the kubelet's own (KUBE-FIREWALL,
# KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT) and the portmap plugin's (only there
# if a Pod used a hostPort), in both address families: jumps to them first,
# then the chains.
node_remove_chains() {
  local cmd table chain rule
  for cmd in iptables ip6tables; do
    command -v "$cmd" >/dev/null || continue
    for table in filter nat mangle; do
      while IFS= read -r chain; do
        while IFS= read -r rule; do
          # shellcheck disable=SC2086 # the rule is iptables-save words
          eval "$cmd -t $table ${rule/#-A/-D}" 2>/dev/null || true
        done < <("$cmd" -t "$table" -S 2>/dev/null | grep -E -- "^-A .* -j $chain( |\$)" || true)
        "$cmd" -t "$table" -F "$chain" 2>/dev/null || true
        "$cmd" -t "$table" -X "$chain" 2>/dev/null || true
      done < <("$cmd" -t "$table" -S 2>/dev/null |
        awk '$1 == "-N" && $2 ~ /^(KUBE-FIREWALL|KUBE-KUBELET-CANARY|KUBE-IPTABLES-HINT|CNI-HOSTPORT-|CNI-DN-)/ {print $2}')
    done
  done
}
