//! Retries and timeouts through an in-process proxy on loopback: what is retried, where the
//! retry goes, what the upstream sees of it, and what bounds it (attempts, deadlines, the
//! budget, the size of the body).

mod support;

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use support::*;
use tokio::{net::TcpListener, time::Instant};

/// An upstream that answers 503 to its first `failures` requests and 200 after, each after
/// `delay`, with the body length and attempt header it saw; counts requests.
struct Scripted {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
}

async fn scripted(name: &'static str, failures: usize, delay: Duration) -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let status = if counter.fetch_add(1, Ordering::SeqCst) < failures {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::OK
                    };
                    async move {
                        let attempt = req
                            .headers()
                            .get("x-mesh-attempt-count")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        let body = req.into_body().collect().await.map(|b| b.to_bytes());
                        tokio::time::sleep(delay).await;
                        let report = serde_json::json!({
                            "upstream": name,
                            "attempt": attempt,
                            "body": body.as_ref().map_or(0, Bytes::len),
                            "body_sum": body.as_ref().map_or(0, |b| b.iter().map(|&x| u64::from(x)).sum::<u64>()),
                        });
                        Ok::<_, Infallible>(
                            Response::builder()
                                .status(status)
                                .header("x-upstream", name)
                                .body(Full::new(Bytes::from(report.to_string())))
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
    Scripted { addr, requests }
}

/// `failures` for an upstream that always fails.
const ALWAYS: usize = usize::MAX;

/// A port nothing listens on.
fn refusing() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
}

/// One route to cluster `up` (round robin over `{E0}`, `{E1}`...) with `policy` spliced into
/// its route action.
fn config(policy: &str, endpoints: usize) -> String {
    let endpoints: Vec<String> = (0..endpoints)
        .map(|i| format!("{{ address: \"{{E{i}}}\" }}"))
        .collect();
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
    - {{ match: {{ prefix: / }}, route: {{ destinations: [{{ cluster: up }}] {policy} }} }}
clusters: [ {{ name: up, lb_policy: ROUND_ROBIN }} ]
endpoints: [ {{ cluster: up, endpoints: [{}] }} ]
"#,
        endpoints.join(", ")
    )
}

async fn proxy(policy: &str, endpoints: &[SocketAddr]) -> TestProxy {
    let names: Vec<String> = (0..endpoints.len()).map(|i| format!("E{i}")).collect();
    let vars: Vec<(&str, SocketAddr)> = names
        .iter()
        .map(String::as_str)
        .zip(endpoints.iter().copied())
        .collect();
    start_proxy(&config(policy, endpoints.len()), &vars).await
}

