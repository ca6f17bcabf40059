//! Circuit breaking through an in-process proxy on loopback: a cluster's pool limits refuse
//! what is over them at once (503 and `x-mesh-overloaded`), let what is under them through,
//! and never leave a request hanging.

mod support;

use std::{net::SocketAddr, sync::atomic::Ordering, time::Duration};

use http::StatusCode;
use support::*;
use tokio::time::Instant;

fn config(pool: &str) -> String {
    format!(
        r#"
listeners:
- {{ name: test, address: "127.0.0.1:0", mode: EXPLICIT, protocol: HTTP1, route_config: test }}
routes:
- name: test
  virtual_hosts:
  - {{ name: any, domains: ["*"], routes: [ {{ match: {{ prefix: / }}, route: {{ destinations: [{{ cluster: up }}] }} }} ] }}
clusters: [ {{ name: up, connection_pool: {pool} }} ]
endpoints: [ {{ cluster: up, endpoints: [{{ address: "{{UP}}" }}] }} ]
"#
    )
}

/// `n` GETs at once, each on its own client connection: (status, overloaded header) each.
async fn burst(addr: SocketAddr, n: usize) -> Vec<(StatusCode, bool)> {
    let calls = (0..n).map(|_| async move {
        let (status, headers, _) = get(addr, "/").await;
        (
            status,
            headers
                .get("x-mesh-overloaded")
                .is_some_and(|v| v == "true"),
        )
    });
    futures_util::future::join_all(calls).await
}

fn overflow_count(proxy: &TestProxy, limit: &str) -> u64 {
    let text = proxy.proxy.state().metrics.render();
    text.lines()
        .find(|l| {
            l.starts_with("mesh_overflow_total{") && l.contains(&format!("limit=\"{limit}\""))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn one_connection_and_one_waiting_request_and_the_rest_overflow_at_once() {
    let up = upstream_with_delay("up", Duration::from_millis(300)).await;
    let proxy = start_proxy(
        &config("{ max_connections: 1, max_pending_requests: 1 }"),
        &[("UP", up.addr)],
    )
    .await;
    let started = Instant::now();
    let results = burst(proxy.addr, 20).await;
    let took = started.elapsed();
    let ok = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    let overloaded = results
        .iter()
        .filter(|(s, o)| *s == StatusCode::SERVICE_UNAVAILABLE && *o)
        .count();
    assert_eq!((ok, overloaded), (2, 18), "{results:?}");
    // The waiting one went second on the one connection: nothing hung.
    assert!(took < Duration::from_millis(900), "{took:?}");
    assert_eq!(up.connections.load(Ordering::SeqCst), 1);
    assert_eq!(overflow_count(&proxy, "max_pending_requests"), 18);
    // The one connection serves the next requests.
    for _ in 0..3 {
        let next = tokio::time::timeout(Duration::from_secs(2), get(proxy.addr, "/")).await;
        assert_eq!(next.expect("answered").0, StatusCode::OK);
    }
}

#[tokio::test]
async fn max_requests_bounds_requests_in_flight() {
    let up = upstream_with_delay("up", Duration::from_millis(200)).await;
    let proxy = start_proxy(&config("{ max_requests: 3 }"), &[("UP", up.addr)]).await;
    let results = burst(proxy.addr, 10).await;
    let ok = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(ok, 3, "{results:?}");
    assert!(results.iter().all(|(s, o)| *s == StatusCode::OK || *o));
    assert_eq!(overflow_count(&proxy, "max_requests"), 7);
    // Once they are done the cluster takes requests again.
    assert_eq!(get(proxy.addr, "/").await.0, StatusCode::OK);
}

#[tokio::test]
async fn max_requests_per_connection_closes_a_connection_after_that_many() {
    let up = echo_upstream("up").await;
    let proxy = start_proxy(
        &config("{ max_requests_per_connection: 2 }"),
        &[("UP", up.addr)],
    )
    .await;
    let mut client = H1Client::connect(proxy.addr).await;
    for _ in 0..6 {
        assert_eq!(client.get("/").await.0, StatusCode::OK);
    }
    assert_eq!(up.connections.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn h2_upgrade_speaks_http2_to_the_endpoint_for_an_http1_client() {
    let up = echo_upstream("up").await;
    let proxy = start_proxy(&config("{ h2_upgrade: true }"), &[("UP", up.addr)]).await;
    let (status, _, body) = get(proxy.addr, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["version"], "HTTP/2.0");
}
