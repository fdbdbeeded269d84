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
export declare class SwitchyardError extends Error {
    kind: string;
    frame?: Frame;
    constructor(kind: string, message: string, frame?: Frame);
}
/** Close codes after which the client does not come back: kicked, token expired, policy. */
export declare const FATAL_CLOSE_CODES: readonly number[];
/** Exponential backoff with full jitter: random(0, min(cap, base * 2^attempt)). */
export declare function backoffDelay(attempt: number, baseMs: number, capMs: number, random?: () => number): number;
type Listener = (data: any, frame: Frame) => void;
type StateListener = (state: State, info: StateInfo) => void;
export declare class Switchyard {
    readonly url: string;
    state: State;
    /** Set once `closed`: 1000 after `close()`, or the server's 4001 / 4002 / 1008. */
    closeCode?: number;
    closeReason?: string;
    /** From the last welcome frame. */
    clientId?: string;
    user?: string;
    /** Consecutive failures before a welcome frame (see StateInfo.failures). */
    failures: number;
    private o;
    private token?;
    private ws?;
    private gen;
    private welcomed;
    private idSeen;
    private kicked;
    private attempt;
    private seq;
    private lastRx;
    private ping?;
    private pong?;
    private retry?;
    private stable?;
    private listeners;
    private stateListeners;
    private waiters;
    private pending;
    private queue;
    private joined;
    constructor(url: string, options?: Options);
    /** Listen to every frame of `event` (`"*"`: every frame). Returns the unsubscribe function. */
    on(event: string, fn: Listener): () => void;
    off(event: string, fn: Listener): void;
    /** Listen to state changes. Returns the unsubscribe function. */
    onState(fn: StateListener): () => void;
    /** Resolves with the welcome once connected (at once if already); rejects once closed. */
    connected(): Promise<Welcome>;
    /** The tags this client joined through `join` (joined again after every reconnect). */
    get tags(): string[];
    /** Fire and forget. While disconnected the frame waits in the queue; throws when the queue
     * is full or the client is closed. */
    send(event: string, data?: unknown): void;
    /** Sends `event` with a fresh `id`; resolves with the reply's `data`, rejects with a
     * SwitchyardError on an error frame (its `kind` and `errorMsg`), a timeout, a drop while it
     * was in flight, or `close()`. */
    request<T = any>(event: string, data?: unknown, opts?: {
        timeoutMs?: number;
    }): Promise<T>;
    /** Joins a tag (built-in `join`); resolves with the client's tags. The tag is joined again
     * after every reconnect until `quit`, unless the join failed otherwise than by a drop or a
     * timeout (an error frame refused it, the queue was full, ...). */
    join(tag: string, opts?: {
        timeoutMs?: number;
    }): Promise<string[]>;
    /** Leaves a tag (built-in `quit`); resolves with the client's remaining tags. */
    quit(tag: string, opts?: {
        timeoutMs?: number;
    }): Promise<string[]>;
    /** Closes for good: no reconnect, queued and pending frames are rejected. */
    close(): void;
    private open;
    /** Forgets the current socket: its late events are ignored. */
    private detach;
    /** The socket went away (or an attempt failed): reconnect, or stop for good. */
    private dropped;
    private finish;
    private welcome;
    private out;
    private receive;
    /** Settles the request this frame answers: by `id`, or, while the server has sent no id on
     * this connection (a server without id support), the oldest in-flight one of the same event. */
    private settle;
    private emit;
    private refresh;
    private armPing;
    private setState;
    private notify;
    private closedError;
}
export default Switchyard;
