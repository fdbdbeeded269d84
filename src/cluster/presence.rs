//! Cluster-wide presence in Redis: the keys, the Lua scripts that change them atomically, and
//! the queries the HTTP API and host functions ask.
//!
//! Every change is one script call (one round trip): connect, disconnect, join, quit, and a
//! resync of one client. A node's liveness is a score in `<p>:nodes` (Redis's own clock, so
//! nodes' clocks need not agree); a survivor sweeps a dead node's clients in small batches
//! (`SPOP`), so no script runs long enough to block Redis. It must never be called on the hot
//! path of a send: the link task applies changes from a bounded queue, and queries have a
//! timeout.
//!
//! Keys (`p` is the configured prefix):
//! - `p:nodes` zset node -> last heartbeat (ms, Redis time)
//! - `p:clients` hash client id -> client info (JSON); `p:order` zset client id -> connect ms (paging)
//! - `p:nc:<node>` set of the node's client ids; `p:gone:<node>` those of a node being swept
//! - `p:ct:<client>` set of the client's tags
//! - `p:tm:<tag>` hash client id -> user id (members); `p:tags` hash tag -> members; `p:users` hash user -> connections

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::sync::oneshot;

use crate::delivery::{ClientInfo, Online};

/// Drops one client from every structure (shared by disconnect, sweep and resync).
const DROP_FN: &str = r#"
local function drop(p, node, cid)
  local info = redis.call('HGET', p..':clients', cid)
  if not info then redis.call('SREM', p..':nc:'..node, cid) return 0 end
  local user = cjson.decode(info).user
  for _, tag in ipairs(redis.call('SMEMBERS', p..':ct:'..cid)) do
    redis.call('HDEL', p..':tm:'..tag, cid)
    if redis.call('HINCRBY', p..':tags', tag, -1) <= 0 then redis.call('HDEL', p..':tags', tag) end
  end
  redis.call('DEL', p..':ct:'..cid)
  redis.call('HDEL', p..':clients', cid)
  redis.call('ZREM', p..':order', cid)
  redis.call('SREM', p..':nc:'..node, cid)
  if user ~= '' then
    if redis.call('HINCRBY', p..':users', user, -1) <= 0 then redis.call('HDEL', p..':users', user) end
  end
  return 1
end
local function add(p, node, cid, user, info, score)
  if redis.call('HSETNX', p..':clients', cid, info) == 1 then
    redis.call('ZADD', p..':order', score, cid)
    redis.call('SADD', p..':nc:'..node, cid)
    if user ~= '' then redis.call('HINCRBY', p..':users', user, 1) end
  end
end
local function join(p, cid, user, tag)
  if redis.call('HEXISTS', p..':clients', cid) == 0 then return end
  if redis.call('SADD', p..':ct:'..cid, tag) == 1 then
    redis.call('HSET', p..':tm:'..tag, cid, user)
    redis.call('HINCRBY', p..':tags', tag, 1)
  end
end
"#;

/// ARGV: p, node, cid, user, info, score.
const CONNECT: &str = "add(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]) return 1";
/// ARGV: p, node, cid.
const DISCONNECT: &str = "return drop(ARGV[1], ARGV[2], ARGV[3])";
/// ARGV: p, cid, user, tag.
const JOIN: &str = "join(ARGV[1], ARGV[2], ARGV[3], ARGV[4]) return 1";
/// ARGV: p, cid, tag.
const QUIT: &str = r#"
local p, cid, tag = ARGV[1], ARGV[2], ARGV[3]
if redis.call('SREM', p..':ct:'..cid, tag) == 1 then
  redis.call('HDEL', p..':tm:'..tag, cid)
  if redis.call('HINCRBY', p..':tags', tag, -1) <= 0 then redis.call('HDEL', p..':tags', tag) end
