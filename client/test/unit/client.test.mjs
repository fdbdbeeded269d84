// Unit tests of switchyard-client against a fake WebSocket (test/unit/fake-ws.mjs) and mocked
// timers: backoff and jitter, the state machine, request matching, the queue, rejoin, heartbeat.
import { test, describe, beforeEach, afterEach, mock } from "node:test";
import assert from "node:assert/strict";
import { Switchyard, SwitchyardError, backoffDelay, FATAL_CLOSE_CODES } from "../../dist/index.js";
import { fakeSockets, flush } from "./fake-ws.mjs";

const URL = "ws://127.0.0.1:1/ws";

beforeEach(() => mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1_000_000 }));
afterEach(() => mock.timers.reset());

/** A client on fake sockets with a fixed jitter, and its recorded states. */
function client(opts = {}) {
  const fake = fakeSockets();
  const sy = new Switchyard(URL, { WebSocket: fake.WebSocket, token: "a.b.c", random: () => 0.5, ...opts });
  const states = [];
  sy.onState((s, info) => states.push({ s, ...info }));
  return { sy, fake, states };
}

async function connectedClient(opts) {
  const c = client(opts);
  await flush();
  c.fake.last().accept();
  return c;
}

describe("backoff", () => {
  test("full jitter: random(0, min(cap, base * 2^attempt))", () => {
    assert.equal(backoffDelay(0, 500, 30000, () => 0), 0);
    assert.equal(backoffDelay(0, 500, 30000, () => 0.999999), 499);
    assert.equal(backoffDelay(1, 500, 30000, () => 0.5), 500);
    assert.equal(backoffDelay(3, 500, 30000, () => 0.5), 2000);
    assert.equal(backoffDelay(6, 500, 30000, () => 0.999999), 29999); // 32000 capped at 30000
    assert.equal(backoffDelay(1000, 500, 30000, () => 0.5), 15000); // no overflow to Infinity/NaN
  });

  test("jitter spreads delays over the whole window", () => {
    const seen = Array.from({ length: 2000 }, () => backoffDelay(4, 500, 30000));
    assert.ok(seen.every((d) => d >= 0 && d < 8000 && Number.isInteger(d)));
    const buckets = [0, 0, 0, 0];
    for (const d of seen) buckets[Math.floor(d / 2000)]++;
    for (const b of buckets) assert.ok(b > 350, `uneven jitter: ${buckets}`); // ~500 each
  });

  test("delays grow per failed attempt and use the documented defaults", async () => {
    const { fake, states } = client({ random: () => 0.999 });
    const delays = [];
    for (let i = 0; i < 8; i++) {
      await flush();
      fake.last().serverClose(1006);
      delays.push(states.at(-1).delayMs);
      mock.timers.tick(states.at(-1).delayMs);
    }
    assert.deepEqual(delays, [499, 999, 1998, 3996, 7992, 15984, 29970, 29970]);
    assert.equal(fake.sockets.length, 9);
  });

  test("the attempt counter resets after the connection stayed up stableAfterMs", async () => {
    const { fake, states } = client();
    for (let i = 0; i < 4; i++) {
      await flush();
      fake.last().serverClose(1006);
      mock.timers.tick(states.at(-1).delayMs);
    }
    await flush();
    fake.last().accept();
    mock.timers.tick(9999); // not yet stable
    fake.last().serverClose(1001);
    assert.equal(states.at(-1).delayMs, 4000); // attempt 4: 0.5 * 8000
    mock.timers.tick(4000);
    await flush();
    fake.last().accept();
    mock.timers.tick(10000); // stable
    fake.last().serverClose(1001);
    assert.equal(states.at(-1).s, "disconnected");
    assert.equal(states.at(-1).delayMs, 250); // attempt 0 again
  });
});

