//! Guest SDK for Switchyard handler modules: write WebSocket event
//! handlers in safe Rust, compile them to `wasm32-unknown-unknown`, and let the Switchyard host
//! run them.
//!
//! It implements handler ABI v1 (`docs/ABI.md` in the Switchyard repository):
//!
//! * [`handlers!`] generates the module's exports: one `(ptr, len) -> i32` function per
//!   handler, plus `alloc`, the `switchyard_abi_v1` marker and `switchyard_reset`;
//! * a handler receives a parsed [`Request`] and returns `Result<(), E>` where
//!   `E: Into<`[`HandlerError`]`>`;
//! * the free functions ([`send_success`], [`send_to_tag`], [`join_tag`], [`client_id`], ...)
//!   are safe wrappers over the host imports of module `switchyard`; they return
//!   `Result<_, `[`Error`]`>` where the error is the host's negative status code.
//!
//! Only the host functions a module calls become imports, and the host grants imports per
//! module (`tags`, `capabilities` in the manifest): a module that never calls
//! [`send_to_all`] loads without the `send_to_all` capability.
//!
//! ```no_run
//! use switchyard_sdk::{HandlerError, Request};
//!
//! switchyard_sdk::handlers! {
//!     echo => echo,
//!     whoami => whoami,
//! }
//!
//! /// Replies with the request's own event and data.
//! fn echo(req: &Request) -> Result<(), HandlerError> {
//!     switchyard_sdk::send_success_raw(req.event(), req.data())?;
//!     Ok(())
//! }
//!
//! /// Replies with `{"client": ..., "user": ...}`.
//! fn whoami(req: &Request) -> Result<(), HandlerError> {
//!     let me = switchyard_sdk::serde_json::json!({ "client": req.client_id(), "user": req.user_id() });
//!     switchyard_sdk::send_success(req.event(), &me)?;
//!     Ok(())
//! }
//! # fn main() {}
//! ```
//!
//! By default every event runs in a fresh instance that is thrown away afterwards, so nothing
//! (statics included) survives from one event to the next. A module the operator marks
//! `instance = "reuse"` keeps its instance between events instead; the generated
//! `switchyard_reset` export then frees the request buffer's arena between events, and
//! whatever your code keeps in statics is seen by later events (and other users). The default
//! Rust allocator is fine in both modes.
//!
//! Off WebAssembly the crate still compiles (for `cargo check`, docs and unit tests of pure
//! logic), but every host call panics there.

#![warn(missing_docs)]

mod error;
mod request;
mod sys;

use serde::Serialize;

pub use error::{Error, HandlerError};
pub use request::Request;

/// Re-export of the `serde` this SDK is built against.
pub use serde;
/// Re-export of the `serde_json` this SDK is built against (`json!`, `Value`, ...).
pub use serde_json;

// ---------------------------------------------------------------------------------------------
// Small helpers over (ptr, len) pairs and status codes.

/// A guest slice as the ABI's `(ptr, len)` pair of `i32`s (wasm32 addresses fit).
#[inline(always)]
fn raw(bytes: &[u8]) -> (i32, i32) {
    (bytes.as_ptr() as usize as i32, bytes.len() as i32)
}

/// `>= 0` is a count or length, `< 0` an error code.
#[inline(always)]
fn check(rc: i32) -> Result<u32, Error> {
    if rc >= 0 {
        Ok(rc as u32)
    } else {
        Err(Error::from_code(rc))
    }
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|_| Error::BadJson)
}

/// Calls a getter-shaped import `(buf_ptr, buf_cap) -> full length` until the value fits,
/// growing the buffer to the length it reported (which may change between calls, e.g. the
/// members of a tag).
fn read_string(initial_cap: usize, mut get: impl FnMut(i32, i32) -> i32) -> Result<String, Error> {
    let mut buf = vec![0u8; initial_cap];
    loop {
        let (ptr, cap) = raw(&buf);
        let len = check(get(ptr, cap))? as usize;
        if len <= buf.len() {
            buf.truncate(len);
            return String::from_utf8(buf).map_err(|_| Error::BadUtf8);
        }
        buf = vec![0u8; len];
    }
}

// ---------------------------------------------------------------------------------------------
// Replies to the calling client.

