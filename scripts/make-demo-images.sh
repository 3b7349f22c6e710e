#!/usr/bin/env bash
# Builds small sample images as OCI layouts with plain shell tools and pushes them
# with skopeo into the registry at $1 (HOST:PORT). Deterministic: the same run gives
# the same digests. Usage: scripts/make-demo-images.sh 127.0.0.1:5000 [VERSION]
set -euo pipefail
registry="$1"
version="${2:-1}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# blob FILE: stores FILE under $layout/blobs/sha256 and prints "sha256:HEX SIZE"
blob() {
  local hex size
  hex="$(sha256sum "$1" | cut -d' ' -f1)"
  size="$(stat -c %s "$1")"
  mkdir -p "$layout/blobs/sha256"
  cp "$1" "$layout/blobs/sha256/$hex"
  echo "sha256:$hex $size"
}

# layer SEED KIB: a gzip'd tar holding one file of pseudo-random bytes from SEED
layer() {
  local dir="$work/layer-$1"
  mkdir -p "$dir/content"
  # Deterministic pseudo-random bytes from the seed (AES-CTR keystream), so layers
  # have realistic sizes after gzip; plain repetition where openssl is missing.
  if command -v openssl >/dev/null 2>&1; then
    head -c "$(($2 * 1024))" /dev/zero | openssl enc -aes-128-ctr -nosalt -pbkdf2 -pass "pass:$1" > "$dir/content/data-$1.bin"
  else
    yes "ferry demo layer $1" | head -c "$(($2 * 1024))" > "$dir/content/data-$1.bin"
  fi
  tar --sort=name --mtime='2024-01-01 00:00Z' --owner=0 --group=0 --numeric-owner -C "$dir/content" -cf "$dir/layer.tar" .
  gzip -n -9 -c "$dir/layer.tar" > "$dir/layer.tar.gz"
  echo "$dir/layer.tar.gz"
}

# image REPO TAG LAYER_SEEDS...: builds an OCI layout with those layers and pushes it
image() {
  local repo="$1" tag="$2"; shift 2
  layout="$work/oci-${repo//\//_}-$tag"
  mkdir -p "$layout"
  echo '{"imageLayoutVersion":"1.0.0"}' > "$layout/oci-layout"
  local layers_json="" diff_ids="" first=1 seed f d s
  for seed in "$@"; do
    f="$(layer "$seed" 256)"
    read -r d s < <(blob "$f")
    local diff="sha256:$(gzip -dc "$f" | sha256sum | cut -d' ' -f1)"
    [ $first -eq 1 ] || { layers_json+=","; diff_ids+=","; }
    first=0
    layers_json+="{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"$d\",\"size\":$s}"
    diff_ids+="\"$diff\""
  done
  printf '{"architecture":"amd64","os":"linux","config":{"Labels":{"demo":"%s:%s"}},"rootfs":{"type":"layers","diff_ids":[%s]}}' "$repo" "$tag" "$diff_ids" > "$work/config.json"
  read -r d s < <(blob "$work/config.json")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[%s]}' "$d" "$s" "$layers_json" > "$work/manifest.json"
  read -r d s < <(blob "$work/manifest.json")
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s}]}' "$d" "$s" > "$layout/index.json"
  skopeo copy --quiet --insecure-policy --preserve-digests --dest-tls-verify=false "oci:$layout" "docker://$registry/$repo:$tag"
  echo "$registry/$repo:$tag"
}

# Three images sharing a base layer; version 2 changes one of them and adds one.
image demo/base 1.0 base-os
image demo/web 1.0 base-os web-app-v1
image demo/tools/cli "v0.1-rc.1_x" base-os cli-v1
if [ "$version" -ge 2 ]; then
  image demo/web 2.0 base-os web-app-v2
  image demo/api 1.0 base-os api-v1
fi
