//! The gRPC echo `mesh.lab.Echo` through hyper's own HTTP/2 client: framing, trailers,
//! streaming, unknown methods and injected faults.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Incoming};
use mesh_lab::workload::{
    Faults,
    grpc_wire::{ECHO_PATH, ECHO_STREAM_PATH, EchoReply, EchoRequest, FrameDecoder, encode_frame},
};

use crate::support::{FedBody, http2, start, within, workload};

fn grpc_request<B>(path: &str, body: B) -> http::Request<B> {
    http::Request::post(format!("http://echo.lab{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("x-canary", "1")
        .body(body)
        .expect("request")
}

fn request_frame(message: &str) -> Bytes {
    encode_frame(&EchoRequest {
        message: message.into(),
    })
}

/// The replies and trailers of a streamed response, read as they arrive.
struct Replies {
    body: Incoming,
    frames: FrameDecoder,
    trailers: Option<http::HeaderMap>,
}

impl Replies {
    /// Reads until one whole reply is decoded; `None` when the body ends first.
    async fn next(&mut self) -> Option<EchoReply> {
        loop {
            if let Some(reply) = self.frames.next_message().expect("valid frames") {
                return Some(reply);
            }
            let frame = self.body.frame().await?.expect("frame");
            match frame.into_data() {
                Ok(data) => self.frames.extend(&data),
                Err(frame) => self.trailers = frame.into_trailers().ok(),
            }
        }
    }
}

#[tokio::test]
async fn unary_echo_replies_once_with_ok_in_the_trailers() {
    let address = start(workload("echo-0", "v3", Faults::default())).await;
    let mut sender = http2(address).await;
    let response = sender
        .send_request(grpc_request(ECHO_PATH, Full::new(request_frame("hello"))))
        .await
        .expect("response");
    assert_eq!(response.status(), http::StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/grpc");
    let collected = response.into_body().collect().await.expect("body");
    let trailers = collected.trailers().cloned().expect("trailers");
    let mut replies = FrameDecoder::default();
    replies.extend(&collected.to_bytes());

    let reply: EchoReply = replies.next_message().expect("valid").expect("one reply");
    assert_eq!(reply.message, "hello");
    assert_eq!(reply.pod, "echo-0");
    assert_eq!(reply.version, "v3");
    assert_eq!(reply.headers["x-canary"], "1");
    assert_eq!(reply.headers["te"], "trailers");
    assert!(
        replies
            .next_message::<EchoReply>()
            .expect("valid")
            .is_none()
    );
    replies.finish().expect("whole frames");
    assert_eq!(trailers["grpc-status"], "0");
}

#[tokio::test]
async fn streaming_echo_answers_each_message_before_the_next_is_sent() {
    let address = start(workload("echo-1", "v1", Faults::default())).await;
    let mut sender = http2(address).await;
    let (messages, body) = FedBody::new();
    let response = sender
        .send_request(grpc_request(ECHO_STREAM_PATH, body))
        .await
        .expect("response");
    let mut replies = Replies {
        body: response.into_body(),
        frames: FrameDecoder::default(),
        trailers: None,
    };

    for text in ["one", "two", "three"] {
        messages.send(request_frame(text)).await.expect("send");
        let reply = within("reply before the next message", replies.next())
            .await
            .expect("reply");
        assert_eq!(reply.message, text);
        assert_eq!(reply.pod, "echo-1");
    }
    assert!(replies.trailers.is_none(), "the call is still open");
    drop(messages); // half-close: the call ends
    assert!(within("end of the call", replies.next()).await.is_none());
    let trailers = replies.trailers.expect("trailers after the last reply");
    assert_eq!(trailers["grpc-status"], "0");
}

#[tokio::test]
async fn several_messages_in_one_unary_call_are_refused() {
    let address = start(workload("echo-2", "v1", Faults::default())).await;
    let mut sender = http2(address).await;
    let mut two = request_frame("a").to_vec();
    two.extend_from_slice(&request_frame("b"));
    let response = sender
        .send_request(grpc_request(ECHO_PATH, Full::new(Bytes::from(two))))
        .await
        .expect("response");
    let collected = response.into_body().collect().await.expect("body");
    assert_eq!(collected.trailers().expect("trailers")["grpc-status"], "13");
}

#[tokio::test]
async fn unknown_methods_are_unimplemented_in_a_trailers_only_answer() {
    let address = start(workload("echo-3", "v1", Faults::default())).await;
    let mut sender = http2(address).await;
    for path in ["/mesh.lab.Echo/Shout", "/other.Service/Echo"] {
        let response = sender
            .send_request(grpc_request(path, Empty::<Bytes>::new()))
            .await
            .expect("response");
        assert_eq!(response.status(), http::StatusCode::OK);
        assert_eq!(response.headers()["grpc-status"], "12");
        let message = response.headers()["grpc-message"].to_str().expect("ascii");
        assert!(message.contains(path), "{message}");
        // Trailers-only: the stream ended with the headers, no data and no trailers follow.
        assert!(response.body().is_end_stream());
    }
}

#[tokio::test]
async fn a_failed_share_is_unavailable_and_names_the_pod() {
    let faults = Faults {
        fail_percent: 100.0,
        ..Faults::default()
    };
    let address = start(workload("echo-4", "v2", faults)).await;
    let mut sender = http2(address).await;
    let response = sender
        .send_request(grpc_request(ECHO_PATH, Full::new(request_frame("x"))))
        .await
        .expect("response");
    assert_eq!(response.headers()["grpc-status"], "14");
    assert_eq!(response.headers()["x-pod"], "echo-4");
    assert_eq!(response.headers()["x-pod-version"], "v2");
    assert!(response.body().is_end_stream());
}

#[tokio::test(start_paused = true)]
async fn delays_apply_to_calls_too() {
    let faults = Faults {
        delay_percent: 100.0,
        delay: Duration::from_secs(2),
        ..Faults::default()
    };
    let address = start(workload("echo-5", "v1", faults)).await;
    let mut sender = http2(address).await;
    let start = tokio::time::Instant::now();
    let response = sender
        .send_request(grpc_request(ECHO_PATH, Full::new(request_frame("late"))))
        .await
        .expect("response");
    let collected = response.into_body().collect().await.expect("body");
    assert_eq!(collected.trailers().expect("trailers")["grpc-status"], "0");
    assert!(start.elapsed() >= Duration::from_secs(2));
}
