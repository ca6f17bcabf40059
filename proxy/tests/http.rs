//! HTTP proxying through an in-process proxy on loopback, against real upstream servers.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::*;
use tokio::net::TcpStream;

#[tokio::test]
async fn http1_keep_alive_reuses_client_and_upstream_connections() {
    let up = echo_upstream("up").await;
    let proxy = start_proxy(SIMPLE, &[("UP", up.addr)]).await;
    let mut client = H1Client::connect(proxy.addr).await;
    let mut peers = Vec::new();
    for i in 0..5 {
        let (status, headers, body) = client.get(&format!("/req/{i}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["x-upstream"], "up");
        let seen = json(&body);
        assert_eq!(seen["uri"], format!("/req/{i}"));
        assert_eq!(seen["version"], "HTTP/1.1");
        peers.push(seen["peer"].as_str().expect("peer").to_owned());
    }
    assert!(
        peers.iter().all(|p| *p == peers[0]),
        "upstream connection reused: {peers:?}"
    );
    assert_eq!(up.connections.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn http2_requests_multiplex_over_one_upstream_connection() {
    let up = echo_upstream("up").await;
    let proxy = start_proxy(SIMPLE, &[("UP", up.addr)]).await;
    let stream = TcpStream::connect(proxy.addr).await.expect("connect");
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let calls = (0..20).map(|i| {
        let mut sender = sender.clone();
        async move {
            let req = Request::get(format!("http://web/h2/{i}"))
                .body(Full::new(Bytes::new()))
                .expect("req");
            let response = sender.send_request(req).await.expect("response");
            assert_eq!(response.status(), StatusCode::OK);
            json(
                &response
                    .into_body()
                    .collect()
                    .await
                    .expect("body")
                    .to_bytes(),
            )
        }
    });
    let seen = futures_util::future::join_all(calls).await;
    for s in &seen {
        assert_eq!(s["version"], "HTTP/2.0", "HTTP/2 in, HTTP/2 out: {s}");
    }
    assert_eq!(
        up.connections.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one multiplexed upstream connection"
    );
}

#[tokio::test]
async fn refused_backend_gives_503_with_a_clear_reason() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let proxy = start_proxy(SIMPLE, &[("UP", closed)]).await;
    let (status, headers, body) = get(proxy.addr, "/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["x-mesh-error"], "connect_error");
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("upstream connect error")
            && text.contains(&closed.to_string())
            && text.contains("\"up\""),
        "{text}"
    );
    let metrics = proxy.proxy.state().metrics.render();
    assert!(metrics.contains(r#"mesh_upstream_failures_total{cluster="up",connection_security_policy="unknown",destination_principal="unknown",direction="explicit",reason="connect_error",source_principal="unknown"} 1"#), "{metrics}");
    assert!(
        metrics.contains(
            r#"mesh_requests_total{cluster="up",connection_security_policy="unknown",destination_principal="unknown",direction="explicit",response_class="5xx",source_principal="unknown"} 1"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn upstream_sees_forwarded_headers_and_no_hop_by_hop_headers() {
    let up = echo_upstream("up").await;
    let proxy = start_proxy(SIMPLE, &[("UP", up.addr)]).await;
    let req = Request::get("/")
        .header("host", "web")
        .header("connection", "keep-alive, x-private")
        .header("x-private", "secret")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("x-forwarded-for", "203.0.113.9")
        .body(Full::new(Bytes::new()))
        .expect("req");
    let (_, _, body) = H1Client::connect(proxy.addr).await.send(req).await;
    let headers = &json(&body)["headers"];
    assert!(headers.get("x-private").is_none(), "{headers}");
    assert!(headers.get("keep-alive").is_none(), "{headers}");
    assert_eq!(headers["te"], "trailers");
    assert_eq!(headers["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["x-request-id"].as_str().map(str::len), Some(36));
    assert_eq!(headers["host"], "web");
}

const ROUTES: &str = r#"
listeners:
- { name: test, address: "127.0.0.1:0", mode: EXPLICIT, protocol: HTTP1, route_config: test }
routes:
- name: test
  virtual_hosts:
  - name: web
    domains: ["web"]
    routes:
    - { match: { exact: /health }, direct_response: { status: 200, body: "fine" } }
    - { match: { prefix: /old }, redirect: { path: /new, status: 308 } }
    - { match: { prefix: /moved }, redirect: { path_prefix: /here, host: other } }
    - match: { prefix: /api }
      request_headers: { set: { x-route: api }, remove: [x-drop] }
      response_headers: { add: { x-served-by: mesh } }
      route: { destinations: [{ cluster: a }], rewrite: { path_prefix: /v2 } }
    - { match: { prefix: /slow }, route: { destinations: [{ cluster: slow }], timeout: 0.2s } }
    - { match: { prefix: /split }, route: { destinations: [{ cluster: a, weight: 90 }, { cluster: b, weight: 10 }] } }
    - { match: { prefix: /hash }, route: { destinations: [{ cluster: ring }], hash_policy: { header: x-user } } }
    - { match: { prefix: /gone }, route: { destinations: [{ cluster: missing }] } }
clusters: [ { name: a }, { name: b }, { name: slow }, { name: ring, lb_policy: RING_HASH }, { name: missing } ]
endpoints:
- { cluster: a, endpoints: [{ address: "{A}" }] }
- { cluster: b, endpoints: [{ address: "{B}" }] }
- { cluster: slow, endpoints: [{ address: "{SLOW}" }] }
- { cluster: ring, endpoints: [{ address: "{A}" }, { address: "{B}" }, { address: "{C}" }] }
"#;

async fn routes_proxy() -> TestProxy {
    let a = echo_upstream("a").await;
    let b = echo_upstream("b").await;
    let c = echo_upstream("c").await;
    let slow = upstream_with_delay("slow", Duration::from_secs(5)).await;
    start_proxy(
        ROUTES,
        &[
            ("A", a.addr),
            ("B", b.addr),
            ("C", c.addr),
            ("SLOW", slow.addr),
        ],
    )
    .await
}

#[tokio::test]
async fn routes_answer_directly_redirect_rewrite_and_edit_headers() {
    let proxy = routes_proxy().await;
    let mut client = H1Client::connect(proxy.addr).await;
    let (status, _, body) = client.get("/health").await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"fine"[..]));

    let (status, headers, _) = client.get("/old/page?x=1").await;
    assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(headers["location"], "http://web/new");
    let (status, headers, _) = client.get("/moved/page?x=1").await;
    assert_eq!(status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(headers["location"], "http://other/here/page?x=1");

    let req = Request::get("/api/items?q=1")
        .header("host", "web")
        .header("x-drop", "1")
        .body(Full::new(Bytes::new()))
        .expect("req");
    let (status, headers, body) = client.send(req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-served-by"], "mesh");
    let seen = json(&body);
    assert_eq!(seen["uri"], "/v2/items?q=1");
    assert_eq!(seen["headers"]["x-route"], "api");
    assert!(seen["headers"].get("x-drop").is_none());

    let req = Request::get("/")
        .header("host", "elsewhere")
        .body(Full::new(Bytes::new()))
        .expect("req");
    let (status, headers, body) = client.send(req).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers["x-mesh-error"], "no_route");
    assert!(
        String::from_utf8_lossy(&body).contains("no route for elsewhere/"),
        "{body:?}"
    );

    let (status, headers, _) = client.get("/gone").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["x-mesh-error"], "no_endpoint");
}

#[tokio::test]
async fn route_timeout_gives_504() {
    let proxy = routes_proxy().await;
    let (status, headers, body) = get(proxy.addr, "/slow").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(headers["x-mesh-error"], "timeout");
    assert!(
        String::from_utf8_lossy(&body).contains("timeout after 200ms"),
        "{body:?}"
    );
}

#[tokio::test]
async fn weighted_split_follows_weights() {
    let proxy = routes_proxy().await;
    let mut client = H1Client::connect(proxy.addr).await;
    let total = 2000;
    let mut to_b = 0;
    for _ in 0..total {
        let (_, headers, _) = client.get("/split").await;
        if headers["x-upstream"] == "b" {
            to_b += 1;
        }
    }
    let share = f64::from(to_b) / f64::from(total) * 100.0;
    assert!(
        (7.0..=13.0).contains(&share),
        "10% expected within ±3 points, got {share:.1}%"
    );
}

#[tokio::test]
async fn consistent_hash_on_header_pins_a_user_to_one_endpoint() {
    let proxy = routes_proxy().await;
    let mut client = H1Client::connect(proxy.addr).await;
    let mut seen_for_users = std::collections::HashSet::new();
    for user in 0..30 {
        let mut upstreams = std::collections::HashSet::new();
        for _ in 0..5 {
            let req = Request::get("/hash")
                .header("host", "web")
                .header("x-user", format!("user-{user}"))
                .body(Full::new(Bytes::new()))
                .expect("req");
            let (_, headers, _) = client.send(req).await;
            upstreams.insert(headers["x-upstream"].to_str().expect("ascii").to_owned());
        }
        assert_eq!(upstreams.len(), 1, "user-{user} went to {upstreams:?}");
        seen_for_users.extend(upstreams);
    }
    assert_eq!(
        seen_for_users.len(),
        3,
        "30 users spread over all endpoints: {seen_for_users:?}"
    );
}
