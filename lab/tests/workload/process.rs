//! The `mesh-workload` binary: start-up lines, several listeners, environment settings, and
//! the client subcommands' output and exit codes.

use std::{process::Stdio, time::Duration};

use bytes::Bytes;
use http_body_util::Empty;
use mesh_lab::workload::{Faults, client::Summary};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{ServerProcess, binary, http1, json, start, start_tcp_echo, workload};

/// Longest a client run may take; a guard, not a pace.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// Runs the binary with `args` to the end: its exit success and the summary it printed.
async fn run_client(args: &[&str], env: &[(&str, &str)]) -> (bool, Summary) {
    let mut command = binary();
    command
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let output = tokio::time::timeout(RUN_LIMIT, command.output())
        .await
        .expect("finished in time")
        .expect("ran");
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "one summary line; stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = serde_json::from_str(lines[0]).expect("summary JSON");
    (output.status.success(), summary)
}

#[tokio::test]
async fn serves_every_listener_it_announces() {
    let mut command = binary();
    command.args([
        "--addr",
        "127.0.0.1:0",
        "--addr",
        "127.0.0.1:0",
        "--tcp-addr",
        "127.0.0.1:0",
        "--pod",
        "bin-0",
        "--pod-version",
        "v9",
    ]);
    let server = ServerProcess::start(command, 3).await;
    assert!(server.lines[0].contains("bin-0 (v9): http+grpc listening on 127.0.0.1:"));
    assert!(server.lines[2].contains("tcp echo listening on 127.0.0.1:"));

    for index in [0, 1] {
        let address = server.address(index);
        let request = http::Request::get("/")
            .body(Empty::<Bytes>::new())
            .expect("request");
        let (_, _, report) = json(
            http1(address)
                .await
                .send_request(request)
                .await
                .expect("answer"),
        )
        .await;
        assert_eq!(report["pod"], "bin-0");
        assert_eq!(report["port"], address.port(), "answered on its own port");
    }
    let mut tcp = tokio::net::TcpStream::connect(server.address(2))
        .await
        .expect("connect");
    tcp.shutdown().await.expect("half-close");
    let mut greeting = String::new();
    tcp.read_to_string(&mut greeting).await.expect("greeting");
    assert_eq!(greeting, "pod=bin-0 version=v9\n");
}

#[tokio::test]
async fn takes_its_settings_from_the_environment_and_the_serve_subcommand() {
    let mut command = binary();
    command
        .arg("serve")
        .env("WORKLOAD_ADDR", "127.0.0.1:0,127.0.0.1:0")
        .env("POD_NAME", "env-0")
        .env("POD_VERSION", "v4")
        .env("WORKLOAD_FAIL_PERCENT", "100");
    let server = ServerProcess::start(command, 2).await;
    let request = http::Request::get("/")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let (status, _, report) = json(
        http1(server.address(1))
            .await
            .send_request(request)
            .await
            .expect("answer"),
    )
    .await;
    assert_eq!(status, http::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(report["pod"], "env-0");
    assert_eq!(report["version"], "v4");
}

#[tokio::test]
async fn a_port_in_use_fails_start_up_naming_it() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = taken.local_addr().expect("address").to_string();
    let output = binary()
        .args(["--addr", "127.0.0.1:0", "--tcp-addr", &address])
        .output()
        .await
        .expect("ran");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {address} for tcp echo")),
        "{stderr}"
    );
}

#[tokio::test]
async fn call_prints_one_summary_and_resolves_names() {
    let address = start(workload("web-v1-0", "v1", Faults::default())).await;
    // `localhost` goes through the system resolver; a pod's POD_NAME must not get in the way.
    let url = format!("http://localhost:{}/", address.port());
    let (success, summary) = run_client(
        &["call", &url, "--count", "5", "--header", "x-canary:1"],
        &[("POD_NAME", "client-0")],
    )
    .await;
    assert!(success);
    assert_eq!((summary.total, summary.ok), (5, 5));
    assert_eq!(summary.pods["web-v1-0"], 5);
    assert_eq!(summary.versions["v1"], 5);
}

#[tokio::test]
async fn call_exits_non_zero_on_failures_unless_allowed() {
    let faults = Faults {
        fail_percent: 100.0,
        ..Faults::default()
    };
    let address = start(workload("web-bad-0", "v1", faults)).await;
    let url = format!("http://{address}/");
    let (success, summary) = run_client(&["call", &url, "--count", "3", "--http2"], &[]).await;
    assert!(!success);
    assert_eq!(summary.failures["503"], 3);
    let (allowed, _) = run_client(&["call", &url, "--count", "3", "--allow-failures"], &[]).await;
    assert!(allowed);
}

#[tokio::test]
async fn call_tcp_and_call_grpc_print_their_summaries() {
    let tcp = start_tcp_echo(workload("db-0", "v2", Faults::default())).await;
    let (success, summary) = run_client(&["call-tcp", &tcp.to_string(), "--count", "4"], &[]).await;
    assert!(success);
    assert_eq!(summary.pods["db-0"], 4);

    let grpc = start(workload("echo-0", "v3", Faults::default())).await;
    for extra in [None, Some("--stream")] {
        let mut args = vec!["call-grpc", "--count", "4", "--concurrency", "2"];
        let grpc = grpc.to_string();
        args.push(&grpc);
        args.extend(extra);
        let (success, summary) = run_client(&args, &[]).await;
        assert!(success, "{args:?}: {summary:?}");
        assert_eq!(summary.versions["v3"], 4);
    }
}

#[tokio::test]
async fn a_header_http_cannot_carry_fails_the_call_before_any_request() {
    let output = binary()
        .args(["call", "http://127.0.0.1:9/", "--header", "bad name:1"])
        .output()
        .await
        .expect("ran");
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "no summary: nothing was sent");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot send the header \"bad name\""),
        "{stderr}"
    );
}
