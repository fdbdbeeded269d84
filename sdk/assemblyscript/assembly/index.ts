// Switchyard handler SDK for AssemblyScript — handler ABI v1 (docs/ABI.md).
//
// A handler module's ENTRY file must re-export the two ABI exports, because
// AssemblyScript only exports what the entry file itself exports:
//
//   export { alloc, switchyard_abi_v1 } from "switchyard-sdk-as";
//
// (plus `switchyard_reset` for a module served with instance = "reuse", which
// needs --runtime minimal or incremental instead of stub: see switchyard_reset).
//
// Build with the stub runtime and this SDK's abort, so that the only imports
// are from the module "switchyard" (the host refuses any other import):
//
//   asc handler.ts -o handler.wasm -O3 --noAssert --runtime stub \
//     --use 'abort=~lib/switchyard-sdk-as/assembly/index/switchyardAbort'
//
// See ../README.md for a complete example.

import { Runtime } from "~lib/shared/runtime";

export { jsonString, jsonDecodeString, jsonIsObject, jsonIsString, jsonRawField, jsonStringField } from "./json";

// ---------------------------------------------------------------------------
// Status codes (ABI.md, "Status codes"). Host calls return >= 0 on success.
// ---------------------------------------------------------------------------

export const OK: i32 = 0;
export const ERR_BAD_POINTER: i32 = -1;
export const ERR_BAD_UTF8: i32 = -2;
export const ERR_BAD_JSON: i32 = -3;
export const ERR_DENIED: i32 = -4;
export const ERR_LIMIT: i32 = -5;
export const ERR_INVALID: i32 = -6;

/** Returned by the SDK's own helpers (never by the host) for a malformed request. */
export const STATUS_BAD_REQUEST: i32 = 1;

// Log levels for `log`.
export const LOG_TRACE: i32 = 0;
export const LOG_DEBUG: i32 = 1;
export const LOG_INFO: i32 = 2;
export const LOG_WARN: i32 = 3;
export const LOG_ERROR: i32 = 4;

/** The handler ABI version this SDK speaks. */
export const ABI_VERSION: u32 = 1;

// ---------------------------------------------------------------------------
// Raw host imports, module "switchyard". Every pointer is an offset into this
// module's exported memory; every string is UTF-8.
//
// AssemblyScript only emits an import that is actually called, so a module
// imports just the functions it uses: an echo handler that never calls
// `join_tag` does not need a `tags` grant in the manifest.
// ---------------------------------------------------------------------------

export namespace host {
  // Replies to the calling client.
  @external("switchyard", "send_success")
  export declare function send_success(event_ptr: usize, event_len: i32, data_ptr: usize, data_len: i32): i32;
  @external("switchyard", "send_error")
  export declare function send_error(event_ptr: usize, event_len: i32, msg_ptr: usize, msg_len: i32): i32;

  // Sends to others (return the number of connections queued to).
  @external("switchyard", "send_to_client")
  export declare function send_to_client(client_ptr: usize, client_len: i32, event_ptr: usize, event_len: i32, data_ptr: usize, data_len: i32): i32;
  @external("switchyard", "send_to_user")
  export declare function send_to_user(user_ptr: usize, user_len: i32, event_ptr: usize, event_len: i32, data_ptr: usize, data_len: i32): i32;
  @external("switchyard", "send_to_tag")
  export declare function send_to_tag(tag_ptr: usize, tag_len: i32, event_ptr: usize, event_len: i32, data_ptr: usize, data_len: i32): i32;
  @external("switchyard", "send_to_all")
  export declare function send_to_all(event_ptr: usize, event_len: i32, data_ptr: usize, data_len: i32): i32;

  // Tags of the calling client.
  @external("switchyard", "join_tag")
  export declare function join_tag(tag_ptr: usize, tag_len: i32): i32;
  @external("switchyard", "quit_tag")
  export declare function quit_tag(tag_ptr: usize, tag_len: i32): i32;
  @external("switchyard", "tag_members")
  export declare function tag_members(tag_ptr: usize, tag_len: i32, buf_ptr: usize, buf_cap: i32): i32;

