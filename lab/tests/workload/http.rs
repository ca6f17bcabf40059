//! The JSON echo over HTTP/1.1 and h2c, and its injected failures and delays.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use mesh_lab::workload::Faults;

use crate::support::{http1, http2, json, start, workload};

#[tokio::test]
async fn http1_echo_reports_who_answered_and_what_it_saw() {
    let address = start(workload("web-v2-0", "v2", Faults::default())).await;
    let mut sender = http1(address).await;
    let request = http::Request::get("/items?x=1")
        .header("host", "web.shop:80")
        .header("x-canary", "1")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let (status, headers, report) = json(sender.send_request(request).await.expect("answer")).await;

    assert_eq!(status, http::StatusCode::OK);
    assert_eq!(headers["x-pod"], "web-v2-0");
    assert_eq!(headers["x-pod-version"], "v2");
    assert_eq!(report["pod"], "web-v2-0");
    assert_eq!(report["version"], "v2");
    assert_eq!(report["method"], "GET");
    assert_eq!(report["host"], "web.shop:80");
    assert_eq!(report["path"], "/items?x=1");
    assert_eq!(report["port"], address.port());
    assert_eq!(report["protocol"], "HTTP/1.1");
    assert_eq!(report["headers"]["x-canary"], "1");
    let peer: std::net::SocketAddr = report["peer"]
        .as_str()
        .expect("peer")
        .parse()
        .expect("peer address");
    assert!(peer.ip().is_loopback());
    assert_ne!(peer.port(), address.port());
}

#[tokio::test]
async fn h2c_echo_reports_the_authority_as_host() {
    let address = start(workload("web-v1-0", "v1", Faults::default())).await;
    let mut sender = http2(address).await;
    let request = http::Request::post("http://web.shop.svc.cluster.local/orders")
        .header("x-request-id", "abc")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let (status, _, report) = json(sender.send_request(request).await.expect("answer")).await;

    assert_eq!(status, http::StatusCode::OK);
    assert_eq!(report["protocol"], "HTTP/2.0");
    assert_eq!(report["method"], "POST");
    assert_eq!(report["host"], "web.shop.svc.cluster.local");
    assert_eq!(report["path"], "/orders");
    assert_eq!(report["headers"]["x-request-id"], "abc");
    assert_eq!(report["pod"], "web-v1-0");
}

#[tokio::test]
async fn fails_the_share_it_is_told_to_and_still_says_who_it_is() {
    let faults = Faults {
        fail_percent: 100.0,
        ..Faults::default()
    };
    let address = start(workload("web-v1-1", "v1", faults)).await;
    let mut sender = http1(address).await;
    for _ in 0..3 {
        let request = http::Request::get("/")
            .body(Empty::<Bytes>::new())
            .expect("request");
        let (status, headers, report) =
            json(sender.send_request(request).await.expect("answer")).await;
        assert_eq!(status, http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers["x-pod"], "web-v1-1");
        assert_eq!(report["pod"], "web-v1-1");
    }
}

#[tokio::test(start_paused = true)]
async fn delays_the_share_it_is_told_to() {
    let faults = Faults {
        delay_percent: 100.0,
        delay: Duration::from_secs(3),
        ..Faults::default()
    };
    let address = start(workload("slow-0", "v1", faults)).await;
    let mut sender = http1(address).await;
    let start = tokio::time::Instant::now();
    let request = http::Request::get("/")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let (status, _, _) = json(sender.send_request(request).await.expect("answer")).await;
    assert_eq!(status, http::StatusCode::OK);
    assert!(start.elapsed() >= Duration::from_secs(3));
}

#[tokio::test]
async fn a_chained_echo_calls_on_before_it_answers_and_says_how_that_went() {
    let backend = start(workload("backend-0", "v1", Faults::default())).await;
    let mut middle = workload("web-0", "v1", Faults::default());
    middle.call = Some(format!("http://{backend}/next").parse().expect("url"));
    let mut sender = http1(start(middle).await).await;
    let request = http::Request::get("/")
        .header("host", "web")
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .body(Empty::<Bytes>::new())
        .expect("request");
    let (status, _, report) = json(sender.send_request(request).await.expect("answer")).await;
    assert_eq!(status, http::StatusCode::OK);
    assert_eq!(report["called"], "200");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let nowhere = closed.local_addr().expect("address");
    drop(closed);
    let mut broken = workload("web-1", "v1", Faults::default());
    broken.call = Some(format!("http://{nowhere}/").parse().expect("url"));
    let mut sender = http1(start(broken).await).await;
    let request = http::Request::get("/")
        .header("host", "web")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let (status, _, report) = json(sender.send_request(request).await.expect("answer")).await;
    assert_eq!(status, http::StatusCode::BAD_GATEWAY);
    assert!(
        report["called"]
            .as_str()
            .is_some_and(|c| c.contains("connecting")),
        "{report}"
    );
}
