/*
 * switchyard.h - C SDK for Switchyard handler ABI v1 (see docs/ABI.md).
 *
 * Single header, C11, freestanding: needs only clang + wasm-ld, no libc.
 *
 *     clang --target=wasm32 -std=c11 -Oz -ffreestanding -nostdlib \
 *           -I sdk/c -Wl,--no-entry -Wl,--strip-all -o h.wasm h.c
 *
 * In exactly ONE translation unit of a module, expand SWITCHYARD_ABI_V1() at
 * file scope: it defines the `alloc` export (a bump allocator), the
 * `switchyard_abi_v1` marker export, the `switchyard_reset` export (rewinds the
 * bump allocator; see "Bump allocator" below), and weak memcpy/memmove/memset/memcmp
 * (clang emits calls to these even in freestanding code; define
 * SWITCHYARD_NO_MEM_SHIMS before including this header to leave them out, e.g.
 * when linking wasi-libc).
 *
 * Declare handlers with SWITCHYARD_HANDLER(export_name) { ... }: the body sees
 * `const sy_request *req` (already parsed) and returns an int32_t status
 * (0 = handled, anything else = failed).
 *
 * Naming: host imports are `sy_<abi name>` (raw pointer/length form);
 * string-view helpers are `sy_reply`, `sy_send_tag`, ...; status codes are
 * SY_ERR_*; JSON helpers are sy_json_* (reading) and sy_jw_* (writing).
 *
 * The JSON readers are small scanners, not validators: they never read out of
 * bounds, and they assume the host already validated the JSON (it does for the
 * request's `data`).
 */
#ifndef SWITCHYARD_H
#define SWITCHYARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SWITCHYARD_ABI_VERSION 1u

/* ---------------------------------------------------------------------------
 * Status codes (negative host return values)
 * ------------------------------------------------------------------------- */
#define SY_OK               0
#define SY_ERR_BAD_POINTER (-1) /* (ptr, len) outside guest memory, or overflow */
#define SY_ERR_BAD_UTF8    (-2) /* a string is not valid UTF-8 */
#define SY_ERR_BAD_JSON    (-3) /* a data argument is not valid JSON */
#define SY_ERR_DENIED      (-4) /* not granted by the module's manifest entry */
#define SY_ERR_LIMIT       (-5) /* send budget of this call used up */
#define SY_ERR_INVALID     (-6) /* another invalid argument */

/* Returned by SWITCHYARD_HANDLER when the request bytes do not parse (the host
 * never does this; the client would see "handler failed with status 1"). */
#define SY_STATUS_BAD_REQUEST 1

/* Log levels for sy_log. */
#define SY_LOG_TRACE 0
#define SY_LOG_DEBUG 1
#define SY_LOG_INFO  2
#define SY_LOG_WARN  3
#define SY_LOG_ERROR 4

static inline const char *sy_status_name(int32_t status) {
    switch (status) {
    case SY_ERR_BAD_POINTER: return "ERR_BAD_POINTER";
    case SY_ERR_BAD_UTF8:    return "ERR_BAD_UTF8";
    case SY_ERR_BAD_JSON:    return "ERR_BAD_JSON";
    case SY_ERR_DENIED:      return "ERR_DENIED";
    case SY_ERR_LIMIT:       return "ERR_LIMIT";
    case SY_ERR_INVALID:     return "ERR_INVALID";
    default:                 return status >= 0 ? "OK" : "ERR_UNKNOWN";
    }
}

/* ---------------------------------------------------------------------------
 * Host imports (module "switchyard"). Only the ones a module calls end up in
 * its import section. Pointers and sizes are i32 on wasm32.
 * ------------------------------------------------------------------------- */
