//! `mesh-workload call-grpc HOST:PORT`: `mesh.lab.Echo` calls over HTTP/2. Unary by default,
//! one `Echo` call per request; with `stream`, each worker keeps one `EchoStream` call open
//! and every request is one message on it, answered before the next is sent. Counted by
//! gRPC status and by the pod and version that answered.

use std::sync::Arc;

use anyhow::{Context, bail};

use super::{
    Fields, field,
    h2::{H2Connection, StreamEvent, request_head},
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
};

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

/// Makes the plan's calls and counts how they went.
pub async fn call_grpc(plan: GrpcPlan) -> Summary {
    let path = if plan.stream {
        ECHO_STREAM_PATH
    } else {
        ECHO_PATH
    };
    let mut head = request_head("POST", &plan.target.to_string(), path, &plan.headers);
    head.push(("content-type".into(), "application/grpc".into()));
    head.push(("te".into(), "trailers".into()));
    let head = Arc::new(head);
    let target = Arc::new(plan.target);
    let mut workers = 0;
    run(plan.load, || {
        workers += 1;
        GrpcCaller {
            target: target.clone(),
            head: head.clone(),
            stream: plan.stream,
            worker: workers,
            sent: 0,
            connection: None,
            call: None,
        }
    })
    .await
}

/// A worker on one HTTP/2 connection.
struct GrpcCaller {
    target: Arc<Target>,
    head: Arc<Fields>,
    stream: bool,
    /// This worker's number, in its messages so that echoes are told apart.
    worker: u64,
    sent: u64,
    connection: Option<H2Connection>,
    /// The `EchoStream` call in progress.
    call: Option<CallState>,
}

impl Caller for GrpcCaller {
    async fn call(&mut self, is_last: bool) -> Outcome {
        self.sent += 1;
        let message = format!("worker {} message {}", self.worker, self.sent);
        let mut connection = match self.connection.take() {
            Some(kept) if kept.accepts_new_streams() || self.call.is_some() => kept,
            _ => match self.connect().await {
                Ok(fresh) => fresh,
                Err(error) => return Outcome::error(&error),
            },
        };
        let exchanged = if self.stream {
            self.stream_message(&mut connection, &message, is_last)
                .await
        } else {
            unary(&mut connection, &self.head, &message).await
        };
        match exchanged {
            Ok(outcome) => {
                self.connection = Some(connection);
                outcome
            }
            Err(error) => {
                self.call = None;
                Outcome::error(&error)
            }
        }
    }

    fn reset(&mut self) {
        self.connection = None;
        self.call = None;
    }
}

impl GrpcCaller {
    /// A new connection, with no call in progress.
    async fn connect(&mut self) -> anyhow::Result<H2Connection> {
        self.call = None;
        H2Connection::handshake(self.target.connect().await?).await
    }

    /// Sends one message on this worker's `EchoStream` call, opening it if need be, and
    /// reads its reply; after the last message, reads the call to its end.
    async fn stream_message(
        &mut self,
        connection: &mut H2Connection,
        message: &str,
        is_last: bool,
    ) -> anyhow::Result<Outcome> {
        let mut call = match self.call.take() {
            Some(call) => call,
            None => {
                connection.open_stream(&self.head, false).await?;
                CallState::default()
            }
        };
        connection
            .send_data(&request_frame(message), is_last)
            .await?;
        let reply = call.next_reply(connection).await?;
        if is_last {
            while call.next_reply(connection).await?.is_some() {}
        }
        if !call.ended {
            self.call = Some(call);
            return Ok(judged(None, reply, message));
        }
        let status = call.status()?;
        let outcome = match judged(Some(status), reply, message) {
            outcome if status == STATUS_OK && !is_last => Outcome {
                failure: Some("the call ended early".into()),
                ..outcome
            },
            outcome => outcome,
        };
        Ok(call.identified(outcome))
    }
}

/// One unary `Echo` call on a new stream.
async fn unary(
    connection: &mut H2Connection,
    head: &Fields,
    message: &str,
) -> anyhow::Result<Outcome> {
    connection.open_stream(head, false).await?;
    connection.send_data(&request_frame(message), true).await?;
    let mut call = CallState::default();
    let reply = call.next_reply(connection).await?;
    if call.next_reply(connection).await?.is_some() {
        bail!("more than one reply to a unary call");
    }
    let outcome = judged(Some(call.status()?), reply, message);
    Ok(call.identified(outcome))
}

/// An `EchoRequest` carrying `message`, framed.
fn request_frame(message: &str) -> bytes::Bytes {
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
#[derive(Default)]
struct CallState {
    head: Option<Fields>,
    trailers: Option<Fields>,
    replies: FrameDecoder,
    ended: bool,
}

impl CallState {
    /// Reads until the next reply, or `None` at the end of the call.
    async fn next_reply(
        &mut self,
        connection: &mut H2Connection,
    ) -> anyhow::Result<Option<EchoReply>> {
        loop {
            if let Some(reply) = self.replies.next_message::<EchoReply>()? {
                return Ok(Some(reply));
            }
            if self.ended {
                self.replies.finish()?;
                return Ok(None);
            }
            match connection.next_event().await? {
                StreamEvent::Headers { fields, end_stream } => {
                    if self.head.is_none() {
                        self.head = Some(fields);
                    } else {
                        self.trailers = Some(fields);
                    }
                    self.ended |= end_stream;
                }
                StreamEvent::Data { bytes, end_stream } => {
                    self.replies.extend(&bytes);
                    self.ended |= end_stream;
                }
                StreamEvent::Reset(code) => {
                    bail!("the server reset the call (HTTP/2 error code {code})")
                }
            }
        }
    }

    /// The call's status: in the trailers, or in the head of a trailers-only answer.
    fn status(&self) -> anyhow::Result<u32> {
        let fields = self
            .trailers
            .as_ref()
            .or(self.head.as_ref())
            .context("the call ended without an answer")?;
        let status = field(fields, "grpc-status").with_context(|| {
            let http = self.head.as_deref().and_then(|head| field(head, ":status"));
            format!(
                "answer without grpc-status (HTTP status {})",
                http.unwrap_or("none")
            )
        })?;
        status
            .parse()
            .with_context(|| format!("malformed grpc-status {status:?}"))
    }

    /// Fills in who answered from the head when no reply said so, as when a call fails.
    fn identified(&self, outcome: Outcome) -> Outcome {
        let head = self.head.as_deref().unwrap_or_default();
        Outcome {
            pod: outcome
                .pod
                .or_else(|| field(head, POD_HEADER).map(str::to_owned)),
            version: outcome
                .version
                .or_else(|| field(head, VERSION_HEADER).map(str::to_owned)),
            failure: outcome.failure,
        }
    }
}