  // Getters (return the full length; nothing written when it exceeds buf_cap) and logging.
  @external("switchyard", "client_id")
  export declare function client_id(buf_ptr: usize, buf_cap: i32): i32;
  @external("switchyard", "user_id")
  export declare function user_id(buf_ptr: usize, buf_cap: i32): i32;
  @external("switchyard", "claims")
  export declare function claims(buf_ptr: usize, buf_cap: i32): i32;
  @external("switchyard", "log")
  export declare function log(level: i32, msg_ptr: usize, msg_len: i32): i32;
}

// ---------------------------------------------------------------------------
// Guest exports required by the ABI. Re-export both from your entry file.
// ---------------------------------------------------------------------------

/**
 * The ABI-version marker. Its presence says "I speak ABI v1"; it is never called.
 */
export function switchyard_abi_v1(): void {}

/**
 * `alloc(len) -> ptr`: the host calls it once per event and copies the request there.
 *
 * The block comes from `heap.alloc`, i.e. the runtime's raw allocator
 * (`__alloc`), NOT from `__new`: it carries no object header, so no garbage
 * collector ever traces or frees it — with the `stub` runtime (recommended for
 * the default fresh instances: a bump allocator that never frees) and equally
 * with `minimal`/`incremental` (a TLSF block is only reused after an explicit
 * `heap.free`, which only `switchyard_reset` calls, after the event). No pinning
 * is needed, and the request stays valid for the whole call.
 *
 * Returns 0 when it cannot allocate (the host then fails the event with
 * "memory limit"). With the stub runtime this is checked up front: the memory
 * is grown here first, so the runtime's own grow-or-trap path is never taken.
 * With the other runtimes an out-of-memory inside `heap.alloc` traps instead.
 */
export function alloc(len: i32): i32 {
  if (len < 0 || <usize>len > MAX_ALLOC) return 0;
  if (ASC_RUNTIME == Runtime.Stub) {
    // Find the stub's bump pointer: allocating and freeing the most recent
    // block rewinds it, so this costs nothing.
    const probe = heap.alloc(0);
    heap.free(probe);
    // `probe` is where the next block's payload starts; its aligned end is at
    // most probe + len + 16.
    const end: u64 = <u64>probe + <u64>len + 16;
    const have: u64 = <u64>memory.size() << 16;
    if (end > have) {
      const pages = <i32>((end - have + 0xffff) >> 16);
      if (memory.grow(pages) < 0) return 0;
    }
    return <i32>heap.alloc(<usize>len);
  }
  // minimal / incremental: chain the block into `pendingBlocks` (a link word in
  // a 16-byte header keeps the payload 16-aligned) so that `switchyard_reset`
  // can free it.
  const block = heap.alloc(<usize>len + BLOCK_LINK);
  store<usize>(block, pendingBlocks);
  pendingBlocks = block;
  return <i32>(block + BLOCK_LINK);
}

// Blocks handed out by `alloc` since the last `switchyard_reset` (minimal and
// incremental runtimes only): a list linked through each block's first word.
let pendingBlocks: usize = 0;
// @ts-ignore: decorator
@inline const BLOCK_LINK: usize = 16;

/**
 * `switchyard_reset()`: the host calls it after every event that returned a
 * status when the module's manifest entry says `instance = "reuse"` (the
 * instance is then kept for later events instead of being thrown away). It
 * frees the request blocks `alloc` handed out and runs a full garbage
 * collection: every object no global references any more is freed, and what
 * globals reference survives, for later events and users alike.
 *
 * Only for `--runtime minimal` (recommended with reuse) or `incremental`, which
 * have a collector. Re-exporting it from a module built with `--runtime stub`
 * is a compile error: the stub never frees, and rewinding its bump pointer
 * (`__reset`) would hand out again the memory of objects that globals, or the
 * module's top-level initialisers, still hold.
 */
