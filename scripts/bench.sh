#!/usr/bin/env bash
# ferry's benchmark: builds a corpus in a throwaway docker-registry, then times
# `ferry save` / `ferry upload` / `ferry sync` against skopeo, against plain curl (the
# honest limit: one process moving every unique blob once, in parallel, `curl
# --parallel`) and against the release build of the last commit before the engine
# refactor (#15), over loopback and over a link that adds 100 ms to every round trip
# (a delaying proxy, examples/delay_proxy.rs), and writes BENCHMARKS.md.
#
#   bash scripts/bench.sh            # ~20 minutes on 2 cores (+ ~15 to build the old binary once)
#   BENCH_RUNS=5 bash scripts/bench.sh
#   BENCH_OLD_COMMIT=e54269e BENCH_OLD_DIR=/tmp/ferry-old bash scripts/bench.sh
#       # the old binary: built from `git archive` of the commit into DIR/target (kept)
#
# Everything (registries, corpus, bundles) lives in a temporary folder under /tmp,
# removed on exit. Targets are reported as PASS/MISS, never asserted.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
scripts/setup.sh

need=()
[ -x /usr/bin/time ] || need+=(time)
command -v jq >/dev/null 2>&1 || need+=(jq)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ "${#need[@]}" -gt 0 ]; then
  echo "bench: installing ${need[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# shellcheck source=lib.sh
source scripts/lib.sh
echo "bench: building ferry and the delay proxy (release)" >&2
cargo build --release --quiet --bin ferry --example delay_proxy
ferry="$root/target/release/ferry"
delay_proxy="$root/target/release/examples/delay_proxy"
# The last commit before the engine refactor (#15): the parent of 4b4fe62, the first
# commit of the transport/engine refactor.
OLD_COMMIT="${BENCH_OLD_COMMIT:-e54269e}"
OLD_DIR="${BENCH_OLD_DIR:-/tmp/ferry-bench-old-$OLD_COMMIT}"
old="$OLD_DIR/target/release/ferry"
if [ ! -x "$old" ]; then
  echo "bench: building the release binary of $OLD_COMMIT into $OLD_DIR (once)" >&2
  rm -rf "$OLD_DIR/src"
  mkdir -p "$OLD_DIR/src"
  git -C "$root" archive "$OLD_COMMIT" | tar -x -C "$OLD_DIR/src"
  (cd "$OLD_DIR/src" && CARGO_TARGET_DIR="$OLD_DIR/target" cargo build --release --quiet --offline --bin ferry)
fi
RUNS="${BENCH_RUNS:-3}"
RTT_MS="${BENCH_RTT_MS:-100}"
W="$(mktemp -d /tmp/ferry-bench.XXXXXX)"
regs=()
bg=()
cleanup() {
  local d p
  for p in "${bg[@]}"; do kill "$p" 2>/dev/null || true; done
  for d in "${regs[@]}"; do stop_registry "$d"; done
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

T0="$(date +%s)"
log() { printf '[bench %4ss] %s\n' "$(($(date +%s) - T0))" "$*" >&2; }

# new_registry NAME: starts a fresh registry in $W/reg/NAME; sets REG (host:port) and REGDIR.
# (A few attempts: another process may take the free port before the registry binds it.)
new_registry() {
  REGDIR="$W/reg/$1"
  regs+=("$REGDIR")
  local attempt
  for attempt in 1 2 3 4 5; do
    rm -rf "$REGDIR"
    if REG="$(start_registry "$REGDIR" 2> "$W/registry.err")"; then return 0; fi
    stop_registry "$REGDIR"
    sleep 0.5
  done
  cat "$W/registry.err" >&2
  return 1
}
drop_registry() { stop_registry "$1"; sleep 0.2; rm -rf "$1"; }

# CPU seconds (user+sys) used so far by the registry whose folder is $1.
TICK="$(getconf CLK_TCK)"
reg_cpu() {
  local pid
  pid="$(cat "$1/pid" 2>/dev/null || true)"
  if [ -n "$pid" ] && [ -r "/proc/$pid/stat" ]; then
    awk -v t="$TICK" '{sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / t}' "/proc/$pid/stat"
  else
    echo 0
  fi
}

# Busy CPU seconds of the whole machine so far (all cores, idle and iowait excluded).
sys_busy() { awk -v t="$TICK" '/^cpu / {printf "%.2f", ($2 + $3 + $4 + $7 + $8) / t; exit}' /proc/stat; }

# timed LABEL REGDIR CMD...: runs CMD (stdout to $W/cmd.out), then flushes the page
# cache to disk with `sync` (not counted, but its time is recorded so that tools
# that do not fsync are not credited with deferred writes). Appends
#   LABEL wall_s maxrss_kib user_s sys_s registry_cpu_s flush_s other_cpu_s
# to $W/results, where other_cpu_s is the CPU time the rest of the machine used
# during the run (a noise indicator: on a quiet machine it is close to 0).
timed() {
  local label="$1" regdir="$2"; shift 2
  local c0 c1 t0 t1 t2 rss u s b0 b1
  sync
  c0="$(reg_cpu "$regdir")"
  b0="$(sys_busy)"
  t0="$(date +%s%N)"
  if ! /usr/bin/time -f '%M %U %S' -o "$W/time.out" "$@" > "$W/cmd.out" 2> "$W/cmd.err"; then
    echo "bench: '$label' failed: $*" >&2
    tail -20 "$W/cmd.err" >&2
    # The old binary may lack what a row needs: its row says n/a instead.
    case "$label" in old.*) return 0 ;; esac
    exit 1
  fi
  t1="$(date +%s%N)"
  b1="$(sys_busy)"
  c1="$(reg_cpu "$regdir")"
  sync
  t2="$(date +%s%N)"
  read -r rss u s < <(tail -1 "$W/time.out")
  echo "$label $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}') $rss $u $s $(awk -v a="$c0" -v b="$c1" 'BEGIN{printf "%.2f", b-a}') $(awk -v a="$t1" -v b="$t2" 'BEGIN{printf "%.3f", (b-a)/1e9}')" \
    "$(awk -v a="$b0" -v b="$b1" -v u="$u" -v s="$s" -v r0="$c0" -v r1="$c1" 'BEGIN{o = (b-a) - u - s - (r1-r0); printf "%.2f", (o < 0 ? 0 : o)}')" >> "$W/results"
  log "$label: $(tail -1 "$W/results" | cut -d' ' -f2-)"
}

# pick LABEL FIELD [median|min|max]: FIELD 2=wall 3=rss 4=user 5=sys 6=registry cpu 7=flush 8=other cpu
pick() {
  awk -v l="$1" -v f="$2" '$1 == l {print $f}' "$W/results" | sort -g | awk -v m="${3:-median}" '
    {a[NR] = $1}
    END {
      if (NR == 0) { print "nan"; exit }
      if (m == "max") print a[NR]
      else if (m == "min") print a[1]
      else if (NR % 2) print a[(NR + 1) / 2]
      else print (a[NR / 2] + a[NR / 2 + 1]) / 2
    }'
}
calc() { awk "BEGIN{printf \"$1\", $2}"; }
verdict() { awk "BEGIN{print ($1) ? \"PASS\" : \"MISS\"}"; }
rotate() { # rotate N WORDS...: the words, starting at the N-th (0-based, cyclic)
  local n="$1"; shift
  local a=("$@") i
  for i in "${!a[@]}"; do echo "${a[$(((i + n) % ${#a[@]}))]}"; done
}

