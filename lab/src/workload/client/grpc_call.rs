//! `mesh-workload call-grpc HOST:PORT`: `mesh.lab.Echo` calls over hyper's HTTP/2 client.
//! Unary by default, one `Echo` call per request; with `stream`, each worker keeps one
//! `EchoStream` call open and every request is one message on it, answered before the next
//! is sent. Counted by gRPC status and by the pod and version that answered.

use std::sync::Arc;

use bytes::Bytes;
use http::{
    HeaderMap, Method, StatusCode,
    header::{CONTENT_TYPE, TE},
};
use http_body_util::{BodyExt, Either, Full};
use hyper::{
    body::{Frame, Incoming},
    client::conn::http2,
};
use tokio::sync::mpsc;

use super::{
    ClientError, connection, header_text,
    request::RequestHead,
    runner::{Caller, Load, run},
    summary::{Outcome, Summary},
    target::Target,
};
use crate::workload::{
    POD_HEADER, VERSION_HEADER,
    grpc_wire::{
        ECHO_PATH, ECHO_STREAM_PATH, EchoReply, EchoRequest, FrameDecoder, STATUS_OK, encode_frame,
        status_name,
    },
    streamed_body::StreamedBody,
};

/// A call's request body: one whole message (unary), or messages fed as they are sent.
type CallBody = Either<Full<Bytes>, StreamedBody>;

/// One `mesh-workload call-grpc` run.
#[derive(Clone, Debug)]
pub struct GrpcPlan {
    /// Where to send.
    pub target: Target,
    /// Extra request metadata; a `host` header replaces the target as `:authority`.
    pub headers: Vec<(String, String)>,
    /// Messages on one `EchoStream` call per worker instead of unary `Echo` calls.
    pub stream: bool,
    /// How many requests and how.
    pub load: Load,
}

/// Makes the plan's calls and counts how they went; fails only when the plan's call cannot
/// be made at all.
pub async fn call_grpc(plan: GrpcPlan) -> Result<Summary, ClientError> {
    let path = if plan.stream {
        ECHO_STREAM_PATH
    } else {
        ECHO_PATH
    };
    let authority = plan.target.to_string();
    let mut head = RequestHead::new(Method::POST, &authority, path, &plan.headers, true)?;
    head.insert(CONTENT_TYPE, "application/grpc");
    head.insert(TE, "trailers");
    let head = Arc::new(head);
    let target = Arc::new(plan.target);
    let mut workers = 0;
    let summary = run(plan.load, || {
        workers += 1;
        GrpcCaller {
            target: target.clone(),
            head: head.clone(),
            stream: plan.stream,
            worker: workers,
            sent: 0,
            sender: None,
            call: None,
        }
    })
    .await;
    Ok(summary)
}

/// A worker on one HTTP/2 connection.
struct GrpcCaller {
    target: Arc<Target>,
    head: Arc<RequestHead>,
    stream: bool,
    /// This worker's number, in its messages so that echoes are told apart.
    worker: u64,
    sent: u64,
    /// The connection kept for the next call.
    sender: Option<http2::SendRequest<CallBody>>,
    /// The `EchoStream` call in progress.
    call: Option<OpenCall>,
}

/// A streaming call in progress: where its next messages go, and what came back so far.
struct OpenCall {
    /// Feeds the request body; `None` once the client has half-closed the call.
    messages: Option<mpsc::Sender<Frame<Bytes>>>,
    answer: Answer,
}

impl Caller for GrpcCaller {
    async fn call(&mut self, is_last: bool) -> Outcome {
        self.sent += 1;
        let message = format!("worker {} message {}", self.worker, self.sent);
        let exchanged = if self.stream {
            self.stream_message(&message, is_last).await
        } else {
            self.unary(&message).await
        };
        exchanged.unwrap_or_else(|error| {
            self.reset();
            Outcome::error(&error)
        })
    }

    fn reset(&mut self) {
        self.sender = None;
        self.call = None;
    }
}

impl GrpcCaller {
    /// Starts a call with `body` on the kept connection while it takes new streams, or on a
    /// new one; returns once the answer's head has come.
    async fn start(&mut self, body: CallBody) -> Result<Answer, ClientError> {
        let mut sender = match self.sender.take() {
            Some(kept) if !kept.is_closed() => kept,
            _ => connection::http2(&self.target).await?,
        };
        sender.ready().await.map_err(ClientError::Send)?;
        let response = sender.send_request(self.head.request(body));
        self.sender = Some(sender);
        let (head, body) = response.await.map_err(ClientError::Send)?.into_parts();
        Ok(Answer {
            http_status: head.status,
            head: head.headers,
            body,
            trailers: None,
            replies: FrameDecoder::default(),
            ended: false,
        })
    }

