//! A start that is refused leaves no background thread behind, and a server that stopped has
//! joined its epoch ticker. Its own test binary with one test: threads are counted for the
//! whole process, and the `it` binary runs its servers in parallel.

use std::time::Duration;

use switchyard::config::Config;
use switchyard::server::Server;

/// The ticker's thread name, `switchyard-epoch`, as the kernel keeps it (15 bytes).
const EPOCH_THREAD: &str = "switchyard-epoc";

/// Threads of this process named like the epoch ticker, from `/proc/self/task/*/comm`.
fn epoch_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim_end() == EPOCH_THREAD))
        .count()
}

/// A server config for `manifest`, with `echo.wat` (from tests/wat) beside it.
fn config(dir: &std::path::Path, manifest: &str) -> Config {
    let echo = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/wat/echo.wat")).unwrap();
    std::fs::write(dir.join("echo.wat"), echo).unwrap();
    std::fs::write(dir.join("switchyard.toml"), manifest).unwrap();
    let mut c = Config { listen: "127.0.0.1:0".parse().unwrap(), ..Config::default() };
    c.runtime.manifest = dir.join("switchyard.toml");
    c.runtime.cache_dir = Some(dir.join("cache"));
    c
}

const GOOD: &str =
    "[modules.echo]\npath = \"echo.wat\"\n[[routes]]\nevent = \"echo/x\"\nmodule = \"echo\"\nexport = \"echo\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_start_leaks_no_thread_and_a_dropped_server_joins_its_ticker() {
    assert_eq!(epoch_threads(), 0, "no server yet");
    let dir = tempfile::tempdir().unwrap();

    // Serving: one ticker. Dropped: the runtime goes with the last reference to the server's
    // state (the serving task's), and joins the ticker.
    let server = Server::start(config(dir.path(), GOOD)).await.expect("starts");
    assert_eq!(epoch_threads(), 1, "a serving server has one epoch ticker");
    let taken = server.local_addr;
    let mut busy = config(dir.path(), GOOD);
    busy.listen = taken;
    // Refused with the port taken (by the server still running): no second ticker.
    let err = Server::start(busy).await.err().expect("the address is taken");
    assert!(err.to_string().to_lowercase().contains("address"), "{err}");
    assert_eq!(epoch_threads(), 1, "a start refused for its address leaves no ticker");
    drop(server);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while epoch_threads() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the epoch ticker outlived its server");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Refused for the manifest (a route to an export the module lacks), after the engine was
    // built and the module compiled: no ticker either.
    let refused = GOOD.replace("export = \"echo\"", "export = \"nope\"");
    let err = Server::start(config(dir.path(), &refused)).await.err().expect("the manifest is refused");
    assert!(err.to_string().contains("\"nope\""), "{err}");
    assert_eq!(epoch_threads(), 0, "a start refused for its manifest leaves no ticker");
}
