// Browser tests in real Chromium (Debian's /usr/bin/chromium through playwright-core) against the
// real server binary, which this script starts itself:
//
//   target/release/switchyard serve --listen 127.0.0.1:<free port> --manifest handlers/switchyard.toml
//
// from the repository root (SWITCHYARD_BIN overrides the binary, CHROMIUM the browser). It waits
// for GET /healthz, then tests the demo (two pages chatting), request() resolving and rejecting,
// a server killed and restarted under open pages, a kick, and the admin page; it saves
// docs/screenshots/demo.png and admin.png. Every wait is on a condition, with a deadline.
//
//   node client/test/browser/run.mjs            # pages from the server itself (/, /admin, /assets/...)
//   node client/test/browser/run.mjs --shim     # pages from client/scripts/devserver.mjs in front of
//                                               # the server (before the server serves them itself)
//   node client/test/browser/run.mjs --only kick,admin   # tests whose name contains one of these
//
// Prints one line per test and last "N passed, N failed[, N skipped]"; exits 1 on any failure.
import { chromium } from "playwright-core";
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import net from "node:net";
import http from "node:http";
import path from "node:path";
import assert from "node:assert/strict";
import { WebSocket as NodeWebSocket } from "ws";
import { Switchyard } from "../../dist/index.js";
import { startDevServer } from "../../scripts/devserver.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const clientDir = path.resolve(here, "../..");
const repo = path.resolve(clientDir, "..");
const BIN = process.env.SWITCHYARD_BIN || path.join(repo, "target/release/switchyard");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SHIM = process.argv.includes("--shim") || process.env.SWITCHYARD_WEB_SHIM === "1";
const ONLY = (() => {
  const i = process.argv.indexOf("--only");
  return i > 0 ? process.argv[i + 1].split(",") : null;
})();
const API_KEY = "switchyard-dev-api-key";
const OUT = path.join(here, "out");
const SHOTS = path.join(repo, "docs/screenshots");
const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];
const DIST = readFileSync(path.join(clientDir, "dist/index.js"), "utf8");

// ---- helpers ------------------------------------------------------------------------------------

