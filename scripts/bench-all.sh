#!/usr/bin/env bash
# The benchmark suite of BENCHMARKS.md: builds everything (release), runs every scenario against
# Switchyard and the reference peers (bench/peers) with the same load generator on loopback, and
# prints `switchyard-bench report` (numbers, ratios, targets MET / MISSED). About 13 minutes of
# scenarios on 2 cores (the cluster group 1.5 of them). Every server is a fresh process per scenario on a free port. The echo
# scenarios run in ROUNDS interleaved rounds (every server once per round, the order rotated),
# and each ratio is taken within a round: a shared VM drifts over minutes. Results: one JSON
# line per run in $OUT/run-<time>.jsonl, beside it the console (.log) and the summary
# (-summary.md). Exits 1 if a run failed; a MISSED target is a finding, not a failure.
#
#   scripts/bench-all.sh
#   SKIP_BUILD=1 ONLY="echo hostile" DUR=5 scripts/bench-all.sh
#
# ONLY: echo pinned lang fanout idle churn swap hostile cluster. Environment (defaults): DUR
# (10), WARMUP (2), ROUNDS (3), FANOUT_M (100), IDLE_N (10000), SWAPS (100), SWAP_INTERVAL_MS
# (300), HOSTILE_ATTACKERS (4), HOSTILE_DUR (20), CLUSTER_N (5000), OUT (target/bench-results),
# SKIP_BUILD, SY (the switchyard binary, target/release/switchyard) and COMMIT (the results'
# label: HEAD, "+dirty" when src/ differs from it; set it when SY was built elsewhere). The cluster group (3 nodes on one fresh redis-server, Switchyard against
# Socket.IO with its Redis adapter, ROUNDS rounds) needs redis-server on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${DUR:=10}" "${WARMUP:=2}" "${ROUNDS:=3}" "${FANOUT_M:=100}" "${IDLE_N:=10000}" "${SWAPS:=100}"
: "${SWAP_INTERVAL_MS:=300}" "${HOSTILE_ATTACKERS:=4}" "${HOSTILE_DUR:=20}" "${OUT:=target/bench-results}"
: "${CLUSTER_N:=5000}" "${ONLY:=echo pinned lang fanout idle churn swap hostile cluster}"
: "${SY:=target/release/switchyard}"
B=target/release/switchyard-bench
AXUM=target/release/axum-echo
NODE_PEER=bench/peers/node-ws/ws-echo.js
SIO_PEER=bench/peers/socketio/server.js
SIO_PATH='/socket.io/?EIO=4&transport=websocket'

die() { echo "bench-all: error: $*" >&2; exit 1; }
note() { echo "bench-all: $*" >&2; }
want() { [[ " $ONLY " == *" $1 "* ]]; }

for t in cargo node npm curl python3; do command -v "$t" >/dev/null || die "'$t' not found on PATH"; done
want cluster && { command -v redis-server >/dev/null || die "'redis-server' not found on PATH (ONLY without cluster)"; }
# 10,000 idle connections need more than the usual 1024 descriptors (server and bench alike).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE_N + 1000)) ]; then
  note "warning: open-file limit $(ulimit -n) < $((IDLE_N + 1000)); the idle scenario will fall short"
fi

langs=(rust)
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  note "building switchyard, switchyard-bench and axum-echo (release)"
  cargo build --release --workspace --bins -q || die "cargo build --release --workspace --bins failed"
  [ -d bench/peers/node-ws/node_modules/ws ] ||
    npm install --silent --no-audit --no-fund --prefix bench/peers/node-ws || die "npm install (node peer) failed"
  [ -d bench/peers/socketio/node_modules/socket.io ] ||
    npm install --silent --no-audit --no-fund --prefix bench/peers/socketio || die "npm install (socketio peer) failed"
  bash handlers/build.sh >/dev/null || die "handlers/build.sh failed"
  for l in c zig assemblyscript python javascript; do
    if bash "examples/$l/build.sh" >"/tmp/bench-all-build-$l.log" 2>&1; then langs+=("$l"); else
      note "warning: examples/$l/build.sh failed (see /tmp/bench-all-build-$l.log); no $l echo row"
    fi
  done
