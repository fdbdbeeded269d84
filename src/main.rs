//! The `switchyard` command: `serve` runs the server, `token` mints a development JWT.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use switchyard::auth::Authenticator;
use switchyard::config::{Config, DEV_API_KEY, DEV_SECRET};
use switchyard::server::Server;

#[derive(Parser)]
#[command(name = "switchyard", version, about = "A WebSocket server whose event handlers are WebAssembly modules")]
struct Cli {
    /// Config file (TOML). Default: ./switchyard.toml if it exists, else built-in defaults.
    #[arg(long, global = true, env = "SWITCHYARD_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve WebSocket clients and the HTTP API.
    Serve {
        /// Listen address (overrides `listen`).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Handler manifest (overrides `runtime.manifest`).
        #[arg(long)]
        manifest: Option<PathBuf>,
    },
    /// Print a JWT signed with the configured key (for development and tests).
    Token {
        /// User id (the `sub` claim, or `auth.user_claim`).
        #[arg(long)]
        sub: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
        /// Tags to join on connect, comma-separated.
        #[arg(long, value_delimiter = ',')]
        tags: Vec<String>,
        /// Add `"admin": true` (may call the HTTP API).
        #[arg(long)]
        admin: bool,
    },
}

/// Log lines queued for stdout before further ones are dropped.
const LOG_BUFFER_LINES: usize = 16_384;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Token { sub, ttl, tags, admin } => {
            let auth = Authenticator::new(&config.auth)?;
            println!("{}", auth.mint(&sub, ttl, &tags, admin)?);
            Ok(())
        }
        Command::Serve { listen, manifest } => {
            // Logs never block the server: lines go to a bounded queue that one thread writes to
            // stdout; when stdout cannot keep up, lines are dropped and counted
            // (switchyard_log_lines_dropped_total). The guard flushes the queue at exit, so it
            // lives as long as the server.
            let (writer, _log_guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                .lossy(true)
                .buffered_lines_limit(LOG_BUFFER_LINES)
                .thread_name("switchyard-log")
                .finish(std::io::stdout());
            let dropped = writer.error_counter();
            switchyard::metrics::count_log_lines_dropped(move || dropped.dropped_lines() as u64);
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info,cranelift=warn,wasmtime=warn".into()),
                )
                .with_writer(writer)
                .init();
            if let Some(l) = listen {
                config.listen = l;
            }
            if let Some(m) = manifest {
                config.runtime.manifest = m;
            }
            if config.uses_dev_secret() {
                tracing::warn!("**********************************************************************");
                tracing::warn!("DEVELOPMENT MODE: no auth.secret or auth.public_key_file configured.");
                tracing::warn!("Tokens are signed with the PUBLIC dev secret {DEV_SECRET:?}:");
                tracing::warn!("anyone can mint a valid token. Never expose this server.");
                tracing::warn!("**********************************************************************");
            }
            if !config.auth.require_exp {
                tracing::warn!("**********************************************************************");
                tracing::warn!("auth.require_exp = false: tokens WITHOUT an exp claim are accepted and");
                tracing::warn!("never expire on a live connection; revoke users with DELETE /api/users/ID.");
                tracing::warn!("**********************************************************************");
            }
            if config.http.api_key.is_none() {
                tracing::warn!("HTTP API uses the PUBLIC dev key {DEV_API_KEY:?}: set http.api_key");
            }
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                // Under saturation, tasks woken by more I/O events than a worker's local queue
                // holds wait in the shared queue, which tokio's default visits once every 61
                // tasks, so a few connections starved while the hot ones were served at once.
                // Visiting it every 8th keeps connections served roughly in turn without a cost
                // in throughput (BENCHMARKS.md, "Echo", 1000x1).
                .global_queue_interval(8)
                .build()?
                .block_on(serve(config))
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let server = Server::start(config).await?;
    shutdown_signal().await;
    server.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
