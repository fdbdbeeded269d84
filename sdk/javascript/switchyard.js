// Guest SDK for Switchyard handler components written in JavaScript (componentize-js).
//
// Build with componentize-js against a world of the `switchyard:handler@1.0.0` package
// (`wit/handler.wit` in the Switchyard repository; the contract is docs/ABI.md, "The
// component ABI"). componentize-js generates the low-level bindings: the WIT interfaces are
// importable as `switchyard:handler/<interface>@1.0.0`. This module wraps the always-granted
// `host` interface; `tags.js`, `send-to-user.js`, `send-to-client.js`, `send-to-all.js` and
// `claims.js` beside it wrap the optional ones (import only those your world imports):
//
// * `handlers({ name(req) { ... }, ... })` builds the `handler` export; export it from your
//   entry module as `export const handler = handlers({...})`. The keys are what a manifest
//   route's `export` names.
// * a handler receives a `Request` (`event`, `data` as raw JSON text, `json()`, `clientId`,
//   `userId`) and returns nothing (success) or throws `new HandlerError(n)` (the client gets
//   `handler failed with status n`);
// * the host functions take and return JS values (JSON in and out); each also has a `Raw`
//   form taking JSON text. A failed host call throws a `SwitchyardError` subclass (`Denied`,
//   `Limit`, ...) whose `code` is ABI v1's negative status; left uncaught in a handler, it
//   fails the event with that code.

import {
  sendSuccess as hostSendSuccess,
  sendError as hostSendError,
  clientId as hostClientId,
  userId as hostUserId,
  log as hostLog,
} from 'switchyard:handler/host@1.0.0';

// ---------------------------------------------------------------------------------------------
// Errors

/** A failed host call: one of ABI v1's negative status codes (`code`, `abiName`). */
export class SwitchyardError extends Error {
  constructor(code, abiName, what) {
    super(`${what} (${abiName}, ${code})`);
    this.name = 'SwitchyardError';
    this.code = code;
    this.abiName = abiName;
  }
}

function errorClass(name, code, abiName, what) {
  const cls = class extends SwitchyardError {
    constructor() {
      super(code, abiName, what);
      this.name = name;
    }
  };
  Object.defineProperty(cls, 'name', { value: name });
  cls.code = code;
  return cls;
}

/** ERR_BAD_POINTER (-1): never thrown for a component (kept for the numbering). */
export const BadPointer = errorClass('BadPointer', -1, 'ERR_BAD_POINTER', 'pointer or length outside guest memory');
/** ERR_BAD_UTF8 (-2): never thrown by the host for a component. */
export const BadUtf8 = errorClass('BadUtf8', -2, 'ERR_BAD_UTF8', 'string is not valid UTF-8');
/** ERR_BAD_JSON (-3): a `data` argument was not JSON (or could not be serialised). */
export const BadJson = errorClass('BadJson', -3, 'ERR_BAD_JSON', 'not valid JSON');
/** ERR_DENIED (-4): not granted by the module's manifest entry (a tag outside `tags`). */
export const Denied = errorClass('Denied', -4, 'ERR_DENIED', "not granted by the module's manifest entry");
/** ERR_LIMIT (-5): this call's send budget is used up, or the client is in too many tags. */
export const Limit = errorClass('Limit', -5, 'ERR_LIMIT', 'send budget of this call used up');
/** ERR_INVALID (-6): another invalid argument (an empty tag, ...). */
export const Invalid = errorClass('Invalid', -6, 'ERR_INVALID', 'invalid argument');

// The WIT enum `status` as componentize-js passes it (a string), to its error class.
const BY_STATUS = {
  'bad-pointer': BadPointer,
  'bad-utf8': BadUtf8,
  'bad-json': BadJson,
  denied: Denied,
  limit: Limit,
  invalid: Invalid,
};

/** Fails the event with `status` (never 0: 0 becomes 1). */
export class HandlerError extends Error {
  constructor(status = 1) {
    status = Number(status) | 0 || 1;
    super(`handler failed with status ${status}`);
    this.name = 'HandlerError';
    this.status = status;
  }
}

/**
 * Calls a generated binding, turning the `err(status)` it throws into a `SwitchyardError`.
 * Exported for the optional-interface modules; handlers need not use it.
 */
