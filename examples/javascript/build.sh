#!/usr/bin/env bash
# Builds the JavaScript reference handlers as WebAssembly components with componentize-js:
#   build/echo.wasm  world switchyard:handler/base       exports echo, fail
#   build/chat.wasm  world switchyard:handler/with-tags  exports chat_join, chat_send, chat_online
# The same files serve instance = "fresh" and "reuse" (a component needs no reset export).
# Runnable from any directory. Runs ./setup.sh first when the toolchain is missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$here/build"

die() { echo "examples/javascript/build.sh: error: $*" >&2; exit 1; }

for tool in node npm; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found on PATH; install Node.js >= 20 with npm (e.g. apt-get install nodejs npm)"
done
cli="$here/node_modules/@bytecodealliance/componentize-js/src/cli.js"
[ -f "$cli" ] || bash "$here/setup.sh"
[ -f "$cli" ] || die "componentize-js not installed; run $here/setup.sh"

# componentize-js maps the directory it runs in into the component being pre-initialised and
# resolves relative imports inside it: run it from the repository root so that
# examples/javascript/*.js reach the SDK in sdk/javascript/.
cd "$root"
mkdir -p "$out"
weval_bin="$here/node_modules/@bytecodealliance/weval/x86_64-linux"
for spec in echo:base chat:with-tags; do
  m="${spec%%:*}" world="${spec#*:}"
  start=$(date +%s%N)
  # No --aot (it would download weval); --disable http fetch-event: no wasi:http imports.
  node "$cli" "examples/javascript/$m.js" --wit wit --world-name "$world" \
    --disable http fetch-event -o "$out/$m.wasm.tmp"
  mv "$out/$m.wasm.tmp" "$out/$m.wasm"   # one rename: a watching server never sees half a file
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  printf '%-10s %9d bytes  %d.%01d s  (world %s)\n' "$m.wasm" "$(wc -c < "$out/$m.wasm")" \
    $((ms / 1000)) $((ms % 1000 / 100)) "$world"
done
[ ! -e "$weval_bin" ] || die "found $weval_bin: something ran componentize-js with --aot, which downloads weval"
