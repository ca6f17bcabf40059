//! A small HTTP/2 client connection over cleartext with prior knowledge (h2c), one stream at
//! a time: enough for the JSON echo over HTTP/2 and for gRPC calls, unary and streaming.
//! It honours the server's settings and flow control and answers PINGs.

mod frame;
mod hpack;
mod huffman;

use std::collections::VecDeque;

use anyhow::{Context, bail};
use bytes::Bytes;
use tokio::{
    io::{AsyncWriteExt, BufReader},
    net::TcpStream,
};

use self::frame::{
    ACK, CONTINUATION, DATA, DEFAULT_MAX_FRAME, DEFAULT_WINDOW, END_HEADERS, END_STREAM, Frame,
    GOAWAY, HEADERS, ID_MASK, PING, PREFACE, PUSH_PROMISE, RST_STREAM, SETTINGS, WINDOW_UPDATE,
    put_frame, read_frame,
};
use super::Fields;

/// SETTINGS_ENABLE_PUSH, which this client turns off.
const SETTING_ENABLE_PUSH: u16 = 0x2;
/// SETTINGS_INITIAL_WINDOW_SIZE.
const SETTING_INITIAL_WINDOW: u16 = 0x4;
/// SETTINGS_MAX_FRAME_SIZE.
const SETTING_MAX_FRAME: u16 = 0x5;
/// Largest value a flow-control window may reach.
const MAX_WINDOW: i64 = ID_MASK as i64;
/// Connection-specific headers, which HTTP/2 forbids.
const HOP_BY_HOP: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// A request head: pseudo-headers, then the `extra` headers HTTP/2 allows; a `host` among
/// them replaces `authority`.
pub(crate) fn request_head(
    method: &str,
    authority: &str,
    path: &str,
    extra: &[(String, String)],
) -> Fields {
    let mut authority = authority.to_owned();
    let mut regular = Vec::new();
    for (name, value) in extra {
        let name = name.to_ascii_lowercase();
        if name == "host" {
            authority.clone_from(value);
        } else if !HOP_BY_HOP.contains(&name.as_str()) {
            regular.push((name, value.clone()));
        }
    }
    let mut head = vec![
        (":method".to_owned(), method.to_owned()),
        (":scheme".to_owned(), "http".to_owned()),
        (":authority".to_owned(), authority),
        (":path".to_owned(), path.to_owned()),
    ];
    head.append(&mut regular);
    head
}

/// What the server sent on the open stream.
#[derive(Debug)]
pub(crate) enum StreamEvent {
    /// A header block: the response head, an informational head, or trailers.
    Headers {
        /// The decoded fields.
        fields: Fields,
        /// The server finished the stream.
        end_stream: bool,
    },
    /// Body bytes.
    Data {
        /// The bytes, padding removed.
        bytes: Bytes,
        /// The server finished the stream.
        end_stream: bool,
    },
    /// The server reset the stream with this error code.
    Reset(u32),
}

impl StreamEvent {
    /// True when nothing more comes on the stream after this.
    fn ends_stream(&self) -> bool {
        match self {
            Self::Headers { end_stream, .. } | Self::Data { end_stream, .. } => *end_stream,
            Self::Reset(_) => true,
        }
    }
}

/// One HTTP/2 connection, used one stream at a time.
pub(crate) struct H2Connection {
    io: BufReader<TcpStream>,
    decoder: hpack::Decoder,
    /// The stream in use; 0 before the first.
    stream: u32,
    /// Events for the stream that arrived while waiting for send window.
    pending: VecDeque<StreamEvent>,
    send_window: i64,
    stream_send_window: i64,
    peer_initial_window: i64,
    peer_max_frame: usize,
    /// The last stream the server will process, once it has sent GOAWAY.
    goaway_after: Option<u32>,
}

