#!/usr/bin/env bash
# Installs the C example toolchain (clang + wasm-ld) from Debian's packages.
# Idempotent: does nothing when clang and wasm-ld are already on PATH.
set -euo pipefail

if command -v clang >/dev/null 2>&1 && command -v wasm-ld >/dev/null 2>&1; then
  echo "examples/c/setup.sh: clang and wasm-ld already installed"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
$sudo apt-get update
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y clang lld
command -v clang >/dev/null && command -v wasm-ld >/dev/null \
  || { echo "examples/c/setup.sh: error: clang/wasm-ld still missing after install" >&2; exit 1; }