fn metric(proxy: &TestProxy, outcome: &str) -> u64 {
    let text = proxy.proxy.state().metrics.render();
    text.lines()
        .filter(|l| {
            l.starts_with("mesh_retries_total{") && l.contains(&format!("outcome=\"{outcome}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn a_5xx_is_retried_on_another_endpoint_and_the_app_sees_the_attempt() {
    let bad = scripted("bad", ALWAYS, Duration::ZERO).await;
    let good = scripted("good", 0, Duration::ZERO).await;
    let proxy = proxy(
        ", retries: { attempts: 3, retry_on: [5xx] }",
        &[bad.addr, good.addr],
    )
    .await;
    let mut client = H1Client::connect(proxy.addr).await;
    let mut second_tries = 0;
    for _ in 0..50 {
        let (status, _, body) = client.get("/").await;
        assert_eq!(status, StatusCode::OK, "{body:?}");
        let seen = json(&body);
        assert_eq!(seen["upstream"], "good");
        if seen["attempt"] == "2" {
            second_tries += 1;
        }
    }
    // Every try the bad endpoint got was retried, on the good one.
    assert_eq!(bad.requests.load(Ordering::SeqCst), second_tries);
    assert!(second_tries >= 25, "{second_tries}");
    assert_eq!(metric(&proxy, "sent"), second_tries as u64);
}

#[tokio::test]
async fn without_a_policy_refused_connections_are_retried_by_default() {
    let a = scripted("a", 0, Duration::ZERO).await;
    let b = scripted("b", 0, Duration::ZERO).await;
    let proxy = proxy("", &[a.addr, refusing(), b.addr]).await;
    let mut client = H1Client::connect(proxy.addr).await;
    for _ in 0..60 {
        let (status, _, body) = client.get("/").await;
        assert_eq!(status, StatusCode::OK, "{body:?}");
    }
    // ...but a 503 is not retried by default.
    let failing = scripted("failing", ALWAYS, Duration::ZERO).await;
    let proxy = self::proxy("", &[failing.addr]).await;
    let (status, _, _) = get(proxy.addr, "/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(failing.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn attempts_0_turns_retries_off() {
    let proxy = proxy(", retries: { attempts: 0 }", &[refusing()]).await;
    let (status, headers, _) = get(proxy.addr, "/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["x-mesh-error"], "connect_error");
    assert_eq!(metric(&proxy, "sent"), 0);
}

#[tokio::test]
async fn per_try_timeouts_add_up_within_the_attempts_and_the_route_timeout_bounds_them() {
    let slow = scripted("slow", 0, Duration::from_secs(5)).await;
    let proxy = proxy(
        ", retries: { attempts: 2, per_try_timeout: 0.1s, retry_on: [5xx] }",
        &[slow.addr],
    )
    .await;
    let started = Instant::now();
    let (status, headers, _) = get(proxy.addr, "/").await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(headers["x-mesh-error"], "timeout");
    // Three tries of 100 ms, and two backoffs of at most 25 and 50 ms.
    assert!(
        (Duration::from_millis(300)..Duration::from_millis(450)).contains(&took),
        "{took:?}"
    );
    assert_eq!(slow.requests.load(Ordering::SeqCst), 3);

    let proxy = self::proxy(
        ", timeout: 0.25s, retries: { attempts: 5, per_try_timeout: 0.1s, retry_on: [5xx] }",
        &[slow.addr],
    )
    .await;
    let started = Instant::now();
    let (status, _, body) = get(proxy.addr, "/").await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(
        String::from_utf8_lossy(&body).contains("request timeout after 250ms"),
        "{body:?}"
    );
    assert!(
        (Duration::from_millis(250)..Duration::from_millis(320)).contains(&took),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_request_body_is_replayed_whole_and_a_large_one_is_sent_once() {
    let flaky = scripted("flaky", 1, Duration::ZERO).await;
    let proxy = proxy(", retries: { attempts: 2, retry_on: [5xx] }", &[flaky.addr]).await;
    let mut client = H1Client::connect(proxy.addr).await;
    let small: Vec<u8> = (0..60_000u32).map(|i| (i % 251) as u8).collect();
    let sum: u64 = small.iter().map(|&x| u64::from(x)).sum();
    let req = Request::post("/")
        .header("host", "web")
        .body(Full::new(Bytes::from(small)))
        .expect("req");
    let (status, _, body) = client.send(req).await;
    assert_eq!(status, StatusCode::OK);
    let seen = json(&body);
    assert_eq!(
        (seen["body"].as_u64(), seen["body_sum"].as_u64()),
        (Some(60_000), Some(sum)),
        "the second try got the body whole"
    );
    assert_eq!(seen["attempt"], "2");
    assert_eq!(flaky.requests.load(Ordering::SeqCst), 2);

    let flaky = scripted("flaky", 1, Duration::ZERO).await;
    let proxy = self::proxy(", retries: { attempts: 2, retry_on: [5xx] }", &[flaky.addr]).await;
    let mut client = H1Client::connect(proxy.addr).await;
    let large = || {
        Request::post("/")
            .header("host", "web")
            .body(Full::new(Bytes::from(vec![1u8; 200_000])))
            .expect("req")
    };
    let (status, _, _) = client.send(large()).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "too large to keep: not retried"
    );
    assert_eq!(metric(&proxy, "body_too_large"), 1);
    let (status, _, body) = client.send(large()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        json(&body)["body"],
        200_000,
        "a large body still goes through whole"
    );
}

#[tokio::test]
async fn the_budget_stops_a_retry_storm_against_a_failing_backend() {
    let failing = scripted("failing", ALWAYS, Duration::ZERO).await;
    let proxy = proxy(
        ", retries: { attempts: 3, retry_on: [5xx] }",
        &[failing.addr],
    )
    .await;
    // 1,000 requests from 50 clients at once, well inside the budget's 10-second window.
    let requests = 1000;
    let clients = (0..50).map(|_| async {
        let mut client = H1Client::connect(proxy.addr).await;
        for _ in 0..requests / 50 {
            let (status, _, _) = client.get("/").await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        }
    });
    futures_util::future::join_all(clients).await;
    // Without a budget the backend would see 4,000; with it, 20 % more plus 10 a second
    // over 10 seconds (100).
    let seen = failing.requests.load(Ordering::SeqCst);
    assert!(seen <= requests + requests / 5 + 100, "{seen}");
    assert!(seen >= requests + requests / 5, "{seen}");
    assert!(metric(&proxy, "budget_exhausted") >= 600);
}

#[tokio::test]
async fn sequential_calls_from_one_client_spread_over_equal_endpoints_by_default() {
    let endpoints = [
        scripted("a", 0, Duration::ZERO).await,
        scripted("b", 0, Duration::ZERO).await,
        scripted("c", 0, Duration::ZERO).await,
    ];
    let addrs: Vec<SocketAddr> = endpoints.iter().map(|e| e.addr).collect();
    let yaml = config("", 3).replace(", lb_policy: ROUND_ROBIN", "");
    let proxy = start_proxy(
        &yaml,
        &[("E0", addrs[0]), ("E1", addrs[1]), ("E2", addrs[2])],
    )
    .await;
    let mut client = H1Client::connect(proxy.addr).await;
    for _ in 0..300 {
        assert_eq!(client.get("/").await.0, StatusCode::OK);
    }
    let shares: Vec<usize> = endpoints
        .iter()
        .map(|e| e.requests.load(Ordering::SeqCst))
        .collect();
    assert!(
        shares.iter().all(|&n| n >= 60),
        "each at least 20 %: {shares:?}"
    );
}
