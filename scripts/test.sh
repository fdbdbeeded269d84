#!/usr/bin/env bash
# Quick start, command 2: install every toolchain, build every handler from source, run the
# whole test suite (host, WASM handlers, sandbox, the conformance suite for every guest
# language), then a few-second benchmark smoke run. Uses the release profile that
# `scripts/serve.sh` builds, so the dependencies are compiled once for both.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash handlers/build.sh
cargo test --release --workspace --all-targets 2>&1
PROFILE=release bash scripts/bench-smoke.sh