    /// One unary `Echo` call on a new stream.
    async fn unary(&mut self, message: &str) -> Result<Outcome, ClientError> {
        let body = Either::Left(Full::new(request_frame(message)));
        let mut answer = self.start(body).await?;
        let reply = answer.next_reply().await?;
        if answer.next_reply().await?.is_some() {
            return Err(ClientError::ExtraReply);
        }
        let outcome = judged(Some(answer.status()?), reply, message);
        Ok(answer.identified(outcome))
    }

    /// Sends one message on this worker's `EchoStream` call, opening it if need be, and
    /// reads its reply; after the last message, half-closes the call and reads it to its end.
    async fn stream_message(
        &mut self,
        message: &str,
        is_last: bool,
    ) -> Result<Outcome, ClientError> {
        let frame = Frame::data(request_frame(message));
        let mut call = match self.call.take() {
            Some(mut call) => {
                let messages = call.messages.as_mut().ok_or(ClientError::CallClosed)?;
                messages
                    .send(frame)
                    .await
                    .map_err(|_| ClientError::CallClosed)?;
                call
            }
            None => {
                // In the body before the call starts: `start` waits for the answer's head,
                // which a server may hold back until the first message has come.
                let (messages, body) = StreamedBody::new();
                messages
                    .send(frame)
                    .await
                    .map_err(|_| ClientError::CallClosed)?;
                let answer = self.start(Either::Right(body)).await?;
                OpenCall {
                    messages: Some(messages),
                    answer,
                }
            }
        };
        if is_last {
            call.messages = None;
        }
        let answer = &mut call.answer;
        let reply = answer.next_reply().await?;
        if is_last {
            while answer.next_reply().await?.is_some() {}
        }
        if !answer.ended {
            let outcome = judged(None, reply, message);
            self.call = Some(call);
            return Ok(outcome);
        }
        let status = answer.status()?;
        let outcome = match judged(Some(status), reply, message) {
            outcome if status == STATUS_OK && !is_last => Outcome {
                failure: Some("the call ended early".into()),
                ..outcome
            },
            outcome => outcome,
        };
        Ok(answer.identified(outcome))
    }
}

/// An `EchoRequest` carrying `message`, framed.
fn request_frame(message: &str) -> Bytes {
    encode_frame(&EchoRequest {
        message: message.to_owned(),
    })
}

/// How a message counts: a status other than OK names the failure; otherwise the reply
/// must echo what was sent.
fn judged(status: Option<u32>, reply: Option<EchoReply>, sent: &str) -> Outcome {
    let failure = match (status, &reply) {
        (Some(code), _) if code != STATUS_OK => Some(status_name(code).to_owned()),
        (_, None) => Some("no reply".to_owned()),
        (_, Some(reply)) if reply.message != sent => Some("wrong reply".to_owned()),
        _ => None,
    };
    match reply {
        Some(reply) => Outcome {
            pod: Some(reply.pod),
            version: Some(reply.version),
            failure,
        },
        None => Outcome {
            failure,
            ..Outcome::default()
        },
    }
}

/// What the server has sent so far on one call.
struct Answer {
    /// The HTTP status of the answer's head.
    http_status: StatusCode,
    /// The answer's head: who answered, or the whole status of a trailers-only answer.
    head: HeaderMap,
    body: Incoming,
    trailers: Option<HeaderMap>,
    replies: FrameDecoder,
    /// The body has ended: no more replies or trailers come.
    ended: bool,
}

impl Answer {
    /// Reads until the next reply, or `None` at the end of the call.
    async fn next_reply(&mut self) -> Result<Option<EchoReply>, ClientError> {
        loop {
            if let Some(reply) = self.replies.next_message::<EchoReply>()? {
                return Ok(Some(reply));
            }
            if self.ended {
                self.replies.finish()?;
                return Ok(None);
            }
            match self.body.frame().await {
                None => self.ended = true,
                Some(frame) => match frame.map_err(ClientError::Body)?.into_data() {
                    Ok(bytes) => self.replies.extend(&bytes),
                    Err(frame) => self.trailers = frame.into_trailers().ok(),
                },
            }
        }
    }

    /// The call's status: in the trailers, or in the head of a trailers-only answer.
    fn status(&self) -> Result<u32, ClientError> {
        let fields = self.trailers.as_ref().unwrap_or(&self.head);
        let status = header_text(fields, "grpc-status")
            .ok_or(ClientError::NoGrpcStatus(self.http_status))?;
        status
            .parse()
            .map_err(|_| ClientError::BadGrpcStatus(status))
    }

    /// Fills in who answered from the head when no reply said so, as when a call fails.
    fn identified(&self, outcome: Outcome) -> Outcome {
        Outcome {
            pod: outcome.pod.or_else(|| header_text(&self.head, POD_HEADER)),
            version: outcome
                .version
                .or_else(|| header_text(&self.head, VERSION_HEADER)),
            failure: outcome.failure,
        }
    }
}