export function switchyard_reset(): void {
  if (ASC_RUNTIME == Runtime.Stub) {
    ERROR("switchyard_reset needs --runtime minimal (or incremental): the stub runtime cannot free memory safely; use the default instance = \"fresh\" with --runtime stub");
  } else {
    let block = pendingBlocks;
    pendingBlocks = 0;
    while (block != 0) {
      const next = load<usize>(block);
      heap.free(block);
      block = next;
    }
    // No handler is running, so nothing lives on the stack: globals are the
    // only roots, which is when the minimal runtime's collector may run.
    __collect();
  }
}

// heap.alloc's own limit (BLOCK_MAXSIZE = 1 GiB minus the block header).
// @ts-ignore: decorator
@inline const MAX_ALLOC: usize = (1 << 30) - 64;

// ---------------------------------------------------------------------------
// Abort: route AssemblyScript's `abort` (failed bounds checks, assertions,
// `throw`) to the host log, then trap. Select it with
//   --use 'abort=~lib/switchyard-sdk-as/assembly/index/switchyardAbort'
// so the module does not import `env.abort` (which the host would refuse).
// The host answers a trap with {"code":-1,"errorMsg":"handler trapped"}.
// ---------------------------------------------------------------------------

let aborting = false;

export function switchyardAbort(message: string | null, fileName: string | null, lineNumber: u32, columnNumber: u32): void {
  if (!aborting) {
    aborting = true; // an abort while reporting an abort (e.g. out of memory) just traps
    let text = "abort: " + (message !== null ? message : "(no message)");
    if (fileName !== null) {
      text += " at " + fileName + ":" + lineNumber.toString() + ":" + columnNumber.toString();
    }
    log(LOG_ERROR, text);
  }
  unreachable();
}

// ---------------------------------------------------------------------------
// UTF-8 helpers
// ---------------------------------------------------------------------------

/**
 * Encodes a string as UTF-8. Unpaired surrogates become U+FFFD, so the host
 * always receives valid UTF-8 (it answers ERR_BAD_UTF8 otherwise).
 */
export function utf8Encode(s: string): ArrayBuffer {
  return String.UTF8.encode(s, false, String.UTF8.ErrorMode.REPLACE);
}

/** Decodes `len` UTF-8 bytes at `ptr` into a string. */
export function utf8Decode(ptr: usize, len: usize): string {
  if (len == 0) return "";
  return String.UTF8.decodeUnsafe(ptr, len, false);
}

// @ts-ignore: decorator
@inline function ptrOf(buf: ArrayBuffer): usize {
  return changetype<usize>(buf);
}

// @ts-ignore: decorator
@inline function lenOf(buf: ArrayBuffer): i32 {
  return buf.byteLength;
}

// ---------------------------------------------------------------------------
// The request
// ---------------------------------------------------------------------------

/**
 * One event, parsed from the request the host wrote at `(ptr, len)`:
 *
 *   0  u32 abi version (= 1)
 *   4  u32 event_len     8  u32 data_len
 *   12 u32 client_id_len 16 u32 user_id_len
 *   20 event | data | client_id | user_id   (UTF-8, no padding)
 */
export class Request {
  /** The client's "event", e.g. "chat/join". */
  event: string = "";
  /** The raw JSON text of the frame's "data" field ("null" when absent). */
  data: string = "null";
  /** The calling client's connection id. */
  clientId: string = "";
  /** The calling client's user id ("" for an anonymous guest). */
  userId: string = "";