# blobs_of LIST OUT: reads every manifest (and index child) of the images in LIST from
# the registry; writes "REPO DIGEST SIZE KIND" for each unique manifest, config and layer.
ACCEPT='application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json'
blobs_of() {
  local ref host rest repo tag d
  while read -r ref; do
    host="${ref%%/*}" rest="${ref#*/}"
    repo="${rest%:*}" tag="${rest##*:}"
    curl -sSf -H "Accept: $ACCEPT" -o "$W/m.json" "http://$host/v2/$repo/manifests/$tag"
    echo "$repo sha256:$(openssl dgst -sha256 -r "$W/m.json" | cut -c1-64) $(stat -c %s "$W/m.json") manifest"
    if jq -e '.manifests' "$W/m.json" > /dev/null; then
      for d in $(jq -r '.manifests[].digest' "$W/m.json"); do
        curl -sSf -H "Accept: $ACCEPT" -o "$W/c.json" "http://$host/v2/$repo/manifests/$d"
        echo "$repo $d $(stat -c %s "$W/c.json") manifest"
        jq -r --arg r "$repo" '(.config | "\($r) \(.digest) \(.size) config"), (.layers[] | "\($r) \(.digest) \(.size) layer")' "$W/c.json"
      done
    else
      jq -r --arg r "$repo" '(.config | "\($r) \(.digest) \(.size) config"), (.layers[] | "\($r) \(.digest) \(.size) layer")' "$W/m.json"
    fi
  done < "$1" | awk '!seen[$2]++' > "$2"
}
sum_bytes() { awk -v k="$2" '$4 == k || (k == "blob" && $4 != "manifest") || k == "all" {s += $3} END {printf "%d", s}' "$1"; }
count_kind() { awk -v k="$2" '$4 == k || (k == "blob" && $4 != "manifest") || k == "all" {n++} END {printf "%d", n}' "$1"; }

# curl lists for a blob file: URLs to fetch into DIR, and uploads out of DIR.
curl_lists() { # curl_lists BLOBS HOST DIR PREFIX
  awk -v h="$2" -v dir="$3" '$4 != "manifest" {d = $2; sub("sha256:", "", d); print dir "/" d, "http://" h "/v2/" $1 "/blobs/" $2}' "$1" > "$4.get"
  awk -v dir="$3" '$4 != "manifest" {d = $2; sub("sha256:", "", d); print $1, $2, dir "/" d}' "$1" > "$4.put"
  get_cfg "$4.get" "$4.get.cfg"
}
# get_cfg LIST.get OUT: a curl config that fetches every "FILE URL" of LIST.
get_cfg() {
  awk 'NR > 1 {print "next"} {printf "url = \"%s\"\noutput = \"%s\"\nsilent\nshow-error\nfail\n", $2, $1}' "$1" > "$2"
}
cat > "$W/push_par.sh" <<'EOF'
#!/usr/bin/env bash
# push_par.sh HOST:PORT LIST MAX: every "REPO DIGEST FILE" of LIST pushed once, by one
# curl --parallel that starts every upload session (POST), then one that sends every
# blob (PUT ?digest=): the fewest processes and round trips a monolithic upload needs.
set -euo pipefail
h="$1" list="$2" max="$3"
d="$(mktemp -d)"
trap 'rm -rf "$d"' EXIT
awk -v h="$h" -v d="$d" 'NR > 1 {print "next"}
  {printf "url = \"http://%s/v2/%s/blobs/uploads/\"\nrequest = \"POST\"\noutput = \"/dev/null\"\ndump-header = \"%s/h%d\"\nsilent\nshow-error\nfail\n", h, $1, d, NR}' "$list" > "$d/post.cfg"
curl --parallel --parallel-max "$max" -K "$d/post.cfg"
n=0
while read -r _repo digest file; do
  n=$((n + 1))
  loc="$(tr -d '\r' < "$d/h$n" | awk 'tolower($1) == "location:" {print $2}')"
  case "$loc" in http*) ;; *) loc="http://$h$loc" ;; esac
  case "$loc" in *\?*) sep='&' ;; *) sep='?' ;; esac
  if [ "$n" -gt 1 ]; then echo next; fi
  printf 'url = "%s%sdigest=%s"\nupload-file = "%s"\nheader = "Content-Type: application/octet-stream"\noutput = "/dev/null"\nsilent\nshow-error\nfail\n' "$loc" "$sep" "$digest" "$file"
done < "$list" > "$d/put.cfg"
curl --parallel --parallel-max "$max" -K "$d/put.cfg"
EOF
# (arrays, not functions: /usr/bin/time runs programs)
CURL_GET=(curl --parallel --parallel-max 8 -K)     # + CONFIG (see get_cfg)
CURL_PUT=(bash "$W/push_par.sh")                  # + HOST LIST MAX

# skopeo sync YAML for a list of references (all on one registry).
sync_yaml() { # sync_yaml LIST OUT
  awk -F'/' 'NR == 1 {print $1 ":"; print "  tls-verify: false"; print "  images:"}' "$1" > "$2"
  sed 's#^[^/]*/##' "$1" | awk -F: '
    { if (!($1 in seen)) { order[++n] = $1; seen[$1] = 1 } tags[$1] = tags[$1] "      - \"" $2 "\"\n" }
    END { for (i = 1; i <= n; i++) printf "    %s:\n%s", order[i], tags[order[i]] }' >> "$2"
}
SKOPEO_SAVE=(skopeo --insecure-policy sync --all --preserve-digests --src yaml --dest dir)            # + YAML DIR
SKOPEO_UPLOAD=(skopeo --insecure-policy sync --all --preserve-digests --src dir --dest docker --dest-tls-verify=false)  # + DIR HOST/NS
bundle_dir_bytes() { du -sb --apparent-size "$(dirname "$1")" | cut -f1; }
tar_bytes() { cat "$(dirname "$1")"/*.tar | wc -c; }

# Every image of LIST has the same manifest digest at DST (with NS prefix) as at its source.
check_copy() { # check_copy LIST DST NS
  local ref host rest repo tag a b bad=0
  while read -r ref; do
    host="${ref%%/*}" rest="${ref#*/}" repo="${rest%:*}" tag="${rest##*:}"
    a="$(curl -sSfI -H "Accept: $ACCEPT" "http://$host/v2/$repo/manifests/$tag" | tr -d '\r' | awk 'tolower($1) == "docker-content-digest:" {print $2}')"
    b="$(curl -sSfI -H "Accept: $ACCEPT" "http://$2/v2/$3$repo/manifests/$tag" | tr -d '\r' | awk 'tolower($1) == "docker-content-digest:" {print $2}')" || true
    [ -n "$a" ] && [ "$a" = "$b" ] || { echo "bench: $ref is not at $2/$3 with digest $a (got '$b')" >&2; bad=1; }
  done < "$1"
  return $bad
}

