//! `mesh-workload call URL`: GET requests over HTTP/1.1 keep-alive or HTTP/2 (h2c), counted
//! by status and by the pod and version that answered.

use std::sync::Arc;

use anyhow::{Context, anyhow};

use super::{
    Fields, field,
    h2::{H2Connection, StreamEvent, request_head},
    http1::{Http1Answer, Http1Connection, get_request},
    runner::{Caller, Load, run},
    summary::{Outcome, Summary},
    target::{HttpUrl, Target},
};
use crate::workload::{POD_HEADER, VERSION_HEADER};

/// One `mesh-workload call` run.
#[derive(Clone, Debug)]
pub struct HttpPlan {
    /// Where to send.
    pub url: HttpUrl,
    /// Extra request headers; a `host` header replaces the URL's authority.
    pub headers: Vec<(String, String)>,
    /// HTTP/2 with prior knowledge (h2c) instead of HTTP/1.1.
    pub http2: bool,
    /// A new connection for every request instead of keep-alive.
    pub new_connection_each: bool,
    /// How many requests and how.
    pub load: Load,
}

/// Sends the plan's requests and counts how they went.
pub async fn call_http(plan: HttpPlan) -> Summary {
    let target = Arc::new(plan.url.target.clone());
    if plan.http2 {
        let fields = Arc::new(request_head(
            "GET",
            &plan.url.authority,
            &plan.url.path,
            &plan.headers,
        ));
        run(plan.load, || H2Caller {
            target: target.clone(),
            fields: fields.clone(),
            new_connection_each: plan.new_connection_each,
            connection: None,
        })
        .await
    } else {
        let request: Arc<[u8]> = http1_request(&plan).into();
        run(plan.load, || Http1Caller {
            target: target.clone(),
            request: request.clone(),
            new_connection_each: plan.new_connection_each,
            connection: None,
        })
        .await
    }
}

/// The HTTP/1.1 request, ready to write; a `host` among the headers replaces the URL's.
fn http1_request(plan: &HttpPlan) -> Vec<u8> {
    let mut headers = Vec::new();
    if !plan
        .headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        headers.push(("host", plan.url.authority.as_str()));
    }
    headers.extend(
        plan.headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str())),
    );
    if plan.new_connection_each {
        headers.push(("connection", "close"));
    }
    get_request(&plan.url.path, &headers)
}

/// How an HTTP answer counts: 2xx succeeds, any other status is the failure's reason.
fn judged(status: u16, headers: &[(String, String)]) -> Outcome {
    Outcome {
        pod: field(headers, POD_HEADER).map(str::to_owned),
        version: field(headers, VERSION_HEADER).map(str::to_owned),
        failure: (!(200..300).contains(&status)).then(|| status.to_string()),
    }
}

/// A worker on one HTTP/1.1 keep-alive connection.
struct Http1Caller {
    target: Arc<Target>,
    request: Arc<[u8]>,
    new_connection_each: bool,
    connection: Option<Http1Connection>,
}

impl Http1Caller {
    /// Sends the request on the kept connection, or on a new one when there is none or the
    /// server had closed it.
    async fn exchange(&mut self) -> anyhow::Result<Http1Answer> {
        if let Some(mut kept) = self.connection.take()
            && let Some(answer) = kept.exchange(&self.request).await?
        {
            return Ok(self.keep(kept, answer));
        }
        let mut fresh = Http1Connection::new(self.target.connect().await?);
        let answer = fresh
            .exchange(&self.request)
            .await?
            .ok_or_else(|| anyhow!("the server closed the connection without answering"))?;
        Ok(self.keep(fresh, answer))
    }

    /// Keeps the connection for the next request when it can carry one.
    fn keep(&mut self, connection: Http1Connection, answer: Http1Answer) -> Http1Answer {
        if answer.reusable && !self.new_connection_each {
            self.connection = Some(connection);
        }
        answer
    }
}

impl Caller for Http1Caller {
    async fn call(&mut self, _is_last: bool) -> Outcome {
        match self.exchange().await {
            Ok(answer) => judged(answer.status, &answer.headers),
            Err(error) => Outcome::error(&error),
        }
    }

    fn reset(&mut self) {
        self.connection = None;
    }
}

/// A worker on one HTTP/2 connection, one stream at a time.
struct H2Caller {
    target: Arc<Target>,
    fields: Arc<Fields>,
    new_connection_each: bool,
    connection: Option<H2Connection>,
}

impl H2Caller {
    /// Sends the request on the kept connection or a new one.
    async fn exchange(&mut self) -> anyhow::Result<(u16, Fields)> {
        let mut connection = match self.connection.take() {
            Some(kept) if kept.accepts_new_streams() => kept,
            _ => H2Connection::handshake(self.target.connect().await?).await?,
        };
        let answer = get(&mut connection, &self.fields).await?;
        if !self.new_connection_each {
            self.connection = Some(connection);
        }
        Ok(answer)
    }
}

impl Caller for H2Caller {
    async fn call(&mut self, _is_last: bool) -> Outcome {
        match self.exchange().await {
            Ok((status, head)) => judged(status, &head),
            Err(error) => Outcome::error(&error),
        }
    }

    fn reset(&mut self) {
        self.connection = None;
    }
}

/// One GET on a new stream: the final status and head; body and trailers are dropped.
async fn get(connection: &mut H2Connection, fields: &Fields) -> anyhow::Result<(u16, Fields)> {
    connection.open_stream(fields, true).await?;
    let mut head = None;
    loop {
        let end_stream = match connection.next_event().await? {
            StreamEvent::Headers { fields, end_stream } => {
                if head.is_none() {
                    let status = field(&fields, ":status")
                        .and_then(|status| status.parse::<u16>().ok())
                        .context("answer without a valid :status")?;
                    // Informational heads (1xx) come before the answer's own.
                    if status >= 200 {
                        head = Some((status, fields));
                    }
                }
                end_stream
            }
            StreamEvent::Data { end_stream, .. } => end_stream,
            StreamEvent::Reset(code) => {
                anyhow::bail!("the server reset the stream (HTTP/2 error code {code})")
            }
        };
        if end_stream {
            return head.context("the stream ended without an answer");
        }
    }
}
