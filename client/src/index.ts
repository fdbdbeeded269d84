/**
 * switchyard-client: the browser and Node client of the Switchyard WebSocket server.
 *
 * One `Switchyard` object owns one logical connection: it opens WebSockets (the token in the
 * subprotocol list), matches replies to requests by `id`, keeps a bounded queue of what is sent
 * while disconnected, detects dead connections with application-level pings, reconnects with
 * exponential backoff and full jitter, and joins its tags again after every reconnect.
 * Listeners belong to the object, never to a socket, so reconnects never duplicate them.
 * Zero runtime dependencies; the wire protocol is docs/PROTOCOL.md of the server.
 */

/** `connecting`: opening a socket (or fetching a token); `connected`: the welcome frame arrived;
 * `disconnected`: waiting before the next attempt; `closed`: for good (see `closeCode`). */
export type State = "connecting" | "connected" | "disconnected" | "closed";

/** A server frame. Success: `code` 0 and `data`; error: `code` -1, `kind` and `errorMsg`. */
export interface Frame {
  event: string;
  code: number;
  data?: unknown;
  kind?: string;
  errorMsg?: string;
  /** The request id, on replies to a frame that carried one. */
  id?: string | number;
  timestamp?: number;
}

/** What the welcome frame (`connected`) says about this connection. */
export interface Welcome {
  id: string;
  user: string;
}

/** The part of the WebSocket API used here: the browser's, Node's `ws` and test fakes all fit. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: any) => void) | null;
  onclose: ((ev: any) => void) | null;
  onerror: ((ev: any) => void) | null;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export interface Options {
  /** A JWT, sent as the subprotocol list `["switchyard", token]`. */
  token?: string;
  /** Called before every connection attempt (and on `token_expiring`) for a fresh token. */
  getToken?: () => string | Promise<string>;
  /** The WebSocket class; default `globalThis.WebSocket`. In Node 20: `import { WebSocket } from "ws"`. */
  WebSocket?: WebSocketConstructor;
  /** Reconnect after a drop (default true). */
  reconnect?: boolean;
  /** Backoff base: attempt n waits random(0, min(cap, base * 2^n)) ms (default 500). */
  backoffBaseMs?: number;
  /** Backoff cap (default 30000). */
  backoffCapMs?: number;
  /** A connection up this long resets the attempt counter (default 10000). */
  stableAfterMs?: number;
  /** Send `{"event":"ping"}` after this long without receiving anything (default 25000). */
  pingIntervalMs?: number;
  /** No frame this long after that ping: the connection is dead, reconnect (default 10000). */
  pongTimeoutMs?: number;
  /** Default timeout of `request` (default 10000). */
  requestTimeoutMs?: number;
  /** Frames kept while disconnected (default 100); past it `send` throws. */
  queueLimit?: number;
  /** The jitter's random source, in [0, 1) (default Math.random). */
  random?: () => number;
}

/** Why the state changed. */
export interface StateInfo {
  /** Close code of the socket that just went away (4000 when the client declared it dead). */
  code?: number;
  reason?: string;
  /** The error that failed the attempt (getToken rejected, the WebSocket constructor threw). */
  error?: unknown;
  /** Consecutive attempts that ended before a welcome frame: a refused upgrade (HTTP 401)
   * and a server that is down look alike to a browser (close 1006), so they stay retryable. */
  failures: number;
  /** The backoff attempt counter. */
  attempt: number;
  /** When `disconnected`: the wait before the next attempt. */
  delayMs?: number;
}

/** A rejected request or send. `kind` is the server's (`unknown_event`, `handler_error`, ...)
 * or the client's own: `timeout`, `disconnected`, `closed`, `queue_full`. */
export class SwitchyardError extends Error {
  kind: string;
  frame?: Frame;
  constructor(kind: string, message: string, frame?: Frame) {
    super(message);
    this.name = "SwitchyardError";
    this.kind = kind;
    this.frame = frame;
  }
}

