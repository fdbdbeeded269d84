//! Cluster mode: real `switchyard` processes sharing one real `redis-server` (started here on a
//! free port, no persistence), real WebSocket clients. Every wait is bounded.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use switchyard::auth::Authenticator;
use switchyard::config::{Config, DEV_API_KEY};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::{Client, TIMEOUT, build_once, repo, wait_until};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `redis-server` of our own, killed when dropped.
struct Redis {
    child: Option<Child>,
    port: u16,
}

impl Redis {
    async fn start() -> Self {
        Self::start_on(free_port()).await
    }

    async fn start_on(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server not found: scripts/setup.sh installs it (apt package redis-server)");
        let r = Self { child: Some(child), port };
        let url = r.url();
        wait_until("redis-server answers PING", TIMEOUT, async || {
            let Ok(c) = redis::Client::open(url.as_str()) else { return false };
            match c.get_multiplexed_async_connection().await {
                Ok(mut conn) => redis::cmd("PING").query_async::<String>(&mut conn).await.is_ok(),
                Err(_) => false,
            }
        })
        .await;
        r
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    async fn cmd<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let c = redis::Client::open(self.url()).unwrap();
        let mut conn = c.get_multiplexed_async_connection().await.unwrap();
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query_async(&mut conn).await.unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One `switchyard serve` process in cluster mode, killed when dropped.
struct Node {
    child: Child,
    addr: SocketAddr,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Node {
    async fn start(redis: &Redis) -> Self {
        Self::start_with(redis, &[]).await
    }

    async fn start_with(redis: &Redis, env: &[(&str, &str)]) -> Self {
        let node = Self::spawn(&redis.url(), env).await;
        node.wait_cluster("ok").await;
        node
    }

    /// Starts a node and waits until it listens, whatever the state of Redis.
    async fn spawn(redis_url: &str, env: &[(&str, &str)]) -> Self {
        build_once("handlers/build.sh");
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["serve", "--listen", "127.0.0.1:0", "--manifest"])
            .arg(repo().join("handlers/switchyard.toml"))
            .current_dir(dir.path())
            .env("SWITCHYARD_CLUSTER__REDIS_URL", redis_url)
            .env("SWITCHYARD_CLUSTER__HEARTBEAT_MS", "200")
            .env("SWITCHYARD_CLUSTER__NODE_TTL_MS", "1500")
            .env("SWITCHYARD_RUNTIME__WATCH", "false")
            .env("SWITCHYARD_WS__RATE_PER_SEC", "0")
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info,cranelift=warn,wasmtime=warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // The listening line names the port; the rest of the log is drained so the pipe never fills.
        let (tx, rx) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line.contains("listening")
                    && let Some(addr) = line.split("addr=").nth(1).and_then(|a| a.split_whitespace().next())
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr.parse::<SocketAddr>().unwrap());
                }
            }
        });
        let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(TIMEOUT).expect("node listens")).await.unwrap();
        Self { child, addr, http: reqwest::Client::new(), _dir: dir }
    }

    async fn wait_cluster(&self, state: &str) {
        wait_until(&format!("{} cluster {state}", self.addr), TIMEOUT, async || {
            self.get("/healthz").await.1["cluster"] == state
        })
        .await;
    }

    /// Sends the process a signal by name (`STOP`, `CONT`).
    fn signal(&self, name: &str) {
        let ok = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status();
        assert!(ok.is_ok_and(|s| s.success()), "kill -{name}");
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    async fn connect(&self, sub: &str) -> Client {
        let token = Authenticator::new(&Config::default().auth).unwrap().mint(sub, 3600, &[], false).unwrap();
        let url = format!("ws://{}/ws?token={token}", self.addr);
        Client::connect(url.into_client_request().unwrap()).await.expect("connects")
    }

    async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("http://{}{path}", self.addr)).header("x-api-key", DEV_API_KEY);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.api(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.api(reqwest::Method::POST, path, Some(body)).await
    }

    async fn metric(&self, name: &str) -> u64 {
        let m = reqwest::get(format!("http://{}/metrics", self.addr)).await.unwrap().text().await.unwrap();
        let prefix = format!("switchyard_{name} ");
        m.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok()).unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn cluster(n: usize) -> (Redis, Vec<Node>) {
    let redis = Redis::start().await;
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(Node::start(&redis).await);
    }
    (redis, nodes)
}

