#!/usr/bin/env bash
# Builds the AssemblyScript reference handlers:
#   build/echo.wasm  exports echo, fail
#   build/chat.wasm  exports chat_join, chat_send, chat_online
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

# --runtime stub      bump allocator, no GC: each event gets a fresh instance anyway
# --use abort=...     route `abort` to the SDK (logs via switchyard.log, then traps),
#                     so the only imports are from module "switchyard"
# -O3 --noAssert      optimise for speed, drop assert() checks
ASC_FLAGS=(-O3 --noAssert --runtime stub --use 'abort=~lib/switchyard-sdk-as/assembly/index/switchyardAbort')

mkdir -p build
build() {
  local name="$1" handlers="$2"
  node node_modules/assemblyscript/bin/asc.js "assembly/$name.ts" -o "build/$name.wasm" "${ASC_FLAGS[@]}"
  node check-wasm.mjs "build/$name.wasm" "$handlers"
}
build echo echo,fail
build chat chat_join,chat_send,chat_online

for name in echo chat; do
  printf '%-10s %6d bytes  %s\n' "$name.wasm" "$(wc -c <"build/$name.wasm")" "$here/build/$name.wasm"
done
