#!/usr/bin/env bash
# Installs what the client's tests need (idempotent): Debian's chromium for the browser tests
# (playwright-core drives it; its own browser download is not used) and the npm devDependencies
# (npm ci, from package-lock.json; skipped when installed). Then: `npm test` (unit) and
# `node test/browser/run.mjs`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  if [ "$(id -u)" -ne 0 ]; then echo "chromium is missing; run as root or: sudo apt-get install -y chromium" >&2; exit 1; fi
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
fi
bash ../scripts/npm-ci.sh .
