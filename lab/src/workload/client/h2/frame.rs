//! HTTP/2 frames (RFC 9113 §4 and §6): the 9-byte header, the types and flags this client
//! uses, and reading and writing whole frames.

use anyhow::{Context, bail};
use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The client connection preface.
pub(super) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Largest frame payload before any SETTINGS_MAX_FRAME_SIZE, and all this client accepts.
pub(super) const DEFAULT_MAX_FRAME: usize = 16_384;
/// Flow-control window before any SETTINGS_INITIAL_WINDOW_SIZE or WINDOW_UPDATE.
pub(super) const DEFAULT_WINDOW: i64 = 65_535;

/// DATA frame type.
pub(super) const DATA: u8 = 0x0;
/// HEADERS frame type.
pub(super) const HEADERS: u8 = 0x1;
/// RST_STREAM frame type.
pub(super) const RST_STREAM: u8 = 0x3;
/// SETTINGS frame type.
pub(super) const SETTINGS: u8 = 0x4;
/// PUSH_PROMISE frame type.
pub(super) const PUSH_PROMISE: u8 = 0x5;
/// PING frame type.
pub(super) const PING: u8 = 0x6;
/// GOAWAY frame type.
pub(super) const GOAWAY: u8 = 0x7;
/// WINDOW_UPDATE frame type.
pub(super) const WINDOW_UPDATE: u8 = 0x8;
/// CONTINUATION frame type.
pub(super) const CONTINUATION: u8 = 0x9;

/// END_STREAM flag (DATA, HEADERS).
pub(super) const END_STREAM: u8 = 0x1;
/// ACK flag (SETTINGS, PING).
pub(super) const ACK: u8 = 0x1;
/// END_HEADERS flag (HEADERS, CONTINUATION).
pub(super) const END_HEADERS: u8 = 0x4;
/// PADDED flag (DATA, HEADERS).
const PADDED: u8 = 0x8;
/// PRIORITY flag (HEADERS).
const PRIORITY: u8 = 0x20;

/// Stream ids and window increments are 31 bits.
pub(super) const ID_MASK: u32 = 0x7fff_ffff;

/// One frame as received.
#[derive(Debug)]
pub(super) struct Frame {
    /// Frame type.
    pub(super) kind: u8,
    /// Flags.
    pub(super) flags: u8,
    /// Stream id; 0 for the connection.
    pub(super) stream: u32,
    /// Payload, padding included.
    pub(super) payload: Bytes,
}

impl Frame {
    /// True when `flag` is set.
    pub(super) fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// The payload without padding and, for HEADERS, without the priority fields.
    pub(super) fn content(&self) -> anyhow::Result<Bytes> {
        let mut content = self.payload.clone();
        let padding = if self.has(PADDED) && (self.kind == DATA || self.kind == HEADERS) {
            let length = content
                .first()
                .copied()
                .context("padded frame without a pad length")?;
            content.advance(1);
            usize::from(length)
        } else {
            0
        };
        if self.kind == HEADERS && self.has(PRIORITY) {
            if content.len() < 5 {
                bail!("HEADERS frame too short for its priority fields");
            }
            content.advance(5);
        }
        if padding > content.len() {
            bail!("frame padding is longer than its payload");
        }
        content.truncate(content.len() - padding);
        Ok(content)
    }

    /// The first four payload bytes as a big-endian number (error codes, increments, ids).
    pub(super) fn leading_u32(&self) -> anyhow::Result<u32> {
        let bytes = self.payload.get(..4).context("frame payload too short")?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }
}

/// Reads one whole frame.
pub(super) async fn read_frame(io: &mut (impl AsyncRead + Unpin)) -> anyhow::Result<Frame> {
    let mut header = [0_u8; 9];
    io.read_exact(&mut header)
        .await
        .context("the server closed the HTTP/2 connection")?;
    let length =
        usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
    if length > DEFAULT_MAX_FRAME {
        bail!("frame of {length} bytes is over the {DEFAULT_MAX_FRAME} allowed");
    }
    let mut payload = vec![0; length];
    io.read_exact(&mut payload)
        .await
        .context("the server closed the HTTP/2 connection inside a frame")?;
    Ok(Frame {
        kind: header[3],
        flags: header[4],
        stream: u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & ID_MASK,
        payload: payload.into(),
    })
}

/// Appends a frame to `out`.
pub(super) fn put_frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let length = payload.len().to_be_bytes();
    out.extend_from_slice(&length[length.len() - 3..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & ID_MASK).to_be_bytes());
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_written_read_back_the_same() {
        let mut wire = Vec::new();
        put_frame(&mut wire, HEADERS, END_HEADERS | END_STREAM, 3, b"block");
        put_frame(&mut wire, WINDOW_UPDATE, 0, 0, &100_u32.to_be_bytes());
        let mut reader = wire.as_slice();
        let headers = read_frame(&mut reader).await.expect("headers");
        assert_eq!((headers.kind, headers.stream), (HEADERS, 3));
        assert!(headers.has(END_STREAM) && headers.has(END_HEADERS));
        assert_eq!(&headers.content().expect("content")[..], b"block");
        let update = read_frame(&mut reader).await.expect("update");
        assert_eq!(update.leading_u32().expect("increment"), 100);
        assert!(read_frame(&mut reader).await.is_err(), "nothing left");
    }

    #[test]
    fn padding_and_priority_are_stripped() {
        let headers = Frame {
            kind: HEADERS,
            flags: PADDED | PRIORITY,
            stream: 1,
            payload: Bytes::from_static(b"\x02\0\0\0\x01\x10abc\0\0"),
        };
        assert_eq!(&headers.content().expect("content")[..], b"abc");
        let overpadded = Frame {
            kind: DATA,
            flags: PADDED,
            stream: 1,
            payload: Bytes::from_static(b"\x09ab"),
        };
        assert!(overpadded.content().is_err());
    }

    #[tokio::test]
    async fn refuses_frames_larger_than_allowed() {
        let mut wire = vec![0x00, 0x40, 0x01, DATA, 0, 0, 0, 0, 1];
        wire.resize(9 + 16_385, 0);
        assert!(read_frame(&mut wire.as_slice()).await.is_err());
    }
}
