#!/usr/bin/env bash
# Installs the JavaScript example toolchain from the npm registry, pinned by package-lock.json:
# componentize-js (SpiderMonkey as a WebAssembly component, pre-initialised with wizer; both
# ship inside their npm packages) and jco (WIT tooling: `jco wit`, `jco types`). Idempotent:
# does nothing when node_modules already holds the pinned versions. Nothing is downloaded at
# build time: build.sh never uses componentize-js's --aot (which would fetch weval).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

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

# "pinned installed" for each devDependency, or nothing when one is missing or differs.
check() {
  node -e '
    const fs = require("fs"), path = require("path");
    const dir = process.argv[1];
    const want = require(path.join(dir, "package.json")).devDependencies;
    for (const [name, version] of Object.entries(want)) {
      const pkg = path.join(dir, "node_modules", name, "package.json");
      if (!fs.existsSync(pkg) || require(pkg).version !== version) process.exit(1);
    }
    console.log(Object.entries(want).map(([n, v]) => n + "@" + v).join(", "));
  ' "$here" 2>/dev/null || true
}

have="$(check)"
if [ -n "$have" ]; then
  echo "examples/javascript/setup.sh: $have already installed"
  exit 0
fi
echo "examples/javascript/setup.sh: installing $(node -p "Object.entries(require('$here/package.json').devDependencies).map(([n, v]) => n + '@' + v).join(', ')") (npm ci)"
if ! (cd "$here" && npm ci --no-audit --no-fund); then
  # e.g. package-lock.json out of date after an edit of package.json
  echo "examples/javascript/setup.sh: WARNING: npm ci failed; falling back to npm install (this may update package-lock.json)" >&2
  (cd "$here" && npm install --no-audit --no-fund)
fi
have="$(check)"
[ -n "$have" ] || { echo "examples/javascript/setup.sh: error: the pinned packages are still missing after npm ci" >&2; exit 1; }
echo "examples/javascript/setup.sh: $have installed"
