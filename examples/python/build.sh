#!/usr/bin/env bash
# Builds the Python reference handlers as WebAssembly components with componentize-py:
#   build/echo.wasm  world switchyard:handler/base       exports echo, fail
#   build/chat.wasm  world switchyard:handler/with-tags  exports chat_join, chat_send, chat_online
# The same files serve instance = "fresh" and "reuse" (a component needs no reset export).
# Toolchain: examples/python/setup.sh (pip install componentize-py). Runnable from any directory.
set -euo pipefail

COMPONENTIZE_PY_VERSION=0.25.1   # keep in sync with setup.sh
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$here/build"
py="${PYTHON:-python3}"

die() { echo "examples/python/build.sh: error: $*" >&2; exit 1; }

command -v "$py" >/dev/null 2>&1 || die "$py not found (install Python >= 3.10)"
have="$("$py" -c 'import importlib.metadata as m; print(m.version("componentize-py"))' 2>/dev/null)" \
  || die "componentize-py not found; run $here/setup.sh (pip install componentize-py==$COMPONENTIZE_PY_VERSION)"
case "$have" in
  0.25.*) ;;
  *) die "componentize-py $have found, these examples are built with 0.25.x; run $here/setup.sh" ;;
esac

# The componentize-py command, through the interpreter (its script may not be on PATH).
componentize_py() {
  "$py" -c 'import sys; from componentize_py import script; sys.argv[0] = "componentize-py"; sys.exit(script())' "$@"
}

mkdir -p "$out"
for spec in echo:base chat:with-tags; do
  m="${spec%%:*}" world="${spec#*:}"
  start=$(date +%s%N)
  # -d: the switchyard:handler WIT package; -w: the world (what the component imports);
  # -p: where the app module and the SDK (sdk/python/switchyard) are found.
  componentize_py -q -d "$root/wit" -w "$world" componentize "$m" \
    -p "$here" -p "$root/sdk/python" -o "$out/$m.wasm.tmp"
  mv "$out/$m.wasm.tmp" "$out/$m.wasm"   # one rename: a watching server never sees half a file
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  printf '%-10s %9d bytes  %d.%01d s  (world %s)\n' "$m.wasm" "$(wc -c < "$out/$m.wasm")" \
    $((ms / 1000)) $((ms % 1000 / 100)) "$world"
done
