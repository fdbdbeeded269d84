#!/usr/bin/env bash
# Installs what building and testing Switchyard needs, idempotently: the wasm targets, the
# toolchains of every guest language (C: clang + lld, Zig: PyPI's ziglang, AssemblyScript: npm,
# Python: PyPI's componentize-py, JavaScript: npm's componentize-js),
# redis-server for the cluster tests (Debian), and Chromium plus the browser client's npm
# packages for the browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-unknown-unknown wasm32-wasip1 >/dev/null 2>&1 || rustup target add wasm32-unknown-unknown wasm32-wasip1
apt_install() {
  if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
command -v redis-server >/dev/null 2>&1 || apt_install redis-server
echo "setup: $(redis-server --version | cut -d' ' -f1-3)"
for lang in c zig assemblyscript python javascript; do
  if [ -f "examples/$lang/setup.sh" ]; then
    bash "examples/$lang/setup.sh"
  fi
done
if [ -f client/scripts/setup.sh ]; then
  bash client/scripts/setup.sh
fi
