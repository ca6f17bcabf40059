//! The client side in-process against running workloads: where requests went, how failures
//! are counted, keep-alive versus a connection per request, HTTP/2, gRPC and TCP.

use std::{net::SocketAddr, time::Duration};

use mesh_lab::workload::{
    Faults,
    client::{
        ClientError, GrpcPlan, HttpPlan, Load, Summary, Target, TcpPlan, call_grpc, call_http,
        call_tcp,
    },
};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
};

use crate::support::{start, start_pair, start_tcp_echo, workload};

fn load(count: u64, concurrency: usize) -> Load {
    Load {
        count,
        concurrency,
        timeout: Duration::from_secs(10),
    }
}

fn http_plan(address: SocketAddr, load: Load) -> HttpPlan {
    HttpPlan {
        url: format!("http://{address}/").parse().expect("url"),
        headers: vec![("x-canary".into(), "1".into())],
        http2: false,
        new_connection_each: false,
        load,
    }
}

fn target(address: SocketAddr) -> Target {
    address.to_string().parse().expect("target")
}

fn failing() -> Faults {
    Faults {
        fail_percent: 100.0,
        ..Faults::default()
    }
}

fn assert_all_ok(summary: &Summary, count: u64) {
    assert_eq!(
        (summary.total, summary.ok, summary.failed),
        (count, count, 0),
        "{summary:?}"
    );
    assert!(summary.failures.is_empty(), "{summary:?}");
}

#[tokio::test]
async fn keep_alive_stays_on_one_pod_while_new_connections_spread_over_both() {
    let address = start_pair(
        workload("web-v1-0", "v1", Faults::default()),
        workload("web-v2-0", "v2", Faults::default()),
    )
    .await;

    let kept = call_http(http_plan(address, load(20, 1)))
        .await
        .expect("plan");
    assert_all_ok(&kept, 20);
    assert_eq!(kept.pods.len(), 1, "one connection, one pod: {kept:?}");
    assert_eq!(kept.versions.values().sum::<u64>(), 20);

    let spread = call_http(HttpPlan {
        new_connection_each: true,
        ..http_plan(address, load(60, 3))
    })
    .await
    .expect("plan");
    assert_all_ok(&spread, 60);
    assert_eq!(
        spread.pods.len(),
        2,
        "sixty connections, both pods: {spread:?}"
    );
    assert_eq!(spread.pods["web-v1-0"], spread.versions["v1"]);
    assert_eq!(spread.pods["web-v2-0"], spread.versions["v2"]);
    assert_eq!(spread.pods.values().sum::<u64>(), 60);

    let spread_http2 = call_http(HttpPlan {
        http2: true,
        new_connection_each: true,
        ..http_plan(address, load(60, 3))
    })
    .await
    .expect("plan");
    assert_all_ok(&spread_http2, 60);
    assert_eq!(spread_http2.pods.len(), 2, "{spread_http2:?}");
}

/// Serves HTTP/1.1 but answers only the first request on each connection and closes it on
/// reading the next, as a server may close an idle keep-alive connection just as a client
/// sends on it.
async fn start_closing_after_each_answer() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.expect("accept");
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                for answered in [true, false] {
                    let mut line = String::new();
                    while stream.read_line(&mut line).await.is_ok_and(|read| read > 0)
                        && line != "\r\n"
                    {
                        line.clear();
                    }
                    if answered {
                        let answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\
                                      x-pod: closer-0\r\nx-pod-version: v1\r\n\r\nok";
                        let _ = stream.get_mut().write_all(answer.as_bytes()).await;
                    }
                }
            });
        }
    });
    address
}

#[tokio::test]
async fn a_kept_connection_the_server_closed_is_replaced_without_a_failure() {
    let address = start_closing_after_each_answer().await;
    let summary = call_http(http_plan(address, load(8, 1)))
        .await
        .expect("plan");
    assert_all_ok(&summary, 8);
    assert_eq!(summary.pods["closer-0"], 8);
}

#[tokio::test]
async fn a_request_http_cannot_carry_is_refused_before_any_is_sent() {
    let address = start(workload("web-0", "v1", Faults::default())).await;
    let refused = call_http(HttpPlan {
        headers: vec![("bad name".into(), "1".into())],
        ..http_plan(address, load(1, 1))
    })
    .await
    .expect_err("bad header");
    assert!(
        matches!(&refused, ClientError::BadHeader { name, .. } if name == "bad name"),
        "{refused:?}"
    );
    let refused = call_grpc(GrpcPlan {
        target: target(address),
        headers: vec![("host".into(), "not an authority".into())],
        stream: false,
        load: load(1, 1),
    })
    .await
    .expect_err("bad authority");
    assert!(
        matches!(refused, ClientError::BadRequestTarget { .. }),
        "{refused:?}"
    );
}

