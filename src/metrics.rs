//! Counters for operators, rendered in the Prometheus text format at `GET /metrics`.
//!
//! Owns the counters and gauges. It must never lock or allocate on the paths that bump them:
//! an increment is one relaxed atomic add to the current thread's shard of the counter (see
//! [`crate::shard`]), so workers counting the same event do not pass one cache line back and
//! forth; reading sums the shards.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crossbeam_utils::CachePadded;

use crate::shard::{self, SHARDS};

/// Reads how many lines the process's log writer dropped (set once, by `main`).
static LOG_LINES_DROPPED: std::sync::OnceLock<Box<dyn Fn() -> u64 + Send + Sync>> = std::sync::OnceLock::new();

/// Tells `/metrics` how to read the log writer's dropped-line count
/// (`switchyard_log_lines_dropped_total`). The first call wins.
pub fn count_log_lines_dropped(read: impl Fn() -> u64 + Send + Sync + 'static) {
    let _ = LOG_LINES_DROPPED.set(Box::new(read));
}

fn log_lines_dropped() -> u64 {
    LOG_LINES_DROPPED.get().map_or(0, |read| read())
}

/// A counter (or gauge) split in one cache line per thread shard.
#[derive(Debug, Default)]
pub struct Counter([CachePadded<AtomicU64>; SHARDS]);

impl Counter {
    #[inline]
    pub fn inc(&self) {
        self.0[shard::current()].fetch_add(1, Relaxed);
    }

    /// For gauges. A shard may wrap below zero (a connection opened on one thread and closed on
    /// another); the wrapping sum is still the true value.
    #[inline]
    pub fn sub(&self, n: u64) {
        self.0[shard::current()].fetch_sub(n, Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.iter().fold(0u64, |sum, s| sum.wrapping_add(s.load(Relaxed)))
    }
}

macro_rules! metrics {
    ($($(#[doc = $doc:literal])* $name:ident : $kind:literal),* $(,)?) => {
        /// Every counter the server keeps. Names are the Prometheus names minus `switchyard_`.
        #[derive(Debug, Default)]
        pub struct Metrics { $($(#[doc = $doc])* pub $name: Counter,)* }

        impl Metrics {
            /// Prometheus text exposition.
            pub fn render(&self) -> String {
                let mut out = String::with_capacity(2048);
                $(
                    let help = concat!($($doc),*).trim();
                    let _ = writeln!(out, "# HELP switchyard_{} {}", stringify!($name), help);
                    let _ = writeln!(out, "# TYPE switchyard_{} {}", stringify!($name), $kind);
                    let _ = writeln!(out, "switchyard_{} {}", stringify!($name), self.$name.get());
                )*
                let _ = writeln!(out, "# HELP switchyard_log_lines_dropped_total Log lines the non-blocking log writer dropped because its buffer was full (stdout too slow).");
                let _ = writeln!(out, "# TYPE switchyard_log_lines_dropped_total counter");
                let _ = writeln!(out, "switchyard_log_lines_dropped_total {}", log_lines_dropped());
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
    /// Clients closed because their token expired without a refresh (4002).
    tokens_expired_total: "counter",
    /// `refresh` events that moved a connection's token expiry.
    token_refreshes_total: "counter",
    /// `refresh` events refused (invalid token, or another user's).
    token_refresh_refused_total: "counter",
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
    /// Guest log lines (the `log` host function, WASI output) dropped by the per-call or
    /// per-second budget.
    guest_log_dropped_total: "counter",
    /// Successful module reloads (hot swaps).
    reloads_total: "counter",
    /// Reloads that failed and left the previous version serving.
    reload_failures_total: "counter",
    /// Reloads started (by a file change or `POST /admin/reload`), whatever they found.
    reload_checks_total: "counter",
    /// Compiled module versions alive: the serving ones, and replaced ones that events still
    /// run on (a replaced version's code is freed when its last event ends).
    module_versions: "gauge",
    /// Epoch ticks (the handler-deadline clock): one per 4 ms at rest, one per
    /// `runtime.epoch_tick_us` while a handler call is slow.
    epoch_ticks_total: "counter",
    /// Cluster: messages published to other nodes.
    cluster_published_total: "counter",
    /// Cluster: messages from other nodes delivered here.
    cluster_received_total: "counter",
    /// Cluster: messages not published because the buffer was full (Redis too slow or down).
    cluster_publish_dropped_total: "counter",
    /// Cluster: messages whose publish failed at Redis (timeout, connection lost).
    cluster_publish_failed_total: "counter",
    /// Cluster: presence writes not made (buffer full, or Redis down); a resync follows.
    cluster_presence_dropped_total: "counter",
    /// Cluster: connections to Redis (re)established.
    cluster_connects_total: "counter",
    /// Cluster: dead nodes whose presence this node swept.
    cluster_nodes_swept_total: "counter",
    /// Cluster: times this node, silent past `node_ttl_ms` but alive, found itself swept and
    /// wrote its presence again.
    cluster_rejoins_total: "counter",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_sums_its_shards_and_a_gauge_may_go_down_on_another_thread() {
        let c = std::sync::Arc::new(Counter::default());
        (0..3).for_each(|_| c.inc());
        let c2 = c.clone();
        std::thread::spawn(move || c2.sub(1)).join().unwrap();
        assert_eq!(c.get(), 2);
    }
}
