//! The scenarios. Each one connects, runs under a global deadline (it can fail, never hang) and
//! returns its result as one JSON object and an exit code. bench/README.md says what each
//! measures.

use std::future::Future;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until};

use crate::load::{Load, SwapWatch, echo_worker};
use crate::net::{Env, Http, Ws, close_ws, connect_all, send_text, text_of};
use crate::stats::{Counter, Errors, Frame, Hist, LocalHist, cpu_secs, find_num, lat_json, rss_kib};
use crate::{ChurnArgs, Common, FanoutArgs, HostileArgs, IdleArgs, SwapArgs, Target};

/// A scenario's result and the process's exit code.
pub type Outcome = (Value, i32);

/// A scenario's global deadline: a connect ramp of `n` sockets (above the ramp's own deadline
/// in connect_all), `span` of load, and slack.
pub(crate) fn deadline(env: &Env, n: usize, span: Duration) -> Duration {
    Duration::from_secs(130) + env.timeout * 4 + Duration::from_millis(20 * n as u64) + span
}

pub(crate) async fn with_deadline<T>(d: Duration, what: &str, f: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(d, f).await.map_err(|_| anyhow!("{what}: global deadline of {d:.0?} exceeded"))?
}

pub(crate) fn rate(n: u64, d: Duration) -> f64 {
    if d.is_zero() { 0.0 } else { n as f64 / d.as_secs_f64() }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// `body` with the fields every result has.
pub(crate) fn result(scenario: &str, env: &Env, errors: &Errors, body: Value) -> Value {
    merge(body, json!({"scenario": scenario, "target": env.target, "url": env.ws_url(None), "errors": errors.json()}))
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

pub(crate) async fn join_all<T: 'static>(set: &mut JoinSet<T>) -> Vec<T> {
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.extend(r.ok());
    }
    out
}

/// Connections, requests in flight per connection, warmup, measured duration.
type Shape = (usize, usize, Duration, Duration);

/// Connections running the closed loop, to be joined.
struct EchoRun {
    ld: Arc<Load>,
    set: JoinSet<()>,
    live: usize,
    connect: Value,
}

/// Connects `n` sockets, builds the Load (customised by `f`) and starts one closed-loop worker
/// per socket. The Load's clock starts after the ramp.
async fn start_echo(env: &Arc<Env>, shape: Shape, errors: &Arc<Errors>, f: impl FnOnce(&mut Load)) -> EchoRun {
    let (n, k, warm, dur) = shape;
    let (conns, connect) = connect_all(env, 0, n, errors).await;
    let mut ld = Load::new("echo", k, warm, dur, errors.clone());
    ld.req_timeout = env.timeout;
    f(&mut ld);
    let ld = Arc::new(ld);
    let live = conns.len();
    let mut set = JoinSet::new();
    for (i, ws) in conns {
        set.spawn(echo_worker(ws, i, ld.clone()));
    }
    EchoRun { ld, set, live, connect }
}

/// Throughput and latency of phase `p` of a finished load.
fn phase_json(ld: &Load, p: usize) -> (f64, Value) {
    let tput = rate(ld.ok[p].get(), ld.window(p));
    (tput, json!({"throughput_msgs_s": round1(tput), "latency": lat_json(&ld.hists[p].merged())}))
}

fn totals(ld: &Load) -> Value {
    json!({"sent": ld.sent.get(), "replies": ld.replies.get(), "missing": ld.missing.get(), "other_frames": ld.others.get()})
}

// ---------------------------------------------------------------------------------------------
// echo / smoke

