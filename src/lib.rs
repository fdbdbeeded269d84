//! Switchyard: a WebSocket server whose event handlers are WebAssembly modules.
//!
//! Read top-down: [`config`] says what to run; [`server`] starts and stops it; [`app`] is
//! what its parts share; [`auth`] admits connections; [`session`] is one connection's hot path
//! (frame in, handler call, frames out); [`protocol`] is the wire format; [`delivery`] is the
//! send API and presence (one connection's outbox, this node's hub, a cluster broker's seam);
//! [`cluster`] is that broker over Redis; [`runtime`] runs the WASM handlers; [`http_api`] is
//! the operator's API; [`web`] the demo and admin pages; [`metrics`] counts; [`shard`] splits
//! per-thread state.
#![forbid(unsafe_code)]

pub mod app;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod delivery;
pub mod http_api;
pub mod metrics;
pub mod protocol;
pub mod rate;
pub mod runtime;
pub mod server;
pub mod session;
pub mod shard;
pub mod web;

/// The unit property tests' settings: 256 cases each, and no failure files written into the
/// source tree.
#[cfg(test)]
fn proptest_config() -> proptest::test_runner::Config {
    proptest::test_runner::Config { cases: 256, failure_persistence: None, ..Default::default() }
}
