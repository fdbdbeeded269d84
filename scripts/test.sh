#!/usr/bin/env bash
# Quick start, command 2: install every toolchain, build every handler from source, run the
# whole test suite (host, WASM handlers, sandbox, cluster with a real redis-server, the
# conformance suite for every guest language, the browser client in a real Chromium, the
# component SDKs' own tests), then a few-second benchmark smoke run. Uses the release profile
# that `scripts/serve.sh` builds, so the dependencies are compiled once for both.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash handlers/build.sh
cargo test --release --workspace --all-targets 2>&1
(cd client && npm test 2>&1)
# The component SDKs and their examples against a fake host, and their generated bindings
# still match wit/.
PYTHONPATH=sdk/python/bindings:sdk/python:examples/python python3 -m unittest discover -s sdk/python/tests 2>&1
node --test sdk/javascript/test/ 2>&1
bash sdk/python/generate-bindings.sh --check
bash sdk/javascript/generate-types.sh --check
node client/test/browser/run.mjs
PROFILE=release bash scripts/bench-smoke.sh