describe("state machine", () => {
  test("connecting until the welcome frame, not the socket's open", async () => {
    const { sy, fake, states } = client();
    assert.equal(sy.state, "connecting");
    await flush();
    fake.last().open();
    assert.equal(sy.state, "connecting");
    let resolved = null;
    sy.connected().then((w) => (resolved = w));
    fake.last().welcome("17", "bob");
    await flush();
    assert.equal(sy.state, "connected");
    assert.deepEqual(resolved, { id: "17", user: "bob" });
    assert.equal(sy.clientId, "17");
    assert.equal(sy.user, "bob");
    assert.deepEqual(states.map((x) => x.s), ["connected"]);
    assert.deepEqual(await sy.connected(), { id: "17", user: "bob" }); // at once when connected
  });

  test("the token rides in the subprotocol list; no token, no subprotocols", async () => {
    const a = client({ token: "eyJ.x.y" });
    assert.deepEqual(a.fake.last().protocols, ["switchyard", "eyJ.x.y"]);
    assert.equal(a.fake.last().url, URL);
    const b = client({ token: undefined });
    assert.equal(b.fake.last().protocols, undefined);
  });

  test("getToken is asked before every attempt", async () => {
    let n = 0;
    const { fake, states } = client({ token: undefined, getToken: async () => `t${++n}.x.y` });
    await flush();
    assert.deepEqual(fake.last().protocols, ["switchyard", "t1.x.y"]);
    fake.last().accept();
    fake.last().serverClose(1001);
    mock.timers.tick(states.at(-1).delayMs);
    await flush();
    assert.deepEqual(fake.last().protocols, ["switchyard", "t2.x.y"]);
  });

  test("a getToken that throws is a failed attempt, retried", async () => {
    let fail = true;
    const { sy, fake, states } = client({ token: undefined, getToken: async () => { if (fail) throw new Error("no token"); return "ok.x.y"; } });
    await flush();
    assert.equal(sy.state, "disconnected");
    assert.equal(states.at(-1).error.message, "no token");
    assert.equal(fake.sockets.length, 0);
    fail = false;
    mock.timers.tick(states.at(-1).delayMs);
    await flush();
    assert.equal(fake.sockets.length, 1);
  });

  test("drop, disconnected, reconnect, connected again", async () => {
    const { sy, fake, states } = await connectedClient();
    fake.last().serverClose(1001, "going away");
    assert.equal(sy.state, "disconnected");
    assert.equal(states.at(-1).code, 1001);
    assert.equal(states.at(-1).delayMs, 250);
    mock.timers.tick(249);
    assert.equal(fake.sockets.length, 1);
    mock.timers.tick(1);
    assert.equal(sy.state, "connecting");
    assert.equal(fake.sockets.length, 2);
    fake.last().accept("2");
    assert.equal(sy.state, "connected");
    assert.equal(sy.clientId, "2");
    assert.deepEqual(states.map((x) => x.s), ["connected", "disconnected", "connecting", "connected"]);
  });

  for (const code of FATAL_CLOSE_CODES) {
    test(`close ${code} means do not come back: closed, closeCode ${code}`, async () => {
      const { sy, fake, states } = await connectedClient();
      fake.last().serverClose(code, "bye");
      assert.equal(sy.state, "closed");
      assert.equal(sy.closeCode, code);
      assert.equal(states.at(-1).code, code);
      mock.timers.tick(120_000);
      await flush();
      assert.equal(fake.sockets.length, 1);
      await assert.rejects(sy.connected(), (e) => e.kind === "closed");
      assert.throws(() => sy.send("echo", 1), (e) => e instanceof SwitchyardError && e.kind === "closed");
    });
  }

  test("a kick frame (hotgo) before the close is a kick: closed with 4001", async () => {
    const { sy, fake } = await connectedClient();
    const seen = [];
    sy.on("kick", (d) => seen.push(d));
    fake.last().push({ event: "kick", code: 0, data: { reason: "admin" } });
    assert.equal(sy.state, "closed");
    assert.equal(sy.closeCode, 4001);
    assert.deepEqual(seen, [{ reason: "admin" }]);
    assert.ok(fake.last().closedWith, "the client closed the socket");
    fake.last().serverClose(1005); // a late close event changes nothing
    assert.equal(sy.closeCode, 4001);
    mock.timers.tick(60_000);
    assert.equal(fake.sockets.length, 1);
  });

  test("failures before open (a refused upgrade looks like 1006) stay retryable, counted", async () => {
    const { sy, fake, states } = client();
    for (let i = 1; i <= 3; i++) {
      await flush();
      fake.last().serverClose(1006);
      assert.equal(sy.state, "disconnected");
      assert.equal(states.at(-1).failures, i);
      assert.equal(sy.failures, i);
      mock.timers.tick(states.at(-1).delayMs);
    }
    await flush();
    assert.equal(fake.sockets.length, 4);
    fake.last().accept();
    assert.equal(sy.failures, 0);
    assert.equal(sy.state, "connected");
  });

  test("reconnect: false stops at the first drop", async () => {
    const { sy, fake } = await connectedClient({ reconnect: false });
    fake.last().serverClose(1001);
    assert.equal(sy.state, "closed");
    assert.equal(sy.closeCode, 1001);
  });

  test("close() is final: state closed, code 1000, socket closed, no reconnect", async () => {
    const { sy, fake, states } = await connectedClient();
    sy.close();
    assert.equal(sy.state, "closed");
    assert.equal(sy.closeCode, 1000);
    assert.equal(fake.last().closedWith.code, 1000);
    assert.equal(states.at(-1).s, "closed");
    sy.close(); // idempotent
    assert.equal(states.filter((x) => x.s === "closed").length, 1);
    mock.timers.tick(60_000);
    assert.equal(fake.sockets.length, 1);
  });

  test("close() while getToken is pending opens nothing", async () => {
    let give;
    const { sy, fake } = client({ token: undefined, getToken: () => new Promise((r) => (give = r)) });
    sy.close();
    give("late.x.y");
    await flush();
    assert.equal(fake.sockets.length, 0);
    assert.equal(sy.state, "closed");
  });
});

