//! The built-in workload over real HTTP/1.1 on loopback.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use mesh_lab::workload::{Workload, serve};

async fn call(workload: Workload) -> (http::StatusCode, serde_json::Value) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(serve(listener, workload));
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = http::Request::get("/items?x=1")
        .header("host", "web")
        .header("x-canary", "1")
        .body(Empty::<Bytes>::new())
        .expect("req");
    let response = sender.send_request(req).await.expect("response");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, serde_json::from_slice(&body).expect("json"))
}

#[tokio::test]
async fn reports_who_it_is_and_what_it_saw() {
    let (status, report) = call(Workload {
        pod: "web-v2-0".into(),
        version: "v2".into(),
        ..Workload::default()
    })
    .await;
    assert_eq!(status, http::StatusCode::OK);
    assert_eq!(report["pod"], "web-v2-0");
    assert_eq!(report["version"], "v2");
    assert_eq!(report["path"], "/items?x=1");
    assert_eq!(report["headers"]["x-canary"], "1");
    assert_eq!(report["protocol"], "HTTP/1.1");
}

#[tokio::test]
async fn fails_the_share_it_is_told_to() {
    let (status, report) = call(Workload {
        pod: "p".into(),
        fail_percent: 100.0,
        ..Workload::default()
    })
    .await;
    assert_eq!(status, http::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(report["pod"], "p");
}

#[tokio::test(start_paused = true)]
async fn delays_the_share_it_is_told_to() {
    let start = tokio::time::Instant::now();
    let workload = Workload {
        delay_percent: 100.0,
        delay: Duration::from_secs(3),
        ..Workload::default()
    };
    let (status, _) = call(workload).await;
    assert_eq!(status, http::StatusCode::OK);
    assert!(start.elapsed() >= Duration::from_secs(3));
}
