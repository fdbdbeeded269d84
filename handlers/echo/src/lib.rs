//! The reference `echo` module (docs/HANDLERS.md).
//!
//! * `echo` replies `send_success(<request event>, <request data>)`, the data's raw JSON
//!   passed through unchanged (`null` when the frame had none), and returns 0. It is routed as
//!   `echo` and as hotgo's `admin/addons/hgexample/testMessage`, and sits on the benchmark hot
//!   path: no allocation, no serde, one host call.
//! * `fail` sends nothing and returns status 3 (the client gets
//!   `handler failed with status 3`).

#![forbid(unsafe_code)]

use switchyard_sdk::{HandlerError, Request, send_success_raw};

switchyard_sdk::handlers! {
    echo => echo,
    fail => fail,
}

/// Replies with the request's own event and raw data. Always returns 0: a failed reply (which
/// a conforming host never produces here) is not turned into a second, error reply.
fn echo(req: &Request) -> Result<(), HandlerError> {
    let _ = send_success_raw(req.event(), req.data());
    Ok(())
}

/// Sends nothing and fails with status 3.
fn fail(_req: &Request) -> Result<(), HandlerError> {
    Err(HandlerError::new(3))
}
