//! How a handler call can end badly. Each outcome becomes an error frame for the client; the
//! `kind` is the stable part of the protocol (`docs/PROTOCOL.md`).

use crate::protocol::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("unknown event")]
    UnknownEvent,
    #[error("handler failed with status {0}")]
    Failed(i32),
    #[error("handler trapped: {0}")]
    Trapped(String),
    #[error("handler timeout")]
    Timeout,
    #[error("handler fuel exhausted")]
    Fuel,
    #[error("memory limit")]
    MemoryLimit,
    #[error("send limit: one call may send {0} messages and {1} bytes")]
    SendLimit(u32, u64),
    #[error("server busy: no handler instance available")]
    Busy,
}

impl CallError {
    /// What the client's error frame says. Never the engine's text, a wasm backtrace or
    /// anything from the module's name section: those details go to the log and to
    /// `/admin/modules` (`last_call_error`).
    pub fn client_message(&self) -> String {
        match self {
            CallError::Trapped(_) => "handler trapped".into(),
            e => e.to_string(),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            CallError::UnknownEvent => ErrorKind::UnknownEvent,
            CallError::Failed(_) => ErrorKind::HandlerFailed,
            CallError::Trapped(_) => ErrorKind::HandlerTrapped,
            CallError::Timeout | CallError::Fuel => ErrorKind::HandlerTimeout,
            CallError::MemoryLimit => ErrorKind::MemoryLimit,
            CallError::SendLimit(..) => ErrorKind::SendLimit,
            CallError::Busy => ErrorKind::Busy,
        }
    }
}
