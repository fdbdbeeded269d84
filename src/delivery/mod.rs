//! Delivery: the one seam through which everything reaches connections and presence.
//!
//! Host functions, the HTTP API and the built-in events all call [`Delivery`]: send to a
//! client, a user, a tag or everyone; join and quit; kick; ask who is online. It owns this
//! node's [`Hub`] and, in cluster mode, a [`Broker`] that carries the same calls to the other
//! nodes. A send never waits: local recipients are queued at once and the broker takes the
//! rest into a bounded buffer. It must never hold a lock across an `.await`, and never let a
//! broker's trouble reach a local send.

pub mod hub;
pub mod outbox;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use axum::extract::ws::Utf8Bytes;
use futures_util::future::BoxFuture;
use serde::Serialize;

use crate::auth::Identity;
use crate::metrics::Metrics;
pub use hub::{Hub, MAX_TAG_LEN, MAX_TAGS_PER_CLIENT, TagError};
pub use outbox::{ClientHandle, ClientInfo, unix_ms};

/// Whom a send or a kick is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    Client(&'a str),
    User(&'a str),
    Tag(&'a str),
    All,
}

/// Counts of who is online (`GET /api/online`).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, Default)]
pub struct Online {
    pub clients: usize,
    pub users: usize,
    pub tags: usize,
}

/// What carries sends, kicks and presence to the other nodes of a cluster.
///
/// Every method that a send or a presence change calls returns at once: the broker buffers
/// (bounded) and counts what it cannot deliver. The queries return `None` when the cluster
/// cannot answer now, and the caller then answers for this node alone.
pub trait Broker: Send + Sync + 'static {
    /// A frame for recipients on other nodes. Local ones were served already.
    fn publish(&self, to: Target<'_>, frame: &Utf8Bytes);
    /// A close request for connections on other nodes.
    fn kick(&self, to: Target<'_>, code: u16);
    /// A local client connected. Resolves once this node receives sends to its user from
    /// every node (at once while the cluster is unreachable).
    fn connected<'a>(&'a self, client: &'a ClientHandle) -> BoxFuture<'a, ()>;
    /// A local client disconnected; `tags` are the tags it was in.
    fn disconnected(&self, client: &ClientHandle, tags: &[Arc<str>]);
    /// A local client joined a tag it was not in. Resolves once this node receives the tag's
    /// sends from every node (at once while the cluster is unreachable).
    fn joined<'a>(&'a self, client: &'a ClientHandle, tag: &'a str) -> BoxFuture<'a, ()>;
    /// A local client quit a tag it was in.
    fn quit(&self, client: &ClientHandle, tag: &str);
    fn online(&self) -> BoxFuture<'_, Option<Online>>;
    /// A page of every node's clients, and their total.
    fn clients(&self, page: usize, per_page: usize) -> BoxFuture<'_, Option<(usize, Vec<ClientInfo>)>>;
    /// A client on another node.
    fn client<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Option<Option<ClientInfo>>>;
    /// Distinct user ids in a tag on every node.
    fn tag_members<'a>(&'a self, tag: &'a str) -> BoxFuture<'a, Option<Vec<String>>>;
    /// `"ok"`, or `"degraded"` while the cluster cannot be reached.
    fn health(&self) -> &'static str;
}

/// The send API and presence of this node, and of the cluster behind its broker.
pub struct Delivery {
    hub: Hub,
    next_id: AtomicU64,
    /// In cluster mode: this node's id, the prefix of its client ids, and its broker.
    cluster: OnceLock<(Arc<str>, Arc<dyn Broker>)>,
    pub metrics: Arc<Metrics>,
}

impl Delivery {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { hub: Hub::default(), next_id: AtomicU64::new(1), cluster: OnceLock::new(), metrics }
    }

    /// Puts a broker behind the send API (once, before serving). Client ids become
    /// `<node>-<n>` from then on (see `docs/PROTOCOL.md`).
    pub fn set_broker(&self, node: Arc<str>, broker: Arc<dyn Broker>) {
        let _ = self.cluster.set((node, broker));
    }

    fn broker(&self) -> Option<&dyn Broker> {
        self.cluster.get().map(|(_, b)| &**b)
    }

    /// This node's own indices: what a broker delivers into, and the per-node limits.
    pub fn local(&self) -> &Hub {
        &self.hub
    }

    /// The local number in a client id, if the client is (or would be) on this node.
    fn local_id(&self, id: &str) -> Option<u64> {
        match self.cluster.get() {
            None => id.parse().ok(),
            Some((node, _)) => id.strip_prefix(&**node)?.strip_prefix('-')?.parse().ok(),
        }
    }

    /// Creates, indexes and announces a client, joining the tags its token names.
    pub async fn connect(&self, identity: Identity, ip: IpAddr, ua: &str, queue_limit: usize) -> Arc<ClientHandle> {
        let n = self.next_id.fetch_add(1, Relaxed);
        let id: Arc<str> = match self.cluster.get() {
            None => Arc::from(n.to_string()),
            Some((node, _)) => Arc::from(format!("{node}-{n}")),
        };
        let token_tags = identity.tags.clone();
        let client = Arc::new(ClientHandle::new(n, id, identity, ip, ua, queue_limit, self.metrics.clone()));
        self.hub.add(&client);
        if let Some(b) = self.broker() {
            b.connected(&client).await;
        }
        for t in &token_tags {
            let _ = self.join(&client, t).await;
        }
        self.metrics.connections_total.inc();
        self.metrics.connections.inc();
        client
    }

    /// Removes a client from every index (idempotent).
    pub fn disconnect(&self, client: &ClientHandle) {
        let Some(tags) = self.hub.remove(client) else { return };
        self.metrics.connections.sub(1);
        if let Some(b) = self.broker() {
            b.disconnected(client, &tags);
        }
    }

    /// Adds the client to a tag (idempotent). Returns once sends to the tag from any node
    /// reach it.
    pub async fn join(&self, client: &Arc<ClientHandle>, tag: &str) -> Result<(), TagError> {
        if self.hub.join(client, tag)?
            && let Some(b) = self.broker()
        {
            b.joined(client, tag).await;
        }
        Ok(())
    }

    /// Removes the client from a tag (idempotent).
    pub fn quit(&self, client: &ClientHandle, tag: &str) {
        if self.hub.quit(client, tag)
            && let Some(b) = self.broker()
        {
            b.quit(client, tag);
        }
    }

    /// Sends one frame (serialised once) to every matching connection on every node. Returns
    /// the connections it was queued for on this node; other nodes' deliveries are not
    /// awaited. An empty client, user or tag name matches no one.
    pub fn send(&self, to: Target<'_>, frame: &Utf8Bytes) -> usize {
        let local = match to {
            Target::Client("") | Target::User("") | Target::Tag("") => return 0,
            Target::Client(id) => match self.local_id(id) {
                Some(n) => return self.hub.send_to_client(n, frame),
                None => 0,
            },
            Target::User(user) => self.hub.send_to_user(user, frame),
            Target::Tag(tag) => self.hub.send_to_tag(tag, frame),
            Target::All => self.hub.send_to_all(frame),
        };
        if let Some(b) = self.broker() {
            b.publish(to, frame);
        }
        local
    }

    pub fn send_to_client(&self, id: &str, frame: &Utf8Bytes) -> usize {
        self.send(Target::Client(id), frame)
    }
    pub fn send_to_user(&self, user: &str, frame: &Utf8Bytes) -> usize {
        self.send(Target::User(user), frame)
    }
    pub fn send_to_tag(&self, tag: &str, frame: &Utf8Bytes) -> usize {
        self.send(Target::Tag(tag), frame)
    }
    pub fn send_to_all(&self, frame: &Utf8Bytes) -> usize {
        self.send(Target::All, frame)
    }

    /// A frame another node published: for local recipients only.
    pub fn deliver_local(&self, to: Target<'_>, frame: &Utf8Bytes) -> usize {
        match to {
            Target::Client(id) => self.local_id(id).map_or(0, |n| self.hub.send_to_client(n, frame)),
            Target::User(user) => self.hub.send_to_user(user, frame),
            Target::Tag(tag) => self.hub.send_to_tag(tag, frame),
            Target::All => self.hub.send_to_all(frame),
        }
    }

    /// Closes a client or every connection of a user with `code`, on whichever nodes they
    /// are. Returns the connections closed on this node.
    pub fn kick(&self, to: Target<'_>, code: u16) -> usize {
        let local = self.kick_local(to, code);
        let done = matches!(to, Target::Client(id) if self.local_id(id).is_some());
        if !done && let Some(b) = self.broker() {
            b.kick(to, code);
        }
        local
    }

    /// A kick another node asked for: local connections only.
    pub fn kick_local(&self, to: Target<'_>, code: u16) -> usize {
        match to {
            Target::Client(id) => self.local_id(id).and_then(|n| self.hub.get(n)).map_or(0, |c| {
                c.close(code);
                1
            }),
            Target::User("") => 0,
            Target::User(user) => self.hub.close_user(user, code),
            Target::Tag(_) | Target::All => 0,
        }
    }

    pub async fn online(&self) -> Online {
        if let Some(b) = self.broker()
            && let Some(o) = b.online().await
        {
            return o;
        }
        Online { clients: self.hub.clients(), users: self.hub.users(), tags: self.hub.tags() }
    }

    /// A page of clients (oldest first on each node) and the total.
    pub async fn clients(&self, page: usize, per_page: usize) -> (usize, Vec<ClientInfo>) {
        if let Some(b) = self.broker()
            && let Some(p) = b.clients(page, per_page).await
        {
            return p;
        }
        (self.hub.clients(), self.hub.page(page, per_page))
    }

    /// The client with this id, if it is connected to this node.
    pub fn local_client(&self, id: &str) -> Option<Arc<ClientHandle>> {
        self.hub.get(self.local_id(id)?)
    }

    pub async fn client(&self, id: &str) -> Option<ClientInfo> {
        if let Some(n) = self.local_id(id) {
            return self.hub.get(n).map(|c| c.info());
        }
        self.broker()?.client(id).await.flatten()
    }

    /// Distinct user ids in a tag, sorted (guests have none).
    pub async fn tag_members(&self, tag: &str) -> Vec<String> {
        if let Some(b) = self.broker()
            && let Some(m) = b.tag_members(tag).await
        {
            return m;
        }
        let mut users: Vec<String> = self.hub.tag_members(tag).iter().map(|u| u.to_string()).collect();
        users.sort_unstable();
        users.dedup();
        users
    }

    /// `"ok"`, or `"degraded"` while a broker cannot reach its cluster.
    pub fn cluster_health(&self) -> Option<&'static str> {
        self.broker().map(|b| b.health())
    }

    /// Asks every local client to close with `code`.
    pub fn close_all(&self, code: u16) {
        self.hub.close_all(code);
    }
}