/** Polls `fn` until it returns something truthy; throws `what` (and the last value) at the deadline. */
async function until(fn, what, timeoutMs = 10_000, everyMs = 50) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Observes `fn` for `ms`: it must hold every time it is polled (a window, not a sync sleep). */
async function stays(fn, what, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (!(await fn())) throw new Error(`${what} stopped holding`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** A development token from the CLI (`switchyard token --sub USER`), independent of /dev/token. */
const mint = (user, ttlSecs = 3600) => execFileSync(BIN, ["token", "--sub", user, "--ttl", String(ttlSecs)], { cwd: repo, encoding: "utf8" }).trim();

class ServerProcess {
  constructor(port, env = {}, name = "server") {
    this.port = port;
    this.env = env;
    this.name = name;
    this.base = `http://127.0.0.1:${port}`;
    this.starts = 0;
  }
  async start() {
    mkdirSync(OUT, { recursive: true });
    const log = openSync(path.join(OUT, `${this.name}.log`), this.starts++ ? "a" : "w");
    const args = ["serve", "--listen", `127.0.0.1:${this.port}`, "--manifest", "handlers/switchyard.toml"];
    this.child = spawn(BIN, args, { cwd: repo, env: { ...process.env, RUST_LOG: process.env.RUST_LOG || "info", ...this.env }, stdio: ["ignore", log, log] });
    this.exited = new Promise((r) => this.child.once("exit", (code, sig) => r({ code, sig })));
    let gone = null;
    this.exited.then((x) => (gone = x));
    await until(async () => {
      if (gone) throw new Error(`server exited (${JSON.stringify(gone)}), see ${path.join(OUT, this.name + ".log")}`);
      const r = await fetch(`${this.base}/healthz`);
      return r.ok && (await r.json()).status === "ok";
    }, `GET ${this.base}/healthz`, 60_000);
  }
  async kill(signal = "SIGKILL") {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode) return;
    this.child.kill(signal);
    await this.exited;
  }
  signal(sig) {
    this.child.kill(sig);
  }
}

async function api(method, p, { key = API_KEY, body } = {}) {
  const headers = key ? { "X-Api-Key": key } : {};
  if (body !== undefined) headers["content-type"] = "application/json";
  const r = await fetch(`${server.base}${p}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: r.status, json, text, type: r.headers.get("content-type") || "" };
}

async function clientsOf(user) {
  const r = await api("GET", "/api/clients?page=1&per_page=1000");
  return r.json.clients.filter((c) => c.user === user);
}

async function metric(name) {
  const r = await api("GET", "/metrics", { key: null });
  const m = r.text.match(new RegExp(`^switchyard_${name} (\\d+)`, "m"));
  return m ? Number(m[1]) : NaN;
}

// ---- pages --------------------------------------------------------------------------------------

const contexts = [];
async function newPage() {
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  contexts.push(ctx);
  const page = await ctx.newPage();
  page.errors = [];
  page.on("pageerror", (e) => page.errors.push(String(e)));
  page.on("console", (m) => m.type() === "error" && page.errors.push(m.text()));
  return page;
}

/** The demo at "/", entered as `name` in `room`, once connected and in the room. */
async function demoPage(name, room) {
  const page = await newPage();
  await page.goto(`${web}/?name=${encodeURIComponent(name)}&room=${encodeURIComponent(room)}`);
  await page.click("#enter");
  await page.waitForFunction(() => window.demo?.sy?.state === "connected" && window.demo.joins >= 1, null, { timeout: 15_000 });
  return page;
}

const demoState = (page) => page.evaluate(() => ({ state: demo.sy.state, closeCode: demo.sy.closeCode, joins: demo.joins, received: demo.received, id: demo.sy.clientId }));
const lines = (page) => page.$$eval("#messages li:not(.system)", (lis) => lis.map((li) => `${li.querySelector(".from")?.textContent}: ${li.querySelector(".text")?.textContent}`));
const onlineUsers = (page) => page.$$eval("#online li", (lis) => lis.map((li) => li.textContent.replace(/ \(you\)$/, "")));

async function say(page, text) {
  await page.fill("#text", text);
  await page.click("#send");
}

async function sees(page, line, what) {
  await until(async () => (await lines(page)).includes(line), `${what} to show "${line}"`, 10_000);
}

/** A page on the server's origin (so the Origin check passes) with the client bundle loaded as
 * window.SY, from client/dist/index.js itself: request() tests need no page serving. */
async function libPage() {
  const page = await newPage();
  await page.goto(`${server.base}/healthz`);
  await page.evaluate(async (code) => {
    window.SY = await import(URL.createObjectURL(new Blob([code], { type: "text/javascript" })));
  }, DIST);
  return page;
}

// ---- tests --------------------------------------------------------------------------------------

const tests = [];
const test = (name, fn, { timeoutMs = 60_000, skip = false } = {}) => tests.push({ name, fn, timeoutMs, skip });

test("the server serves the demo, the admin page, their assets and the client bundle", async () => {
  const get = async (p) => {
    const r = await fetch(`${web}${p}`);
    return { status: r.status, type: r.headers.get("content-type") || "", body: await r.text() };
  };
  const root = await get("/");
  assert.equal(root.status, 200, "GET /");
  assert.match(root.type, /text\/html/);
  assert.match(root.body, /<title>Switchyard chat demo<\/title>/);
  const admin = await get("/admin");
  assert.equal(admin.status, 200, "GET /admin");
  assert.match(admin.type, /text\/html/);
  assert.match(admin.body, /<title>Switchyard admin<\/title>/);
  const bundle = await get("/assets/switchyard-client.js");
  assert.equal(bundle.status, 200, "GET /assets/switchyard-client.js");
  assert.match(bundle.type, /javascript/);
  assert.equal(bundle.body, DIST, "/assets/switchyard-client.js is client/dist/index.js");
  for (const [file, dir, type] of [["demo.js", "demo", /javascript/], ["demo.css", "demo", /text\/css/], ["admin.js", "admin", /javascript/], ["admin.css", "admin", /text\/css/]]) {
    const r = await get(`/assets/${file}`);
    assert.equal(r.status, 200, `GET /assets/${file}`);
    assert.match(r.type, type, `content-type of /assets/${file}`);
    assert.equal(r.body, readFileSync(path.join(repo, "web", dir, file), "utf8"), `/assets/${file} is web/${dir}/${file}`);
  }
});

test("GET /dev/token?user=NAME answers a token the WebSocket accepts", async () => {
  const r = await fetch(`${web}/dev/token?user=tokentest`);
  assert.equal(r.status, 200);
  const { token } = await r.json();
  assert.equal(typeof token, "string");
  const sy = new Switchyard(`ws://127.0.0.1:${server.port}/ws`, { token, WebSocket: NodeWebSocket });
  try {
    assert.equal((await sy.connected()).user, "tokentest");
  } finally {
    sy.close();
  }
});

test("Node: the client on ws connects, requests, joins and quits", async () => {
  const sy = new Switchyard(`ws://127.0.0.1:${server.port}/ws`, { token: mint("nodeuser"), WebSocket: NodeWebSocket });
  try {
    const w = await sy.connected();
    assert.equal(w.user, "nodeuser");
    assert.deepEqual(await sy.request("echo", { x: 1 }), { x: 1 });
    assert.deepEqual(await sy.join("node-room"), ["node-room"]);
    assert.deepEqual(await sy.quit("node-room"), []);
    await assert.rejects(sy.request("no/such/event", 1), (e) => e.kind === "unknown_event");
  } finally {
    sy.close();
  }
});

test("request() resolves with the reply's data; an unknown event rejects with kind unknown_event", async () => {
  const page = await libPage();
  const r = await page.evaluate(async ({ url, token }) => {
    const sy = (window.sy = new SY.Switchyard(url, { token }));
    const welcome = await sy.connected();
    const echoed = await sy.request("echo", { x: 1, s: "é" }, { timeoutMs: 5000 });
    const failed = await sy.request("no/such/event", 1).then(() => null, (e) => ({ name: e.name, kind: e.kind, message: e.message, isError: e instanceof Error }));
    const handlerError = await sy.request("chat/join", { room: "not a room!" }).then(() => null, (e) => ({ kind: e.kind, message: e.message }));
    return { welcome, echoed, failed, handlerError };
  }, { url: `ws://127.0.0.1:${server.port}/ws`, token: mint("requester") });
  assert.equal(r.welcome.user, "requester");
  assert.deepEqual(r.echoed, { x: 1, s: "é" });
  assert.deepEqual(r.failed, { name: "SwitchyardError", kind: "unknown_event", message: 'unknown event "no/such/event"', isError: true });
  assert.deepEqual(r.handlerError, { kind: "handler_error", message: "invalid room" });
  await page.evaluate(() => sy.close());
});

test("the server copies the request id into replies, error frames and built-in join/quit replies", async () => {
  const page = await libPage();
  const frames = await page.evaluate(async ({ url, token }) => {
    const sy = new SY.Switchyard(url, { token });
    const frames = [];
    sy.on("*", (d, f) => frames.push(f));
    await sy.connected();
    await sy.request("echo", "a");
    await sy.request("no/such/event").catch(() => {});
    await sy.join("idtest");
    await sy.quit("idtest");
    await sy.request("ping");
    sy.send("echo", "no id");
    await new Promise((r) => sy.on("echo", (d) => d === "no id" && r()));
    sy.close();
    return frames.map((f) => [f.event, f.code, f.id]);
  }, { url: `ws://127.0.0.1:${server.port}/ws`, token: mint("ids") });
  assert.deepEqual(frames, [
    ["connected", 0, undefined],
    ["echo", 0, "1"],
    ["no/such/event", -1, "2"],
    ["join", 0, "3"],
    ["quit", 0, "4"],
    ["ping", 0, "5"],
    ["echo", 0, undefined], // a frame sent without id gets a reply without one
  ]);
});

test("request() rejects with kind timeout when no reply comes in time (server stopped)", async () => {
  const page = await libPage();
  await page.evaluate(async ({ url, token }) => {
    window.sy = new SY.Switchyard(url, { token });
    await sy.connected();
  }, { url: `ws://127.0.0.1:${server.port}/ws`, token: mint("timeouts") });
  server.signal("SIGSTOP");
  await until(() => /^\d+ \(.*\) T/.test(readFileSync(`/proc/${server.child.pid}/stat`, "utf8")), "the server to be stopped", 5000, 5);
  let r;
  try {
    r = await page.evaluate(async () => {
      const t0 = performance.now();
      const kind = await sy.request("echo", 1, { timeoutMs: 800 }).then(() => "resolved", (e) => e.kind);
      return { kind, ms: performance.now() - t0 };
    });
  } finally {
    server.signal("SIGCONT");
  }
  assert.equal(r.kind, "timeout", `after ${r.ms} ms`);
  assert.ok(r.ms >= 790 && r.ms < 5000, `rejected after ${r.ms} ms`);
  // the connection itself survived; the late reply was dropped and the next request works
  assert.equal(await page.evaluate(() => sy.request("echo", 2)), 2);
  await page.evaluate(() => sy.close());
});

test("token_expiring is answered with a refresh from getToken; without one the server closes 4002, for good", async () => {
  const tokens = new ServerProcess(await freePort(), { SWITCHYARD_AUTH__LEEWAY_SECS: "0" }, "server-tokens");
  await tokens.start();
  try {
    const page = await newPage();
    await page.goto(`${tokens.base}/healthz`);
    await page.evaluate(async (code) => {
      window.SY = await import(URL.createObjectURL(new Blob([code], { type: "text/javascript" })));
    }, DIST);
    let minted = 0;
    // the first token lives 2 s (so it is warned at once), the refreshed one an hour
    await page.exposeFunction("mintToken", () => mint("refresher", minted++ ? 3600 : 2));
    const url = `ws://127.0.0.1:${tokens.port}/ws`;
    const exp = await page.evaluate(async (url) => {
      const sy = (window.refresher = new SY.Switchyard(url, { getToken: () => window.mintToken() }));
      const refreshed = new Promise((resolve) => sy.on("refresh", (d, f) => f.code === 0 && resolve(d.exp)));
      await sy.connected();
      return refreshed;
    }, url);
    assert.ok(exp * 1000 > Date.now() + 3_000_000, "the refresh answer carries the new token's exp");
    assert.equal(minted, 2);
    // past the first token's expiry (2 s, no leeway), still the same connection
    const id = await page.evaluate(() => refresher.clientId);
    await until(async () => (await fetch(`${tokens.base}/metrics`).then((r) => r.text())).match(/^switchyard_token_refreshes_total 1$/m), "the server to count the refresh", 5000);
    await stays(async () => {
      const s = await page.evaluate(() => [refresher.state, refresher.clientId]);
      return s[0] === "connected" && s[1] === id;
    }, "the refreshed connection staying up", 3000);

    const closed = await page.evaluate(async ({ url, token }) => {
      const sy = (window.expiring = new SY.Switchyard(url, { token }));
      const warned = new Promise((resolve) => sy.on("token_expiring", (d) => resolve(d)));
      await sy.connected();
      const warning = await warned;
      await new Promise((resolve) => sy.onState((s) => s === "closed" && resolve()));
      return { warning, code: sy.closeCode, state: sy.state };
    }, { url, token: mint("expiring", 2) });
    assert.equal(closed.state, "closed");
    assert.equal(closed.code, 4002);
    assert.equal(typeof closed.warning.exp, "number");
    await stays(async () => (await page.evaluate(() => expiring.state)) === "closed", "no reconnect after 4002", 1500);
    await page.evaluate(() => refresher.close());
  } finally {
    await tokens.kill("SIGTERM");
  }
});

let demoShotDone = false;
test("two pages chat through the demo and see each other online", async () => {
  const alice = await demoPage("alice", "lobby");
  const bob = await demoPage("bob", "lobby");
  await say(alice, "hi bob, this is alice");
  await sees(bob, "alice: hi bob, this is alice", "bob's page");
  await sees(alice, "alice: hi bob, this is alice", "alice's own page");
  await say(bob, "héllo alice, ça va?");
  await sees(alice, "bob: héllo alice, ça va?", "alice's page");
  await say(alice, "messages go through the chat.wasm handler");
  await sees(bob, "alice: messages go through the chat.wasm handler", "bob's page");
  // bob joined after alice: alice learns of him from his message or the periodic chat/online
  await until(async () => (await onlineUsers(alice)).join() === "alice,bob", "alice's online list to be alice,bob", 15_000);
  assert.deepEqual(await onlineUsers(bob), ["alice", "bob"]);
  assert.deepEqual(alice.errors, []);
  assert.deepEqual(bob.errors, []);
  mkdirSync(SHOTS, { recursive: true });
  await alice.screenshot({ path: path.join(SHOTS, "demo.png") });
  demoShotDone = true;
});

test("server killed and restarted: pages reconnect, rejoin and receive again, no duplicated listeners", async () => {
  const a = await demoPage("ann", "restart");
  const b = await demoPage("ben", "restart");
  // a tag joined through the library itself is joined again too
  assert.deepEqual((await a.evaluate(() => demo.sy.join("extra:ann"))).sort(), ["chat:restart", "extra:ann"]);
  await say(a, "before the restart");
  await sees(b, "ann: before the restart", "ben's page");

  await server.kill("SIGKILL");
  for (const p of [a, b]) await until(async () => (await demoState(p)).state !== "connected", "the pages to notice the server is gone", 15_000);
  await server.start();
  for (const p of [a, b]) {
    await until(async () => {
      const s = await demoState(p);
      return s.state === "connected" && s.joins >= 2;
    }, "the pages to reconnect and rejoin", 45_000);
  }
  const [annClient] = await clientsOf("ann");
  assert.ok(annClient, "ann is connected again");
  assert.deepEqual([...annClient.tags].sort(), ["chat:restart", "extra:ann"]);

  await say(a, "after the restart 1");
  await sees(b, "ann: after the restart 1", "ben's page");
  await say(b, "after the restart 2");
  await sees(a, "ben: after the restart 2", "ann's page");
  await sees(b, "ben: after the restart 2", "ben's page");
  // every message once on each page, though listeners were added before three connections
  for (const p of [a, b]) {
    const got = await lines(p);
    assert.deepEqual(got, ["ann: before the restart", "ann: after the restart 1", "ben: after the restart 2"]);
    assert.equal((await demoState(p)).received, 3);
  }
});

test("a kick (DELETE /api/clients/{id}) closes with 4001 and the page stops reconnecting", async () => {
  const page = await demoPage("carol", "kicks");
  const { id } = await demoState(page);
  const r = await api("DELETE", `/api/clients/${id}`);
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, { kicked: id });
  await until(async () => (await demoState(page)).state === "closed", "carol's page to be closed", 10_000);
  assert.equal((await demoState(page)).closeCode, 4001);
  assert.match(await page.textContent("#status"), /kicked/);
  // the first reconnect would come within 500 ms (backoff base): watch three times that long
  await stays(async () => (await demoState(page)).state === "closed" && (await clientsOf("carol")).length === 0, "carol staying away", 1500);
});

