#!/usr/bin/env bash
# Quick start, command 2: install every toolchain, build every handler from source, run the
# whole test suite (host, WASM handlers, sandbox, the conformance suite for Rust, C, Zig and
# AssemblyScript), then a few-second benchmark smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash handlers/build.sh
cargo test --workspace --all-targets 2>&1
bash scripts/bench-smoke.sh