  /**
   * Parses the request a handler export received. Returns null when the
   * layout is malformed (wrong version, lengths that do not add up to `len`);
   * return a non-zero status (e.g. STATUS_BAD_REQUEST) in that case.
   */
  static parse(ptr: i32, len: i32): Request | null {
    if (ptr <= 0 || len < 20) return null;
    const base = <usize>ptr;
    const total = <u64><u32>len;
    if (<u64>base + total > (<u64>memory.size() << 16)) return null;
    if (load<u32>(base) != ABI_VERSION) return null;
    const eventLen = load<u32>(base, 4);
    const dataLen = load<u32>(base, 8);
    const clientLen = load<u32>(base, 12);
    const userLen = load<u32>(base, 16);
    const sum: u64 = 20 + <u64>eventLen + <u64>dataLen + <u64>clientLen + <u64>userLen;
    if (sum != total) return null;

    const req = new Request();
    let p = base + 20;
    req.event = utf8Decode(p, eventLen);
    p += eventLen;
    req.data = dataLen == 0 ? "null" : utf8Decode(p, dataLen);
    p += dataLen;
    req.clientId = utf8Decode(p, clientLen);
    p += clientLen;
    req.userId = utf8Decode(p, userLen);
    return req;
  }
}

// ---------------------------------------------------------------------------
// Safe wrappers. Each returns the host's status (>= 0 success: a count or a
// length; < 0 one of the ERR_* codes) and records it for `lastStatus()`.
// ---------------------------------------------------------------------------

let _lastStatus: i32 = 0;

/** The status the most recent wrapper call got from the host. */
export function lastStatus(): i32 {
  return _lastStatus;
}

// @ts-ignore: decorator
@inline function record(status: i32): i32 {
  _lastStatus = status;
  return status;
}

/**
 * Replies `{"event":E,"code":0,"data":D,...}` to the calling client. `rawJson`
 * must be one valid JSON value (ERR_BAD_JSON otherwise); pass null or "" to
 * omit "data". Returns 0.
 */
export function sendSuccess(event: string, rawJson: string | null = null): i32 {
  const ev = utf8Encode(event);
  if (rawJson === null || rawJson.length == 0) {
    return record(host.send_success(ptrOf(ev), lenOf(ev), 0, 0));
  }
  const d = utf8Encode(rawJson);
  return record(host.send_success(ptrOf(ev), lenOf(ev), ptrOf(d), lenOf(d)));
}

/** Replies `{"event":E,"code":-1,"errorMsg":M,...}` to the calling client (M is plain text). Returns 0. */
export function sendError(event: string, message: string): i32 {
  const ev = utf8Encode(event);
  const m = utf8Encode(message);
  return record(host.send_error(ptrOf(ev), lenOf(ev), ptrOf(m), lenOf(m)));
}

/** Sends to one connection; returns the number of connections queued to (0 or 1). Needs capability `send_to_client`. */
export function sendToClient(clientId: string, event: string, rawJson: string): i32 {
  const c = utf8Encode(clientId);
  const ev = utf8Encode(event);
  const d = utf8Encode(rawJson);
  return record(host.send_to_client(ptrOf(c), lenOf(c), ptrOf(ev), lenOf(ev), ptrOf(d), lenOf(d)));
}

/** Sends to every connection of a user; returns how many. Needs capability `send_to_user`. */
export function sendToUser(userId: string, event: string, rawJson: string): i32 {
  const u = utf8Encode(userId);
  const ev = utf8Encode(event);
  const d = utf8Encode(rawJson);
  return record(host.send_to_user(ptrOf(u), lenOf(u), ptrOf(ev), lenOf(ev), ptrOf(d), lenOf(d)));
}

/** Sends to every connection in a tag; returns how many. The tag must match the module's `tags`. */
export function sendToTag(tag: string, event: string, rawJson: string): i32 {
  const t = utf8Encode(tag);
  const ev = utf8Encode(event);
  const d = utf8Encode(rawJson);
  return record(host.send_to_tag(ptrOf(t), lenOf(t), ptrOf(ev), lenOf(ev), ptrOf(d), lenOf(d)));
}

/** Sends to every connection; returns how many. Needs capability `send_to_all`. */
export function sendToAll(event: string, rawJson: string): i32 {
  const ev = utf8Encode(event);
  const d = utf8Encode(rawJson);
  return record(host.send_to_all(ptrOf(ev), lenOf(ev), ptrOf(d), lenOf(d)));
}