test("admin page: asks the key once, lists modules and clients, Reload and Kick work", async () => {
  const dave = await demoPage("dave", "admins");
  const page = await newPage();
  await page.goto(`${web}/admin`);
  await page.fill("#key", "not-the-key");
  await page.click("#login button[type=submit]");
  await page.waitForSelector("#login-error:not([hidden])");
  assert.match(await page.textContent("#login-error"), /401/);
  await page.fill("#key", API_KEY);
  await page.click("#login button[type=submit]");
  await page.waitForSelector('#modules tr[data-module="chat"]');
  await page.waitForSelector('#modules tr[data-module="echo"]');
  assert.equal(await page.evaluate(() => sessionStorage.getItem("switchyard.apiKey")), API_KEY);
  await page.waitForSelector('#metrics tr[data-metric="switchyard_connections_total"]');

  // Reload: POST /admin/reload, counted by reload_checks_total
  const before = await metric("reload_checks_total");
  await page.click("#reload");
  await page.waitForSelector("#reload-result:not([hidden])");
  assert.match(await page.textContent("#reload-result"), /reloaded at .*2 modules/);
  assert.ok((await metric("reload_checks_total")) > before, "POST /admin/reload reached the server");

  // The key is kept: a reload of the page goes straight to the tables.
  await page.reload();
  const { id } = await demoState(dave);
  const row = `#clients tr[data-client="${id}"]`;
  await page.waitForSelector(row, { timeout: 10_000 });
  assert.equal(await page.isHidden("#login"), true);
  assert.match(await page.textContent(row), /dave/);
  assert.match(await page.textContent(row), /chat:admins/);
  await page.screenshot({ path: path.join(SHOTS, "admin.png"), fullPage: true });

  await page.click(`${row} button.kick`);
  await until(async () => (await demoState(dave)).state === "closed", "dave's page to be closed", 10_000);
  assert.equal((await demoState(dave)).closeCode, 4001);
  await page.waitForSelector(row, { state: "detached", timeout: 10_000 });
  assert.deepEqual(page.errors.filter((e) => !/401/.test(e)), []);
});

