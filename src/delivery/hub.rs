//! This node's presence indices: its clients by id, by user and by tag (centrifuge's `hub.go`).
//!
//! Owns the three maps and the rules for tags (name length, tags per client). Every method
//! is non-blocking: a send is a loop of queue pushes. It must never await, never reach another
//! node, and never hold one index's lock while taking another's in a different order (a
//! client's own tags, then the tag index). Guests (no user id) are in the client and tag
//! indices but never in the user index: they are not one user.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use dashmap::DashMap;

use super::outbox::{ClientHandle, ClientInfo};

/// Tags one client may be in at once.
pub const MAX_TAGS_PER_CLIENT: usize = 256;
/// Longest tag name, bytes.
pub const MAX_TAG_LEN: usize = 256;

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
pub struct Hub {
    clients: DashMap<u64, Arc<ClientHandle>>,
    users: DashMap<Arc<str>, Vec<Arc<ClientHandle>>>,
    tags: DashMap<Arc<str>, HashMap<u64, Arc<ClientHandle>>>,
}

impl Hub {
    pub fn add(&self, client: &Arc<ClientHandle>) {
        self.clients.insert(client.id, client.clone());
        if !client.is_guest() {
            self.users.entry(client.identity.user.clone()).or_default().push(client.clone());
        }
    }

    /// Removes a client from every index; returns the tags it was in, or `None` if it was
    /// not there.
    pub fn remove(&self, client: &ClientHandle) -> Option<Vec<Arc<str>>> {
        self.clients.remove(&client.id)?;
        if !client.is_guest() {
            self.users.remove_if_mut(&client.identity.user, |_, v| {
                v.retain(|c| c.id != client.id);
                v.is_empty()
            });
        }
        let tags = client.tags.lock().map(|mut t| std::mem::take(&mut *t)).unwrap_or_default();
        for tag in &tags {
            self.untag(tag, client.id);
        }
        Some(tags)
    }

    /// Removes one membership from the tag index.
    fn untag(&self, tag: &str, id: u64) {
        self.tags.remove_if_mut(tag, |_, m| {
            m.remove(&id);
            m.is_empty()
        });
    }

    /// Adds the client to a tag (idempotent). `Ok(true)` when it was not in it yet.
    pub fn join(&self, client: &Arc<ClientHandle>, tag: &str) -> Result<bool, TagError> {
        if tag.is_empty() || tag.len() > MAX_TAG_LEN {
            return Err(TagError::BadName);
        }
        let mut tags = client.tags.lock().unwrap_or_else(|e| e.into_inner());
        if tags.iter().any(|t| &**t == tag) {
            return Ok(false);
        }
        if tags.len() >= MAX_TAGS_PER_CLIENT {
            return Err(TagError::TooMany);
        }
        let tag: Arc<str> = Arc::from(tag);
        tags.push(tag.clone());
        self.tags.entry(tag).or_default().insert(client.id, client.clone());
        Ok(true)
    }

    /// Removes the client from a tag (idempotent); true if it was in it.
    pub fn quit(&self, client: &ClientHandle, tag: &str) -> bool {
        let mut tags = client.tags.lock().unwrap_or_else(|e| e.into_inner());
        let Some(i) = tags.iter().position(|t| &**t == tag) else { return false };
        tags.swap_remove(i);
        self.untag(tag, client.id);
        true
    }

    pub fn get(&self, id: u64) -> Option<Arc<ClientHandle>> {
        self.clients.get(&id).map(|c| c.clone())
    }

    pub fn send_to_client(&self, id: u64, frame: &Utf8Bytes) -> usize {
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

    /// Asks every connection of the user to close with `code`; returns how many.
    pub fn close_user(&self, user: &str, code: u16) -> usize {
        let clients: Vec<_> = self.users.get(user).map(|cs| cs.clone()).unwrap_or_default();
        clients.iter().for_each(|c| c.close(code));
        clients.len()
    }

    /// Distinct user ids of the tag's local members (guests have none).
    pub fn tag_members(&self, tag: &str) -> Vec<Arc<str>> {
        self.tags
            .get(tag)
            .map(|m| m.values().filter(|c| !c.is_guest()).map(|c| c.identity.user.clone()).collect())
            .unwrap_or_default()
    }

    /// Every local client (for a cluster resync).
    pub fn all(&self) -> Vec<Arc<ClientHandle>> {
        self.clients.iter().map(|c| c.clone()).collect()
    }

    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    pub fn users(&self) -> usize {
        self.users.len()
    }

    pub fn tags(&self) -> usize {
        self.tags.len()
    }

    /// Every local client, ordered by id (oldest first).
    pub fn infos(&self) -> Vec<ClientInfo> {
        let mut all: Vec<Arc<ClientHandle>> = self.clients.iter().map(|c| c.clone()).collect();
        all.sort_unstable_by_key(|c| c.id);
        all.iter().map(|c| c.info()).collect()
    }

    /// A page of local clients ordered by id (oldest first).
    pub fn page(&self, page: usize, per_page: usize) -> Vec<ClientInfo> {
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