# ---------------------------------------------------------------------------
# 1. Corpus
log "workdir $W"
new_registry src
SRC="$REG" SRCDIR="$REGDIR"
log "source registry $SRC; building the corpus (4 copies of ~300 MiB, a 1 GiB-layer image, the slow-link corpus, 301 small images)"
tc0="$(date +%s)"
scripts/bench-corpus.sh "$SRC" "$W/corpus" 0 > "$W/copy0.lst"
tc1="$(date +%s)"
for k in 1 2 3; do scripts/bench-corpus.sh "$SRC" "$W/corpus" "$k" > "$W/copy$k.lst"; done
scripts/bench-corpus.sh "$SRC" "$W/corpus" huge > "$W/huge.lst"
scripts/bench-corpus.sh "$SRC" "$W/corpus" slow > "$W/slow.lst"
scripts/bench-corpus.sh "$SRC" "$W/corpus" small > "$W/small.lst"
tc2="$(date +%s)"
rm -rf "$W/corpus"
log "corpus pushed: copy 0 in $((tc1 - tc0))s, all in $((tc2 - tc0))s"
cp "$W/copy0.lst" "$W/s1.lst"
cat "$W/copy0.lst" "$W/copy1.lst" > "$W/s2.lst"
cat "$W/copy"{0,1,2,3}.lst > "$W/s4.lst"
for s in s1 s2 s4 huge slow; do blobs_of "$W/$s.lst" "$W/$s.blobs"; done
sync_yaml "$W/s1.lst" "$W/s1.yaml"
sync_yaml "$W/huge.lst" "$W/huge.yaml"
sync_yaml "$W/small.lst" "$W/small.yaml"
n_images="$(wc -l < "$W/s1.lst")"
u_blob="$(sum_bytes "$W/s1.blobs" blob)"
u_all="$(sum_bytes "$W/s1.blobs" all)"
n_layers="$(count_kind "$W/s1.blobs" layer)"
n_configs="$(count_kind "$W/s1.blobs" config)"
n_manifests="$(count_kind "$W/s1.blobs" manifest)"
largest="$(awk '$4 == "layer" && $3 > m {m = $3} END {print m}' "$W/s1.blobs")"
log "1x corpus: $n_images references, $n_layers layers + $n_configs configs = $u_blob bytes, $n_manifests manifests; largest layer $largest"
# Warm the page cache for the source registry's blobs so every tool reads from memory.
find "$SRCDIR/storage" -type f -name data -exec cat {} + > /dev/null

# ---------------------------------------------------------------------------
# 2. save: ferry vs skopeo sync vs curl (alternating, RUNS each)
mkdir -p "$W/save"
curl_lists "$W/s1.blobs" "$SRC" "$W/save/curl" "$W/s1"
for run in $(seq 1 "$RUNS"); do
  for tool in $(rotate $((run - 1)) ferry skopeo ferry-j4 curl old); do
    rm -rf "$W/save/$tool"
    case "$tool" in
      ferry)
        timed save.ferry "$SRCDIR" "$ferry" save -q --list "$W/s1.lst" --out "$W/save/ferry" --files 4 --jobs 8
        META1="$(tail -1 "$W/cmd.out")"
        echo "$(bundle_dir_bytes "$META1") $(tar_bytes "$META1")" >> "$W/bundle.bytes"
        ;;
      ferry-j4) timed save.ferry.j4 "$SRCDIR" "$ferry" save -q --list "$W/s1.lst" --out "$W/save/ferry-j4" --files 4 --jobs 4 ;;
      skopeo) timed save.skopeo "$SRCDIR" "${SKOPEO_SAVE[@]}" "$W/s1.yaml" "$W/save/skopeo" ;;
      curl) mkdir -p "$W/save/curl"; timed save.curl "$SRCDIR" "${CURL_GET[@]}" "$W/s1.get.cfg" ;;
      old)
        timed old.save "$SRCDIR" "$old" save -q --list "$W/s1.lst" --out "$W/save/old" --files 4 --jobs 8
        OMETA1="$(tail -1 "$W/cmd.out")"
        ;;
    esac
  done
done
rm -rf "$W/save/ferry-j4"
# Where ferry's save time goes (one extra run under strace, not in the medians):
# planning (start to the data files' creation), downloads (to the first fsync), and
# finishing (fsync + sha256 of every data file for the meta, to the renames).
save_phases() { # save_phases LIST OUT: prints "plan download finish" in seconds, or "n/a n/a n/a"
  if command -v strace > /dev/null 2>&1 &&
    strace -f -ttt -e trace=openat,fsync,rename -o "$W/phases.strace" "$ferry" save -q --list "$1" --out "$2" --files 4 --jobs 8 > /dev/null 2>&1; then
    awk 'NR == 1 {s = $2} /tar\.partial/ && !p {p = $2} /fsync\(/ && !f {f = $2} /rename\(/ && !r {r = $2}
      END {if (p && f && r) printf "%.2f %.2f %.2f\n", p - s, f - p, r - f; else print "n/a n/a n/a"}' "$W/phases.strace"
  else
    echo "n/a n/a n/a"
  fi
  rm -rf "$2"
}
sync
read -r ph1_plan ph1_dl ph1_fin < <(save_phases "$W/s1.lst" "$W/save/phases")
skopeo_bytes="$(du -sb --apparent-size "$W/save/skopeo" | cut -f1)"
curl_bytes="$(du -sb --apparent-size "$W/save/curl" | cut -f1)"
"$ferry" verify "$META1" > /dev/null 2>&1 || { echo "bench: ferry verify failed on the saved bundle" >&2; exit 1; }

# ---------------------------------------------------------------------------
# 3. upload: ferry vs skopeo sync vs curl, each into a fresh empty registry
for run in $(seq 1 "$RUNS"); do
  for tool in $(rotate $((run - 1)) ferry skopeo ferry-j4 curl old); do
    new_registry "up-$tool"
    case "$tool" in
      ferry-j4) timed upload.ferry.j4 "$REGDIR" "$ferry" upload -q "$META1" --dst "$REG" --jobs 4 ;;
      ferry)
        timed upload.ferry "$REGDIR" "$ferry" upload -q "$META1" --dst "$REG"
        if [ "$run" -eq 1 ]; then check_copy "$W/s1.lst" "$REG" ""; fi
        ;;
      skopeo) timed upload.skopeo "$REGDIR" "${SKOPEO_UPLOAD[@]}" "$W/save/skopeo" "$REG/bench" ;;
      curl) timed upload.curl "$REGDIR" "${CURL_PUT[@]}" "$REG" "$W/s1.put" 8 ;;
      old) timed old.upload "$REGDIR" "$old" upload -q "$OMETA1" --dst "$REG" ;;
    esac
    drop_registry "$REGDIR"
  done
done
# ferry upload --verify size once, to separate the verify pass from the push.
new_registry up-size
timed upload.ferry.size "$REGDIR" "$ferry" upload -q "$META1" --dst "$REG" --verify size
drop_registry "$REGDIR"
timed verify.ferry "$SRCDIR" "$ferry" verify "$META1"
timed old.verify "$SRCDIR" "$old" verify "$OMETA1"
rm -rf "$W/save"

# ---------------------------------------------------------------------------
# 4. One image with a 1 GiB layer: save against one curl download of it, upload
# against one `curl -T`; memory must stay flat. (Alternating, RUNS each.)
huge_bytes="$(sum_bytes "$W/huge.blobs" blob)"
mkdir -p "$W/huge"
curl_lists "$W/huge.blobs" "$SRC" "$W/huge/curl" "$W/huge"
for run in $(seq 1 "$RUNS"); do
  for tool in $(rotate $((run - 1)) ferry skopeo curl old); do
    rm -rf "$W/huge/$tool"
    case "$tool" in
      ferry)
        timed huge.save.ferry "$SRCDIR" "$ferry" save -q --list "$W/huge.lst" --out "$W/huge/ferry" --files 4 --jobs 8
        HMETA="$(tail -1 "$W/cmd.out")"
        ;;
      skopeo) timed huge.save.skopeo "$SRCDIR" "${SKOPEO_SAVE[@]}" "$W/huge.yaml" "$W/huge/skopeo" ;;
      curl) mkdir -p "$W/huge/curl"; timed huge.save.curl "$SRCDIR" "${CURL_GET[@]}" "$W/huge.get.cfg" ;;
      old)
        timed old.huge.save "$SRCDIR" "$old" save -q --list "$W/huge.lst" --out "$W/huge/old" --files 4 --jobs 8
        OHMETA="$(tail -1 "$W/cmd.out")"
        ;;
    esac
  done
