//! A lean client side of an open WebSocket for the closed-loop engine (`load.rs`). The handshake
//! (and Switchyard's welcome) goes through tokio-tungstenite in `net.rs`; after that, every
//! microsecond the generator spends per message is taken from the server it shares the machine
//! with, so frames are formatted with tungstenite's `FrameHeader` into one buffer flushed once
//! per batch, and read from a buffer that [`RawWs::try_next`] inspects without a syscall.
//! Reading is cancel-safe: a frame is taken from the buffer only once it is complete.

use std::io::Cursor;

use anyhow::{Result, anyhow, bail};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};

use crate::net::Ws;

/// Largest frame the engine accepts from a server (echo replies are small).
const MAX_FRAME: u64 = 16 << 20;

/// A frame the engine cares about.
pub enum Incoming {
    Text(Utf8Bytes),
    /// The server closed the WebSocket (close frame), with its code if it sent one.
    Close(Option<u16>),
}

pub struct RawWs {
    stream: TcpStream,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
    /// xorshift state for frame masks (clients must mask; any unpredictable key will do).
    rng: u64,
    /// A close frame was sent: nothing else may be.
    closing: bool,
}

impl RawWs {
    /// Takes over a connection after its handshake. The engine only does this right after
    /// connecting (and after Switchyard's welcome), when tungstenite holds no unread bytes.
    pub fn from_ws(ws: Ws, seed: u64) -> Self {
        Self::new(ws.into_inner(), seed)
    }

    fn new(stream: TcpStream, seed: u64) -> Self {
        Self {
            stream,
            rbuf: BytesMut::with_capacity(4096),
            wbuf: Vec::with_capacity(512),
            rng: seed | 1,
            closing: false,
        }
    }

    fn mask(&mut self) -> [u8; 4] {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng as u32).to_ne_bytes()
    }

    fn queue(&mut self, opcode: OpCode, payload: &[u8]) {
        let mask = self.mask();
        let header = FrameHeader { opcode, mask: Some(mask), ..FrameHeader::default() };
        header.format(payload.len() as u64, &mut self.wbuf).expect("writing to a Vec");
        let start = self.wbuf.len();
        self.wbuf.extend_from_slice(payload);
        for (i, b) in self.wbuf[start..].iter_mut().enumerate() {
            *b ^= mask[i & 3];
        }
    }

    /// Queues a text frame; [`flush`](Self::flush) sends everything queued.
    pub fn feed_text(&mut self, text: &str) {
        if !self.closing {
            self.queue(OpCode::Data(Data::Text), text.as_bytes());
        }
    }

    pub fn has_unflushed(&self) -> bool {
        !self.wbuf.is_empty()
    }

    pub async fn flush(&mut self) -> Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// The next frame if one is already buffered: no syscall. Pings are answered (queued),
    /// pongs skipped.
    pub fn try_next(&mut self) -> Result<Option<Incoming>> {
        loop {
            let mut cur = Cursor::new(&self.rbuf[..]);
            let Some((header, len)) = FrameHeader::parse(&mut cur)? else { return Ok(None) };
            if len > MAX_FRAME {
                bail!("frame of {len} bytes from the server");
            }
            let hlen = cur.position() as usize;
            if self.rbuf.len() < hlen + len as usize {
                self.rbuf.reserve(hlen + len as usize - self.rbuf.len());
                return Ok(None);
            }
            if header.mask.is_some() || !header.is_final {
                bail!("masked or fragmented frame from the server (the engine expects neither)");
            }
            self.rbuf.advance(hlen);
            let payload = self.rbuf.split_to(len as usize);
            match header.opcode {
                OpCode::Data(Data::Text) => {
                    let text = Utf8Bytes::try_from(payload.freeze()).map_err(|_| anyhow!("text frame is not UTF-8"))?;
                    return Ok(Some(Incoming::Text(text)));
                }
                OpCode::Control(Control::Close) => {
                    let code = (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                    return Ok(Some(Incoming::Close(code)));
                }
                OpCode::Control(Control::Ping) if !self.closing => {
                    self.queue(OpCode::Control(Control::Pong), &payload);
                }
                _ => {} // pong, binary, a ping while closing: not replies
            }
        }
    }

    /// The next frame, reading as needed. Cancel-safe.
    pub async fn next(&mut self) -> Result<Option<Incoming>> {
        loop {
            if let Some(f) = self.try_next()? {
                return Ok(Some(f));
            }
            if self.has_unflushed() {
                self.flush().await?; // a pong owed
            }
            if self.stream.read_buf(&mut self.rbuf).await? == 0 {
                return Ok(None);
            }
        }
    }

    /// Closes politely: close frame (1000), then waits for the server's close or EOF.
    pub async fn close(mut self) {
        self.wbuf.clear();
        self.queue(OpCode::Control(Control::Close), &1000u16.to_be_bytes());
        self.closing = true;
        if self.flush().await.is_err() {
            return;
        }
        while let Ok(Some(f)) = self.next().await {
            if matches!(f, Incoming::Close(_)) {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `RawWs` over a real loopback connection, and the server's end of it.
    async fn pair() -> (RawWs, TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (server, _) = l.accept().await.unwrap();
        (RawWs::new(client, 7), server)
    }

    #[tokio::test]
    async fn a_frame_split_across_reads_is_taken_only_once_complete_and_pings_are_answered() {
        let (mut ws, mut server) = pair().await;
        // ping "p", then text "hello" in two pieces.
        server.write_all(&[0x89, 1, b'p', 0x81, 5, b'h', b'e']).await.unwrap();
        while ws.rbuf.len() < 7 {
            ws.stream.read_buf(&mut ws.rbuf).await.unwrap();
        }
        assert!(ws.try_next().unwrap().is_none(), "incomplete text frame");
        assert!(ws.has_unflushed(), "a pong is owed");
        server.write_all(b"llo").await.unwrap();
        match ws.next().await.unwrap() {
            Some(Incoming::Text(t)) => assert_eq!(t.as_str(), "hello"),
            _ => panic!("expected the text frame"),
        }
        // The pong went out masked, carrying the ping's payload.
        let mut pong = [0u8; 7];
        server.read_exact(&mut pong).await.unwrap();
        assert_eq!((pong[0], pong[1]), (0x8A, 0x81));
        assert_eq!(pong[6] ^ pong[2], b'p');
    }

    #[tokio::test]
    async fn text_goes_out_as_one_masked_final_frame() {
        let (mut ws, mut server) = pair().await;
        ws.feed_text("{\"event\":\"echo\"}");
        ws.flush().await.unwrap();
        let mut buf = [0u8; 2 + 4 + 16];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!((buf[0], buf[1]), (0x81, 0x80 | 16));
        let text: Vec<u8> = buf[6..].iter().enumerate().map(|(i, b)| b ^ buf[2 + (i & 3)]).collect();
        assert_eq!(text, b"{\"event\":\"echo\"}");
    }
}