/** Close codes after which the client does not come back: kicked, token expired, policy. */
export const FATAL_CLOSE_CODES: readonly number[] = [4001, 4002, 1008];

/** Exponential backoff with full jitter: random(0, min(cap, base * 2^attempt)). */
export function backoffDelay(attempt: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  return Math.floor(random() * Math.min(capMs, baseMs * 2 ** Math.min(attempt, 40)));
}

type Listener = (data: any, frame: Frame) => void;
type StateListener = (state: State, info: StateInfo) => void;

interface Pending {
  event: string;
  sent: boolean;
  /** Timed out after it was sent, on a connection whose server has sent no id yet: kept so
   * that its late reply is recognised (replies come in order) and not given to the next one. */
  dead?: boolean;
  timer: ReturnType<typeof setTimeout>;
  resolve: (data: any) => void;
  reject: (err: SwitchyardError) => void;
}

const OPEN = 1;

export class Switchyard {
  readonly url: string;
  state: State = "connecting";
  /** Set once `closed`: 1000 after `close()`, or the server's 4001 / 4002 / 1008. */
  closeCode?: number;
  closeReason?: string;
  /** From the last welcome frame. */
  clientId?: string;
  user?: string;
  /** Consecutive failures before a welcome frame (see StateInfo.failures). */
  failures = 0;

  private o: Required<Omit<Options, "token" | "getToken" | "WebSocket">> & Options;
  private token?: string;
  private ws?: WebSocketLike;
  private gen = 0;
  private welcomed = false;
  private idSeen = false;
  private kicked = false;
  private attempt = 0;
  private seq = 0;
  private lastRx = 0;
  private ping?: ReturnType<typeof setTimeout>;
  private pong?: ReturnType<typeof setTimeout>;
  private retry?: ReturnType<typeof setTimeout>;
  private stable?: ReturnType<typeof setTimeout>;
  private listeners = new Map<string, Set<Listener>>();
  private stateListeners = new Set<StateListener>();
  private waiters: [(w: Welcome) => void, (e: SwitchyardError) => void][] = [];
  private pending = new Map<string, Pending>();
  private queue: [text: string, id?: string][] = [];
  private joined = new Set<string>();

  constructor(url: string, options: Options = {}) {
    this.url = url;
    this.o = {
      reconnect: true,
      backoffBaseMs: 500,
      backoffCapMs: 30000,
      stableAfterMs: 10000,
      pingIntervalMs: 25000,
      pongTimeoutMs: 10000,
      requestTimeoutMs: 10000,
      queueLimit: 100,
      random: Math.random,
      ...options,
    };
    this.token = options.token;
    this.open();
  }

