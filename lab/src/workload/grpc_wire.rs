//! The `mesh.lab.Echo` service on the wire: its messages, method paths, status codes and
//! gRPC's length-prefixed message framing. Shared by the echo server and the client.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Path of the unary `Echo` method.
pub const ECHO_PATH: &str = "/mesh.lab.Echo/Echo";
/// Path of the bidirectional streaming `EchoStream` method.
pub const ECHO_STREAM_PATH: &str = "/mesh.lab.Echo/EchoStream";

/// gRPC status `OK`.
pub const STATUS_OK: u32 = 0;
/// gRPC status `UNIMPLEMENTED`: no such method.
pub const STATUS_UNIMPLEMENTED: u32 = 12;
/// gRPC status `INTERNAL`: the request could not be read.
pub const STATUS_INTERNAL: u32 = 13;
/// gRPC status `UNAVAILABLE`: the workload failed on purpose.
pub const STATUS_UNAVAILABLE: u32 = 14;

/// Largest message either side accepts, as gRPC's default limit.
const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// Compressed flag and big-endian length in front of every message.
const PREFIX_BYTES: usize = 5;

/// `message EchoRequest { string message = 1; }`
#[derive(Clone, PartialEq, prost::Message)]
pub struct EchoRequest {
    /// Text to echo back.
    #[prost(string, tag = "1")]
    pub message: String,
}

/// `message EchoReply { string message = 1; string pod = 2; string version = 3; map<string,string> headers = 4; }`
#[derive(Clone, PartialEq, prost::Message)]
pub struct EchoReply {
    /// The request's text.
    #[prost(string, tag = "1")]
    pub message: String,
    /// The answering pod.
    #[prost(string, tag = "2")]
    pub pod: String,
    /// The answering pod's `version` label.
    #[prost(string, tag = "3")]
    pub version: String,
    /// The call's request metadata as the workload saw it.
    #[prost(btree_map = "string, string", tag = "4")]
    pub headers: BTreeMap<String, String>,
}

/// A gRPC message stream that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The sender compressed a message; the workload never negotiates compression.
    #[error("compressed message, but no compression was negotiated")]
    Compressed,
    /// A message longer than the limit.
    #[error("message of {0} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge(usize),
    /// The stream ended inside a message.
    #[error("stream ended inside a message ({0} bytes left over)")]
    Truncated(usize),
    /// A message's bytes are not the expected protobuf.
    #[error("malformed message: {0}")]
    Malformed(#[from] prost::DecodeError),
}

/// Encodes one message behind gRPC's 5-byte prefix (not compressed, big-endian length).
pub fn encode_frame(message: &impl prost::Message) -> Bytes {
    let body = message.encode_to_vec();
    let mut frame = BytesMut::with_capacity(PREFIX_BYTES + body.len());
    frame.put_u8(0);
    frame.put_u32(u32::try_from(body.len()).unwrap_or(u32::MAX));
    frame.extend_from_slice(&body);
    frame.freeze()
}

/// Cuts a stream of bytes, arriving in pieces, into gRPC messages.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buffered: BytesMut,
}

impl FrameDecoder {
    /// Adds bytes as they arrive.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buffered.extend_from_slice(bytes);
    }

    /// The next complete message and decodes it as `M`, or `None` until more bytes arrive.
    pub fn next_message<M: prost::Message + Default>(&mut self) -> Result<Option<M>, FrameError> {
        let Some(prefix) = self.buffered.get(..PREFIX_BYTES) else {
            return Ok(None);
        };
        if prefix[0] != 0 {
            return Err(FrameError::Compressed);
        }
        let length = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
        if length > MAX_MESSAGE_BYTES {
            return Err(FrameError::TooLarge(length));
        }
        if self.buffered.len() < PREFIX_BYTES + length {
            return Ok(None);
        }
        self.buffered.advance(PREFIX_BYTES);
        let body = self.buffered.split_to(length);
        Ok(Some(M::decode(body)?))
    }

    /// Checks that the stream ended between messages.
    pub fn finish(&self) -> Result<(), FrameError> {
        match self.buffered.len() {
            0 => Ok(()),
            left => Err(FrameError::Truncated(left)),
        }
    }
}

/// The canonical name of a gRPC status code, as in `grpc/status.h`.
pub fn status_name(code: u32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    NAMES.get(code as usize).copied().unwrap_or("UNKNOWN_CODE")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_prefix_is_flag_then_big_endian_length() {
        let frame = encode_frame(&EchoRequest {
            message: "hi".into(),
        });
        // field 1, length-delimited, 2 bytes: 0x0a 0x02 'h' 'i'
        assert_eq!(&frame[..], &[0, 0, 0, 0, 4, 0x0a, 2, b'h', b'i']);
    }

    #[test]
    fn decoder_waits_for_whole_messages_split_anywhere() {
        let reply = EchoReply {
            message: "m".into(),
            pod: "p".into(),
            version: "v1".into(),
            headers: BTreeMap::from([("k".into(), "v".into())]),
        };
        let mut stream = encode_frame(&reply).to_vec();
        stream.extend_from_slice(&encode_frame(&reply));
        let mut decoder = FrameDecoder::default();
        let mut decoded = Vec::new();
        for byte in &stream {
            decoder.extend(std::slice::from_ref(byte));
            while let Some(message) = decoder.next_message::<EchoReply>().expect("valid") {
                decoded.push(message);
            }
        }
        assert_eq!(decoded, vec![reply.clone(), reply]);
        decoder.finish().expect("ended between messages");
    }

    #[test]
    fn decoder_refuses_compressed_oversized_and_truncated_messages() {
        let mut compressed = FrameDecoder::default();
        compressed.extend(&[1, 0, 0, 0, 0]);
        assert!(matches!(
            compressed.next_message::<EchoRequest>(),
            Err(FrameError::Compressed)
        ));

        let mut oversized = FrameDecoder::default();
        oversized.extend(&[0, 0xff, 0, 0, 0]);
        assert!(matches!(
            oversized.next_message::<EchoRequest>(),
            Err(FrameError::TooLarge(_))
        ));

        let mut truncated = FrameDecoder::default();
        truncated.extend(&[0, 0, 0, 0, 9, 1]);
        assert!(matches!(truncated.next_message::<EchoRequest>(), Ok(None)));
        assert!(matches!(truncated.finish(), Err(FrameError::Truncated(6))));
    }

    #[test]
    fn status_names_follow_the_grpc_codes() {
        assert_eq!(status_name(STATUS_OK), "OK");
        assert_eq!(status_name(STATUS_UNIMPLEMENTED), "UNIMPLEMENTED");
        assert_eq!(status_name(STATUS_INTERNAL), "INTERNAL");
        assert_eq!(status_name(STATUS_UNAVAILABLE), "UNAVAILABLE");
        assert_eq!(status_name(99), "UNKNOWN_CODE");
    }
}
