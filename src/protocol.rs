//! The wire protocol: what a client frame looks like and how server frames are written.
//!
//! Owns parsing of client frames (once, borrowing from the received text) and serialisation of
//! server frames into shareable bytes (once per frame, however many clients receive it).
//! It must never touch connections or state: it only turns bytes into values and back.
//! The human-readable contract is `docs/PROTOCOL.md`; keep the two in step.

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::ws::Utf8Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

/// `code` of a success frame (hotgo's convention).
pub const CODE_OK: i32 = 0;
/// `code` of every error frame (hotgo's clients test `code != 0`); the finer reason is `kind`.
pub const CODE_ERROR: i32 = -1;

/// Close codes the server uses. See `docs/PROTOCOL.md`.
pub mod close {
    /// Server shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// Rate limit exceeded, or the client could not keep up with its outbound queue.
    pub const POLICY: u16 = 1008;
    /// A frame larger than `ws.max_frame_bytes`.
    pub const TOO_BIG: u16 = 1009;
    /// The client's outbound queue overflowed (slow reader).
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// No frame and no pong within `ws.heartbeat_timeout_secs`.
    pub const HEARTBEAT_TIMEOUT: u16 = 4000;
    /// Kicked through the HTTP API.
    pub const KICKED: u16 = 4001;
    /// The connection's token passed its `exp` (plus `auth.leeway_secs`) without a `refresh`.
    pub const TOKEN_EXPIRED: u16 = 4002;
}

/// The finer reason of an error frame, sent as `"kind"` beside `"code": -1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadJson,
    MissingEvent,
    UnknownEvent,
    BinaryFrame,
    BadRequest,
    RateLimited,
    /// A `refresh` token that does not verify, or is for another user.
    InvalidToken,
    /// The handler itself called `send_error`.
    Handler,
    HandlerFailed,
    HandlerTrapped,
    HandlerTimeout,
    MemoryLimit,
    SendLimit,
    Busy,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadJson => "bad_json",
            ErrorKind::MissingEvent => "missing_event",
            ErrorKind::UnknownEvent => "unknown_event",
            ErrorKind::BinaryFrame => "binary_frame",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::InvalidToken => "invalid_token",
            ErrorKind::Handler => "handler_error",
            ErrorKind::HandlerFailed => "handler_failed",
            ErrorKind::HandlerTrapped => "handler_trapped",
            ErrorKind::HandlerTimeout => "handler_timeout",
            ErrorKind::MemoryLimit => "memory_limit",
            ErrorKind::SendLimit => "send_limit",
            ErrorKind::Busy => "busy",
        }
    }
}

/// A client frame, `{"event": string, "data": any}`, parsed once and borrowed from the text.
#[derive(Debug, Deserialize)]
pub struct ClientFrame<'a> {
    #[serde(borrow, default)]
    pub event: Option<EventName<'a>>,
    #[serde(borrow, default)]
    pub data: Option<&'a RawValue>,
    /// Optional: copied into every reply and error frame for this frame.
    #[serde(borrow, default)]
    pub id: Option<&'a RawValue>,
}

/// A parsed client frame: what the session and the handler need of it.
#[derive(Debug)]
pub struct Request<'a> {
    pub event: Cow<'a, str>,
    /// Raw JSON text (`null` when absent).
    pub data: &'a str,
    /// The frame's `id` as raw JSON (a string or a number), for the replies.
    pub id: Option<&'a str>,
}

/// Longest `id` accepted, bytes of JSON.
pub const MAX_ID_LEN: usize = 128;

/// The event name, borrowed from the frame unless it has escapes. (serde borrows a `Cow` only
/// when the field is the `Cow` itself: `Option<Cow<str>>` would copy every name into a
/// `String`, one allocation per message.)
#[derive(Debug, Deserialize)]
pub struct EventName<'a>(#[serde(borrow)] pub Cow<'a, str>);

