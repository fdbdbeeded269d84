#!/usr/bin/env bash
# Installs the pinned AssemblyScript compiler (package-lock.json) for the SDK
# and for these examples, from the npm registry. Idempotent: a folder whose
# node_modules already holds the pinned compiler is left alone.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
sdk="$(cd "$here/../../sdk/assemblyscript" && pwd)"

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "error: '$tool' not found on PATH; install Node.js >= 20 with npm (e.g. apt-get install nodejs npm)" >&2
    exit 1
  fi
done

node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
  echo "error: Node.js >= 20 is required (found $(node --version))" >&2
  exit 1
fi

# The compiler version pinned in package.json (exact), e.g. 0.28.20.
pinned() {
  node -p "require('$1/package.json').devDependencies.assemblyscript"
}

# Installed compiler version in $1/node_modules, or nothing.
installed() {
  local pkg="$1/node_modules/assemblyscript/package.json"
  [ -f "$pkg" ] && node -p "require('$pkg').version" || true
}

install_in() {
  local dir="$1"
  local want have
  want="$(pinned "$dir")"
  have="$(installed "$dir")"
  if [ -d "$dir/node_modules" ] && [ "$have" = "$want" ] && { [ "$dir" = "$sdk" ] || [ -e "$dir/node_modules/switchyard-sdk-as" ]; }; then
    echo "setup: $dir: assemblyscript $have already installed"
    return
  fi
  echo "setup: $dir: installing assemblyscript $want (npm ci)"
  if ! (cd "$dir" && npm ci --no-audit --no-fund); then
    # e.g. package-lock.json out of date after an edit of a package.json
    echo "setup: WARNING: npm ci failed in $dir; falling back to npm install (this may update package-lock.json)" >&2
    (cd "$dir" && npm install --no-audit --no-fund)
  fi
}

install_in "$sdk"
install_in "$here"
