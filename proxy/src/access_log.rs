//! Access logs: one JSON line per request on the sidecar's stdout (its own logs go to stderr),
//! with what came in, what went out, who talked and why the proxy answered itself when it did.
//! A thread of its own writes them, so a request never waits on the terminal or a log shipper;
//! lines that find its queue full are dropped and counted in `mesh_access_log_dropped_total`.

use std::{
    io::Write,
    net::SocketAddr,
    sync::{
        Arc,
        mpsc::{self, SyncSender, TrySendError},
    },
    time::{Duration, SystemTime},
};

use http::{HeaderMap, Method, Request, Version};
use mesh_log_filter::{Facts, Filter};
use prometheus::IntCounter;

use crate::istio_metrics::ResponseFlag;

/// Lines waiting for the writer before new ones are dropped.
const QUEUE: usize = 4096;
/// Most lines written at once.
const BATCH: usize = 64;

/// Where access log lines go.
pub struct AccessLog {
    lines: SyncSender<String>,
    dropped: IntCounter,
}

/// One request's line in the making: the log, what the request said and which requests the
/// config keeps.
pub struct LogLine {
    /// The log to write to.
    pub log: Arc<AccessLog>,
    /// The request's side.
    pub entry: Entry,
    /// Only requests it matches get a line; `None`: every one.
    pub filter: Option<Arc<Filter>>,
}

/// What an access log line says of the request, taken when it arrives.
pub struct Entry {
    start: SystemTime,
    method: Method,
    authority: String,
    path: String,
    protocol: Version,
    request_id: Option<String>,
    trace_id: Option<String>,
    downstream: SocketAddr,
    inbound: bool,
    scheme: &'static str,
    /// The request headers the filter reads, by lowercase name.
    headers: Vec<(String, String)>,
}

/// What an access log line says of the answer.
pub struct Outcome<'a> {
    /// The response status.
    pub status: u16,
    /// The gRPC status, if any.
    pub grpc: Option<u8>,
    /// Why the proxy answered itself, if it did.
    pub flag: ResponseFlag,
    /// From the request's arrival to the response's end.
    pub duration: Duration,
    /// Request body bytes.
    pub bytes_received: u64,
    /// Response body bytes.
    pub bytes_sent: u64,
    /// The endpoint that answered.
    pub upstream_host: Option<SocketAddr>,
    /// The cluster the request went to.
    pub upstream_cluster: Option<&'a str>,
    /// Who talked: (source workload, source principal, destination workload, destination
    /// principal, destination service).
    pub peers: [&'a str; 5],
    /// Whether the request travelled in mesh mutual TLS.
    pub mtls: bool,
}

// === impl AccessLog ===

impl AccessLog {
    /// Starts the writer thread on stdout; `dropped` counts lines that found the queue full.
    pub fn start(dropped: IntCounter) -> std::io::Result<Self> {
        Self::start_on(std::io::stdout(), dropped)
    }

    /// Starts the writer thread on `out`.
    pub fn start_on(
        mut out: impl Write + Send + 'static,
        dropped: IntCounter,
    ) -> std::io::Result<Self> {
        let (lines, queue) = mpsc::sync_channel::<String>(QUEUE);
        std::thread::Builder::new()
            .name("access-log".to_owned())
            .spawn(move || {
                while let Ok(line) = queue.recv() {
                    let mut batch = line;
                    // What else is waiting goes out in the same write, up to a batch.
                    for more in queue.try_iter().take(BATCH - 1) {
                        batch.push_str(&more);
                    }
                    if out
                        .write_all(batch.as_bytes())
                        .and_then(|()| out.flush())
                        .is_err()
                    {
                        return;
                    }
                }
            })?;
        Ok(AccessLog { lines, dropped })
    }

    /// Writes `entry`'s line with its `outcome`, or counts it dropped.
    pub fn write(&self, entry: &Entry, outcome: &Outcome<'_>) {
        let mut line = entry.line(outcome);
        line.push('\n');
        match self.lines.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => self.dropped.inc(),
        }
    }
}

// === impl LogLine ===

impl LogLine {
    /// Writes the line with its `outcome`, when the filter keeps the request.
    pub fn write(&self, outcome: &Outcome<'_>) {
        let header = |name: &str| self.entry.header(name);
        if (self.filter.as_ref()).is_none_or(|f| f.matches(&self.entry.facts(outcome, &header))) {
            self.log.write(&self.entry, outcome);
        }
    }
}

// === impl Entry ===

impl Entry {
    /// What the log will say of `req`, from `downstream`, arriving now; `filter` names the
    /// headers to keep for it.
    pub fn new<B>(
        req: &Request<B>,
        downstream: SocketAddr,
        inbound: bool,
        filter: Option<&Filter>,
    ) -> Self {
        let headers = req.headers();
        let kept = filter.into_iter().flat_map(Filter::headers);
        Entry {
            scheme: match req.uri().scheme() {
                Some(scheme) if *scheme == http::uri::Scheme::HTTPS => "https",
                _ => "http",
            },
            headers: kept
                .filter_map(|name| Some((name.to_owned(), text(headers, name)?.to_owned())))
                .collect(),
            start: SystemTime::now(),
            method: req.method().clone(),
            authority: (req.uri().authority().map(|a| a.as_str()))
                .or_else(|| text(headers, "host"))
                .unwrap_or_default()
                .to_owned(),
            path: (req.uri().path_and_query())
                .map_or("/", |p| p.as_str())
                .to_owned(),
            protocol: req.version(),
            request_id: text(headers, "x-request-id").map(str::to_owned),
            trace_id: trace_id(headers),
            downstream,
            inbound,
        }
    }