describe("requests", () => {
  test("ids are a string counter; replies are matched by id, in any order", async () => {
    const { sy, fake } = await connectedClient();
    const a = sy.request("echo", { x: 1 });
    const b = sy.request("echo", { x: 2 });
    const ws = fake.last();
    assert.deepEqual(ws.sent, [
      { event: "echo", data: { x: 1 }, id: "1" },
      { event: "echo", data: { x: 2 }, id: "2" },
    ]);
    ws.push({ event: "echo", code: 0, data: { x: 2 }, id: "2", timestamp: 1 });
    ws.push({ event: "chat/message", code: 0, data: "noise", timestamp: 1 });
    ws.push({ event: "echo", code: 0, data: { x: 1 }, id: 1, timestamp: 1 }); // a number id matches too
    assert.deepEqual(await a, { x: 1 });
    assert.deepEqual(await b, { x: 2 });
  });

  test("an error frame rejects with its kind and errorMsg", async () => {
    const { sy, fake } = await connectedClient();
    const p = sy.request("nope", null);
    fake.last().push({ event: "nope", code: -1, kind: "unknown_event", errorMsg: 'unknown event "nope"', id: "1", timestamp: 1 });
    await assert.rejects(p, (e) => {
      assert.ok(e instanceof SwitchyardError && e instanceof Error);
      assert.equal(e.kind, "unknown_event");
      assert.equal(e.message, 'unknown event "nope"');
      assert.equal(e.frame.code, -1);
      return true;
    });
  });

  test("no reply within timeoutMs rejects with kind timeout; a late reply is ignored", async () => {
    const { sy, fake } = await connectedClient({ requestTimeoutMs: 3000 });
    const p = sy.request("slow", 1, { timeoutMs: 50 });
    const q = sy.request("slow2", 1);
    mock.timers.tick(50);
    await assert.rejects(p, (e) => e.kind === "timeout");
    fake.last().push({ event: "slow", code: 0, data: 1, id: "1", timestamp: 1 });
    mock.timers.tick(2950);
    await assert.rejects(q, (e) => e.kind === "timeout"); // the default requestTimeoutMs
  });

  test("in-flight requests reject with kind disconnected when the connection drops", async () => {
    const { sy, fake } = await connectedClient();
    const p = sy.request("echo", 1);
    fake.last().serverClose(1006);
    await assert.rejects(p, (e) => e.kind === "disconnected");
  });

  test("a server that sends no ids: the oldest in-flight request of the same event", async () => {
    const { sy, fake } = await connectedClient();
    const a = sy.request("echo", 1);
    const b = sy.request("echo", 2);
    fake.last().push({ event: "echo", code: 0, data: "first", timestamp: 1 });
    fake.last().push({ event: "echo", code: 0, data: "second", timestamp: 1 });
    assert.equal(await a, "first");
    assert.equal(await b, "second");
  });

  test("without ids, the late reply of a timed-out request is not given to the next one", async () => {
    const { sy, fake } = await connectedClient();
    const a = sy.request("echo", 1, { timeoutMs: 100 });
    mock.timers.tick(100);
    await assert.rejects(a, (e) => e.kind === "timeout");
    const b = sy.request("echo", 2);
    fake.last().push({ event: "echo", code: 0, data: 1, timestamp: 1 }); // a's late reply
    fake.last().push({ event: "echo", code: 0, data: 2, timestamp: 1 });
    assert.equal(await b, 2);
  });

  test("with ids, a late reply (unknown id) is ignored", async () => {
    const { sy, fake } = await connectedClient();
    const a = sy.request("echo", 1);
    fake.last().push({ event: "echo", code: 0, data: 1, id: "1", timestamp: 1 });
    await a;
    const b = sy.request("echo", 2, { timeoutMs: 100 });
    mock.timers.tick(100);
    await assert.rejects(b, (e) => e.kind === "timeout");
    const c = sy.request("echo", 3);
    fake.last().push({ event: "echo", code: 0, data: 2, id: "2", timestamp: 1 });
    fake.last().push({ event: "echo", code: 0, data: 3, id: "3", timestamp: 1 });
    assert.equal(await c, 3);
  });

  test("once the server echoes ids, frames without an id settle nothing", async () => {
    const { sy, fake } = await connectedClient();
    const a = sy.request("echo", 1);
    fake.last().push({ event: "echo", code: 0, data: 1, id: "1", timestamp: 1 });
    await a;
    const b = sy.request("echo", 2, { timeoutMs: 100 });
    fake.last().push({ event: "echo", code: 0, data: "a push, not the reply", timestamp: 1 });
    mock.timers.tick(100);
    await assert.rejects(b, (e) => e.kind === "timeout");
  });

  test("replies also reach the listeners", async () => {
    const { sy, fake } = await connectedClient();
    const seen = [];
    sy.on("echo", (data, frame) => seen.push([data, frame.id]));
    const p = sy.request("echo", "x");
    fake.last().push({ event: "echo", code: 0, data: "x", id: "1", timestamp: 1 });
    await p;
    assert.deepEqual(seen, [["x", "1"]]);
  });
});

