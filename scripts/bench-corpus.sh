#!/usr/bin/env bash
# Builds the benchmark corpus with plain shell tools and pushes it with skopeo
# (never with ferry) into a registry.
#
#   scripts/bench-corpus.sh REGISTRY WORKDIR COPY     # COPY = 0, 1, 2, ...
#   scripts/bench-corpus.sh REGISTRY WORKDIR huge     # one image with a 1 GiB layer
#   scripts/bench-corpus.sh REGISTRY WORKDIR slow     # the test corpus's shape (slow-link rows)
#   scripts/bench-corpus.sh REGISTRY WORKDIR small    # 301 small images (fixed costs per image)
#
# Prints the references it pushed, one a line. Copy K puts its images under the
# repository prefix cK/ and draws every layer from seeds that contain K, so copies
# share no bytes (copies 0..3 make the 1x/2x/4x scaling corpora).
#
# One copy: 22 image references, ~296 MiB of unique layers and configs:
#   cK/big/model:1.0          docker v2s2   base-os + one 110 MiB layer
#   cK/apps/svc-NN:1.0        16 images, docker v2s2 (even NN) or OCI (odd NN):
#                             base-os + base-runtime (even) / base-tools (odd)
#                             + an own layer of 2..10 MiB
#   cK/apps/svc-00:latest     second tag of svc-00:1.0
#   cK/multi/oci-index:v1     OCI index: linux/amd64 (base-os + 6 MiB),
#                             linux/arm64 (arm-base + 4 MiB)
#   cK/multi/docker-list:v1   docker manifest list: linux/amd64 (base-os + base-runtime
#                             + 5 MiB), linux/arm64/v8 (arm-base + 3 MiB)
#   cK/many/layers:40         OCI, 40 layers of 512 KiB
#   cK/tiny/hello:1.0         OCI, one 64 KiB layer
# Shared layers: base-os 24 MiB, base-runtime 16 MiB, base-tools 8 MiB, arm-base 8 MiB.
#
# `slow` has the shape of the integration tests' corpus (tests/it/common/corpus.rs,
# 7 references, ~60 blobs, ~1.3 MB), where round trips, not bytes, are the cost:
#   slow/docker/v2s2:1.0  slow/oci/image:latest  slow/multi/oci-index:v1
#   slow/multi/docker-list:v1  slow/team/sub/app:v0.1-rc.1_x (+ :latest)  slow/many/layers:42
#
# Layers are real gzip'd tars (GNU tar, fixed mtime/owner) of one file of
# pseudo-random bytes (an AES-CTR keystream keyed by the seed), so they do not
# compress and the same seed always gives the same digest. Layers over 48 MiB are
# compressed as several gzip members in parallel (a multi-member gzip stream is
# valid gzip; Go's and zlib's readers read it through).
set -euo pipefail
registry="$1"
work="$2"
copy="$3"
MiB=$((1024 * 1024))
jobs="$(nproc)"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
store="$work/layers"       # HEX files (blobs), plus SEED.info = "HEX SIZE DIFFID"
mkdir -p "$store"

DOCKER_MANIFEST=application/vnd.docker.distribution.manifest.v2+json
DOCKER_LIST=application/vnd.docker.distribution.manifest.list.v2+json
DOCKER_CONFIG=application/vnd.docker.container.image.v1+json
DOCKER_LAYER=application/vnd.docker.image.rootfs.diff.tar.gzip
OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json
OCI_INDEX=application/vnd.oci.image.index.v1+json
OCI_CONFIG=application/vnd.oci.image.config.v1+json
OCI_LAYER=application/vnd.oci.image.layer.v1.tar+gzip

sha() { openssl dgst -sha256 -r "$1" | cut -c1-64; }

