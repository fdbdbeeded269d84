//! Cluster mode: the [`Broker`] that carries sends, kicks and presence to the other nodes
//! through Redis (centrifuge's `broker_redis.go`).
//!
//! Owns the node's id and its two Redis connections, each run by one task: [`subscriber`]
//! (pub/sub: what other nodes send here) and [`link`] (commands: publishes, presence writes,
//! liveness, sweeps). The broker's methods only enqueue, so a send, a join or a connect never
//! waits on Redis beyond a bounded confirmation (a connect or a join waits for its
//! subscription and its presence write, at most `timeout_ms`, and not at all while Redis is
//! unreachable). It must never be needed by local
//! traffic: with Redis down, every local send, echo and presence answer goes on as before.
//! The layout of channels and keys is `docs/CLUSTER.md`.

mod link;
mod presence;
mod subscriber;
pub mod wire;

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::config::ClusterConfig;
use crate::delivery::{Broker, ClientHandle, ClientInfo, Delivery, Online, Target};
use crate::metrics::Metrics;
use presence::{Change, Queries, Scripts, Write};
use subscriber::Sub;
use wire::Op;

/// What the broker and its two tasks share.
struct Shared {
    client: redis::Client,
    prefix: String,
    node: Arc<str>,
    timeout: Duration,
    heartbeat_ms: u64,
    node_ttl_ms: u64,
    scripts: Scripts,
    metrics: Arc<Metrics>,
    delivery: Weak<Delivery>,
    /// The command connection while it is up, for presence queries.
    conn: ArcSwapOption<MultiplexedConnection>,
    link_up: AtomicBool,
    sub_up: AtomicBool,
    /// Set when a presence change was dropped: the link resyncs once it can.
    resync: AtomicBool,
    stop: CancellationToken,
}

/// The Redis broker of one node.
pub struct Cluster {
    shared: Arc<Shared>,
    publish: mpsc::Sender<(String, Bytes)>,
    presence: mpsc::Sender<Write>,
    /// Unbounded, yet bounded by what it carries: one change per join, quit, connect or
    /// disconnect of a local client, applied in order as fast as they come.
    subs: mpsc::UnboundedSender<Sub>,
}

/// A node id that no earlier process used: the time, the process id and a random hash.
fn fresh_node_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.write_u32(std::process::id());
    format!("{:012x}", h.finish() >> 16)
}

impl Cluster {
    /// Starts the broker's tasks and puts it behind `delivery`. Returns at once: Redis is
    /// reached in the background (and again whenever it is lost).
    pub fn start(cfg: &ClusterConfig, url: &str, delivery: &Arc<Delivery>) -> anyhow::Result<Arc<Self>> {
        let client = redis::Client::open(url).map_err(|e| anyhow::anyhow!("cluster.redis_url {url:?}: {e}"))?;
        let node: Arc<str> = Arc::from(cfg.node_id.clone().unwrap_or_else(fresh_node_id));
        anyhow::ensure!(
            !node.is_empty() && node.len() <= 64 && !node.contains(['.', ' ']),
            "cluster.node_id must be 1 to 64 characters without '.' or spaces"
        );
        let shared = Arc::new(Shared {
            client,
            prefix: cfg.prefix.clone(),
            node: node.clone(),
            timeout: Duration::from_millis(cfg.timeout_ms.max(1)),
            heartbeat_ms: cfg.heartbeat_ms.max(10),
            node_ttl_ms: cfg.node_ttl_ms.max(cfg.heartbeat_ms * 2),
            scripts: Scripts::default(),
            metrics: delivery.metrics.clone(),
            delivery: Arc::downgrade(delivery),
            conn: ArcSwapOption::empty(),
            link_up: AtomicBool::new(false),
            sub_up: AtomicBool::new(false),
            resync: AtomicBool::new(false),
            stop: CancellationToken::new(),
        });
        let (publish, publish_rx) = mpsc::channel(cfg.publish_buffer.max(1));
        let (presence, presence_rx) = mpsc::channel(cfg.publish_buffer.max(1));
        let (subs, subs_rx) = mpsc::unbounded_channel();
        tokio::spawn(link::run(shared.clone(), link::Queues { publish: publish_rx, presence: presence_rx }));
        tokio::spawn(subscriber::run(shared.clone(), subs_rx));
        let cluster = Arc::new(Self { shared, publish, presence, subs });
        delivery.set_broker(node.clone(), cluster.clone());
        tracing::info!(%node, prefix = %cfg.prefix, "cluster mode: sharing sends and presence through Redis");
        Ok(cluster)
    }

    pub fn node_id(&self) -> &str {
        &self.shared.node
    }

    /// Stops both tasks. The node's presence entries are left to expire (a survivor sweeps
    /// them), unless [`Cluster::leave`] removed them first.
    pub fn stop(&self) {
        self.shared.stop.cancel();
    }