test("admin page: an admin JWT works in place of the API key", async () => {
  const jwt = execFileSync(BIN, ["token", "--sub", "root", "--admin"], { cwd: repo, encoding: "utf8" }).trim();
  const page = await newPage();
  await page.goto(`${web}/admin`);
  await page.fill("#key", jwt);
  await page.click("#login button[type=submit]");
  await page.waitForSelector('#modules tr[data-module="echo"]');
  await page.waitForSelector('#metrics tr[data-metric="switchyard_connections"]');
  assert.equal(await page.isHidden("#login"), true);
  assert.deepEqual(page.errors, []);
});

test("the demo says so when /dev/token is off (server not in dev mode)", async () => {
  const strict = new ServerProcess(await freePort(), { SWITCHYARD_AUTH__SECRET: "a-real-secret-for-this-test-only-0123456789" }, "server-strict");
  await strict.start();
  const strictShim = SHIM ? await startDevServer({ upstream: `127.0.0.1:${strict.port}`, devTokens: false }) : null;
  try {
    const page = await newPage();
    await page.goto(`${strictShim ? `http://127.0.0.1:${strictShim.port}` : strict.base}/?name=eve`);
    await page.click("#enter");
    await page.waitForSelector("#error:not([hidden])");
    assert.match(await page.textContent("#error"), /not in development mode/);
    assert.equal(await page.isVisible("#token"), true);
    assert.equal(await page.evaluate(() => window.demo.sy), null);
    await page.screenshot({ path: path.join(OUT, "demo-no-dev-token.png") });
  } finally {
    await strictShim?.close();
    await strict.kill("SIGTERM");
  }
});

test("examples/clients/browser.html: connect, request, join (on the client library)", async () => {
  // As its comment says: the repository served by a static server, whose origin the server allows.
  const files = http.createServer((req, res) => {
    const p = new URL(req.url, "http://x").pathname;
    if (!/^\/(examples\/clients|client\/dist)\/[\w.-]+$/.test(p)) return res.writeHead(404).end();
    try {
      const body = readFileSync(path.join(repo, p));
      res.writeHead(200, { "content-type": p.endsWith(".js") ? "text/javascript" : "text/html" }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((r) => files.listen(0, "127.0.0.1", r));
  const origin = `http://127.0.0.1:${files.address().port}`;
  const other = new ServerProcess(await freePort(), { SWITCHYARD_WS__ALLOWED_ORIGINS: JSON.stringify([origin]) }, "server-origins");
  try {
    await other.start();
    const page = await newPage();
    await page.goto(`${origin}/examples/clients/browser.html`);
    await page.fill("#url", `ws://127.0.0.1:${other.port}/ws`);
    await page.fill("#token", mint("console"));
    await page.click("#connect");
    const logged = (text) => page.waitForFunction((t) => document.getElementById("log").textContent.includes(t), text);
    await page.waitForFunction(() => document.getElementById("state").textContent === "connected");
    await page.click("#request");
    await logged('<- echo: {"hello":"world"}');
    await page.click("#join");
    await logged('<- join: ["room1"]');
    await page.fill("#event", "no/such/event");
    await page.click("#request");
    await logged("<- no/such/event failed: unknown_event");
    await page.click("#close");
    await page.waitForFunction(() => document.getElementById("state").textContent.startsWith("closed"));
    assert.deepEqual(page.errors, []);
  } finally {
    await other.kill("SIGTERM");
    files.close();
  }
});

// ---- main ---------------------------------------------------------------------------------------

let browser;
let server;
let web;
let shim;

async function main() {
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  const run = tests.filter((t) => !ONLY || ONLY.some((o) => t.name.includes(o)));
  console.log(`browser tests: ${run.length} (${SHIM ? "pages from the dev shim" : "pages from the server"})`);
  let setupError = null;
  try {
    if (!existsSync(BIN)) throw new Error(`no server binary at ${BIN} (cargo build --release, or set SWITCHYARD_BIN)`);
    if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM} (client/scripts/setup.sh installs it)`);
    server = new ServerProcess(await freePort());
    await server.start();
    web = server.base;
    if (SHIM) {
      shim = await startDevServer({ upstream: `127.0.0.1:${server.port}` });
      web = `http://127.0.0.1:${shim.port}`;
    }
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
  } catch (e) {
    setupError = e;
  }
  let n = 0;
  for (const t of run) {
    n++;
    if (t.skip) {
      skipped++;
      console.log(`ok ${n} - ${t.name} # SKIP ${t.skip}`);
      continue;
    }
    const t0 = Date.now();
    try {
      if (setupError) throw setupError;
      if (server.child.exitCode !== null || server.child.signalCode) await server.start(); // a test left it down
      let timer;
      await Promise.race([t.fn(), new Promise((_, rej) => (timer = setTimeout(() => rej(new Error(`test timed out after ${t.timeoutMs} ms`)), t.timeoutMs)))]);
      clearTimeout(timer);
      passed++;
      console.log(`ok ${n} - ${t.name} (${Date.now() - t0} ms)`);
    } catch (e) {
      failed++;
      console.log(`not ok ${n} - ${t.name} (${Date.now() - t0} ms)`);
      console.log(String(e?.stack || e).split("\n").slice(0, 8).map((l) => "    " + l).join("\n"));
    } finally {
      for (const c of contexts.splice(0)) await c.close().catch(() => {});
    }
  }
  await browser?.close().catch(() => {});
  await shim?.close();
  await server?.kill("SIGTERM");
  if (!demoShotDone && run.some((t) => t.name.startsWith("two pages"))) console.log("# docs/screenshots/demo.png not updated");
  console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
  process.exit(failed ? 1 : 0);
}

for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    server?.child?.kill("SIGKILL");
    process.exit(130);
  });
}

await main();
