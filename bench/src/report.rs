//! `report`: the summary of a `scripts/bench-all.sh` run, from the JSON lines it wrote (each a
//! scenario's result plus `label`, `server`, `round`, `run`, `commit`). Per scenario, each
//! server's headline number and p99 (medians over the interleaved rounds) and its ratio to the
//! peers (the median of the ratios taken within a round); then the targets of BENCHMARKS.md.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

/// A number at a dotted path of a result.
fn num(r: &Value, path: &str) -> Option<f64> {
    path.split('.').try_fold(r, |v, k| v.get(k)).and_then(Value::as_f64)
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    (n > 0).then(|| if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// The headline number of a scenario: (path, divisor, unit).
fn headline(scenario: &str) -> (&'static str, f64, &'static str) {
    match scenario {
        "fanout" => ("deliveries_per_s", 1.0, "deliveries/s"),
        "cluster" => ("fanout.deliveries_per_s", 1.0, "deliveries/s"),
        "idle" => ("rss_per_conn_bytes", 1024.0, "server RSS KiB/conn"),
        "churn" => ("connections_per_s", 1.0, "new conns/s"),
        "hostile" => ("ratio.p99", 1.0, "echo p99 attack/baseline"),
        _ => ("throughput_msgs_s", 1.0, "msgs/s"),
    }
}

fn head(r: &Value) -> Option<f64> {
    let (path, div, _) = headline(r["scenario"].as_str()?);
    num(r, path).map(|v| v / div)
}

/// `1,234,567` above 100, two decimals below.
fn fmt(v: Option<f64>) -> String {
    let Some(v) = v else { return "-".into() };
    if v.abs() < 100.0 {
        return if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.2}") };
    }
    let digits = format!("{:.0}", v.abs());
    let mut out = String::from(if v < 0.0 { "-" } else { "" });
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The median ratio, three decimals (a median of 1.4978 must not read as "1.50x, MET"), with
/// every round's when there are several.
fn spread(rs: &[f64]) -> String {
    let Some(m) = median(rs.to_vec()) else { return "-".into() };
    let each: Vec<String> = rs.iter().map(|r| format!("{r:.3}")).collect();
    if rs.len() > 1 { format!("{m:.3}x ({})", each.join(", ")) } else { format!("{m:.3}x") }
}

struct Run(Vec<Value>);

impl Run {
    /// The results of `server` in scenario `label`, one per round.
    fn of<'a>(&'a self, label: &'a str, server: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.0.iter().filter(move |r| r["label"] == label && r["server"] == server && r.get("scenario").is_some())
    }
    fn median(&self, label: &str, server: &str, path: &str) -> Option<f64> {
        median(self.of(label, server).filter_map(|r| num(r, path)).collect())
    }
    fn value(&self, label: &str, server: &str) -> Option<f64> {
        median(self.of(label, server).filter_map(head).collect())
    }
    /// `a`'s headline over `b`'s, within each round both ran.
    fn ratios(&self, label: &str, a: &str, b: &str) -> Vec<f64> {
        let pair = |ra: &Value| Some(head(ra)? / head(self.of(label, b).find(|rb| rb["round"] == ra["round"])?)?);
        self.of(label, a).filter_map(pair).filter(|r| r.is_finite()).collect()
    }
    /// The first result of a scenario, and its label.
    fn first(&self, scenario: &str) -> Option<(&str, &Value)> {
        let r = self.0.iter().find(|r| r["scenario"] == scenario && r["server"] == "switchyard")?;
        Some((r["label"].as_str()?, r))
    }
}

pub fn print(file: &Path) -> Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?;
    let run = Run(text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["label"].is_string())
        .collect());
    let (first, rounds) = (run.0.first(), run.0.iter().filter_map(|r| r["round"].as_u64()).max().unwrap_or(1));
    let field = |k: &str| first.and_then(|r| r[k].as_str()).unwrap_or("-").to_string();
    println!(
        "run {}, commit {}; echo scenarios: {rounds} interleaved round(s), medians, ratios taken within a round",
        field("run"),
        field("commit")
    );
    println!("\n| scenario | server | unit | value | p99 µs | server CPU µs/msg | errors | / axum | / node |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for r in run.0.iter().filter(|r| r.get("scenario").is_some()) {
        let key = (r["label"].as_str().unwrap_or("-"), r["server"].as_str().unwrap_or("-"));
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let (label, server) = key;
        let unit = headline(r["scenario"].as_str().unwrap_or("")).2;
        let errors: f64 = run.of(label, server).filter_map(|r| num(r, "errors.total")).sum();
        let vs = |peer: &str| match run.ratios(label, server, peer) {
            rs if rs.is_empty() || ["axum", "node"].contains(&server) => "-".to_string(),
            rs => format!("{:.2}x", median(rs).unwrap_or(f64::NAN)),
        };
        let (p99, cpu) =
            (run.median(label, server, "latency.p99_us"), run.median(label, server, "cpu_us_per_msg.server"));
        let value = fmt(run.value(label, server));
        println!(
            "| {label} | {server} | {unit} | {value} | {} | {} | {errors} | {} | {} |",
            fmt(p99),
            fmt(cpu),
            vs("axum"),
            vs("node")
        );
    }

    let cluster = run.first("cluster").map(|(l, _)| l);
    if let Some(label) = cluster {
        println!("\n| {label} (3 nodes, Redis) | switchyard | socketio | switchyard / socketio |\n|---|---|---|---|");
        for (name, path) in [
            ("fan-out deliveries/s", "fanout.deliveries_per_s"),
            ("first send to last delivery, ms", "fanout.time_to_last_ms"),
            ("fan-out delivery p99 µs", "fanout.latency.p99_us"),
            ("cross-node user send p50 µs", "user_send.latency.p50_us"),
            ("cross-node user send p99 µs", "user_send.latency.p99_us"),
            ("Redis PUBLISH per fan-out send", "fanout.redis.publish_per_send"),
            ("Redis commands per fan-out send (all)", "fanout.redis.calls_per_send"),
            ("Redis commands per user send (all)", "user_send.redis.calls_per_send"),
        ] {
            let (a, b) = (run.median(label, "switchyard", path), run.median(label, "socketio", path));
            let ratio = match a.zip(b).filter(|(_, b)| *b > 0.0) {
                _ if path.starts_with("fanout.deliveries") => spread(&run.ratios(label, "switchyard", "socketio")),
                Some((a, b)) => format!("{:.2}x", a / b),
                None => "-".into(),
            };
            println!("| {name} | {} | {} | {ratio} |", fmt(a), fmt(b));
        }
        let lost = |s: &str| -> f64 {
            let keys = [
                "fanout.deliveries.missing",
                "fanout.deliveries.duplicates",
                "user_send.missing",
                "user_send.duplicates",
            ];
            run.of(label, s).map(|r| keys.iter().filter_map(|k| num(r, k)).sum::<f64>()).sum()
        };
        println!("| missing + duplicate deliveries (all runs) | {} | {} | |", lost("switchyard"), lost("socketio"));
    }

    let mut targets: Vec<(String, Option<bool>, String)> = Vec::new();
    for label in ["echo_10x8", "echo_1000x1"] {
        for sy in ["switchyard", "fresh"] {
            for (peer, want) in [("axum", 0.85), ("node", 1.5)] {
                let rs = run.ratios(label, sy, peer);
                targets.push((
                    format!("{label} {sy} >= {want}x {peer} msgs/s"),
                    median(rs.clone()).map(|m| m >= want),
                    spread(&rs),
                ));
            }
        }
    }
    let fan = run.first("fanout").map(|(l, _)| run.ratios(l, "switchyard", "node")).unwrap_or_default();
    targets.push(("fanout >= 1.5x node deliveries/s".into(), median(fan.clone()).map(|m| m >= 1.5), spread(&fan)));
    let cl = cluster.map(|l| run.ratios(l, "switchyard", "socketio")).unwrap_or_default();
    targets.push((
        "cluster fan-out >= 3x socketio deliveries/s".into(),
        median(cl.clone()).map(|m| m >= 3.0),
        spread(&cl),
    ));
    let p99: Vec<f64> = cluster
        .map(|l| run.of(l, "switchyard").filter_map(|r| num(r, "user_send.latency.p99_us")).collect())
        .unwrap_or_default();
    let each: Vec<String> = p99.iter().map(|&p| fmt(Some(p))).collect();
    targets.push((
        "cluster: cross-node user send p99 < 2 ms".into(),
        median(p99.clone()).map(|p| p < 2000.0),
        format!("{} µs ({})", fmt(median(p99)), each.join(", ")),
    ));
    let idle = run.first("idle").and_then(|(l, _)| run.value(l, "switchyard"));
    targets.push(("idle <= 8 KiB server RSS per conn".into(), idle.map(|k| k <= 8.0), format!("{} KiB", fmt(idle))));
    let churn = run.first("churn").and_then(|(l, _)| run.value(l, "switchyard"));
    targets.push(("churn >= 5,000 new auth conns/s".into(), churn.map(|c| c >= 5000.0), format!("{}/s", fmt(churn))));
    let swap = run.first("swap").map(|(_, s)| s);
    let observed =
        swap.map(|s| ["v1->v2", "v2->v1"].iter().filter_map(|d| num(s, &format!("swap.{d}.observed"))).sum::<f64>());
    let (errs, missing) = (swap.and_then(|s| num(s, "errors.total")), swap.and_then(|s| num(s, "missing_replies")));
    let clean = swap.map(|s| errs == Some(0.0) && missing == Some(0.0) && observed == num(s, "swaps"));
    let counts = format!("errors {}, missing {}, observed {}", fmt(errs), fmt(missing), fmt(observed));
    targets.push(("swap: 0 errors, 0 missing, every swap observed".into(), clean, counts));
    let max = swap
        .and_then(|s| ["v1->v2", "v2->v1"].iter().filter_map(|d| num(s, &format!("swap.{d}.max_ms"))).reduce(f64::max));
    targets.push((
        "swap: new version within 250 ms of the write".into(),
        max.map(|m| m <= 250.0),
        format!("max {} ms", fmt(max)),
    ));
    let p99 = run.first("hostile").and_then(|(_, h)| num(h, "ratio.p99"));
    targets.push((
        "hostile: echo p99 with attackers <= 2x without".into(),
        p99.map(|p| p <= 2.0),
        format!("{}x", fmt(p99)),
    ));
    println!("\n| target | verdict | measured |\n|---|---|---|");
    for (name, ok, measured) in targets {
        let verdict = match ok {
            Some(true) => "MET",
            Some(false) => "MISSED",
            None => "NOT RUN",
        };
        println!("| {name} | **{verdict}** | {measured} |");
    }
    let name = |r: &Value| format!("{}/{}", r["label"].as_str().unwrap_or("-"), r["server"].as_str().unwrap_or("-"));
    let failed: Vec<String> = run.0.iter().filter(|r| r.get("error").is_some()).map(name).collect();
    if !failed.is_empty() {
        println!("\nfailed (no result): {}", failed.join(", "));
    }
    let noisy = run.0.iter().filter(|r| num(r, "other_busy_procs").is_some_and(|n| n > 0.0)).count();
    if noisy > 0 {
        println!("\nnoisy: compilers or another bench were running when {noisy} of {} runs started", run.0.len());
    }
    let load: Vec<f64> = run.0.iter().filter_map(|r| num(r, "load1")).collect();
    if let (Some(lo), Some(hi)) = (load.iter().copied().reduce(f64::min), load.iter().copied().reduce(f64::max)) {
        println!("\n1-minute load average when the runs started: {lo:.2} to {hi:.2} (2 cores)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_are_taken_within_a_round_and_their_median_reported() {
        let line = |server: &str, round: u32, tput: f64| serde_json::json!({"label": "echo_10x8", "server": server, "round": round, "scenario": "echo", "throughput_msgs_s": tput});
        let run = Run(vec![
            line("switchyard", 1, 300.0),
            line("node", 1, 100.0),
            line("switchyard", 2, 100.0),
            line("node", 2, 50.0),
            line("switchyard", 3, 90.0),
        ]);
        assert_eq!(run.ratios("echo_10x8", "switchyard", "node"), vec![3.0, 2.0], "round 3 has no node");
        assert_eq!(run.value("echo_10x8", "switchyard"), Some(100.0));
        assert_eq!(spread(&[3.0, 2.0]), "2.500x (3.000, 2.000)");
        assert_eq!(fmt(Some(1234567.4)), "1,234,567");
        assert_eq!(fmt(Some(6.166)), "6.17");
    }
}
