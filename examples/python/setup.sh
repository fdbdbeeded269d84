#!/usr/bin/env bash
# Installs the Python example toolchain: componentize-py from PyPI (it bundles CPython and
# its standard library; nothing else is downloaded at build time). Idempotent: does nothing
# when that version is already installed.
set -euo pipefail

COMPONENTIZE_PY_VERSION=0.25.1   # keep in sync with build.sh
py="${PYTHON:-python3}"

command -v "$py" >/dev/null 2>&1 || { echo "examples/python/setup.sh: error: $py not found (install Python >= 3.10)" >&2; exit 1; }

installed() {
  "$py" -c 'import importlib.metadata as m; print(m.version("componentize-py"))' 2>/dev/null || true
}

if [ "$(installed)" = "$COMPONENTIZE_PY_VERSION" ]; then
  echo "examples/python/setup.sh: componentize-py $COMPONENTIZE_PY_VERSION already installed"
  exit 0
fi

if ! "$py" -m pip install "componentize-py==$COMPONENTIZE_PY_VERSION"; then
  # Debian's system python refuses global installs (PEP 668): use the user site.
  "$py" -m pip install --user --break-system-packages "componentize-py==$COMPONENTIZE_PY_VERSION"
fi
got="$(installed)"
[ "$got" = "$COMPONENTIZE_PY_VERSION" ] || { echo "examples/python/setup.sh: error: got componentize-py '$got', wanted $COMPONENTIZE_PY_VERSION" >&2; exit 1; }
echo "examples/python/setup.sh: componentize-py $got installed"