# make_layer SEED BYTES: writes $store/HEX and $store/SEED.info
make_layer() {
  local seed="$1" bytes="$2" d="$store/tmp-$1"
  [ -s "$store/$seed.info" ] && return 0
  rm -rf "$d"
  mkdir -p "$d/c/layer-$seed"
  printf 'ferry benchmark layer %s\n' "$seed" > "$d/c/layer-$seed/SEED.txt"
  openssl enc -aes-128-ctr -nosalt -pbkdf2 -pass "pass:ferry-bench/$seed" < /dev/zero 2>/dev/null \
    | head -c "$bytes" > "$d/c/layer-$seed/data.bin"
  tar --sort=name --mtime='2024-01-01 00:00Z' --owner=0 --group=0 --numeric-owner \
    -C "$d/c" -cf "$d/layer.tar" .
  rm -rf "$d/c"
  local diff
  diff="$(sha "$d/layer.tar")"
  local tsize chunk=$((32 * MiB))
  tsize="$(stat -c %s "$d/layer.tar")"
  if [ "$tsize" -gt $((48 * MiB)) ]; then
    local n=$(((tsize + chunk - 1) / chunk))
    seq 0 $((n - 1)) | xargs -P "$jobs" -I{} sh -c \
      "dd if='$d/layer.tar' bs=$chunk skip={} count=1 status=none | gzip -1 -n > '$d/part.\$(printf %06d {})'"
    cat "$d"/part.* > "$d/layer.tar.gz"
  else
    gzip -1 -n -c "$d/layer.tar" > "$d/layer.tar.gz"
  fi
  local hex size
  hex="$(sha "$d/layer.tar.gz")"
  size="$(stat -c %s "$d/layer.tar.gz")"
  mv "$d/layer.tar.gz" "$store/$hex"
  rm -rf "$d"
  echo "$hex $size sha256:$diff" > "$store/$seed.info.tmp"
  mv "$store/$seed.info.tmp" "$store/$seed.info"
}
export -f make_layer sha
export store MiB jobs

# Image specs: "NAME|FORMAT|PLATFORM|SEED:BYTES SEED:BYTES ..." (first, all layers are made).
k="$copy"
specs=()
if [ "$copy" = huge ]; then
  specs+=("huge/one-gib:1.0|docker|linux/amd64|huge-base:$((4 * MiB)) huge-gib:$((1024 * MiB))")
  jobs_layers=1
elif [ "$copy" = small ]; then
  for i in $(seq 0 300); do
    nnn="$(printf %03d "$i")"
    specs+=("small/img-$nnn:1.0|oci|linux/amd64|small-$nnn:4096")
  done
  jobs_layers="$jobs"
elif [ "$copy" = slow ]; then
  k=slow
  specs+=("slow/docker/v2s2:1.0|docker|linux/amd64|slow-base-0:65536 slow-base-1:16384 slow-docker-app:$MiB")
  specs+=("slow/oci/image:latest|oci|linux/amd64|slow-base-0:65536 slow-base-1:16384 slow-oci-app:32768")
  specs+=("slow/team/sub/app:v0.1-rc.1_x|docker|linux/amd64|slow-base-0:65536 slow-team-app:4096")
  many=""
  for i in $(seq 0 41); do many+=" slow-many-$i:1536"; done
  specs+=("slow/many/layers:42|oci|linux/amd64|${many# }")
  specs+=("@|oci|linux/amd64|slow-base-0:65536 slow-base-1:16384 slow-idx-amd64:8192")
  specs+=("@|oci|linux/arm64|slow-idx-arm64:8192")
  specs+=("@|docker|linux/amd64|slow-list-amd64:8192")
  specs+=("@|docker|linux/arm64/v8|slow-list-arm64:8192")
  jobs_layers="$jobs"
