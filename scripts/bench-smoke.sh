#!/usr/bin/env bash
# A few-second benchmark smoke run (CI): start the server on a free port with the default
# handlers, run `switchyard-bench smoke` (echo, 4 connections x 2 in flight) against it, and
# fail unless it reports throughput with zero errors. Not a performance gate: see BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${PROFILE:-debug}
if [ "$profile" = release ]; then cargo build --release --workspace --bins -q; else cargo build --workspace --bins -q; fi
[ -f handlers/build/echo.wasm ] || bash handlers/build.sh
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
SWITCHYARD_WS__RATE_PER_SEC=0 RUST_LOG=warn "target/$profile/switchyard" serve \
  --listen "127.0.0.1:$port" --manifest handlers/switchyard.toml &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
"target/$profile/switchyard-bench" smoke --url "ws://127.0.0.1:$port/ws" --server-pid "$server"
echo "bench smoke: ok"
