#!/usr/bin/env bash
# Coverage-guided fuzzing of ferry's input parsers with AFL++ through cargo-afl
# (works on stable Rust). Not part of the test suite: run it by hand or on a
# schedule. Each target runs SECONDS_PER_TARGET seconds (default 600); targets are
# the folder names under fuzz/targets (meta transmit tar zstd_frames manifest
# reference range), all of them unless named as arguments:
#
#   SECONDS_PER_TARGET=60 bash scripts/fuzz.sh            # every target, 1 min each
#   bash scripts/fuzz.sh meta tar                          # two targets, 10 min each
#
# Findings are left in fuzz/out/<target>/default/crashes (and hangs); the script
# exits 1 when any target found a crash. Reproduce one with
#   fuzz/target/release/<target> < fuzz/out/<target>/default/crashes/<file>
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

SECONDS_PER_TARGET="${SECONDS_PER_TARGET:-600}"
ALL=(meta transmit tar zstd_frames manifest reference range)
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL[@]}"); fi

# cargo-afl and the AFL++ it builds: installed only when missing.
if ! cargo afl --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-afl" >&2
  cargo install --locked cargo-afl
fi
# The AFL++ runtime for this toolchain is built from the source shipped with
# cargo-afl (needs make and a C compiler); it says so and does nothing when built.
cargo afl config --build >/dev/null 2>&1 || true

echo "fuzz: building the targets (instrumented, release, overflow checks on)" >&2
cargo afl build --release --quiet
rm -rf seeds && ./target/release/seeds seeds
mkdir -p out

# A container has no CPU frequency governor to set and may route core dumps
# elsewhere; AFL++ would refuse to start over either.
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1
export AFL_NO_AFFINITY=1 AFL_SKIP_CRASHES=1

found=0
for t in "${TARGETS[@]}"; do
  [ -d "seeds/$t" ] || { echo "fuzz: no target named $t (have: ${ALL[*]})" >&2; exit 2; }
  echo "fuzz: $t for ${SECONDS_PER_TARGET}s" >&2
  # -V: stop after that many seconds; a rerun continues from the findings so far.
  input="seeds/$t"
  [ -d "out/$t/default/queue" ] && input="-"
  cargo afl fuzz -V "$SECONDS_PER_TARGET" -i "$input" -o "out/$t" "target/release/$t" >"out-$t.log" 2>&1 || {
    echo "fuzz: afl-fuzz stopped with an error for $t; see fuzz/out-$t.log" >&2
    tail -20 "out-$t.log" >&2
    exit 1
  }
  crashes=$(find "out/$t/default/crashes" -type f ! -name README.txt 2>/dev/null | wc -l)
  hangs=$(find "out/$t/default/hangs" -type f 2>/dev/null | wc -l)
  execs=$(sed -n 's/^execs_done *: *//p' "out/$t/default/fuzzer_stats" 2>/dev/null || echo "?")
  echo "fuzz: $t: $execs runs, $crashes crashes, $hangs hangs" >&2
  [ "$crashes" -eq 0 ] || found=1
done
exit "$found"
