#!/usr/bin/env bash
# Installs the Zig example toolchain: Zig from PyPI's `ziglang` package (run as
# `python3 -m ziglang`). Idempotent: does nothing when that version is there.
set -euo pipefail

ZIG_VERSION=0.15.2   # keep in sync with build.sh
py="${PYTHON:-python3}"

if [ "$("$py" -m ziglang version 2>/dev/null || true)" = "$ZIG_VERSION" ]; then
  echo "examples/zig/setup.sh: zig $ZIG_VERSION already installed"
  exit 0
fi

command -v "$py" >/dev/null 2>&1 || { echo "examples/zig/setup.sh: error: $py not found" >&2; exit 1; }
if ! "$py" -m pip install "ziglang==$ZIG_VERSION"; then
  # Debian's system python refuses global installs (PEP 668): use the user site.
  "$py" -m pip install --user --break-system-packages "ziglang==$ZIG_VERSION"
fi
got="$("$py" -m ziglang version)"
[ "$got" = "$ZIG_VERSION" ] || { echo "examples/zig/setup.sh: error: got zig $got, wanted $ZIG_VERSION" >&2; exit 1; }
echo "examples/zig/setup.sh: zig $got installed"
