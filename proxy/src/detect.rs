//! Protocol detection: learns what a fresh connection speaks from the first bytes its client sends.
//!
//! The bytes read are never lost: [`detect`] hands them back, and [`PrefixedIo`] replays them to
//! whatever serves the connection. Detection is bounded in time ([`DetectConfig::timeout`]) and
//! in memory ([`DetectConfig::max_bytes`]) and decides as early as it can:
//!
//! - HTTP/2 prior knowledge: the 24-byte connection preface.
//! - HTTP/1.x: a complete, valid request line (`METHOD SP target SP HTTP/1.0|1.1 CRLF`).
//! - TLS: a whole first handshake record holding a ClientHello, with its SNI
//!   (see [`parse_client_hello`]).
//! - Opaque: as soon as the bytes can no longer become any of the above, when the client sends
//!   nothing before the timeout (server-first protocols: MySQL, SMTP, ...), or when reading stops
//!   (timeout, `max_bytes`, end of stream) with nothing decided.
//!
//! When reading stops early, the bytes read decide: a record that has started as a well-formed
//! ClientHello is TLS (with the SNI if it was in the part read); anything else undecided is
//! opaque. A request line longer than `max_bytes` is therefore opaque.

use std::{io, time::Duration};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::{
    io::{AsyncRead, AsyncReadExt},
    time::{self, Instant},
};
use tracing::debug;

mod http1;
mod prefixed;
mod sni;

#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tests;

pub use self::{
    prefixed::PrefixedIo,
    sni::{ClientHello, client_hello_alpn, parse_client_hello},
};

/// How long a client may take to send enough bytes to decide.
///
/// One second, as Istio's outbound sniffing: a client-first protocol sends its first bytes within
/// one round trip of connecting (well under a millisecond inside a cluster), so only server-first
/// protocols wait the full second, once per connection, well inside their own connect timeouts
/// (MySQL's is 10 s). A slower client is still served, as opaque TCP.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// How many bytes detection may buffer: a record header plus the largest TLS plaintext record
/// (2^14 bytes), so a whole ClientHello record always fits.
pub const DEFAULT_MAX_BYTES: usize = 5 + (1 << 14);

/// The first read's room: most first flights (request heads, ClientHellos) fit in one.
const READ_CHUNK: usize = 4 * 1024;

/// The HTTP/2 connection preface a client with prior knowledge sends first.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the first bytes of a connection say it speaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// An HTTP/1.0 or HTTP/1.1 request line.
    Http1,
    /// The HTTP/2 prior-knowledge preface.
    Http2,
    /// A TLS ClientHello.
    Tls {
        /// The `host_name` from the server_name extension, ASCII-lowercased; `None` when absent
        /// or not a valid DNS name.
        sni: Option<String>,
    },
    /// Anything else, including a client that sent nothing in time.
    Opaque,
}

/// Limits on detection.
#[derive(Clone, Copy, Debug)]
pub struct DetectConfig {
    /// How long to wait, from the start of detection, for the bytes that decide.
    pub timeout: Duration,
    /// The most bytes to buffer before giving up (and replay).
    pub max_bytes: usize,
}

/// Which protocols the bytes read so far can still become.
#[derive(Debug)]
struct Classifier {
    h2: bool,
    tls: bool,
    http1: http1::RequestLine,
}

/// Reads from `io` until the protocol is known, `timeout` passes, `max_bytes` are buffered or the
/// client half-closes; returns the protocol and every byte read (to be replayed).
///
/// A read error is returned as is: the connection is unusable then, and its bytes with it.
pub async fn detect<I: AsyncRead + Unpin>(
    io: &mut I,
    config: &DetectConfig,
) -> io::Result<(Protocol, Bytes)> {
    let deadline = deadline(config.timeout);
    let mut buf = BytesMut::new();
    let mut classifier = Classifier::new();
    let protocol = loop {
        if let Some(protocol) = classifier.step(&buf) {
            break protocol;
        }
        let room = config.max_bytes.saturating_sub(buf.len());
        if room == 0 {
            debug!(bytes = buf.len(), "Detection buffer full");
            break classifier.finish(&buf);
        }
        grow(&mut buf, config.max_bytes);
        let read = time::timeout_at(deadline, io.read_buf(&mut (&mut buf).limit(room))).await;
        match read {
            Ok(Ok(0)) => {
                debug!(bytes = buf.len(), "Client closed before detection");
                break classifier.finish(&buf);
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Err(error),
            Err(_elapsed) => {
                debug!(bytes = buf.len(), "Detection timed out");
                break classifier.finish(&buf);
            }
        }
    };
    debug!(?protocol, bytes = buf.len(), "Detected protocol");
    Ok((protocol, buf.freeze()))
}

/// Makes room for the next read when `buf` is full: doubles it, from `READ_CHUNK` up to
/// `max_bytes` and never past (`BytesMut::reserve` could overshoot it by half).
fn grow(buf: &mut BytesMut, max_bytes: usize) {
    if buf.capacity() > buf.len() {
        return;
    }
    let capacity = (buf.capacity() * 2).max(READ_CHUNK).min(max_bytes);
    let mut grown = BytesMut::with_capacity(capacity);
    grown.extend_from_slice(buf);
    *buf = grown;
}

/// `timeout` from now, or a far future when that overflows (`Duration::MAX` means no timeout).
fn deadline(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(60 * 60 * 24 * 365 * 30))
}

// === impl DetectConfig ===

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

// === impl Classifier ===

impl Classifier {
    fn new() -> Self {
        Self {
            h2: true,
            tls: true,
            http1: http1::RequestLine::default(),
        }
    }

    /// Decides on `buf` (everything read so far, growing between calls), or `None` to read on.
    fn step(&mut self, buf: &[u8]) -> Option<Protocol> {
        if self.h2 {
            let n = buf.len().min(H2_PREFACE.len());
            if buf.get(..n) != H2_PREFACE.get(..n) {
                self.h2 = false;
            } else if n == H2_PREFACE.len() {
                return Some(Protocol::Http2);
            }
        }
        if self.tls {
            match sni::parse_client_hello(buf) {
                ClientHello::Tls { sni } => return Some(Protocol::Tls { sni }),
                ClientHello::NotTls => self.tls = false,
                ClientHello::NeedMore => {}
            }
        }
        match self.http1.advance(buf) {
            http1::Match::Yes => Some(Protocol::Http1),
            http1::Match::No if !self.h2 && !self.tls => Some(Protocol::Opaque),
            http1::Match::No | http1::Match::Maybe => None,
        }
    }

    /// Decides on `buf` once reading has stopped with `step` undecided.
    fn finish(&self, buf: &[u8]) -> Protocol {
        if self.tls
            && let ClientHello::Tls { sni } = sni::parse_truncated_client_hello(buf)
        {
            return Protocol::Tls { sni };
        }
        Protocol::Opaque
    }
}
