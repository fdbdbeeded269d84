#!/usr/bin/env bash
# Installs what building and testing Switchyard needs, idempotently: the wasm targets, and the
# toolchains of every guest language (C: clang + lld, Zig: PyPI's ziglang, AssemblyScript: npm).
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-unknown-unknown wasm32-wasip1 >/dev/null 2>&1 || rustup target add wasm32-unknown-unknown wasm32-wasip1
for lang in c zig assemblyscript; do
  if [ -x "examples/$lang/setup.sh" ] || [ -f "examples/$lang/setup.sh" ]; then
    bash "examples/$lang/setup.sh"
  fi
done