    /// A request header the filter reads.
    fn header(&self, name: &str) -> Option<&str> {
        (self.headers.iter())
            .find(|(kept, _)| kept == name)
            .map(|(_, value)| value.as_str())
    }

    /// What a filter may ask of the request and its `outcome`.
    fn facts<'a>(
        &'a self,
        outcome: &'a Outcome<'a>,
        header: &'a dyn Fn(&str) -> Option<&'a str>,
    ) -> Facts<'a> {
        Facts {
            method: self.method.as_str(),
            path: &self.path,
            host: &self.authority,
            scheme: self.scheme,
            protocol: protocol_name(self.protocol),
            request_size: outcome.bytes_received,
            duration: outcome.duration,
            response_code: outcome.status,
            grpc_status: outcome.grpc,
            response_size: outcome.bytes_sent,
            response_flags: outcome.flag.as_str(),
            mtls: outcome.mtls,
            source_principal: outcome.peers[1],
            destination_principal: outcome.peers[3],
            header,
        }
    }

    fn line(&self, outcome: &Outcome<'_>) -> String {
        let start = time::OffsetDateTime::from(self.start)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let [
            source_workload,
            source_principal,
            destination_workload,
            destination_principal,
            destination_service,
        ] = outcome.peers;
        serde_json::json!({
            "start_time": start,
            "direction": if self.inbound { "inbound" } else { "outbound" },
            "method": self.method.as_str(),
            "authority": self.authority,
            "path": self.path,
            "protocol": format!("{:?}", self.protocol),
            "response_code": outcome.status,
            "grpc_status": outcome.grpc,
            "response_flags": outcome.flag.as_str(),
            "duration_ms": outcome.duration.as_secs_f64() * 1000.0,
            "bytes_received": outcome.bytes_received,
            "bytes_sent": outcome.bytes_sent,
            "upstream_host": outcome.upstream_host.map(|h| h.to_string()),
            "upstream_cluster": outcome.upstream_cluster,
            "downstream_remote_address": self.downstream.to_string(),
            "source_workload": source_workload,
            "source_principal": source_principal,
            "destination_workload": destination_workload,
            "destination_principal": destination_principal,
            "destination_service": destination_service,
            "request_id": self.request_id,
            "trace_id": self.trace_id,
        })
        .to_string()
    }
}

fn protocol_name(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

fn text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The trace id of the request's W3C `traceparent`, else its B3 headers.
fn trace_id(headers: &HeaderMap) -> Option<String> {
    if let Some(parent) = text(headers, "traceparent") {
        let mut parts = parent.split('-');
        if let (Some(_version), Some(id)) = (parts.next(), parts.next()) {
            return Some(id.to_owned());
        }
    }
    (text(headers, "x-b3-traceid"))
        .or_else(|| text(headers, "b3").and_then(|b3| b3.split('-').next()))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn outcome(status: u16, flag: ResponseFlag) -> Outcome<'static> {
        Outcome {
            status,
            grpc: None,
            flag,
            duration: Duration::from_millis(12),
            bytes_received: 3,
            bytes_sent: 40,
            upstream_host: Some("10.0.0.7:8080".parse().expect("addr")),
            upstream_cluster: Some("outbound|80||web.shop.svc.cluster.local"),
            peers: [
                "client",
                "spiffe://a",
                "web",
                "spiffe://b",
                "web.shop.svc.cluster.local",
            ],
            mtls: true,
        }
    }

    #[test]
    fn a_line_says_what_came_in_what_went_out_and_who_talked() {
        let out = Shared::default();
        let log = AccessLog::start_on(out.clone(), IntCounter::new("d", "d").expect("counter"))
            .expect("thread");
        let req = Request::get("/items?x=1")
            .header("host", "web")
            .header(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            )
            .body(())
            .expect("request");
        let entry = Entry::new(&req, "10.0.0.3:41000".parse().expect("addr"), false, None);
        log.write(&entry, &outcome(503, ResponseFlag::NoHealthyUpstream));
        drop(log);
        let line = loop {
            let text = String::from_utf8(out.0.lock().expect("lock").clone()).expect("utf-8");
            if text.ends_with('\n') {
                break text;
            }
            std::thread::yield_now();
        };
        let json: serde_json::Value = serde_json::from_str(line.trim()).expect("one JSON line");
        assert_eq!(json["method"], "GET");
        assert_eq!(json["authority"], "web");
        assert_eq!(json["path"], "/items?x=1");
        assert_eq!(json["response_code"], 503);
        assert_eq!(json["response_flags"], "UH");
        assert_eq!(json["trace_id"], "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(json["destination_workload"], "web");
        assert_eq!(json["upstream_host"], "10.0.0.7:8080");
        assert_eq!(json["direction"], "outbound");
    }

    #[test]
    fn a_full_queue_drops_lines_and_counts_them() {
        /// A writer that never returns, as a terminal nobody reads.
        struct Stuck;
        impl Write for Stuck {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                std::thread::park();
                Ok(0)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let dropped = IntCounter::new("d", "d").expect("counter");
        let log = AccessLog::start_on(Stuck, dropped.clone()).expect("thread");
        let req = Request::get("/").body(()).expect("request");
        let entry = Entry::new(&req, "10.0.0.3:41000".parse().expect("addr"), true, None);
        for _ in 0..2 * QUEUE {
            log.write(&entry, &outcome(200, ResponseFlag::None));
        }
        // At most one batch went to the stuck writer and a queue's worth waits.
        let dropped = dropped.get();
        assert!(dropped >= (QUEUE - BATCH) as u64, "dropped {dropped}");
    }
}
