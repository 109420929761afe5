#!/usr/bin/env bash
# Builds the control-plane binaries the tests and the demo run, from Go modules:
#   kube-apiserver, kube-controller-manager, kubectl  (go/kubernetes)
#   kubelet, kube-scheduler, kube-proxy               (go/kubernetes, the node)
#   etcd                                               (go/etcd)
#   helm                                               (go/helm)
#   containerd, containerd-shim-runc-v2, ctr           (go/containerd, the node)
#   runc (cgo, seccomp; needs Debian's libseccomp-dev) (go/runc, the node)
# and the node's `pause` image from build/pause/linux/pause.c of the same
# k8s.io/kubernetes module (nothing can be pulled), as an OCI archive.
# The versions are the ones pinned in each consumer module's go.mod. Binaries go
# to ${FLOWFED_CACHE:-$HOME/.cache/flowfed}/bin/<component>-<version>/ and are
# built only when missing, so a warm cache costs a few stat calls.
#
# Usage: build.sh            build what is missing, print the bin directories
#        build.sh --print    only print `NAME=PATH` lines for each binary
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${FLOWFED_CACHE:-$HOME/.cache/flowfed}"
print_only=false
[[ "${1:-}" == "--print" ]] && print_only=true

# module_version MODDIR MODULE -> the version MODDIR's go.mod requires of MODULE
module_version() {
  awk -v m="$2" '$1 == m && $2 ~ /^v/ {print $2; exit} $1 == "require" && $2 == m {print $3; exit}' "$1/go.mod"
}

k8s_version="$(module_version "$here/go/kubernetes" k8s.io/kubernetes)"
etcd_version="$(module_version "$here/go/etcd" go.etcd.io/etcd/server/v3)"
helm_version="$(module_version "$here/go/helm" helm.sh/helm/v3)"
containerd_version="$(module_version "$here/go/containerd" github.com/containerd/containerd/v2)"
runc_version="$(module_version "$here/go/runc" github.com/opencontainers/runc)"

k8s_bin="$cache/bin/kubernetes-$k8s_version"
etcd_bin="$cache/bin/etcd-$etcd_version"
helm_bin="$cache/bin/helm-$helm_version"
containerd_bin="$cache/bin/containerd-$containerd_version"
runc_bin="$cache/bin/runc-$runc_version"
pause_dir="$cache/images/pause-$k8s_version"

if $print_only; then
  echo "KUBE_APISERVER=$k8s_bin/kube-apiserver"
  echo "KUBE_CONTROLLER_MANAGER=$k8s_bin/kube-controller-manager"
  echo "KUBECTL=$k8s_bin/kubectl"
  echo "ETCD=$etcd_bin/etcd"
  echo "HELM=$helm_bin/helm"
  echo "KUBELET=$k8s_bin/kubelet"
  echo "KUBE_SCHEDULER=$k8s_bin/kube-scheduler"
  echo "KUBE_PROXY=$k8s_bin/kube-proxy"
  echo "CONTAINERD_BIN=$containerd_bin"
  echo "RUNC=$runc_bin/runc"
  echo "PAUSE_ARCHIVE=$pause_dir/pause.oci.tar"
  echo "PAUSE_IMAGE=$(cat "$pause_dir/name" 2>/dev/null || echo unknown)"
  exit 0
fi

export GOFLAGS="-trimpath -buildvcs=false"
export CGO_ENABLED=0

die_missing() { echo "flowfed: $1 is missing; install Debian's $2 (make test and .ci/run do)" >&2; exit 1; }

# build_tool MODDIR PACKAGE OUTPUT LDFLAGS
build_tool() {
  local moddir="$1" pkg="$2" out="$3" ldflags="$4"
  if [[ -x "$out" ]]; then
    return 0
  fi
  mkdir -p "$(dirname "$out")"
  echo "flowfed: building $(basename "$out") from $pkg (first time on this machine: a few minutes)" >&2
  local start=$SECONDS
  (cd "$moddir" && go build -ldflags "$ldflags" -o "$out.tmp" "$pkg")
  mv "$out.tmp" "$out"
  echo "flowfed: built $(basename "$out") in $((SECONDS - start))s" >&2
}

# Stamp versions so /version, kubectl version and Helm's kubeVersion checks
# see a real release rather than v0.0.0.
k8s_minor="$(echo "$k8s_version" | cut -d. -f2)"
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor"
  k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
for tool in kube-apiserver kube-controller-manager kubectl kubelet kube-scheduler kube-proxy; do
  build_tool "$here/go/kubernetes" "k8s.io/kubernetes/cmd/$tool" "$k8s_bin/$tool" "$k8s_ldflags"
done

build_tool "$here/go/etcd" "." "$etcd_bin/etcd" "-s -w"

helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version"
helm_ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$k8s_minor"
build_tool "$here/go/helm" "helm.sh/helm/v3/cmd/helm" "$helm_bin/helm" "$helm_ldflags"

# containerd without the snapshotters that need C headers (btrfs) or block
# devices (devmapper, zfs): the node uses overlayfs.
containerd_ldflags="-s -w -X github.com/containerd/containerd/v2/version.Version=$containerd_version"
for tool in containerd containerd-shim-runc-v2 ctr; do
  GOFLAGS="$GOFLAGS -tags=no_btrfs,no_devmapper,no_zfs" build_tool "$here/go/containerd" \
    "github.com/containerd/containerd/v2/cmd/$tool" "$containerd_bin/$tool" "$containerd_ldflags"
done

# runc needs cgo for seccomp (Debian's runc 1.1 fails to start containers on
# current kernels: "can't get final child's PID from pipe").
if [[ ! -x "$runc_bin/runc" ]]; then
  [[ -f /usr/include/seccomp.h ]] || die_missing libseccomp-dev libseccomp-dev
  CGO_ENABLED=1 GOFLAGS="$GOFLAGS -tags=seccomp" build_tool "$here/go/runc" \
    github.com/opencontainers/runc "$runc_bin/runc" "-s -w -X main.version=$runc_version"
fi

# The pause image: Kubernetes' own pause.c, static, in a one-file image named
# as kubeadm names it for this release.
if [[ ! -f "$pause_dir/pause.oci.tar" ]]; then
  command -v musl-gcc >/dev/null || die_missing musl-gcc musl-tools
  k8s_src="$(cd "$here/go/kubernetes" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)"
  pause_tag="$(awk '$1 == "TAG" {print $3; exit}' "$k8s_src/build/pause/Makefile")"
  mkdir -p "$pause_dir"
  musl-gcc -Os -static -Wall -Werror -DVERSION="v$pause_tag-flowfed" \
    -o "$pause_dir/pause" "$k8s_src/build/pause/linux/pause.c"
  strip "$pause_dir/pause"
  "$here/../../scripts/oci_archive.py" --name "registry.k8s.io/pause:$pause_tag" \
    --out "$pause_dir/pause.oci.tar.tmp" --file "$pause_dir/pause:pause:0755" \
    --entrypoint /pause --user 65535:65535 >/dev/null
  mv "$pause_dir/pause.oci.tar.tmp" "$pause_dir/pause.oci.tar"
  echo "registry.k8s.io/pause:$pause_tag" >"$pause_dir/name"
  echo "flowfed: built the pause image registry.k8s.io/pause:$pause_tag" >&2
fi

echo "$k8s_bin"
echo "$etcd_bin"
echo "$helm_bin"
echo "$containerd_bin"
echo "$runc_bin"