done
timed huge.verify.ferry "$SRCDIR" "$ferry" verify "$HMETA"
sync
read -r phh_plan phh_dl phh_fin < <(save_phases "$W/huge.lst" "$W/huge/phases")
for run in $(seq 1 "$RUNS"); do
  for tool in $(rotate $((run - 1)) ferry skopeo curl old); do
    new_registry "huge-$tool"
    case "$tool" in
      ferry)
        timed huge.upload.ferry "$REGDIR" "$ferry" upload -q "$HMETA" --dst "$REG"
        if [ "$run" -eq 1 ]; then check_copy "$W/huge.lst" "$REG" ""; fi
        ;;
      skopeo) timed huge.upload.skopeo "$REGDIR" "${SKOPEO_UPLOAD[@]}" "$W/huge/skopeo" "$REG/bench" ;;
      curl) timed huge.upload.curl "$REGDIR" "${CURL_PUT[@]}" "$REG" "$W/huge.put" 8 ;;
      old) timed old.huge.upload "$REGDIR" "$old" upload -q "$OHMETA" --dst "$REG" ;;
    esac
    drop_registry "$REGDIR"
  done
done
rm -rf "$W/huge"

# ---------------------------------------------------------------------------
# 4b. Slow links: RTT_MS more on every round trip (a delaying proxy in front of
# each registry; a new connection costs one more). The test corpus's shape: 7
# references, ~60 small blobs, where round trips, not bytes, are the cost.
# start_delay UPSTREAM: starts a delay proxy in front of UPSTREAM; sets DP (its
# host:port) and DPPID.
start_delay() {
  rm -f "$W/dp.out"
  "$delay_proxy" "$1" "$RTT_MS" > "$W/dp.out" &
  DPPID=$!
  bg+=("$DPPID")
  local i
  for i in $(seq 1 100); do
    [ -s "$W/dp.out" ] && break
    sleep 0.05
  done
  DP="$(head -1 "$W/dp.out")"
}
start_delay "$SRC"
PSRC="$DP"
sed "s#^$SRC/#$PSRC/#" "$W/slow.lst" > "$W/pslow.lst"
sync_yaml "$W/pslow.lst" "$W/pslow.yaml"
mkdir -p "$W/slow"
curl_lists "$W/slow.blobs" "$PSRC" "$W/slow/curl" "$W/pslow"
CURL_GET_WIDE=(curl --parallel --parallel-max 64 -K)
SKOPEO_SYNC=(skopeo --insecure-policy sync --all --preserve-digests --src yaml --dest docker --dest-tls-verify=false)  # + YAML HOST/NS
for run in $(seq 1 "$RUNS"); do
  for tool in $(rotate $((run - 1)) ferry skopeo curl old); do
    rm -rf "$W/slow/$tool"
    case "$tool" in
      ferry)
        timed slow.save.ferry "$SRCDIR" "$ferry" save -q --list "$W/pslow.lst" --out "$W/slow/ferry"
        SLMETA="$(tail -1 "$W/cmd.out")"
        ;;
      skopeo) timed slow.save.skopeo "$SRCDIR" "${SKOPEO_SAVE[@]}" "$W/pslow.yaml" "$W/slow/skopeo" ;;
      curl) mkdir -p "$W/slow/curl"; timed slow.save.curl "$SRCDIR" "${CURL_GET_WIDE[@]}" "$W/pslow.get.cfg" ;;
      old)
        timed old.slow.save "$SRCDIR" "$old" save -q --list "$W/pslow.lst" --out "$W/slow/old"
        OSLMETA="$(tail -1 "$W/cmd.out")"
        ;;
    esac
  done
done
for run in $(seq 1 "$RUNS"); do
  for tool in $(rotate $((run - 1)) ferry skopeo curl old); do
    new_registry "slow-up-$tool"
    start_delay "$REG"
    case "$tool" in
      ferry)
        timed slow.upload.ferry "$REGDIR" "$ferry" upload -q "$SLMETA" --dst "$DP"
        if [ "$run" -eq 1 ]; then check_copy "$W/slow.lst" "$REG" ""; fi
        ;;
      skopeo) timed slow.upload.skopeo "$REGDIR" "${SKOPEO_UPLOAD[@]}" "$W/slow/skopeo" "$DP/bench" ;;
      curl) timed slow.upload.curl "$REGDIR" "${CURL_PUT[@]}" "$DP" "$W/pslow.put" 64 ;;
      old) timed old.slow.upload "$REGDIR" "$old" upload -q "$OSLMETA" --dst "$DP" ;;
    esac
    kill "$DPPID" 2>/dev/null || true
    drop_registry "$REGDIR"
  done
done
for run in $(seq 1 "$RUNS"); do
  for tool in $(rotate $((run - 1)) ferry skopeo old); do
    new_registry "slow-sync-$tool"
    start_delay "$REG"
    case "$tool" in
      ferry)
        timed slow.sync.ferry "$REGDIR" "$ferry" sync -q --list "$W/pslow.lst" --dst "$DP"
        if [ "$run" -eq 1 ]; then check_copy "$W/slow.lst" "$REG" ""; fi
        ;;
      skopeo) timed slow.sync.skopeo "$REGDIR" "${SKOPEO_SYNC[@]}" "$W/pslow.yaml" "$DP/bench" ;;
      old) timed old.slow.sync "$REGDIR" "$old" sync -q --list "$W/pslow.lst" --dst "$DP" ;;
    esac
    kill "$DPPID" 2>/dev/null || true
    drop_registry "$REGDIR"
  done
done
rm -rf "$W/slow"

# ---------------------------------------------------------------------------
# 4c. 301 small images (one 4 KiB layer each): the fixed cost of an image.
# skopeo takes about a minute a run: one run of it, RUNS of ferry.
mkdir -p "$W/small"
for run in $(seq 1 "$RUNS"); do
  for tool in $(rotate $((run - 1)) ferry skopeo old); do
    [ "$tool" = skopeo ] && [ "$run" -gt 1 ] && continue
    rm -rf "$W/small/$tool"
    case "$tool" in
      ferry)
        timed small.save.ferry "$SRCDIR" "$ferry" save -q --list "$W/small.lst" --out "$W/small/ferry"
        SMMETA="$(tail -1 "$W/cmd.out")"
        ;;
      skopeo) timed small.save.skopeo "$SRCDIR" "${SKOPEO_SAVE[@]}" "$W/small.yaml" "$W/small/skopeo" ;;
      old)
        timed old.small.save "$SRCDIR" "$old" save -q --list "$W/small.lst" --out "$W/small/old"
        OSMMETA="$(tail -1 "$W/cmd.out")"
        ;;
    esac
  done