/// Sends `{"event":event,"code":0,"data":<data as JSON>}` to the calling client.
///
/// Serialisation failures (a map with non-string keys, ...) give [`Error::BadJson`].
pub fn send_success<T: Serialize + ?Sized>(event: &str, data: &T) -> Result<(), Error> {
    send_success_raw(event, &to_json(data)?)
}

/// Sends `{"event":event,"code":0,"data":<raw_json>}` to the calling client, where `raw_json`
/// is JSON text passed through unchanged (the host checks it is valid JSON, else
/// [`Error::BadJson`]). An empty `raw_json` omits `data` from the frame.
///
/// No allocation and no serde: the fastest way to reply, e.g. to echo
/// [`Request::data`] back.
#[inline]
pub fn send_success_raw(event: &str, raw_json: &str) -> Result<(), Error> {
    let (e, el) = raw(event.as_bytes());
    let (d, dl) = raw(raw_json.as_bytes());
    check(unsafe { sys::send_success(e, el, d, dl) }).map(drop)
}

/// Sends `{"event":event,"code":-1,"errorMsg":msg}` to the calling client. `msg` is plain text;
/// the host escapes it.
pub fn send_error(event: &str, msg: &str) -> Result<(), Error> {
    let (e, el) = raw(event.as_bytes());
    let (m, ml) = raw(msg.as_bytes());
    check(unsafe { sys::send_error(e, el, m, ml) }).map(drop)
}

// ---------------------------------------------------------------------------------------------
// Sends to others. Each returns how many connections the frame was queued to.

/// Sends a success frame `{"event":event,"code":0,"data":<data>}` to the connection
/// `client_id`; returns how many connections it was queued to (`0` or `1`).
///
/// Needs the `send_to_client` capability (the module is refused at load otherwise).
pub fn send_to_client<T: Serialize + ?Sized>(
    client_id: &str,
    event: &str,
    data: &T,
) -> Result<u32, Error> {
    send_to_client_raw(client_id, event, &to_json(data)?)
}

/// [`send_to_client`] with `data` given as raw JSON text (empty omits `data`).
pub fn send_to_client_raw(client_id: &str, event: &str, raw_json: &str) -> Result<u32, Error> {
    let (t, tl) = raw(client_id.as_bytes());
    let (e, el) = raw(event.as_bytes());
    let (d, dl) = raw(raw_json.as_bytes());
    check(unsafe { sys::send_to_client(t, tl, e, el, d, dl) })
}

/// Sends a success frame to every connection of the user `user_id`; returns how many
/// connections it was queued to.
///
/// Needs the `send_to_user` capability.
pub fn send_to_user<T: Serialize + ?Sized>(
    user_id: &str,
    event: &str,
    data: &T,
) -> Result<u32, Error> {
    send_to_user_raw(user_id, event, &to_json(data)?)
}

/// [`send_to_user`] with `data` given as raw JSON text (empty omits `data`).
pub fn send_to_user_raw(user_id: &str, event: &str, raw_json: &str) -> Result<u32, Error> {
    let (t, tl) = raw(user_id.as_bytes());
    let (e, el) = raw(event.as_bytes());
    let (d, dl) = raw(raw_json.as_bytes());
    check(unsafe { sys::send_to_user(t, tl, e, el, d, dl) })
}

/// Sends a success frame to every connection in `tag`; returns how many connections it was
/// queued to (the caller included, if it is a member).
///
/// Needs `tag` to match one of the module's `tags` patterns ([`Error::Denied`] otherwise).
pub fn send_to_tag<T: Serialize + ?Sized>(tag: &str, event: &str, data: &T) -> Result<u32, Error> {
    send_to_tag_raw(tag, event, &to_json(data)?)
}

/// [`send_to_tag`] with `data` given as raw JSON text (empty omits `data`).
pub fn send_to_tag_raw(tag: &str, event: &str, raw_json: &str) -> Result<u32, Error> {
    let (t, tl) = raw(tag.as_bytes());
    let (e, el) = raw(event.as_bytes());
    let (d, dl) = raw(raw_json.as_bytes());
    check(unsafe { sys::send_to_tag(t, tl, e, el, d, dl) })
}

