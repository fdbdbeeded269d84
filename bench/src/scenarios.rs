//! The scenarios. Each one connects, runs under a global deadline, and returns a [`Report`].

use std::future::Future;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::load::{ALT_GUARD, Load, Rotation, SwapWatch, echo_worker};
use crate::net::{Env, Http, Ws, close_ws, connect_all, send_text};
use crate::stats::{
    Counter, ErrKind, Errors, Frame, Hists, LocalHist, Report, cpu_secs, find_num, lat_json, lat_text, mib, rss_kib,
    self_rss_kib,
};
use crate::{
    AlternateArgs, ChurnArgs, Common, EchoArgs, FanoutArgs, HostileArgs, IdleArgs, SmokeArgs, SwapArgs, Target,
};

pub struct Outcome {
    pub report: Report,
    pub exit_code: i32,
}

/// Upper bound for a connect ramp of `n` sockets (mirrors the phase deadline in connect_all).
fn connect_budget(env: &Env, n: usize) -> Duration {
    Duration::from_secs(70) + env.timeout * 2 + Duration::from_millis(20 * n as u64)
}

/// Runs `f` under a hard deadline: a scenario can fail, it can never hang.
async fn with_deadline<T>(d: Duration, what: &str, f: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(d, f).await.map_err(|_| anyhow!("{what}: global deadline of {d:.0?} exceeded"))?
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn rate(n: u64, d: Duration) -> f64 {
    if d.is_zero() { 0.0 } else { n as f64 / d.as_secs_f64() }
}

fn header(r: &mut Report, env: &Env, nofile: u64) {
    r.row("url", format!("{}  (http {}{})", env.ws_url(None), env.http.addr, env.http.path));
    r.set("url", json!(env.ws_url(None)));
    r.set("nofile_limit", json!(nofile));
}

fn connect_rows(r: &mut Report, want: usize, got: usize, h: &Histogram<u64>, took: Duration) {
    r.row(
        "connections",
        format!(
            "{got}/{want} open; ramp {:.2}s ({:.0}/s); connect {}",
            secs(took),
            rate(got as u64, took),
            lat_text(h)
        ),
    );
    r.set("connections", json!(got));
    r.set("connections_wanted", json!(want));
    r.set("connect", json!({"ramp_s": secs(took), "latency": lat_json(h)}));
}

/// Connections that ran the closed loop, ready to be joined.
struct EchoRun {
    ld: Arc<Load>,
    set: JoinSet<()>,
    live: usize,
}

/// Connects `n` sockets (tokens `first..`), builds the Load (customised by `f`) and starts one
/// closed-loop worker per socket. The Load's clock starts after the ramp.
#[allow(clippy::too_many_arguments)]
async fn start_echo(
    env: &Arc<Env>,
    r: &mut Report,
    c: &Common,
    n: usize,
    k: usize,
    warm: Duration,
    dur: Duration,
    errors: &Arc<Errors>,
    f: impl FnOnce(&mut Load),
) -> EchoRun {
    let tokens = env.mint_many(0, n);
    let (conns, ch, took) = connect_all(env, 0, n, tokens, errors).await;
    connect_rows(r, n, conns.len(), &ch, took);
    let mut ld = Load::new(&c.event, k, warm, dur, errors.clone());
    ld.req_timeout = env.timeout;
    f(&mut ld);
    let ld = Arc::new(ld);
    let live = conns.len();
    let mut set = JoinSet::new();
    for (i, ws) in conns {
        set.spawn(echo_worker(ws, i, ld.clone()));
    }
    EchoRun { ld, set, live }
}

async fn join_all<T: 'static>(set: &mut JoinSet<T>) -> Vec<T> {
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok(v) = r {
            out.push(v);
        }
    }
    out
}

/// Adds throughput / latency / counters of a finished echo load for phase `p`.
fn echo_rows(r: &mut Report, ld: &Load, p: usize, prefix: &str) -> (f64, Histogram<u64>) {
    let h = ld.hists[p].merged();
    let w = ld.window(p);
    let tput = rate(ld.ok[p].get(), w);
    let key = |s: &str| if prefix.is_empty() { s.to_string() } else { format!("{prefix}_{s}") };
    let label = |s: &str| if prefix.is_empty() { s.to_string() } else { format!("{prefix} {s}") };
    r.row(&label("throughput"), format!("{tput:.0} msgs/s  ({} replies in {:.2}s)", ld.ok[p].get(), secs(w)));
    r.row(&label("latency"), lat_text(&h));
    r.set(&key("throughput_msgs_s"), json!((tput * 10.0).round() / 10.0));
    r.set(&key("latency"), lat_json(&h));
    (tput, h)
}

fn echo_totals(r: &mut Report, ld: &Load) {
    r.row(
        "requests",
        format!(
            "sent {}  replies {}  missing {}  other frames {}",
            ld.sent.get(),
            ld.replies.get(),
            ld.missing.get(),
            ld.others.get()
        ),
    );
    r.set(
        "requests",
        json!({"sent": ld.sent.get(), "replies": ld.replies.get(), "missing": ld.missing.get(), "other_frames": ld.others.get()}),
    );
}

// ---------------------------------------------------------------------------------------------
// echo / smoke

pub async fn echo(env: Arc<Env>, a: &EchoArgs, nofile: u64) -> Result<Outcome> {
    let c = &a.c;
    let (n, k, warm, dur) = (c.n(10), c.k(1), c.warmup(2.0), c.duration(10.0));
    let deadline = connect_budget(&env, n) + warm + dur + env.timeout + Duration::from_secs(30);
    let (report, ok) = with_deadline(deadline, "echo", run_echo(env, c, "echo", n, k, warm, dur, nofile)).await?;
    Ok(Outcome { report, exit_code: if ok.0 { 0 } else { 1 } })
}

pub async fn smoke(env: Arc<Env>, a: &SmokeArgs, nofile: u64) -> Result<Outcome> {
    let c = &a.c;
    let (n, k, warm, dur) = (c.n(4), c.k(2), c.warmup(1.0), c.duration(3.0));
    let deadline = connect_budget(&env, n) + warm + dur + env.timeout + Duration::from_secs(30);
    let (mut report, (_, tput, errs)) =
        with_deadline(deadline, "smoke", run_echo(env, c, "smoke", n, k, warm, dur, nofile)).await?;
    let pass = tput > 0.0 && errs == 0;
    report.row("smoke", if pass { "PASS".to_string() } else { format!("FAIL (throughput {tput:.0}, errors {errs})") });
    report.set("pass", json!(pass));
    Ok(Outcome { report, exit_code: if pass { 0 } else { 1 } })
}

/// The "load" row of a closed-loop scenario (after `what`) and its JSON fields.
fn load_rows(r: &mut Report, c: &Common, what: &str, n: usize, k: usize, warm: Duration, dur: Duration) {
    r.row(
        "load",
        format!(
            "{what}N={n} connections x K={k} in flight, event {:?}, warmup {:.1}s, duration {:.1}s",
            c.event,
            secs(warm),
            secs(dur)
        ),
    );
    r.set("n", json!(n));
    r.set("k", json!(k));
    r.set("duration_s", json!(secs(dur)));
}