/// Receives the next frame and checks its event and data.
async fn expect(c: &mut Client, event: &str, data: &Value) {
    let f = c.recv().await;
    assert_eq!(f["event"], event, "{f}");
    assert_eq!(&f["data"], data, "{f}");
}

#[tokio::test]
async fn a_user_send_on_one_node_reaches_every_connection_of_the_user_on_the_others_once() {
    let (_redis, nodes) = cluster(3).await;
    let (mut on_a, mut on_b, mut other) =
        (nodes[0].connect("alice").await, nodes[1].connect("alice").await, nodes[1].connect("bob").await);
    let (status, body) = nodes[2].post("/api/send/user", json!({"user": "alice", "event": "note", "data": 1})).await;
    assert_eq!((status, body["delivered"].clone()), (200, json!(0)), "no alice on C itself");
    expect(&mut on_a, "note", &json!(1)).await;
    expect(&mut on_b, "note", &json!(1)).await;
    on_a.assert_nothing_queued("exactly once on A").await;
    on_b.assert_nothing_queued("exactly once on B").await;
    other.assert_nothing_queued("not to bob").await;
}

#[tokio::test]
async fn a_tag_send_from_a_handler_reaches_members_on_every_node_exactly_once() {
    let (_redis, nodes) = cluster(3).await;
    let mut members = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let mut c = n.connect(&format!("member{i}")).await;
        let r = c.request("chat/join", json!({"room": "lobby"})).await;
        assert_eq!(r["code"], 0, "{r}");
        members.push(c);
    }
    let r = members[0].request("chat/send", json!({"room": "lobby", "text": "hi"})).await;
    // The handler sees its own node's deliveries (the sender's connection) first, then its reply.
    assert_eq!(r["event"], "chat/message", "{r}");
    let reply = members[0].recv().await;
    assert_eq!(reply["event"], "chat/send", "{reply}");
    for m in &mut members[1..] {
        let f = m.recv().await;
        assert_eq!((f["event"].as_str(), f["data"]["text"].as_str()), (Some("chat/message"), Some("hi")), "{f}");
        m.assert_nothing_queued("exactly once").await;
    }
    members[0].assert_nothing_queued("the sender's own node does not deliver its echo").await;
}

#[tokio::test]
async fn http_sends_and_presence_on_any_node_see_the_whole_cluster() {
    let (_redis, nodes) = cluster(3).await;
    let mut clients = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let mut c = n.connect(&format!("u{i}")).await;
        assert_eq!(c.request("join", json!({"id": "room"})).await["code"], 0);
        clients.push(c);
    }
    // Connects and joins are answered once Redis holds their presence: no waiting here.
    for n in &nodes {
        assert_eq!(n.get("/api/online").await.1, json!({"clients": 3, "users": 3, "tags": 1}));
        let (_, page) = n.get("/api/clients?page=1&per_page=2").await;
        assert_eq!((page["total"].clone(), page["clients"].as_array().unwrap().len()), (json!(3), 2), "{page}");
        let (_, rest) = n.get("/api/clients?page=2&per_page=2").await;
        assert_eq!(rest["clients"].as_array().unwrap().len(), 1, "{rest}");
        for c in &clients {
            let (status, info) = n.get(&format!("/api/clients/{}", c.id)).await;
            assert_eq!((status, info["tags"].clone()), (200, json!(["room"])), "{info}");
        }
    }
    // Every kind of send from every node reaches each matching connection once.
    for (i, n) in nodes.iter().enumerate() {
        let target = &clients[(i + 1) % 3];
        n.post("/api/send/client", json!({"client": target.id, "event": "c", "data": i})).await;
        n.post("/api/send/tag", json!({"tag": "room", "event": "t", "data": i})).await;
        n.post("/api/send/all", json!({"event": "a", "data": i})).await;
        let target_index = (i + 1) % 3;
        for (j, c) in clients.iter_mut().enumerate() {
            if j == target_index {
                expect(c, "c", &json!(i)).await;
            }
            expect(c, "t", &json!(i)).await;
            expect(c, "a", &json!(i)).await;
            c.assert_nothing_queued("each send once").await;
        }
    }
}

