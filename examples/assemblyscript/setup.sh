#!/usr/bin/env bash
# Installs the pinned AssemblyScript compiler (package-lock.json) for the SDK and for these
# examples, from the npm registry. Idempotent.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$here/../../scripts/npm-ci.sh" "$here/../../sdk/assemblyscript" "$here"