/// Why a client frame could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("malformed JSON: {0}")]
    BadJson(#[from] serde_json::Error),
    #[error("missing \"event\"")]
    MissingEvent,
    #[error("\"id\" must be a string or a number of at most {MAX_ID_LEN} bytes")]
    BadId,
    #[error("malformed JSON: \"data\" nests arrays and objects deeper than {0} levels")]
    TooDeep(usize),
}

impl FrameError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            FrameError::BadJson(_) | FrameError::TooDeep(_) => ErrorKind::BadJson,
            FrameError::MissingEvent => ErrorKind::MissingEvent,
            FrameError::BadId => ErrorKind::BadRequest,
        }
    }
}

/// The default of `ws.max_json_depth`.
pub const DEFAULT_MAX_JSON_DEPTH: usize = 64;

/// Parses a client frame. `data` stays raw JSON text: handlers get it without a re-parse. It
/// may nest arrays and objects at most `max_depth` levels deep (0: no limit): serde_json skips
/// a raw value without a depth limit, and whoever parses it later (a handler) might recurse.
pub fn parse_client_frame(text: &str, max_depth: usize) -> Result<Request<'_>, FrameError> {
    let frame: ClientFrame<'_> = serde_json::from_str(text)?;
    let event = frame.event.map(|e| e.0).filter(|e| !e.is_empty()).ok_or(FrameError::MissingEvent)?;
    let data = frame.data.map_or("null", RawValue::get);
    if max_depth > 0 && nests_deeper_than(data.as_bytes(), max_depth) {
        return Err(FrameError::TooDeep(max_depth));
    }
    let id = match frame.id.map(RawValue::get) {
        None | Some("null") => None,
        Some(id)
            if id.len() <= MAX_ID_LEN
                && (id.starts_with('"') || id.starts_with(['-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'])) =>
        {
            Some(id)
        }
        Some(_) => return Err(FrameError::BadId),
    };
    Ok(Request { event, data, id })
}