/// Sends a success frame to every connection on the server; returns how many connections it
/// was queued to.
///
/// Needs the `send_to_all` capability.
pub fn send_to_all<T: Serialize + ?Sized>(event: &str, data: &T) -> Result<u32, Error> {
    send_to_all_raw(event, &to_json(data)?)
}

/// [`send_to_all`] with `data` given as raw JSON text (empty omits `data`).
pub fn send_to_all_raw(event: &str, raw_json: &str) -> Result<u32, Error> {
    let (e, el) = raw(event.as_bytes());
    let (d, dl) = raw(raw_json.as_bytes());
    check(unsafe { sys::send_to_all(e, el, d, dl) })
}

// ---------------------------------------------------------------------------------------------
// Tags of the calling client.

/// Adds the calling client to `tag` (idempotent).
///
/// Needs `tag` to match one of the module's `tags` patterns ([`Error::Denied`] otherwise); an
/// empty tag is [`Error::Invalid`].
pub fn join_tag(tag: &str) -> Result<(), Error> {
    let (t, tl) = raw(tag.as_bytes());
    check(unsafe { sys::join_tag(t, tl) }).map(drop)
}

/// Removes the calling client from `tag`.
///
/// Needs `tag` to match one of the module's `tags` patterns ([`Error::Denied`] otherwise).
pub fn quit_tag(tag: &str) -> Result<(), Error> {
    let (t, tl) = raw(tag.as_bytes());
    check(unsafe { sys::quit_tag(t, tl) }).map(drop)
}

/// The distinct user ids online in `tag`, sorted ascending.
///
/// Needs `tag` to match one of the module's `tags` patterns ([`Error::Denied`] otherwise).
pub fn tag_members(tag: &str) -> Result<Vec<String>, Error> {
    serde_json::from_str(&tag_members_raw(tag)?).map_err(|_| Error::BadJson)
}

/// [`tag_members`] as the JSON text the host wrote (`["alice","bob"]`), to pass through
/// without parsing.
pub fn tag_members_raw(tag: &str) -> Result<String, Error> {
    let (t, tl) = raw(tag.as_bytes());
    read_string(256, |buf, cap| unsafe { sys::tag_members(t, tl, buf, cap) })
}

// ---------------------------------------------------------------------------------------------
// Getters and logging.

/// The calling client's connection id (also in [`Request::client_id`]).
pub fn client_id() -> Result<String, Error> {
    read_string(64, |buf, cap| unsafe { sys::client_id(buf, cap) })
}

/// The calling client's user id, empty for a guest (also in [`Request::user_id`]).
pub fn user_id() -> Result<String, Error> {
    read_string(64, |buf, cap| unsafe { sys::user_id(buf, cap) })
}

/// The caller's verified JWT claims as a JSON object (`{}` for a guest).
///
/// Needs the `claims` capability.
pub fn claims() -> Result<serde_json::Value, Error> {
    serde_json::from_str(&claims_raw()?).map_err(|_| Error::BadJson)
}

/// [`claims`] as the JSON text the host wrote.
pub fn claims_raw() -> Result<String, Error> {
    read_string(512, |buf, cap| unsafe { sys::claims(buf, cap) })
}

/// Severity of a [`log`] line; the host logs through `tracing` at that level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(i32)]
pub enum Level {
    /// `tracing::Level::TRACE` (0).
    Trace = 0,
    /// `tracing::Level::DEBUG` (1).
    Debug = 1,
    /// `tracing::Level::INFO` (2).
    Info = 2,
    /// `tracing::Level::WARN` (3).
    Warn = 3,
    /// `tracing::Level::ERROR` (4).
    Error = 4,
}

/// Logs `msg` through the host's `tracing`, prefixed with the module's name.
///
/// Logging cannot meaningfully fail for a valid `&str`, so the host's status is ignored.
pub fn log(level: Level, msg: &str) {
    let (m, ml) = raw(msg.as_bytes());
    let _ = unsafe { sys::log(level as i32, m, ml) };
}

// ---------------------------------------------------------------------------------------------
// The exports.

