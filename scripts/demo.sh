#!/usr/bin/env bash
# The demo of ferry's main job, from nothing: set up, start a source and a target
# registry on loopback, seed the source with sample images, then
#   save → verify → upload → compare digests, and the same for an increment.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/lib.sh
ferry="$PWD/target/release/ferry"

work="$(mktemp -d)"
cleanup() { stop_registry "$work/src"; stop_registry "$work/dst"; rm -rf "$work"; }
trap cleanup EXIT

src="$(start_registry "$work/src")"
dst="$(start_registry "$work/dst")"
echo "== source registry $src, target registry $dst"

echo "== seeding the source with sample images (skopeo)"
scripts/make-demo-images.sh "$src" 1 > "$work/v1.lst"
cat "$work/v1.lst"

compare() { # compare LIST: source vs target digest of every image in LIST
  local ok=0 ref repo_tag s d
  printf '%-40s %-20s %-20s\n' IMAGE SOURCE TARGET
  while read -r ref; do
    repo_tag="${ref#*/}"
    s="$(skopeo inspect --raw --tls-verify=false "docker://$ref" | sha256sum | cut -c1-16)"
    d="$(skopeo inspect --raw --tls-verify=false "docker://$dst/mirror/$repo_tag" | sha256sum | cut -c1-16)"
    printf '%-40s %-20s %-20s %s\n' "$repo_tag" "$s" "$d" "$([ "$s" = "$d" ] && echo same || echo DIFFERENT)"
    [ "$s" = "$d" ] || ok=1
  done < "$1"
  return $ok
}

echo "== ferry save (full bundle, 2 data files)"
meta1="$("$ferry" save --list "$work/v1.lst" --out data --files 2)"
ls -l "$(dirname "$meta1")"
echo "== ferry verify $meta1"
"$ferry" verify "$meta1"
echo "== ferry upload to $dst/mirror"
"$ferry" upload "$meta1" --dst "$dst/mirror"
compare "$work/v1.lst"

echo "== next release: one image changed, one new; ferry save --inc"
scripts/make-demo-images.sh "$src" 2 > "$work/v2.lst"
meta2="$("$ferry" save --list "$work/v2.lst" --out data --inc "$meta1")"
echo "increment: $(du -cb "$(dirname "$meta2")"/img_incre_*.tar | tail -1 | cut -f1) bytes of data files (full bundle: $(du -cb "$(dirname "$meta1")"/"$(basename "$meta1" _meta.yaml)"_*.tar | tail -1 | cut -f1))"
"$ferry" verify "$meta2"
"$ferry" upload "$meta2" --dst "$dst/mirror"
compare "$work/v2.lst"
echo "== demo complete: every image has the same manifest digest in the target as in the source"