#if defined(__wasm__)
#define SY__IMPORT(name) \
    __attribute__((import_module("switchyard"), import_name(#name)))
#else
#define SY__IMPORT(name) /* native builds (e.g. unit tests): supply your own */
#endif

/* Replies to the calling client. Return 0. */
SY__IMPORT(send_success) int32_t sy_send_success(const void *event, size_t event_len,
                                                 const void *data, size_t data_len);
SY__IMPORT(send_error) int32_t sy_send_error(const void *event, size_t event_len,
                                             const void *msg, size_t msg_len);
/* Sends to others. Return the number of connections queued to. */
SY__IMPORT(send_to_client) int32_t sy_send_to_client(const void *client, size_t client_len,
                                                     const void *event, size_t event_len,
                                                     const void *data, size_t data_len);
SY__IMPORT(send_to_user) int32_t sy_send_to_user(const void *user, size_t user_len,
                                                 const void *event, size_t event_len,
                                                 const void *data, size_t data_len);
SY__IMPORT(send_to_tag) int32_t sy_send_to_tag(const void *tag, size_t tag_len,
                                               const void *event, size_t event_len,
                                               const void *data, size_t data_len);
SY__IMPORT(send_to_all) int32_t sy_send_to_all(const void *event, size_t event_len,
                                               const void *data, size_t data_len);
/* Tags of the calling client. */
SY__IMPORT(join_tag) int32_t sy_join_tag(const void *tag, size_t tag_len);
SY__IMPORT(quit_tag) int32_t sy_quit_tag(const void *tag, size_t tag_len);
SY__IMPORT(tag_members) int32_t sy_tag_members(const void *tag, size_t tag_len,
                                               void *buf, size_t buf_cap);
/* Getters: return the full length; write nothing when it exceeds buf_cap. */
SY__IMPORT(client_id) int32_t sy_client_id(void *buf, size_t buf_cap);
SY__IMPORT(user_id) int32_t sy_user_id(void *buf, size_t buf_cap);
SY__IMPORT(claims) int32_t sy_claims(void *buf, size_t buf_cap);
SY__IMPORT(log) int32_t sy_log(int32_t level, const void *msg, size_t msg_len);

/* ---------------------------------------------------------------------------
 * String views
 * ------------------------------------------------------------------------- */
typedef struct sy_str {
    const char *ptr;
    size_t len;
} sy_str;

/* A view of a string literal (no strlen at run time). */
#define SY_LIT(s) ((sy_str){ "" s, sizeof(s) - 1 })

static inline sy_str sy_str_make(const char *ptr, size_t len) {
    sy_str s = { ptr, len };
    return s;
}

static inline sy_str sy_cstr(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return sy_str_make(s, n);
}

static inline bool sy_str_eq(sy_str a, sy_str b) {
    if (a.len != b.len) return false;
    for (size_t i = 0; i < a.len; i++)
        if (a.ptr[i] != b.ptr[i]) return false;
    return true;
}

static inline bool sy_str_eq_cstr(sy_str a, const char *b) {
    return sy_str_eq(a, sy_cstr(b));
}

static inline void sy_copy(void *dst, const void *src, size_t n) {
    char *d = (char *)dst;
    const char *s = (const char *)src;
    for (size_t i = 0; i < n; i++) d[i] = s[i];
}

/* ---------------------------------------------------------------------------
 * The request (see "The request" in docs/ABI.md)
 * ------------------------------------------------------------------------- */
typedef struct sy_request {
    uint32_t version;
    sy_str event;     /* the client's "event" */
    sy_str data;      /* raw JSON text of "data" ("null" when absent) */
    sy_str client_id; /* the calling connection's id */
    sy_str user_id;   /* "" for an anonymous guest */
} sy_request;

static inline uint32_t sy__rd32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Parses the request the host passed to a handler. Returns 0, or
 * SY_ERR_INVALID when the header is short, the version is not 1, or the
 * lengths run past `len`. The views point into the request bytes. */
static inline int32_t sy_request_parse(const void *ptr, size_t len, sy_request *out) {
    const unsigned char *b = (const unsigned char *)ptr;
    if (!b || len < 20) return SY_ERR_INVALID;
    uint32_t version = sy__rd32(b);
    uint32_t lens[4];
    uint64_t total = 20;
    for (int i = 0; i < 4; i++) {
        lens[i] = sy__rd32(b + 4 + 4 * i);
        total += lens[i];
    }
    if (version != SWITCHYARD_ABI_VERSION || total > len) return SY_ERR_INVALID;
    const char *p = (const char *)b + 20;
    out->version = version;
    out->event = sy_str_make(p, lens[0]);     p += lens[0];
    out->data = sy_str_make(p, lens[1]);      p += lens[1];
    out->client_id = sy_str_make(p, lens[2]); p += lens[2];
    out->user_id = sy_str_make(p, lens[3]);
    return SY_OK;
}

/* ---------------------------------------------------------------------------
 * Bump allocator (wasm only). Allocations are 8-byte aligned; the memory grows
 * as needed. Nothing is freed during an event.
 *
 * By default each event runs in a fresh instance, so nothing ever needs
 * freeing. With `instance = "reuse"` in the module's manifest entry the host
 * keeps the instance and calls the `switchyard_reset` export after every event
 * that returned a status: it rewinds the allocator to __heap_base, so the next
 * event's sy_alloc (the request buffer included) reuses the same memory. Only
 * allocator state is reset: globals and statics keep their values across
 * events (and users), but any pointer into sy_alloc memory is dangling once the
 * event that allocated it has ended.
 * ------------------------------------------------------------------------- */
#if defined(__wasm__)
extern unsigned char __heap_base; /* provided by wasm-ld */
extern uintptr_t sy__heap_top;    /* defined by SWITCHYARD_ABI_V1() */

/* Returns `len` writable bytes, or NULL (0) when memory cannot grow. */
static inline void *sy_alloc(size_t len) {
    uintptr_t top = sy__heap_top ? sy__heap_top : (uintptr_t)&__heap_base;
    uint64_t start = ((uint64_t)top + 7u) & ~(uint64_t)7u;
    uint64_t end = start + (uint64_t)len;
    uint64_t have = (uint64_t)__builtin_wasm_memory_size(0) << 16;
    if (end > have) {
        uint64_t pages = (end - have + 0xFFFFu) >> 16;
        if (end > ((uint64_t)1 << 32) ||
            __builtin_wasm_memory_grow(0, (size_t)pages) == (size_t)-1)
            return NULL;
    }
    sy__heap_top = (uintptr_t)end;
    return (void *)(uintptr_t)start;
}

/* Frees everything sy_alloc handed out: the next allocation starts at
 * __heap_base again. The `switchyard_reset` export calls it; call it yourself
 * only when no live data is in sy_alloc memory. */
static inline void sy_alloc_reset(void) {
    sy__heap_top = 0;
}
#endif

/* ---------------------------------------------------------------------------
 * Module boilerplate and handler exports
 * ------------------------------------------------------------------------- */
#ifdef SWITCHYARD_NO_MEM_SHIMS
#define SY__MEM_SHIMS
#else
/* no_builtin keeps clang from turning these loops into calls to themselves. */
#define SY__MEM_SHIMS                                                             \
    __attribute__((weak, no_builtin)) void *memcpy(void *d, const void *s, size_t n) { \
        unsigned char *dp = (unsigned char *)d;                                   \
        const unsigned char *sp = (const unsigned char *)s;                       \
        while (n--) *dp++ = *sp++;                                                \
        return d;                                                                 \
    }                                                                             \
    __attribute__((weak, no_builtin)) void *memmove(void *d, const void *s, size_t n) { \
        unsigned char *dp = (unsigned char *)d;                                   \
        const unsigned char *sp = (const unsigned char *)s;                       \
        if (dp < sp) { while (n--) *dp++ = *sp++; }                               \
        else { while (n) { n--; dp[n] = sp[n]; } }                                \
        return d;                                                                 \
    }                                                                             \
    __attribute__((weak, no_builtin)) void *memset(void *d, int c, size_t n) {    \
        unsigned char *dp = (unsigned char *)d;                                   \
        while (n--) *dp++ = (unsigned char)c;                                     \
        return d;                                                                 \
    }                                                                             \
    __attribute__((weak, no_builtin)) int memcmp(const void *a, const void *b, size_t n) { \
        const unsigned char *ap = (const unsigned char *)a;                       \
        const unsigned char *bp = (const unsigned char *)b;                       \
        for (; n; n--, ap++, bp++)                                                \
            if (*ap != *bp) return *ap < *bp ? -1 : 1;                            \
        return 0;                                                                 \
    }
#endif

/* Expand once per module, at file scope. */
#define SWITCHYARD_ABI_V1()                                                       \
    uintptr_t sy__heap_top = 0;                                                   \
    __attribute__((export_name("alloc"))) void *sy__export_alloc(size_t len) {    \
        return sy_alloc(len);                                                     \
    }                                                                             \
    __attribute__((export_name("switchyard_abi_v1"))) void sy__export_abi_v1(void) {} \
    __attribute__((export_name("switchyard_reset"))) void sy__export_reset(void) { \
        sy_alloc_reset();                                                         \
    }                                                                             \
    SY__MEM_SHIMS                                                                 \
    typedef int sy__abi_v1_semicolon_sink

/* SWITCHYARD_HANDLER(name) { ...; return 0; }
 * Exports `name` as (ptr: i32, len: i32) -> i32. The body gets the parsed
 * request as `const sy_request *req`. */
#define SWITCHYARD_HANDLER(name)                                                  \
    static int32_t sy__handler_##name(const sy_request *req);                     \
    __attribute__((export_name(#name)))                                           \
    int32_t sy__export_##name(const void *ptr, size_t len) {                      \
        sy_request sy__req;                                                       \
        if (sy_request_parse(ptr, len, &sy__req) != SY_OK)                        \
            return SY_STATUS_BAD_REQUEST;                                         \
        return sy__handler_##name(&sy__req);                                      \
    }                                                                             \
    static int32_t sy__handler_##name(const sy_request *req)

/* SWITCHYARD_RAW_HANDLER(name, ptr, len) { ... }: the bare export, unparsed. */
#define SWITCHYARD_RAW_HANDLER(name, ptr, len)                                    \
    __attribute__((export_name(#name)))                                           \
    int32_t sy__export_##name(const void *ptr, size_t len)

/* ---------------------------------------------------------------------------
 * String-view wrappers over the imports
 * ------------------------------------------------------------------------- */
/* send_success(event, data): data must be JSON; an empty view omits it. */
static inline int32_t sy_reply(sy_str event, sy_str data) {
    return sy_send_success(event.ptr, event.len, data.ptr, data.len);
}
/* send_error(event, msg): msg is plain text, the host escapes it. */
static inline int32_t sy_reply_error(sy_str event, sy_str msg) {
    return sy_send_error(event.ptr, event.len, msg.ptr, msg.len);
}
static inline int32_t sy_send_client(sy_str client_id, sy_str event, sy_str data) {
    return sy_send_to_client(client_id.ptr, client_id.len, event.ptr, event.len, data.ptr, data.len);
}
static inline int32_t sy_send_user(sy_str user_id, sy_str event, sy_str data) {
    return sy_send_to_user(user_id.ptr, user_id.len, event.ptr, event.len, data.ptr, data.len);
}
static inline int32_t sy_send_tag(sy_str tag, sy_str event, sy_str data) {
    return sy_send_to_tag(tag.ptr, tag.len, event.ptr, event.len, data.ptr, data.len);
}
static inline int32_t sy_send_all(sy_str event, sy_str data) {
    return sy_send_to_all(event.ptr, event.len, data.ptr, data.len);
}
static inline int32_t sy_tag_join(sy_str tag) { return sy_join_tag(tag.ptr, tag.len); }
static inline int32_t sy_tag_quit(sy_str tag) { return sy_quit_tag(tag.ptr, tag.len); }
static inline int32_t sy_log_str(int32_t level, sy_str msg) {
    return sy_log(level, msg.ptr, msg.len);
}
static inline int32_t sy_log_cstr(int32_t level, const char *msg) {
    return sy_log_str(level, sy_cstr(msg));
}

#if defined(__wasm__)
/* Getters that allocate: call with a guess, retry with the exact length.
 * Return the length (>= 0) with *out set, or a negative status. */
#define SY__GET_ALLOC(call_with_buf_cap)                                          \
    do {                                                                          \
        size_t cap = 128;                                                         \
        for (int attempt = 0; attempt < 4; attempt++) {                           \
            char *buf = (char *)sy_alloc(cap);                                    \
            if (!buf) return SY_ERR_LIMIT;                                        \
            int32_t n = call_with_buf_cap;                                        \
            if (n < 0) return n;                                                  \
            if ((size_t)n <= cap) { *out = sy_str_make(buf, (size_t)n); return n; } \
            cap = (size_t)n;                                                      \
        }                                                                         \
        return SY_ERR_LIMIT;                                                      \
    } while (0)

/* tag_members(tag): a JSON array of distinct user ids, sorted. */
static inline int32_t sy_tag_members_get(sy_str tag, sy_str *out) {
    SY__GET_ALLOC(sy_tag_members(tag.ptr, tag.len, buf, cap));
}
static inline int32_t sy_client_id_get(sy_str *out) { SY__GET_ALLOC(sy_client_id(buf, cap)); }
static inline int32_t sy_user_id_get(sy_str *out) { SY__GET_ALLOC(sy_user_id(buf, cap)); }
static inline int32_t sy_claims_get(sy_str *out) { SY__GET_ALLOC(sy_claims(buf, cap)); }
#endif

/* ---------------------------------------------------------------------------
 * JSON reading
 * ------------------------------------------------------------------------- */
#define SY_JSON_OK          0
#define SY_JSON_NOT_OBJECT  1 /* the value searched is not an object */
#define SY_JSON_NOT_FOUND   2 /* no such key */
#define SY_JSON_WRONG_TYPE  3 /* found, but not of the requested type */
#define SY_JSON_MALFORMED   4 /* bad JSON text (or a bad escape) */
#define SY_JSON_TOO_LONG    5 /* the unescaped string does not fit the buffer */

typedef enum sy_json_type {
    SY_JSON_INVALID = 0,
    SY_JSON_NULL,
    SY_JSON_BOOL,
    SY_JSON_NUMBER,
    SY_JSON_STRING,
    SY_JSON_ARRAY,
    SY_JSON_OBJECT,
} sy_json_type;

static inline const char *sy__json_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* The type of a JSON value, from its first non-blank character. */
static inline sy_json_type sy_json_type_of(sy_str v) {
    const char *p = sy__json_ws(v.ptr, v.ptr + v.len);
    if (p == v.ptr + v.len) return SY_JSON_INVALID;
    switch (*p) {
    case '"': return SY_JSON_STRING;
    case '{': return SY_JSON_OBJECT;
    case '[': return SY_JSON_ARRAY;
    case 't': case 'f': return SY_JSON_BOOL;
    case 'n': return SY_JSON_NULL;
    default: return (*p == '-' || (*p >= '0' && *p <= '9')) ? SY_JSON_NUMBER : SY_JSON_INVALID;
    }
}

/* p at '"'. Returns the position after the closing quote, or NULL. */
static inline const char *sy__json_skip_string(const char *p, const char *end, bool *escaped) {
    if (p >= end || *p != '"') return NULL;
    for (p++; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') return p + 1;
        if (c == '\\') {
            if (escaped) *escaped = true;
            if (++p >= end) return NULL;
        } else if (c < 0x20) {
            return NULL;
        }
    }
    return NULL;
}

/* Skips one JSON value (and leading blanks). Returns the position after it,
 * or NULL. Containers are skipped by bracket depth, not validated. */
static inline const char *sy_json_skip_value(const char *p, const char *end) {
    p = sy__json_ws(p, end);
    if (p >= end) return NULL;
    if (*p == '"') return sy__json_skip_string(p, end, NULL);
    if (*p == '{' || *p == '[') {
        size_t depth = 0;
        while (p < end) {
            char c = *p;
            if (c == '"') {
                p = sy__json_skip_string(p, end, NULL);
                if (!p) return NULL;
                continue;
            }
            if (c == '{' || c == '[') depth++;
            else if (c == '}' || c == ']') {
                if (--depth == 0) return p + 1;
            }
            p++;
        }
        return NULL;
    }
    const char *start = p;
    while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' &&
           *p != '\n' && *p != '\r')
        p++;
    return p == start ? NULL : p;
}

static inline int sy__hex4(const char *p, uint32_t *out) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

/* Decodes one character of string contents at *pp (< end), advancing *pp.
 * Writes its UTF-8 bytes to out and returns how many (1..4), or -1. */
static inline int sy__json_decode_one(const char **pp, const char *end, char out[4]) {
    const char *p = *pp;
    if (*p != '\\') {
        out[0] = *p;
        *pp = p + 1;
        return 1;
    }
    if (++p >= end) return -1;
    char e = *p++;
    uint32_t cp;
    switch (e) {
    case '"': case '\\': case '/': out[0] = e; *pp = p; return 1;
    case 'b': out[0] = '\b'; *pp = p; return 1;
    case 'f': out[0] = '\f'; *pp = p; return 1;
    case 'n': out[0] = '\n'; *pp = p; return 1;
    case 'r': out[0] = '\r'; *pp = p; return 1;
    case 't': out[0] = '\t'; *pp = p; return 1;
    case 'u': break;
    default: return -1;
    }
    if (end - p < 4 || sy__hex4(p, &cp)) return -1;
    p += 4;
    if (cp >= 0xD800 && cp <= 0xDBFF) { /* a surrogate pair is required */
        uint32_t lo;
        if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || sy__hex4(p + 2, &lo) ||
            lo < 0xDC00 || lo > 0xDFFF)
            return -1;
        p += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
        return -1;
    }
    *pp = p;
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Does the string token contents [p, end) (between the quotes) decode to key? */
static inline bool sy__json_key_eq(const char *p, const char *end, bool escaped, sy_str key) {
    if (!escaped) {
        return sy_str_eq(sy_str_make(p, (size_t)(end - p)), key);
    }
    size_t at = 0;
    while (p < end) {
        char b[4];
        int n = sy__json_decode_one(&p, end, b);
        if (n < 0 || at + (size_t)n > key.len) return false;
        for (int i = 0; i < n; i++)
            if (key.ptr[at++] != b[i]) return false;
    }
    return at == key.len;
}

/* Finds top-level member `key` of the object `json` and sets *value to its raw
 * JSON text (a string keeps its quotes and escapes). Keys are compared after
 * unescaping; with duplicate keys the last one wins. */
static inline int sy_json_get_raw_n(sy_str json, sy_str key, sy_str *value) {
    const char *end = json.ptr + json.len;
    const char *p = sy__json_ws(json.ptr, end);
    if (p >= end || *p != '{') return SY_JSON_NOT_OBJECT;
    p = sy__json_ws(p + 1, end);
    if (p < end && *p == '}') return SY_JSON_NOT_FOUND;
    bool found = false;
    for (;;) {
        bool escaped = false;
        const char *k = p;
        p = sy__json_skip_string(p, end, &escaped);
        if (!p) return SY_JSON_MALFORMED;
        bool match = sy__json_key_eq(k + 1, p - 1, escaped, key);
        p = sy__json_ws(p, end);
        if (p >= end || *p != ':') return SY_JSON_MALFORMED;
        const char *v = sy__json_ws(p + 1, end);
        p = sy_json_skip_value(v, end);
        if (!p) return SY_JSON_MALFORMED;
        if (match) {
            *value = sy_str_make(v, (size_t)(p - v));
            found = true;
        }
        p = sy__json_ws(p, end);
        if (p >= end) return SY_JSON_MALFORMED;
        if (*p == '}') break;
        if (*p != ',') return SY_JSON_MALFORMED;
        p = sy__json_ws(p + 1, end);
    }
    return found ? SY_JSON_OK : SY_JSON_NOT_FOUND;
}

static inline int sy_json_get_raw(sy_str json, const char *key, sy_str *value) {
    return sy_json_get_raw_n(json, sy_cstr(key), value);
}

/* Turns a raw JSON string value (with its quotes) into its text. When it has no
 * escapes, *out points into `raw` and buf is not touched; otherwise the text
 * is unescaped into buf (it needs at most raw.len bytes). */
static inline int sy_json_string_value(sy_str raw, char *buf, size_t cap, sy_str *out) {
    const char *end = raw.ptr + raw.len;
    const char *p = sy__json_ws(raw.ptr, end);
    bool escaped = false;
    const char *q = sy__json_skip_string(p, end, &escaped);
    if (!q) return sy_json_type_of(raw) == SY_JSON_STRING ? SY_JSON_MALFORMED : SY_JSON_WRONG_TYPE;
    p++;
    q--; /* contents are [p, q) */
    if (!escaped) {
        *out = sy_str_make(p, (size_t)(q - p));
        return SY_JSON_OK;
    }
    size_t n = 0;
    while (p < q) {
        char b[4];
        int k = sy__json_decode_one(&p, q, b);
        if (k < 0) return SY_JSON_MALFORMED;
        if (!buf || n + (size_t)k > cap) {
            out->ptr = NULL;
            out->len = raw.len;
            return SY_JSON_TOO_LONG;
        }
        for (int i = 0; i < k; i++) buf[n++] = b[i];
    }
    *out = sy_str_make(buf, n);
    return SY_JSON_OK;
}

/* Finds top-level string member `key` of the object `json` and returns its text
 * (raw view when unescaped, else unescaped into buf; see sy_json_string_value). */
static inline int sy_json_get_string(sy_str json, const char *key, char *buf, size_t cap,
                                     sy_str *out) {
    sy_str raw;
    int rc = sy_json_get_raw(json, key, &raw);
    if (rc != SY_JSON_OK) return rc;
    return sy_json_string_value(raw, buf, cap, out);
}

/* ---------------------------------------------------------------------------
 * JSON writing into a caller's buffer. Once full it keeps counting: after
 * writing, w.len is the length the whole output needs, and sy_jw_ok(&w)
 * says whether it fit.
 * ------------------------------------------------------------------------- */
typedef struct sy_jw {
    char *buf;
    size_t cap;
    size_t len;
} sy_jw;

static inline void sy_jw_init(sy_jw *w, char *buf, size_t cap) {
    w->buf = buf;
    w->cap = buf ? cap : 0;
    w->len = 0;
}

static inline void sy_jw_byte(sy_jw *w, char c) {
    if (w->len < w->cap) w->buf[w->len] = c;
    w->len++;
}

/* Appends raw bytes (JSON text you already have: a number, a raw value, ...). */
static inline void sy_jw_raw(sy_jw *w, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) sy_jw_byte(w, s[i]);
}
static inline void sy_jw_raw_str(sy_jw *w, sy_str s) { sy_jw_raw(w, s.ptr, s.len); }
/* Appends a string literal as raw JSON: sy_jw_lit(&w, "{\"a\":"). */
#define sy_jw_lit(w, lit) sy_jw_raw((w), "" lit, sizeof(lit) - 1)

/* Appends s as a quoted, escaped JSON string. */
static inline void sy_jw_string(sy_jw *w, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    sy_jw_byte(w, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            sy_jw_byte(w, '\\');
            sy_jw_byte(w, (char)c);
        } else if (c < 0x20) {
            sy_jw_byte(w, '\\');
            switch (c) {
            case '\n': sy_jw_byte(w, 'n'); break;
            case '\r': sy_jw_byte(w, 'r'); break;
            case '\t': sy_jw_byte(w, 't'); break;
            case '\b': sy_jw_byte(w, 'b'); break;
            case '\f': sy_jw_byte(w, 'f'); break;
            default:
                sy_jw_lit(w, "u00");
                sy_jw_byte(w, hex[c >> 4]);
                sy_jw_byte(w, hex[c & 15]);
            }
        } else {
            sy_jw_byte(w, (char)c);
        }
    }
    sy_jw_byte(w, '"');
}
static inline void sy_jw_str(sy_jw *w, sy_str s) { sy_jw_string(w, s.ptr, s.len); }

static inline void sy_jw_uint(sy_jw *w, uint64_t v) {
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) sy_jw_byte(w, tmp[--n]);
}

static inline void sy_jw_int(sy_jw *w, int64_t v) {
    if (v < 0) {
        sy_jw_byte(w, '-');
        sy_jw_uint(w, (uint64_t)0 - (uint64_t)v);
    } else {
        sy_jw_uint(w, (uint64_t)v);
    }
}

static inline void sy_jw_bool(sy_jw *w, bool v) {
    if (v) sy_jw_lit(w, "true");
    else sy_jw_lit(w, "false");
}

static inline bool sy_jw_ok(const sy_jw *w) { return w->len <= w->cap; }

/* The written JSON (only meaningful when sy_jw_ok). */
static inline sy_str sy_jw_result(const sy_jw *w) { return sy_str_make(w->buf, w->len); }

/* Bytes sy_jw_string needs for s, quotes included: size buffers with it. */
static inline size_t sy_json_escaped_len(sy_str s) {
    size_t n = 2;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' || c == '\b' ||
            c == '\f')
            n += 2;
        else if (c < 0x20)
            n += 6;
        else
            n += 1;
    }
    return n;
}

#if defined(__wasm__)
/* A writer over a fresh bump allocation of `cap` bytes. */
static inline bool sy_jw_alloc(sy_jw *w, size_t cap) {
    char *buf = (char *)sy_alloc(cap);
    sy_jw_init(w, buf, cap);
    return buf != NULL;
}
#endif

#ifdef __cplusplus
}
#endif

#endif /* SWITCHYARD_H */
