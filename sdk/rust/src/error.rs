//! [`Error`] (a host call's negative status) and [`HandlerError`] (a handler's non-zero status).

use core::fmt;

/// A failed host call: one of the negative status codes of ABI v1.
///
/// [`code`](Error::code) gives the raw `i32` back, [`from_code`](Error::from_code) maps one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// `ERR_BAD_POINTER` (-1): a `(ptr, len)` pair fell outside guest memory, or overflowed.
    BadPointer,
    /// `ERR_BAD_UTF8` (-2): a string was not valid UTF-8 (also used by the SDK when the host
    /// hands back bytes that are not UTF-8).
    BadUtf8,
    /// `ERR_BAD_JSON` (-3): a `data` argument was not valid JSON (also used by the SDK when a
    /// value cannot be serialised to, or the host's answer parsed from, JSON).
    BadJson,
    /// `ERR_DENIED` (-4): the module's manifest entry does not grant this (a tag outside its
    /// `tags` patterns, ...).
    Denied,
    /// `ERR_LIMIT` (-5): this call has used up its send budget (`max_sends` / `max_send_bytes`).
    Limit,
    /// `ERR_INVALID` (-6): another invalid argument (an empty tag, ...). The SDK also uses it
    /// for a malformed request.
    Invalid,
    /// Any other status code (from a newer host, say). Holds the raw code.
    Other(i32),
}

impl Error {
    /// Maps a status code to an `Error`. Known codes become their variant; anything else
    /// (including non-negative values, which are not errors) becomes [`Error::Other`].
    pub const fn from_code(code: i32) -> Self {
        match code {
            -1 => Error::BadPointer,
            -2 => Error::BadUtf8,
            -3 => Error::BadJson,
            -4 => Error::Denied,
            -5 => Error::Limit,
            -6 => Error::Invalid,
            other => Error::Other(other),
        }
    }

    /// The ABI status code of this error (`-1` ..= `-6`, or the code held by `Other`).
    pub const fn code(self) -> i32 {
        match self {
            Error::BadPointer => -1,
            Error::BadUtf8 => -2,
            Error::BadJson => -3,
            Error::Denied => -4,
            Error::Limit => -5,
            Error::Invalid => -6,
            Error::Other(code) => code,
        }
    }

    /// The ABI name of the code (`"ERR_DENIED"`, ...), `"ERR_OTHER"` for [`Error::Other`].
    pub const fn name(self) -> &'static str {
        match self {
            Error::BadPointer => "ERR_BAD_POINTER",
            Error::BadUtf8 => "ERR_BAD_UTF8",
            Error::BadJson => "ERR_BAD_JSON",
            Error::Denied => "ERR_DENIED",
            Error::Limit => "ERR_LIMIT",
            Error::Invalid => "ERR_INVALID",
            Error::Other(_) => "ERR_OTHER",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            Error::BadPointer => "pointer or length outside guest memory",
            Error::BadUtf8 => "string is not valid UTF-8",
            Error::BadJson => "not valid JSON",
            Error::Denied => "not granted by the module's manifest entry",
            Error::Limit => "send budget of this call used up",
            Error::Invalid => "invalid argument",
            Error::Other(_) => "unknown host status",
        };
        write!(f, "{what} ({}, {})", self.name(), self.code())
    }
}

impl std::error::Error for Error {}

/// Why a handler failed: the non-zero status its export returns to the host.
///
/// The client then receives `{"code":-1,"errorMsg":"handler failed with status N"}`. Replies the
/// handler already sent are still delivered. To fail with a message of your own, call
/// [`send_error`](crate::send_error) and return `Ok(())` instead.
///
/// `?` converts into it: an SDK [`Error`] keeps its (negative) ABI code, so a denied tag call
/// fails the event with status `-4`; a `serde_json::Error` (from
/// [`Request::data_as`](crate::Request::data_as), say) becomes `-3` (`ERR_BAD_JSON`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HandlerError {
    status: i32,
}

impl HandlerError {
    /// A failure with this status. `0` means success in the ABI, so it is replaced by `1`.
    pub const fn new(status: i32) -> Self {
        HandlerError {
            status: if status == 0 { 1 } else { status },
        }
    }

    /// The status the export returns (never `0`).
    pub const fn status(self) -> i32 {
        self.status
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "handler failed with status {}", self.status)
    }
}

impl std::error::Error for HandlerError {}

impl From<Error> for HandlerError {
    fn from(err: Error) -> Self {
        HandlerError::new(err.code())
    }
}

impl From<serde_json::Error> for HandlerError {
    fn from(_: serde_json::Error) -> Self {
        HandlerError::new(Error::BadJson.code())
    }
}