else
  specs+=("c$k/big/model:1.0|docker|linux/amd64|c$k-base-os:$((24 * MiB)) c$k-big:$((110 * MiB))")
  for i in $(seq 0 15); do
    nn="$(printf %02d "$i")"
    if [ $((i % 2)) -eq 0 ]; then f=docker; b2="c$k-base-runtime:$((16 * MiB))"; else f=oci; b2="c$k-base-tools:$((8 * MiB))"; fi
    specs+=("c$k/apps/svc-$nn:1.0|$f|linux/amd64|c$k-base-os:$((24 * MiB)) $b2 c$k-app-$nn:$(((2 + (i % 5) * 2) * MiB))")
  done
  many=""
  for i in $(seq 0 39); do many+=" c$k-many-$i:$((512 * 1024))"; done
  specs+=("c$k/many/layers:40|oci|linux/amd64|${many# }")
  specs+=("c$k/tiny/hello:1.0|oci|linux/amd64|c$k-tiny:$((64 * 1024))")
  # index children (built below): listed here so their layers are made in the same pass
  specs+=("@|oci|linux/amd64|c$k-base-os:$((24 * MiB)) c$k-idx-amd64:$((6 * MiB))")
  specs+=("@|oci|linux/arm64|c$k-arm-base:$((8 * MiB)) c$k-idx-arm64:$((4 * MiB))")
  specs+=("@|docker|linux/amd64|c$k-base-os:$((24 * MiB)) c$k-base-runtime:$((16 * MiB)) c$k-list-amd64:$((5 * MiB))")
  specs+=("@|docker|linux/arm64/v8|c$k-arm-base:$((8 * MiB)) c$k-list-arm64:$((3 * MiB))")
  jobs_layers="$jobs"
fi

# 1. All layers, largest first, $jobs at a time.
for s in "${specs[@]}"; do
  for l in ${s##*|}; do echo "${l#*:} ${l%%:*}"; done
done | sort -u | sort -k1,1nr | awk '{print $2, $1}' \
  | xargs -P "$jobs_layers" -n2 bash -c 'make_layer "$1" "$2"' _

info() { cat "$store/$1.info"; }

# blob FILE DIR: copies FILE into the dir: layout DIR under its hex; prints "HEX SIZE"
blob() {
  local hex size
  hex="$(sha "$1")"
  size="$(stat -c %s "$1")"
  cp "$1" "$2/$hex"
  echo "$hex $size"
}

# build_image DIR FORMAT PLATFORM LABEL LAYERS...: writes config, layers and the
# manifest into the dir: layout DIR; prints "HEX SIZE" of the manifest (also left in DIR/.manifest)
build_image() {
  local dir="$1" format="$2" platform="$3" label="$4"; shift 4
  local mt ct lt
  if [ "$format" = docker ]; then mt=$DOCKER_MANIFEST ct=$DOCKER_CONFIG lt=$DOCKER_LAYER
  else mt=$OCI_MANIFEST ct=$OCI_CONFIG lt=$OCI_LAYER; fi
  mkdir -p "$dir"
  local layers="" diffs="" sep="" l hex size diff
  for l in "$@"; do
    read -r hex size diff < <(info "${l%%:*}")
    ln -f "$store/$hex" "$dir/$hex" 2>/dev/null || cp "$store/$hex" "$dir/$hex"
    layers+="$sep{\"mediaType\":\"$lt\",\"size\":$size,\"digest\":\"sha256:$hex\"}"
    diffs+="$sep\"$diff\""
    sep=","
  done
  local os="${platform%%/*}" rest="${platform#*/}" arch variant=""
  arch="${rest%%/*}"
  [ "$rest" != "$arch" ] && variant=",\"variant\":\"${rest#*/}\""
  printf '{"architecture":"%s","os":"%s"%s,"config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Labels":{"bench":"%s"}},"rootfs":{"type":"layers","diff_ids":[%s]}}' \
    "$arch" "$os" "$variant" "$label" "$diffs" > "$dir/.config"
  read -r hex size < <(blob "$dir/.config" "$dir")
  printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"%s","size":%s,"digest":"sha256:%s"},"layers":[%s]}' \
    "$mt" "$ct" "$size" "$hex" "$layers" > "$dir/.manifest"
  rm -f "$dir/.config"
  echo "$(sha "$dir/.manifest") $(stat -c %s "$dir/.manifest")"
}

layouts="$work/layouts-$copy"
rm -rf "$layouts"
mkdir -p "$layouts"
refs=()   # "REF DIR"