end
return 1"#;
/// Replaces one local client's entries with what the node knows now (idempotent).
/// ARGV: p, node, cid, user, info, score, tags...
const RESYNC: &str = r#"
local p, node, cid, user = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
drop(p, node, cid)
add(p, node, cid, user, ARGV[5], ARGV[6])
for i = 7, #ARGV do join(p, cid, user, ARGV[i]) end
return 1"#;
/// Writes this node's heartbeat; returns whether the node was missing from `p:nodes` (its
/// first heartbeat, or it was presumed dead and swept while alive) and the nodes silent for
/// longer than the TTL.
/// ARGV: p, node, ttl_ms.
const HEARTBEAT: &str = r#"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local missing = redis.call('ZADD', ARGV[1]..':nodes', now, ARGV[2])
return {missing, redis.call('ZRANGEBYSCORE', ARGV[1]..':nodes', '-inf', now - tonumber(ARGV[3]))}"#;
/// Drops up to `batch` of a dead node's clients; returns how many are left (0: node gone, -1:
/// nothing to sweep, the node is alive).
///
/// The first call claims the node while it is still silent past the TTL: it leaves `p:nodes`
/// and its client set moves to `p:gone:<node>`, which the sweep drains. A node that was only
/// stalled sees itself missing at its next heartbeat and resyncs into a fresh `p:nc:<node>`;
/// the sweep skips every client the resync wrote back, so the two may interleave, and drains
/// `p:gone:<node>` to the end even when the node is back.
/// ARGV: p, node, batch, ttl_ms (0: claim at once, for a node leaving).
const SWEEP: &str = r#"
local p, node = ARGV[1], ARGV[2]
local live, gone = p..':nc:'..node, p..':gone:'..node
local seen = redis.call('ZSCORE', p..':nodes', node)
local t = redis.call('TIME')
local silent = seen and tonumber(seen) <= t[1] * 1000 + math.floor(t[2] / 1000) - tonumber(ARGV[4])
if seen and not silent and redis.call('EXISTS', gone) == 0 then return -1 end
if silent then
  redis.call('ZREM', p..':nodes', node)
  if redis.call('EXISTS', live) == 1 then
    redis.call('SUNIONSTORE', gone, gone, live)
    redis.call('DEL', live)
  end
end
for _, cid in ipairs(redis.call('SPOP', gone, tonumber(ARGV[3]))) do
  if redis.call('SISMEMBER', live, cid) == 0 then drop(p, node, cid) end
end
return redis.call('SCARD', gone)"#;

/// A Lua script and its SHA1, for `EVALSHA`.
pub struct Lua {
    code: String,
    sha: String,
}

/// The scripts, each with the shared functions in front.
pub struct Scripts {
    pub connect: Lua,
    pub disconnect: Lua,
    pub join: Lua,
    pub quit: Lua,
    pub resync: Lua,
    pub heartbeat: Lua,
    pub sweep: Lua,
}

impl Default for Scripts {
    fn default() -> Self {
        let s = |body: &str| {
            let code = format!("{DROP_FN}\n{body}");
            Lua { sha: redis::Script::new(&code).get_hash().to_string(), code }
        };
        Self {
            connect: s(CONNECT),
            disconnect: s(DISCONNECT),
            join: s(JOIN),
            quit: s(QUIT),
            resync: s(RESYNC),
            heartbeat: s(HEARTBEAT),
            sweep: s(SWEEP),
        }
    }
}

impl Scripts {
    /// Loads every script into Redis's cache (after each connect: a restarted Redis has none).
    pub async fn load(&self, conn: &mut MultiplexedConnection) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        for s in [&self.connect, &self.disconnect, &self.join, &self.quit, &self.resync, &self.heartbeat, &self.sweep] {
            pipe.cmd("SCRIPT").arg("LOAD").arg(&s.code).ignore();
        }
        pipe.query_async(conn).await
    }
}

/// `EVALSHA` of a loaded script with these arguments (no keys: names are built from `p`).
pub fn evalsha(script: &Lua) -> redis::Cmd {
    let mut c = redis::cmd("EVALSHA");
    c.arg(&script.sha).arg(0);
    c
}

/// A change and, when its caller waits for it, who to tell once Redis has applied it
/// (dropped unanswered when it could not be).
pub type Write = (Change, Option<oneshot::Sender<()>>);

/// One presence change of a local client, applied in order by the link task.
#[derive(Debug)]
pub enum Change {
    Connect { id: String, user: String, info: String, score: u64 },
    Disconnect { id: String },
    Join { id: String, user: String, tag: String },
    Quit { id: String, tag: String },
}