describe("queue", () => {
  test("sends while not connected wait and go out in order after the welcome", async () => {
    const { sy, fake } = client();
    sy.send("a", 1);
    const r = sy.request("b", 2);
    sy.send("c", 3);
    await flush();
    const ws = fake.last();
    ws.open();
    assert.deepEqual(ws.sent, []); // not before the welcome
    ws.welcome();
    assert.deepEqual(ws.sent.map((f) => f.event), ["a", "b", "c"]);
    ws.push({ event: "b", code: 0, data: "ok", id: ws.sent[1].id, timestamp: 1 });
    assert.equal(await r, "ok");
  });

  test("the queue is bounded: a clear error when full", async () => {
    const { sy } = client({ queueLimit: 3 });
    sy.send("a");
    sy.send("a");
    sy.send("a");
    assert.throws(() => sy.send("a"), (e) => e.kind === "queue_full" && /queue full \(3/.test(e.message));
    await assert.rejects(sy.request("b"), (e) => e.kind === "queue_full");
  });

  test("a queued request that times out leaves the queue", async () => {
    const { sy, fake } = client();
    const p = sy.request("x", 1, { timeoutMs: 100 });
    mock.timers.tick(100);
    await assert.rejects(p, (e) => e.kind === "timeout");
    await flush();
    fake.last().accept();
    assert.deepEqual(fake.last().sent, []);
  });

  test("close() rejects queued requests and pending ones; later sends throw", async () => {
    const { sy } = client();
    const p = sy.request("x", 1);
    sy.close();
    await assert.rejects(p, (e) => e.kind === "closed");
    assert.throws(() => sy.send("x"), (e) => e.kind === "closed" && /closed/.test(e.message));
    await assert.rejects(sy.request("x"), (e) => e.kind === "closed");
  });
});

describe("tags, listeners, heartbeat", () => {
  test("join/quit are requests with ids; joined tags are joined again after a reconnect, first", async () => {
    const { sy, fake, states } = await connectedClient();
    let ws = fake.last();
    const j1 = sy.join("room1");
    const j2 = sy.join("room2");
    assert.deepEqual(ws.sent, [
      { event: "join", data: { id: "room1" }, id: "1" },
      { event: "join", data: { id: "room2" }, id: "2" },
    ]);
    ws.push({ event: "join", code: 0, data: ["room1"], id: "1", timestamp: 1 });
    ws.push({ event: "join", code: 0, data: ["room1", "room2"], id: "2", timestamp: 1 });
    assert.deepEqual(await j1, ["room1"]);
    assert.deepEqual(await j2, ["room1", "room2"]);
    const q = sy.quit("room2");
    ws.push({ event: "quit", code: 0, data: ["room1"], id: "3", timestamp: 1 });
    assert.deepEqual(await q, ["room1"]);
    assert.deepEqual(sy.tags, ["room1"]);

    ws.serverClose(1001);
    sy.send("queued", 1);
    mock.timers.tick(states.at(-1).delayMs);
    ws = fake.last();
    ws.accept();
    assert.deepEqual(ws.sent.map((f) => [f.event, f.data]), [["join", { id: "room1" }], ["queued", 1]]);
    assert.ok(typeof ws.sent[0].id === "string");
  });

  test("a join refused by an error frame is not joined again", async () => {
    const { sy, fake, states } = await connectedClient();
    const j = sy.join("secret");
    fake.last().push({ event: "join", code: -1, kind: "bad_request", errorMsg: "this tag cannot be joined by clients", id: "1", timestamp: 1 });
    await assert.rejects(j, (e) => e.kind === "bad_request");
    assert.deepEqual(sy.tags, []);
    fake.last().serverClose(1006);
    mock.timers.tick(states.at(-1).delayMs);
    fake.last().accept();
    assert.deepEqual(fake.last().sent, []);
  });

  test("a join lost to a drop is joined on the next connection; one refused for a full queue is not", async () => {
    const { sy, fake, states } = await connectedClient({ queueLimit: 1 });
    const j = sy.join("kept");
    fake.last().serverClose(1006);
    await assert.rejects(j, (e) => e.kind === "disconnected");
    sy.send("filler");
    await assert.rejects(sy.join("dropped"), (e) => e.kind === "queue_full");
    assert.deepEqual(sy.tags, ["kept"]);
    mock.timers.tick(states.at(-1).delayMs);
    fake.last().accept();
    assert.deepEqual(fake.last().sent.map((f) => [f.event, f.data]), [["join", { id: "kept" }], ["filler", undefined]]);
  });

  test("listeners belong to the client: none duplicated by reconnects; off and * work", async () => {
    const { sy, fake, states } = await connectedClient();
    const got = [];
    const all = [];
    const fn = (d) => got.push(d);
    sy.on("chat/message", fn);
    const unsubscribeAll = sy.on("*", (d, f) => all.push(f.event));
    for (let i = 0; i < 3; i++) {
      fake.last().serverClose(1006);
      mock.timers.tick(states.at(-1).delayMs);
      fake.last().accept();
    }
    fake.last().push({ event: "chat/message", code: 0, data: "m1", timestamp: 1 });
    assert.deepEqual(got, ["m1"]);
    assert.deepEqual(all, ["connected", "connected", "connected", "chat/message"]);
    sy.off("chat/message", fn);
    unsubscribeAll();
    fake.last().push({ event: "chat/message", code: 0, data: "m2", timestamp: 1 });
    assert.deepEqual(got, ["m1"]);
    assert.equal(all.length, 4);
  });

  test("a throwing listener does not stop the others", async () => {
    const { sy, fake } = await connectedClient();
    const got = [];
    sy.on("x", () => { throw new Error("listener bug"); });
    sy.on("x", (d) => got.push(d));
    fake.last().push({ event: "x", code: 0, data: 1, timestamp: 1 });
    assert.deepEqual(got, [1]);
    assert.throws(() => mock.timers.tick(1), /listener bug/); // rethrown asynchronously
  });

  test("ping after pingIntervalMs without receiving; any frame counts as the answer", async () => {
    const { sy, fake } = await connectedClient();
    const ws = fake.last();
    mock.timers.tick(20_000);
    ws.push({ event: "news", code: 0, data: 1, timestamp: 1 }); // traffic postpones the ping
    mock.timers.tick(24_999);
    assert.deepEqual(ws.sent, []);
    mock.timers.tick(1);
    assert.deepEqual(ws.sent, [{ event: "ping" }]);
    mock.timers.tick(9_999);
    ws.push({ event: "ping", code: 0, timestamp: 1 });
    mock.timers.tick(30_000);
    assert.equal(sy.state, "connected");
    assert.deepEqual(ws.sent, [{ event: "ping" }, { event: "ping" }]);
  });

  test("no answer within pongTimeoutMs: the connection is dead, closed and reopened", async () => {
    const { sy, fake, states } = await connectedClient({ pingIntervalMs: 1000, pongTimeoutMs: 500 });
    const ws = fake.last();
    mock.timers.tick(1000);
    assert.deepEqual(ws.sent, [{ event: "ping" }]);
    mock.timers.tick(500);
    assert.equal(sy.state, "disconnected");
    assert.equal(states.at(-1).code, 4000);
    assert.ok(ws.closedWith, "the dead socket was closed");
    ws.push({ event: "late", code: 0, timestamp: 1 }); // the dead socket is ignored
    mock.timers.tick(states.at(-1).delayMs);
    assert.equal(fake.sockets.length, 2);
    fake.last().accept();
    assert.equal(sy.state, "connected");
  });

  test("token_expiring is answered with refresh and a fresh token from getToken", async () => {
    let n = 0;
    const { fake } = client({ token: undefined, getToken: async () => `t${++n}.x.y` });
    await flush();
    fake.last().accept();
    fake.last().push({ event: "token_expiring", code: 0, data: { exp: 123 }, timestamp: 1 });
    await flush();
    assert.deepEqual(fake.last().sent, [{ event: "refresh", data: { token: "t2.x.y" } }]);
  });

  test("without getToken, token_expiring is only passed to listeners", async () => {
    const { sy, fake } = await connectedClient();
    const seen = [];
    sy.on("token_expiring", (d) => seen.push(d));
    fake.last().push({ event: "token_expiring", code: 0, data: { exp: 5 }, timestamp: 1 });
    await flush();
    assert.deepEqual(fake.last().sent, []);
    assert.deepEqual(seen, [{ exp: 5 }]);
  });

  test("non-JSON and non-frame messages are ignored", async () => {
    const { sy, fake } = await connectedClient();
    fake.last().push("not json");
    fake.last().push("[1,2]");
    fake.last().push("null");
    assert.equal(sy.state, "connected");
  });
});