else
  for l in c zig assemblyscript python javascript; do [ -f "examples/$l/build/echo.wasm" ] && langs+=("$l"); done
fi
for f in "$SY" "$B" "$AXUM" "$NODE_PEER" handlers/build/echo.wasm bench/peers/node-ws/node_modules/ws \
  bench/peers/socketio/node_modules/socket.io; do
  [ -e "$f" ] || die "$f is missing (run without SKIP_BUILD=1)"
done

work=$(mktemp -d /tmp/bench-all.XXXXXX)
PID=
CPIDS=()
cleanup() {
  local p
  for p in $PID ${CPIDS[@]+"${CPIDS[@]}"}; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "bench-all: interrupted" >&2; exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
healthy() { curl -fsS "http://127.0.0.1:$1/healthz" >/dev/null 2>&1; }
cluster_ok() { curl -fsS "http://127.0.0.1:$1/healthz" 2>/dev/null | grep -q '"cluster":"ok"'; }

# up PID CHECK PORT LOG NAME: waits (30 s) until `CHECK PORT` passes while PID lives.
up() {
  local i
  for i in $(seq 1 300); do
    kill -0 "$1" 2>/dev/null || break
    "$2" "$3" && return 0
    sleep 0.1
  done
  tail -n 30 "$4" >&2
  die "$5 did not come up on :$3"
}

# start SERVER [MANIFEST]: a fresh server on a free port, waited for (30 s); sets PID, PORT, LOG.
# `fresh` is Switchyard with the echo module in instance = "fresh" mode (a fresh instance per
# event, what modules that do not opt into reuse get; the shipped manifest reuses).
start() {
  local server=$1 manifest=${2:-handlers/switchyard.toml} pin=${PIN_SERVER:+taskset -c $PIN_SERVER} check
  PORT=$(free_port)
  LOG=$work/$server-$PORT.log
  [ "$server" = fresh ] && manifest=bench/manifests/echo-fresh.toml
  case $server in
    switchyard | fresh)
      # The bench manifests name modules outside their folder (handlers/build, tests/wat).
      SWITCHYARD_WS__RATE_PER_SEC=0 SWITCHYARD_WS__MAX_CONNECTIONS=200000 RUST_LOG=warn SWITCHYARD_RUNTIME__MODULE_DIRS='["."]' \
        $pin "$SY" serve --listen "127.0.0.1:$PORT" --manifest "$manifest" >"$LOG" 2>&1 &
      check=healthy ;;
    axum) PORT=$PORT $pin "$AXUM" >"$LOG" 2>&1 & check=port_open ;;
    node) PORT=$PORT $pin node "$NODE_PEER" >"$LOG" 2>&1 & check=port_open ;;
  esac
  PID=$!
  up "$PID" "$check" "$PORT" "$LOG" "$server (manifest $manifest)"
}

# stop: SIGTERM the current server, SIGKILL after 5 s.
stop() {
  local i
  kill "$PID" 2>/dev/null || true
  for i in $(seq 1 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  PID=
  sleep 0.5 # let the sockets of the last run drain
}

# cluster_up SERVER: a fresh redis-server and 3 nodes of SERVER (switchyard | socketio) sharing
# it, each on a free port; node 1 is PID/PORT, every process is in CPIDS, and NODE_ARGS has the
# bench's --redis, --node and --node-pid. cluster_down stops them all.
cluster_up() {
  local server=$1 rport i port url check
  rport=$(free_port)
  redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no >"$work/redis-$rport.log" 2>&1 &
  CPIDS=($!)
  up "$!" port_open "$rport" "$work/redis-$rport.log" redis-server
  NODE_ARGS=(--redis "127.0.0.1:$rport")
  for i in 1 2 3; do
    port=$(free_port)
    LOG=$work/$server-$port.log
    case $server in
      switchyard)
        SWITCHYARD_CLUSTER__REDIS_URL=redis://127.0.0.1:$rport SWITCHYARD_WS__RATE_PER_SEC=0 \
          SWITCHYARD_WS__MAX_CONNECTIONS=200000 RUST_LOG=warn "$SY" serve --listen "127.0.0.1:$port" >"$LOG" 2>&1 &
        check=cluster_ok url=ws://127.0.0.1:$port/ws ;;
      socketio)
        PORT=$port REDIS_URL=redis://127.0.0.1:$rport node "$SIO_PEER" >"$LOG" 2>&1 &
        check=port_open url=ws://127.0.0.1:$port$SIO_PATH ;;
    esac
    CPIDS+=($!)
    up "$!" "$check" "$port" "$LOG" "$server node $i"
    if [ "$i" = 1 ]; then PID=$! PORT=$port; else NODE_ARGS+=(--node "$url" --node-pid "$!"); fi
  done
}

