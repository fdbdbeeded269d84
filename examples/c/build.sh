#!/usr/bin/env bash
# Builds examples/c/build/{echo,chat}.wasm with clang + wasm-ld (no libc).
# Toolchain: examples/c/setup.sh (Debian: apt-get install clang lld).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
sdk="$(cd "$here/../../sdk/c" && pwd)"
out="$here/build"
CC="${CC:-clang}"

die() { echo "examples/c/build.sh: error: $*" >&2; exit 1; }

command -v "$CC" >/dev/null 2>&1 || die "'$CC' not found; run $here/setup.sh (apt-get install -y clang lld)"
command -v wasm-ld >/dev/null 2>&1 || die "'wasm-ld' not found; run $here/setup.sh (apt-get install -y lld)"
"$CC" --print-targets 2>/dev/null | grep -qw wasm32 || die "'$CC' has no wasm32 backend"

cflags=(
  --target=wasm32 -std=c11 -Oz
  -ffreestanding -nostdlib
  -Wall -Wextra -Werror
  -I "$sdk"
  -Wl,--no-entry            # a library of exports, no _start
  -Wl,--strip-all           # no names section
  -Wl,--stack-first         # stack overflow traps instead of clobbering data
  -Wl,-z,stack-size=65536
)

mkdir -p "$out"
for m in echo chat; do
  "$CC" "${cflags[@]}" -o "$out/$m.wasm" "$here/$m.c"
  printf '%-10s %6d bytes\n' "$m.wasm" "$(wc -c < "$out/$m.wasm")"
done
