//! Mirroring through an in-process proxy on loopback: the mirror gets a copy of each chosen
//! request (route header edits, body, a `-shadow` host), the client only ever sees the
//! primary's answer, and a mirror that never answers holds nothing up.

mod support;

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use support::*;
use tokio::{net::TcpListener, sync::mpsc};

/// What a mirror saw of one copy: host, the route's header, body length.
type Seen = (String, Option<String>, usize);

/// An upstream that reports every request it gets on a channel and answers 500 (which the
/// client must never see).
async fn recording_mirror() -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let tx = tx.clone();
                    async move {
                        let host = req
                            .headers()
                            .get("host")
                            .map(|h| h.to_str().unwrap_or("?").to_owned())
                            .or_else(|| req.uri().authority().map(|a| a.to_string()))
                            .unwrap_or_default();
                        let edited = req
                            .headers()
                            .get("x-route")
                            .map(|v| v.to_str().unwrap_or("?").to_owned());
                        let body = req.into_body().collect().await.map(|b| b.to_bytes().len());
                        let _ = tx.send((host, edited, body.unwrap_or(0)));
                        Ok::<_, std::convert::Infallible>(
                            Response::builder()
                                .status(StatusCode::INTERNAL_SERVER_ERROR)
                                .body(Full::new(Bytes::from_static(b"mirror")))
                                .expect("response"),
                        )
                    }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, rx)
}

fn config(mirrors: &str) -> String {
    format!(
        r#"
listeners:
- {{ name: test, address: "127.0.0.1:0", mode: EXPLICIT, protocol: HTTP1, route_config: test }}
routes:
- name: test
  virtual_hosts:
  - name: web
    domains: ["*"]
    routes:
    - match: {{ prefix: / }}
      request_headers: {{ set: {{ x-route: edited }} }}
      route: {{ destinations: [{{ cluster: up }}], mirrors: {mirrors} }}
clusters: [ {{ name: up }}, {{ name: shadow }}, {{ name: hole }} ]
endpoints:
- {{ cluster: up, endpoints: [{{ address: "{{UP}}" }}] }}
- {{ cluster: shadow, endpoints: [{{ address: "{{SHADOW}}" }}] }}
- {{ cluster: hole, endpoints: [{{ address: "{{HOLE}}" }}] }}
"#
    )
}

/// A listener that never accepts: connections queue in the kernel and nothing answers.
fn black_hole() -> (std::net::TcpListener, SocketAddr) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    (listener, addr)
}

#[tokio::test]
async fn every_request_is_copied_with_the_routes_edits_and_the_client_sees_the_primary() {
    let up = echo_upstream("up").await;
    let (shadow, mut seen) = recording_mirror().await;
    let (_hole, hole) = black_hole();
    let proxy = start_proxy(
        &config("[{ cluster: shadow }]"),
        &[("UP", up.addr), ("SHADOW", shadow), ("HOLE", hole)],
    )
    .await;
    let mut client = H1Client::connect(proxy.addr).await;
    for i in 0..20 {
        let req = Request::post(format!("/item/{i}"))
            .header("host", "web.shop:8080")
            .body(Full::new(Bytes::from(vec![7u8; 1000 + i])))
            .expect("req");
        let (status, headers, _) = client.send(req).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "the primary answers, never the mirror"
        );
        assert_eq!(headers["x-upstream"], "up");
    }
    let mut copies = Vec::new();
    while copies.len() < 20 {
        let copy = tokio::time::timeout(Duration::from_secs(5), seen.recv()).await;
        copies.push(copy.expect("every copy arrives").expect("open"));
    }
    copies.sort_by_key(|c| c.2);
    for (i, (host, edited, body)) in copies.iter().enumerate() {
        assert_eq!(host, "web.shop-shadow:8080");
        assert_eq!(edited.as_deref(), Some("edited"));
        assert_eq!(*body, 1000 + i, "the copy carries the body whole");
    }
}

#[tokio::test]
async fn a_percentage_mirrors_about_that_share() {
    let up = echo_upstream("up").await;
    let (shadow, mut seen) = recording_mirror().await;
    let (_hole, hole) = black_hole();
    let proxy = start_proxy(
        &config("[{ cluster: shadow, percentage: 30 }]"),
        &[("UP", up.addr), ("SHADOW", shadow), ("HOLE", hole)],
    )
    .await;
    let mut client = H1Client::connect(proxy.addr).await;
    for _ in 0..1000 {
        assert_eq!(client.get("/").await.0, StatusCode::OK);
    }
    // Copies still on their way get half a second after the last one.
    let mut copies = 0;
    while tokio::time::timeout(Duration::from_millis(500), seen.recv())
        .await
        .is_ok_and(|c| c.is_some())
    {
        copies += 1;
    }
    assert!(
        (250..=350).contains(&copies),
        "30 % ± 5 points of 1,000: {copies}"
    );
}

#[tokio::test]
async fn a_black_holed_mirror_holds_nothing_up() {
    let up = echo_upstream("up").await;
    let (shadow, _seen) = recording_mirror().await;
    let (_hole, hole) = black_hole();
    let proxy = start_proxy(
        &config("[{ cluster: hole }, { cluster: shadow, percentage: 0 }]"),
        &[("UP", up.addr), ("SHADOW", shadow), ("HOLE", hole)],
    )
    .await;
    let mut client = H1Client::connect(proxy.addr).await;
    let started = tokio::time::Instant::now();
    for _ in 0..200 {
        assert_eq!(client.get("/").await.0, StatusCode::OK);
    }
    // Every copy is stuck in the hole for its 10 s deadline; the requests never waited.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let metrics = proxy.proxy.state().metrics.render();
    assert!(
        !metrics.contains("mesh_mirror_skipped_total{cluster=\"hole\""),
        "{metrics}"
    );
}