impl Change {
    /// The script call for this change.
    pub fn cmd(&self, s: &Scripts, p: &str, node: &str) -> redis::Cmd {
        match self {
            Change::Connect { id, user, info, score } => {
                let mut c = evalsha(&s.connect);
                c.arg(p).arg(node).arg(id).arg(user).arg(info).arg(score);
                c
            }
            Change::Disconnect { id } => {
                let mut c = evalsha(&s.disconnect);
                c.arg(p).arg(node).arg(id);
                c
            }
            Change::Join { id, user, tag } => {
                let mut c = evalsha(&s.join);
                c.arg(p).arg(id).arg(user).arg(tag);
                c
            }
            Change::Quit { id, tag } => {
                let mut c = evalsha(&s.quit);
                c.arg(p).arg(id).arg(tag);
                c
            }
        }
    }
}

/// Queries, each one round trip (two for a page of clients), bounded by `timeout`.
pub struct Queries<'a> {
    pub conn: MultiplexedConnection,
    pub prefix: &'a str,
    pub timeout: Duration,
}

impl Queries<'_> {
    async fn run<T: redis::FromRedisValue>(&mut self, pipe: &redis::Pipeline) -> Option<T> {
        match tokio::time::timeout(self.timeout, pipe.query_async(&mut self.conn)).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                tracing::debug!("cluster presence query failed: {e}");
                None
            }
            Err(_) => None,
        }
    }

    pub async fn online(&mut self) -> Option<Online> {
        let p = self.prefix;
        let mut pipe = redis::pipe();
        pipe.zcard(format!("{p}:order")).hlen(format!("{p}:users")).hlen(format!("{p}:tags"));
        let (clients, users, tags): (usize, usize, usize) = self.run(&pipe).await?;
        Some(Online { clients, users, tags })
    }

    /// Infos (with tags) of these client ids, in order; unknown ids are left out.
    async fn infos(&mut self, ids: &[String]) -> Option<Vec<ClientInfo>> {
        if ids.is_empty() {
            return Some(Vec::new());
        }
        let p = self.prefix;
        let mut pipe = redis::pipe();
        pipe.cmd("HMGET").arg(format!("{p}:clients")).arg(ids);
        for id in ids {
            pipe.smembers(format!("{p}:ct:{id}"));
        }
        let mut rows: Vec<redis::Value> = self.run(&pipe).await?;
        let tags: Vec<Vec<String>> = rows.drain(1..).map(|v| redis::from_redis_value(v).unwrap_or_default()).collect();
        let infos: Vec<Option<String>> = redis::from_redis_value(rows.pop()?).ok()?;
        Some(
            infos
                .into_iter()
                .zip(tags)
                .filter_map(|(info, mut tags)| {
                    let mut c: ClientInfo = serde_json::from_str(&info?).ok()?;
                    tags.sort_unstable();
                    c.tags = tags;
                    Some(c)
                })
                .collect(),
        )
    }

    /// A page of every node's clients (oldest first) and their total.
    pub async fn clients(&mut self, page: usize, per_page: usize) -> Option<(usize, Vec<ClientInfo>)> {
        let p = self.prefix;
        let start = page.saturating_sub(1).saturating_mul(per_page);
        let stop = start.saturating_add(per_page).saturating_sub(1);
        let mut pipe = redis::pipe();
        pipe.zcard(format!("{p}:order")).zrange(format!("{p}:order"), start as isize, stop as isize);
        let (total, ids): (usize, Vec<String>) = self.run(&pipe).await?;
        Some((total, self.infos(&ids).await?))
    }

    /// `Some(None)`: Redis answered, and no node holds this client.
    pub async fn client(&mut self, id: &str) -> Option<Option<ClientInfo>> {
        Some(self.infos(&[id.to_string()]).await?.pop())
    }

    pub async fn tag_members(&mut self, tag: &str) -> Option<Vec<String>> {
        let mut pipe = redis::pipe();
        pipe.hvals(format!("{}:tm:{tag}", self.prefix));
        let (mut users,): (Vec<String>,) = self.run(&pipe).await?;
        users.retain(|u| !u.is_empty());
        users.sort_unstable();
        users.dedup();
        Some(users)
    }
}