/// Generates the module's exports: one handler export per `export_name => handler` pair, plus
/// `alloc`, the `switchyard_abi_v1` marker and `switchyard_reset` (ABI v1).
///
/// ```no_run
/// use switchyard_sdk::{HandlerError, Request};
///
/// switchyard_sdk::handlers! {
///     echo => my_echo,       // export "echo" runs my_echo
///     fail => |_req| Err(HandlerError::new(3)),
/// }
///
/// fn my_echo(req: &Request) -> Result<(), HandlerError> {
///     switchyard_sdk::send_success_raw(req.event(), req.data())?;
///     Ok(())
/// }
/// # fn main() {}
/// ```
///
/// * `export_name` is a Rust identifier; it is the name the manifest's `export = "..."` uses.
///   It does not clash with your own items: a handler function may have the same name.
/// * `handler` is any expression callable as `FnOnce(&Request) -> Result<(), E>` with
///   `E: Into<HandlerError>`: a function path, or a closure. `Ok(())` makes the export return
///   `0`; `Err(e)` returns `e.into().status()` (non-zero). A request that does not parse
///   (never the case with a conforming host) returns the code of [`Error::Invalid`] (-6) or
///   [`Error::BadUtf8`] (-2) without calling the handler.
///
/// **Invoke it exactly once per crate** (any module, usually the crate root), listing every
/// handler: it defines the exported symbols `alloc`, `switchyard_abi_v1` and
/// `switchyard_reset`, so a second
/// invocation fails to compile with "symbol `alloc` is already defined". The crate must be
/// built as a `cdylib` for `wasm32-unknown-unknown`.
///
/// The generated code is the only `unsafe` involved (the export attributes and the read of the
/// request the host placed in memory); the crate using the macro needs none and may
/// `#![forbid(unsafe_code)]`.
#[macro_export]
macro_rules! handlers {
    ($($export:ident => $handler:expr),* $(,)?) => {
        const _: () = {
            /// ABI v1: returns `len` fresh bytes for the request, `0` when out of memory.
            #[unsafe(export_name = "alloc")]
            extern "C" fn __switchyard_alloc(len: i32) -> i32 {
                $crate::__private::alloc(len)
            }

            /// ABI v1 marker export; never called.
            #[unsafe(export_name = "switchyard_abi_v1")]
            extern "C" fn __switchyard_abi_v1() {}

            /// ABI v1: run between two events when the instance is reused.
            #[unsafe(export_name = "switchyard_reset")]
            extern "C" fn __switchyard_reset() {
                $crate::__private::reset()
            }
        };
        $(
            const _: () = {
                #[unsafe(export_name = ::core::stringify!($export))]
                extern "C" fn __switchyard_handler(ptr: i32, len: i32) -> i32 {
                    // SAFETY: the host calls a handler export with the (ptr, len) of a request
                    // it wrote into memory obtained from this module's `alloc`.
                    unsafe { $crate::__private::run(ptr, len, $handler) }
                }
            };
        )*
    };
}

/// Implementation details of [`handlers!`]; not a public API.
#[doc(hidden)]
pub mod __private {
    use crate::{Error, HandlerError, Request};

    /// Bytes of the static arena `alloc` serves small requests from.
    const ARENA_BYTES: usize = 16 * 1024;

    #[repr(C, align(8))]
    struct Arena(core::cell::UnsafeCell<[u8; ARENA_BYTES]>);
    // SAFETY: a wasm32 instance is single-threaded; the arena is only touched by `alloc`.
    unsafe impl Sync for Arena {}
    static ARENA: Arena = Arena(core::cell::UnsafeCell::new([0; ARENA_BYTES]));
    static ARENA_USED: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

    /// The `alloc` export: `len` bytes, 8-aligned. Arena bytes come back at [`reset`]; a larger
    /// request's heap block is freed by [`run`] once its handler returns.
    /// Returns `0` for a negative length or when memory cannot grow.
    ///
    /// Small requests come from a zeroed static arena (part of the initial memory), so a
    /// handler that allocates nothing else never makes the allocator grow memory: that keeps
    /// a fresh instance per event cheap.
    #[inline]
    pub fn alloc(len: i32) -> i32 {
        use core::sync::atomic::Ordering::Relaxed;
        if len < 0 {
            return 0;
        }
        let need = ((len as usize).max(1) + 7) & !7;
        let used = ARENA_USED.load(Relaxed);
        if used + need <= ARENA_BYTES {
            ARENA_USED.store(used + need, Relaxed);
            return (ARENA.0.get() as usize + used) as i32;
        }
        let Ok(layout) = std::alloc::Layout::from_size_align((len as usize).max(1), 8) else {
            return 0;
        };
        // SAFETY: the layout has a non-zero size. A null result (out of memory) becomes 0.
        unsafe { std::alloc::alloc(layout) as usize as i32 }
    }

