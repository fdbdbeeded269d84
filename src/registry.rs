//! Presence and delivery: who is online (by client id, by user, by tag) and the send API.
//!
//! Owns the indices and each client's bounded outbound queue. Every send here is
//! non-blocking: a frame is queued (an `Arc` clone of bytes serialised once) or the client is
//! disconnected for being too slow. It must never await, never write to a socket, and never
//! hold one index's lock while taking another's in a different order (client tags, then the
//! tag index).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::Poll;

use axum::extract::ws::Utf8Bytes;
use dashmap::DashMap;
use futures_util::task::AtomicWaker;
use serde::Serialize;

use crate::auth::Identity;
use crate::metrics::Metrics;
use crate::protocol::{self, close};

/// Tags one client may be in at once.
pub const MAX_TAGS_PER_CLIENT: usize = 256;
/// Longest tag name, bytes.
pub const MAX_TAG_LEN: usize = 256;

/// One connected client, shared by the registry and its connection task.
pub struct ClientHandle {
    pub id: u64,
    /// `id` rendered once: the form every API uses.
    pub id_str: Arc<str>,
    pub identity: Identity,
    pub ip: IpAddr,
    pub user_agent: Box<str>,
    /// Unix seconds.
    pub connected_at: u64,
    /// Unix milliseconds of the last frame (or pong) received.
    last_seen_ms: AtomicU64,
    tags: Mutex<Vec<Arc<str>>>,
    /// Frames waiting for the connection task. A plain deque allocates nothing while the
    /// client is idle (a channel would hold a block per connection).
    queue: Mutex<VecDeque<Utf8Bytes>>,
    /// The connection task, woken when frames arrive in an empty queue or a close is asked.
    /// Only that one task waits, so a single waker slot does (no lock, unlike `Notify`).
    task: AtomicWaker,
    /// Set while the connection task runs a frame's handler: it looks at the queue right
    /// after, so sends from the handler (the reply, usually) need not wake it.
    handling: AtomicBool,
    queued_bytes: AtomicUsize,
    queue_limit: usize,
    /// Non-zero once the client must be closed with this code.
    close_code: AtomicU16,
    metrics: Arc<Metrics>,
}

pub fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl ClientHandle {
    /// Queues a frame. Past the byte bound the client is marked for closing (1013) instead,
    /// so one slow reader never grows memory or delays anyone else.
    pub fn send(&self, frame: Utf8Bytes) -> bool {
        if self.close_code.load(Relaxed) != 0 {
            return false;
        }
        let n = frame.len();
        if self.queued_bytes.fetch_add(n, Relaxed) + n > self.queue_limit {
            self.queued_bytes.fetch_sub(n, Relaxed);
            self.metrics.slow_consumers_total.inc();
            self.close(close::TRY_AGAIN_LATER);
            return false;
        }
        let was_empty = {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            q.push_back(frame);
            q.len() == 1
        };
        // SeqCst pairs with `end_handling`: either the task's next look at the queue comes
        // after this push, or this load sees `handling` cleared and wakes the task.
        if was_empty && !self.handling.load(SeqCst) {
            self.task.wake();
        }
        self.metrics.frames_out_total.inc();
        true
    }

    /// Moves every queued frame into `out` (the connection task's batch); returns how many.
    pub fn take_queued(&self, out: &mut VecDeque<Utf8Bytes>) -> usize {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if out.is_empty() {
            std::mem::swap(&mut *q, out);
        } else {
            out.extend(q.drain(..));
        }
        out.len()
    }

    /// Waits until frames are queued, then moves them into `out`. Cancel-safe: nothing is
    /// taken until it returns.
    pub async fn next_batch(&self, out: &mut VecDeque<Utf8Bytes>) {
        std::future::poll_fn(|cx| {
            // Register before looking, so a frame queued in between still wakes us.
            self.task.register(cx.waker());
            if self.take_queued(out) > 0 { Poll::Ready(()) } else { Poll::Pending }
        })
        .await
    }

    /// The connection task is about to run a frame's handler (see `handling`).
    pub fn begin_handling(&self) {
        self.handling.store(true, SeqCst);
    }

    /// The handler returned. The task must look at the queue before it sleeps (its loop polls
    /// [`next_batch`](Self::next_batch) once no further frame is waiting to be read), so
    /// replies to frames read together leave in one write.
    pub fn end_handling(&self) {
        self.handling.store(false, SeqCst);
    }

    /// Called by the connection task once frames left the queue.
    pub fn dequeued(&self, bytes: usize) {
        self.queued_bytes.fetch_sub(bytes, Relaxed);
    }

    /// Asks the connection task to close with `code` (first request wins).
    pub fn close(&self, code: u16) {
        if self.close_code.compare_exchange(0, code, Relaxed, Relaxed).is_ok() {
            self.task.wake();
        }
    }

    /// Resolves once [`close`](Self::close) was called; returns the code.
    pub async fn closed(&self) -> u16 {
        std::future::poll_fn(|cx| {
            self.task.register(cx.waker());
            match self.close_code.load(Relaxed) {
                0 => Poll::Pending,
                code => Poll::Ready(code),
            }
        })
        .await
    }

    pub fn touch(&self) {
        self.last_seen_ms.store(unix_ms(), Relaxed);
    }

    pub fn last_seen_ms(&self) -> u64 {
        self.last_seen_ms.load(Relaxed)
    }

    pub fn tags(&self) -> Vec<String> {
        self.tags.lock().map(|t| t.iter().map(|s| s.to_string()).collect()).unwrap_or_default()
    }

    pub fn info(&self) -> ClientInfo {
        ClientInfo {
            id: self.id_str.to_string(),
            user: self.identity.user.to_string(),
            ip: self.ip.to_string(),
            user_agent: self.user_agent.to_string(),
            connected_at: self.connected_at,
            last_heartbeat: self.last_seen_ms() / 1000,
            tags: self.tags(),
        }
    }
}