# 2. Plain images.
n=0
for s in "${specs[@]}"; do
  IFS='|' read -r name format platform layers <<< "$s"
  [ "$name" = "@" ] && continue
  n=$((n + 1))
  dir="$layouts/$n"
  # shellcheck disable=SC2086
  build_image "$dir" "$format" "$platform" "$name" $layers > /dev/null
  mv "$dir/.manifest" "$dir/manifest.json"
  echo "Directory Transport Version: 1.1" > "$dir/version"
  refs+=("$name $dir")
done

# 3. The OCI index and the docker manifest list (children from the "@" specs).
pre="c$k"
[ "$copy" = slow ] && pre=slow
if [ "$copy" != huge ] && [ "$copy" != small ]; then
  idx=0
  for kind in oci docker; do
    n=$((n + 1))
    dir="$layouts/$n"
    mkdir -p "$dir"
    entries="" sep=""
    for s in "${specs[@]}"; do
      IFS='|' read -r name format platform layers <<< "$s"
      [ "$name" = "@" ] && [ "$format" = "$kind" ] || continue
      idx=$((idx + 1))
      # shellcheck disable=SC2086
      read -r hex size < <(build_image "$dir" "$format" "$platform" "$pre/multi/$kind/$platform" $layers)
      mv "$dir/.manifest" "$dir/$hex.manifest.json"
      os="${platform%%/*}" rest="${platform#*/}"
      arch="${rest%%/*}" variant=""
      [ "$rest" != "$arch" ] && variant=",\"variant\":\"${rest#*/}\""
      if [ "$kind" = oci ]; then cmt=$OCI_MANIFEST; else cmt=$DOCKER_MANIFEST; fi
      entries+="$sep{\"mediaType\":\"$cmt\",\"size\":$size,\"digest\":\"sha256:$hex\",\"platform\":{\"architecture\":\"$arch\",\"os\":\"$os\"$variant}}"
      sep=","
    done
    if [ "$kind" = oci ]; then
      printf '{"schemaVersion":2,"mediaType":"%s","manifests":[%s]}' "$OCI_INDEX" "$entries" > "$dir/manifest.json"
      refs+=("$pre/multi/oci-index:v1 $dir")
    else
      printf '{"schemaVersion":2,"mediaType":"%s","manifests":[%s]}' "$DOCKER_LIST" "$entries" > "$dir/manifest.json"
      refs+=("$pre/multi/docker-list:v1 $dir")
    fi
    echo "Directory Transport Version: 1.1" > "$dir/version"
  done
  # A second tag on svc-00's (slow: team/sub/app's) manifest.
  for r in "${refs[@]}"; do
    if [ "${r%% *}" = "c$k/apps/svc-00:1.0" ]; then refs+=("c$k/apps/svc-00:latest ${r#* }"); fi
    if [ "${r%% *}" = "slow/team/sub/app:v0.1-rc.1_x" ]; then refs+=("slow/team/sub/app:latest ${r#* }"); fi
  done
fi

# 4. Push with skopeo, 4 at a time; check each manifest came back byte-exact.
push_one() {
  local registry="$1" ref="$2" dir="$3" served
  skopeo --insecure-policy copy --quiet --all --preserve-digests --dest-tls-verify=false \
    "dir:$dir" "docker://$registry/$ref" >&2
  served="$(skopeo inspect --raw --tls-verify=false "docker://$registry/$ref" | openssl dgst -sha256 -r | cut -c1-64)"
  if [ "$served" != "$(sha "$dir/manifest.json")" ]; then
    echo "bench-corpus: $registry/$ref serves different manifest bytes" >&2
    return 1
  fi
}
export -f push_one
# Second tags go after the first tags of the same manifests are in.
printf '%s\n' "${refs[@]}" | grep -v ':latest ' | xargs -P 4 -L1 bash -c 'push_one "$0" "$1" "$2"' "$registry"
printf '%s\n' "${refs[@]}" | { grep ':latest ' || true; } | xargs -r -L1 bash -c 'push_one "$0" "$1" "$2"' "$registry"
rm -rf "$layouts"
for r in "${refs[@]}"; do echo "$registry/${r%% *}"; done
