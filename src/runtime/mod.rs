//! The WebAssembly runtime: the handler call, over a route table that hot swaps replace.
//!
//! Read in lifecycle order, as wasmtime's types go: [`engine`] (one `Engine`, its linkers),
//! [`loader`] (a `Module` checked against [`abi`] and linked into an `InstancePre` per module
//! version, or a component through [`component`]), [`reload`] (the route table a manifest
//! describes) and [`table`] (the one serving, and the hot swaps that replace it), [`instance`]
//! (a `Store` and instance per event, or kept warm), [`host`], [`state`] and [`wasi`] (what a
//! call may do), [`ticker`] (the epoch and its policy: deadlines, the slow lane). This file owns
//! the call. It must never block a tokio worker: calls are async wasmtime calls that yield at
//! epoch ticks, and compilation runs on the blocking pool.

pub mod abi;
mod component;
mod engine;
mod error;
pub mod host;
mod instance;
pub mod loader;
pub mod manifest;
mod reload;
pub mod state;
mod table;
mod ticker;
mod wasi;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use wasmtime::Store;

use crate::config::RuntimeConfig;
use crate::delivery::{ClientHandle, Delivery, unix_ms};
pub use error::CallError;
use instance::Code;
use manifest::InstanceMode;
pub use reload::{ModuleStatus, RuntimeStatus};
use state::HostState;
use table::Table;
use ticker::Ticker;

/// Longest `last_call_error` kept and logged, bytes.
const MAX_CALL_ERROR_BYTES: usize = 2048;

pub struct Runtime {
    table: Arc<Table>,
    delivery: Arc<Delivery>,
    /// Permits for calls running past their first epoch tick (see [`ticker::install_policy`]).
    slow_lane: Arc<Semaphore>,
    ticker: Arc<Ticker>,
    /// Tells the file watcher to stop; dropped with the runtime, which stops it too.
    stop_signal: tokio::sync::watch::Sender<bool>,
}

impl Runtime {
    /// Builds the engine and loads the manifest, compiling its modules in parallel; then, and
    /// only then, starts the epoch ticker. Any error is fatal and names the file, the route and
    /// the fix.
    pub fn new(cfg: &RuntimeConfig, delivery: Arc<Delivery>) -> anyhow::Result<Arc<Self>> {
        let table = Table::load(cfg, engine::build(cfg)?, delivery.metrics.clone())?;
        let tick = Duration::from_micros(cfg.epoch_tick_us.max(50));
        let ticker = Arc::new(Ticker::spawn(table.engines.all(), tick, delivery.metrics.clone())?);
        Ok(Arc::new(Self {
            table,
            delivery,
            slow_lane: Arc::new(Semaphore::new(cfg.slow_lane.max(1))),
            ticker,
            stop_signal: tokio::sync::watch::channel(false).0,
        }))
    }

    /// Watches the manifest and modules; on change, reloads off the hot path.
    pub fn watch(&self, debounce: Duration) -> anyhow::Result<()> {
        watch::spawn(&self.table, self.stop_signal.subscribe(), debounce)
    }

    /// Stops the background work: the file watcher at once, the epoch ticker once every call
    /// that may still be running has passed its deadline (so none can spin forever). Dropping
    /// the runtime stops both at once.
    pub fn stop(&self) {
        self.ticker.stop_after(unix_ms() + self.table.longest_timeout_ms() + 1000);
        self.stop_signal.send_replace(true);
    }

    /// Reloads the manifest and changed modules. The route table is swapped atomically at
    /// once for what needs no compile (a removed module, a changed route, a failed load), then
    /// again as each changed module's compile ends (see [`table`]). Events already running
    /// finish on the old version. Returns the status once this reload's compiles are done.
    pub async fn reload(&self) -> RuntimeStatus {
        for mut done in self.table.begin_reload().await {
            let _ = done.wait_for(|d| *d).await;
        }
        self.status()
    }

    pub fn status(&self) -> RuntimeStatus {
        self.table.status()
    }

