#!/usr/bin/env bash
# Builds the control-plane binaries the tests and the demo run, from Go modules:
#   kube-apiserver, kube-controller-manager, kubectl  (go/kubernetes)
#   etcd                                               (go/etcd)
#   helm                                               (go/helm)
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

k8s_bin="$cache/bin/kubernetes-$k8s_version"
etcd_bin="$cache/bin/etcd-$etcd_version"
helm_bin="$cache/bin/helm-$helm_version"

if $print_only; then
  echo "KUBE_APISERVER=$k8s_bin/kube-apiserver"
  echo "KUBE_CONTROLLER_MANAGER=$k8s_bin/kube-controller-manager"
  echo "KUBECTL=$k8s_bin/kubectl"
  echo "ETCD=$etcd_bin/etcd"
  echo "HELM=$helm_bin/helm"
  exit 0
fi

export GOFLAGS="-trimpath -buildvcs=false"
export CGO_ENABLED=0

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
for tool in kube-apiserver kube-controller-manager kubectl; do
  build_tool "$here/go/kubernetes" "k8s.io/kubernetes/cmd/$tool" "$k8s_bin/$tool" "$k8s_ldflags"
done

build_tool "$here/go/etcd" "." "$etcd_bin/etcd" "-s -w"

helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version"
helm_ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$k8s_minor"
build_tool "$here/go/helm" "helm.sh/helm/v3/cmd/helm" "$helm_bin/helm" "$helm_ldflags"

echo "$k8s_bin"
echo "$etcd_bin"
echo "$helm_bin"
