// Minimal JSON helpers for handlers: enough to read top-level fields of the
// request's `data` and to build replies by concatenation. They work on
// AssemblyScript strings (UTF-16), never trap on malformed input (they return
// null instead) and need no imports. Hand-written rather than json-as /
// assemblyscript-json to stay dependency-free and small.

const QUOTE: i32 = 0x22; // "
const BACKSLASH: i32 = 0x5c; // \
const LBRACE: i32 = 0x7b; // {
const RBRACE: i32 = 0x7d; // }
const LBRACKET: i32 = 0x5b; // [
const RBRACKET: i32 = 0x5d; // ]
const COLON: i32 = 0x3a; // :
const COMMA: i32 = 0x2c; // ,

// @ts-ignore: decorator
@inline function isWs(c: i32): bool {
  return c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d;
}

function skipWs(s: string, i: i32): i32 {
  const n = s.length;
  while (i < n && isWs(s.charCodeAt(i))) i++;
  return i;
}

function hexDigit(c: i32): i32 {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

// Index just after the string literal that starts at `i` (s[i] == '"'), or -1.
function scanString(s: string, i: i32): i32 {
  const n = s.length;
  i++;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (c == QUOTE) return i + 1;
    if (c == BACKSLASH) {
      i += 2;
      continue;
    }
    if (c < 0x20) return -1;
    i++;
  }
  return -1;
}

// Index just after the JSON value that starts at `i`, or -1. Iterative (an
// explicit bracket stack), so deeply nested input cannot exhaust the stack.
function scanValue(s: string, i: i32): i32 {
  const n = s.length;
  if (i >= n) return -1;
  const c0 = s.charCodeAt(i);
  if (c0 == QUOTE) return scanString(s, i);
  if (c0 == LBRACE || c0 == LBRACKET) {
    const stack = new Array<i32>();
    while (i < n) {
      const c = s.charCodeAt(i);
      if (c == QUOTE) {
        i = scanString(s, i);
        if (i < 0) return -1;
        continue;
      }
      if (c == LBRACE) {
        stack.push(RBRACE);
      } else if (c == LBRACKET) {
        stack.push(RBRACKET);
      } else if (c == RBRACE || c == RBRACKET) {
        if (stack.length == 0 || stack.pop() != c) return -1;
        if (stack.length == 0) return i + 1;
      }
      i++;
    }
    return -1;
  }
  // number, true, false, null
  const start = i;
  while (i < n) {
    const c = s.charCodeAt(i);
    const ok = (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) ||
      c == 0x2b || c == 0x2d || c == 0x2e;
    if (!ok) break;
    i++;
  }
  return i > start ? i : -1;
}

/**
 * Escapes `s` as a JSON string literal, quotes included:
 * `jsonString('say "hi"')` is `"say \"hi\""`.
 */
export function jsonString(s: string): string {
  const n = s.length;
  let plain = true;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c == QUOTE || c == BACKSLASH) {
      plain = false;
      break;
    }
  }
  if (plain) return "\"" + s + "\"";

  const parts = new Array<string>();
  parts.push("\"");
  let run = 0;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c != QUOTE && c != BACKSLASH) continue;
    if (i > run) parts.push(s.substring(run, i));
    run = i + 1;
    if (c == QUOTE) parts.push("\\\"");
    else if (c == BACKSLASH) parts.push("\\\\");
    else if (c == 0x0a) parts.push("\\n");
    else if (c == 0x0d) parts.push("\\r");
    else if (c == 0x09) parts.push("\\t");
    else if (c == 0x08) parts.push("\\b");
    else if (c == 0x0c) parts.push("\\f");
    else parts.push((c < 0x10 ? "\\u000" : "\\u001") + "0123456789abcdef".charAt(c & 0xf));
  }
  if (n > run) parts.push(s.substring(run, n));
  parts.push("\"");
  return parts.join("");
}

/**
 * Decodes a JSON string literal (quotes included, surrounding whitespace
 * allowed) into its value. Returns null when `raw` is not exactly one valid
 * JSON string.
 */
export function jsonDecodeString(raw: string): string | null {
  const n = raw.length;
  const start = skipWs(raw, 0);
  if (start >= n || raw.charCodeAt(start) != QUOTE) return null;
  const end = scanString(raw, start);
  if (end < 0 || skipWs(raw, end) != n) return null;
  return decodeBody(raw, start + 1, end - 1);
}

