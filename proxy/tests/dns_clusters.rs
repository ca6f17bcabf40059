//! DNS clusters against a real DNS server on a UDP socket: the proxy resolves the endpoint
//! names, follows a changed answer once its TTL runs out, answers 503 "no healthy upstream"
//! while a name does not resolve and keeps asking, with backoff, while other clusters serve on.

mod support;

use std::{
    collections::HashMap,
    net::{Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex},
    time::Duration,
};

use hickory_proto::{
    op::{Message, ResponseCode},
    rr::{RData, Record, RecordType, rdata::A},
};
use http::StatusCode;
use mesh_proxy::{dns::DnsSettings, proxy::Settings};
use support::*;
use tokio::net::UdpSocket;

/// Name (without the final dot) to its addresses and TTL.
type Records = Arc<Mutex<HashMap<String, (Vec<Ipv4Addr>, u32)>>>;

/// A DNS server answering A questions from a table it lets tests change; NXDOMAIN for the rest.
struct TestDns {
    addr: SocketAddr,
    records: Records,
    /// Questions received, by name.
    asked: Arc<Mutex<HashMap<String, usize>>>,
}

impl TestDns {
    async fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind DNS");
        let addr = socket.local_addr().expect("addr");
        let records: Records = Arc::default();
        let asked: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let (table, counts) = (records.clone(), asked.clone());
        tokio::spawn(async move {
            let mut buf = vec![0; 1500];
            loop {
                let Ok((len, from)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let Ok(query) = Message::from_vec(&buf[..len]) else {
                    continue;
                };
                let mut response = Message::response(query.metadata.id, query.metadata.op_code);
                response.metadata.recursion_desired = query.metadata.recursion_desired;
                for question in &query.queries {
                    response.add_query(question.clone());
                    let name = question.name().to_ascii();
                    let name = name.trim_end_matches('.').to_owned();
                    *counts
                        .lock()
                        .expect("lock")
                        .entry(name.clone())
                        .or_default() += 1;
                    match table.lock().expect("lock").get(&name) {
                        None => response.metadata.response_code = ResponseCode::NXDomain,
                        Some((ips, ttl)) if question.query_type() == RecordType::A => {
                            for ip in ips {
                                response.add_answer(Record::from_rdata(
                                    question.name().clone(),
                                    *ttl,
                                    RData::A(A(*ip)),
                                ));
                            }
                        }
                        Some(_) => {}
                    }
                }
                if let Ok(bytes) = response.to_vec() {
                    let _ = socket.send_to(&bytes, from).await;
                }
            }
        });
        TestDns {
            addr,
            records,
            asked,
        }
    }

    fn set(&self, name: &str, ips: &[Ipv4Addr], ttl: u32) {
        (self.records.lock().expect("lock")).insert(name.to_owned(), (ips.to_vec(), ttl));
    }

    fn asked(&self, name: &str) -> usize {
        self.asked
            .lock()
            .expect("lock")
            .get(name)
            .copied()
            .unwrap_or(0)
    }
}

/// Routes Host `api` to the DNS cluster `api` (endpoint `api.example.test:{PORT}`) and
/// everything else to the static cluster `static` at `{STATIC}`.
const CONFIG: &str = r#"
listeners:
- { name: test, address: "127.0.0.1:0", mode: EXPLICIT, route_config: test }
routes:
- name: test
  virtual_hosts:
  - { name: api, domains: ["api"], routes: [ { route: { destinations: [{ cluster: api }] } } ] }
  - { name: rest, domains: ["*"], routes: [ { route: { destinations: [{ cluster: static }] } } ] }
clusters: [ { name: api, discovery: DNS }, { name: static } ]
endpoints:
- { cluster: api, endpoints: [{ address: "api.example.test:{PORT}" }] }
- { cluster: static, endpoints: [{ address: "{STATIC}" }] }
"#;

async fn start(dns: &TestDns, port: u16, static_addr: SocketAddr) -> TestProxy {
    let settings = Settings {
        dns: DnsSettings {
            servers: vec![dns.addr],
        },
        ..Settings::default()
    };
    let yaml = CONFIG.replace("{PORT}", &port.to_string());
    start_proxy_with(&yaml, &[("STATIC", static_addr)], settings).await
}

/// A GET with this Host on a new connection: status and body.
async fn get_host(proxy: &TestProxy, host: &str) -> (StatusCode, String) {
    let request = http::Request::get("/")
        .header("host", host)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("request");
    let (status, _, body) = H1Client::connect(proxy.addr).await.send(request).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Waits (up to 10 s) for the next snapshot the proxy swaps in.
async fn next_config(versions: &mut tokio::sync::watch::Receiver<u64>) {
    tokio::time::timeout(Duration::from_secs(10), versions.changed())
        .await
        .expect("a new config within 10 s")
        .expect("config store alive");
}

#[tokio::test]
async fn a_dns_cluster_sends_to_the_names_address_and_follows_a_new_answer_after_its_ttl() {
    let first = upstream_at(
        "first",
        "127.0.0.1:0".parse().expect("addr"),
        Duration::ZERO,
    )
    .await;
    let port = first.addr.port();
    let second = upstream_at(
        "second",
        SocketAddr::from(([127, 0, 0, 2], port)),
        Duration::ZERO,
    )
    .await;
    let other = echo_upstream("static").await;
    let dns = TestDns::start().await;
    dns.set("api.example.test", &[Ipv4Addr::new(127, 0, 0, 1)], 1);
    let proxy = start(&dns, port, other.addr).await;
    let mut versions = proxy.proxy.state().config.watch();
    versions.mark_unchanged();
    if proxy.proxy.state().config.load().version == 1 {
        next_config(&mut versions).await;
    }
    let (status, body) = get_host(&proxy, "api").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(json(&body.into())["upstream"], "first");

    dns.set("api.example.test", &[Ipv4Addr::new(127, 0, 0, 2)], 1);
    next_config(&mut versions).await;
    let (status, body) = get_host(&proxy, "api").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(json(&body.into())["upstream"], "second");
    assert_eq!(second.requests.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_name_that_does_not_resolve_gives_503_no_healthy_upstream_and_is_asked_again() {
    let other = echo_upstream("static").await;
    let dns = TestDns::start().await;
    let proxy = start(&dns, 8080, other.addr).await;
    let (status, body) = get_host(&proxy, "api").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("no healthy upstream"), "{body}");
    let (status, body) = get_host(&proxy, "web").await;
    assert_eq!(status, StatusCode::OK, "other clusters serve on: {body}");

    // Asked again after 1 s, then 2 s: a third lookup by about 3 s, and not many more.
    let lookups = || {
        let metrics = proxy.proxy.state().metrics.render();
        (metrics.lines())
            .find_map(|l| l.strip_prefix(r#"mesh_dns_lookups_total{result="no_records"} "#))
            .map_or(0, |n| n.parse::<u64>().expect("count"))
    };
    let start = tokio::time::Instant::now();
    while lookups() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(6),
            "{} lookups",
            lookups()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(2500),
        "backoff: 3 lookups after {elapsed:?}"
    );
    assert!(dns.asked("api.example.test") >= 3);
}