    /// Removes this node from the cluster's presence now (graceful shutdown, after
    /// [`Cluster::stop`]), within the command timeout.
    pub async fn leave(&self) {
        let Some(conn) = self.shared.conn.load_full() else { return };
        let mut conn = (*conn).clone();
        let s = &self.shared;
        let sweep = async {
            loop {
                let mut c = presence::evalsha(&s.scripts.sweep);
                c.arg(&s.prefix).arg(&*s.node).arg(1000).arg(0);
                match c.query_async::<i64>(&mut conn).await {
                    Ok(..=0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        };
        let _ = tokio::time::timeout(s.timeout * 4, sweep).await;
    }

    fn up(&self) -> bool {
        self.shared.link_up.load(Relaxed) && self.shared.sub_up.load(Relaxed)
    }

    fn change(&self, c: Change) {
        self.queue((c, None));
    }

    fn queue(&self, w: Write) {
        if self.presence.try_send(w).is_err() {
            self.shared.metrics.cluster_presence_dropped_total.inc();
            self.shared.resync.store(true, Relaxed);
        }
    }

    /// Queues a change and waits until Redis has applied it (only while Redis is reachable,
    /// and at most the command timeout), so that every node's presence shows it once the
    /// client is answered.
    async fn applied(&self, c: Change) {
        if !self.up() {
            return self.change(c);
        }
        let (tx, rx) = oneshot::channel();
        self.queue((c, Some(tx)));
        let _ = tokio::time::timeout(self.shared.timeout, rx).await;
    }

    fn channel(&self, to: Target<'_>) -> Option<String> {
        let node = match to {
            Target::Client(id) => Some(wire::node_of(id)?),
            _ => None,
        };
        Some(wire::channel(&self.shared.prefix, to, node))
    }

    fn send(&self, op: Op, to: Target<'_>, payload: &[u8]) {
        let (Some(channel), Some(msg)) = (self.channel(to), wire::encode(op, &self.shared.node, to, payload)) else {
            return;
        };
        if self.publish.try_send((channel, msg)).is_err() {
            self.shared.metrics.cluster_publish_dropped_total.inc();
        }
    }

    /// Counts one more local reference to a channel and waits until it is subscribed (only
    /// while Redis is reachable, and at most the command timeout).
    async fn listen(&self, channel: String) {
        let (tx, rx) = oneshot::channel();
        let wait = self.up();
        if self.subs.send(Sub::Add(channel, wait.then_some(tx))).is_ok() && wait {
            let _ = tokio::time::timeout(self.shared.timeout, rx).await;
        }
    }

    fn unlisten(&self, channel: String) {
        let _ = self.subs.send(Sub::Remove(channel));
    }

    fn queries(&self) -> Option<Queries<'_>> {
        let conn = self.shared.conn.load_full()?;
        Some(Queries { conn: (*conn).clone(), prefix: &self.shared.prefix, timeout: self.shared.timeout })
    }
}

impl Broker for Cluster {
    fn publish(&self, to: Target<'_>, frame: &Utf8Bytes) {
        self.send(Op::Send, to, frame.as_bytes());
    }

    fn kick(&self, to: Target<'_>, code: u16) {
        self.send(Op::Kick, to, &code.to_le_bytes());
    }

    fn connected<'a>(&'a self, client: &'a ClientHandle) -> BoxFuture<'a, ()> {
        let info = client.info();
        let connect = Change::Connect {
            id: info.id.clone(),
            user: info.user.clone(),
            info: link::info_json(&info),
            score: client.connected_at_ms(),
        };
        Box::pin(async move {
            let user = async {
                if !client.is_guest() {
                    self.listen(wire::channel(&self.shared.prefix, Target::User(&client.identity.user), None)).await;
                }
            };
            tokio::join!(self.applied(connect), user);
        })
    }

    fn disconnected(&self, client: &ClientHandle, tags: &[Arc<str>]) {
        self.change(Change::Disconnect { id: client.id_str.to_string() });
        if !client.is_guest() {
            self.unlisten(wire::channel(&self.shared.prefix, Target::User(&client.identity.user), None));
        }
        for t in tags {
            self.unlisten(wire::channel(&self.shared.prefix, Target::Tag(t), None));
        }
    }

    fn joined<'a>(&'a self, client: &'a ClientHandle, tag: &'a str) -> BoxFuture<'a, ()> {
        let join =
            Change::Join { id: client.id_str.to_string(), user: client.identity.user.to_string(), tag: tag.into() };
        Box::pin(async move {
            tokio::join!(self.applied(join), self.listen(wire::channel(&self.shared.prefix, Target::Tag(tag), None)));
        })
    }

    fn quit(&self, client: &ClientHandle, tag: &str) {
        self.change(Change::Quit { id: client.id_str.to_string(), tag: tag.into() });
        self.unlisten(wire::channel(&self.shared.prefix, Target::Tag(tag), None));
    }

    fn online(&self) -> BoxFuture<'_, Option<Online>> {
        Box::pin(async move { self.queries()?.online().await })
    }

    fn clients(&self, page: usize, per_page: usize) -> BoxFuture<'_, Option<(usize, Vec<ClientInfo>)>> {
        Box::pin(async move {
            let (total, mut list) = self.queries()?.clients(page, per_page).await?;
            // Local clients are shown live (last heartbeat), not as Redis last saw them.
            if let Some(d) = self.shared.delivery.upgrade() {
                for c in &mut list {
                    if let Some(local) = d.local_client(&c.id) {
                        *c = local.info();
                    }
                }
            }
            Some((total, list))
        })
    }

    fn client<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Option<Option<ClientInfo>>> {
        Box::pin(async move { self.queries()?.client(id).await })
    }

    fn tag_members<'a>(&'a self, tag: &'a str) -> BoxFuture<'a, Option<Vec<String>>> {
        Box::pin(async move { self.queries()?.tag_members(tag).await })
    }

    fn health(&self) -> &'static str {
        if self.up() { "ok" } else { "degraded" }
    }
}
