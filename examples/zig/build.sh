#!/usr/bin/env bash
# Builds examples/zig/build/{echo,chat}.wasm with Zig (PyPI's `ziglang`).
# Toolchain: examples/zig/setup.sh.
set -euo pipefail

ZIG_VERSION=0.15.2   # keep in sync with setup.sh
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
sdk="$(cd "$here/../../sdk/zig" && pwd)"
out="$here/build"

die() { echo "examples/zig/build.sh: error: $*" >&2; exit 1; }

# ZIG may name a zig binary; otherwise use PyPI's ziglang, else zig on PATH.
if [ -n "${ZIG:-}" ]; then
  zig=("$ZIG")
elif "${PYTHON:-python3}" -m ziglang version >/dev/null 2>&1; then
  zig=("${PYTHON:-python3}" -m ziglang)
elif command -v zig >/dev/null 2>&1; then
  zig=(zig)
else
  die "zig not found; run $here/setup.sh (pip install ziglang==$ZIG_VERSION)"
fi
have="$("${zig[@]}" version 2>/dev/null)" || die "'${zig[*]} version' failed; run $here/setup.sh (pip install ziglang==$ZIG_VERSION)"
case "$have" in
  0.15.*) ;;
  *) die "zig $have found, this code targets 0.15.x; run $here/setup.sh (pip install ziglang==$ZIG_VERSION)" ;;
esac

mkdir -p "$out"
cache="$out/.zig-cache"
for m in echo chat; do
  # -rdynamic: export what the module @exports (alloc, switchyard_abi_v1,
  # handlers) plus memory; -fno-entry: no _start.
  "${zig[@]}" build-exe \
    -target wasm32-freestanding -O ReleaseSmall -fstrip \
    -fno-entry -rdynamic --stack 65536 \
    --cache-dir "$cache" --global-cache-dir "$cache" \
    --dep switchyard -Mroot="$here/$m.zig" -Mswitchyard="$sdk/switchyard.zig" \
    --name "$m" -femit-bin="$out/$m.wasm"
  printf '%-10s %6d bytes\n' "$m.wasm" "$(wc -c < "$out/$m.wasm")"
done
