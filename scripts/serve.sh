#!/usr/bin/env bash
# Quick start, command 1: build the default handlers and serve on 127.0.0.1:8080 with zero
# config (development secret, loudly announced). Extra arguments go to `switchyard serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || rustup target add wasm32-unknown-unknown
bash handlers/build.sh
exec cargo run --release --bin switchyard -- serve "$@"
