#!/usr/bin/env bash
# Builds the AssemblyScript reference handlers:
#   build/echo.wasm  exports echo, fail
#   build/chat.wasm  exports chat_join, chat_send, chat_online
# and the same two for instance = "reuse" (minimal runtime, plus switchyard_reset):
#   build/reuse/echo.wasm, build/reuse/chat.wasm
# Runnable from any directory. Runs ./setup.sh first when the compiler is missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "error: '$tool' not found on PATH; install Node.js >= 20 with npm (e.g. apt-get install nodejs npm)" >&2
    exit 1
  fi
done

if [ ! -x node_modules/.bin/asc ] || [ ! -e node_modules/switchyard-sdk-as ]; then
  bash "$here/setup.sh"
fi

# --use abort=...     route `abort` to the SDK (logs via switchyard.log, then traps),
#                     so the only imports are from module "switchyard"
# -O3 --noAssert      optimise for speed, drop assert() checks
ASC_FLAGS=(-O3 --noAssert --use 'abort=~lib/switchyard-sdk-as/assembly/index/switchyardAbort')

# build OUT_DIR RUNTIME NAME HANDLERS [EXTRA_ENTRY]
build() {
  local dir="$1" runtime="$2" name="$3" handlers="$4" extra=("${@:5}")
  mkdir -p "$dir"
  node node_modules/assemblyscript/bin/asc.js "assembly/$name.ts" "${extra[@]}" -o "$dir/$name.wasm" \
    "${ASC_FLAGS[@]}" --runtime "$runtime"
  node check-wasm.mjs "$dir/$name.wasm" "$handlers"
}

# Default instance = "fresh": --runtime stub, a bump allocator without GC (the
# instance is thrown away after each event, so nothing needs freeing).
build build stub echo echo,fail
build build stub chat chat_join,chat_send,chat_online
# instance = "reuse": --runtime minimal (a collector), and assembly/reuse.ts as a
# second entry file re-exports the SDK's switchyard_reset.
build build/reuse minimal echo echo,fail,switchyard_reset assembly/reuse.ts
build build/reuse minimal chat chat_join,chat_send,chat_online,switchyard_reset assembly/reuse.ts

for path in build/echo.wasm build/chat.wasm build/reuse/echo.wasm build/reuse/chat.wasm; do
  printf '%-22s %6d bytes  %s\n' "$path" "$(wc -c <"$path")" "$here/$path"
done