impl H2Connection {
    /// Sends the connection preface and this client's settings (no server push).
    pub(crate) async fn handshake(stream: TcpStream) -> anyhow::Result<Self> {
        let mut connection = Self {
            io: BufReader::new(stream),
            decoder: hpack::Decoder::default(),
            stream: 0,
            pending: VecDeque::new(),
            send_window: DEFAULT_WINDOW,
            stream_send_window: DEFAULT_WINDOW,
            peer_initial_window: DEFAULT_WINDOW,
            peer_max_frame: DEFAULT_MAX_FRAME,
            goaway_after: None,
        };
        let mut out = PREFACE.to_vec();
        let mut no_push = SETTING_ENABLE_PUSH.to_be_bytes().to_vec();
        no_push.extend_from_slice(&0_u32.to_be_bytes());
        put_frame(&mut out, SETTINGS, 0, 0, &no_push);
        connection.write(&out).await?;
        Ok(connection)
    }

    /// True while the server takes new streams on this connection.
    pub(crate) fn accepts_new_streams(&self) -> bool {
        self.goaway_after.is_none() && self.stream + 2 <= ID_MASK
    }

    /// Opens the next stream with a request head; `end_stream` when there is no body.
    pub(crate) async fn open_stream(
        &mut self,
        fields: &Fields,
        end_stream: bool,
    ) -> anyhow::Result<()> {
        if !self.accepts_new_streams() {
            bail!("the HTTP/2 connection takes no new streams");
        }
        self.stream = if self.stream == 0 { 1 } else { self.stream + 2 };
        self.stream_send_window = self.peer_initial_window;
        self.pending.clear();
        let mut block = Vec::new();
        hpack::encode(fields, &mut block);
        let mut out = Vec::new();
        let mut pieces = block.chunks(self.peer_max_frame).peekable();
        let mut kind = HEADERS;
        let mut flags = if end_stream { END_STREAM } else { 0 };
        while let Some(piece) = pieces.next() {
            if pieces.peek().is_none() {
                flags |= END_HEADERS;
            }
            put_frame(&mut out, kind, flags, self.stream, piece);
            kind = CONTINUATION;
            flags = 0;
        }
        self.write(&out).await
    }

    /// Sends body bytes on the open stream, within the server's flow-control windows.
    pub(crate) async fn send_data(&mut self, data: &[u8], end_stream: bool) -> anyhow::Result<()> {
        let end_flag = if end_stream { END_STREAM } else { 0 };
        if data.is_empty() {
            let mut out = Vec::new();
            put_frame(&mut out, DATA, end_flag, self.stream, &[]);
            return self.write(&out).await;
        }
        let mut pieces = data.chunks(self.peer_max_frame).peekable();
        while let Some(piece) = pieces.next() {
            self.wait_for_window(piece.len()).await?;
            let length = piece.len() as i64;
            self.send_window -= length;
            self.stream_send_window -= length;
            let flags = if pieces.peek().is_none() { end_flag } else { 0 };
            let mut out = Vec::new();
            put_frame(&mut out, DATA, flags, self.stream, piece);
            self.write(&out).await?;
        }
        Ok(())
    }

    /// The next thing the server sends on the open stream.
    pub(crate) async fn next_event(&mut self) -> anyhow::Result<StreamEvent> {
        if let Some(event) = self.pending.pop_front() {
            return Ok(event);
        }
        loop {
            if let Some(event) = self.receive().await? {
                return Ok(event);
            }
        }
    }

    /// Reads frames until both windows have room for `needed` bytes.
    async fn wait_for_window(&mut self, needed: usize) -> anyhow::Result<()> {
        let needed = needed as i64;
        while self.send_window < needed || self.stream_send_window < needed {
            if let Some(event) = self.receive().await? {
                let ended = event.ends_stream();
                self.pending.push_back(event);
                if ended {
                    bail!("the server ended the stream before taking the whole request");
                }
            }
        }
        Ok(())
    }

