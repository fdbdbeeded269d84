#!/usr/bin/env bash
# The whole benchmark suite of BENCHMARKS.md in one command: builds everything (release), then
# runs every scenario against Switchyard and the two reference peers (native axum echo, Node
# `ws`) with the same load generator, on loopback only, and prints a summary table with the
# ratios and the targets (MET / MISSED). About 14 minutes of scenarios on 2 cores (three echo
# rounds and the servers in turns), plus the builds.
#
#   scripts/bench-all.sh                      # everything
#   SKIP_BUILD=1 scripts/bench-all.sh         # reuse the binaries already built
#   ONLY="echo hostile" scripts/bench-all.sh  # some groups: echo turns pinned lang fanout idle churn swap hostile
#   DUR=5 scripts/bench-all.sh                # shorter measured windows (default 10 s)
#   ROUNDS=5 scripts/bench-all.sh             # more interleaved rounds of the echo scenarios (default 3)
#
# Every server is a fresh process per scenario (memory numbers need a fresh process) on a free
# port, waited for (/healthz for Switchyard, the TCP port for the peers) and killed afterwards;
# everything started is killed on exit. Each result's JSON line (plus "label", "server", "run"
# and the load average before the run) is appended to bench/results/latest.jsonl (emptied at
# the start; a copy is kept as bench/results/run-<time>.jsonl) and the summary is written to
# bench/results/latest-summary.md (RESULTS=FILE.jsonl writes FILE.jsonl and FILE-summary.md
# instead, and keeps no copy). The echo scenarios run in ROUNDS interleaved rounds (every
# server once per round, the order rotated each round) and report medians, with each ratio
# taken within a round: this VM's memory latency drifts over minutes (other tenants share its
# L3), so servers measured minutes apart are not measured on the same machine. Before every
# window `switchyard-bench memprobe` records that latency ("mem_probe_ns"). Exits 1 if a
# scenario failed to run (the summary still prints), 0 otherwise: a MISSED target is a
# finding, not a failure.
#
# The `turns` group measures the same echo loads with all four servers up at once, loaded in
# turns of TURN_WINDOW seconds (switchyard-bench alternate): every server meets the same host
# conditions, and each ratio is also taken per cycle of turns, seconds apart.
#
# Environment: DUR, WARMUP (2), ROUNDS (3), TURN_WINDOW (2), TURN_DUR (40), TURN_WARMUP (24), FANOUT_M (100), IDLE_N (10000), IDLE_HOLD (10), SWAPS (100),
# SWAP_INTERVAL_MS (300), HOSTILE_ATTACKERS (4), HOSTILE_DUR (20: alternating 1 s baseline / attack windows),
# PEER_TARGET_DIR (bench/target: cargo target dir of the axum peer, kept apart from ./target so
# the two builds never wait on each other's lock), SKIP_BUILD, ONLY.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

DUR=${DUR:-10}
WARMUP=${WARMUP:-2}
FANOUT_M=${FANOUT_M:-100}
IDLE_N=${IDLE_N:-10000}
IDLE_HOLD=${IDLE_HOLD:-10}
SWAPS=${SWAPS:-100}
SWAP_INTERVAL_MS=${SWAP_INTERVAL_MS:-300}
HOSTILE_ATTACKERS=${HOSTILE_ATTACKERS:-4}
HOSTILE_DUR=${HOSTILE_DUR:-20}
ROUNDS=${ROUNDS:-3}
TURN_WINDOW=${TURN_WINDOW:-2}
TURN_DUR=${TURN_DUR:-40}
TURN_WARMUP=${TURN_WARMUP:-24}
PEER_TARGET_DIR=${PEER_TARGET_DIR:-$root/bench/target}
SKIP_BUILD=${SKIP_BUILD:-0}
ONLY=${ONLY:-echo turns pinned lang fanout idle churn swap hostile}

SY=$root/target/release/switchyard
B=$root/target/release/switchyard-bench
AXUM=$PEER_TARGET_DIR/release/axum-echo
NODE_PEER=$root/bench/peers/node-ws/ws-echo.js

die() { echo "bench-all: error: $*" >&2; exit 1; }
note() { echo "bench-all: $*" >&2; }
want() { [[ " $ONLY " == *" $1 "* ]]; }

for tool in cargo node npm curl python3; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found on PATH"
done

