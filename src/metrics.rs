//! Counters for operators, rendered in the Prometheus text format at `GET /metrics`.
//!
//! Owns plain atomic counters and gauges. It must never lock or allocate on the paths that
//! bump them: every hot-path increment is one relaxed atomic add.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

macro_rules! metrics {
    ($($(#[doc = $doc:literal])* $name:ident : $kind:literal),* $(,)?) => {
        /// Every counter the server keeps. Names are the Prometheus names minus `switchyard_`.
        #[derive(Debug, Default)]
        pub struct Metrics { $($(#[doc = $doc])* pub $name: AtomicU64,)* }

        impl Metrics {
            /// Prometheus text exposition.
            pub fn render(&self) -> String {
                let mut out = String::with_capacity(2048);
                $(
                    let help = concat!($($doc),*).trim();
                    let _ = writeln!(out, "# HELP switchyard_{} {}", stringify!($name), help);
                    let _ = writeln!(out, "# TYPE switchyard_{} {}", stringify!($name), $kind);
                    let _ = writeln!(out, "switchyard_{} {}", stringify!($name), self.$name.load(Relaxed));
                )*
                out
            }
        }
    };
}

metrics! {
    /// Connections open now.
    connections: "gauge",
    /// Connections accepted since start.
    connections_total: "counter",
    /// Upgrades refused for a missing or invalid token.
    auth_failures_total: "counter",
    /// Upgrades refused for a foreign Origin.
    origin_rejected_total: "counter",
    /// Upgrades refused because the node is at max_connections.
    connection_limit_total: "counter",
    /// Client frames received.
    frames_in_total: "counter",
    /// Frames queued to clients.
    frames_out_total: "counter",
    /// Clients disconnected because their outbound queue overflowed or a write timed out.
    slow_consumers_total: "counter",
    /// Clients disconnected for exceeding the rate limit.
    rate_limited_total: "counter",
    /// Clients closed for a frame over max_frame_bytes.
    oversized_frames_total: "counter",
    /// Clients closed by the heartbeat timeout.
    heartbeat_timeouts_total: "counter",
    /// Error frames sent for bad client input (bad JSON, missing or unknown event, binary).
    protocol_errors_total: "counter",
    /// Handler calls made.
    handler_calls_total: "counter",
    /// Handler calls that returned a non-zero status.
    handler_failures_total: "counter",
    /// Handler calls that trapped.
    handler_traps_total: "counter",
    /// Handler calls stopped at their deadline.
    handler_timeouts_total: "counter",
    /// Handler calls that hit their memory cap.
    handler_memory_limit_total: "counter",
    /// Host calls refused for a missing capability.
    capability_denied_total: "counter",
    /// Host sends refused because a call exceeded its send budget.
    send_limit_total: "counter",
    /// Successful module reloads (hot swaps).
    reloads_total: "counter",
    /// Reloads that failed and left the previous version serving.
    reload_failures_total: "counter",
    /// Reloads started (by a file change or `POST /admin/reload`), whatever they found.
    reload_checks_total: "counter",
}

impl Metrics {
    #[inline]
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }
}
