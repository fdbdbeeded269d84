//! The cost of one handler call inside the host, end to end: route lookup, a fresh `Store`
//! and instance from the pool, `alloc`, the one-copy request write, the call, and (for echo)
//! the reply frame queued to the client. No network.
//!
//! `cargo bench --bench handler_call` (see BENCHMARKS.md).

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard::auth::Identity;
use switchyard::config::RuntimeConfig;
use switchyard::delivery::{ClientHandle, Delivery};
use switchyard::metrics::Metrics;
use switchyard::runtime::Runtime;

/// The echo module of each language, when its build output exists.
const LANGUAGES: &[(&str, &str)] = &[
    ("Rust", "handlers/build/echo.wasm"),
    ("C", "examples/c/build/echo.wasm"),
    ("Zig", "examples/zig/build/echo.wasm"),
    ("AssemblyScript", "examples/assemblyscript/build/echo.wasm"),
];

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize]
}

/// Empties the client's queue as its connection task would.
fn drain(client: &ClientHandle) {
    let mut batch = std::collections::VecDeque::new();
    client.take_queued(&mut batch);
    client.dequeued(batch.iter().map(|f| f.len()).sum());
}

fn main() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(root.join("benches/wat/noop.wat"), dir.path().join("noop.wat")).unwrap();
    let mut manifest = String::from(
        "[modules.bench]\npath = \"noop.wat\"\n[[routes]]\nevent = \"bench/noop\"\nmodule = \"bench\"\nexport = \"noop\"\n\
         [modules.reuse]\npath = \"noop.wat\"\ninstance = \"reuse\"\n[[routes]]\nevent = \"reuse/noop\"\nmodule = \"reuse\"\nexport = \"noop\"\n",
    );
    let mut cases = vec![
        ("no-op handler (WAT)".to_string(), "bench/noop".to_string(), "null"),
        ("no-op handler (WAT, instance = reuse)".to_string(), "reuse/noop".to_string(), "null"),
    ];
    for (lang, path) in LANGUAGES {
        let src = root.join(path);
        if !src.exists() {
            eprintln!("skipping {lang}: {path} not built");
            continue;
        }
        let m = lang.to_lowercase();
        std::fs::copy(&src, dir.path().join(format!("{m}.wasm"))).unwrap();
        manifest.push_str(&format!(
            "[modules.{m}]\npath = \"{m}.wasm\"\n[[routes]]\nevent = \"{m}/echo\"\nmodule = \"{m}\"\nexport = \"echo\"\n"
        ));
        cases.push((format!("echo handler ({lang}, reply queued)"), format!("{m}/echo"), r#"{"n":12345}"#));
        if *lang == "Rust" {
            manifest.push_str(
                "[modules.rustreuse]\npath = \"rust.wasm\"\ninstance = \"reuse\"\n[[routes]]\nevent = \"rustreuse/echo\"\nmodule = \"rustreuse\"\nexport = \"echo\"\n",
            );
            cases.push(("echo handler (Rust, instance = reuse)".into(), "rustreuse/echo".into(), r#"{"n":12345}"#));
        }
    }
    std::fs::write(dir.path().join("switchyard.toml"), manifest).unwrap();

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let delivery = Arc::new(Delivery::new(Arc::new(Metrics::default())));
        // SWITCHYARD_RUNTIME__* variables apply, to compare pool settings.
        let env = switchyard::config::Config::load(None).expect("config").runtime;
        let cfg = RuntimeConfig { manifest: dir.path().join("switchyard.toml"), cache_dir: None, ..env };
        let runtime = Runtime::new(&cfg, delivery.clone()).unwrap();
        let identity = Identity { user: Arc::from("bench"), ..Identity::guest() };
        let client = delivery.connect(identity, [127, 0, 0, 1].into(), "bench", usize::MAX).await;

        for (name, event, data) in &cases {
            let (event, data) = (event.as_str(), *data);
            // `cargo bench` passes --bench; under `cargo test --all-targets` this is a smoke run.
            let full = std::env::args().any(|a| a == "--bench");
            let n = if full { 200_000 } else { 1_000 };
            for _ in 0..n / 20 {
                runtime.call(&client, event, data, None).await.unwrap();
                drain(&client);
            }
            let mut samples = Vec::with_capacity(n);
            let all = Instant::now();
            for _ in 0..n {
                let t = Instant::now();
                runtime.call(&client, event, data, None).await.unwrap();
                samples.push(t.elapsed());
                drain(&client);
            }
            let total = all.elapsed();
            samples.sort_unstable();
            println!(
                "{name:<44} calls={n} p50={:.2}µs p99={:.2}µs p999={:.2}µs mean={:.2}µs ({:.0} calls/s on one core)",
                percentile(&samples, 0.5).as_secs_f64() * 1e6,
                percentile(&samples, 0.99).as_secs_f64() * 1e6,
                percentile(&samples, 0.999).as_secs_f64() * 1e6,
                total.as_secs_f64() * 1e6 / n as f64,
                n as f64 / total.as_secs_f64()
            );
        }
    });
}
