//! Integration tests: one binary (one link of wasmtime), one module per area of the spec.

mod auth;
mod cluster;
mod common;
mod compile_bounds;
mod conformance;
mod expiry;
mod guest_log;
mod handlers;
mod hardening;
mod hotgo;
mod http_api;
mod internals;
mod module_paths;
mod presence;
mod props;
mod protocol;
mod sandbox;
mod web;