#[tokio::test]
async fn a_client_and_a_user_are_kicked_from_any_node() {
    let (_redis, nodes) = cluster(2).await;
    let mut victim = nodes[1].connect("carol").await;
    let (status, _) = nodes[0].api(reqwest::Method::DELETE, &format!("/api/clients/{}", victim.id), None).await;
    assert_eq!(status, 200);
    assert_eq!(close_code(&mut victim).await, Some(4001));

    let mut a = nodes[0].connect("dave").await;
    let mut b = nodes[1].connect("dave").await;
    let mut bystander = nodes[1].connect("erin").await;
    let (status, _) = nodes[0].api(reqwest::Method::DELETE, "/api/users/dave", None).await;
    assert_eq!(status, 200);
    assert_eq!(close_code(&mut a).await, Some(4001));
    assert_eq!(close_code(&mut b).await, Some(4001));
    bystander.assert_nothing_queued("others stay").await;
}

/// Reads until the close frame (other frames, e.g. a kick notice, are skipped).
async fn close_code(c: &mut Client) -> Option<u16> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, c.ws.next()).await.ok()?? {
            Ok(Message::Close(f)) => return f.map(|f| f.code.into()),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn a_tag_send_right_after_a_join_on_another_node_is_not_missed() {
    let (_redis, nodes) = cluster(2).await;
    let mut c = nodes[1].connect("fred").await;
    for i in 0..20 {
        let tag = format!("fresh{i}");
        assert_eq!(c.request("join", json!({"id": tag})).await["code"], 0);
        nodes[0].post("/api/send/tag", json!({"tag": tag, "event": "first", "data": i})).await;
        expect(&mut c, "first", &json!(i)).await;
        // Quit, then join again at once: the channel must stay subscribed.
        c.request("quit", json!({"id": tag})).await;
        c.request("join", json!({"id": tag})).await;
        nodes[0].post("/api/send/tag", json!({"tag": tag, "event": "again", "data": i})).await;
        expect(&mut c, "again", &json!(i)).await;
    }
}

#[tokio::test]
async fn a_node_killed_with_sigkill_vanishes_from_presence_within_the_bound() {
    let (_redis, mut nodes) = cluster(2).await;
    let _a = nodes[0].connect("stays").await;
    let _b = nodes[1].connect("dies").await;
    wait_until("both counted", TIMEOUT, async || nodes[0].get("/api/online").await.1["clients"] == 2).await;
    nodes[1].kill();
    // TTL 1.5 s + heartbeat 0.2 s + the sweep here; the bound documented for the defaults is 15 s.
    wait_until("the dead node's client is swept", Duration::from_secs(15), async || {
        nodes[0].get("/api/online").await.1 == json!({"clients": 1, "users": 1, "tags": 0})
    })
    .await;
    assert_eq!(nodes[0].metric("cluster_nodes_swept_total").await, 1);
}

#[tokio::test]
async fn a_node_stalled_past_the_ttl_is_swept_then_writes_its_presence_back() {
    let (_redis, nodes) = cluster(2).await;
    let _a = nodes[0].connect("stays").await;
    let mut b = nodes[1].connect("stalls").await;
    assert_eq!(b.request("join", json!({"id": "room"})).await["code"], 0);
    let both = json!({"clients": 2, "users": 2, "tags": 1});
    assert_eq!(nodes[0].get("/api/online").await.1, both);
    // Alive but silent past the TTL (a frozen VM, a stopped process): the survivor sweeps it.
    nodes[1].signal("STOP");
    wait_until("the survivor sweeps the silent node", TIMEOUT, async || {
        nodes[0].metric("cluster_nodes_swept_total").await == 1
    })
    .await;
    assert_eq!(nodes[0].get("/api/online").await.1, json!({"clients": 1, "users": 1, "tags": 0}));
    nodes[1].signal("CONT");
    wait_until("the node finds itself swept and writes its presence back", TIMEOUT, async || {
        nodes[0].get("/api/online").await.1 == both
    })
    .await;
    assert_eq!(nodes[1].metric("cluster_rejoins_total").await, 1);
    let (status, info) = nodes[0].get(&format!("/api/clients/{}", b.id)).await;
    assert_eq!((status, info["tags"].clone()), (200, json!(["room"])), "{info}");
    nodes[0].post("/api/send/tag", json!({"tag": "room", "event": "back", "data": 1})).await;
    expect(&mut b, "back", &json!(1)).await;
}

#[tokio::test]
async fn with_redis_down_local_traffic_goes_on_and_cross_node_sends_resume_when_it_returns() {
    let (mut redis, nodes) = cluster(2).await;
    let mut a = nodes[0].connect("anna").await;
    let mut a2 = nodes[0].connect("abe").await;
    let mut b = nodes[1].connect("ben").await;
    for c in [&mut a, &mut a2, &mut b] {
        assert_eq!(c.request("join", json!({"id": "room"})).await["code"], 0);
    }
    let port = redis.port;
    redis.kill();
    nodes[0].wait_cluster("degraded").await;
    // Local echo, local tag sends and local presence keep working, Redis or not.
    for i in 0..20 {
        let r = a.request("echo", json!(i)).await;
        assert_eq!((r["event"].as_str(), &r["data"]), (Some("echo"), &json!(i)), "{r}");
    }
    let (status, body) = nodes[0].post("/api/send/tag", json!({"tag": "room", "event": "local", "data": 1})).await;
    assert_eq!((status, body["delivered"].clone()), (200, json!(2)));
    expect(&mut a, "local", &json!(1)).await;
    expect(&mut a2, "local", &json!(1)).await;
    assert_eq!(nodes[0].get("/api/online").await.1["clients"], 2, "local presence answers alone");
    // The cross-node copy was queued, then failed or dropped (counted) once the link saw it.
    wait_until("the cross-node publish is counted as lost", TIMEOUT, async || {
        nodes[0].metric("cluster_publish_failed_total").await + nodes[0].metric("cluster_publish_dropped_total").await
            >= 1
    })
    .await;

    // Redis back on the same port: subscriptions and presence come back by themselves.
    let _redis = Redis::start_on(port).await;
    for n in &nodes {
        n.wait_cluster("ok").await;
    }
    wait_until("presence resynced", TIMEOUT, async || nodes[1].get("/api/online").await.1["clients"] == 3).await;
    nodes[1].post("/api/send/tag", json!({"tag": "room", "event": "back", "data": 2})).await;
    expect(&mut a, "back", &json!(2)).await;
    expect(&mut a2, "back", &json!(2)).await;
    expect(&mut b, "back", &json!(2)).await;
    b.assert_nothing_queued("the local send made during the outage never reached B").await;
}

#[tokio::test]
async fn a_subscriber_connection_cut_by_redis_is_recovered() {
    let (redis, nodes) = cluster(2).await;
    let mut b = nodes[1].connect("gus").await;
    let connects = nodes[1].metric("cluster_connects_total").await;
    // What Redis does to a subscriber past its output-buffer limit.
    let _: redis::Value = redis.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]).await;
    wait_until("the subscriber reconnected", TIMEOUT, async || {
        nodes[1].metric("cluster_connects_total").await > connects
            && nodes[1].get("/healthz").await.1["cluster"] == "ok"
    })
    .await;
    nodes[0].post("/api/send/user", json!({"user": "gus", "event": "hello", "data": 3})).await;
    expect(&mut b, "hello", &json!(3)).await;
}