/// What the HTTP API shows of a client.
#[derive(Debug, Clone, Serialize)]
pub struct ClientInfo {
    pub id: String,
    pub user: String,
    pub ip: String,
    pub user_agent: String,
    pub connected_at: u64,
    pub last_heartbeat: u64,
    pub tags: Vec<String>,
}

/// Why a join was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TagError {
    #[error("tag must be 1 to {MAX_TAG_LEN} bytes")]
    BadName,
    #[error("a client may be in at most {MAX_TAGS_PER_CLIENT} tags")]
    TooMany,
}

/// Everyone online on this node, indexed three ways.
#[derive(Default)]
pub struct Registry {
    clients: DashMap<u64, Arc<ClientHandle>>,
    users: DashMap<Arc<str>, Vec<Arc<ClientHandle>>>,
    tags: DashMap<Arc<str>, HashMap<u64, Arc<ClientHandle>>>,
    next_id: AtomicU64,
    pub metrics: Arc<Metrics>,
}

impl Registry {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { next_id: AtomicU64::new(1), metrics, ..Default::default() }
    }

    /// Creates and indexes a client; its connection task drains its queue.
    pub fn register(&self, identity: Identity, ip: IpAddr, user_agent: &str, queue_limit: usize) -> Arc<ClientHandle> {
        let id = self.next_id.fetch_add(1, Relaxed);
        let token_tags = identity.tags.clone();
        let client = Arc::new(ClientHandle {
            id,
            id_str: Arc::from(id.to_string()),
            identity,
            ip,
            user_agent: user_agent.chars().take(256).collect::<String>().into_boxed_str(),
            connected_at: protocol::now_secs(),
            last_seen_ms: AtomicU64::new(unix_ms()),
            tags: Mutex::new(Vec::new()),
            queue: Mutex::new(VecDeque::new()),
            task: AtomicWaker::new(),
            handling: AtomicBool::new(false),
            queued_bytes: AtomicUsize::new(0),
            queue_limit,
            close_code: AtomicU16::new(0),
            metrics: self.metrics.clone(),
        });
        self.clients.insert(id, client.clone());
        self.users.entry(client.identity.user.clone()).or_default().push(client.clone());
        for t in &token_tags {
            let _ = self.join(&client, t);
        }
        self.metrics.connections_total.inc();
        self.metrics.connections.inc();
        client
    }

    /// Removes a client from every index.
    pub fn unregister(&self, client: &ClientHandle) {
        if self.clients.remove(&client.id).is_none() {
            return;
        }
        self.metrics.connections.sub(1);
        self.users.remove_if_mut(&client.identity.user, |_, v| {
            v.retain(|c| c.id != client.id);
            v.is_empty()
        });
        let tags = client.tags.lock().map(|mut t| std::mem::take(&mut *t)).unwrap_or_default();
        for tag in tags {
            self.tags.remove_if_mut(&tag, |_, m| {
                m.remove(&client.id);
                m.is_empty()
            });
        }
    }

    /// Adds the client to a tag (idempotent).
    pub fn join(&self, client: &Arc<ClientHandle>, tag: &str) -> Result<(), TagError> {
        if tag.is_empty() || tag.len() > MAX_TAG_LEN {
            return Err(TagError::BadName);
        }
        let mut tags = client.tags.lock().unwrap_or_else(|e| e.into_inner());
        if tags.iter().any(|t| &**t == tag) {
            return Ok(());
        }
        if tags.len() >= MAX_TAGS_PER_CLIENT {
            return Err(TagError::TooMany);
        }
        let tag: Arc<str> = Arc::from(tag);
        tags.push(tag.clone());
        self.tags.entry(tag).or_default().insert(client.id, client.clone());
        Ok(())
    }

    /// Removes the client from a tag (idempotent).
    pub fn quit(&self, client: &ClientHandle, tag: &str) {
        let mut tags = client.tags.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = tags.iter().position(|t| &**t == tag) {
            tags.swap_remove(i);
            self.tags.remove_if_mut(tag, |_, m| {
                m.remove(&client.id);
                m.is_empty()
            });
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<ClientHandle>> {
        let id: u64 = id.parse().ok()?;
        self.clients.get(&id).map(|c| c.clone())
    }

    pub fn send_to_client(&self, id: &str, frame: &Utf8Bytes) -> usize {
        self.get(id).map_or(0, |c| c.send(frame.clone()) as usize)
    }

    /// Every connection of the user (multi-login).
    pub fn send_to_user(&self, user: &str, frame: &Utf8Bytes) -> usize {
        self.users.get(user).map_or(0, |cs| cs.iter().filter(|c| c.send(frame.clone())).count())
    }

    pub fn send_to_tag(&self, tag: &str, frame: &Utf8Bytes) -> usize {
        self.tags.get(tag).map_or(0, |m| m.values().filter(|c| c.send(frame.clone())).count())
    }

    pub fn send_to_all(&self, frame: &Utf8Bytes) -> usize {
        self.clients.iter().filter(|c| c.send(frame.clone())).count()
    }

    /// Distinct user ids in a tag, sorted (guests, whose user id is empty, are not listed).
    pub fn tag_members(&self, tag: &str) -> Vec<Arc<str>> {
        let mut users: Vec<Arc<str>> = self
            .tags
            .get(tag)
            .map(|m| m.values().filter(|c| !c.identity.user.is_empty()).map(|c| c.identity.user.clone()).collect())
            .unwrap_or_default();
        users.sort_unstable();
        users.dedup();
        users
    }

    pub fn online_clients(&self) -> usize {
        self.clients.len()
    }

    pub fn online_users(&self) -> usize {
        self.users.len()
    }

    pub fn tag_count(&self) -> usize {
        self.tags.len()
    }

    /// A page of clients ordered by id (oldest first).
    pub fn list(&self, page: usize, per_page: usize) -> Vec<ClientInfo> {
        let mut ids: Vec<u64> = self.clients.iter().map(|c| *c.key()).collect();
        ids.sort_unstable();
        ids.iter()
            .skip(page.saturating_sub(1).saturating_mul(per_page))
            .take(per_page)
            .filter_map(|id| self.clients.get(id).map(|c| c.info()))
            .collect()
    }

    /// Asks every client to close with `code`.
    pub fn close_all(&self, code: u16) {
        for c in self.clients.iter() {
            c.close(code);
        }
    }
}
