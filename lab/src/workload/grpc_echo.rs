//! The gRPC echo service `mesh.lab.Echo`: unary `Echo` and bidirectional `EchoStream`, one
//! reply per request message as it arrives, the call's status in the trailers.

use std::{fmt::Write as _, sync::Arc};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, header};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Frame, Incoming};
use tokio::sync::mpsc;

use super::{
    POD_HEADER, VERSION_HEADER, Workload,
    faults::Verdict,
    grpc_wire::{
        ECHO_PATH, ECHO_STREAM_PATH, EchoReply, EchoRequest, FrameDecoder, STATUS_INTERNAL,
        STATUS_OK, STATUS_UNAVAILABLE, STATUS_UNIMPLEMENTED, encode_frame,
    },
    http_echo::headers_seen,
    server::ReplyBody,
    streamed_body::StreamedBody,
};

/// The two methods of `mesh.lab.Echo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    /// `Echo`: one request message, one reply.
    Unary,
    /// `EchoStream`: one reply per request message, for as long as the client sends.
    Stream,
}

/// A call that ends with a status other than OK.
struct CallFailure {
    code: u32,
    message: String,
}

/// True when the request is a gRPC call (`content-type: application/grpc[+proto]`).
pub(crate) fn is_grpc<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"))
}

/// Answers one gRPC call: replies stream from a task while the request body still arrives.
pub(crate) async fn answer(workload: Arc<Workload>, req: Request<Incoming>) -> Response<ReplyBody> {
    let method = match req.uri().path() {
        ECHO_PATH => Method::Unary,
        ECHO_STREAM_PATH => Method::Stream,
        other => {
            let message = format!("mesh-workload has no method {other}");
            return status_only(&workload, STATUS_UNIMPLEMENTED, &message);
        }
    };
    if workload.faults.draw().await == Verdict::Fail {
        let message = format!("{} failed this call on purpose", workload.pod);
        return status_only(&workload, STATUS_UNAVAILABLE, &message);
    }
    let template = EchoReply {
        message: String::new(),
        pod: workload.pod.clone(),
        version: workload.version.clone(),
        headers: headers_seen(req.headers()),
    };
    let (replies, body) = StreamedBody::new();
    tokio::spawn(echo_call(method, req.into_body(), replies, template));
    response_head(&workload)
        .body(Either::Right(body))
        .unwrap_or_else(|_| Response::new(Either::Left(Full::default())))
}

/// Status, content type and the pod's identity, as every answer starts.
fn response_head(workload: &Workload) -> http::response::Builder {
    Response::builder()
        .header(header::CONTENT_TYPE, "application/grpc")
        .header(POD_HEADER, workload.pod.as_str())
        .header(VERSION_HEADER, workload.version.as_str())
}

/// A trailers-only answer: the status in the one HEADERS frame, no messages.
fn status_only(workload: &Workload, code: u32, message: &str) -> Response<ReplyBody> {
    response_head(workload)
        .header("grpc-status", code)
        .header("grpc-message", percent_encoded(message))
        .body(Either::Left(Full::default()))
        .unwrap_or_else(|_| Response::new(Either::Left(Full::default())))
}

/// Relays the call's messages, then ends the body with the status trailers.
async fn echo_call(
    method: Method,
    body: Incoming,
    replies: mpsc::Sender<Frame<Bytes>>,
    template: EchoReply,
) {
    let mut trailers = HeaderMap::new();
    match relay(method, body, &replies, template).await {
        Ok(()) => {
            trailers.insert("grpc-status", HeaderValue::from(STATUS_OK));
        }
        Err(failure) => {
            trailers.insert("grpc-status", HeaderValue::from(failure.code));
            if let Ok(message) = HeaderValue::from_str(&percent_encoded(&failure.message)) {
                trailers.insert("grpc-message", message);
            }
        }
    }
    let _ = replies.send(Frame::trailers(trailers)).await;
}

/// Sends one reply per request message as each arrives; a unary call takes exactly one.
async fn relay(
    method: Method,
    mut body: Incoming,
    replies: &mpsc::Sender<Frame<Bytes>>,
    mut reply: EchoReply,
) -> Result<(), CallFailure> {
    let mut decoder = FrameDecoder::default();
    let mut answered = 0_usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| internal(format!("reading the request: {error}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        decoder.extend(&data);
        while let Some(request) = decoder
            .next_message::<EchoRequest>()
            .map_err(|error| internal(error.to_string()))?
        {
            if method == Method::Unary && answered == 1 {
                return Err(internal("Echo takes exactly one request message".into()));
            }
            reply.message = request.message;
            if replies
                .send(Frame::data(encode_frame(&reply)))
                .await
                .is_err()
            {
                return Ok(()); // the client is gone: nobody to tell
            }
            answered += 1;
        }
    }
    decoder
        .finish()
        .map_err(|error| internal(error.to_string()))?;
    if method == Method::Unary && answered == 0 {
        return Err(internal("Echo takes exactly one request message".into()));
    }
    Ok(())
}

/// An INTERNAL failure with `message`.
fn internal(message: String) -> CallFailure {
    CallFailure {
        code: STATUS_INTERNAL,
        message,
    }
}

/// `grpc-message` encoding: printable ASCII as is, everything else and `%` as `%XX`.
fn percent_encoded(message: &str) -> String {
    let mut encoded = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            encoded.push(char::from(byte));
        } else {
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_is_told_by_content_type() {
        let grpc = Request::post(ECHO_PATH)
            .header("content-type", "application/grpc+proto")
            .body(())
            .expect("request");
        let json = Request::post(ECHO_PATH)
            .header("content-type", "application/json")
            .body(())
            .expect("request");
        assert!(is_grpc(&grpc));
        assert!(!is_grpc(&json));
    }

    #[test]
    fn grpc_message_is_percent_encoded() {
        assert_eq!(percent_encoded("no such: /a b"), "no such: /a b");
        assert_eq!(percent_encoded("100%\nü"), "100%25%0A%C3%BC");
    }
}
