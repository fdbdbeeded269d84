//! The node's command connection to Redis: publishing, presence writes, liveness and sweeps.
//!
//! Owns one multiplexed connection, shared with the presence queries. Publishes and presence
//! changes arrive on bounded queues and leave in pipelines (a burst of sends is one round
//! trip); the heartbeat writes this node's liveness and finds dead nodes, which it sweeps in
//! batches. After every (re)connect it loads the scripts and resyncs this node's presence from
//! its hub (idempotent: what Redis holds for the node is replaced, not replayed). It must never
//! make a sender wait: while Redis is slow or down, what does not fit is dropped and counted.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use redis::aio::MultiplexedConnection;
use tokio::sync::mpsc;

use super::Shared;
use super::presence::{Write, evalsha};
use crate::delivery::ClientInfo;

/// Messages or changes sent in one pipeline at most.
const BATCH: usize = 256;
/// Dead node's clients dropped per script call, so no call blocks Redis for long.
const SWEEP_BATCH: usize = 200;

pub struct Queues {
    pub publish: mpsc::Receiver<(String, Bytes)>,
    pub presence: mpsc::Receiver<Write>,
}

async fn connect(shared: &Shared) -> redis::RedisResult<MultiplexedConnection> {
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(shared.timeout))
        .set_response_timeout(Some(shared.timeout));
    let mut conn = shared.client.get_multiplexed_async_connection_with_config(&cfg).await?;
    shared.scripts.load(&mut conn).await?;
    Ok(conn)
}

