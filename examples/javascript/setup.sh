#!/usr/bin/env bash
# Installs the JavaScript example toolchain from the npm registry, pinned by package-lock.json:
# componentize-js (SpiderMonkey as a WebAssembly component, pre-initialised with wizer; both
# ship inside their npm packages) and jco (WIT tooling: `jco wit`, `jco types`). Idempotent.
# Nothing is downloaded at build time: build.sh never uses componentize-js's --aot (which
# would fetch weval).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$here/../../scripts/npm-ci.sh" "$here"