# 10,000 idle connections need more than the usual 1024 descriptors (server and bench alike).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE_N + 1000)) ]; then
  note "warning: open-file limit $(ulimit -n) < $((IDLE_N + 1000)); the idle scenario will fall short"
fi

# ---------------------------------------------------------------------------------------------
# Build

langs=(rust)
if [ "$SKIP_BUILD" != 1 ]; then
  note "building switchyard + switchyard-bench (release)"
  cargo build --release --workspace --bins -q || die "cargo build --release --workspace --bins failed"
  note "building the axum peer (CARGO_TARGET_DIR=$PEER_TARGET_DIR)"
  CARGO_TARGET_DIR=$PEER_TARGET_DIR cargo build --release -q --manifest-path bench/peers/axum-echo/Cargo.toml \
    || die "building bench/peers/axum-echo failed"
  if [ ! -d bench/peers/node-ws/node_modules/ws ]; then
    note "npm install (node peer)"
    npm install --silent --no-audit --no-fund --prefix bench/peers/node-ws || die "npm install in bench/peers/node-ws failed"
  fi
  note "building the handlers"
  bash handlers/build.sh >/dev/null || die "handlers/build.sh failed"
  for l in c zig assemblyscript; do
    if bash "examples/$l/build.sh" >"/tmp/bench-all-build-$l.log" 2>&1; then
      langs+=("$l")
    else
      note "warning: examples/$l/build.sh failed (see /tmp/bench-all-build-$l.log); skipping the $l echo row"
    fi
  done
else
  for l in c zig assemblyscript; do [ -f "examples/$l/build/echo.wasm" ] && langs+=("$l"); done
fi
for f in "$SY" "$B" "$AXUM" "$NODE_PEER" handlers/build/echo.wasm; do
  [ -e "$f" ] || die "$f is missing (run without SKIP_BUILD=1, or build it)"
done
[ -d bench/peers/node-ws/node_modules/ws ] || die "bench/peers/node-ws/node_modules/ws missing: npm install --prefix bench/peers/node-ws"

# ---------------------------------------------------------------------------------------------
# Processes

work=$(mktemp -d /tmp/bench-all.XXXXXX)
pids=()
PID=
cleanup() {
  local p
  for p in "${pids[@]:-}"; do
    [ -n "$p" ] && kill "$p" 2>/dev/null || true
  done
  for p in "${pids[@]:-}"; do
    [ -n "$p" ] && wait "$p" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "bench-all: interrupted" >&2; exit 130' INT TERM

# utime + stime of a process, in clock ticks (0 once it is gone).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# wait_ready PID CHECK-COMMAND...: until the check passes (30 s), failing early if PID died.
wait_ready() {
  local pid=$1; shift
  local i
  for i in $(seq 1 300); do
    if ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  return 1
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start SERVER [MANIFEST]: starts a fresh server on a free port; sets PID, PORT, LOG.
start() {
  local server=$1 manifest=${2:-handlers/switchyard.toml}
  PORT=$(free_port)
  LOG=$work/$server-$PORT.log
  case $server in
    switchyard)
      SWITCHYARD_WS__RATE_PER_SEC=0 SWITCHYARD_WS__MAX_CONNECTIONS=200000 RUST_LOG=warn \
        ${PIN_SERVER:+taskset -c $PIN_SERVER} "$SY" serve --listen "127.0.0.1:$PORT" --manifest "$manifest" >"$LOG" 2>&1 &
      PID=$!
      pids+=("$PID")
      wait_ready "$PID" curl -fsS "http://127.0.0.1:$PORT/healthz" || { tail -n 30 "$LOG" >&2; die "switchyard did not become healthy on :$PORT (manifest $manifest)"; }
      ;;
    fresh)
      # Switchyard with the echo module in instance = "fresh" mode (a fresh instance per event,
      # the default for modules that do not opt into reuse; the shipped manifest reuses).
      SWITCHYARD_WS__RATE_PER_SEC=0 SWITCHYARD_WS__MAX_CONNECTIONS=200000 RUST_LOG=warn \
        ${PIN_SERVER:+taskset -c $PIN_SERVER} "$SY" serve --listen "127.0.0.1:$PORT" --manifest bench/manifests/echo-fresh.toml >"$LOG" 2>&1 &
      PID=$!
      pids+=("$PID")
      wait_ready "$PID" curl -fsS "http://127.0.0.1:$PORT/healthz" || { tail -n 30 "$LOG" >&2; die "switchyard (fresh) did not become healthy on :$PORT"; }
      ;;
    axum)
      PORT=$PORT ${PIN_SERVER:+taskset -c $PIN_SERVER} "$AXUM" >"$LOG" 2>&1 &
      PID=$!
      pids+=("$PID")
      wait_ready "$PID" port_open "$PORT" || { tail -n 30 "$LOG" >&2; die "axum-echo did not listen on :$PORT"; }
      ;;
    node)
      PORT=$PORT ${PIN_SERVER:+taskset -c $PIN_SERVER} node "$NODE_PEER" >"$LOG" 2>&1 &
      PID=$!
      pids+=("$PID")
      wait_ready "$PID" port_open "$PORT" || { tail -n 30 "$LOG" >&2; die "node ws-echo.js did not listen on :$PORT"; }
      ;;
    *) die "unknown server $server" ;;
  esac
}