/// Echo: N connections x K in flight. Smoke: 4 x 2 for 3 s, failing unless replies came and no
/// error did.
pub async fn echo(env: Arc<Env>, c: &Common, smoke: bool) -> Result<Outcome> {
    let (n, k, warm, dur) = if smoke { c.shape(4, 2, 1.0, 3.0) } else { c.shape(10, 1, 2.0, 10.0) };
    with_deadline(deadline(&env, n, warm + dur), "echo", async {
        let errors = Arc::new(Errors::default());
        let mut run = start_echo(&env, (n, k, warm, dur), &errors, |_| {}).await;
        // CPU used by the server and by this generator inside the measured window (they share
        // the machine: what one uses per message, the other cannot).
        let cpu = |pid: Option<u32>| pid.and_then(cpu_secs);
        let me = Some(std::process::id());
        let mut window = None;
        if run.live > 0 {
            sleep_until(run.ld.measure_start.into()).await;
            let (t0, s0, b0) = (Instant::now(), cpu(env.server_pid), cpu(me));
            sleep_until((run.ld.end() - Duration::from_millis(100).min(dur)).into()).await;
            let (s1, b1) = (cpu(env.server_pid), cpu(me));
            window = Some((t0.elapsed(), s0.zip(s1).map(|(a, b)| b - a), b0.zip(b1).map(|(a, b)| b - a)));
        }
        join_all(&mut run.set).await;
        let (tput, phase) = phase_json(&run.ld, 0);
        // Per message in the same span, at the window's average rate.
        let per = |(span, c): (Duration, Option<f64>)| c.map(|c| c * 1e6 / (tput * span.as_secs_f64()));
        let cpu_us = window
            .filter(|_| tput > 0.0)
            .map(|(span, s, b)| json!({"server": per((span, s)), "generator": per((span, b))}));
        let pass = tput > 0.0 && errors.total() == 0;
        let body = json!({"n": n, "k": k, "duration_s": dur.as_secs_f64(), "connect": run.connect,
            "cpu_us_per_msg": cpu_us, "requests": totals(&run.ld), "pass": smoke.then_some(pass)});
        let code = if (smoke && !pass) || run.live == 0 { 1 } else { 0 };
        Ok((result(if smoke { "smoke" } else { "echo" }, &env, &errors, merge(body, phase)), code))
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// fanout

struct FanCtx {
    /// Event of the pushed frames the clients count.
    event: String,
    m: usize,
    base: Instant,
    /// When message `i` was handed to the API, ns after `base` (0 = not yet).
    send_ns: Vec<AtomicU64>,
    hists: Hist,
    /// Switchyard: the tag every client joins first.
    join_tag: Option<String>,
    timeout: Duration,
    /// Clients that joined, and that failed to.
    ready: Counter,
    not_ready: Counter,
    errors: Arc<Errors>,
}

pub(crate) async fn join_tag(ws: &mut Ws, tag: &str) -> Result<(), String> {
    let req = json!({"event": "join", "data": {"id": tag}}).to_string();
    send_text(ws, req).await.map_err(|e| format!("join: {e}"))?;
    loop {
        let Some(t) = text_of(ws.next().await).map_err(|e| format!("join: {e}"))? else { continue };
        match Frame::parse(&t) {
            Some(f) if f.event() == "join" && f.ok() => return Ok(()),
            Some(f) if !f.ok() => return Err(format!("join: {t}")),
            _ => {}
        }
    }
}

/// One subscriber: joins, then counts deliveries until it has all M or is told to stop.
/// Returns (deliveries, ns after base of the last one).
async fn fan_client(mut ws: Ws, cx: Arc<FanCtx>, mut stop: watch::Receiver<bool>) -> (u64, u64) {
    if let Some(tag) = &cx.join_tag {
        let joined = tokio::time::timeout(cx.timeout, join_tag(&mut ws, tag)).await;
        if let Err(e) = joined.unwrap_or_else(|_| Err("join: no reply".into())) {
            cx.errors.one(|| e);
            cx.not_ready.add(1);
            return (0, 0);
        }
    }
    cx.ready.add(1);
    let mut hist = LocalHist::new(&cx.hists);
    let (mut got, mut last) = (0u64, 0u64);
    while (got as usize) < cx.m {
        let t = tokio::select! {
            r = ws.next() => match text_of(r) {
                Ok(Some(t)) => t,
                Ok(None) => continue,
                Err(e) => { cx.errors.one(|| e); return (got, last) }
            },
            _ = stop.changed() => break,
        };
        let now = Instant::now();
        match Frame::parse(&t) {
            Some(f) if !f.ok() => cx.errors.one(|| t.to_string()),
            Some(f) if f.event() == cx.event => {
                got += 1;
                last = now.saturating_duration_since(cx.base).as_nanos() as u64;
                if let Some(i) = find_num(&t, "m").filter(|&i| (i as usize) < cx.m) {
                    let s = cx.send_ns[i as usize].load(Relaxed);
                    if s > 0 {
                        hist.record(now.saturating_duration_since(cx.base + Duration::from_nanos(s)));
                    }
                }
            }
            Some(_) => {}
            None => cx.errors.one(|| format!("bad json: {t}")),
        }
    }
    drop(hist);
    close_ws(ws, Duration::from_secs(2)).await;
    (got, last)
}

/// N subscribers (Switchyard: in tag `bench`), then M messages POSTed one after the other on
/// one keep-alive connection (Switchyard `/api/send/tag`, the peers `/broadcast`).
pub async fn fanout(env: Arc<Env>, a: &FanoutArgs) -> Result<Outcome> {
    let (n, m) = (a.c.shape(1000, 1, 0.0, 0.0).0, a.messages);
    let send_cap = Duration::from_secs(60) + Duration::from_millis(10 * m as u64);
    let grace = Duration::from_secs(15);
    with_deadline(deadline(&env, n, send_cap + grace), "fanout", async {
        let sy = env.target == Target::Switchyard;
        let path = if sy { "/api/send/tag" } else { "/broadcast" };
        let errors = Arc::new(Errors::default());
        let (conns, connect) = connect_all(&env, 0, n, &errors).await;
        let cx = Arc::new(FanCtx {
            event: if sy { "bench.fanout" } else { "broadcast" }.into(),
            m,
            base: Instant::now(),
            send_ns: (0..m).map(|_| AtomicU64::new(0)).collect(),
            hists: Hist::new(),
            join_tag: sy.then(|| "bench".into()),
            timeout: env.timeout,
            ready: Counter::default(),
            not_ready: Counter::default(),
            errors: errors.clone(),
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let live = conns.len();
        let mut set = JoinSet::new();
        for (_, ws) in conns {
            set.spawn(fan_client(ws, cx.clone(), stop_rx.clone()));
        }
        // Wait until every client joined its tag (bounded).
        let ready_by = Instant::now() + env.timeout + Duration::from_secs(5);
        while (cx.ready.get() + cx.not_ready.get()) < live as u64 && Instant::now() < ready_by {
            sleep(Duration::from_millis(20)).await;
        }
        let ready = cx.ready.get();

        let mut http = Http::new(env.ws.clone(), env.timeout);
        let key = sy.then_some(env.api_key.as_str());
        let (mut sent_ok, t_first) = (0u64, Instant::now());
        for i in 0..m {
            if t_first.elapsed() > send_cap {
                errors.add((m - i) as u64, || format!("send phase cap {send_cap:?} reached; {} not sent", m - i));
                break;
            }
            let body = match sy {
                true => format!("{{\"tag\":\"bench\",\"event\":\"bench.fanout\",\"data\":{{\"m\":{i}}}}}"),
                false => format!("{{\"m\":{i}}}"),
            };
            cx.send_ns[i].store(Instant::now().saturating_duration_since(cx.base).as_nanos().max(1) as u64, Relaxed);
            match http.post(path, &body, key).await {
                Ok((200, _)) => sent_ok += 1,
                Ok((status, body)) => errors.one(|| format!("POST {path}: HTTP {status} {body}")),
                Err(e) => errors.one(|| format!("POST {path}: {e:#}")),
            }
        }
        let send_time = t_first.elapsed();

        // Wait for the deliveries; after the grace, tell the clients to stop.
        let mut results = Vec::with_capacity(live);
        let all = async {
            while let Some(r) = set.join_next().await {
                results.extend(r.ok())
            }
        };
        let _ = tokio::time::timeout(grace, all).await;
        let _ = stop_tx.send(true);
        results.extend(join_all(&mut set).await);
        let received: u64 = results.iter().map(|x| x.0).sum();
        let last_ns = results.iter().map(|x| x.1).max().unwrap_or(0);
        let expected = ready * sent_ok;
        let missing = expected.saturating_sub(received);
        errors.add(missing, || format!("{missing} deliveries missing after {grace:?} of grace"));
        // From the first send to the last delivery.
        let span = Duration::from_nanos(last_ns).saturating_sub(t_first - cx.base);
        let body = json!({"n": n, "m": m, "connect": connect, "subscribed": ready,
            "deliveries_per_s": rate(received, span).round(), "time_s": span.as_secs_f64(),
            "deliveries": {"received": received, "expected": expected, "missing": missing},
            "api": {"sent_ok": sent_ok, "req_per_s": rate(sent_ok, send_time).round()},
            "latency": lat_json(&cx.hists.merged())});
        Ok((result("fanout", &env, &errors, body), if live > 0 { 0 } else { 1 }))
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// idle

struct IdleCtx {
    base: Instant,
    n: usize,
    interval: Option<Duration>,
    timeout: Duration,
    pings: Counter,
    pongs: Counter,
    errors: Arc<Errors>,
}

impl IdleCtx {
    fn new(n: usize, interval: Option<Duration>, env: &Env, errors: &Arc<Errors>) -> Arc<Self> {
        let (pings, pongs) = Default::default();
        Arc::new(Self { base: Instant::now(), n, interval, timeout: env.timeout, pings, pongs, errors: errors.clone() })
    }
}

/// Holds one connection, sending an application `ping` every interval (staggered over the
/// connections), until `stop`. Returns whether the connection was still alive at the end.
async fn idle_conn(mut ws: Ws, id: usize, cx: Arc<IdleCtx>, mut stop: watch::Receiver<bool>) -> bool {
    let far = cx.base + Duration::from_secs(365 * 86_400);
    let mut next_ping = cx.interval.map(|iv| cx.base + iv.mul_f64(id as f64 / cx.n.max(1) as f64));
    let mut outstanding: Option<Instant> = None;
    loop {
        let ping_at = next_ping.unwrap_or(far);
        tokio::select! {
            _ = stop.changed() => break,
            _ = sleep_until(ping_at.into()), if next_ping.is_some() => {
                if outstanding.is_none() {
                    if let Err(e) = send_text(&mut ws, "{\"event\":\"ping\"}".into()).await {
                        cx.errors.one(|| format!("ping send: {e}"));
                        return false;
                    }
                    cx.pings.add(1);
                    outstanding = Some(Instant::now());
                }
                next_ping = cx.interval.map(|iv| ping_at + iv);
            }
            _ = sleep_until(outstanding.map_or(far, |t| t + cx.timeout).into()), if outstanding.is_some() => {
                cx.errors.one(|| "timeout: no reply to a ping".into());
                outstanding = None;
            }
            r = ws.next() => {
                let t = match text_of(r) {
                    Ok(Some(t)) => t,
                    Ok(None) => continue,
                    Err(e) => { cx.errors.one(|| e); return false; }
                };
                match Frame::parse(&t) {
                    Some(f) if !f.ok() => { cx.errors.one(|| t.to_string()); outstanding = None; }
                    Some(f) if f.event() == "ping" => cx.pongs.add(outstanding.take().is_some() as u64),
                    Some(_) => {}
                    None => cx.errors.one(|| format!("bad json: {t}")),
                }
            }
        }
    }
    close_ws(ws, Duration::from_secs(3)).await;
    true
}

/// N connections held open; the server's RSS before and held, per connection. Run it on a
/// fresh server: allocators rarely give memory back.
pub async fn idle(env: Arc<Env>, a: &IdleArgs) -> Result<Outcome> {
    let (n, _, warm, dur) = a.c.shape(1000, 1, 2.0, 10.0);
    with_deadline(deadline(&env, n, warm + dur), "idle", async {
        let interval = (a.ping_interval > 0.0).then(|| Duration::from_secs_f64(a.ping_interval));
        let errors = Arc::new(Errors::default());
        let rss = || env.server_pid.and_then(rss_kib);
        let rss0 = rss();
        let (conns, connect) = connect_all(&env, 0, n, &errors).await;
        let live = conns.len();
        let cx = IdleCtx::new(live, interval, &env, &errors);
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut set = JoinSet::new();
        for (k, (_, ws)) in conns.into_iter().enumerate() {
            set.spawn(idle_conn(ws, k, cx.clone(), stop_rx.clone()));
        }
        sleep(warm).await;
        let (hold_end, mut rss_max) = (Instant::now() + dur, 0);
        while Instant::now() < hold_end {
            rss_max = rss_max.max(rss().unwrap_or(0));
            sleep_until((Instant::now() + Duration::from_secs(1)).min(hold_end).into()).await;
        }
        let rss1 = rss();
        let _ = stop_tx.send(true);
        let alive = join_all(&mut set).await.into_iter().filter(|&x| x).count();
        let per_conn = rss0.zip(rss1).map(|(a, b)| ((b as f64 - a as f64) * 1024.0 / live.max(1) as f64).round());
        let body = json!({"n": n, "connect": connect, "alive_at_end": alive, "rss_before_kib": rss0,
            "rss_held_kib": rss1, "rss_max_kib": rss_max, "rss_per_conn_bytes": per_conn,
            "pings": {"sent": cx.pings.get(), "answered": cx.pongs.get()}});
        Ok((result("idle", &env, &errors, body), if live > 0 { 0 } else { 1 }))
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// churn

/// W workers connect (with a fresh token), await the welcome and close, in a loop, beside N
/// background connections held open; new connections/s and connect time.
pub async fn churn(env: Arc<Env>, a: &ChurnArgs) -> Result<Outcome> {
    let (bg, _, warm, dur) = a.c.shape(0, 1, 1.0, 10.0);
    with_deadline(deadline(&env, bg, warm + dur), "churn", async {
        let w = a.workers.max(1);
        let max = a.max_conns.unwrap_or(20_000 * (warm + dur).as_secs_f64().ceil().max(1.0) as usize);
        let errors = Arc::new(Errors::default());
        // Tokens are minted before the clock starts: signing is not what is measured.
        let tokens = env.mint_many(bg, max);
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut bg_set = JoinSet::new();
        let (conns, connect) = connect_all(&env, 0, bg, &errors).await;
        let cx = IdleCtx::new(conns.len(), None, &env, &errors);
        for (k, (_, ws)) in conns.into_iter().enumerate() {
            bg_set.spawn(idle_conn(ws, k, cx.clone(), stop_rx.clone()));
        }
        let base = Instant::now();
        let (mstart, end) = (base + warm, base + warm + dur);
        let (next, hists) = (Arc::new(AtomicUsize::new(0)), Arc::new(Hist::new()));
        let (ok, attempts) = (Arc::new(Counter::default()), Arc::new(Counter::default()));
        let mut set = JoinSet::new();
        for _ in 0..w {
            let (env, next, hists, ok, attempts, errors, tokens) =
                (env.clone(), next.clone(), hists.clone(), ok.clone(), attempts.clone(), errors.clone(), tokens.clone());
            set.spawn(async move {
                let mut hist = LocalHist::new(&hists);
                while Instant::now() < end {
                    let i = next.fetch_add(1, Relaxed);
                    if i >= max {
                        break;
                    }
                    attempts.add(1);
                    // 32 source addresses, so that TIME_WAIT never exhausts the ports.
                    let (src, t0) = (Ipv4Addr::new(127, 0, 0, 1 + (i % 32) as u8), Instant::now());
                    match env.open(src, tokens.as_ref().map(|t| t[i].as_str())).await {
                        Ok(ws) => {
                            let now = Instant::now();
                            if now >= mstart && now < end {
                                ok.add(1);
                                hist.record(now - t0);
                            }
                            close_ws(ws, Duration::from_secs(2)).await;
                        }
                        Err(e) => errors.one(|| format!("connect: {e:#}")),
                    }
                }
            });
        }
        sleep_until(end.into()).await;
        join_all(&mut set).await;
        let _ = stop_tx.send(true);
        let bg_alive = join_all(&mut bg_set).await.into_iter().filter(|&x| x).count();
        let body = json!({"workers": w, "background": bg, "background_connect": connect,
            "background_alive": bg_alive, "connections_per_s": rate(ok.get(), dur).round(),
            "latency": lat_json(&hists.merged()), "attempts": attempts.get(), "cap_reached": next.load(Relaxed) >= max});
        Ok((result("churn", &env, &errors, body), 0))
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// swap

async fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| anyhow!("{}: not a file path", path.display()))?;
    let tmp = dir.join(format!(".{}.bench-{}.tmp", name.to_string_lossy(), std::process::id()));
    tokio::fs::write(&tmp, bytes).await.with_context(|| format!("write {}", tmp.display()))?;
    tokio::fs::rename(&tmp, path).await.with_context(|| format!("rename over {}", path.display()))
}

async fn wait_seen(sw: &SwapWatch, until: Instant) -> Option<Instant> {
    while Instant::now() < until {
        if let Some(t) = sw.seen_at() {
            return Some(t);
        }
        sleep(Duration::from_millis(1)).await;
    }
    sw.seen_at()
}

pub(crate) fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Echo load while `--module-path` (v1) is replaced (write temp + rename) by v2 and v1 in turn:
/// errors, missing replies, and the time from the write to the first reply of the new version.
pub async fn swap(env: Arc<Env>, a: &SwapArgs) -> Result<Outcome> {
    let (n, k, warm, _) = a.c.shape(10, 1, 2.0, 0.0);
    let swap_timeout = Duration::from_secs_f64(a.swap_timeout.max(0.0));
    let interval = Duration::from_millis(a.swap_interval_ms);
    let per = interval.max(swap_timeout) + Duration::from_millis(100);
    let cap = per * (a.swaps as u32 + 1) + Duration::from_secs(5);
    with_deadline(deadline(&env, n, warm + cap), "swap", async {
        let v1 = tokio::fs::read(&a.module_path).await.with_context(|| format!("read {}", a.module_path.display()))?;
        let v2 = tokio::fs::read(&a.v2).await.with_context(|| format!("read --v2 {}", a.v2.display()))?;
        if a.v2_marker.is_empty() {
            bail!("--v2-marker must not be empty");
        }
        let errors = Arc::new(Errors::default());
        let sw = Arc::new(SwapWatch::new(&a.v2_marker));
        let mut run = start_echo(&env, (n, k, warm, cap), &errors, |ld| ld.swap = Some(sw.clone())).await;
        let ld = run.ld.clone();
        if run.live == 0 {
            return Ok((result("swap", &env, &errors, json!({"connect": run.connect})), 1));
        }
        sleep_until(ld.measure_start.into()).await;
        // Start from a known state: v1 in place and served.
        sw.arm(false);
        write_atomic(&a.module_path, &v1).await?;
        if wait_seen(&sw, Instant::now() + swap_timeout).await.is_none() {
            errors.one(|| "v1 never observed before the first swap".into());
        }
        // Per direction (v2->v1, v1->v2): latencies, unobserved swaps, stale replies.
        let mut dirs: [(Vec<Duration>, u64, u64); 2] = Default::default();
        for i in 0..a.swaps {
            if Instant::now() + per > ld.end() {
                errors.one(|| format!("time cap reached after {i} swaps"));
                break;
            }
            let to_v2 = i % 2 == 0;
            let (stale0, t_w) = (sw.stale.get(), Instant::now());
            sw.arm(to_v2);
            write_atomic(&a.module_path, if to_v2 { &v2 } else { &v1 }).await?;
            let d = &mut dirs[to_v2 as usize];
            match wait_seen(&sw, t_w + swap_timeout).await {
                Some(t) => d.0.push(t.saturating_duration_since(t_w)),
                None => {
                    d.1 += 1;
                    errors.one(|| format!("swap {i} (to v{}) not observed within {swap_timeout:?}", 1 + to_v2 as u8));
                }
            }
            sleep_until((t_w + interval).into()).await;
            d.2 += sw.stale.get() - stale0;
        }
        // Let the load run one more second on the final version, then drain.
        ld.set_end(Instant::now() + Duration::from_secs(1));
        join_all(&mut run.set).await;
        write_atomic(&a.module_path, &v1).await?; // as it was
        let mut swaps = serde_json::Map::new();
        for (name, (lats, unseen, stale)) in ["v2->v1", "v1->v2"].into_iter().zip(&mut dirs) {
            lats.sort();
            let (p50, max) = (lats.get(lats.len() / 2).copied().map(ms), lats.last().copied().map(ms));
            let d = json!({"observed": lats.len(), "unobserved": unseen, "p50_ms": p50, "max_ms": max, "stale_replies": stale});
            swaps.insert(name.into(), d);
        }
        let body = json!({"n": n, "k": k, "swaps": a.swaps, "connect": run.connect, "swap": swaps,
            "versions_seen": {"v1": sw.v1_replies.get(), "v2": sw.v2_replies.get()},
            "requests": totals(&ld), "missing_replies": ld.missing.get()});
        Ok((result("swap", &env, &errors, merge(body, phase_json(&ld, 0).1)), 0))
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// hostile

#[derive(Default)]
struct AttackStats {
    sent: Counter,
    err_replies: Counter,
    ok_replies: Counter,
    timeouts: Counter,
    dropped: Counter,
}

/// One attacker: one attack call in flight at a time, only inside the attack windows,
/// (re)connecting (bounded) when it has no connection. Its error replies are expected.
async fn attacker(env: Arc<Env>, idx: usize, event: String, ld: Arc<Load>, st: Arc<AttackStats>) {
    let req = |seq: u64| json!({"event": event, "data": {"n": seq}}).to_string();
    let (mut ws, mut seq, mut connects) = (None, 0, 0);
    while Instant::now() < ld.end() {
        let at = ld.attack_send_time(Instant::now());
        sleep_until(at.into()).await;
        if at >= ld.end() {
            break;
        }
        let mut w = match ws.take() {
            Some(w) => w,
            None if connects < 1000 => {
                connects += 1;
                sleep(Duration::from_millis(if connects > 1 { 100 } else { 0 })).await;
                let token = (env.target == Target::Switchyard).then(|| env.mint(idx));
                match env.open(env.source_for(idx), token.as_deref()).await {
                    Ok(w) => w,
                    Err(_) => continue,
                }
            }
            None => break,
        };
        if send_text(&mut w, req(seq)).await.is_err() {
            st.dropped.add(1);
            continue;
        }
        seq += 1;
        st.sent.add(1);
        let deadline = Instant::now() + env.timeout;
        let alive = loop {
            let counter = match tokio::time::timeout_at(deadline.into(), w.next()).await.map(text_of) {
                Err(_) => &st.timeouts,
                Ok(Ok(Some(t))) => match Frame::parse(&t) {
                    Some(f) if !f.ok() => &st.err_replies,
                    Some(f) if f.event() == event => &st.ok_replies,
                    _ => continue,
                },
                Ok(Ok(None)) => continue,
                Ok(Err(_)) => break false,
            };
            counter.add(1);
            break true;
        };
        if alive {
            ws = Some(w);
        } else {
            st.dropped.add(1);
        }
    }
    if let Some(w) = ws {
        close_ws(w, Duration::from_secs(1)).await;
    }
}

/// Echo load while attackers call a handler that never returns, in alternating windows without
/// and with the attackers: the echo's p99 (and p50, throughput) attack/baseline ratio.
pub async fn hostile(env: Arc<Env>, a: &HostileArgs) -> Result<Outcome> {
    let (n, k, warm, dur) = a.c.shape(10, 1, 2.0, 20.0);
    let window = Duration::from_secs_f64(a.window.max(0.6));
    with_deadline(deadline(&env, n + a.attackers, warm + dur), "hostile", async {
        let errors = Arc::new(Errors::default());
        let mut run = start_echo(&env, (n, k, warm, dur), &errors, |ld| ld.alternate = Some(window)).await;
        let ld = run.ld.clone();
        let st = Arc::new(AttackStats::default());
        let mut att_set = JoinSet::new();
        for j in 0..a.attackers {
            att_set.spawn(attacker(env.clone(), n + j, a.attack_event.clone(), ld.clone(), st.clone()));
        }
        join_all(&mut run.set).await;
        join_all(&mut att_set).await;
        let ((t0, base), (t1, attack)) = (phase_json(&ld, 0), phase_json(&ld, 1));
        let q = |v: &Value, q: &str| v["latency"][q].as_f64().map(|x| x.max(1.0));
        let r = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| (a / b * 100.0).round() / 100.0);
        let ratio = json!({"p99": r(q(&attack, "p99_us"), q(&base, "p99_us")), "p50": r(q(&attack, "p50_us"), q(&base, "p50_us")),
            "throughput": r(Some(t1), Some(t0).filter(|t| *t > 0.0))});
        let body = json!({"n": n, "k": k, "attackers": a.attackers, "window_s": window.as_secs_f64(),
            "connect": run.connect, "baseline": base, "attack": attack, "ratio": ratio, "requests": totals(&ld),
            "attacks": {"sent": st.sent.get(), "error_replies": st.err_replies.get(), "ok_replies": st.ok_replies.get(),
                "timeouts": st.timeouts.get(), "dropped": st.dropped.get()}});
        Ok((result("hostile", &env, &errors, body), if run.live > 0 { 0 } else { 1 }))
    })
    .await
}
