#!/usr/bin/env bash
# Builds flowfed's container image without a Docker daemon and without a base
# image: a static x86_64-unknown-linux-musl release binary plus Debian's CA
# bundle, in an OCI image archive named flowfed/flowfed:<chart appVersion>.
# The same commit gives the same digest: the binary is built with paths
# remapped, and the archive is written deterministically (scripts/oci_archive.py)
# with the commit's time.
#
# Usage: scripts/image.sh [BINARY IMAGE_NAME OUTPUT]
#   default: flowfed flowfed/flowfed:<appVersion> target/image/flowfed.oci.tar
#   e.g.     scripts/image.sh flowfed-gateways flowfed/gateways:dev target/image/gateways.oci.tar
# The manifest digest is the last line printed, and is written next to the
# archive (target/image/digest for the operator's image).
set -euo pipefail
cd "$(dirname "$0")/.."

app_version="$(awk '$1 == "appVersion:" {gsub(/"/, "", $2); print $2}' charts/flowfed/Chart.yaml)"
binary="${1:-flowfed}"
name="${2:-flowfed/flowfed:$app_version}"
out="${3:-target/image/flowfed.oci.tar}"
target=x86_64-unknown-linux-musl
ca_bundle=/etc/ssl/certs/ca-certificates.crt

scripts/host-deps.sh image >&2

# Paths of this machine must not end up in the binary (and so in the digest).
export RUSTFLAGS="${RUSTFLAGS:-} --remap-path-prefix=$HOME=/build --remap-path-prefix=$PWD=/src"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
# Both images' binaries in one build: one set of features, so flowfed is
# compiled once and its binary is the same whichever image is asked for.
cargo build --release --locked -q --target "$target" -p flowfed -p flowfed-tests \
  --bin flowfed --bin flowfed-gateways
bin="$CARGO_TARGET_DIR/$target/release/$binary"

cmd=()
[[ "$binary" == flowfed ]] && cmd=(--cmd run)
created="$(git log -1 --format=%ct 2>/dev/null || echo 0)"
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
mkdir -p "$(dirname "$out")"
digest="$(scripts/oci_archive.py --name "$name" --out "$out" \
  --file "$bin:$binary:0755" \
  --file "$ca_bundle:etc/ssl/certs/ca-certificates.crt:0644" \
  --file "scripts/image-files/passwd:etc/passwd:0644" \
  --file "scripts/image-files/group:etc/group:0644" \
  --entrypoint "/$binary" "${cmd[@]}" --user 65532:65532 \
  --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --label "org.opencontainers.image.version=$app_version" \
  --label "org.opencontainers.image.revision=$revision" \
  --label "org.opencontainers.image.licenses=Apache-2.0" \
  --created "$created")"
if [[ "$binary" == flowfed ]]; then
  echo "$digest" >"$(dirname "$out")/digest"
fi
size="$(stat -c %s "$out")"
echo "image $name: $out, $((size / 1024)) KiB ($(awk -v s="$size" 'BEGIN {printf "%.1f", s / 1e6}') MB)"
echo "$digest"