  /** Listen to every frame of `event` (`"*"`: every frame). Returns the unsubscribe function. */
  on(event: string, fn: Listener): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(fn);
    return () => this.off(event, fn);
  }

  off(event: string, fn: Listener): void {
    this.listeners.get(event)?.delete(fn);
  }

  /** Listen to state changes. Returns the unsubscribe function. */
  onState(fn: StateListener): () => void {
    this.stateListeners.add(fn);
    return () => this.stateListeners.delete(fn);
  }

  /** Resolves with the welcome once connected (at once if already); rejects once closed. */
  connected(): Promise<Welcome> {
    return new Promise((resolve, reject) => {
      if (this.state === "connected") resolve({ id: this.clientId!, user: this.user! });
      else if (this.state === "closed") reject(this.closedError());
      else this.waiters.push([resolve, reject]);
    });
  }

  /** The tags this client joined through `join` (joined again after every reconnect). */
  get tags(): string[] {
    return [...this.joined];
  }

  /** Fire and forget. While disconnected the frame waits in the queue; throws when the queue
   * is full or the client is closed. */
  send(event: string, data?: unknown): void {
    if (this.state === "closed") throw this.closedError();
    this.out(JSON.stringify({ event, data }));
  }

  /** Sends `event` with a fresh `id`; resolves with the reply's `data`, rejects with a
   * SwitchyardError on an error frame (its `kind` and `errorMsg`), a timeout, a drop while it
   * was in flight, or `close()`. */
  request<T = any>(event: string, data?: unknown, opts: { timeoutMs?: number } = {}): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.state === "closed") return reject(this.closedError());
      const id = String(++this.seq);
      const ms = opts.timeoutMs ?? this.o.requestTimeoutMs;
      const p: Pending = {
        event,
        sent: false,
        resolve,
        reject,
        timer: setTimeout(() => {
          if (p.sent && !this.idSeen) p.dead = true;
          else this.pending.delete(id);
          this.queue = this.queue.filter((q) => q[1] !== id);
          reject(new SwitchyardError("timeout", `${event}: no reply within ${ms} ms`));
        }, ms),
      };
      this.pending.set(id, p);
      try {
        this.out(JSON.stringify({ event, data, id }), id);
      } catch (e) {
        clearTimeout(p.timer);
        this.pending.delete(id);
        reject(e as SwitchyardError);
      }
    });
  }

  /** Joins a tag (built-in `join`); resolves with the client's tags. The tag is joined again
   * after every reconnect until `quit`, unless the join failed otherwise than by a drop or a
   * timeout (an error frame refused it, the queue was full, ...). */
  join(tag: string, opts?: { timeoutMs?: number }): Promise<string[]> {
    this.joined.add(tag);
    return this.request<string[]>("join", { id: tag }, opts).catch((e: SwitchyardError) => {
      if (e.kind !== "disconnected" && e.kind !== "timeout") this.joined.delete(tag);
      throw e;
    });
  }

  /** Leaves a tag (built-in `quit`); resolves with the client's remaining tags. */
  quit(tag: string, opts?: { timeoutMs?: number }): Promise<string[]> {
    this.joined.delete(tag);
    return this.request<string[]>("quit", { id: tag }, opts);
  }

  /** Closes for good: no reconnect, queued and pending frames are rejected. */
  close(): void {
    if (this.state !== "closed") this.finish(1000, "closed by the client");
  }

  // ---- connection lifecycle ------------------------------------------------------------------

  private async open(): Promise<void> {
    const gen = ++this.gen;
    this.welcomed = this.idSeen = this.kicked = false;
    this.setState("connecting", {});
    if (this.o.getToken) {
      try {
        this.token = await this.o.getToken();
      } catch (error) {
        if (gen === this.gen) this.dropped(undefined, "getToken failed", error);
        return;
      }
      if (gen !== this.gen) return;
    }
    let ws: WebSocketLike;
    try {
      const WS = this.o.WebSocket ?? (globalThis as any).WebSocket;
      if (!WS) throw new Error("no WebSocket implementation: pass { WebSocket } (e.g. from \"ws\")");
      ws = this.token ? new WS(this.url, ["switchyard", this.token]) : new WS(this.url);
    } catch (error) {
      this.dropped(undefined, "WebSocket constructor threw", error);
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
    ws.onerror = () => {}; // a close event follows
  }

  /** Forgets the current socket: its late events are ignored. */
  private detach(code?: number, reason?: string): void {
    this.gen++;
    const ws = this.ws;
    this.ws = undefined;
    for (const t of [this.ping, this.pong, this.stable, this.retry]) clearTimeout(t);
    this.ping = this.pong = this.stable = this.retry = undefined;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      ws.onerror = () => {}; // Node's ws emits an error when closed while connecting
      try {
        if (code) ws.close(code, reason);
        else ws.close();
      } catch {
        /* already closed */
      }
    }
  }

  /** The socket went away (or an attempt failed): reconnect, or stop for good. */
  private dropped(code: number | undefined, reason = "", error?: unknown): void {
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
    if ((code !== undefined && FATAL_CLOSE_CODES.includes(code)) || !this.o.reconnect) {
      return this.finish(code ?? 1006, reason);
    }
    if (!welcomed) this.failures++;
    const delayMs = backoffDelay(this.attempt, this.o.backoffBaseMs, this.o.backoffCapMs, this.o.random);
    this.attempt++;
    this.setState("disconnected", { code, reason, error, delayMs });
    this.retry = setTimeout(() => this.open(), delayMs);
  }

  private finish(code: number, reason: string): void {
    this.detach(code === 1000 ? 1000 : undefined, reason);
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

  private welcome(f: Frame): void {
    const w = (f.data || {}) as Welcome;
    this.clientId = w.id;
    this.user = w.user;
    this.welcomed = true;
    this.failures = 0;
    this.stable = setTimeout(() => (this.attempt = 0), this.o.stableAfterMs);
    this.state = "connected";
    for (const tag of this.joined) {
      this.request("join", { id: tag }).catch((e: SwitchyardError) => e.frame && this.joined.delete(tag));
    }
    const queued = this.queue;
    this.queue = [];
    for (const [text, id] of queued) this.out(text, id);
    this.notify({});
    for (const [resolve] of this.waiters.splice(0)) resolve({ id: w.id, user: w.user });
  }

  // ---- frames ---------------------------------------------------------------------------------

  private out(text: string, id?: string): void {
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

  private receive(raw: unknown): void {
    let f: Frame;
    try {
      f = JSON.parse(typeof raw === "string" ? raw : String(raw));
    } catch {
      return;
    }
    if (!f || typeof f.event !== "string") return;
    this.lastRx = Date.now();
    if (this.pong) {
      clearTimeout(this.pong);
      this.pong = undefined;
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
  private settle(f: Frame): void {
    let id: string | undefined;
    if (f.id != null) {
      this.idSeen = true;
      id = String(f.id);
    } else if (!this.idSeen) {
      for (const [k, p] of this.pending) {
        if (p.sent && p.event === f.event) {
          id = k;
          break;
        }
      }
    }
    const p = id !== undefined && this.pending.get(id);
    if (!p) return;
    clearTimeout(p.timer);
    this.pending.delete(id!);
    if (p.dead) return;
    if (f.code === 0) p.resolve(f.data);
    else p.reject(new SwitchyardError(f.kind || "error", f.errorMsg || `${f.event} failed`, f));
  }

  private emit(f: Frame): void {
    for (const key of [f.event, "*"]) {
      const set = this.listeners.get(key);
      if (set) for (const fn of [...set]) call(() => fn(f.data, f));
    }
  }

  private async refresh(): Promise<void> {
    try {
      const token = await this.o.getToken!();
      this.token = token;
      if (this.state !== "closed") this.send("refresh", { token });
    } catch {
      /* the next reconnect asks again */
    }
  }

  // ---- heartbeat ------------------------------------------------------------------------------

  private armPing(wait = this.o.pingIntervalMs): void {
    clearTimeout(this.ping);
    this.ping = setTimeout(() => {
      const idle = Date.now() - this.lastRx;
      if (idle < this.o.pingIntervalMs) return this.armPing(this.o.pingIntervalMs - idle);
      try {
        this.ws?.send('{"event":"ping"}');
      } catch {
        /* the close event follows */
      }
      this.pong = setTimeout(() => this.dropped(4000, "no answer to ping"), this.o.pongTimeoutMs);
    }, wait);
  }

  // ---- helpers --------------------------------------------------------------------------------

  private setState(state: State, info: Partial<StateInfo>): void {
    this.state = state;
    this.notify(info);
  }

  private notify(info: Partial<StateInfo>): void {
    const full: StateInfo = { failures: this.failures, attempt: this.attempt, ...info };
    for (const fn of [...this.stateListeners]) call(() => fn(this.state, full));
  }

  private closedError(): SwitchyardError {
    return new SwitchyardError("closed", `connection closed (${this.closeCode ?? "not open"}${this.closeReason ? ": " + this.closeReason : ""})`);
  }
}

/** A listener's exception must not stop the others nor the client: report it asynchronously. */
function call(fn: () => void): void {
  try {
    fn();
  } catch (e) {
    setTimeout(() => {
      throw e;
    }, 0);
  }
}

export default Switchyard;
