//! One connection's outbox: the bounded queue of frames waiting for its connection task, and
//! the wake handshake between senders and that task (centrifuge's `client.go`).
//!
//! Owns a [`ClientHandle`]: who the client is, its queue, its close request and the tags it is
//! in. Senders on any thread push without waiting; only the connection task takes frames out.
//! It must never await, never write to a socket, and never grow past its byte bound: a frame
//! that does not fit closes the client (1013) instead.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::Poll;

use axum::extract::ws::Utf8Bytes;
use futures_util::task::AtomicWaker;
use serde::Serialize;

use crate::auth::Identity;
use crate::metrics::Metrics;
use crate::protocol::close;

/// Unix milliseconds, for what operators see (connected since, last heartbeat).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// One connected client, shared by the presence indices and its connection task.
pub struct ClientHandle {
    pub id: u64,
    /// `id` rendered once: the form every API uses (see `docs/PROTOCOL.md`).
    pub id_str: Arc<str>,
    pub identity: Identity,
    pub ip: IpAddr,
    pub user_agent: Box<str>,
    /// Unix seconds.
    pub connected_at: u64,
    connected_at_ms: u64,
    /// Unix milliseconds of the last frame (or pong) received: shown to operators.
    last_seen_ms: AtomicU64,
    /// Tags the client is in; the hub's tag index is the other side (lock order: these
    /// first, then the index).
    pub(super) tags: Mutex<Vec<Arc<str>>>,
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

impl ClientHandle {
    pub fn new(
        id: u64,
        id_str: Arc<str>,
        identity: Identity,
        ip: IpAddr,
        user_agent: &str,
        queue_limit: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        let now = unix_ms();
        Self {
            id,
            id_str,
            identity,
            ip,
            user_agent: user_agent.chars().take(256).collect::<String>().into_boxed_str(),
            connected_at: now / 1000,
            connected_at_ms: now,
            last_seen_ms: AtomicU64::new(now),
            tags: Mutex::new(Vec::new()),
            queue: Mutex::new(VecDeque::new()),
            task: AtomicWaker::new(),
            handling: AtomicBool::new(false),
            queued_bytes: AtomicUsize::new(0),
            queue_limit,
            close_code: AtomicU16::new(0),
            metrics,
        }
    }

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

    pub fn connected_at_ms(&self) -> u64 {
        self.connected_at_ms
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

    /// A guest (no token) has no user id and is never addressed as a user.
    pub fn is_guest(&self) -> bool {
        self.identity.user.is_empty()
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
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ClientInfo {
    pub id: String,
    pub user: String,
    pub ip: String,
    pub user_agent: String,
    pub connected_at: u64,
    pub last_heartbeat: u64,
    pub tags: Vec<String>,
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Wake, Waker};

    use super::*;

    /// A waker that counts its wakes.
    #[derive(Default)]
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn count(c: &Arc<Count>) -> usize {
        c.0.load(Ordering::SeqCst)
    }

    fn client(limit: usize) -> ClientHandle {
        let ip = "127.0.0.1".parse().unwrap();
        ClientHandle::new(1, Arc::from("1"), Identity::guest(), ip, "test", limit, Arc::new(Metrics::default()))
    }

    fn frame(s: &'static str) -> Utf8Bytes {
        Utf8Bytes::from_static(s)
    }

    /// Polls `next_batch` once with a counting waker, as the connection task's select does.
    fn poll_batch(c: &ClientHandle, out: &mut VecDeque<Utf8Bytes>, w: &Arc<Count>) -> bool {
        let waker = Waker::from(w.clone());
        let fut = pin!(c.next_batch(out));
        fut.poll(&mut Context::from_waker(&waker)).is_ready()
    }

    #[test]
    fn a_frame_queued_while_the_task_sleeps_wakes_it_once() {
        let c = client(1 << 20);
        let w = Arc::new(Count::default());
        let mut out = VecDeque::new();
        assert!(!poll_batch(&c, &mut out, &w), "nothing queued yet");
        assert!(c.send(frame("a")));
        assert!(c.send(frame("b")));
        assert_eq!(count(&w), 1, "only the push into an empty queue wakes");
        assert!(poll_batch(&c, &mut out, &w));
        assert_eq!(out, [frame("a"), frame("b")]);
    }

    #[test]
    fn a_frame_queued_while_the_task_is_handling_does_not_wake_it_but_is_seen() {
        let c = client(1 << 20);
        let w = Arc::new(Count::default());
        let mut out = VecDeque::new();
        assert!(!poll_batch(&c, &mut out, &w));
        c.begin_handling();
        assert!(c.send(frame("reply")));
        c.end_handling();
        assert_eq!(count(&w), 0, "the task looks at the queue after handling: no wake needed");
        assert!(poll_batch(&c, &mut out, &w), "and then finds the reply");
        assert_eq!(out, [frame("reply")]);
    }

    #[test]
    fn a_close_racing_a_send_wins_and_later_sends_are_refused() {
        let c = Arc::new(client(1 << 20));
        let w = Arc::new(Count::default());
        let waker = Waker::from(w.clone());
        let mut closed = pin!(c.closed());
        assert!(closed.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
        let (a, b) = (c.clone(), c.clone());
        let sender = std::thread::spawn(move || (0..1000).filter(|_| a.send(frame("x"))).count());
        let closer = std::thread::spawn(move || b.close(close::KICKED));
        closer.join().unwrap();
        let sent = sender.join().unwrap();
        assert!(count(&w) >= 1, "the close woke the task");
        assert_eq!(closed.as_mut().poll(&mut Context::from_waker(&waker)), Poll::Ready(close::KICKED));
        assert!(!c.send(frame("late")), "nothing is queued after a close");
        c.close(close::GOING_AWAY);
        let again = pin!(c.closed()).poll(&mut Context::from_waker(&waker));
        assert_eq!(again, Poll::Ready(close::KICKED), "the first close wins");
        let mut out = VecDeque::new();
        assert_eq!(c.take_queued(&mut out), sent, "every accepted frame is still there for the goodbye");
    }

    #[test]
    fn past_the_byte_bound_the_client_is_closed_instead_of_queueing() {
        let c = client(4);
        assert!(c.send(frame("abc")));
        assert!(!c.send(frame("de")), "3 + 2 bytes exceed the bound of 4");
        let w = Arc::new(Count::default());
        let waker = Waker::from(w);
        assert_eq!(pin!(c.closed()).poll(&mut Context::from_waker(&waker)), Poll::Ready(close::TRY_AGAIN_LATER));
    }
}
