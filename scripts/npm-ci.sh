#!/usr/bin/env bash
# Installs the npm packages of each folder given, as its package-lock.json pins them (npm ci,
# from the npm registry). Idempotent: a folder whose node_modules already holds every
# devDependency (at its exact version, where package.json pins one) is left alone.
# Usage: scripts/npm-ci.sh DIR...
set -euo pipefail

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "error: '$tool' not found on PATH; install Node.js >= 20 with npm (e.g. apt-get install nodejs npm)" >&2
    exit 1
  fi
done
if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "error: Node.js >= 20 is required (found $(node --version))" >&2
  exit 1
fi

# Prints "name@version, ..." when every devDependency of $1 is installed as pinned; fails otherwise.
installed() {
  node -e '
    const fs = require("fs"), path = require("path");
    const dir = process.argv[1];
    const want = require(path.join(dir, "package.json")).devDependencies || {};
    const have = Object.entries(want).map(([name, spec]) => {
      const pkg = path.join(dir, "node_modules", name, "package.json");
      if (!fs.existsSync(pkg)) process.exit(1);
      const version = JSON.parse(fs.readFileSync(pkg, "utf8")).version;
      if (/^\d/.test(spec) && version !== spec) process.exit(1);
      return name + "@" + version;
    });
    console.log(have.join(", "));
  ' "$1" 2>/dev/null
}

for dir in "$@"; do
  dir="$(cd "$dir" && pwd)"
  if have="$(installed "$dir")"; then
    echo "setup: $dir: $have already installed"
    continue
  fi
  echo "setup: $dir: npm ci"
  if ! (cd "$dir" && npm ci --no-audit --no-fund); then
    # e.g. package-lock.json out of date after an edit of package.json
    echo "setup: WARNING: npm ci failed in $dir; falling back to npm install (this may update package-lock.json)" >&2
    (cd "$dir" && npm install --no-audit --no-fund)
  fi
  have="$(installed "$dir")" || { echo "setup: error: $dir: packages still missing after npm ci" >&2; exit 1; }
  echo "setup: $dir: $have installed"
done