    /// The hot path: one event, one instance (fresh, or warm for `instance = "reuse"`), one
    /// call. Replies go straight to the client's queue from the host functions.
    pub async fn call(
        &self,
        client: &Arc<ClientHandle>,
        event: &str,
        data: &str,
        id: Option<&str>,
    ) -> Result<(), CallError> {
        let Some(route) = self.table.route(event) else {
            return Err(CallError::UnknownEvent);
        };
        let metrics = &self.delivery.metrics;
        metrics.handler_calls_total.inc();
        let module = &route.module;
        let reuse = module.spec().instance == InstanceMode::Reuse;

        let warm = if reuse { module.warm.take() } else { None };
        let mut inst = match warm {
            Some(mut w) => {
                w.store.data_mut().begin_call(client);
                w
            }
            // Boxed: instantiation's future is the largest part of this one, and without it
            // the boxed call (see `session`) fits glibc's per-thread cache, so a warm call
            // allocates without taking the allocator's shared arena lock.
            None => match Box::pin(instance::instantiate(self.new_store(client, module), &module.code, reuse)).await {
                Ok(inst) => inst,
                Err(err) => return Err(self.failed(err, module, event, client)),
            },
        };
        // Only a frame with an id costs an allocation here.
        inst.store.data_mut().reply_id = id.map(Box::from);
        inst.store.set_epoch_deadline(1);
        if let Some(fuel) = module.spec().limits.fuel {
            let _ = inst.store.set_fuel(fuel);
        }

        let fields: [&[u8]; 4] =
            [event.as_bytes(), data.as_bytes(), client.id_str.as_bytes(), client.identity.user.as_bytes()];
        let result = inst.invoke(route.export, &fields).await;
        inst.store.data_mut().flush_wasi_output();
        let outcome = match result {
            Ok(Ok(())) if inst.store.data().send_limit_hit => {
                let l = &module.spec().limits;
                Err(CallError::SendLimit(l.max_sends, l.max_send_bytes))
            }
            Ok(Ok(())) => Ok(()),
            Ok(Err(status)) => {
                metrics.handler_failures_total.inc();
                Err(CallError::Failed(status))
            }
            Err(e) => Err(instance::classify(&e, inst.store.data())),
        };
        // A trapped, interrupted or limited instance is never reused: its state is suspect.
        if reuse && matches!(outcome, Ok(()) | Err(CallError::Failed(_))) && inst.reset_for_reuse(module.name()).await {
            module.warm.put(inst);
        }
        outcome.map_err(|err| self.failed(err, module, event, client))
    }

    /// A `Store` for one instance: its state, the memory/table limiter and the epoch policy.
    fn new_store(&self, client: &Arc<ClientHandle>, module: &loader::LoadedModule) -> Store<HostState> {
        let state = HostState::new(client.clone(), self.delivery.clone(), module.info.clone());
        let engine = match module.code {
            Code::Core { .. } => &self.table.engines.engine,
            Code::Component { .. } => &self.table.engines.component_engine,
        };
        let mut store = Store::new(engine, state);
        store.limiter(|s| s);
        ticker::install_policy(&mut store, &self.ticker, &self.slow_lane);
        store
    }

    /// Counts and logs a failed call; returns its error for the error frame.
    fn failed(&self, err: CallError, module: &loader::LoadedModule, event: &str, client: &ClientHandle) -> CallError {
        let metrics = &self.delivery.metrics;
        match &err {
            CallError::MemoryLimit => metrics.handler_memory_limit_total.inc(),
            CallError::Timeout => {
                metrics.handler_timeouts_total.inc();
                module.info.penalize();
            }
            CallError::Fuel => metrics.handler_timeouts_total.inc(),
            CallError::Trapped(_) => metrics.handler_traps_total.inc(),
            _ => {}
        }
        // The details may quote the module's name section (function names in a backtrace):
        // one escaped line, so a module cannot forge log lines through them either.
        let mut details = String::new();
        if !state::escape_log_text(&err.to_string(), MAX_CALL_ERROR_BYTES, &mut details) {
            details.push_str("...");
        }
        tracing::warn!(module = %module.name(), event, client = %client.id_str, "{details}");
        if matches!(err, CallError::Trapped(_) | CallError::Timeout | CallError::Fuel | CallError::MemoryLimit)
            && let Ok(mut last) = module.last_call_error.lock()
        {
            *last = Some((details, crate::protocol::now_secs()));
        }
        err
    }
}
