//! Switchyard: a WebSocket server whose event handlers are WebAssembly modules.
//!
//! Read top-down: [`config`] says what to run; [`server`] assembles it; [`auth`] admits
//! connections; [`session`] is one connection's hot path (frame in, handler call, frames out);
//! [`protocol`] is the wire format; [`registry`] is presence and the send API; [`runtime`]
//! runs the WASM handlers; [`http_api`] is the operator's API; [`metrics`] counts; [`shard`] splits per-thread state.

pub mod auth;
pub mod config;
pub mod http_api;
pub mod metrics;
pub mod protocol;
pub mod registry;
pub mod runtime;
pub mod server;
pub mod session;
pub mod shard;
