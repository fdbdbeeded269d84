#!/usr/bin/env bash
# Quick start, command 1: build the default handlers and serve on 127.0.0.1:8080 with zero
# config (development secret, loudly announced). Extra arguments go to `switchyard serve`.
# Builds the release profile of the whole workspace, the same build `scripts/test.sh` then
# reuses, so wasmtime is compiled once for both commands.
set -euo pipefail
cd "$(dirname "$0")/.."
bash handlers/build.sh
cargo build --release --workspace --bins
exec target/release/switchyard serve "$@"