    /// Reads and handles one frame; returns what it means for the open stream, if anything.
    async fn receive(&mut self) -> anyhow::Result<Option<StreamEvent>> {
        let frame = read_frame(&mut self.io).await?;
        let ours = frame.stream != 0 && frame.stream == self.stream;
        match frame.kind {
            DATA => {
                let end_stream = frame.has(END_STREAM);
                self.release(&frame, ours && !end_stream).await?;
                let bytes = frame.content()?;
                Ok(ours.then_some(StreamEvent::Data { bytes, end_stream }))
            }
            HEADERS => {
                let end_stream = frame.has(END_STREAM);
                let block = self.header_block(&frame).await?;
                let fields = self.decoder.decode(&block)?;
                Ok(ours.then_some(StreamEvent::Headers { fields, end_stream }))
            }
            RST_STREAM => {
                let code = frame.leading_u32()?;
                Ok(ours.then_some(StreamEvent::Reset(code)))
            }
            SETTINGS if !frame.has(ACK) => {
                self.apply_settings(&frame.payload)?;
                let mut ack = Vec::new();
                put_frame(&mut ack, SETTINGS, ACK, 0, &[]);
                self.write(&ack).await?;
                Ok(None)
            }
            PING if !frame.has(ACK) => {
                let mut pong = Vec::new();
                put_frame(&mut pong, PING, ACK, 0, &frame.payload);
                self.write(&pong).await?;
                Ok(None)
            }
            GOAWAY => {
                let last = frame.leading_u32()? & ID_MASK;
                let code = frame.payload.get(4..8).map_or(0, |code| {
                    u32::from_be_bytes([code[0], code[1], code[2], code[3]])
                });
                self.goaway_after = Some(last);
                if self.stream > last {
                    bail!("the server is closing the connection (GOAWAY, error code {code})");
                }
                Ok(None)
            }
            WINDOW_UPDATE => {
                let increment = i64::from(frame.leading_u32()? & ID_MASK);
                if frame.stream == 0 {
                    self.send_window = (self.send_window + increment).min(MAX_WINDOW);
                } else if ours {
                    self.stream_send_window = (self.stream_send_window + increment).min(MAX_WINDOW);
                }
                Ok(None)
            }
            PUSH_PROMISE => bail!("the server pushed a stream, though push is off"),
            CONTINUATION => bail!("CONTINUATION frame without HEADERS before it"),
            _ => Ok(None), // PRIORITY, acknowledgements, unknown extension frames
        }
    }

    /// A HEADERS frame's block, with any CONTINUATION frames that complete it.
    async fn header_block(&mut self, headers: &Frame) -> anyhow::Result<Vec<u8>> {
        let mut block = headers.content()?.to_vec();
        let mut complete = headers.has(END_HEADERS);
        while !complete {
            let next = read_frame(&mut self.io).await?;
            if next.kind != CONTINUATION || next.stream != headers.stream {
                bail!("header block interrupted by another frame");
            }
            block.extend_from_slice(&next.payload);
            complete = next.has(END_HEADERS);
        }
        Ok(block)
    }

    /// Gives back the flow-control credit a DATA frame used, to the connection and, while
    /// the stream stays open, to the stream.
    async fn release(&mut self, data: &Frame, stream_stays_open: bool) -> anyhow::Result<()> {
        if data.payload.is_empty() {
            return Ok(());
        }
        let increment = u32::try_from(data.payload.len())?.to_be_bytes();
        let mut out = Vec::new();
        put_frame(&mut out, WINDOW_UPDATE, 0, 0, &increment);
        if stream_stays_open {
            put_frame(&mut out, WINDOW_UPDATE, 0, data.stream, &increment);
        }
        self.write(&out).await
    }

    /// Applies the server's SETTINGS that matter to a sender: window and frame size.
    fn apply_settings(&mut self, payload: &[u8]) -> anyhow::Result<()> {
        if !payload.len().is_multiple_of(6) {
            bail!("SETTINGS payload of {} bytes", payload.len());
        }
        for setting in payload.chunks_exact(6) {
            let id = u16::from_be_bytes([setting[0], setting[1]]);
            let value = u32::from_be_bytes([setting[2], setting[3], setting[4], setting[5]]);
            match id {
                SETTING_INITIAL_WINDOW => {
                    let window = i64::from(value);
                    if window > MAX_WINDOW {
                        bail!("SETTINGS_INITIAL_WINDOW_SIZE {value} is too large");
                    }
                    self.stream_send_window += window - self.peer_initial_window;
                    self.peer_initial_window = window;
                }
                SETTING_MAX_FRAME => {
                    if !(DEFAULT_MAX_FRAME..=0xff_ffff).contains(&(value as usize)) {
                        bail!("SETTINGS_MAX_FRAME_SIZE {value} is out of range");
                    }
                    self.peer_max_frame = value as usize;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Writes whole frames.
    async fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.io
            .write_all(bytes)
            .await
            .context("writing to the HTTP/2 connection")
    }
}
