//! [`Request`]: the event a handler export is called with.

use serde::Deserialize;

use crate::Error;

/// One client event, as the host hands it to a handler export.
///
/// Parsed without copying from the request layout of ABI v1 (a 20-byte header of five
/// little-endian `u32`s: version, then the lengths of event, data, client id and user id,
/// followed by the four strings). Cheap to copy; every accessor borrows from the request bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    event: &'a str,
    data: &'a str,
    client_id: &'a str,
    user_id: &'a str,
}

impl<'a> Request<'a> {
    /// The ABI version this SDK understands (the header's first field).
    pub const ABI_VERSION: u32 = 1;
    /// Size of the fixed header before the strings.
    pub const HEADER_LEN: usize = 20;

    /// Parses the request layout from `bytes`.
    ///
    /// Fails with [`Error::Invalid`] when the version is not 1 or the lengths do not fit in
    /// `bytes`, and with [`Error::BadUtf8`] when a field is not UTF-8. Bytes after the four
    /// fields are ignored. The handler exports the [`handlers!`](crate::handlers) macro
    /// generates do this for you; it is public for tests and custom glue.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        if bytes.len() < Self::HEADER_LEN {
            return Err(Error::Invalid);
        }
        let word = |i: usize| {
            let at = 4 * i;
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize
        };
        if word(0) != Self::ABI_VERSION as usize {
            return Err(Error::Invalid);
        }
        let mut rest = &bytes[Self::HEADER_LEN..];
        let mut field = |len: usize| -> Result<&'a str, Error> {
            if len > rest.len() {
                return Err(Error::Invalid);
            }
            let (head, tail) = rest.split_at(len);
            rest = tail;
            core::str::from_utf8(head).map_err(|_| Error::BadUtf8)
        };
        Ok(Request {
            event: field(word(1))?,
            data: field(word(2))?,
            client_id: field(word(3))?,
            user_id: field(word(4))?,
        })
    }

    /// Builds a request from its parts (for tests of handler logic).
    pub const fn new(event: &'a str, data: &'a str, client_id: &'a str, user_id: &'a str) -> Self {
        Request {
            event,
            data,
            client_id,
            user_id,
        }
    }

    /// The client's `"event"` (the route that selected this export).
    pub const fn event(&self) -> &'a str {
        self.event
    }

    /// The raw JSON text of the frame's `"data"` field, exactly as the client sent it; `null`
    /// when the frame had none.
    pub const fn data(&self) -> &'a str {
        self.data
    }

    /// Deserialises [`data`](Request::data) into `T` (any `DeserializeOwned` type, or one
    /// borrowing from the request). `?` turns the error into a [`HandlerError`](crate::HandlerError)
    /// with status `-3`; to answer the client instead, match on it and call
    /// [`send_error`](crate::send_error).
    pub fn data_as<T: Deserialize<'a>>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.data)
    }

    /// The calling client's connection id.
    pub const fn client_id(&self) -> &'a str {
        self.client_id
    }

    /// The calling client's user id; empty for an anonymous guest.
    pub const fn user_id(&self) -> &'a str {
        self.user_id
    }

    /// Whether the caller is an anonymous guest (empty user id).
    pub const fn is_guest(&self) -> bool {
        self.user_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(version: u32, fields: [&str; 4]) -> Vec<u8> {
        let mut out = version.to_le_bytes().to_vec();
        for f in fields {
            out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        }
        for f in fields {
            out.extend_from_slice(f.as_bytes());
        }
        out
    }

    #[test]
    fn parses_fields() {
        let bytes = encode(1, ["chat/join", r#"{"room":"a"}"#, "c-1", "alice"]);
        let req = Request::parse(&bytes).unwrap();
        assert_eq!(
            req,
            Request::new("chat/join", r#"{"room":"a"}"#, "c-1", "alice")
        );
        assert!(!req.is_guest());
        let v: serde_json::Value = req.data_as().unwrap();
        assert_eq!(v["room"], "a");
    }

    #[test]
    fn guest_and_null_data() {
        let bytes = encode(1, ["echo", "null", "c", ""]);
        let req = Request::parse(&bytes).unwrap();
        assert_eq!(req.data(), "null");
        assert!(req.is_guest());
    }

    #[test]
    fn rejects_bad_layouts() {
        assert_eq!(Request::parse(&[0; 19]), Err(Error::Invalid));
        assert_eq!(
            Request::parse(&encode(2, ["e", "1", "c", "u"])),
            Err(Error::Invalid)
        );
        let mut short = encode(1, ["e", "1", "c", "u"]);
        short.pop();
        assert_eq!(Request::parse(&short), Err(Error::Invalid));
        let mut huge = encode(1, ["e", "1", "c", "u"]);
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Request::parse(&huge), Err(Error::Invalid));
        let mut bad = encode(1, ["e", "\"x\"", "c", "u"]);
        bad[21] = 0xff;
        assert_eq!(Request::parse(&bad), Err(Error::BadUtf8));
    }
}