pub async fn run(shared: Arc<Shared>, mut q: Queues) {
    let mut backoff = Duration::from_millis(100);
    let mut warned = false;
    loop {
        let conn = tokio::select! {
            c = connect(&shared) => c,
            () = shared.stop.cancelled() => return,
        };
        let mut conn = match conn {
            Ok(c) => c,
            Err(e) => {
                if !warned {
                    tracing::warn!("cluster: Redis unreachable ({e}); serving this node alone until it is back");
                    warned = true;
                }
                // Nothing waits while Redis is down: what was queued is dropped and counted.
                let until = tokio::time::Instant::now() + backoff;
                loop {
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => break,
                        () = shared.stop.cancelled() => return,
                        Some(_) = q.publish.recv() => shared.metrics.cluster_publish_failed_total.inc(),
                        Some(_) = q.presence.recv() => shared.metrics.cluster_presence_dropped_total.inc(),
                    }
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        warned = false;
        let ready = async {
            heartbeat(&shared, &mut conn).await?;
            resync(&shared, &mut conn).await
        };
        if let Err(e) = ready.await {
            tracing::warn!("cluster: resync failed ({e}); reconnecting");
            continue;
        }
        shared.conn.store(Some(Arc::new(conn.clone())));
        shared.link_up.store(true, Relaxed);
        shared.metrics.cluster_connects_total.inc();
        tracing::info!(node = %shared.node, "cluster: connected to Redis, presence resynced");

        let mut tick = tokio::time::interval(Duration::from_millis(shared.heartbeat_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let lost = loop {
            let r = tokio::select! {
                () = shared.stop.cancelled() => return,
                Some(first) = q.publish.recv() => publish(&shared, &mut conn, first, &mut q.publish).await,
                Some(first) = q.presence.recv() => write(&shared, &mut conn, first, &mut q.presence).await,
                _ = tick.tick() => heartbeat(&shared, &mut conn).await.map(|missing| if missing {
                    // Silent past the TTL (a stall, not a death): another node swept us.
                    tracing::warn!(node = %shared.node, "cluster: this node was presumed dead and swept; resyncing");
                    shared.metrics.cluster_rejoins_total.inc();
                    shared.resync.store(true, Relaxed);
                }),
            };
            if let Err(e) = r {
                break e;
            }
            if shared.resync.swap(false, Relaxed)
                && let Err(e) = resync(&shared, &mut conn).await
            {
                break e;
            }
        };
        shared.link_up.store(false, Relaxed);
        shared.conn.store(None);
        tracing::warn!("cluster: Redis connection lost ({lost}); serving this node alone, reconnecting");
    }
}

/// Publishes `first` and whatever else is queued, in one pipeline.
async fn publish(
    shared: &Shared,
    conn: &mut MultiplexedConnection,
    first: (String, Bytes),
    rx: &mut mpsc::Receiver<(String, Bytes)>,
) -> redis::RedisResult<()> {
    let mut pipe = redis::pipe();
    let mut n = 0;
    let mut next = Some(first);
    while let Some((channel, msg)) = next {
        pipe.cmd("PUBLISH").arg(channel).arg(&msg[..]).ignore();
        n += 1;
        next = if n < BATCH { rx.try_recv().ok() } else { None };
    }
    match pipe.query_async::<()>(conn).await {
        Ok(()) => {
            (0..n).for_each(|_| shared.metrics.cluster_published_total.inc());
            Ok(())
        }
        Err(e) => {
            (0..n).for_each(|_| shared.metrics.cluster_publish_failed_total.inc());
            Err(e)
        }
    }
}

/// Applies `first` and whatever else is queued, in order, in one pipeline; then tells whoever
/// waits for one of them.
async fn write(
    shared: &Shared,
    conn: &mut MultiplexedConnection,
    first: Write,
    rx: &mut mpsc::Receiver<Write>,
) -> redis::RedisResult<()> {
    let mut pipe = redis::pipe();
    let mut waiting = Vec::new();
    let mut n = 0;
    let mut next = Some(first);
    while let Some((c, applied)) = next {
        pipe.add_command(c.cmd(&shared.scripts, &shared.prefix, &shared.node)).ignore();
        waiting.extend(applied);
        n += 1;
        next = if n < BATCH { rx.try_recv().ok() } else { None };
    }
    let r = pipe.query_async::<()>(conn).await;
    match &r {
        Ok(()) => waiting.into_iter().for_each(|w| {
            let _ = w.send(());
        }),
        Err(_) => (0..n).for_each(|_| shared.metrics.cluster_presence_dropped_total.inc()),
    }
    r
}

/// Writes this node's liveness and sweeps the nodes found dead, off this task. Returns whether
/// this node was missing from the live set (so its presence must be written again).
async fn heartbeat(shared: &Arc<Shared>, conn: &mut MultiplexedConnection) -> redis::RedisResult<bool> {
    let mut c = evalsha(&shared.scripts.heartbeat);
    c.arg(&shared.prefix).arg(&*shared.node).arg(shared.node_ttl_ms);
    let (missing, dead): (u8, Vec<String>) = c.query_async(conn).await?;
    for node in dead.into_iter().filter(|n| n != &*shared.node) {
        let (shared, mut conn) = (shared.clone(), conn.clone());
        tokio::spawn(async move {
            loop {
                let mut c = evalsha(&shared.scripts.sweep);
                c.arg(&shared.prefix).arg(&node).arg(SWEEP_BATCH).arg(shared.node_ttl_ms);
                match c.query_async::<i64>(&mut conn).await {
                    Ok(-1) => break,
                    Ok(0) => {
                        shared.metrics.cluster_nodes_swept_total.inc();
                        tracing::info!(%node, "cluster: swept a dead node's connections from presence");
                        break;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(%node, "cluster: sweep interrupted: {e}");
                        break;
                    }
                }
            }
        });
    }
    Ok(missing == 1)
}

/// Replaces what Redis holds for this node with its hub: every local client (with its tags)
/// written again, and every id Redis holds for this node that is not local any more dropped.
async fn resync(shared: &Shared, conn: &mut MultiplexedConnection) -> redis::RedisResult<()> {
    let Some(delivery) = shared.delivery.upgrade() else { return Ok(()) };
    let local = delivery.local().all();
    let held: Vec<String> =
        redis::cmd("SMEMBERS").arg(format!("{}:nc:{}", shared.prefix, shared.node)).query_async(conn).await?;
    let live: std::collections::HashSet<&str> = local.iter().map(|c| &*c.id_str).collect();
    for chunk in held.iter().filter(|id| !live.contains(id.as_str())).collect::<Vec<_>>().chunks(BATCH) {
        let mut pipe = redis::pipe();
        for id in chunk {
            let mut c = evalsha(&shared.scripts.disconnect);
            c.arg(&shared.prefix).arg(&*shared.node).arg(id.as_str());
            pipe.add_command(c).ignore();
        }
        pipe.query_async::<()>(conn).await?;
    }
    for chunk in local.chunks(BATCH) {
        let mut pipe = redis::pipe();
        for client in chunk {
            let info = client.info();
            let mut c = evalsha(&shared.scripts.resync);
            c.arg(&shared.prefix).arg(&*shared.node).arg(&info.id).arg(&info.user).arg(info_json(&info));
            c.arg(client.connected_at_ms()).arg(&info.tags);
            pipe.add_command(c).ignore();
        }
        pipe.query_async::<()>(conn).await?;
    }
    Ok(())
}

/// What Redis keeps of a client (tags live in their own set).
pub fn info_json(info: &ClientInfo) -> String {
    let info = ClientInfo { tags: Vec::new(), ..info.clone() };
    serde_json::to_string(&info).unwrap_or_default()
}