export function hostCall(fn, ...args) {
  try {
    return fn(...args);
  } catch (e) {
    const status = e !== null && typeof e === 'object' && 'payload' in e ? e.payload : e;
    const cls = typeof status === 'string' ? BY_STATUS[status] : undefined;
    if (cls !== undefined) throw new cls();
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// JSON

/** `value` as JSON text. Throws `BadJson` for what JSON cannot represent (undefined, a BigInt, a cycle). */
export function toJson(value) {
  let text;
  try {
    text = JSON.stringify(value);
  } catch {
    throw new BadJson();
  }
  if (text === undefined) throw new BadJson();
  return text;
}

// ---------------------------------------------------------------------------------------------
// The request

const UNSET = Symbol('unset');

/** The event being handled. */
export class Request {
  constructor(event, data = 'null', clientId = '', userId = '') {
    /** The frame's event name. */
    this.event = event;
    /** The raw JSON text of the frame's `data` (`"null"` when absent). */
    this.data = data;
    /** The calling connection's id. */
    this.clientId = clientId;
    /** The calling client's user id (`""` for an anonymous guest). */
    this.userId = userId;
    this._json = UNSET;
  }

  /** `data` parsed (once, then cached). Throws `BadJson` if it is not JSON. */
  json() {
    if (this._json === UNSET) {
      try {
        this._json = JSON.parse(this.data);
      } catch {
        throw new BadJson();
      }
    }
    return this._json;
  }

  /** True for an anonymous guest (no user id). */
  get isGuest() {
    return this.userId === '';
  }
}

// ---------------------------------------------------------------------------------------------
// The exported interface

/**
 * The `switchyard:handler/handler` export for a map of handlers: `{ exportName(req) {...} }`.
 * Export it from your entry module: `export const handler = handlers({ ... })`.
 */
export function handlers(map) {
  const table = new Map();
  for (const [name, fn] of Object.entries(map)) {
    if (typeof fn !== 'function') throw new TypeError(`switchyard: handler ${name} is not a function`);
    table.set(name, fn);
  }
  const names = [...table.keys()];
  return {
    exports() {
      return names;
    },
    handle(name, req) {
      const fn = table.get(name);
      if (fn === undefined) throw Invalid.code;
      try {
        fn(new Request(req.event, req.data, req.clientId, req.userId));
      } catch (e) {
        if (e instanceof HandlerError) throw e.status;
        if (e instanceof SwitchyardError) throw e.code || 1;
        // Anything else is a bug in the handler. componentize-js would turn it into err(0)
        // and drop it: log it with its stack instead, and fail the event with status 1.
        hostLog('error', `uncaught exception in handler ${name}: ${describe(e)}`);
        throw 1;
      }
    },
  };
}

function describe(e) {
  if (e instanceof Error) return e.stack ? `${e}\n${e.stack}` : String(e);
  try {
    return typeof e === 'string' ? e : JSON.stringify(e) ?? String(e);
  } catch {
    return String(e);
  }
}

// ---------------------------------------------------------------------------------------------
// Replies to the calling client (interface `host`, always granted)

/**
 * Sends `{"event":event,"code":0,"data":<rawJson>}` to the caller. `rawJson` is JSON text
 * passed through (`BadJson` if invalid); `""` omits `data`.
 */
export function sendSuccessRaw(event, rawJson) {
  hostCall(hostSendSuccess, event, rawJson);
}

/** Sends `{"event":event,"code":0,"data":<data as JSON>}` to the caller. */
export function sendSuccess(event, data) {
  hostCall(hostSendSuccess, event, toJson(data));
}

/** Sends `{"event":event,"code":-1,"errorMsg":msg}` to the caller (`msg`: plain text). */
export function sendError(event, msg) {
  hostCall(hostSendError, event, String(msg));
}

/** The calling connection's id. */
export function clientId() {
  return hostClientId();
}

/** The calling client's user id (`""` for a guest). */
export function userId() {
  return hostUserId();
}

/** Log levels for `log`. */
export const Level = Object.freeze({ TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' });

/** Logs `msg` through the host's log, prefixed with the module name. */
export function log(level, msg) {
  hostLog(level, String(msg));
}
export const trace = (msg) => hostLog('trace', String(msg));
export const debug = (msg) => hostLog('debug', String(msg));
export const info = (msg) => hostLog('info', String(msg));
export const warn = (msg) => hostLog('warn', String(msg));
export const error = (msg) => hostLog('error', String(msg));