done
for run in $(seq 1 "$RUNS"); do
  for tool in $(rotate $((run - 1)) ferry skopeo old); do
    [ "$tool" = skopeo ] && [ "$run" -gt 1 ] && continue
    new_registry "small-$tool"
    case "$tool" in
      ferry) timed small.upload.ferry "$REGDIR" "$ferry" upload -q "$SMMETA" --dst "$REG" ;;
      skopeo) timed small.upload.skopeo "$REGDIR" "${SKOPEO_UPLOAD[@]}" "$W/small/skopeo" "$REG/bench" ;;
      old) timed old.small.upload "$REGDIR" "$old" upload -q "$OSMMETA" --dst "$REG" ;;
    esac
    drop_registry "$REGDIR"
  done
done
rm -rf "$W/small"

# ---------------------------------------------------------------------------
# 5. Scaling: 1x, 2x, 4x the corpus (different bytes in each copy), ferry and curl.
for s in 1 2 4; do
  mkdir -p "$W/scale"
  timed "scale$s.save.ferry" "$SRCDIR" "$ferry" save -q --list "$W/s$s.lst" --out "$W/scale/ferry" --files 4 --jobs 8
  SMETA="$(tail -1 "$W/cmd.out")"
  echo "$s $(bundle_dir_bytes "$SMETA")" >> "$W/scale.bytes"
  curl_lists "$W/s$s.blobs" "$SRC" "$W/scale/curl" "$W/scale$s"
  mkdir -p "$W/scale/curl"
  timed "scale$s.save.curl" "$SRCDIR" "${CURL_GET[@]}" "$W/scale$s.get.cfg"
  new_registry "scale-ferry"
  timed "scale$s.upload.ferry" "$REGDIR" "$ferry" upload -q "$SMETA" --dst "$REG"
  drop_registry "$REGDIR"
  new_registry "scale-curl"
  timed "scale$s.upload.curl" "$REGDIR" "${CURL_PUT[@]}" "$REG" "$W/scale$s.put" 8
  drop_registry "$REGDIR"
  rm -rf "$W/scale"
done

# ---------------------------------------------------------------------------
# 6. Planning an increment against a meta of 20,000 blobs.
TINY="$(grep '/tiny/hello:' "$W/s1.lst" | head -1)"
echo "$TINY" > "$W/tiny.lst"
blobs_of "$W/tiny.lst" "$W/tiny.blobs"
BIG="$W/inc/big_meta.yaml"
mkdir -p "$W/inc"
# 1,000 images, each a manifest + config + 18 layers = 20,000 blob records; the
# tiny image's config and layer are among them, so the increment skips both.
awk -v nimg=1000 -v realfile="$W/tiny.blobs" '
  function hx(i, salt,   s, j) {
    s = ""
    for (j = 1; j <= 8; j++) s = s sprintf("%08x", (i * (2654435 + 7919 * j) + salt * 104729 + j * 97) % 2147483648)
    return s
  }
  BEGIN {
    while ((getline line < realfile) > 0) { split(line, f, " "); if (f[4] != "manifest") { nreal++; rrepo[nreal] = f[1]; rdig[nreal] = f[2]; rsize[nreal] = f[3]; rkind[nreal] = f[4] } }
    name = "img_full_202601010000"
    print "format: ferry-bundle"; print "version: 1"; print "tool: ferry 0.1.0"
    print "created: \"2026-01-01T00:00:00+00:00\""; print "name: " name; print "kind: full"
    print "bases: []"; print "platforms: []"; print "files:"
    for (df = 1; df <= 4; df++) printf "- name: %s_%d.tar\n  size: 53687091200\n  sha256: %s\n  blobs: 5000\n", name, df, hx(df, 9)
    print "images:"
    for (i = 1; i <= nimg; i++)
      printf "- reference: registry.example.com/synthetic/app-%d:1.0\n  registry: registry.example.com\n  repository: synthetic/app-%d\n  tag: \"1.0\"\n  digest: sha256:%s\n  media_type: application/vnd.oci.image.manifest.v1+json\n", i, i, hx(i, 1)
    print "blobs:"
    n = 0
    for (i = 1; i <= nimg; i++) {
      repo = "synthetic/app-" i
      printf "- digest: sha256:%s\n  size: %d\n  kind: manifest\n  file: %s_%d.tar\n  repository: %s\n", hx(i, 1), 800 + i % 500, name, 1 + i % 4, repo; n++
      printf "- digest: sha256:%s\n  size: %d\n  kind: config\n  file: %s_%d.tar\n  repository: %s\n", hx(i, 2), 1500 + i % 700, name, 1 + i % 4, repo; n++
      for (l = 1; l <= 18; l++) {
        if (i == 1 && l <= nreal) { dg = rdig[l]; sz = rsize[l]; kd = rkind[l]; rp = rrepo[l] }
        else { dg = "sha256:" hx(i * 100 + l, 3); sz = 1000000 + (i * 37 + l * 101) % 50000000; kd = "layer"; rp = repo }
        printf "- digest: %s\n  size: %d\n  kind: %s\n  file: %s_%d.tar\n  repository: %s\n", dg, sz, kd, name, 1 + (i + l) % 4, rp; n++
      }
    }
    print "failed: []"
  }' > "$BIG"
big_blobs="$(grep -c '^- digest:' "$BIG")"
big_size="$(stat -c %s "$BIG")"
for run in $(seq 1 5); do
  rm -rf "$W/inc/out"
  timed inc.with "$SRCDIR" "$ferry" save -q --inc "$BIG" --out "$W/inc/out" "$TINY"
  IMETA="$(tail -1 "$W/cmd.out")"
  rm -rf "$W/inc/out"
  timed inc.without "$SRCDIR" "$ferry" save -q --out "$W/inc/out" "$TINY"