#[tokio::test]
async fn http2_requests_share_one_connection_per_worker() {
    let address = start_pair(
        workload("web-v1-0", "v1", Faults::default()),
        workload("web-v2-0", "v2", Faults::default()),
    )
    .await;
    let summary = call_http(HttpPlan {
        http2: true,
        ..http_plan(address, load(25, 1))
    })
    .await
    .expect("plan");
    assert_all_ok(&summary, 25);
    assert_eq!(summary.pods.len(), 1, "{summary:?}");
}

#[tokio::test]
async fn failed_answers_are_counted_by_status_and_still_by_pod() {
    let address = start(workload("web-bad-0", "v1", failing())).await;
    for http2 in [false, true] {
        let summary = call_http(HttpPlan {
            http2,
            ..http_plan(address, load(6, 2))
        })
        .await
        .expect("plan");
        assert_eq!((summary.total, summary.ok, summary.failed), (6, 0, 6));
        assert_eq!(summary.failures["503"], 6);
        assert_eq!(summary.pods["web-bad-0"], 6);
    }
}

#[tokio::test]
async fn unreachable_targets_are_counted_as_errors() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    let summary = call_http(http_plan(address, load(3, 1)))
        .await
        .expect("plan");
    assert_eq!((summary.total, summary.failed), (3, 3));
    let (reason, count) = summary.failures.iter().next().expect("a failure");
    assert!(
        reason.contains(&format!("connecting to {address}")),
        "{reason}"
    );
    assert_eq!(*count, 3);
    assert!(summary.pods.is_empty());
}

#[tokio::test]
async fn answers_slower_than_the_timeout_fail() {
    let faults = Faults {
        delay_percent: 100.0,
        delay: Duration::from_secs(30),
        ..Faults::default()
    };
    let address = start(workload("slow-0", "v1", faults)).await;
    let summary = call_http(http_plan(
        address,
        Load {
            count: 2,
            concurrency: 1,
            timeout: Duration::from_millis(200),
        },
    ))
    .await
    .expect("plan");
    assert_eq!(summary.failures["no answer within 200ms"], 2, "{summary:?}");
}

#[tokio::test]
async fn grpc_unary_calls_are_counted_by_replying_pod() {
    let address = start(workload("echo-0", "v3", Faults::default())).await;
    let summary = call_grpc(GrpcPlan {
        target: target(address),
        headers: vec![("x-canary".into(), "1".into())],
        stream: false,
        load: load(12, 3),
    })
    .await
    .expect("plan");
    assert_all_ok(&summary, 12);
    assert_eq!(summary.pods["echo-0"], 12);
    assert_eq!(summary.versions["v3"], 12);
}

#[tokio::test]
async fn grpc_stream_messages_are_each_answered() {
    let address = start(workload("echo-1", "v1", Faults::default())).await;
    let summary = call_grpc(GrpcPlan {
        target: target(address),
        headers: Vec::new(),
        stream: true,
        load: load(11, 2),
    })
    .await
    .expect("plan");
    assert_all_ok(&summary, 11);
    assert_eq!(summary.pods["echo-1"], 11);
}

#[tokio::test]
async fn grpc_failures_are_counted_by_status_name() {
    let address = start(workload("echo-bad-0", "v2", failing())).await;
    for stream in [false, true] {
        let summary = call_grpc(GrpcPlan {
            target: target(address),
            headers: Vec::new(),
            stream,
            load: load(4, 1),
        })
        .await
        .expect("plan");
        assert_eq!((summary.total, summary.failed), (4, 4), "{summary:?}");
        assert_eq!(summary.failures["UNAVAILABLE"], 4);
        assert_eq!(summary.pods["echo-bad-0"], 4);
    }
}

#[tokio::test]
async fn tcp_connections_are_counted_by_greeting_pod() {
    let address = start_tcp_echo(workload("db-0", "v5", Faults::default())).await;
    let summary = call_tcp(TcpPlan {
        target: target(address),
        load: load(7, 2),
    })
    .await;
    assert_all_ok(&summary, 7);
    assert_eq!(summary.pods["db-0"], 7);
    assert_eq!(summary.versions["v5"], 7);
}

#[tokio::test]
async fn a_tcp_server_that_is_not_the_echo_fails_the_check() {
    // The HTTP echo answers garbage with a 400 and closes: no greeting, so a failure.
    let address = start(workload("web-0", "v1", Faults::default())).await;
    let summary = call_tcp(TcpPlan {
        target: target(address),
        load: load(1, 1),
    })
    .await;
    assert_eq!(summary.failed, 1, "{summary:?}");
    assert!(summary.pods.is_empty());
}
