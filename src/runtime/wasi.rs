//! A component's WASI context: WASI preview 2 that opens nothing, and what the guest prints.
//!
//! Owns [`ComponentCtx`], what a component instance's store holds beside the call state, and
//! the stdout/stderr pipes that buffer a call's output for the guest log. It must never write
//! the output anywhere itself (the guest log does, after the call, under its limits) and never
//! block the guest: what passes the cap is dropped.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder};

/// What one call may write to stdout and to stderr; more is dropped.
const OUTPUT_CAP: usize = 64 * 1024;

/// WASI that opens nothing: no preopened directory, no environment, no arguments, stdin
/// empty, no socket (TCP, UDP and name lookups off; the address check refuses every address
/// besides). Clocks and random are the host's.
pub fn empty_wasi() -> WasiCtxBuilder {
    let mut b = WasiCtxBuilder::new();
    b.allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
    b
}

/// What a component instance's store holds beside `HostState`'s call state: its WASI context
/// and resource table, and what it printed.
pub struct ComponentCtx {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub stdout: LogPipe,
    pub stderr: LogPipe,
    /// The size of its largest memory so far, bytes (a reused instance is retired when it
    /// grew too much, see `component::REUSE_MAX_GROWTH_BYTES`).
    pub memory_peak: usize,
}

impl ComponentCtx {
    pub fn new() -> Self {
        let (stdout, stderr) = (LogPipe::default(), LogPipe::default());
        let wasi = empty_wasi().stdout(stdout.clone()).stderr(stderr.clone()).build();
        Self { wasi, table: ResourceTable::new(), stdout, stderr, memory_peak: 0 }
    }
}

/// stdout or stderr of one component instance: a buffer drained after every call.
#[derive(Clone, Default)]
pub struct LogPipe(Arc<Mutex<Vec<u8>>>);

impl LogPipe {
    fn push(&self, bytes: &[u8]) {
        let mut buf = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let room = OUTPUT_CAP.saturating_sub(buf.len());
        buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl IsTerminal for LogPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for LogPipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    /// Always room: what passes the per-call cap is dropped, never waited for.
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(OUTPUT_CAP)
    }
}

impl Pollable for LogPipe {
    fn ready<'a, 'b>(&'a mut self) -> Pin<Box<dyn Future<Output = ()> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(std::future::ready(()))
    }
}

impl tokio::io::AsyncWrite for LogPipe {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