#[tokio::test]
async fn a_restarted_node_gets_a_new_id_and_its_old_entries_are_swept() {
    let (redis, mut nodes) = cluster(2).await;
    let old = nodes[1].connect("hal").await;
    let old_node = old.id.rsplit_once('-').unwrap().0.to_string();
    nodes[1].kill();
    let restarted = Node::start(&redis).await;
    let new = restarted.connect("hal").await;
    let new_node = new.id.rsplit_once('-').unwrap().0.to_string();
    assert_ne!(old_node, new_node, "a fresh id per process start");
    wait_until("the old entry is swept", Duration::from_secs(15), async || {
        nodes[0].get(&format!("/api/clients/{}", old.id)).await.0 == 404
    })
    .await;
    let (status, info) = nodes[0].get(&format!("/api/clients/{}", new.id)).await;
    assert_eq!((status, info["user"].as_str()), (200, Some("hal")));
    assert_eq!(nodes[0].get("/api/online").await.1["clients"], 1);
}

#[tokio::test]
async fn a_node_started_without_redis_serves_alone_then_joins_the_cluster_when_redis_appears() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let a = Node::spawn(&url, &[]).await;
    assert_eq!(a.get("/healthz").await.1["cluster"], "degraded");
    let mut alone = a.connect("ivy").await;
    let r = alone.request("echo", json!("alone")).await;
    assert_eq!(r["data"], "alone", "{r}");

    let redis = Redis::start_on(port).await;
    a.wait_cluster("ok").await;
    let b = Node::start(&redis).await;
    wait_until("ivy's presence written once Redis appeared", TIMEOUT, async || {
        b.get("/api/online").await.1["clients"] == 1
    })
    .await;
    b.post("/api/send/user", json!({"user": "ivy", "event": "found", "data": 1})).await;
    expect(&mut alone, "found", &json!(1)).await;
}