    /// The `switchyard_reset` export: the arena is free again for the next event.
    pub fn reset() {
        ARENA_USED.store(0, core::sync::atomic::Ordering::Relaxed);
    }

    /// Parses the request at `(ptr, len)` and runs `handler` on it; returns the export status.
    ///
    /// # Safety
    ///
    /// `ptr .. ptr + len` must be readable memory that stays valid and unmodified during the
    /// call (the host's request, written into a block from [`alloc`]).
    #[inline]
    pub unsafe fn run<F, E>(ptr: i32, len: i32, handler: F) -> i32
    where
        F: FnOnce(&Request<'_>) -> Result<(), E>,
        E: Into<HandlerError>,
    {
        if ptr == 0 || len < 0 {
            return Error::Invalid.code();
        }
        // SAFETY: upheld by the caller.
        let bytes =
            unsafe { core::slice::from_raw_parts(ptr as u32 as usize as *const u8, len as usize) };
        let status = dispatch(bytes, handler);
        let arena = ARENA.0.get() as usize;
        let at = ptr as u32 as usize;
        if !(arena..arena + ARENA_BYTES).contains(&at) {
            // A heap block from `alloc`, with the layout it was allocated with.
            if let Ok(layout) = std::alloc::Layout::from_size_align((len as usize).max(1), 8) {
                // SAFETY: `ptr` came from `alloc(len)` outside the arena, i.e. from
                // `std::alloc::alloc` with this layout, and nothing borrows it any more.
                unsafe { std::alloc::dealloc(at as *mut u8, layout) }
            }
        }
        status
    }

    /// The safe part of [`run`]: parse, call, map the result to a status.
    #[inline]
    pub fn dispatch<F, E>(bytes: &[u8], handler: F) -> i32
    where
        F: FnOnce(&Request<'_>) -> Result<(), E>,
        E: Into<HandlerError>,
    {
        match Request::parse(bytes) {
            Ok(req) => match handler(&req) {
                Ok(()) => 0,
                Err(err) => err.into().status(),
            },
            Err(err) => err.code(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip() {
        for code in -7..=-1 {
            assert_eq!(Error::from_code(code).code(), code);
        }
        assert_eq!(Error::from_code(-4), Error::Denied);
        assert_eq!(Error::from_code(-9), Error::Other(-9));
        assert_eq!(
            Error::Denied.to_string(),
            "not granted by the module's manifest entry (ERR_DENIED, -4)"
        );
    }

    #[test]
    fn handler_error_is_never_zero() {
        assert_eq!(HandlerError::new(0).status(), 1);
        assert_eq!(HandlerError::new(3).status(), 3);
        assert_eq!(HandlerError::from(Error::Limit).status(), -5);
        let bad: serde_json::Error = serde_json::from_str::<u8>("x").unwrap_err();
        assert_eq!(HandlerError::from(bad).status(), -3);
    }

    #[test]
    fn dispatch_maps_results() {
        use __private::dispatch;
        let mut bytes = 1u32.to_le_bytes().to_vec();
        for len in [4u32, 4, 1, 0] {
            bytes.extend_from_slice(&len.to_le_bytes());
        }
        bytes.extend_from_slice(b"echonullc");
        assert_eq!(
            dispatch(&bytes, |r| if r.data() == "null" {
                Ok(())
            } else {
                Err(HandlerError::new(9))
            }),
            0
        );
        assert_eq!(dispatch(&bytes, |_| Err(HandlerError::new(3))), 3);
        assert_eq!(dispatch(&bytes, |_| Err(Error::Denied)), -4);
        assert_eq!(dispatch(&bytes[..25], |_| Ok::<(), Error>(())), -6);
    }
}