# stop: SIGTERM the current server, SIGKILL after 5 s.
stop() {
  [ -n "$PID" ] || return 0
  kill "$PID" 2>/dev/null || true
  local i
  for i in $(seq 1 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  PID=
  sleep 0.5 # let the sockets of the last run drain
}

mkdir -p bench/results
out=${RESULTS:-bench/results/latest.jsonl}
mkdir -p "$(dirname "$out")"
: >"$out"
run_id=$(date -u +%Y%m%dT%H%M%SZ)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- src 2>/dev/null || commit="$commit+dirty"
failed=()
# The console (tables, warnings, summary) is also kept beside the results.
exec > >(tee "${out%.jsonl}.log") 2>&1

# run LABEL SERVER BENCH-ARGS...: runs the bench against the current server (PID, PORT), prints
# its table, appends its JSON line (with label, server, run, loadavg) to $out.
run() {
  local label=$1 server=$2; shift 2
  local target_args=(--url "ws://127.0.0.1:$PORT/ws")
  case $server in switchyard|fresh) ;; *) target_args+=(--target "$server") ;; esac
  local load busy
  load=$(cut -d' ' -f1 /proc/loadavg)
  busy=$(ps -eo comm= | grep -cE '^(rustc|cargo|cc1|cc1plus|ld|lld|clang|zig|switchyard-benc)$' || true)
  local probe
  probe=$("$B" memprobe --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["mem_probe"]["ns_per_load"])' 2>/dev/null || echo null)
  echo
  local round=""
  [ -n "${ROUND:-}" ] && ((ROUNDS > 1)) && round=", round $ROUND of $ROUNDS"
  echo "=== $label ($server)$round; memory latency $probe ns"
  local res rc=0 c0 c1
  c0=$(cpu_ticks "$PID")
  ${PIN_BENCH:+taskset -c $PIN_BENCH} "$B" "$@" "${target_args[@]}" --server-pid "$PID" --json >"$work/out.txt" 2>"$work/err.txt" || rc=$?
  sed '$d' "$work/out.txt"
  [ -s "$work/err.txt" ] && cat "$work/err.txt" >&2
  res=$(tail -n1 "$work/out.txt")
  local alive=true
  kill -0 "$PID" 2>/dev/null || alive=false
  c1=$(cpu_ticks "$PID")
  local cpu_s
  cpu_s=$(python3 -c "import sys; print(round(($c1 - $c0) / $(getconf CLK_TCK), 2))")
  local meta="\"run\":\"$run_id\",\"label\":\"$label\",\"server\":\"$server\",\"loadavg_before\":$load,\"other_busy_procs\":${busy:-0},\"bench_exit\":$rc,\"server_alive_after\":$alive,\"server_cpu_s\":$cpu_s,\"commit\":\"$commit\",\"round\":${ROUND:-1},\"mem_probe_ns\":$probe"
  if [[ "$res" == \{* ]]; then
    printf '{%s,%s\n' "$meta" "${res#\{}" >>"$out"
  else
    printf '{%s,"error":"no result (exit %s)"}\n' "$meta" "$rc" >>"$out"
  fi
  if [ "$rc" -ne 0 ] || [ "$alive" = false ] || [[ "$res" != \{* ]]; then
    failed+=("$label/$server (bench exit $rc, server alive: $alive)")
    [ "$alive" = false ] && tail -n 20 "$LOG" >&2
  fi
  [ "${busy:-0}" -gt 0 ] && note "warning: $busy compiler/bench processes were running before $label ($server): noisy numbers"
  return 0
}

# rounds LABEL "SERVERS" MANIFEST BENCH-ARGS...: ROUNDS rounds, each server once per round on a
# fresh process, the order rotated by one each round so no server always follows the same one.
rounds() {
  local label=$1 manifest=$3 r i
  local -a servers=($2)
  shift 3
  local n=${#servers[@]}
  for ((r = 0; r < ROUNDS; r++)); do
    for ((i = 0; i < n; i++)); do
      local s=${servers[$(((i + r) % n))]}
      start "$s" "$manifest"
      ROUND=$((r + 1)) run "$label" "$s" "$@"
      stop
    done
  done
}

# each LABEL MANIFEST BENCH-ARGS...: one round against switchyard, axum and node.
each() {
  local label=$1 manifest=$2
  shift 2
  ROUNDS=1 rounds "$label" "switchyard axum node" "$manifest" "$@"
}

note "results -> $out (run $run_id); servers log to $work"
t_start=$(date +%s)

# ---------------------------------------------------------------------------------------------
# Scenarios

if want echo; then
  rounds echo_10x8 "switchyard fresh axum node" handlers/switchyard.toml echo -c 10 -k 8 -d "$DUR" --warmup "$WARMUP"
  rounds echo_1000x1 "switchyard fresh axum node" handlers/switchyard.toml echo -c 1000 -k 1 -d "$DUR" --warmup "$WARMUP"
fi

if want turns; then
  # All four servers up at once; the generator loads one per TURN_WINDOW window, in turns, each
  # keeping its connections (the first 250 ms of a turn are not counted). TURN_WARMUP gives
  # every server several turns before measuring (Node's JIT needs seconds of load).
  declare -A turn_pid
  for t in echo_turns_10x8:10:8 echo_turns_1000x1:1000:1; do
    IFS=: read -r label c k <<<"$t"
    vs=()
    for s in node axum fresh; do
      start "$s"
      vs+=(--vs "$s=$([ "$s" = fresh ] && echo switchyard || echo "$s"),ws://127.0.0.1:$PORT/ws,$PID")
      turn_pid[$s]=$PID
    done
    start switchyard
    run "$label" switchyard alternate --name switchyard "${vs[@]}" -c "$c" -k "$k" \
      --window "$TURN_WINDOW" -d "$TURN_DUR" --warmup "$TURN_WARMUP"
    stop
    for s in node axum fresh; do
      PID=${turn_pid[$s]}
      stop
    done
  done
fi

if want pinned; then
  # The same 1000x1 echo with the server on CPU 0 and the generator on CPU 1: one core each, so
  # the ratio is per-core efficiency (Node is single-threaded; unpinned, the others also use
  # whatever the generator leaves of the second core).
  PIN_SERVER=0 PIN_BENCH=1 rounds echo_1000x1_pinned "switchyard axum node" handlers/switchyard.toml echo -c 1000 -k 1 -d "$DUR" --warmup "$WARMUP"
fi

if want lang; then
  # Same server, a manifest routing `echo` to each language's echo.wasm.
  for l in "${langs[@]}"; do
    start switchyard "bench/manifests/echo-$l.toml"
    run "echo_10x8_$l" switchyard echo -c 10 -k 8 -d "$DUR" --warmup "$WARMUP"
    stop
  done
fi

if want fanout; then
  each fanout_5000 handlers/switchyard.toml fanout -c 5000 -m "$FANOUT_M"
fi

if want idle; then
  each "idle_$IDLE_N" handlers/switchyard.toml idle -c "$IDLE_N" -d "$IDLE_HOLD" --warmup 3 --ping-interval 5
fi

if want churn; then
  each churn handlers/switchyard.toml churn -d "$DUR" --warmup 1 -c 1000
fi

if want swap; then
  # The bench replaces echo.wat in a scratch copy (write temp + rename), v1 <-> v2.
  mkdir -p "$work/swap"
  cp bench/manifests/swap.toml "$work/swap/switchyard.toml"
  cp tests/wat/echo.wat "$work/swap/echo.wat"
  start switchyard "$work/swap/switchyard.toml"
  run swap switchyard swap -c 10 -k 4 --warmup "$WARMUP" --module-path "$work/swap/echo.wat" \
    --v1 tests/wat/echo.wat --v2 tests/wat/echo_v2.wat --v2-marker '"v":2' \
    --swaps "$SWAPS" --swap-interval-ms "$SWAP_INTERVAL_MS" --swap-timeout 5
  stop
fi

if want hostile; then
  # 1 s windows alternate without and with HOSTILE_ATTACKERS clients calling an infinite loop
  # (stopped by the 100 ms deadline); the p99 ratio (attack windows / baseline windows) is the
  # result. Alternating, rather than one half then the other, keeps the machine's own slow
  # drifts out of the ratio.
  start switchyard bench/manifests/hostile.toml
  run hostile switchyard hostile -c 10 -k 4 -a "$HOSTILE_ATTACKERS" --attack-event loop --baseline \
    --alternate 1 -d "$HOSTILE_DUR" --warmup "$WARMUP"
  stop
fi

note "scenarios took $(($(date +%s) - t_start)) s"
[ -n "${RESULTS:-}" ] || cp "$out" "bench/results/run-$run_id.jsonl"

# ---------------------------------------------------------------------------------------------
# Summary

{ python3 - "$out" "$run_id" <<'PY' || note "the summary failed (results are in $out)"; } | tee "${out%.jsonl}-summary.md"
import json, sys
from statistics import median

rows = []
for l in open(sys.argv[1]):
    try:
        r = json.loads(l)
    except ValueError:
        continue
    # Only this run's lines (another writer may have appended to the same file).
    if isinstance(r, dict) and r.get("run") == sys.argv[2] and "server" in r:
        rows.append(r)
# (label, server) -> that server's rows, one per round (the echo scenarios run several rounds).
res = {}
for r in rows:
    res.setdefault((r["label"], r["server"]), []).append(r)

def num(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None

def at(*path):
    """A measure: the number at this path of a result row."""
    def m(r):
        v = r
        for p in path:
            if not isinstance(v, dict):
                return None
            v = v.get(p)
        return num(v)
    return m

def cpu_per_msg(r):
    c, n = num(r.get("server_cpu_s")), at("requests", "replies")(r)
    return c * 1e6 / n if c is not None and n else None

def val(label, server, m):
    """The median over rounds of a measure."""
    vs = [v for v in (m(r) for r in res.get((label, server), [])) if v is not None]
    return median(vs) if vs else None

def get(label, server, *path):
    return val(label, server, at(*path))

def one(label, server):
    """The single result row of a scenario run once."""
    rs = res.get((label, server))
    return rs[0] if rs else None

def paired(label, a, b, m):
    """a/b within each round, in round order: both servers measured minutes apart at most."""
    per = {s: {r.get("round", 1): m(r) for r in res.get((label, s), [])} for s in (a, b)}
    return [per[a][k] / per[b][k] for k in sorted(per[a]) if per[a][k] and per[b].get(k)]

def fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, float) and v < 100:
        return f"{v:.2f}{unit}"
    return f"{v:,.0f}{unit}"

def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None

def rx(v):
    return "-" if v is None else f"{v:.2f}x"

def rspread(rs):
    """The median of per-round ratios, with every round's when there are several."""
    if not rs:
        return "-"
    # Three decimals: a median of 1.4978 must not read as "1.50x, MISSED".
    return f"{median(rs):.3f}x" + (" (" + ", ".join(f"{x:.3f}" for x in rs) + ")" if len(rs) > 1 else "")

def errs(label, server):
    vs = [at("errors", "total")(r) for r in res.get((label, server), [])]
    vs = [v for v in vs if v is not None]
    return sum(vs) if vs else None

print(f"run {rows[0]['run'] if rows else '-'}, commit {rows[0].get('commit', '-') if rows else '-'}")
nr = max((r.get("round", 1) for r in rows), default=1)
if nr > 1:
    print(f"\nEcho scenarios: medians of {nr} interleaved rounds; each ratio is the median of the ratios "
          "within a round (every round's in brackets in the targets table).")
print("\n| scenario | switchyard | axum | node | sy/axum | sy/node | errors (sy/axum/node) |")
print("|---|---|---|---|---|---|---|")
verdicts = []

def tri(name, label, m, sy="switchyard"):
    """One table row: the measure for Switchyard (or its instance = fresh twin) and the peers."""
    v = {s: val(label, s, m) for s in (sy, "axum", "node")}
    if all(x is None for x in v.values()):
        return None
    ra, rn = paired(label, sy, "axum", m), paired(label, sy, "node", m)
    e = "/".join(fmt(errs(label, s)) for s in (sy, "axum", "node"))
    print(f"| {name} | {fmt(v[sy])} | {fmt(v['axum'])} | {fmt(v['node'])} "
          f"| {rx(median(ra)) if ra else '-'} | {rx(median(rn)) if rn else '-'} | {e} |")
    return {"sy": v[sy], "axum": ra, "node": rn}

e1 = tri("echo 10x8 msgs/s", "echo_10x8", at("throughput_msgs_s"))
e1r = tri("echo 10x8 msgs/s, instance = fresh", "echo_10x8", at("throughput_msgs_s"), "fresh")
tri("echo 10x8 p99 µs", "echo_10x8", at("latency", "p99_us"))
tri("echo 10x8 p99 µs, instance = fresh", "echo_10x8", at("latency", "p99_us"), "fresh")
tri("echo 10x8 server CPU µs/msg", "echo_10x8", cpu_per_msg)
tri("echo 10x8 server CPU µs/msg, instance = fresh", "echo_10x8", cpu_per_msg, "fresh")
tri("echo 10x8 generator CPU µs/msg (measured window)", "echo_10x8", at("window_cpu_us_per_msg", "generator"))
e2 = tri("echo 1000x1 msgs/s", "echo_1000x1", at("throughput_msgs_s"))
e2r = tri("echo 1000x1 msgs/s, instance = fresh", "echo_1000x1", at("throughput_msgs_s"), "fresh")
tri("echo 1000x1 p99 µs", "echo_1000x1", at("latency", "p99_us"))
tri("echo 1000x1 p99 µs, instance = fresh", "echo_1000x1", at("latency", "p99_us"), "fresh")
tri("echo 1000x1 server CPU µs/msg", "echo_1000x1", cpu_per_msg)
tri("echo 1000x1 server CPU µs/msg, instance = fresh", "echo_1000x1", cpu_per_msg, "fresh")
tri("echo 1000x1 generator CPU µs/msg (measured window)", "echo_1000x1", at("window_cpu_us_per_msg", "generator"))
e3 = tri("echo 1000x1 msgs/s, pinned (server CPU 0, generator CPU 1)", "echo_1000x1_pinned", at("throughput_msgs_s"))
tri("echo 1000x1 server CPU µs/msg, pinned", "echo_1000x1_pinned", cpu_per_msg)
fo = tri("fanout 5000 deliveries/s", "fanout_5000", at("deliveries_per_s"))
tri("fanout 5000 delivery p99 µs", "fanout_5000", at("latency", "p99_us"))
idle_label = next((l for (l, _) in res if l.startswith("idle_")), "idle_10000")
idle = {s: get(idle_label, s, "rss_per_conn_bytes") for s in ("switchyard", "axum", "node")}
idle_kib = {s: (None if v is None else v / 1024) for s, v in idle.items()}
if any(v is not None for v in idle.values()):
    e = "/".join(fmt(errs(idle_label, s)) for s in ("switchyard", "axum", "node"))
    print(f"| {idle_label.replace('_', ' ')} RSS KiB/conn | {fmt(idle_kib['switchyard'])} | {fmt(idle_kib['axum'])} "
          f"| {fmt(idle_kib['node'])} | {rx(ratio(idle_kib['switchyard'], idle_kib['axum']))} "
          f"| {rx(ratio(idle_kib['switchyard'], idle_kib['node']))} | {e} |")
ch = tri("churn new conns/s", "churn", at("connections_per_s"))
tri("churn connect p99 µs", "churn", at("connect_latency", "p99_us"))

# Echo with the four servers up at once, loaded in turns (one result row per load).
turn_names = ("switchyard", "fresh", "axum", "node")
turns = {}
for lab, nm in (("echo_turns_10x8", "10x8"), ("echo_turns_1000x1", "1000x1")):
    r = one(lab, "switchyard")
    if r and r.get("servers"):
        turns[nm] = {x["name"]: x for x in r["servers"]}

def turn_ratio(sv, a, b):
    """(overall, per-cycle list) of a's msgs/s over b's, servers loaded in turns."""
    if a not in sv or b not in sv:
        return None, []
    ov = ratio(num(sv[a].get("throughput_msgs_s")), num(sv[b].get("throughput_msgs_s")))
    x, y = sv[a].get("per_window_msgs_s") or [], sv[b].get("per_window_msgs_s") or []
    return ov, [p / q for p, q in zip(x, y) if p and q]

def tspread(ov, pc):
    if ov is None:
        return "-"
    return f"{ov:.3f}x" + (f" (per cycle {min(pc):.3f}-{max(pc):.3f}, {len(pc)} cycles)" if pc else "")

if turns:
    print("\nEcho with all four servers up at once, loaded in turns (switchyard-bench alternate): "
          "the same host conditions for every server; ratios overall and per cycle of turns.")
    print("\n| echo, servers in turns | switchyard | fresh | axum | node | sy/axum | sy/node | fresh/axum | fresh/node |")
    print("|---|---|---|---|---|---|---|---|---|")
    for nm, sv in turns.items():
        g = lambda s, *path: at(*path)(sv[s]) if s in sv else None
        for what, path in (("msgs/s", ("throughput_msgs_s",)), ("p99 µs", ("latency", "p99_us")),
                           ("server CPU µs/msg", ("server_cpu_us_per_msg",))):
            cells = " | ".join(fmt(g(s, *path)) for s in turn_names)
            rs = " | ".join(rx(ratio(g(a, *path), g(b, *path))) for a, b in
                            (("switchyard", "axum"), ("switchyard", "node"), ("fresh", "axum"), ("fresh", "node")))
            print(f"| {nm} {what} | {cells} | {rs} |")
        r = one("echo_turns_" + nm, "switchyard")
        gen = num(r.get("generator_cpu_us_per_msg")) if r else None
        print(f"| {nm} generator CPU µs/msg, errors | {fmt(gen)} (all servers) | | | | errors {fmt(errs('echo_turns_' + nm, 'switchyard'))} | | | |")

langs = [l for l in ("rust", "c", "zig", "assemblyscript") if ("echo_10x8_" + l, "switchyard") in res]
if langs:
    base = get("echo_10x8_rust", "switchyard", "throughput_msgs_s")
    print("\n| echo 10x8 by handler language | msgs/s | p99 µs | server CPU µs/msg | vs rust (msgs/s) | errors |")
    print("|---|---|---|---|---|---|")
    for l in langs:
        t = get("echo_10x8_" + l, "switchyard", "throughput_msgs_s")
        print(f"| {l} | {fmt(t)} | {fmt(get('echo_10x8_' + l, 'switchyard', 'latency', 'p99_us'))} "
              f"| {fmt(val('echo_10x8_' + l, 'switchyard', cpu_per_msg))} "
              f"| {rx(ratio(t, base))} | {fmt(errs('echo_10x8_' + l, 'switchyard'))} |")

sw = one("swap", "switchyard")
if sw:
    s = sw.get("swap") or {}
    a, b = s.get("v1->v2") or {}, s.get("v2->v1") or {}
    print("\n| swap | value |\n|---|---|")
    print(f"| swaps observed (v1->v2, v2->v1) | {a.get('observed')} + {b.get('observed')} of {sw.get('swaps')} "
          f"(unobserved {a.get('unobserved')} + {b.get('unobserved')}) |")
    print(f"| write -> first new reply p50 / max ms (v1->v2) | {a.get('p50_ms')} / {a.get('max_ms')} |")
    print(f"| write -> first new reply p50 / max ms (v2->v1) | {b.get('p50_ms')} / {b.get('max_ms')} |")
    print(f"| stale replies after the switch | {a.get('stale_replies')} + {b.get('stale_replies')} |")
    print(f"| errors / missing replies | {(sw.get('errors') or {}).get('total')} / {sw.get('missing_replies')} |")
    print(f"| echo under swaps msgs/s, p99 µs | {fmt(sw.get('throughput_msgs_s'))}, {fmt((sw.get('latency') or {}).get('p99_us'))} |")

ho = one("hostile", "switchyard")
if ho:
    r = ho.get("ratio") or {}
    att = ho.get("attack") or {}
    print("\n| hostile | baseline | with attackers | ratio |\n|---|---|---|---|")
    print(f"| echo p99 µs | {fmt((ho.get('baseline_latency') or {}).get('p99_us'))} | {fmt((ho.get('attack_latency') or {}).get('p99_us'))} | {rx(r.get('p99'))} |")
    print(f"| echo p50 µs | {fmt((ho.get('baseline_latency') or {}).get('p50_us'))} | {fmt((ho.get('attack_latency') or {}).get('p50_us'))} | {rx(r.get('p50'))} |")
    print(f"| echo msgs/s | {fmt(ho.get('baseline_throughput_msgs_s'))} | {fmt(ho.get('attack_throughput_msgs_s'))} | {rx(r.get('throughput'))} |")
    print(f"| attackers: {ho.get('attackers')}, sent {att.get('sent')}, error replies {att.get('error_replies')}, timeouts {att.get('timeouts')}, dropped {att.get('dropped')} | | | |")

# Targets.
def verdict(name, ok, measured):
    if ok is None:
        verdicts.append((name, "NOT RUN", measured))
    else:
        verdicts.append((name, "MET" if ok else "MISSED", measured))

for nm, e in (("10x8", e1), ("10x8, instance = fresh", e1r), ("1000x1", e2), ("1000x1, instance = fresh", e2r)):
    if e and e["sy"] is not None:
        ra, rn = e["axum"], e["node"]
        verdict(f"echo {nm} >= 0.85x axum", median(ra) >= 0.85 if ra else None, rspread(ra))
        verdict(f"echo {nm} >= 1.5x node", median(rn) >= 1.5 if rn else None, rspread(rn))
    else:
        verdict(f"echo {nm} vs axum / node", None, "-")
for nm, sv in turns.items():
    for who, fresh in (("", "switchyard"), (", instance = fresh", "fresh")):
        for peer, want in (("axum", 0.85), ("node", 1.5)):
            ov, pc = turn_ratio(sv, fresh, peer)
            verdict(f"echo {nm}{who} >= {want}x {peer} (servers in turns)", None if ov is None else ov >= want, tspread(ov, pc))
if fo and fo["node"]:
    verdict("fanout 5000 >= 1.5x node deliveries/s", median(fo["node"]) >= 1.5, rspread(fo["node"]))
else:
    verdict("fanout 5000 >= 1.5x node deliveries/s", None, "-")
k = idle_kib.get("switchyard")
verdict("idle: <= 8 KiB server RSS per conn", None if k is None else k <= 8, "-" if k is None else f"{k:.2f} KiB")
c = ch["sy"] if ch else None
verdict("churn >= 5,000 new auth conns/s", None if c is None else c >= 5000, fmt(c) + "/s" if c is not None else "-")
if sw:
    s = sw.get("swap") or {}
    a, b = s.get("v1->v2") or {}, s.get("v2->v1") or {}
    er, miss = (sw.get("errors") or {}).get("total"), sw.get("missing_replies")
    obs = (a.get("observed") or 0) + (b.get("observed") or 0)
    mxs = [x for x in (a.get("max_ms"), b.get("max_ms")) if x is not None]
    mx = max(mxs) if mxs else None
    verdict(f"swap: 0 errors, 0 missing over {sw.get('swaps')} swaps", er == 0 and miss == 0 and obs == sw.get("swaps"),
            f"errors {er}, missing {miss}, observed {obs}")
    verdict("swap: new version within 250 ms of the write", None if mx is None else mx <= 250, f"max {mx} ms")
else:
    verdict("swap", None, "-")
if ho and (ho.get("ratio") or {}).get("p99") is not None:
    p = ho["ratio"]["p99"]
    verdict("hostile: p99 with attackers <= 2x without", p <= 2.0, rx(p))
else:
    verdict("hostile: p99 with attackers <= 2x without", None, "-")

print("\n| target | verdict | measured |\n|---|---|---|")
for n, v, m in verdicts:
    print(f"| {n} | **{v}** | {m} |")
# Every echo window in the order it ran, with the machine's memory latency just before it: a
# slow window with a high latency is the host, not the server.
for lab in ("echo_1000x1", "echo_10x8"):
    seq = [r for r in rows if r["label"] == lab]
    if len(seq) > 4:
        print(f"\n| {lab} window | server | msgs/s | server CPU µs/msg | memory latency before (ns) |\n|---|---|---|---|---|")
        for i, r in enumerate(seq, 1):
            print(f"| {i} (round {r.get('round', 1)}) | {r['server']} | {fmt(at('throughput_msgs_s')(r))} "
                  f"| {fmt(cpu_per_msg(r))} | {fmt(num(r.get('mem_probe_ns')))} |")
noisy = [f"{r['label']}/{r['server']}" for r in rows if r.get("other_busy_procs")]
if noisy:
    print(f"\nnoisy (compilers or another bench were running when it started): {', '.join(noisy)}")
PY

if [ ${#failed[@]} -gt 0 ]; then
  echo >&2
  note "FAILED runs:"
  printf '  %s\n' "${failed[@]}" >&2
  exit 1
fi
