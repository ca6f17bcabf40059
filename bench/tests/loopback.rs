//! The load generator against the upstream over loopback, both protocols, both models.
#![allow(clippy::unwrap_used)] // Helpers of a test: a panic is the failure report.

use mesh_bench::{
    client::Target,
    loadgen::{Config, Load, run},
    upstream,
};
use std::time::Duration;

async fn start_upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(upstream::serve(listener));
    format!("http://{addr}/")
}

fn config(url: &str, http2: bool, load: Load) -> Config {
    Config {
        target: Target::parse(url, http2, None).unwrap(),
        load,
        connections: 4,
        streams: 3,
        duration: Duration::from_millis(500),
        warmup: Duration::from_millis(100),
        timeout: Duration::from_secs(2),
        threads: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constant_rate_sends_exactly_the_schedule() {
    let url = start_upstream().await;
    for http2 in [false, true] {
        let summary = run(&config(&url, http2, Load::Rate(400))).await.unwrap();
        let r = summary.requests;
        // 400 rps over 500 ms: 200 requests due in the window, all answered.
        assert_eq!((r.scheduled, r.sent, r.ok), (200, 200, 200), "{summary}");
        assert_eq!(summary.errors(), 0, "{summary}");
        assert_eq!(summary.connections, 4);
        assert_eq!(summary.streams_per_connection, if http2 { 3 } else { 1 });
        let latency = summary.latency_us.unwrap();
        assert!(latency.p50 > 0 && latency.p50 <= latency.max, "{summary}");
        assert!(summary.send_lag_us.is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_throughput_counts_completed_requests() {
    let url = start_upstream().await;
    let summary = run(&config(&url, false, Load::Max)).await.unwrap();
    assert!(summary.requests.ok > 100, "{summary}");
    assert_eq!(summary.errors(), 0, "{summary}");
    assert!((summary.achieved_rps - summary.requests.ok as f64 / 0.5).abs() < 1e-6);
    assert!(summary.send_lag_us.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_is_an_error_not_a_hang() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    drop(listener);
    let error = run(&config(&url, false, Load::Rate(100)))
        .await
        .unwrap_err();
    assert!(
        format!("{error:#}").contains("is the server running?"),
        "{error:#}"
    );
}
