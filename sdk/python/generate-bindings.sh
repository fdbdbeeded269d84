#!/usr/bin/env bash
# Regenerates bindings/: the Python bindings componentize-py generates for the
# switchyard:handler@1.0.0 world `full` (wit/handler.wit). They are for editors, type checkers
# and unit tests off WebAssembly (put sdk/python/bindings on PYTHONPATH: `import switchyard`
# then works in CPython, and every host call raises NotImplementedError). A build never uses
# them: componentize-py generates the real ones for the world it builds. With --check, only
# compares and fails when bindings/ is out of date.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
py="${PYTHON:-python3}"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$py" -c 'import sys; from componentize_py import script; sys.argv[0] = "componentize-py"; sys.exit(script())' \
  -q -d "$root/wit" -w full bindings "$tmp/bindings"
find "$tmp/bindings" -name __pycache__ -prune -exec rm -rf {} +
if [ "${1:-}" = "--check" ]; then
  diff -r -x __pycache__ "$tmp/bindings" "$here/bindings" >/dev/null || {
    echo "sdk/python/bindings is out of date with wit/: run sdk/python/generate-bindings.sh" >&2
    exit 1
  }
  exit 0
fi
rm -rf "$here/bindings"
cp -r "$tmp/bindings" "$here/bindings"
echo "sdk/python/bindings: regenerated from wit/handler.wit"
