#!/usr/bin/env bash
# Runs the whole benchmark suite of BENCHMARKS.md: Switchyard against the native axum echo and
# Node `ws` peers, on the same load generator, in one run. Loopback only. Takes ~6 minutes.
# Output: a human table per scenario on stdout, one JSON line per result in
# bench/results/latest.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CARGO_TARGET_DIR_BENCH=${CARGO_TARGET_DIR_BENCH:-$root/target}
DUR=${DUR:-8}

cargo build --release --workspace --bins -q
CARGO_TARGET_DIR=$root/target cargo build --release -q --manifest-path bench/peers/axum-echo/Cargo.toml
[ -d bench/peers/node-ws/node_modules/ws ] || npm install --silent --prefix bench/peers/node-ws
bash handlers/build.sh >/dev/null
for l in c zig assemblyscript; do bash "examples/$l/build.sh" >/dev/null; done

B=$root/target/release/switchyard-bench
SY=$root/target/release/switchyard
AXUM=$root/target/release/axum-echo
mkdir -p bench/results
out=bench/results/latest.jsonl
: > "$out"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }
start_sy() { # start_sy MANIFEST -> sets PID
  SWITCHYARD_WS__RATE_PER_SEC=0 SWITCHYARD_WS__MAX_CONNECTIONS=200000 RUST_LOG=warn \
    "$SY" serve --listen 127.0.0.1:8080 --manifest "$1" >"$work/sy.log" 2>&1 &
  PID=$!; pids+=("$PID"); wait_port 8080
}
start_axum() { PORT=9002 "$AXUM" >/dev/null 2>&1 & PID=$!; pids+=("$PID"); wait_port 9002; }
start_node() { PORT=9001 node bench/peers/node-ws/ws-echo.js >/dev/null 2>&1 & PID=$!; pids+=("$PID"); wait_port 9001; }
stop() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; sleep 0.5; }
run() { # run LABEL ARGS... : prints the table, appends {"label":..., ...} to the results
  local label=$1; shift
  echo "=== $label"
  local res; res=$("$B" "$@" --json | tee /dev/stderr | tail -n1)
  printf '{"label":"%s","result":%s}\n' "$label" "$res" >>"$out"
}
per_target() { # per_target SCENARIO-LABEL ARGS... : runs against switchyard, axum and node
  local label=$1; shift
  start_sy handlers/switchyard.toml; run "$label switchyard" "$@" --server-pid "$PID"; stop
  start_axum; run "$label axum" "$@" --target axum --server-pid "$PID"; stop
  start_node; run "$label node" "$@" --target node --server-pid "$PID"; stop
}

per_target "echo 10x8" echo -c 10 -k 8 -d "$DUR" --warmup 2
per_target "echo 1000x1" echo -c 1000 -k 1 -d "$DUR" --warmup 2
per_target "fanout 5000" fanout -c 5000 -m 20
per_target "idle 10000" idle -c 10000 -d 5 --warmup 3 --ping-interval 5
per_target "churn" churn -d "$DUR"

# Echo per handler language (same server, manifest routing `echo` to that language's module).
for lang in rust c zig assemblyscript; do
  mod=$root/examples/$lang/build/echo.wasm
  [ "$lang" = rust ] && mod=$root/handlers/build/echo.wasm
  printf '[modules.echo]\npath = "%s"\nprefixes = ["echo"]\n[[routes]]\nevent = "echo"\nmodule = "echo"\nexport = "echo"\n' "$mod" >"$work/$lang.toml"
  start_sy "$work/$lang.toml"; run "echo 10x8 $lang" echo -c 10 -k 8 -d "$DUR" --warmup 2 --server-pid "$PID"; stop
done

# Hot swap: echo load while echo.wat is replaced 100 times (v1 <-> v2 replying {"v":2,...}).
mkdir -p "$work/swap"
cp tests/wat/echo.wat "$work/swap/echo.wat"
printf '[modules.echo]\npath = "echo.wat"\nprefixes = ["echo"]\n[[routes]]\nevent = "echo"\nmodule = "echo"\nexport = "echo"\n' >"$work/swap/switchyard.toml"
start_sy "$work/swap/switchyard.toml"
run "swap" swap -c 10 -k 4 --module-path "$work/swap/echo.wat" --v1 tests/wat/echo.wat --v2 tests/wat/echo_v2.wat \
  --v2-marker '"v":2' --swaps 100 --swap-interval-ms 150 --server-pid "$PID"
stop

# Hostile: echo p99 without, then with, clients calling an infinite loop (100 ms deadline).
cp tests/wat/hostile.wat tests/wat/echo.wat "$work/"
cat >"$work/hostile.toml" <<EOF
[modules.echo]
path = "$root/handlers/build/echo.wasm"
prefixes = ["echo"]
[modules.hostile]
path = "$work/hostile.wat"
prefixes = ["loop"]
tags = ["chat:*"]
capabilities = ["send_to_user", "send_to_client", "send_to_all", "claims"]
[[routes]]
event = "echo"
module = "echo"
export = "echo"
[[routes]]
event = "loop"
module = "hostile"
export = "spin"
EOF
start_sy "$work/hostile.toml"
run "hostile" hostile -c 10 -k 8 -d "$DUR" --warmup 2 --attackers 2 --attack-event loop --baseline --server-pid "$PID"
stop

echo "results: $out"
