#!/usr/bin/env bash
# Builds ferry (release) and installs the binary: PREFIX/bin/ferry, PREFIX defaulting to
# /usr/local when writable, else ~/.local. ferry is one self-contained binary; on a
# machine without a Rust toolchain (the air-gapped side), install a binary built
# elsewhere with --bin.
#   scripts/install.sh [--prefix DIR] [--bin FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=""
bin=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="$2"; shift 2 ;;
    --prefix=*) prefix="${1#*=}"; shift ;;
    --bin) bin="$2"; shift 2 ;;
    --bin=*) bin="${1#*=}"; shift ;;
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$prefix" ]; then
  if [ -w /usr/local/bin ] || { [ ! -e /usr/local/bin ] && [ -w /usr/local ]; }; then
    prefix=/usr/local
  else
    prefix="$HOME/.local"
  fi
fi
if [ -z "$bin" ]; then
  cargo build --release --locked
  bin=target/release/ferry
fi
mkdir -p "$prefix/bin"
install -m 0755 "$bin" "$prefix/bin/ferry"
echo "installed $prefix/bin/ferry ($("$prefix/bin/ferry" --version), $(du -h "$prefix/bin/ferry" | cut -f1))"
case ":$PATH:" in
  *":$prefix/bin:"*) ;;
  *) echo "note: $prefix/bin is not on PATH" >&2 ;;
esac