cluster_down() {
  local p i live
  kill "${CPIDS[@]}" 2>/dev/null || true
  for i in $(seq 1 50); do
    live=0
    for p in "${CPIDS[@]}"; do kill -0 "$p" 2>/dev/null && live=1; done
    [ "$live" = 0 ] && break
    sleep 0.1
  done
  kill -9 "${CPIDS[@]}" 2>/dev/null || true
  for p in "${CPIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PID= CPIDS=()
  sleep 0.5
}

mkdir -p "$OUT"
run_id=$(date -u +%Y%m%dT%H%M%SZ)
out=$OUT/run-$run_id.jsonl
commit=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
[ -n "${COMMIT:-}" ] || git diff --quiet HEAD -- src 2>/dev/null || commit="$commit+dirty"
failed=()
exec > >(tee "${out%.jsonl}.log") 2>&1

# run LABEL SERVER BENCH-ARGS...: the bench against the current server; its result, with the
# run's fields, appended to $out.
run() {
  local label=$1 server=$2 rc=0 res busy load alive=true p path=/ws
  shift 2
  [ "$server" = socketio ] && path=$SIO_PATH
  local args=(--url "ws://127.0.0.1:$PORT$path" --server-pid "$PID" --json)
  case $server in switchyard | fresh) ;; *) args+=(--target "$server") ;; esac
  busy=$(ps -eo comm= | grep -cE '^(rustc|cargo|cc1|cc1plus|ld|lld|clang|zig|switchyard-benc)$' || true)
  load=$(cut -d' ' -f1 /proc/loadavg)
  echo "=== $label ($server, round ${ROUND:-1})"
  res=$(${PIN_BENCH:+taskset -c $PIN_BENCH} "$B" "$@" "${args[@]}") || rc=$?
  echo "$res"
  for p in "$PID" ${CPIDS[@]+"${CPIDS[@]}"}; do kill -0 "$p" 2>/dev/null || alive=false; done
  local meta="\"label\":\"$label\",\"server\":\"$server\",\"round\":${ROUND:-1},\"run\":\"$run_id\",\"commit\":\"$commit\",\"other_busy_procs\":${busy:-0},\"load1\":$load"
  if [[ $res == \{* ]]; then printf '{%s,%s\n' "$meta" "${res#\{}" >>"$out"; else
    printf '{%s,"error":"no result (exit %s)"}\n' "$meta" "$rc" >>"$out"
  fi
  if [ "$rc" -ne 0 ] || [ "$alive" = false ]; then
    failed+=("$label/$server (bench exit $rc, server alive: $alive)")
    [ "$alive" = false ] && tail -n 20 "$LOG" >&2
  fi
  return 0
}

