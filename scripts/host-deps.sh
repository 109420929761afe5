#!/usr/bin/env bash
# Installs what this machine lacks for a part of the project, from Debian's
# packages and rustup, with a one-line note each; a no-op when all is there.
# `make test`, `make demo`, `make image` and .ci/run call it, so a fresh
# machine needs only Go, Rust and make.
#
# Usage: scripts/host-deps.sh GROUP...
#   image  the static musl build (musl target, musl-gcc) and the CA bundle
#   node   a plane's node: iptables, iproute2, CNI plugins, libseccomp-dev (runc),
#          musl-gcc (pause)
#   test   everything `make test` uses: image, node, openssl, curl, python3,
#          Prometheus and promtool, rustfmt and clippy
set -euo pipefail

packages=()
want() { # want COMMAND-OR-PATH PACKAGE
  if [[ "$1" == /* ]]; then [[ -e "$1" ]] && return 0; else command -v "$1" >/dev/null 2>&1 && return 0; fi
  [[ " ${packages[*]} " == *" $2 "* ]] || packages+=("$2")
}
rust_target=false
rust_components=false

for group in "$@"; do
  case "$group" in
    image)
      want musl-gcc musl-tools
      want /etc/ssl/certs/ca-certificates.crt ca-certificates
      rust_target=true
      ;;
    node)
      want /usr/include/seccomp.h libseccomp-dev
      want iptables iptables
      want ip iproute2
      want /usr/lib/cni/bridge containernetworking-plugins
      want musl-gcc musl-tools
      want openssl openssl
      want curl curl
      want python3 python3-minimal
      ;;
    test)
      "$0" image node
      want prometheus prometheus
      want promtool prometheus
      rust_components=true
      ;;
    *) echo "host-deps: unknown group '$group' (image, node, test)" >&2; exit 2 ;;
  esac
done

if [[ ${#packages[@]} -gt 0 ]]; then
  echo "flowfed: installing Debian packages this machine lacks: ${packages[*]}" >&2
  [[ $EUID -eq 0 ]] || { echo "flowfed: need root to install them (or install them yourself)" >&2; exit 1; }
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi
if $rust_target && ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
  echo "flowfed: adding the Rust target x86_64-unknown-linux-musl (static binaries for the image)" >&2
  rustup target add x86_64-unknown-linux-musl >/dev/null
fi
if $rust_components; then
  for component in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
      echo "flowfed: adding the Rust component $component" >&2
      rustup component add "$component" >/dev/null
    fi
  done
fi