// Decodes the characters of a string literal between its quotes, [from, to).
function decodeBody(s: string, from: i32, to: i32): string | null {
  let hasEscape = false;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20) return null;
    if (c == BACKSLASH) hasEscape = true;
  }
  if (!hasEscape) return s.substring(from, to);

  const parts = new Array<string>();
  let run = from;
  let i = from;
  while (i < to) {
    const c = s.charCodeAt(i);
    if (c != BACKSLASH) {
      i++;
      continue;
    }
    if (i > run) parts.push(s.substring(run, i));
    if (i + 1 >= to) return null;
    const e = s.charCodeAt(i + 1);
    let len = 2;
    if (e == QUOTE) parts.push("\"");
    else if (e == BACKSLASH) parts.push("\\");
    else if (e == 0x2f) parts.push("/");
    else if (e == 0x62) parts.push("\b");
    else if (e == 0x66) parts.push("\f");
    else if (e == 0x6e) parts.push("\n");
    else if (e == 0x72) parts.push("\r");
    else if (e == 0x74) parts.push("\t");
    else if (e == 0x75) { // \uXXXX: one UTF-16 code unit; surrogate pairs arrive as two escapes
      if (i + 6 > to) return null;
      let unit = 0;
      for (let k = 2; k < 6; k++) {
        const h = hexDigit(s.charCodeAt(i + k));
        if (h < 0) return null;
        unit = (unit << 4) | h;
      }
      parts.push(String.fromCharCode(unit));
      len = 6;
    } else {
      return null;
    }
    i += len;
    run = i;
  }
  if (to > run) parts.push(s.substring(run, to));
  return parts.join("");
}

/** True when `raw` (surrounding whitespace allowed) is a JSON object. */
export function jsonIsObject(raw: string): bool {
  const i = skipWs(raw, 0);
  if (i >= raw.length || raw.charCodeAt(i) != LBRACE) return false;
  const end = scanValue(raw, i);
  return end > 0 && skipWs(raw, end) == raw.length;
}

/** True when `raw` (surrounding whitespace allowed) is a JSON string. */
export function jsonIsString(raw: string): bool {
  return jsonDecodeString(raw) !== null;
}

/**
 * The raw JSON text of the top-level field `key` of the object `raw`
 * (`jsonRawField('{"a": [1, 2]}', "a")` is `[1, 2]`). Returns null when `raw`
 * is not an object or has no such field. Keys are compared after unescaping;
 * with a duplicated key the last one wins (as in JavaScript and serde_json).
 */
export function jsonRawField(raw: string, key: string): string | null {
  const n = raw.length;
  let i = skipWs(raw, 0);
  if (i >= n || raw.charCodeAt(i) != LBRACE) return null;
  i = skipWs(raw, i + 1);
  if (i < n && raw.charCodeAt(i) == RBRACE) return null; // {}
  let found: string | null = null;
  while (true) {
    if (i >= n || raw.charCodeAt(i) != QUOTE) return null;
    const keyEnd = scanString(raw, i);
    if (keyEnd < 0) return null;
    const k = decodeBody(raw, i + 1, keyEnd - 1);
    if (k === null) return null;
    i = skipWs(raw, keyEnd);
    if (i >= n || raw.charCodeAt(i) != COLON) return null;
    i = skipWs(raw, i + 1);
    const valueEnd = scanValue(raw, i);
    if (valueEnd < 0) return null;
    if (k == key) found = raw.substring(i, valueEnd);
    i = skipWs(raw, valueEnd);
    if (i >= n) return null;
    const c = raw.charCodeAt(i);
    if (c == COMMA) {
      i = skipWs(raw, i + 1);
      continue;
    }
    if (c == RBRACE) break;
    return null;
  }
  if (skipWs(raw, i + 1) != n) return null;
  return found;
}

/**
 * The decoded value of the top-level field `key` of the object `raw` when that
 * field is a JSON string; null otherwise (not an object, no such field, or the
 * field is not a string).
 */
export function jsonStringField(raw: string, key: string): string | null {
  const v = jsonRawField(raw, key);
  if (v === null) return null;
  return jsonDecodeString(v);
}