/** Adds the calling client to a tag (idempotent). Returns 0, or ERR_DENIED when the manifest does not grant it. */
export function joinTag(tag: string): i32 {
  const t = utf8Encode(tag);
  return record(host.join_tag(ptrOf(t), lenOf(t)));
}

/** Removes the calling client from a tag. Returns 0, or ERR_DENIED when the manifest does not grant it. */
export function quitTag(tag: string): i32 {
  const t = utf8Encode(tag);
  return record(host.quit_tag(ptrOf(t), lenOf(t)));
}

// Getter protocol: the host returns the full length and writes nothing when it
// does not fit; allocate that much and ask again. The value may have grown in
// between (tag members change concurrently), so retry a few times.
//
// Each getter has its own loop on purpose: one shared function dispatching to
// all four imports would make every module import all four, and the host
// refuses a module that imports `claims` or `tag_members` without the grant.

const GETTER_FIRST_CAP: i32 = 256;
const GETTER_ATTEMPTS: i32 = 8;

// @ts-ignore: decorator
@inline function finishGetter(n: i32, buf: ArrayBuffer): string | null {
  _lastStatus = n;
  if (n < 0) return null;
  return utf8Decode(ptrOf(buf), <usize>n);
}

/**
 * The distinct user ids online in a tag, as the raw JSON array the host
 * returns (sorted ascending, e.g. `["alice","bob"]`). Returns null on failure;
 * `lastStatus()` then says why (ERR_DENIED when the tag is not granted).
 */
export function tagMembers(tag: string): string | null {
  const t = utf8Encode(tag);
  let cap = GETTER_FIRST_CAP;
  for (let i = 0; i < GETTER_ATTEMPTS; i++) {
    const buf = new ArrayBuffer(cap);
    const n = host.tag_members(ptrOf(t), lenOf(t), ptrOf(buf), cap);
    if (n <= cap) return finishGetter(n, buf);
    cap = n;
  }
  _lastStatus = ERR_LIMIT;
  return null;
}

/** The calling client's connection id ("" if the host call failed). */
export function clientId(): string {
  let cap = GETTER_FIRST_CAP;
  for (let i = 0; i < GETTER_ATTEMPTS; i++) {
    const buf = new ArrayBuffer(cap);
    const n = host.client_id(ptrOf(buf), cap);
    if (n <= cap) {
      const s = finishGetter(n, buf);
      return s !== null ? s : "";
    }
    cap = n;
  }
  _lastStatus = ERR_LIMIT;
  return "";
}

/** The calling client's user id ("" for an anonymous guest, or if the host call failed). */
export function userId(): string {
  let cap = GETTER_FIRST_CAP;
  for (let i = 0; i < GETTER_ATTEMPTS; i++) {
    const buf = new ArrayBuffer(cap);
    const n = host.user_id(ptrOf(buf), cap);
    if (n <= cap) {
      const s = finishGetter(n, buf);
      return s !== null ? s : "";
    }
    cap = n;
  }
  _lastStatus = ERR_LIMIT;
  return "";
}

/**
 * The verified JWT claims as a raw JSON object (`{}` for a guest), or null on
 * failure. Using it imports `claims`, which needs capability `claims`.
 */
export function claims(): string | null {
  let cap = GETTER_FIRST_CAP;
  for (let i = 0; i < GETTER_ATTEMPTS; i++) {
    const buf = new ArrayBuffer(cap);
    const n = host.claims(ptrOf(buf), cap);
    if (n <= cap) return finishGetter(n, buf);
    cap = n;
  }
  _lastStatus = ERR_LIMIT;
  return null;
}

/** Logs through the host (level LOG_TRACE..LOG_ERROR). Returns 0, or ERR_INVALID for an unknown level. */
export function log(level: i32, message: string): i32 {
  const m = utf8Encode(message);
  return record(host.log(level, ptrOf(m), lenOf(m)));
}
