//! The reference `chat` module (docs/HANDLERS.md): rooms on top of tags.
//!
//! Room `R` is the tag `chat:R`. Every export first reads `data.room`, which must be a string
//! of 1 to 64 characters from `[A-Za-z0-9_.-]`; otherwise the handler answers
//! `send_error(event, "invalid room")` and returns 0. `ERR_DENIED` from any tag call (the
//! manifest does not grant `chat:*`) is answered with `send_error(event, "denied")` and status
//! 0. Any other host error fails the event with that (negative) status.
//!
//! | export        | event         | reply |
//! |---------------|---------------|-------|
//! | `chat_join`   | `chat/join`   | joins `chat:R`, then `{"room": R, "users": <members>}` |
//! | `chat_send`   | `chat/send`   | `chat/message` `{"room","from","text"}` to `chat:R`, then `{"delivered": n}` |
//! | `chat_online` | `chat/online` | `{"room": R, "users": <members>}` |
//!
//! `<members>` is the JSON array `tag_members` returns (distinct user ids, sorted), passed
//! through as the host wrote it.

#![forbid(unsafe_code)]

use switchyard_sdk::serde_json::{Map, Value, json};
use switchyard_sdk::{Error, HandlerError, Request, send_error, send_success_raw};

switchyard_sdk::handlers! {
    chat_join => chat_join,
    chat_send => chat_send,
    chat_online => chat_online,
}

/// `chat/join`: join the room's tag, then reply with the room's members.
fn chat_join(req: &Request) -> Result<(), HandlerError> {
    let Some((room, _)) = parse(req) else {
        return reject(req, "invalid room");
    };
    let tag = tag_of(&room);
    guard(req, || {
        switchyard_sdk::join_tag(&tag)?;
        let users = switchyard_sdk::tag_members_raw(&tag)?;
        send_success_raw("chat/join", &room_reply(&room, &users))
    })
}

/// `chat/send`: send `data.text` to everyone in the room, then reply how many got it.
fn chat_send(req: &Request) -> Result<(), HandlerError> {
    let Some((room, data)) = parse(req) else {
        return reject(req, "invalid room");
    };
    let Some(text) = data.get("text").and_then(Value::as_str) else {
        return reject(req, "invalid text");
    };
    let message = json!({ "room": &room, "from": req.user_id(), "text": text });
    let tag = tag_of(&room);
    guard(req, || {
        let delivered = switchyard_sdk::send_to_tag(&tag, "chat/message", &message)?;
        send_success_raw("chat/send", &format!(r#"{{"delivered":{delivered}}}"#))
    })
}

/// `chat/online`: reply with the room's members (without joining).
fn chat_online(req: &Request) -> Result<(), HandlerError> {
    let Some((room, _)) = parse(req) else {
        return reject(req, "invalid room");
    };
    let tag = tag_of(&room);
    guard(req, || {
        let users = switchyard_sdk::tag_members_raw(&tag)?;
        send_success_raw("chat/online", &room_reply(&room, &users))
    })
}

/// The request's data as an object with a valid `"room"`: `(room, rest of the object)`.
///
/// `None` when data is not a JSON object, has no `"room"`, or the room is not a string of 1 to
/// 64 characters from `[A-Za-z0-9_.-]`.
fn parse(req: &Request) -> Option<(String, Map<String, Value>)> {
    let Ok(Value::Object(mut data)) = req.data_as::<Value>() else {
        return None;
    };
    match data.remove("room") {
        Some(Value::String(room)) if valid_room(&room) => Some((room, data)),
        _ => None,
    }
}

/// 1 to 64 characters from `[A-Za-z0-9_.-]`.
fn valid_room(room: &str) -> bool {
    (1..=64).contains(&room.len())
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The tag of room `room`.
fn tag_of(room: &str) -> String {
    format!("chat:{room}")
}

/// `{"room": room, "users": <users>}` with `users` (host JSON) passed through. A valid room
/// needs no JSON escaping.
fn room_reply(room: &str, users: &str) -> String {
    format!(r#"{{"room":"{room}","users":{users}}}"#)
}

/// Answers the caller with an error frame for its own event; the event itself succeeds.
fn reject(req: &Request, msg: &str) -> Result<(), HandlerError> {
    let _ = send_error(req.event(), msg);
    Ok(())
}

/// Runs the host calls of a handler: `ERR_DENIED` becomes a `"denied"` error frame (status 0),
/// any other error fails the event with its status.
fn guard(req: &Request, calls: impl FnOnce() -> Result<(), Error>) -> Result<(), HandlerError> {
    match calls() {
        Ok(()) => Ok(()),
        Err(Error::Denied) => reject(req, "denied"),
        Err(err) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms() {
        assert!(valid_room("lobby"));
        assert!(valid_room("A-z_0.9"));
        assert!(valid_room(&"r".repeat(64)));
        assert!(!valid_room(""));
        assert!(!valid_room(&"r".repeat(65)));
        assert!(!valid_room("a b"));
        assert!(!valid_room("a:b"));
        assert!(!valid_room("é"));
    }

    #[test]
    fn parses_data() {
        let ok = |data| parse(&Request::new("chat/join", data, "c", "u")).map(|(room, _)| room);
        assert_eq!(ok(r#"{"room":"lobby"}"#).as_deref(), Some("lobby"));
        assert_eq!(ok(r#"{"room":"lobby","text":1}"#).as_deref(), Some("lobby"));
        assert_eq!(ok(r#"{"room":""}"#).as_deref(), None);
        assert_eq!(ok(r#"{"room":7}"#).as_deref(), None);
        assert_eq!(ok(r#"{"rooms":"a"}"#).as_deref(), None);
        assert_eq!(ok(r#"["lobby"]"#).as_deref(), None);
        assert_eq!(ok("null").as_deref(), None);
        assert_eq!(
            room_reply("a", r#"["x","y"]"#),
            r#"{"room":"a","users":["x","y"]}"#
        );
    }
}