done
rm -rf "$W/inc/out"
"$ferry" save -q --inc "$BIG" --out "$W/inc/out" "$TINY" > "$W/inc/meta.path" 2> /dev/null
IMETA="$(cat "$W/inc/meta.path")"
inc_kind="$(awk '/^kind:/ {print $2}' "$IMETA")"
inc_skipped="$(grep -c '^  base: ' "$IMETA" || true)"
inc_tar="$(tar_bytes "$IMETA")"
# Split: from opening the base meta to the first connection to the registry (the
# base is loaded and indexed before any reference is resolved).
split_ms="n/a"
if command -v strace >/dev/null 2>&1; then
  rm -rf "$W/inc/out"
  if strace -f -ttt -e trace=openat,connect -o "$W/inc/strace" "$ferry" save -q --inc "$BIG" --out "$W/inc/out" "$TINY" > /dev/null 2>&1; then
    split_ms="$(awk -v big="$BIG" '
      index($0, "openat(") && index($0, big) && !t0 {t0 = $2}
      t0 && / connect\(/ && /AF_INET/ && !t1 {t1 = $2}
      END {if (t0 && t1) printf "%.0f", (t1 - t0) * 1000; else print "n/a"}' "$W/inc/strace")"
    start_ms="$(awk -v big="$BIG" 'NR == 1 {s = $2} index($0, "openat(") && index($0, big) && !t0 {t0 = $2} END {printf "%.0f", (t0 - s) * 1000}' "$W/inc/strace")"
  fi
fi
rm -rf "$W/inc/out"

# ---------------------------------------------------------------------------
# 7. Report
log "writing BENCHMARKS.md"
med() { pick "$1" "$2"; }
mib() { calc "%.1f" "$1 / 1048576"; }
sec() { calc "%.2f" "$1"; }
ratio() { calc "%.2f" "$1 / $2"; }

sf="$(med save.ferry 2)" ss="$(med save.skopeo 2)" sc="$(med save.curl 2)"
uf="$(med upload.ferry 2)" us="$(med upload.skopeo 2)" uc="$(med upload.curl 2)"
ufs="$(med upload.ferry.size 2)" vf="$(med verify.ferry 2)"
rss_sf="$(pick save.ferry 3 max)" rss_ss="$(pick save.skopeo 3 max)"
rss_uf="$(pick upload.ferry 3 max)" rss_us="$(pick upload.skopeo 3 max)"
rss_hsf="$(pick huge.save.ferry 3 max)" rss_huf="$(pick huge.upload.ferry 3 max)"
rss_hss="$(pick huge.save.skopeo 3 max)" rss_hus="$(pick huge.upload.skopeo 3 max)"
read -r bundle_all bundle_tars < <(tail -1 "$W/bundle.bytes")
bundle_over="$(calc "%.3f" "($bundle_all / $u_all - 1) * 100")"
inc_with="$(calc "%.0f" "$(med inc.with 2) * 1000")"
inc_without="$(calc "%.0f" "$(med inc.without 2) * 1000")"
inc_delta=$((inc_with - inc_without))
rss_inc="$(pick inc.with 3 max)"
hsf="$(med huge.save.ferry 2)" hsc="$(med huge.save.curl 2)" hss="$(med huge.save.skopeo 2)"
huf="$(med huge.upload.ferry 2)" huc="$(med huge.upload.curl 2)" hus="$(med huge.upload.skopeo 2)"
lsf="$(med slow.save.ferry 2)" lss="$(med slow.save.skopeo 2)"
luf="$(med slow.upload.ferry 2)" lus="$(med slow.upload.skopeo 2)"
lyf="$(med slow.sync.ferry 2)" lys="$(med slow.sync.skopeo 2)"
# nan-safe numbers for the report: a missing row (an old binary that failed) says n/a.
num() { awk -v v="$1" 'BEGIN {if (v == "nan" || v == "") print "n/a"; else printf "%.2f", v}'; }
rat() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "nan" || b == "nan" || b == 0) print "n/a"; else printf "%.2f×", a / b}'; }
verdict_na() { awk -v a="$1" -v b="$2" -v m="$3" 'BEGIN {if (a == "nan" || b == "nan") print "n/a"; else print (a <= b * m) ? "PASS" : "MISS"}'; }
# lrow NAME SAVE UPLOAD SYNC: a slow-link row (labels; "-" for none)
lrow() {
  local out="| $1 |" l
  for l in "$2" "$3" "$4"; do
    if [ "$l" = - ]; then out+=" – |"; else out+=" $(num "$(med "$l" 2)") |"; fi
  done
  echo "$out"
}
# orow WHAT NEW OLD: a row of the comparison with the release before the engine refactor
orow() {
  local n o
  n="$(med "$2" 2)" o="$(med "$3" 2)"
  echo "| $1 | $(num "$n") | $(num "$o") | $(rat "$n" "$o") | $(verdict_na "$n" "$o" 1.05) |"
}
row() { # row NAME LABEL
  local w rss="–"
  w="$(med "$2" 2)"
  case "$1" in curl*) ;; *) rss="$(calc "%.1f" "$(pick "$2" 3 max) / 1024") MiB" ;; esac
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$(sec "$w")" "$(sec "$(pick "$2" 2 min)")" "$(calc "%.0f" "$u_blob / 1048576 / $w")" \
    "$(calc "%.2f" "$(med "$2" 4) + $(med "$2" 5)")" "$(med "$2" 6)" "$(sec "$(med "$2" 7)")" "$rss" "$(med "$2" 8)"
}
hrow() { # hrow NAME LABEL
  local w rss="–"
  w="$(med "$2" 2)"
  case "$1" in curl*) ;; *) rss="$(calc "%.1f" "$(pick "$2" 3 max) / 1024") MiB" ;; esac
  printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$(sec "$w")" "$(calc "%.0f" "$huge_bytes / 1048576 / $w")" \
    "$(calc "%.2f" "$(med "$2" 4) + $(med "$2" 5)")" "$(med "$2" 6)" "$(sec "$(med "$2" 7)")" "$rss" "$(med "$2" 8)"
}
noise="$(awk '{w += $2; o += $8} END {printf "%.2f", (w > 0 ? o / w : 0)}' "$W/results")"
noise_note=""
if awk -v n="$noise" 'BEGIN {exit !(n > 0.25)}'; then
  noise_note="
> **Noisy machine:** other processes used on average $noise cores (of $(nproc)) while the runs were timed
> (column *other CPU s*). Absolute times are pessimistic and ratios less reliable than on a quiet machine."
fi
cpu_model="$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
mem_total="$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
fs_type="$(df -T "$W" | awk 'NR == 2 {print $2 " on " $1}')"
tend="$(date +%s)"