/// Returns the report and (any connection opened, throughput, errors).
#[allow(clippy::too_many_arguments)]
async fn run_echo(
    env: Arc<Env>,
    c: &Common,
    name: &str,
    n: usize,
    k: usize,
    warm: Duration,
    dur: Duration,
    nofile: u64,
) -> Result<(Report, (bool, f64, u64))> {
    let mut r = Report::new(name, env.target.name());
    header(&mut r, &env, nofile);
    load_rows(&mut r, c, "", n, k, warm, dur);
    let errors = Arc::new(Errors::default());
    let rss0 = r.rss(env.server_pid, "rss_before_kib", "server rss before");
    let mut run = start_echo(&env, &mut r, c, n, k, warm, dur, &errors, |_| {}).await;
    // CPU used by the server and by this generator inside the measured window (both share the
    // machine: what one uses per message, the other cannot).
    let cpu = |pid: Option<u32>| pid.and_then(cpu_secs);
    let mut cpu_window = None;
    if run.live > 0 {
        tokio::time::sleep_until(run.ld.measure_start.into()).await;
        let (t0, s0, b0) = (Instant::now(), cpu(env.server_pid), cpu(Some(std::process::id())));
        // Sample the server's RSS just before the window closes (under load).
        tokio::time::sleep_until((run.ld.end() - Duration::from_millis(100).min(dur)).into()).await;
        let (s1, b1) = (cpu(env.server_pid), cpu(Some(std::process::id())));
        cpu_window = Some((t0.elapsed(), s0.zip(s1).map(|(a, b)| b - a), b0.zip(b1).map(|(a, b)| b - a)));
    }
    let rss1 = r.rss(env.server_pid, "rss_load_kib", "server rss (load)");
    let bench_rss = self_rss_kib();
    join_all(&mut run.set).await;
    let (tput, _) = echo_rows(&mut r, &run.ld, 0, "");
    if let Some((span, server, bench)) = cpu_window {
        // Messages in the same span, at the window's average rate.
        let msgs = tput * span.as_secs_f64();
        let per = |c: Option<f64>| c.filter(|_| msgs > 0.0).map(|c| c * 1e6 / msgs);
        let fmt = |c: Option<f64>| c.map_or("-".to_string(), |v| format!("{v:.2}"));
        r.row(
            "cpu in window",
            format!(
                "server {} µs/msg, generator {} µs/msg (cores: server {}, generator {})",
                fmt(per(server)),
                fmt(per(bench)),
                fmt(server.map(|c| c / span.as_secs_f64())),
                fmt(bench.map(|c| c / span.as_secs_f64()))
            ),
        );
        r.set("window_cpu_us_per_msg", json!({"server": per(server), "generator": per(bench)}));
    }
    echo_totals(&mut r, &run.ld);
    r.errors(&errors);
    if let (Some(a), Some(b)) = (rss0, rss1) {
        r.set("rss_delta_kib", json!(b as i64 - a as i64));
    }
    if let Some(b) = bench_rss {
        r.row("bench rss", mib(b));
    }
    Ok((r, (run.live > 0, tput, errors.total())))
}

// ---------------------------------------------------------------------------------------------
// alternate

/// Echo on several servers in turns (see `Cmd::Alternate`). Every server is connected first and
/// keeps its connections; windows of `--window` seconds then go to server 0, 1, ..., 0, 1, ...
/// from one shared start, the warmup being at least one whole cycle. A cycle is one window per
/// server, so the ratios per cycle compare servers measured seconds apart.
pub async fn alternate(
    first: Arc<Env>,
    others: Vec<(String, Arc<Env>)>,
    a: &AlternateArgs,
    nofile: u64,
) -> Result<Outcome> {
    let c = &a.c;
    let name0 = a.name.clone().unwrap_or_else(|| first.target.name().to_string());
    let servers: Vec<(String, Arc<Env>)> = std::iter::once((name0, first)).chain(others).collect();
    let m = servers.len();
    let (n, k) = (c.n(1000), c.k(1));
    let period = Duration::from_secs_f64(a.window.max(0.5));
    let cycle = period * m as u32;
    // Whole cycles only, so every server has as many counted windows as the others.
    let cycles = |d: Duration| (d.as_secs_f64() / cycle.as_secs_f64()).ceil().max(1.0) as u32;
    let warm = cycle * cycles(c.warmup(0.0));
    let dur = cycle * cycles(c.duration(40.0));
    let budget: Duration = servers.iter().map(|(_, e)| connect_budget(e, n)).sum();
    let deadline = budget + warm + dur + servers[0].1.timeout + Duration::from_secs(30);
    let report =
        with_deadline(deadline, "alternate", run_alternate(servers, c, n, k, period, warm, dur, nofile)).await?;
    let ok = report.1;
    Ok(Outcome { report: report.0, exit_code: if ok { 0 } else { 1 } })
}

