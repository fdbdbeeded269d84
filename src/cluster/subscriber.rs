//! The node's subscriber connection: which channels it listens to, and what arrives on them.
//!
//! Owns the pub/sub connection and a reference count per channel (one per local member of a
//! tag, one per local connection of a user), so that a quit racing a join never leaves a live
//! channel unsubscribed: the channel is subscribed while its count is above zero, whatever
//! order the changes arrive in. A join waits until its channel's subscription is confirmed.
//! When the connection drops (Redis restarted, or it cut us off at its output-buffer limit),
//! it reconnects and subscribes again to every counted channel. It must never block a sender:
//! changes arrive on a channel and are applied in order by this one task.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};

use super::Shared;
use super::wire::{self, Op};

/// A change to the channels this node listens to.
pub enum Sub {
    /// One more reference; the sender hears once the channel is subscribed (or at once while
    /// Redis is unreachable).
    Add(String, Option<oneshot::Sender<()>>),
    /// One reference less.
    Remove(String),
}

/// Subscribes in chunks, so that a resync of many channels is a few commands.
const CHUNK: usize = 512;

pub async fn run(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Sub>) {
    let mut refs: HashMap<String, usize> = HashMap::new();
    let fixed = [wire::node_channel(&shared.prefix, &shared.node), wire::all_channel(&shared.prefix)];
    let mut backoff = Duration::from_millis(100);
    loop {
        // Connect, then subscribe to everything counted.
        let connected = async {
            let pubsub = tokio::time::timeout(shared.timeout, shared.client.get_async_pubsub()).await.ok()?.ok()?;
            let (mut sink, stream) = pubsub.split();
            let mut all: Vec<&str> = fixed.iter().map(String::as_str).collect();
            all.extend(refs.keys().map(String::as_str));
            for chunk in all.chunks(CHUNK) {
                tokio::time::timeout(shared.timeout, sink.subscribe(chunk)).await.ok()?.ok()?;
            }
            Some((sink, stream))
        };
        let connected = tokio::select! {
            c = connected => c,
            () = shared.stop.cancelled() => return,
        };
        let Some((mut sink, mut stream)) = connected else {
            // Unreachable: apply changes to the counts (they are subscribed on connect) and
            // let nobody wait, then try again.
            let retry = tokio::time::sleep(backoff);
            tokio::pin!(retry);
            loop {
                tokio::select! {
                    () = &mut retry => break,
                    () = shared.stop.cancelled() => return,
                    s = rx.recv() => match s {
                        Some(s) => { count(&mut refs, s); }
                        None => return,
                    },
                }
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
            continue;
        };
        backoff = Duration::from_millis(100);
        shared.sub_up.store(true, Relaxed);
        shared.metrics.cluster_connects_total.inc();
        tracing::info!(channels = refs.len() + fixed.len(), "cluster: subscriber connected");

        let lost = loop {
            tokio::select! {
                () = shared.stop.cancelled() => return,
                s = rx.recv() => {
                    let Some(s) = s else { return };
                    let (channel, waiter, subscribe) = match count(&mut refs, s) {
                        Change::Subscribe(ch, w) => (ch, w, true),
                        Change::Unsubscribe(ch) => (ch, None, false),
                        Change::None(w) => { if let Some(w) = w { let _ = w.send(()); } continue; }
                    };
                    let r = if subscribe {
                        tokio::time::timeout(shared.timeout, sink.subscribe(&channel)).await
                    } else {
                        tokio::time::timeout(shared.timeout, sink.unsubscribe(&channel)).await
                    };
                    if let Some(w) = waiter { let _ = w.send(()); }
                    match r {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => break format!("subscribe failed: {e}"),
                        Err(_) => break "subscribe timed out".to_string(),
                    }
                }
                msg = stream.next() => match msg {
                    Some(m) => deliver(&shared, m.get_payload_bytes()),
                    None => break "connection closed".to_string(),
                },
            }
        };
        shared.sub_up.store(false, Relaxed);
        tracing::warn!("cluster: subscriber connection lost ({lost}); serving locally, reconnecting");
    }
}

/// What a change means for the connection.
enum Change {
    Subscribe(String, Option<oneshot::Sender<()>>),
    Unsubscribe(String),
    None(Option<oneshot::Sender<()>>),
}

fn count(refs: &mut HashMap<String, usize>, s: Sub) -> Change {
    match s {
        Sub::Add(ch, w) => {
            let n = refs.entry(ch.clone()).or_insert(0);
            *n += 1;
            if *n == 1 { Change::Subscribe(ch, w) } else { Change::None(w) }
        }
        Sub::Remove(ch) => match refs.get_mut(&ch) {
            Some(n) if *n > 1 => {
                *n -= 1;
                Change::None(None)
            }
            Some(_) => {
                refs.remove(&ch);
                Change::Unsubscribe(ch)
            }
            None => Change::None(None),
        },
    }
}

/// A message from another node: deliver or kick locally. Our own echoes are ignored.
fn deliver(shared: &Shared, payload: &[u8]) {
    let Some(m) = wire::decode(payload) else {
        tracing::warn!("cluster: malformed message ignored");
        return;
    };
    if m.origin == &*shared.node {
        return;
    }
    let Some(delivery) = shared.delivery.upgrade() else { return };
    match m.op {
        Op::Send => {
            let Ok(text) = std::str::from_utf8(m.payload) else { return };
            shared.metrics.cluster_received_total.inc();
            delivery.deliver_local(m.to, &Utf8Bytes::from(text.to_string()));
        }
        Op::Kick => {
            let code = m.payload.get(..2).map_or(crate::protocol::close::KICKED, |b| u16::from_le_bytes([b[0], b[1]]));
            delivery.kick_local(m.to, code);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_is_subscribed_while_counted_whatever_the_order() {
        let mut refs = HashMap::new();
        let add = |r: &mut HashMap<String, usize>| count(r, Sub::Add("t".into(), None));
        let rm = |r: &mut HashMap<String, usize>| count(r, Sub::Remove("t".into()));
        assert!(matches!(add(&mut refs), Change::Subscribe(..)));
        // A join arriving before the quit it raced: no unsubscribe in between.
        assert!(matches!(add(&mut refs), Change::None(_)));
        assert!(matches!(rm(&mut refs), Change::None(_)));
        assert!(matches!(rm(&mut refs), Change::Unsubscribe(_)));
        assert!(matches!(rm(&mut refs), Change::None(_)), "a stray remove is ignored");
        assert!(refs.is_empty());
    }
}
