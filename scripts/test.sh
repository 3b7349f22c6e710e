#!/usr/bin/env bash
# Runs ferry's whole test suite: unit tests and the integration tests, which start
# real docker-registry processes on loopback and check results with skopeo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --no-release
cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --all-targets 2>&1
