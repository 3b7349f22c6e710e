#!/usr/bin/env bash
# Installs what ferry's demo and tests need on a fresh Debian machine, only when
# missing, then builds ferry. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v docker-registry >/dev/null 2>&1 || [ -x /usr/bin/docker-registry ] || need+=(docker-registry)
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
# The docker and containerd sinks are tested against real engines, which the tests
# start themselves (private data root and socket): dockerd + the docker CLI, and
# containerd + ctr. Their system services are not needed.
command -v dockerd >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ] || need+=(docker.io)
{ command -v containerd && command -v ctr; } >/dev/null 2>&1 || need+=(containerd)
# curl: the demo's and benchmark's health checks; openssl: the tests' TLS registry
# certificates (and the demo's sample layer bytes).
for tool in curl sha256sum tar gzip openssl; do
  command -v "$tool" >/dev/null 2>&1 || need+=("$([ "$tool" = sha256sum ] && echo coreutils || echo "$tool")")
done
# ssh-keygen: the signing tests make keys and check signatures with OpenSSH itself.
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
# ferry ui's browser tests drive a real headless Chromium through chromedriver; a CJK
# font lets its Chinese screens (and their screenshots) show real characters.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if ! command -v fc-list >/dev/null 2>&1 || [ -z "$(fc-list :lang=zh 2>/dev/null)" ]; then
  need+=(fonts-wqy-microhei)
fi
if [ "${#need[@]}" -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The Debian package starts a registry service on :5000; ferry's demo and tests run
# their own registries on free ports and do not need it.

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is missing; install the Rust toolchain (rustup) first" >&2
  exit 1
fi
# The test suite builds its own (debug) binaries; the demo wants a release build.
if [ "${1:-}" != "--no-release" ]; then
  cargo build --release --quiet
  echo "setup: ok ($(./target/release/ferry --version))" >&2
fi
