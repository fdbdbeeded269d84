// src/index.ts
var SwitchyardError = class extends Error {
  constructor(kind, message, frame) {
    super(message);
    this.name = "SwitchyardError";
    this.kind = kind;
    this.frame = frame;
  }
};
var FATAL_CLOSE_CODES = [4001, 4002, 1008];
function backoffDelay(attempt, baseMs, capMs, random = Math.random) {
  return Math.floor(random() * Math.min(capMs, baseMs * 2 ** Math.min(attempt, 40)));
}
var OPEN = 1;
var Switchyard = class {
  constructor(url, options = {}) {
    this.state = "connecting";
    /** Consecutive failures before a welcome frame (see StateInfo.failures). */
    this.failures = 0;
    this.gen = 0;
    this.welcomed = false;
    this.idSeen = false;
    this.kicked = false;
    this.attempt = 0;
    this.seq = 0;
    this.lastRx = 0;
    this.listeners = /* @__PURE__ */ new Map();
    this.stateListeners = /* @__PURE__ */ new Set();
    this.waiters = [];
    this.pending = /* @__PURE__ */ new Map();
    this.queue = [];
    this.joined = /* @__PURE__ */ new Set();
    this.url = url;
    this.o = {
      reconnect: true,
      backoffBaseMs: 500,
      backoffCapMs: 3e4,
      stableAfterMs: 1e4,
      pingIntervalMs: 25e3,
      pongTimeoutMs: 1e4,
      requestTimeoutMs: 1e4,
      queueLimit: 100,
      random: Math.random,
      ...options
    };
    this.token = options.token;
    this.open();
  }
  /** Listen to every frame of `event` (`"*"`: every frame). Returns the unsubscribe function. */
  on(event, fn) {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, set = /* @__PURE__ */ new Set());
    set.add(fn);
    return () => this.off(event, fn);
  }
  off(event, fn) {
    this.listeners.get(event)?.delete(fn);
  }
  /** Listen to state changes. Returns the unsubscribe function. */
  onState(fn) {
    this.stateListeners.add(fn);
    return () => this.stateListeners.delete(fn);
  }
  /** Resolves with the welcome once connected (at once if already); rejects once closed. */
  connected() {
    return new Promise((resolve, reject) => {
      if (this.state === "connected") resolve({ id: this.clientId, user: this.user });
      else if (this.state === "closed") reject(this.closedError());
      else this.waiters.push([resolve, reject]);
    });
  }
  /** The tags this client joined through `join` (joined again after every reconnect). */
  get tags() {
    return [...this.joined];
  }
  /** Fire and forget. While disconnected the frame waits in the queue; throws when the queue
   * is full or the client is closed. */
  send(event, data) {
    if (this.state === "closed") throw this.closedError();
    this.out(JSON.stringify({ event, data }));
  }
  /** Sends `event` with a fresh `id`; resolves with the reply's `data`, rejects with a
   * SwitchyardError on an error frame (its `kind` and `errorMsg`), a timeout, a drop while it
   * was in flight, or `close()`. */
  request(event, data, opts = {}) {
    return new Promise((resolve, reject) => {
      if (this.state === "closed") return reject(this.closedError());
      const id = String(++this.seq);
      const ms = opts.timeoutMs ?? this.o.requestTimeoutMs;
      const p = {
        event,
        sent: false,
        resolve,
        reject,
        timer: setTimeout(() => {
          if (p.sent && !this.idSeen) p.dead = true;
          else this.pending.delete(id);
          this.queue = this.queue.filter((q) => q[1] !== id);
          reject(new SwitchyardError("timeout", `${event}: no reply within ${ms} ms`));
        }, ms)
      };
      this.pending.set(id, p);
      try {
        this.out(JSON.stringify({ event, data, id }), id);
      } catch (e) {
        clearTimeout(p.timer);
        this.pending.delete(id);
        reject(e);
      }
    });
  }
  /** Joins a tag (built-in `join`); resolves with the client's tags. The tag is joined again
   * after every reconnect until `quit`, unless the join failed otherwise than by a drop or a
   * timeout (an error frame refused it, the queue was full, ...). */
  join(tag, opts) {
    this.joined.add(tag);
    return this.request("join", { id: tag }, opts).catch((e) => {
      if (e.kind !== "disconnected" && e.kind !== "timeout") this.joined.delete(tag);
      throw e;
    });
  }
  /** Leaves a tag (built-in `quit`); resolves with the client's remaining tags. */
  quit(tag, opts) {
    this.joined.delete(tag);
    return this.request("quit", { id: tag }, opts);
  }
  /** Closes for good: no reconnect, queued and pending frames are rejected. */
  close() {
    if (this.state !== "closed") this.finish(1e3, "closed by the client");
  }
  // ---- connection lifecycle ------------------------------------------------------------------
  async open() {
    const gen = ++this.gen;
    this.welcomed = this.idSeen = this.kicked = false;
    this.setState("connecting", {});
    if (this.o.getToken) {
      try {
        this.token = await this.o.getToken();
      } catch (error) {
        if (gen === this.gen) this.dropped(void 0, "getToken failed", error);
        return;
      }
      if (gen !== this.gen) return;
    }
    let ws;
    try {
      const WS = this.o.WebSocket ?? globalThis.WebSocket;
      if (!WS) throw new Error('no WebSocket implementation: pass { WebSocket } (e.g. from "ws")');
      ws = this.token ? new WS(this.url, ["switchyard", this.token]) : new WS(this.url);
    } catch (error) {
      this.dropped(void 0, "WebSocket constructor threw", error);
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (gen !== this.gen) return;
      this.lastRx = Date.now();
      this.armPing();
    };
    ws.onmessage = (ev) => gen === this.gen && this.receive(ev.data);
    ws.onclose = (ev) => gen === this.gen && this.dropped(ev.code, ev.reason);
    ws.onerror = () => {
    };
  }
  /** Forgets the current socket: its late events are ignored. */
  detach(code, reason) {
    this.gen++;
    const ws = this.ws;
    this.ws = void 0;
    for (const t of [this.ping, this.pong, this.stable, this.retry]) clearTimeout(t);
    this.ping = this.pong = this.stable = this.retry = void 0;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      ws.onerror = () => {
      };
      try {
        if (code) ws.close(code, reason);
        else ws.close();
      } catch {
      }
    }
  }
  /** The socket went away (or an attempt failed): reconnect, or stop for good. */
  dropped(code, reason = "", error) {
    const welcomed = this.welcomed;
    this.detach();
    this.welcomed = false;
    if (this.kicked) code = 4001;
    for (const [id, p] of this.pending) {
      if (!p.sent) continue;
      clearTimeout(p.timer);
      this.pending.delete(id);
      if (!p.dead) p.reject(new SwitchyardError("disconnected", `${p.event}: connection lost before the reply`));
    }
    if (code !== void 0 && FATAL_CLOSE_CODES.includes(code) || !this.o.reconnect) {
      return this.finish(code ?? 1006, reason);
    }
    if (!welcomed) this.failures++;
    const delayMs = backoffDelay(this.attempt, this.o.backoffBaseMs, this.o.backoffCapMs, this.o.random);
    this.attempt++;
    this.setState("disconnected", { code, reason, error, delayMs });
    this.retry = setTimeout(() => this.open(), delayMs);
  }
  finish(code, reason) {
    this.detach(code === 1e3 ? 1e3 : void 0, reason);
    this.closeCode = code;
    this.closeReason = reason;
    this.state = "closed";
    const err = this.closedError();
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      if (!p.dead) p.reject(err);
    }
    this.pending.clear();
    this.queue = [];
    for (const [, reject] of this.waiters.splice(0)) reject(err);
    this.notify({ code, reason });
  }
  welcome(f) {
    const w = f.data || {};
    this.clientId = w.id;
    this.user = w.user;
    this.welcomed = true;
    this.failures = 0;
    this.stable = setTimeout(() => this.attempt = 0, this.o.stableAfterMs);
    this.state = "connected";
    for (const tag of this.joined) {
      this.request("join", { id: tag }).catch((e) => e.frame && this.joined.delete(tag));
    }
    const queued = this.queue;
    this.queue = [];
    for (const [text, id] of queued) this.out(text, id);
    this.notify({});
    for (const [resolve] of this.waiters.splice(0)) resolve({ id: w.id, user: w.user });
  }
  // ---- frames ---------------------------------------------------------------------------------
  out(text, id) {
    const ws = this.ws;
    if (this.state === "connected" && ws && ws.readyState === OPEN) {
      ws.send(text);
      if (id) {
        const p = this.pending.get(id);
        if (p) p.sent = true;
      }
    } else if (this.queue.length >= this.o.queueLimit) {
      throw new SwitchyardError("queue_full", `send queue full (${this.o.queueLimit} frames waiting for the connection)`);
    } else {
      this.queue.push([text, id]);
    }
  }
  receive(raw) {
    let f;
    try {
      f = JSON.parse(typeof raw === "string" ? raw : String(raw));
    } catch {
      return;
    }
    if (!f || typeof f.event !== "string") return;
    this.lastRx = Date.now();
    if (this.pong) {
      clearTimeout(this.pong);
      this.pong = void 0;
      this.armPing();
    }
    if (f.event === "connected" && !this.welcomed && f.code === 0) this.welcome(f);
    else if (f.event === "kick") {
      this.kicked = true;
      this.emit(f);
      return this.dropped(4001, "kicked");
    } else if (f.event === "token_expiring" && this.o.getToken) this.refresh();
    this.settle(f);
    this.emit(f);
  }
  /** Settles the request this frame answers: by `id`, or, while the server has sent no id on
   * this connection (a server without id support), the oldest in-flight one of the same event. */
  settle(f) {
    let id;
    if (f.id != null) {
      this.idSeen = true;
      id = String(f.id);
    } else if (!this.idSeen) {
      for (const [k, p2] of this.pending) {
        if (p2.sent && p2.event === f.event) {
          id = k;
          break;
        }
      }
    }
    const p = id !== void 0 && this.pending.get(id);
    if (!p) return;
    clearTimeout(p.timer);
    this.pending.delete(id);
    if (p.dead) return;
    if (f.code === 0) p.resolve(f.data);
    else p.reject(new SwitchyardError(f.kind || "error", f.errorMsg || `${f.event} failed`, f));
  }
  emit(f) {
    for (const key of [f.event, "*"]) {
      const set = this.listeners.get(key);
      if (set) for (const fn of [...set]) call(() => fn(f.data, f));
    }
  }
  async refresh() {
    try {
      const token = await this.o.getToken();
      this.token = token;
      if (this.state !== "closed") this.send("refresh", { token });
    } catch {
    }
  }
  // ---- heartbeat ------------------------------------------------------------------------------
  armPing(wait = this.o.pingIntervalMs) {
    clearTimeout(this.ping);
    this.ping = setTimeout(() => {
      const idle = Date.now() - this.lastRx;
      if (idle < this.o.pingIntervalMs) return this.armPing(this.o.pingIntervalMs - idle);
      try {
        this.ws?.send('{"event":"ping"}');
      } catch {
      }
      this.pong = setTimeout(() => this.dropped(4e3, "no answer to ping"), this.o.pongTimeoutMs);
    }, wait);
  }
  // ---- helpers --------------------------------------------------------------------------------
  setState(state, info) {
    this.state = state;
    this.notify(info);
  }
  notify(info) {
    const full = { failures: this.failures, attempt: this.attempt, ...info };
    for (const fn of [...this.stateListeners]) call(() => fn(this.state, full));
  }
  closedError() {
    return new SwitchyardError("closed", `connection closed (${this.closeCode ?? "not open"}${this.closeReason ? ": " + this.closeReason : ""})`);
  }
};
function call(fn) {
  try {
    fn();
  } catch (e) {
    setTimeout(() => {
      throw e;
    }, 0);
  }
}
var index_default = Switchyard;
export {
  FATAL_CLOSE_CODES,
  Switchyard,
  SwitchyardError,
  backoffDelay,
  index_default as default
};