#[allow(clippy::too_many_arguments)]
async fn run_alternate(
    servers: Vec<(String, Arc<Env>)>,
    c: &Common,
    n: usize,
    k: usize,
    period: Duration,
    warm: Duration,
    dur: Duration,
    nofile: u64,
) -> Result<(Report, bool)> {
    let m = servers.len();
    let names: Vec<&str> = servers.iter().map(|(s, _)| s.as_str()).collect();
    let mut r = Report::new("alternate", &names.join(","));
    header(&mut r, &servers[0].1, nofile);
    let turns =
        format!("{m} servers in turns of {:.1}s (first {} ms not counted), each ", secs(period), ALT_GUARD.as_millis());
    load_rows(&mut r, c, &turns, n, k, warm, dur);
    r.set("window_s", json!(secs(period)));
    let errors = Arc::new(Errors::default());
    let mut conns = Vec::new();
    for (name, env) in &servers {
        let (got, ch, took) = connect_all(env, 0, n, env.mint_many(0, n), &errors).await;
        r.row(
            &format!("{name} connections"),
            format!("{}/{n} open; ramp {:.2}s; connect {}", got.len(), secs(took), lat_text(&ch)),
        );
        conns.push(got);
    }
    let base = Instant::now();
    let mut set = JoinSet::new();
    let mut loads = Vec::new();
    for (i, got) in conns.into_iter().enumerate() {
        let mut ld = Load::new(&c.event, k, warm, dur, errors.clone());
        ld.req_timeout = servers[i].1.timeout;
        ld.rotate(base, Rotation { period, me: i, of: m });
        let ld = Arc::new(ld);
        for (j, ws) in got {
            set.spawn(echo_worker(ws, j, ld.clone()));
        }
        loads.push(ld);
    }
    let cpu = |pid: Option<u32>| pid.and_then(cpu_secs);
    tokio::time::sleep_until((base + warm).into()).await;
    let cpu0: Vec<_> = servers.iter().map(|(_, e)| cpu(e.server_pid)).collect();
    let me0 = cpu(Some(std::process::id()));
    tokio::time::sleep_until((base + warm + dur).into()).await;
    let cpu1: Vec<_> = servers.iter().map(|(_, e)| cpu(e.server_pid)).collect();
    let me1 = cpu(Some(std::process::id()));
    let rss: Vec<_> = servers.iter().map(|(_, e)| e.server_pid.and_then(rss_kib)).collect();
    join_all(&mut set).await;

    // Counted replies scaled to whole windows (the guard band is served too, just not counted).
    let counted = (period - ALT_GUARD).as_secs_f64();
    let whole = period.as_secs_f64() / counted;
    // The windows inside the measured span; server i has every m-th from the i-th.
    let span = (warm.as_nanos() / period.as_nanos()) as usize..((warm + dur).as_nanos() / period.as_nanos()) as usize;
    let (mut all, mut tputs, mut series) = (Vec::new(), Vec::new(), Vec::new());
    let mut served_total = 0.0;
    for (i, ld) in loads.iter().enumerate() {
        let name = names[i];
        let (tput, h) = echo_rows(&mut r, ld, 0, name);
        let served = ld.ok[0].get() as f64 * whole;
        served_total += served;
        let server_us = cpu0[i].zip(cpu1[i]).map(|(a, b)| (b - a) * 1e6 / served.max(1.0));
        r.row(
            &format!("{name} server cpu"),
            format!(
                "{} µs/msg{}",
                server_us.map_or("-".into(), |v| format!("{v:.2}")),
                rss[i].map_or(String::new(), |k| format!("; rss {}", mib(k)))
            ),
        );
        let mine: Vec<f64> = {
            let counts = ld.per_window.lock().unwrap_or_else(|e| e.into_inner());
            span.clone()
                .filter(|w| w % m == i)
                .map(|w| (counts.get(w).copied().unwrap_or(0) as f64 / counted).round())
                .collect()
        };
        all.push(json!({
            "name": name,
            "target": servers[i].1.target.name(),
            "throughput_msgs_s": (tput * 10.0).round() / 10.0,
            "latency": lat_json(&h),
            "server_cpu_us_per_msg": server_us,
            "rss_kib": rss[i],
            "per_window_msgs_s": mine,
            "sent": ld.sent.get(),
            "replies": ld.replies.get(),
            "missing": ld.missing.get(),
        }));
        tputs.push(tput);
        series.push(mine);
    }
    if let Some(me) = me0.zip(me1).map(|(a, b)| b - a) {
        r.row("generator cpu", format!("{:.2} µs/msg (all servers)", me * 1e6 / served_total.max(1.0)));
        r.set("generator_cpu_us_per_msg", json!(me * 1e6 / served_total.max(1.0)));
    }
    // The first server against each other: overall, and per cycle (its window against the other
    // server's window of the same cycle).
    let mut ratios = serde_json::Map::new();
    for i in 1..m {
        let per_cycle: Vec<f64> = series[0]
            .iter()
            .zip(&series[i])
            .filter(|(_, b)| **b > 0.0)
            .map(|(a, b)| (a / b * 1000.0).round() / 1000.0)
            .collect();
        let overall = tputs[0] / if tputs[i] > 0.0 { tputs[i] } else { f64::NAN };
        let (lo, hi) = per_cycle.iter().fold((f64::INFINITY, 0.0f64), |(l, h), v| (l.min(*v), h.max(*v)));
        r.row(
            &format!("{} / {}", names[0], names[i]),
            format!("x{overall:.3} overall; per cycle x{lo:.3}..x{hi:.3} over {} cycles", per_cycle.len()),
        );
        ratios.insert(
            names[i].to_string(),
            json!({"overall": (overall * 1000.0).round() / 1000.0, "per_cycle": per_cycle}),
        );
    }
    r.set("servers", Value::Array(all));
    r.set("ratios", Value::Object(ratios));
    r.errors(&errors);
    let live = loads.iter().all(|ld| ld.ok[0].get() > 0);
    Ok((r, live && errors.total() == 0))
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
    hists: Hists,
    join_tag: Option<String>,
    timeout: Duration,
    ready: Counter,
    not_ready: Counter,
    notify: Notify,
    errors: Arc<Errors>,
}

/// Returns (deliveries, ns after base of the last delivery).
async fn fan_client(mut ws: Ws, id: usize, cx: Arc<FanCtx>, mut stop: watch::Receiver<bool>) -> (u64, u64) {
    if let Some(tag) = &cx.join_tag {
        let req = json!({"event": "join", "data": {"id": tag}}).to_string();
        let joined = tokio::time::timeout(cx.timeout, async {
            send_text(&mut ws, req).await.map_err(|e| (ErrKind::Closed, e.to_string()))?;
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) => match Frame::parse(&t) {
                        Some(f) if f.event() == "join" && f.ok() => return Ok(()),
                        Some(f) if !f.ok() => return Err((ErrKind::Frame, format!("join: {t}"))),
                        _ => continue,
                    },
                    Some(Ok(Message::Close(c))) => return Err((ErrKind::Closed, format!("join: closed {c:?}"))),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err((ErrKind::Closed, format!("join: {e}"))),
                    None => return Err((ErrKind::Closed, "join: closed".into())),
                }
            }
        })
        .await
        .unwrap_or_else(|_| Err((ErrKind::Timeout, "join: no reply".into())));
        if let Err((kind, msg)) = joined {
            cx.errors.one(kind, || msg);
            cx.not_ready.add(1);
            cx.notify.notify_one();
            return (0, 0);
        }
    }
    cx.ready.add(1);
    cx.notify.notify_one();
    let mut hist = LocalHist::new(&cx.hists, id);
    let (mut got, mut last) = (0u64, 0u64);
    while (got as usize) < cx.m {
        tokio::select! {
            r = ws.next() => match r {
                Some(Ok(Message::Text(t))) => {
                    let now = Instant::now();
                    match Frame::parse(&t) {
                        Some(f) if !f.ok() => cx.errors.one(ErrKind::Frame, || t.to_string()),
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
                        None => cx.errors.one(ErrKind::Other, || format!("bad json: {t}")),
                    }
                }
                Some(Ok(Message::Close(c))) => { cx.errors.one(ErrKind::Closed, || format!("close frame: {c:?}")); return (got, last); }
                Some(Ok(_)) => {}
                Some(Err(e)) => { cx.errors.one(ErrKind::Closed, || format!("read: {e}")); return (got, last); }
                None => { cx.errors.one(ErrKind::Closed, || "closed by the server".into()); return (got, last); }
            },
            _ = stop.changed() => break,
        }
    }
    drop(hist);
    close_ws(ws, Duration::from_secs(2)).await;
    (got, last)
}

pub async fn fanout(env: Arc<Env>, a: &FanoutArgs, nofile: u64) -> Result<Outcome> {
    let n = a.c.n(1000);
    let m = a.messages;
    let send_cap = Duration::from_secs(60) + Duration::from_millis(10 * m as u64);
    let grace = Duration::from_secs_f64(a.grace.max(0.0));
    let deadline = connect_budget(&env, n) + env.timeout * 2 + send_cap + grace + Duration::from_secs(30);
    with_deadline(deadline, "fanout", run_fanout(env, a, n, m, send_cap, grace, nofile)).await
}