/// Whether valid JSON text nests arrays and objects more than `max` levels deep: one pass over
/// the bytes counting brackets outside strings. Text shorter than `2 * (max + 1)` bytes cannot
/// (every level takes an opening and a closing byte), so the usual small frame costs nothing.
pub fn nests_deeper_than(json: &[u8], max: usize) -> bool {
    if json.len() < max.saturating_add(1).saturating_mul(2) {
        return false;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in json {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Unix time in seconds, the frames' `timestamp`.
pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaper; writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

// The fixed parts of a frame, shared by the writers and the size computations below.
const EVENT_KEY: &str = r#"{"event":"#;
const CODE_OK_KEY: &str = r#","code":0"#;
const DATA_KEY: &str = r#","data":"#;
const CODE_ERR_KIND_KEY: &str = r#","code":-1,"kind":""#;
const ERROR_MSG_KEY: &str = r#"","errorMsg":"#;
const TIMESTAMP_KEY: &str = r#","timestamp":"#;
const ID_KEY: &str = r#","id":"#;
/// The quotes around a JSON string without escapes.
const QUOTES: usize = 2;

/// Bytes `finish` appends: the timestamp key, the digits, `}`.
fn finish_len(ts: &str) -> usize {
    TIMESTAMP_KEY.len() + ts.len() + 1
}

fn finish(mut out: Vec<u8>, ts: &str) -> Utf8Bytes {
    out.extend_from_slice(TIMESTAMP_KEY.as_bytes());
    out.extend_from_slice(ts.as_bytes());
    out.push(b'}');
    // Every piece pushed above is valid UTF-8 (escaped strings, validated raw JSON, digits).
    match String::from_utf8(out) {
        Ok(s) => Utf8Bytes::from(s),
        Err(_) => Utf8Bytes::from_static("{\"event\":\"error\",\"code\":-1}"),
    }
}

// Frames are sized exactly up front (unless a string needs escapes). Growing the buffer would
// `realloc`, and glibc's realloc takes its arena lock on every call, which with two workers
// replying at once became a futex storm on the hot path; and a buffer with spare capacity
// costs `Bytes` a second allocation for its shared header.
fn id_len(id: Option<&str>) -> usize {
    id.map_or(0, |i| ID_KEY.len() + i.len())
}

fn push_id(out: &mut Vec<u8>, id: Option<&str>) {
    if let Some(i) = id {
        out.extend_from_slice(ID_KEY.as_bytes());
        out.extend_from_slice(i.as_bytes());
    }
}

fn success_len(event: &str, data: Option<&str>, id: Option<&str>, ts: &str) -> usize {
    let data = data.map_or(0, |d| DATA_KEY.len() + d.len());
    EVENT_KEY.len() + QUOTES + event.len() + CODE_OK_KEY.len() + data + id_len(id) + finish_len(ts)
}

fn error_len(event: &str, kind: ErrorKind, msg: &str, id: Option<&str>, ts: &str) -> usize {
    id_len(id)
        + EVENT_KEY.len()
        + QUOTES
        + event.len()
        + CODE_ERR_KIND_KEY.len()
        + kind.as_str().len()
        + ERROR_MSG_KEY.len()
        + QUOTES
        + msg.len()
        + finish_len(ts)
}

/// `{"event":E,"code":0,"data":D,"timestamp":T}`. `data` must be valid JSON text (or `None`
/// to omit it): callers validate guest-supplied JSON before they get here.
pub fn success_frame(event: &str, data: Option<&str>) -> Utf8Bytes {
    reply(event, data, None)
}

/// A success frame answering a client frame: with its `id` (raw JSON), when it had one.
pub fn reply(event: &str, data: Option<&str>, id: Option<&str>) -> Utf8Bytes {
    let mut ts = itoa::Buffer::new();
    let ts = ts.format(now_secs());
    let mut out = Vec::with_capacity(success_len(event, data, id, ts));
    out.extend_from_slice(EVENT_KEY.as_bytes());
    push_json_str(&mut out, event);
    out.extend_from_slice(CODE_OK_KEY.as_bytes());
    if let Some(d) = data {
        out.extend_from_slice(DATA_KEY.as_bytes());
        out.extend_from_slice(d.as_bytes());
    }
    push_id(&mut out, id);
    finish(out, ts)
}

/// `{"event":E,"code":-1,"kind":K,"errorMsg":M,"timestamp":T}`.
pub fn error_frame(event: &str, kind: ErrorKind, msg: &str) -> Utf8Bytes {
    error_reply(event, kind, msg, None)
}

/// An error frame answering a client frame: with its `id` (raw JSON), when it had one.
pub fn error_reply(event: &str, kind: ErrorKind, msg: &str, id: Option<&str>) -> Utf8Bytes {
    let mut ts = itoa::Buffer::new();
    let ts = ts.format(now_secs());
    let mut out = Vec::with_capacity(error_len(event, kind, msg, id, ts));
    out.extend_from_slice(EVENT_KEY.as_bytes());
    push_json_str(&mut out, event);
    out.extend_from_slice(CODE_ERR_KIND_KEY.as_bytes());
    out.extend_from_slice(kind.as_str().as_bytes());
    out.extend_from_slice(ERROR_MSG_KEY.as_bytes());
    push_json_str(&mut out, msg);
    push_id(&mut out, id);
    finish(out, ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_are_borrowed_from_the_frame_unless_escaped() {
        let r = parse_client_frame(r#"{"event":"echo","data":1}"#, DEFAULT_MAX_JSON_DEPTH).unwrap();
        assert!(matches!(r.event, Cow::Borrowed("echo")));
        let r = parse_client_frame(r#"{"event":"a\"b"}"#, DEFAULT_MAX_JSON_DEPTH).unwrap();
        assert_eq!(r.event, "a\"b");
    }

    #[test]
    fn parses_event_and_keeps_data_raw() {
        let r = parse_client_frame(r#"{"event":"echo","data":{"a": [1, 2]}}"#, DEFAULT_MAX_JSON_DEPTH).unwrap();
        assert_eq!(r.event, "echo");
        assert_eq!(r.data, r#"{"a": [1, 2]}"#);
        assert_eq!(r.id, None);
    }

    #[test]
    fn absent_data_is_null() {
        let r = parse_client_frame(r#"{"event":"ping"}"#, DEFAULT_MAX_JSON_DEPTH).unwrap();
        assert_eq!(r.data, "null");
    }

    #[test]
    fn missing_or_empty_event_is_an_error() {
        assert!(matches!(parse_client_frame(r#"{"data":1}"#, DEFAULT_MAX_JSON_DEPTH), Err(FrameError::MissingEvent)));
        assert!(matches!(parse_client_frame(r#"{"event":""}"#, DEFAULT_MAX_JSON_DEPTH), Err(FrameError::MissingEvent)));
        assert!(matches!(parse_client_frame("{nope", DEFAULT_MAX_JSON_DEPTH), Err(FrameError::BadJson(_))));
    }

    #[test]
    fn data_deeper_than_the_limit_is_refused_and_brackets_in_strings_do_not_count() {
        let nested = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        let frame = |data: &str| format!(r#"{{"event":"e","data":{data}}}"#);
        assert!(parse_client_frame(&frame(&nested(64)), 64).is_ok());
        let deep = frame(&nested(65));
        assert!(matches!(parse_client_frame(&deep, 64), Err(FrameError::TooDeep(64))));
        assert_eq!(parse_client_frame(&deep, 64).unwrap_err().kind(), ErrorKind::BadJson);
        assert!(parse_client_frame(&deep, 0).is_ok(), "0: no limit");
        let objects = frame(&format!("{}1{}", r#"{"a":"#.repeat(65), "}".repeat(65)));
        assert!(matches!(parse_client_frame(&objects, 64), Err(FrameError::TooDeep(64))));
        let in_string = frame(&format!(r#"["{}\"{}"]"#, "[{".repeat(100), "[".repeat(100)));
        assert!(parse_client_frame(&in_string, 2).is_ok(), "{in_string}");
        assert!(!nests_deeper_than(b"[[]][[]]", 2), "siblings are not nesting");
        assert!(nests_deeper_than(b"[[[]]]", 2));
    }

    #[test]
    fn frames_are_exactly_the_size_reserved_for_them() {
        let ts = now_secs().to_string();
        let data = r#"{"seq":1,"text":"hello"}"#;
        assert_eq!(success_frame("echo", Some(data)).len(), success_len("echo", Some(data), None, &ts));
        assert_eq!(success_frame("ping", None).len(), success_len("ping", None, None, &ts));
        assert_eq!(reply("echo", Some(data), Some("\"7\"")).len(), success_len("echo", Some(data), Some("\"7\""), &ts));
        let msg = "expected data {id: <tag>}";
        assert_eq!(
            error_frame("join", ErrorKind::BadRequest, msg).len(),
            error_len("join", ErrorKind::BadRequest, msg, None, &ts)
        );
        assert_eq!(
            error_reply("join", ErrorKind::BadRequest, msg, Some("42")).len(),
            error_len("join", ErrorKind::BadRequest, msg, Some("42"), &ts)
        );
    }

    #[test]
    fn frames_are_valid_json() {
        let f = success_frame("a\"b", Some("[1]"));
        let v: serde_json::Value = serde_json::from_str(&f).unwrap();
        assert_eq!(v["event"], "a\"b");
        assert_eq!(v["code"], 0);
        assert_eq!(v["data"], serde_json::json!([1]));
        let e = error_frame("x", ErrorKind::UnknownEvent, "no \"route\"");
        let v: serde_json::Value = serde_json::from_str(&e).unwrap();
        assert_eq!(v["code"], -1);
        assert_eq!(v["kind"], "unknown_event");
        assert_eq!(v["errorMsg"], "no \"route\"");
    }

    #[test]
    fn an_id_is_copied_raw_into_replies_and_must_be_a_string_or_a_number() {
        let r = parse_client_frame(r#"{"event":"echo","id":"a\"1"}"#, 0).unwrap();
        assert_eq!(r.id, Some(r#""a\"1""#));
        let v: serde_json::Value = serde_json::from_str(&reply("echo", Some("1"), r.id)).unwrap();
        assert_eq!(v["id"], "a\"1");
        let e: serde_json::Value = serde_json::from_str(&error_reply("x", ErrorKind::Busy, "m", Some("-7"))).unwrap();
        assert_eq!(e["id"], -7);
        assert_eq!(parse_client_frame(r#"{"event":"e","id":12}"#, 0).unwrap().id, Some("12"));
        assert_eq!(parse_client_frame(r#"{"event":"e","id":null}"#, 0).unwrap().id, None);
        for bad in [r#"{"id":{}}"#, r#"{"id":[1]}"#, r#"{"id":true}"#] {
            let frame = format!(r#"{{"event":"e",{}"#, &bad[1..]);
            assert!(matches!(parse_client_frame(&frame, 0), Err(FrameError::BadId)), "{frame}");
        }
        let long = format!(r#"{{"event":"e","id":"{}"}}"#, "x".repeat(200));
        assert!(matches!(parse_client_frame(&long, 0), Err(FrameError::BadId)));
    }
}

/// No input panics the parser, and what it accepts is what the session relies on.
#[cfg(test)]
mod props {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;

    /// The depth the properties parse with: small, so that generated values go past it.
    const DEPTH: usize = 6;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            ".{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(10, 64, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(".{0,6}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Every outcome of a parse is one the session handles, and an accepted frame's parts can
    /// be written back into valid frames.
    fn check(text: &str) {
        match parse_client_frame(text, DEPTH) {
            Ok(r) => {
                assert!(!r.event.is_empty());
                assert!(serde_json::from_str::<serde::de::IgnoredAny>(r.data).is_ok(), "data is JSON: {}", r.data);
                assert!(!nests_deeper_than(r.data.as_bytes(), DEPTH));
                if let Some(id) = r.id {
                    assert!(id.len() <= MAX_ID_LEN);
                }
                for frame in
                    [reply(&r.event, Some(r.data), r.id), error_reply(&r.event, ErrorKind::BadRequest, r.data, r.id)]
                {
                    assert!(serde_json::from_str::<Value>(&frame).is_ok(), "{frame}");
                }
            }
            Err(e) => {
                assert!(matches!(e.kind(), ErrorKind::BadJson | ErrorKind::MissingEvent | ErrorKind::BadRequest))
            }
        }
    }

    proptest! {
        #![proptest_config(crate::proptest_config())]

        #[test]
        fn any_text(text in ".{0,200}") {
            check(&text);
        }

        #[test]
        fn frames_of_any_values(event in json_value(), data in json_value(), id in json_value(), other in json_value()) {
            let frame = serde_json::json!({"event": event, "data": data, "id": id, "other": other}).to_string();
            check(&frame);
            // And the same frame cut anywhere, or with a byte replaced.
            for cut in [frame.len() / 3, frame.len() / 2, frame.len().saturating_sub(1)] {
                if let Some(prefix) = frame.get(..cut) {
                    check(prefix);
                }
            }
        }

        #[test]
        fn bracket_soup(bytes in prop::collection::vec(prop::sample::select(b"[]{}\"\\,:1a ".to_vec()), 0..200)) {
            let text = String::from_utf8(bytes).unwrap();
            check(&format!(r#"{{"event":"e","data":{text}}}"#));
            let _ = nests_deeper_than(text.as_bytes(), DEPTH);
        }
    }
}