# rounds LABEL "SERVERS" BENCH-ARGS...: ROUNDS rounds, each server once per round on a fresh
# process, the order rotated by one each round so no server always follows the same one.
rounds() {
  local label=$1 servers=($2) r i
  shift 2
  for ((r = 0; r < ROUNDS; r++)); do
    for ((i = 0; i < ${#servers[@]}; i++)); do
      local s=${servers[$(((i + r) % ${#servers[@]}))]}
      start "$s"
      ROUND=$((r + 1)) run "$label" "$s" "$@"
      stop
    done
  done
}

note "results -> $out"
t_start=$(date +%s)
echo_args=(-d "$DUR" --warmup "$WARMUP")
if want echo; then
  rounds echo_10x8 "switchyard fresh axum node" echo -c 10 -k 8 "${echo_args[@]}"
  rounds echo_1000x1 "switchyard fresh axum node" echo -c 1000 -k 1 "${echo_args[@]}"
fi
if want pinned; then
  # Server on CPU 0, generator on CPU 1: per-core efficiency (Node's `ws` is one thread).
  PIN_SERVER=0 PIN_BENCH=1 rounds echo_1000x1_pinned "switchyard axum node" echo -c 1000 -k 1 "${echo_args[@]}"
fi
if want lang; then
  # The same server with each language's echo.wasm as `echo`: a fresh instance per event, and
  # for the components (Python, JavaScript) also kept instances (`_reuse`), their way to run.
  for l in "${langs[@]}"; do
    wasm=$PWD/examples/$l/build/echo.wasm
    [ "$l" = rust ] && wasm=$PWD/handlers/build/echo.wasm
    modes=(fresh)
    case $l in python | javascript) modes=(fresh reuse) ;; esac
    for mode in "${modes[@]}"; do
      label=echo_10x8_$l
      [ "$mode" = reuse ] && label+=_reuse
      sed -e "s|^path = .*|path = \"$wasm\"|" -e "s|^instance = .*|instance = \"$mode\"|" \
        bench/manifests/echo-fresh.toml >"$work/$label.toml"
      start switchyard "$work/$label.toml"
      run "$label" switchyard echo -c 10 -k 8 "${echo_args[@]}"
      stop
    done
  done
fi
want fanout && ROUNDS=1 rounds fanout_5000 "switchyard axum node" fanout -c 5000 -m "$FANOUT_M"
want idle && ROUNDS=1 rounds "idle_$IDLE_N" "switchyard axum node" idle -c "$IDLE_N" -d 10 --warmup 3 --ping-interval 5
want churn && ROUNDS=1 rounds churn "switchyard axum node" churn -d "$DUR" --warmup 1 -c 1000
if want swap; then
  # The bench replaces echo.wat in a scratch copy (write temp + rename), v1 <-> v2.
  mkdir -p "$work/swap"
  cp bench/manifests/swap.toml tests/wat/echo.wat "$work/swap/"
  start switchyard "$work/swap/swap.toml"
  run swap switchyard swap -c 10 -k 4 --warmup "$WARMUP" --module-path "$work/swap/echo.wat" \
    --v2 tests/wat/echo_v2.wat --v2-marker '"v":2' \
    --swaps "$SWAPS" --swap-interval-ms "$SWAP_INTERVAL_MS" --swap-timeout 5
  stop
fi
if want hostile; then
  # 1 s windows alternate without and with attackers calling an infinite loop (stopped by the
  # 100 ms deadline), so the machine's slow drifts fall on both sides of the p99 ratio alike.
  start switchyard bench/manifests/hostile.toml
  run hostile switchyard hostile -c 10 -k 4 -a "$HOSTILE_ATTACKERS" --window 1 -d "$HOSTILE_DUR" --warmup "$WARMUP"
  stop
fi
if want cluster; then
  # 3 nodes on one Redis, CLUSTER_N clients spread over them in one tag (room), FANOUT_M sends to
  # node 1; before that, 1,000 user sends node 1 -> a client on node 2 at 200/s. Rounds
  # alternate which server goes first.
  for ((r = 0; r < ROUNDS; r++)); do
    order="switchyard socketio"
    ((r % 2)) && order="socketio switchyard"
    for s in $order; do
      cluster_up "$s"
      ROUND=$((r + 1)) run "cluster_$CLUSTER_N" "$s" cluster -c "$CLUSTER_N" -m "$FANOUT_M" "${NODE_ARGS[@]}"
      cluster_down
    done
  done
fi
note "scenarios took $(($(date +%s) - t_start)) s"

echo
"$B" report "$out" | tee "${out%.jsonl}-summary.md" || note "the summary failed (results are in $out)"
if [ ${#failed[@]} -gt 0 ]; then
  note "FAILED runs:"
  printf '  %s\n' "${failed[@]}" >&2
  exit 1
fi