{
cat <<EOF
# ferry benchmarks

Produced by \`bash scripts/bench.sh\` on $(date -u +%Y-%m-%d) in $(((tend - T0) / 60)) min $(((tend - T0) % 60)) s ($RUNS runs of each tool, alternating; medians shown).
Targets are reported, not asserted: **PASS** / **MISS**.
$noise_note

## Machine and versions

| | |
|---|---|
| CPU | $cpu_model, $(nproc) cores ($(grep -q sha_ni /proc/cpuinfo && echo "SHA-NI" || echo "no SHA-NI")) |
| Memory | $mem_total |
| Kernel | $(uname -sr) |
| Disk for bundles and registries | $fs_type (\`$W\`) |
| ferry | $("$ferry" --version) (release build of commit $(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)) |
| skopeo | $(skopeo --version | awk '{print $3}') |
| docker-registry | $(docker-registry --version | awk '{print $NF}') (filesystem storage, plain HTTP on loopback) |
| curl | $(curl --version | head -1 | awk '{print $2}') |

## Corpus

Built by \`scripts/bench-corpus.sh\` (gzip'd tars of incompressible pseudo-random bytes,
pushed with \`skopeo copy --all --preserve-digests dir:…\`) into one local docker-registry,
in $((tc1 - tc0)) s for the 1× corpus and $((tc2 - tc0)) s for everything (4 copies + the 1 GiB image).

- **1× corpus: $n_images image references, $n_layers layers + $n_configs configs = $u_blob bytes ($(mib "$u_blob") MiB) of unique blobs,
  $n_manifests manifests ($(sum_bytes "$W/s1.blobs" manifest) bytes).**
- \`big/model:1.0\` (docker v2s2): shared base-os layer + one $(mib "$largest") MiB layer.
- \`apps/svc-00..15:1.0\` (alternately docker v2s2 and OCI): base-os (24 MiB) + base-runtime (16 MiB) or
  base-tools (8 MiB), shared, + an own layer of 2–10 MiB; \`apps/svc-00:latest\` is a second tag.
- \`multi/oci-index:v1\`: OCI index, linux/amd64 + linux/arm64. \`multi/docker-list:v1\`: docker manifest
  list, linux/amd64 + linux/arm64/v8 (the arm64 children share an arm-base layer).
- \`many/layers:40\`: OCI image with 40 layers of 512 KiB. \`tiny/hello:1.0\`: one 64 KiB layer.
- Scaling copies 2×/4× repeat the corpus under \`c1/\`…\`c3/\` with different bytes.
- \`huge/one-gib:1.0\`: a 4 MiB base + one 1 GiB layer ($(mib "$huge_bytes") MiB).
- Slow-link corpus (\`slow/...\`): the integration tests' shape, 7 references (a docker v2s2 image with a
  1 MiB layer, an OCI image, an OCI index and a docker list of two platforms, two tags of one image, 42
  layers of 1.5 KiB), shared base layers.
- 301 small images (\`small/img-000..300:1.0\`): one 4 KiB layer and a config each.

## How each tool is run

- **ferry save**: \`ferry save -q --list LIST --out DIR --files 4 --jobs 8\` (all $n_images references).
- **skopeo save**: \`skopeo sync --all --preserve-digests --src yaml --dest dir\` with the same images (\`tls-verify: false\`).
- **curl limit (save)**: every unique config and layer fetched once by one process,
  \`curl --parallel --parallel-max 8 -K CONFIG\` (the URL list is read from the registry's manifests
  beforehand, not timed).
- **ferry upload**: \`ferry upload -q META --dst HOST:PORT\` (default \`--verify full\`, \`--jobs 8\`), into a fresh empty registry each run.
- **skopeo upload**: \`skopeo sync --all --preserve-digests --src dir --dest docker\` of skopeo's own copy, into a fresh empty registry.
- **curl limit (upload)**: every unique config and layer pushed once: one \`curl --parallel\` starts every
  upload session (POST \`/v2/<repo>/blobs/uploads/\`), one more sends every blob (PUT \`?digest=\`), 8 at a
  time, no manifests, no mounts, into a fresh empty registry.
- **old ferry**: the release build of $OLD_COMMIT (the last commit before the engine refactor, #15),
  the same command lines; it uploads the bundle it saved itself.
- Every run starts with \`sync\` and a warm page cache for the source registry. \`flush\` is the time of the
  \`sync\` right after the run (not counted): dirty pages the tool left for the kernel to write. ferry
  fsyncs its data files before writing the meta; skopeo and curl do not.
- CPU = user + sys of the tool; registry CPU = user + sys of the docker-registry process during the run
  (both compete for the same $(nproc) cores). other CPU = what the rest of the machine used meanwhile
  (noise: near 0 on a quiet machine; a run with several seconds of it was disturbed).

## Results (1× corpus, $(mib "$u_blob") MiB unique)

### save

| tool | wall s | best s | MiB/s | CPU s | registry CPU s | flush s | peak RSS | other CPU s |
|---|---|---|---|---|---|---|---|---|
$(row "ferry save" save.ferry)
$(row "ferry save --jobs 4" save.ferry.j4)
$(row "skopeo sync → dir" save.skopeo)
$(row "curl --parallel (limit)" save.curl)
$(row "old ferry save ($OLD_COMMIT)" old.save)

ferry save phases (one extra run under strace): planning $ph1_plan s, downloads $ph1_dl s,
finishing (fsync + sha256 of each data file for the meta) $ph1_fin s.

### upload

| tool | wall s | best s | MiB/s | CPU s | registry CPU s | flush s | peak RSS | other CPU s |
|---|---|---|---|---|---|---|---|---|
$(row "ferry upload (--verify full)" upload.ferry)
$(row "ferry upload --jobs 4" upload.ferry.j4)
$(row "ferry upload --verify size" upload.ferry.size)
$(row "skopeo sync dir → docker" upload.skopeo)
$(row "curl --parallel (limit)" upload.curl)
$(row "old ferry upload ($OLD_COMMIT)" old.upload)
$(row "ferry verify (full, alone)" verify.ferry)
$(row "old ferry verify ($OLD_COMMIT)" old.verify)

### Targets

| measure | value | target | |
|---|---|---|---|
| save: ferry / curl limit | $(ratio "$sf" "$sc")× (best runs: $(ratio "$(pick save.ferry 2 min)" "$(pick save.curl 2 min)")×) | ≤ 1.15× | $(verdict "$sf / $sc <= 1.15") |
| save: ferry / skopeo | $(ratio "$sf" "$ss")× (best runs: $(ratio "$(pick save.ferry 2 min)" "$(pick save.skopeo 2 min)")×) | ≤ 0.35× | $(verdict "$sf / $ss <= 0.35") |
| upload: ferry / curl limit | $(ratio "$uf" "$uc")× (best runs: $(ratio "$(pick upload.ferry 2 min)" "$(pick upload.curl 2 min)")×) | ≤ 1.2× | $(verdict "$uf / $uc <= 1.2") |
| upload: ferry / skopeo | $(ratio "$uf" "$us")× (best runs: $(ratio "$(pick upload.ferry 2 min)" "$(pick upload.skopeo 2 min)")×) | ≤ 0.7× | $(verdict "$uf / $us <= 0.7") |
| peak RSS, ferry save | $(calc "%.1f" "$rss_sf / 1024") MiB (skopeo $(calc "%.1f" "$rss_ss / 1024") MiB) | < 64 MiB | $(verdict "$rss_sf < 65536") |
| peak RSS, ferry upload | $(calc "%.1f" "$rss_uf / 1024") MiB (skopeo $(calc "%.1f" "$rss_us / 1024") MiB) | < 64 MiB | $(verdict "$rss_uf < 65536") |
| peak RSS, ferry save, 1 GiB layer | $(calc "%.1f" "$rss_hsf / 1024") MiB (skopeo $(calc "%.1f" "$rss_hss / 1024") MiB) | < 64 MiB | $(verdict "$rss_hsf < 65536") |
| peak RSS, ferry upload, 1 GiB layer | $(calc "%.1f" "$rss_huf / 1024") MiB (skopeo $(calc "%.1f" "$rss_hus / 1024") MiB) | < 64 MiB | $(verdict "$rss_huf < 65536") |
| bundle bytes / unique bytes | $bundle_all / $u_all (+$bundle_over %) | within 1 % | $(verdict "$bundle_all <= $u_all * 1.01 && $bundle_all >= $u_all * 0.99") |
| increment planning, 20,000-blob base | $inc_delta ms over a plain save (total $inc_with ms) | ≤ 50 ms | $(verdict "$inc_delta <= 50") |
| 1 GiB layer: save / one curl download | $(rat "$hsf" "$hsc") (best runs: $(rat "$(pick huge.save.ferry 2 min)" "$(pick huge.save.curl 2 min)")) | ≤ 1.1× | $(verdict_na "$hsf" "$hsc" 1.1) |
| 1 GiB layer: upload / one curl -T | $(rat "$huf" "$huc") (best runs: $(rat "$(pick huge.upload.ferry 2 min)" "$(pick huge.upload.curl 2 min)")) | ≤ 1.1× | $(verdict_na "$huf" "$huc" 1.1) |
| ${RTT_MS} ms per round trip: save of the test corpus | $(num "$lsf") s (skopeo $(num "$lss") s) | ≤ 1.5 s | $(verdict "$lsf <= 1.5") |
| ${RTT_MS} ms per round trip: upload | $(num "$luf") s (skopeo $(num "$lus") s) | ≤ 2.0 s | $(verdict "$luf <= 2.0") |
| ${RTT_MS} ms per round trip: sync | $(num "$lyf") s (skopeo $(num "$lys") s) | ≤ 2.0 s | $(verdict "$lyf <= 2.0") |

Verdicts use the medians; "best runs" compares the fastest run of each tool (least disturbed by other load).
Peak RSS is the maximum over the runs. Bundle bytes are the whole bundle folder ($bundle_tars bytes of
tar data files + the meta); unique bytes are the unique configs, layers and manifests. For comparison,
skopeo's \`dir\` copy of the same images takes $skopeo_bytes bytes ($(calc "%.2f" "$skopeo_bytes / $u_all")× unique: one
folder per image, shared layers repeated), and curl's blob store $curl_bytes bytes.

## One image with a 1 GiB layer ($(mib "$huge_bytes") MiB)

| tool | wall s | MiB/s | CPU s | registry CPU s | flush s | peak RSS | other CPU s |
|---|---|---|---|---|---|---|---|
$(hrow "ferry save" huge.save.ferry)
$(hrow "skopeo sync → dir" huge.save.skopeo)
$(hrow "curl (limit: one download)" huge.save.curl)
$(hrow "old ferry save ($OLD_COMMIT)" old.huge.save)
$(hrow "ferry verify (full, alone)" huge.verify.ferry)
$(hrow "ferry upload (--verify full)" huge.upload.ferry)
$(hrow "skopeo sync dir → docker" huge.upload.skopeo)
$(hrow "curl (limit: one curl -T)" huge.upload.curl)
$(hrow "old ferry upload ($OLD_COMMIT)" old.huge.upload)

Save: ferry / curl $(rat "$hsf" "$hsc"), ferry / skopeo $(rat "$hsf" "$hss"). Upload: ferry / curl -T $(rat "$huf" "$huc"),
ferry / skopeo $(rat "$huf" "$hus"). ferry hashes each byte once on the way in (as it streams to its data
file) and once on the way out (as it streams out of it); the registry hashes it too, on the same cores.

ferry save phases (strace): planning $phh_plan s, download $phh_dl s, finishing (fsync + sha256 of each data file) $phh_fin s.

## Slow links: ${RTT_MS} ms more on every round trip

A delaying proxy (\`examples/delay_proxy.rs\`) in front of every registry adds ${RTT_MS} ms to each round trip
(half each way, bandwidth unlimited) and one more round trip to each new connection. The corpus has the
integration tests' shape (\`scripts/bench-corpus.sh slow\`: $(wc -l < "$W/slow.lst") references, $(count_kind "$W/slow.blobs" blob) configs
and layers, $(mib "$(sum_bytes "$W/slow.blobs" all)") MiB). Default flags; wall seconds, median of $RUNS.

| tool | save s | upload s | sync s |
|---|---|---|---|
$(lrow "ferry" slow.save.ferry slow.upload.ferry slow.sync.ferry)
$(lrow "skopeo sync" slow.save.skopeo slow.upload.skopeo slow.sync.skopeo)
$(lrow "curl --parallel, 64 at a time (limit: blobs only)" slow.save.curl slow.upload.curl -)
$(lrow "old ferry ($OLD_COMMIT)" old.slow.save old.slow.upload old.slow.sync)

ferry / skopeo: save $(rat "$lsf" "$lss"), upload $(rat "$luf" "$lus"), sync $(rat "$lyf" "$lys").

## 301 small images (one 4 KiB layer each)

| tool | save s | upload s |
|---|---|---|
| ferry | $(num "$(med small.save.ferry 2)") | $(num "$(med small.upload.ferry 2)") |
| skopeo sync (1 run) | $(num "$(med small.save.skopeo 2)") | $(num "$(med small.upload.skopeo 2)") |
| old ferry ($OLD_COMMIT) | $(num "$(med old.small.save 2)") | $(num "$(med old.small.upload 2)") |

## Against the release before the engine refactor ($OLD_COMMIT)

The same commands with the release build of $OLD_COMMIT (#15: no command slower than before by more than 5 %).

| command | now s | before s | now / before | ≤ 1.05× |
|---|---|---|---|---|
$(orow "save, 1× corpus" save.ferry old.save)
$(orow "upload, 1× corpus" upload.ferry old.upload)
$(orow "verify, 1× corpus" verify.ferry old.verify)
$(orow "save, 1 GiB layer" huge.save.ferry old.huge.save)
$(orow "upload, 1 GiB layer" huge.upload.ferry old.huge.upload)
$(orow "save, ${RTT_MS} ms round trips" slow.save.ferry old.slow.save)
$(orow "upload, ${RTT_MS} ms round trips" slow.upload.ferry old.slow.upload)
$(orow "sync, ${RTT_MS} ms round trips" slow.sync.ferry old.slow.sync)
$(orow "save, 301 small images" small.save.ferry old.small.save)
$(orow "upload, 301 small images" small.upload.ferry old.small.upload)

## Scaling (ferry, 1 run each; curl limit alongside)

| corpus | images | unique MiB | save s | save s/GiB | save ms/image | save / curl | upload s | upload s/GiB | upload ms/image | upload / curl | peak RSS save / upload |
|---|---|---|---|---|---|---|---|---|---|---|---|
EOF
for s in 1 2 4; do
  ni="$(wc -l < "$W/s$s.lst")"
  ub="$(sum_bytes "$W/s$s.blobs" all)"
  a="$(med "scale$s.save.ferry" 2)" b="$(med "scale$s.save.curl" 2)"
  c="$(med "scale$s.upload.ferry" 2)" d="$(med "scale$s.upload.curl" 2)"
  printf '| %s× | %s | %s | %s | %s | %s | %s× | %s | %s | %s | %s× | %s / %s MiB |\n' "$s" "$ni" "$(mib "$ub")" \
    "$(sec "$a")" "$(calc "%.2f" "$a / ($ub / 1073741824)")" "$(calc "%.0f" "$a * 1000 / $ni")" "$(ratio "$a" "$b")" \
    "$(sec "$c")" "$(calc "%.2f" "$c / ($ub / 1073741824)")" "$(calc "%.0f" "$c * 1000 / $ni")" "$(ratio "$c" "$d")" \
    "$(calc "%.1f" "$(pick "scale$s.save.ferry" 3 max) / 1024")" "$(calc "%.1f" "$(pick "scale$s.upload.ferry" 3 max) / 1024")"
done
cat <<EOF

## Planning an increment against a 20,000-blob meta

A synthetic full-bundle meta ($big_blobs blob records for 1,000 images, $(calc "%.1f" "$big_size / 1048576") MiB of YAML) that records
\`tiny/hello:1.0\`'s config and layer; then \`ferry save --inc BIG_META tiny/hello:1.0\` (5 runs, median).

| | ms |
|---|---|
| \`ferry save --inc BIG_META\` of the tiny image, total | $inc_with |
| the same save without \`--inc\` | $inc_without |
| cost of the 20,000-blob base (difference) | $inc_delta |
| of which: from opening the base meta to the first registry connection (strace) | $split_ms |
| process start to opening the base meta (strace) | ${start_ms:-n/a} |

The increment came out \`kind: $inc_kind\`, with $inc_skipped blob(s) left to the base and $inc_tar bytes of data files
(manifest only). Peak RSS of the \`--inc\` save: $(calc "%.1f" "$rss_inc / 1024") MiB.

## Raw runs

\`label wall_s maxrss_KiB user_s sys_s registry_cpu_s flush_s other_cpu_s\`

\`\`\`
$(cat "$W/results")
\`\`\`
EOF
} > "$root/BENCHMARKS.md"
log "done in $(((tend - T0) / 60)) min $(((tend - T0) % 60)) s: $root/BENCHMARKS.md"