#[allow(clippy::too_many_arguments)]
async fn run_fanout(
    env: Arc<Env>,
    a: &FanoutArgs,
    n: usize,
    m: usize,
    send_cap: Duration,
    grace: Duration,
    nofile: u64,
) -> Result<Outcome> {
    let sy = env.target == Target::Switchyard;
    let mut r = Report::new("fanout", env.target.name());
    header(&mut r, &env, nofile);
    let path = match (sy, a.send_all) {
        (true, false) => "/api/send/tag",
        (true, true) => "/api/send/all",
        (false, _) => "/broadcast",
    };
    r.row("load", format!("N={n} subscribers x M={m} messages via POST {path}"));
    r.set("n", json!(n));
    r.set("m", json!(m));
    let errors = Arc::new(Errors::default());
    r.rss(env.server_pid, "rss_before_kib", "server rss before");
    let tokens = env.mint_many(0, n);
    let (conns, ch, took) = connect_all(&env, 0, n, tokens, &errors).await;
    connect_rows(&mut r, n, conns.len(), &ch, took);
    let cx = Arc::new(FanCtx {
        event: if sy { a.fanout_event.clone() } else { "broadcast".into() },
        m,
        base: Instant::now(),
        send_ns: (0..m).map(|_| AtomicU64::new(0)).collect(),
        hists: Hists::new(),
        join_tag: (sy && !a.send_all).then(|| a.tag.clone()),
        timeout: env.timeout,
        ready: Counter::default(),
        not_ready: Counter::default(),
        notify: Notify::new(),
        errors: errors.clone(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let live = conns.len();
    let mut set = JoinSet::new();
    for (i, ws) in conns {
        set.spawn(fan_client(ws, i, cx.clone(), stop_rx.clone()));
    }
    // Wait until every client joined its tag (bounded).
    let ready_by = Instant::now() + env.timeout + Duration::from_secs(5);
    while (cx.ready.get() + cx.not_ready.get()) < live as u64 && Instant::now() < ready_by {
        let _ = tokio::time::timeout(Duration::from_millis(50), cx.notify.notified()).await;
    }
    let ready = cx.ready.get();
    r.row(
        "subscribed",
        format!(
            "{ready}/{live}{}",
            if cx.join_tag.is_some() { format!(" joined tag {:?}", a.tag) } else { String::new() }
        ),
    );
    r.set("subscribed", json!(ready));

    // Send M messages as fast as the API answers (one keep-alive connection, sequential).
    let mut http = Http::new(env.http.clone(), env.timeout);
    let key = sy.then_some(env.api_key.as_str());
    let (tag_j, ev_j) = (serde_json::to_string(&a.tag)?, serde_json::to_string(&a.fanout_event)?);
    let (mut sent_ok, mut api_delivered) = (0u64, 0u64);
    let t_first = Instant::now();
    for i in 0..m {
        if t_first.elapsed() > send_cap {
            errors.add(ErrKind::Other, (m - i) as u64, || {
                format!("send phase cap {send_cap:?} reached; {} not sent", m - i)
            });
            break;
        }
        let data = format!("{{\"m\":{i}}}");
        let body = match (sy, a.send_all) {
            (true, false) => format!("{{\"tag\":{tag_j},\"event\":{ev_j},\"data\":{data}}}"),
            (true, true) => format!("{{\"event\":{ev_j},\"data\":{data}}}"),
            (false, _) => data,
        };
        cx.send_ns[i].store((Instant::now().saturating_duration_since(cx.base).as_nanos() as u64).max(1), Relaxed);
        match http.post(path, &body, key).await {
            Ok(resp) if resp.status == 200 => {
                sent_ok += 1;
                api_delivered += find_num(&resp.body, "delivered").unwrap_or(0);
            }
            Ok(resp) => errors.one(ErrKind::Other, || format!("POST {path}: HTTP {} {}", resp.status, resp.body)),
            Err(e) => errors.one(ErrKind::Other, || format!("POST {path}: {e:#}")),
        }
    }
    let send_time = t_first.elapsed();

    // Wait for the deliveries; after the grace, tell the clients to stop.
    let give_up = Instant::now() + grace;
    let mut results = Vec::with_capacity(live);
    loop {
        match tokio::time::timeout_at(give_up.into(), set.join_next()).await {
            Ok(Some(Ok(v))) => results.push(v),
            Ok(Some(Err(_))) => {}
            Ok(None) => break,
            Err(_) => {
                let _ = stop_tx.send(true);
                results.extend(join_all(&mut set).await);
                break;
            }
        }
    }
    let received: u64 = results.iter().map(|x| x.0).sum();
    let last_ns = results.iter().map(|x| x.1).max().unwrap_or(0);
    let expected = ready * sent_ok;
    let missing = expected.saturating_sub(received);
    errors.add(ErrKind::Other, missing, || format!("{missing} deliveries missing after {grace:?} grace"));
    let first_ns = t_first.saturating_duration_since(cx.base).as_nanos() as u64;
    let span = Duration::from_nanos(last_ns.saturating_sub(first_ns));
    let h = cx.hists.merged();
    let dps = rate(received, span);
    r.row(
        "deliveries/s",
        format!("{dps:.0}  ({received}/{expected} delivered in {:.3}s, first send -> last delivery)", secs(span)),
    );
    r.row(
        "api",
        format!(
            "{sent_ok}/{m} sends OK in {:.3}s ({:.0} req/s); server reported {api_delivered} delivered",
            secs(send_time),
            rate(sent_ok, send_time)
        ),
    );
    r.row("delivery latency", lat_text(&h));
    r.set("deliveries_per_s", json!(dps.round()));
    r.set(
        "deliveries",
        json!({"received": received, "expected": expected, "missing": missing, "api_reported": api_delivered}),
    );
    r.set("time_s", json!(secs(span)));
    r.set(
        "api",
        json!({"sent_ok": sent_ok, "send_time_s": secs(send_time), "req_per_s": rate(sent_ok, send_time).round()}),
    );
    r.set("latency", lat_json(&h));
    r.rss(env.server_pid, "rss_after_kib", "server rss after");
    r.errors(&errors);
    Ok(Outcome { report: r, exit_code: if live > 0 { 0 } else { 1 } })
}

// ---------------------------------------------------------------------------------------------
// idle

struct IdleCtx {
    base: Instant,
    n: usize,
    interval: Option<Duration>,
    timeout: Duration,
    hists: Hists,
    pings: Counter,
    pongs: Counter,
    errors: Arc<Errors>,
}

/// Holds one connection: answers server pings (tungstenite does, while we read), sends an
/// application `ping` every interval (staggered over the connections), until `stop`.
/// Returns whether the connection was still alive at the end.
async fn idle_conn(mut ws: Ws, id: usize, cx: Arc<IdleCtx>, mut stop: watch::Receiver<bool>) -> bool {
    let far = cx.base + Duration::from_secs(365 * 86_400);
    let mut next_ping = cx.interval.map(|iv| cx.base + iv.mul_f64(id as f64 / cx.n.max(1) as f64));
    let mut outstanding: Option<Instant> = None;
    let mut hist = LocalHist::new(&cx.hists, id);
    loop {
        let ping_at = next_ping.unwrap_or(far);
        let to_at = outstanding.map_or(far, |t| t + cx.timeout);
        tokio::select! {
            _ = stop.changed() => break,
            _ = tokio::time::sleep_until(ping_at.into()), if next_ping.is_some() => {
                if outstanding.is_none() {
                    if let Err(e) = send_text(&mut ws, "{\"event\":\"ping\"}".into()).await {
                        cx.errors.one(ErrKind::Closed, || format!("ping send: {e}"));
                        return false;
                    }
                    cx.pings.add(1);
                    outstanding = Some(Instant::now());
                }
                next_ping = cx.interval.map(|iv| ping_at + iv);
            }
            _ = tokio::time::sleep_until(to_at.into()), if outstanding.is_some() => {
                cx.errors.one(ErrKind::Timeout, || "ping: no reply".into());
                outstanding = None;
            }
            r = ws.next() => match r {
                Some(Ok(Message::Text(t))) => match Frame::parse(&t) {
                    Some(f) if !f.ok() => { cx.errors.one(ErrKind::Frame, || t.to_string()); outstanding = None; }
                    Some(f) if f.event() == "ping" => {
                        if let Some(t0) = outstanding.take() {
                            hist.record(t0.elapsed());
                            cx.pongs.add(1);
                        }
                    }
                    Some(_) => {}
                    None => cx.errors.one(ErrKind::Other, || format!("bad json: {t}")),
                },
                Some(Ok(Message::Close(c))) => { cx.errors.one(ErrKind::Closed, || format!("close frame: {c:?}")); return false; }
                Some(Ok(_)) => {}
                Some(Err(e)) => { cx.errors.one(ErrKind::Closed, || format!("read: {e}")); return false; }
                None => { cx.errors.one(ErrKind::Closed, || "closed by the server".into()); return false; }
            },
        }
    }
    drop(hist);
    close_ws(ws, Duration::from_secs(3)).await;
    true
}

pub async fn idle(env: Arc<Env>, a: &IdleArgs, nofile: u64) -> Result<Outcome> {
    let c = &a.c;
    let (n, warm, dur) = (c.n(1000), c.warmup(2.0), c.duration(10.0));
    let deadline = connect_budget(&env, n) + warm + dur + env.timeout + Duration::from_secs(60);
    with_deadline(deadline, "idle", run_idle(env, a, n, warm, dur, nofile)).await
}

async fn run_idle(
    env: Arc<Env>,
    a: &IdleArgs,
    n: usize,
    warm: Duration,
    dur: Duration,
    nofile: u64,
) -> Result<Outcome> {
    let mut r = Report::new("idle", env.target.name());
    header(&mut r, &env, nofile);
    let interval = (a.ping_interval > 0.0).then(|| Duration::from_secs_f64(a.ping_interval));
    r.row(
        "load",
        format!(
            "N={n} idle connections, ping every {}, settle {:.1}s, hold {:.1}s",
            interval.map_or("never".into(), |d| format!("{:.1}s", secs(d))),
            secs(warm),
            secs(dur)
        ),
    );
    r.set("n", json!(n));
    let errors = Arc::new(Errors::default());
    let pid = env.server_pid;
    let rss0 = r.rss(pid, "rss_before_kib", "server rss before");
    let bench0 = self_rss_kib();
    let tokens = env.mint_many(0, n);
    let (conns, ch, took) = connect_all(&env, 0, n, tokens, &errors).await;
    connect_rows(&mut r, n, conns.len(), &ch, took);
    let live = conns.len();
    let cx = Arc::new(IdleCtx {
        base: Instant::now(),
        n: live,
        interval,
        timeout: env.timeout,
        hists: Hists::new(),
        pings: Counter::default(),
        pongs: Counter::default(),
        errors: errors.clone(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut set = JoinSet::new();
    for (k, (_, ws)) in conns.into_iter().enumerate() {
        set.spawn(idle_conn(ws, k, cx.clone(), stop_rx.clone()));
    }
    tokio::time::sleep(warm).await;
    let hold_end = Instant::now() + dur;
    let mut rss_max = 0u64;
    while Instant::now() < hold_end {
        if let Some(k) = pid.and_then(rss_kib) {
            rss_max = rss_max.max(k);
        }
        tokio::time::sleep_until((Instant::now() + Duration::from_secs(1)).min(hold_end).into()).await;
    }
    let rss1 = r.rss(pid, "rss_held_kib", "server rss held");
    let bench1 = self_rss_kib();
    let _ = stop_tx.send(true);
    let alive = join_all(&mut set).await.into_iter().filter(|&x| x).count();
    r.row("alive at end", format!("{alive}/{live}"));
    r.set("alive_at_end", json!(alive));
    if let (Some(a0), Some(a1)) = (rss0, rss1) {
        let per = (a1 as f64 - a0 as f64) * 1024.0 / live.max(1) as f64;
        r.row(
            "server rss/conn",
            format!(
                "{:.1} KiB per connection (delta {} over {live}; max seen {})",
                per / 1024.0,
                mib(a1.saturating_sub(a0)),
                mib(rss_max)
            ),
        );
        r.set("rss_per_conn_bytes", json!(per.round()));
        r.set("rss_max_kib", json!(rss_max));
    }
    if let (Some(b0), Some(b1)) = (bench0, bench1) {
        r.row("bench rss", format!("{} ({:.1} KiB/conn)", mib(b1), (b1 as f64 - b0 as f64) / live.max(1) as f64));
    }
    let h = cx.hists.merged();
    r.row("pings", format!("{} sent, {} answered; rtt {}", cx.pings.get(), cx.pongs.get(), lat_text(&h)));
    r.set("pings", json!({"sent": cx.pings.get(), "answered": cx.pongs.get(), "latency": lat_json(&h)}));
    r.errors(&errors);
    Ok(Outcome { report: r, exit_code: if live > 0 { 0 } else { 1 } })
}

// ---------------------------------------------------------------------------------------------
// churn

pub async fn churn(env: Arc<Env>, a: &ChurnArgs, nofile: u64) -> Result<Outcome> {
    let c = &a.c;
    let (bg, warm, dur) = (c.n(0), c.warmup(1.0), c.duration(10.0));
    let deadline = connect_budget(&env, bg) + warm + dur + env.timeout * 2 + Duration::from_secs(120);
    with_deadline(deadline, "churn", run_churn(env, a, bg, warm, dur, nofile)).await
}

async fn run_churn(
    env: Arc<Env>,
    a: &ChurnArgs,
    bg: usize,
    warm: Duration,
    dur: Duration,
    nofile: u64,
) -> Result<Outcome> {
    let mut r = Report::new("churn", env.target.name());
    header(&mut r, &env, nofile);
    let w = a.workers.max(1);
    let max = a.max_conns.unwrap_or(20_000 * (warm + dur).as_secs_f64().ceil().max(1.0) as usize);
    r.row(
        "load",
        format!(
            "W={w} workers connect/close for {:.1}s (+{:.1}s warmup), cap {max} connections, {bg} background",
            secs(dur),
            secs(warm)
        ),
    );
    r.set("workers", json!(w));
    r.set("background", json!(bg));
    let errors = Arc::new(Errors::default());
    r.rss(env.server_pid, "rss_before_kib", "server rss before");
    // Tokens are minted before the clock starts: signing is not what is being measured.
    let t = Instant::now();
    let tokens = env.mint_many(bg, max);
    if tokens.is_some() {
        r.row("tokens", format!("{max} pre-minted in {:.2}s", secs(t.elapsed())));
    }
    // Background connections, held open (no pings) for the whole run.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut bg_set = JoinSet::new();
    if bg > 0 {
        let (conns, ch, took) = connect_all(&env, 0, bg, env.mint_many(0, bg), &errors).await;
        connect_rows(&mut r, bg, conns.len(), &ch, took);
        let cx = Arc::new(IdleCtx {
            base: Instant::now(),
            n: conns.len(),
            interval: None,
            timeout: env.timeout,
            hists: Hists::new(),
            pings: Counter::default(),
            pongs: Counter::default(),
            errors: errors.clone(),
        });
        for (k, (_, ws)) in conns.into_iter().enumerate() {
            bg_set.spawn(idle_conn(ws, k, cx.clone(), stop_rx.clone()));
        }
    }
    let base = Instant::now();
    let (mstart, end) = (base + warm, base + warm + dur);
    let next = Arc::new(AtomicUsize::new(0));
    let exhausted = Arc::new(AtomicBool::new(false));
    let hists = Arc::new(Hists::new());
    let ok = Arc::new(Counter::default());
    let attempts = Arc::new(Counter::default());
    let src_n = a.source_ips.clamp(1, 254);
    let mut set = JoinSet::new();
    for wi in 0..w {
        let (env, next, exhausted, hists, ok, attempts, errors, tokens) = (
            env.clone(),
            next.clone(),
            exhausted.clone(),
            hists.clone(),
            ok.clone(),
            attempts.clone(),
            errors.clone(),
            tokens.clone(),
        );
        set.spawn(async move {
            let mut hist = LocalHist::new(&hists, wi);
            while Instant::now() < end {
                let i = next.fetch_add(1, Relaxed);
                if i >= max {
                    exhausted.store(true, Relaxed);
                    break;
                }
                attempts.add(1);
                let src = Ipv4Addr::new(127, 0, 0, 1 + (i % src_n) as u8);
                let t0 = Instant::now();
                match env.open(src, tokens.as_ref().map(|t| t[i].as_str())).await {
                    Ok(ws) => {
                        let now = Instant::now();
                        if now >= mstart && now < end {
                            ok.add(1);
                            hist.record(now - t0);
                        }
                        close_ws(ws, Duration::from_secs(2)).await;
                    }
                    Err(e) => errors.one(ErrKind::Connect, || format!("{e:#}")),
                }
            }
        });
    }
    tokio::time::sleep_until(end.into()).await;
    let rss_load = r.rss(env.server_pid, "rss_load_kib", "server rss (load)");
    let _ = rss_load;
    join_all(&mut set).await;
    let _ = stop_tx.send(true);
    let bg_alive = join_all(&mut bg_set).await.into_iter().filter(|&x| x).count();
    let h = hists.merged();
    let cps = rate(ok.get(), dur);
    r.row(
        "connections/s",
        format!(
            "{cps:.0}  ({} completed in the {:.1}s window, {} attempts in all)",
            ok.get(),
            secs(dur),
            attempts.get()
        ),
    );
    r.row("connect time", lat_text(&h));
    if exhausted.load(Relaxed) {
        r.row("note", format!("connection cap {max} reached before the end: raise --max-conns"));
    }
    if bg > 0 {
        r.row("background alive", format!("{bg_alive}/{bg}"));
        r.set("background_alive", json!(bg_alive));
    }
    r.set("connections_per_s", json!(cps.round()));
    r.set("connect_latency", lat_json(&h));
    r.set("attempts", json!(attempts.get()));
    r.set("cap_reached", json!(exhausted.load(Relaxed)));
    r.errors(&errors);
    Ok(Outcome { report: r, exit_code: 0 })
}

// ---------------------------------------------------------------------------------------------
// swap

async fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| anyhow!("{}: not a file path", path.display()))?;
    let tmp = dir.join(format!(".{}.bench-{}.tmp", name.to_string_lossy(), std::process::id()));
    tokio::fs::write(&tmp, bytes).await.with_context(|| format!("write {}", tmp.display()))?;
    tokio::fs::rename(&tmp, path).await.with_context(|| format!("rename over {}", path.display()))?;
    Ok(())
}

async fn wait_seen(sw: &SwapWatch, until: Instant) -> Option<Instant> {
    loop {
        if let Some(t) = sw.seen_at() {
            return Some(t);
        }
        if Instant::now() >= until {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

pub async fn swap(env: Arc<Env>, a: &SwapArgs, nofile: u64) -> Result<Outcome> {
    let c = &a.c;
    let (n, k, warm) = (c.n(10), c.k(1), c.warmup(2.0));
    let per = Duration::from_millis(a.swap_interval_ms).max(Duration::from_secs_f64(a.swap_timeout.max(0.0)))
        + Duration::from_millis(100);
    let cap = per * (a.swaps as u32 + 1) + Duration::from_secs(5);
    let deadline = connect_budget(&env, n) + warm + cap + env.timeout + Duration::from_secs(60);
    with_deadline(deadline, "swap", run_swap(env, a, n, k, warm, cap, nofile)).await
}

async fn run_swap(
    env: Arc<Env>,
    a: &SwapArgs,
    n: usize,
    k: usize,
    warm: Duration,
    cap: Duration,
    nofile: u64,
) -> Result<Outcome> {
    let c = &a.c;
    let v1 = tokio::fs::read(&a.v1).await.with_context(|| format!("read --v1 {}", a.v1.display()))?;
    let v2 = tokio::fs::read(&a.v2).await.with_context(|| format!("read --v2 {}", a.v2.display()))?;
    if a.v2_marker.is_empty() {
        bail!("--v2-marker must not be empty");
    }
    let original = tokio::fs::read(&a.module_path).await.ok();
    let mut r = Report::new("swap", env.target.name());
    header(&mut r, &env, nofile);
    r.row(
        "load",
        format!(
            "N={n} x K={k} {:?} while {} swaps of {} (interval >= {} ms, marker {:?})",
            c.event,
            a.swaps,
            a.module_path.display(),
            a.swap_interval_ms,
            a.v2_marker
        ),
    );
    r.set("n", json!(n));
    r.set("k", json!(k));
    r.set("swaps", json!(a.swaps));
    let errors = Arc::new(Errors::default());
    r.rss(env.server_pid, "rss_before_kib", "server rss before");
    let sw = Arc::new(SwapWatch::new(&a.v2_marker));
    let mut run = start_echo(&env, &mut r, c, n, k, warm, cap, &errors, |ld| ld.swap = Some(sw.clone())).await;
    let ld = run.ld.clone();
    if run.live == 0 {
        r.errors(&errors);
        return Ok(Outcome { report: r, exit_code: 1 });
    }
    let mut http = Http::new(env.http.clone(), env.timeout);
    let swap_timeout = Duration::from_secs_f64(a.swap_timeout.max(0.0));
    let interval = Duration::from_millis(a.swap_interval_ms);
    let per = interval.max(swap_timeout) + Duration::from_millis(100);

    tokio::time::sleep_until(ld.measure_start.into()).await;
    // Start from a known state: v1 in place and served.
    sw.arm(false);
    write_atomic(&a.module_path, &v1).await?;
    if a.admin_reload {
        admin_reload(&mut http, &env, &errors).await;
    }
    let initial = wait_seen(&sw, Instant::now() + swap_timeout).await.is_some();
    if !initial {
        errors.one(ErrKind::Other, || "v1 never observed before the first swap".into());
    }
    let mut to_v2_lat = Vec::new();
    let mut to_v1_lat = Vec::new();
    let (mut unseen, mut stale_v2, mut stale_v1) = ([0u64; 2], 0u64, 0u64);
    for i in 0..a.swaps {
        if Instant::now() + per > ld.end() {
            errors.one(ErrKind::Other, || format!("time cap reached after {i} swaps"));
            break;
        }
        let to_v2 = i % 2 == 0;
        let stale0 = sw.stale.get();
        sw.arm(to_v2);
        let t_w = Instant::now(); // t0: just before the new file is written
        write_atomic(&a.module_path, if to_v2 { &v2 } else { &v1 }).await?;
        if a.admin_reload {
            admin_reload(&mut http, &env, &errors).await;
        }
        match wait_seen(&sw, t_w + swap_timeout).await {
            Some(t) => (if to_v2 { &mut to_v2_lat } else { &mut to_v1_lat }).push(t.saturating_duration_since(t_w)),
            None => {
                unseen[to_v2 as usize] += 1;
                errors.one(ErrKind::Other, || {
                    format!(
                        "swap {i} ({}) not observed within {swap_timeout:?}",
                        if to_v2 { "v1->v2" } else { "v2->v1" }
                    )
                });
            }
        }
        tokio::time::sleep_until((t_w + interval).into()).await;
        let stale = sw.stale.get() - stale0;
        if to_v2 { stale_v2 += stale } else { stale_v1 += stale }
    }
    // Let the load run one more second on the final version, then drain.
    ld.set_end(Instant::now() + Duration::from_secs(1));
    tokio::time::sleep_until((ld.end() - Duration::from_millis(100)).into()).await;
    r.rss(env.server_pid, "rss_load_kib", "server rss (load)");
    join_all(&mut run.set).await;
    if let Some(orig) = &original {
        if let Err(e) = write_atomic(&a.module_path, orig).await {
            r.row("warning", format!("could not restore the original module: {e:#}"));
        } else {
            r.row("restored", format!("original {} put back", a.module_path.display()));
        }
    }
    echo_rows(&mut r, &ld, 0, "");
    echo_totals(&mut r, &ld);
    let mut dir_json = serde_json::Map::new();
    for (name, lats, uns, stale) in
        [("v1->v2", &mut to_v2_lat, unseen[1], stale_v2), ("v2->v1", &mut to_v1_lat, unseen[0], stale_v1)]
    {
        lats.sort();
        let p50 = lats.get(lats.len() / 2).copied();
        let max = lats.last().copied();
        r.row(
            &format!("swap {name}"),
            format!(
                "{} observed, {uns} not; write->first new reply p50 {} max {}; {stale} stale replies after the switch",
                lats.len(),
                p50.map_or("-".into(), |d| format!("{:.1} ms", ms(d))),
                max.map_or("-".into(), |d| format!("{:.1} ms", ms(d))),
            ),
        );
        dir_json.insert(
            name.into(),
            json!({"observed": lats.len(), "unobserved": uns, "p50_ms": p50.map(ms), "max_ms": max.map(ms), "stale_replies": stale}),
        );
    }
    r.set("swap", Value::Object(dir_json));
    r.row("versions seen", format!("v1 replies {}, v2 replies {}", sw.v1_replies.get(), sw.v2_replies.get()));
    r.set("missing_replies", json!(ld.missing.get()));
    r.errors(&errors);
    Ok(Outcome { report: r, exit_code: if run.live > 0 { 0 } else { 1 } })
}

async fn admin_reload(http: &mut Http, env: &Env, errors: &Errors) {
    match http.post("/admin/reload", "{}", Some(&env.api_key)).await {
        Ok(resp) if resp.status < 300 => {}
        Ok(resp) => errors.one(ErrKind::Other, || format!("/admin/reload: HTTP {} {}", resp.status, resp.body)),
        Err(e) => errors.one(ErrKind::Other, || format!("/admin/reload: {e:#}")),
    }
}

// ---------------------------------------------------------------------------------------------
// hostile

#[derive(Default)]
struct AttackStats {
    sent: Counter,
    err_replies: Counter,
    ok_replies: Counter,
    timeouts: Counter,
    closed: Counter,
    reconnects: Counter,
    hist: Option<Hists>,
}

/// One attacker: keeps `inflight` attack requests going from `start` until the load's end,
/// reconnecting (bounded) when the server drops it. Its error replies are expected, not errors.
#[allow(clippy::too_many_arguments)]
async fn attacker(
    env: Arc<Env>,
    mut ws: Option<Ws>,
    idx: usize,
    token: Option<String>,
    event: String,
    inflight: usize,
    start: Instant,
    ld: Arc<Load>,
    st: Arc<AttackStats>,
) {
    tokio::time::sleep_until(start.into()).await;
    let hist_src = st.hist.as_ref().unwrap();
    let mut hist = LocalHist::new(hist_src, idx);
    let mut seq = 0u64;
    let mut reconnects = 0;
    while Instant::now() < ld.end() {
        let mut w = match ws.take() {
            Some(w) => w,
            None => {
                if reconnects >= 1000 {
                    break;
                }
                reconnects += 1;
                st.reconnects.add(1);
                tokio::time::sleep(Duration::from_millis(100)).await;
                match env.open(env.source_for(idx), token.as_deref()).await {
                    Ok(w) => w,
                    Err(_) => continue,
                }
            }
        };
        let mut out: std::collections::VecDeque<Instant> = Default::default();
        let mut alive = true;
        let at = ld.attack_send_time(Instant::now());
        tokio::time::sleep_until(at.into()).await;
        if at >= ld.end() {
            ws = Some(w);
            break;
        }
        while out.len() < inflight.max(1) {
            let req = format!("{{\"event\":{},\"data\":{{\"n\":{seq}}}}}", serde_json::to_string(&event).unwrap());
            if w.send(Message::text(req)).await.is_err() {
                alive = false;
                break;
            }
            seq += 1;
            st.sent.add(1);
            out.push_back(Instant::now());
        }
        while alive && !out.is_empty() {
            let deadline = (*out.front().unwrap() + env.timeout).min(ld.end() + ld.drain);
            match tokio::time::timeout_at(deadline.into(), w.next()).await {
                Err(_) => {
                    st.timeouts.add(out.len() as u64);
                    out.clear();
                    break;
                }
                Ok(Some(Ok(Message::Text(t)))) => {
                    let Some(f) = Frame::parse(&t) else { continue };
                    if f.ok() && f.event() != event {
                        continue;
                    }
                    if f.ok() { &st.ok_replies } else { &st.err_replies }.add(1);
                    if let Some(t0) = out.pop_front() {
                        hist.record(t0.elapsed());
                    }
                    let at = ld.attack_send_time(Instant::now());
                    tokio::time::sleep_until(at.into()).await;
                    if at < ld.end() {
                        let req = format!(
                            "{{\"event\":{},\"data\":{{\"n\":{seq}}}}}",
                            serde_json::to_string(&event).unwrap()
                        );
                        if w.send(Message::text(req)).await.is_err() {
                            alive = false;
                        } else {
                            seq += 1;
                            st.sent.add(1);
                            out.push_back(Instant::now());
                        }
                    }
                }
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => alive = false,
                Ok(Some(Ok(_))) => {}
            }
        }
        if alive {
            ws = Some(w);
            if Instant::now() >= ld.end() {
                break;
            }
        } else {
            st.closed.add(1);
        }
    }
    drop(hist);
    if let Some(w) = ws {
        close_ws(w, Duration::from_secs(1)).await;
    }
}

pub async fn hostile(env: Arc<Env>, a: &HostileArgs, nofile: u64) -> Result<Outcome> {
    let c = &a.c;
    let (n, k, warm, dur) = (c.n(10), c.k(1), c.warmup(2.0), c.duration(10.0));
    let deadline = connect_budget(&env, n + a.attackers) * 2 + warm + dur + env.timeout * 2 + Duration::from_secs(60);
    with_deadline(deadline, "hostile", run_hostile(env, a, n, k, warm, dur, nofile)).await
}

async fn run_hostile(
    env: Arc<Env>,
    a: &HostileArgs,
    n: usize,
    k: usize,
    warm: Duration,
    dur: Duration,
    nofile: u64,
) -> Result<Outcome> {
    let c = &a.c;
    let mut r = Report::new("hostile", env.target.name());
    header(&mut r, &env, nofile);
    r.row(
        "load",
        format!(
            "N={n} x K={k} {:?} + {} attackers x {} {:?}{}",
            c.event,
            a.attackers,
            a.attack_inflight,
            a.attack_event,
            if let (true, Some(p)) = (a.baseline, a.alternate) {
                format!("; baseline and attack alternating every {p:.1}s for {:.1}s", secs(dur))
            } else if a.baseline {
                format!("; baseline {:.1}s then attack {:.1}s", secs(dur) / 2.0, secs(dur) / 2.0)
            } else {
                format!("; {:.1}s under attack", secs(dur))
            }
        ),
    );
    r.set("n", json!(n));
    r.set("k", json!(k));
    r.set("attackers", json!(a.attackers));
    let errors = Arc::new(Errors::default());
    // Attackers' own connect failures are not victim errors.
    let att_errors = Arc::new(Errors::default());
    r.rss(env.server_pid, "rss_before_kib", "server rss before");
    let att_tokens = env.mint_many(n, a.attackers);
    let (att_conns, _, _) = connect_all(&env, n, a.attackers, att_tokens.clone(), &att_errors).await;
    r.row("attackers", format!("{}/{} connected", att_conns.len(), a.attackers));
    let baseline = a.baseline;
    let alternate = a.alternate.filter(|p| *p > 0.0).map(Duration::from_secs_f64);
    let mut run = start_echo(&env, &mut r, c, n, k, warm, dur, &errors, |ld| {
        if baseline && alternate.is_some() {
            ld.alternate = alternate;
        } else if baseline {
            ld.split = Some(ld.measure_start + dur / 2);
        }
    })
    .await;
    let ld = run.ld.clone();
    if run.live == 0 {
        r.errors(&errors);
        return Ok(Outcome { report: r, exit_code: 1 });
    }
    let start = ld.split.unwrap_or(ld.base);
    let st = Arc::new(AttackStats { hist: Some(Hists::new()), ..Default::default() });
    let mut att_set = JoinSet::new();
    let mut slots: Vec<Option<Ws>> = (0..a.attackers).map(|_| None).collect();
    for (i, ws) in att_conns {
        slots[i - n] = Some(ws);
    }
    for (j, ws) in slots.into_iter().enumerate() {
        let token = att_tokens.as_ref().map(|t| t[j].clone());
        att_set.spawn(attacker(
            env.clone(),
            ws,
            n + j,
            token,
            a.attack_event.clone(),
            a.attack_inflight,
            start,
            ld.clone(),
            st.clone(),
        ));
    }
    tokio::time::sleep_until((ld.end() - Duration::from_millis(100).min(dur)).into()).await;
    r.rss(env.server_pid, "rss_load_kib", "server rss (load)");
    join_all(&mut run.set).await;
    join_all(&mut att_set).await;
    let mut ratio = Value::Null;
    if baseline {
        let (t0, h0) = echo_rows(&mut r, &ld, 0, "baseline");
        let (t1, h1) = echo_rows(&mut r, &ld, 1, "attack");
        if !h0.is_empty() && !h1.is_empty() {
            let p99 = h1.value_at_quantile(0.99) as f64 / h0.value_at_quantile(0.99).max(1) as f64;
            let p50 = h1.value_at_quantile(0.5) as f64 / h0.value_at_quantile(0.5).max(1) as f64;
            r.row("attack/baseline", format!("p99 x{p99:.2}  p50 x{p50:.2}  throughput x{:.2}", t1 / t0.max(1e-9)));
            ratio = json!({"p99": (p99 * 100.0).round() / 100.0, "p50": (p50 * 100.0).round() / 100.0, "throughput": ((t1 / t0.max(1e-9)) * 100.0).round() / 100.0});
        }
    } else {
        echo_rows(&mut r, &ld, 0, "");
    }
    r.set("ratio", ratio);
    echo_totals(&mut r, &ld);
    let ah = st.hist.as_ref().unwrap().merged();
    r.row(
        "attack",
        format!(
            "sent {}  error replies {}  ok replies {}  timeouts {}  dropped {}  reconnects {}; reply {}",
            st.sent.get(),
            st.err_replies.get(),
            st.ok_replies.get(),
            st.timeouts.get(),
            st.closed.get(),
            st.reconnects.get(),
            lat_text(&ah)
        ),
    );
    r.set(
        "attack",
        json!({"sent": st.sent.get(), "error_replies": st.err_replies.get(), "ok_replies": st.ok_replies.get(), "timeouts": st.timeouts.get(), "dropped": st.closed.get(), "reconnects": st.reconnects.get(), "latency": lat_json(&ah), "connect_errors": att_errors.total()}),
    );
    r.errors(&errors);
    Ok(Outcome { report: r, exit_code: if run.live > 0 { 0 } else { 1 } })
}
