//! Process-level tests of the `mesh-proxy` binary: it runs as a child process with a YAML
//! config file in front of in-process upstreams, and the tests drive it the way an operator
//! and kubelet do: signals, config file edits, health probes, admin and metrics scrapes, and
//! clients that misbehave.
//!
//! Every wait is bounded (`rig::WAIT`) and ends on a signal from the proxy or an upstream, never
//! on a fixed sleep; the child is killed when a test ends, and its stderr printed if it failed.

#[path = "process/client.rs"]
mod client;
#[path = "process/rig.rs"]
mod rig;
#[path = "process/upstreams.rs"]
mod upstreams;

use std::{io::ErrorKind, time::Duration};

use bytes::Bytes;
use http::{Method, StatusCode};
use mesh_test_support::free_addr;
use nix::sys::signal::Signal;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};

use rig::{ProxyProcess, WAIT, config, get_text, within};
use upstreams::{count_body, empty, generated};

/// 200 MiB: far more than the proxy may buffer.
const BULK: u64 = 200 * 1024 * 1024;

/// The limit on one bulk transfer (debug builds on a shared 2-core machine).
const TRANSFER: Duration = Duration::from_secs(120);

/// How much the proxy's peak RSS may exceed its idle RSS while streaming.
const MEMORY_HEADROOM_KIB: u64 = 40 * 1024;

#[tokio::test]
async fn sigterm_stops_accepting_reports_unready_and_finishes_in_flight_request_before_exit_0() {
    let body = Bytes::from(
        (0..1024 * 1024)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    let mut upstream = upstreams::held(body.clone()).await;
    let listen = free_addr();
    let yaml = config(listen, "a", &[("a", upstream.upstream.addr)]);
    // A drain deadline far beyond the waits below: a quick exit means the drain completed.
    let mut proxy = ProxyProcess::start("sigterm_drains", &yaml, &["--drain-timeout", "60s"]).await;

    let (mut sender, connection) = client::h1(listen).await;
    let in_flight = tokio::spawn(async move {
        let response = sender
            .send_request(client::request(Method::GET, "/slow", empty()))
            .await?;
        let status = response.status();
        // The sender goes back with the answer: dropping it would let the client close the
        // connection itself, and the test must see the proxy close it.
        Ok::<_, upstreams::BoxError>((status, client::bytes(response).await?, sender))
    });
    upstream.wait_received().await;

    proxy.signal(Signal::SIGTERM);
    proxy.wait_readiness(StatusCode::SERVICE_UNAVAILABLE).await;
    assert_not_served(listen).await;
    assert!(
        !in_flight.is_finished(),
        "the held request ended before the upstream answered it"
    );

    upstream.release();
    let (status, received, _sender) = within(WAIT, "the in-flight response", in_flight)
        .await
        .expect("client task")
        .unwrap_or_else(|e| {
            panic!(
                "the in-flight request failed during the drain: {e}\n{}",
                proxy.stderr()
            )
        });
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        received.len(),
        body.len(),
        "the in-flight response body was cut short"
    );
    assert!(received == body, "the in-flight response body was altered");
    // HTTP/1.1 while draining: the proxy closes the connection after the response.
    within(
        WAIT,
        "the proxy closing the client connection after its response",
        connection,
    )
    .await
    .expect("client connection task")
    .expect("the client connection ended cleanly");

    let status = proxy.wait_exit(Duration::from_secs(5)).await;
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after draining: {status}\n{}",
        proxy.stderr()
    );
    assert!(
        proxy.stderr().contains("drained; exiting"),
        "drain did not complete:\n{}",
        proxy.stderr()
    );
}

#[tokio::test]
async fn sigterm_exits_0_at_the_drain_deadline_when_a_request_never_finishes() {
    let mut upstream = upstreams::held(Bytes::new()).await; // never released
    let listen = free_addr();
    let yaml = config(listen, "a", &[("a", upstream.upstream.addr)]);
    let mut proxy = ProxyProcess::start("drain_deadline", &yaml, &["--drain-timeout", "1s"]).await;

    let (mut sender, _connection) = client::h1(listen).await;
    let in_flight =
        tokio::spawn(sender.send_request(client::request(Method::GET, "/never", empty())));
    upstream.wait_received().await;

    let signalled = Instant::now();
    proxy.signal(Signal::SIGTERM);
    let status = proxy.wait_exit(Duration::from_secs(5)).await;
    let took = signalled.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "exited {took:?} after SIGTERM, before its 1 s drain deadline, with a request in flight\n{}",
        proxy.stderr()
    );
    assert_eq!(
        status.code(),
        Some(0),
        "exit status at the drain deadline: {status}\n{}",
        proxy.stderr()
    );
    assert!(
        proxy.stderr().contains("drain deadline reached"),
        "the log does not say the deadline cut the drain short:\n{}",
        proxy.stderr()
    );
    let answer = within(WAIT, "the client noticing the proxy exited", in_flight)
        .await
        .expect("client task");
    assert!(
        answer.is_err(),
        "a request the upstream never answered got a response: {answer:?}"
    );
}

#[tokio::test]
async fn streams_200_mib_up_over_http1_and_http2_and_down_with_bounded_memory() {
    let upstream = upstreams::bulk().await;
    let listen = free_addr();
    let yaml = config(listen, "bulk", &[("bulk", upstream.addr)]);
    let proxy = ProxyProcess::start("bulk", &yaml, &[]).await;

    // Warm up both paths (connections, pools, buffers) before measuring the idle size.
    let (mut h1, _h1_connection) = client::h1(listen).await;
    let mut h2 = client::h2(listen).await;
    let response = h1
        .send_request(client::request(Method::POST, "/upload", generated(100_000)))
        .await;
    assert_eq!(
        client::text(response.expect("small HTTP/1.1 upload"))
            .await
            .expect("body"),
        "100000"
    );
    let response = h2
        .send_request(client::request_h2(
            Method::POST,
            "/upload",
            generated(100_000),
        ))
        .await;
    assert_eq!(
        client::text(response.expect("small HTTP/2 upload"))
            .await
            .expect("body"),
        "100000"
    );
    let (idle_rss, _) = proxy.memory_kib();

    let upload = async {
        let response = h1
            .send_request(client::request(Method::POST, "/upload", generated(BULK)))
            .await?;
        client::text(response).await
    };
    let counted = within(TRANSFER, "200 MiB HTTP/1.1 upload", upload)
        .await
        .expect("HTTP/1.1 upload");
    assert_eq!(
        counted,
        BULK.to_string(),
        "bytes the upstream received from an HTTP/1.1 upload"
    );

    let upload = async {
        let response = h2
            .send_request(client::request_h2(Method::POST, "/upload", generated(BULK)))
            .await?;
        client::text(response).await
    };
    let counted = within(TRANSFER, "200 MiB HTTP/2 upload", upload)
        .await
        .expect("HTTP/2 upload");
    assert_eq!(
        counted,
        BULK.to_string(),
        "bytes the upstream received from an HTTP/2 upload"
    );

    let download = async {
        let path = format!("/download?bytes={BULK}");
        let response = h1
            .send_request(client::request(Method::GET, &path, empty()))
            .await?;
        assert_eq!(response.status(), StatusCode::OK);
        count_body(response.into_body()).await
    };
    let counted = within(TRANSFER, "200 MiB HTTP/1.1 download", download)
        .await
        .expect("download");
    assert_eq!(counted, BULK, "bytes the client received from a download");

    let (rss, peak) = proxy.memory_kib();
    println!(
        "mesh-proxy memory: idle VmRSS {idle_rss} KiB, after transfers VmRSS {rss} KiB, VmHWM {peak} KiB"
    );
    assert!(
        peak < idle_rss + MEMORY_HEADROOM_KIB,
        "the proxy buffered bodies: VmHWM {peak} KiB ≥ idle VmRSS {idle_rss} KiB + {MEMORY_HEADROOM_KIB} KiB \
         (VmRSS now {rss} KiB)"
    );
}

#[tokio::test]
async fn reload_follows_sighup_and_file_changes_and_keeps_the_last_good_config() {
    let (a, b) = (upstreams::named("a").await, upstreams::named("b").await);
    let clusters = [("a", a.addr), ("b", b.addr)];
    let listen = free_addr();
    let proxy = ProxyProcess::start("reload", &config(listen, "a", &clusters), &[]).await;
    assert_eq!(
        get_text(listen, "/").await,
        (StatusCode::OK, "a".to_owned())
    );
    let first = proxy.config_version().await;

    // SIGHUP reloads even an unchanged file (which the file poll would never reload).
    let ok = [("result", "ok")];
    let loads = proxy
        .metric("mesh_config_reloads_total", &ok)
        .await
        .unwrap_or(0.0);
    proxy.signal(Signal::SIGHUP);
    let reloaded = proxy.wait_config_version_above(first).await;
    proxy
        .wait_metric_at_least("mesh_config_reloads_total", &ok, loads + 1.0)
        .await;

    // SIGHUP applies a new file.
    proxy.dir().write_config(&config(listen, "b", &clusters));
    proxy.signal(Signal::SIGHUP);
    proxy.wait_config_version_above(reloaded).await;
    for _ in 0..3 {
        assert_eq!(
            get_text(listen, "/").await,
            (StatusCode::OK, "b".to_owned()),
            "after SIGHUP"
        );
    }

    // An invalid file is refused, said why, counted, and the last good config keeps serving.
    let errors = [("result", "error")];
    let before = proxy
        .metric("mesh_config_reloads_total", &errors)
        .await
        .unwrap_or(0.0);
    let invalid =
        config(listen, "b", &clusters).replace("route_config: web", "route_config: missing");
    proxy.dir().write_config(&invalid);
    proxy.signal(Signal::SIGHUP);
    proxy
        .wait_metric_at_least("mesh_config_reloads_total", &errors, before + 1.0)
        .await;
    proxy
        .wait_stderr_contains(r#"listener "web": route config "missing" is not defined"#)
        .await;
    proxy
        .wait_stderr_contains("keeping the config in force")
        .await;
    assert_eq!(
        get_text(listen, "/").await,
        (StatusCode::OK, "b".to_owned()),
        "after an invalid file"
    );

    // So is a file that is not YAML at all.
    let before = proxy
        .metric("mesh_config_reloads_total", &errors)
        .await
        .unwrap_or(0.0);
    proxy
        .dir()
        .write_config("listeners: [ { this is not yaml\n");
    proxy.signal(Signal::SIGHUP);
    proxy
        .wait_metric_at_least("mesh_config_reloads_total", &errors, before + 1.0)
        .await;
    proxy
        .wait_stderr_contains("is not a valid proxy config")
        .await;
    assert_eq!(
        get_text(listen, "/").await,
        (StatusCode::OK, "b".to_owned()),
        "after a non-YAML file"
    );
    let (_, dump) = get_text(proxy.admin, "/config_dump").await;
    assert!(
        !dump.contains("missing"),
        "/config_dump shows the refused config:\n{dump}"
    );

    // A valid change without SIGHUP: the file poll picks it up.
    let before = proxy.config_version().await;
    proxy.dir().write_config(&config(listen, "a", &clusters));
    proxy.wait_config_version_above(before).await;
    assert_eq!(
        get_text(listen, "/").await,
        (StatusCode::OK, "a".to_owned()),
        "after a file change"
    );
}

#[tokio::test]
async fn startup_with_an_invalid_config_fails_naming_every_bad_field() {
    let listen = free_addr();
    let yaml = format!(
        r#"listeners:
- {{ name: web, address: "{listen}", mode: EXPLICIT, route_config: missing }}
clusters: [ {{ name: a }} ]
endpoints:
- {{ cluster: a, endpoints: [{{ address: "nope" }}] }}
"#
    );
    let failed = ProxyProcess::run_to_exit("invalid_config", &yaml, &[]).await;
    assert!(
        failed.status.code().is_some_and(|code| code != 0),
        "expected a non-zero exit, got {}; stderr:\n{}",
        failed.status,
        failed.stderr
    );
    for needle in [
        r#"cluster "a": "nope" is not an ip:port address"#,
        r#"listener "web": route config "missing" is not defined"#,
    ] {
        assert!(
            failed.stderr.contains(needle),
            "stderr does not say {needle:?}:\n{}",
            failed.stderr
        );
    }
    assert!(
        TcpStream::connect(listen).await.is_err(),
        "the invalid config's listener is still served"
    );
}

#[tokio::test]
async fn startup_with_the_admin_port_in_use_fails_naming_the_port_and_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_addr = taken.local_addr().expect("addr").to_string();
    let listen = free_addr();
    let yaml = config(listen, "a", &[("a", "127.0.0.1:9".parse().expect("addr"))]);
    let failed =
        ProxyProcess::run_to_exit("admin_in_use", &yaml, &["--admin-addr", &taken_addr]).await;
    assert!(
        failed.status.code().is_some_and(|code| code != 0),
        "expected a non-zero exit, got {}; stderr:\n{}",
        failed.status,
        failed.stderr
    );
    let needle = format!("cannot bind the admin listener on {taken_addr}");
    assert!(
        failed.stderr.contains(&needle),
        "stderr does not say {needle:?}:\n{}",
        failed.stderr
    );
}

#[tokio::test]
async fn startup_with_a_listener_port_in_use_fails_naming_the_listener_and_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_addr = taken.local_addr().expect("addr");
    let yaml = config(
        taken_addr,
        "a",
        &[("a", "127.0.0.1:9".parse().expect("addr"))],
    );
    let failed = ProxyProcess::run_to_exit("listener_in_use", &yaml, &[]).await;
    assert!(
        failed.status.code().is_some_and(|code| code != 0),
        "expected a non-zero exit, got {}; stderr:\n{}",
        failed.status,
        failed.stderr
    );
    let error = failed
        .stderr
        .lines()
        .find(|line| line.contains(&taken_addr.to_string()))
        .unwrap_or_else(|| {
            panic!(
                "stderr does not name the address {taken_addr}:\n{}",
                failed.stderr
            )
        });
    assert!(
        error.contains("in use"),
        "the error does not say the address is in use: {error}"
    );
    assert!(
        error.contains(r#""web""#),
        "the error names the address but not the listener \"web\" the config gave it: {error}"
    );
}

#[tokio::test]
async fn malformed_requests_get_400_or_a_close_without_disturbing_other_connections() {
    let upstream = upstreams::named("a").await;
    let listen = free_addr();
    let proxy = ProxyProcess::start(
        "malformed",
        &config(listen, "a", &[("a", upstream.addr)]),
        &[],
    )
    .await;

    let (mut keep_alive, keep_alive_connection) = client::h1(listen).await;
    let mut get_on_keep_alive = async || {
        let response = keep_alive
            .send_request(client::request(Method::GET, "/", empty()))
            .await?;
        assert_eq!(response.status(), StatusCode::OK);
        client::text(response).await
    };
    assert_eq!(
        within(WAIT, "first keep-alive request", get_on_keep_alive())
            .await
            .expect("request"),
        "a"
    );

    let bad_header = read_answer(
        listen,
        b"GET / HTTP/1.1\r\nHost: x\r\nBad header line\r\n\r\n",
        "the proxy answering a malformed header and closing",
    )
    .await;
    let bad_header = bad_header
        .unwrap_or_else(|e| panic!("no answer to a malformed header ({e}):\n{}", proxy.stderr()));
    assert!(
        bad_header.starts_with("HTTP/1.1 400"),
        "a malformed header line was answered with {bad_header:?}"
    );

    let garbage: Vec<u8> = (0..4096u32).map(|i| (255 - i % 256) as u8).collect();
    match read_answer(
        listen,
        &garbage,
        "the proxy closing a connection of garbage",
    )
    .await
    {
        Ok(answer) => assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
            "binary garbage was answered with {answer:?}"
        ),
        Err(error) => assert!(
            matches!(
                error.kind(),
                ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
            ),
            "binary garbage: unexpected error {error}"
        ),
    }

    for i in 0..5 {
        let answer = within(
            WAIT,
            "keep-alive request after the malformed ones",
            get_on_keep_alive(),
        )
        .await;
        assert_eq!(
            answer.expect("keep-alive request"),
            "a",
            "request {i} after the malformed connections"
        );
    }
    assert!(
        !keep_alive_connection.is_finished(),
        "the keep-alive connection was closed"
    );
    assert_eq!(
        get_text(listen, "/").await,
        (StatusCode::OK, "a".to_owned()),
        "a new connection"
    );
}

/// Asserts that a new connection to `addr` is refused, or closed without an HTTP answer.
async fn assert_not_served(addr: std::net::SocketAddr) {
    let request = b"GET / HTTP/1.1\r\nHost: web\r\n\r\n";
    let what = "a new connection while draining was accepted and kept open";
    match read_answer(addr, request, what).await {
        Err(error)
            if matches!(
                error.kind(),
                ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset
            ) => {}
        Err(error) => panic!("a new connection while draining: unexpected error {error}"),
        Ok(answer) => assert!(
            answer.is_empty(),
            "a new connection while draining was answered: {answer:?}"
        ),
    }
}

/// Connects to `addr`, sends `bytes`, and reads what comes back until the proxy closes;
/// `what` says what it means when the proxy does not close within [`WAIT`].
async fn read_answer(
    addr: std::net::SocketAddr,
    bytes: &[u8],
    what: &str,
) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(bytes).await?;
    let mut answer = Vec::new();
    within(WAIT, what, stream.read_to_end(&mut answer)).await?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[tokio::test]
async fn app_probes_run_the_apps_own_probe_from_the_health_port() {
    // The app answers /ready with 200 and anything else with 500, and records who asked.
    let app = upstreams::serve(|req: http::Request<hyper::body::Incoming>| async move {
        let status = if req.uri().path() == "/ready" && req.headers().contains_key("x-probe") {
            StatusCode::OK
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        let mut response = http::Response::new(upstreams::full(Bytes::new()));
        *response.status_mut() = status;
        response
    })
    .await;
    let dead = free_addr();
    let probes = format!(
        r#"{{"/app-health/web/readyz": {{"httpGet": {{"path": "/ready", "port": {port},
              "httpHeaders": [{{"name": "x-probe", "value": "1"}}]}}}},
            "/app-health/web/livez": {{"tcpSocket": {{"port": {port}}}}},
            "/app-health/broken/readyz": {{"httpGet": {{"path": "/other", "port": {port}}}}},
            "/app-health/gone/livez": {{"tcpSocket": {{"port": {dead_port}}}}}}}"#,
        port = app.addr.port(),
        dead_port = dead.port(),
    );
    let proxy =
        ProxyProcess::start("app-probes", "listeners: []", &["--app-probes", &probes]).await;
    for (path, want) in [
        ("/app-health/web/readyz", StatusCode::OK),
        ("/app-health/web/livez", StatusCode::OK),
        (
            "/app-health/broken/readyz",
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
        ("/app-health/gone/livez", StatusCode::SERVICE_UNAVAILABLE),
        ("/app-health/nobody/readyz", StatusCode::NOT_FOUND),
    ] {
        let (status, body) = get_text(proxy.health, path).await;
        assert_eq!(status, want, "{path}: {body}");
    }
    let failed =
        ProxyProcess::run_to_exit("bad-app-probes", "listeners: []", &["--app-probes", "[]"]).await;
    assert!(failed.stderr.contains("JSON object"), "{}", failed.stderr);
}

#[tokio::test]
async fn access_log_lines_say_what_happened_with_envoys_flags() {
    let upstream = upstreams::named("a").await;
    let failing =
        upstreams::serve(|_req| async { upstreams::text(StatusCode::SERVICE_UNAVAILABLE, "down") })
            .await;
    let bulk = upstreams::bulk().await;
    let listen = free_addr();
    let yaml = format!(
        r#"listeners:
- {{ name: web, address: "{listen}", mode: EXPLICIT, route_config: web }}
routes:
- name: web
  virtual_hosts:
  - name: web
    domains: ["web"]
    routes:
    - {{ match: {{ prefix: /empty }}, route: {{ destinations: [{{ cluster: empty }}] }} }}
    - match: {{ prefix: /failing }}
      route: {{ destinations: [{{ cluster: failing }}], retries: {{ attempts: 2, retry_on: [5xx] }} }}
    - {{ match: {{ prefix: /download }}, route: {{ destinations: [{{ cluster: bulk }}] }} }}
    - {{ match: {{ prefix: / }}, route: {{ destinations: [{{ cluster: a }}] }} }}
clusters: [ {{ name: a }}, {{ name: empty }}, {{ name: failing }}, {{ name: bulk }} ]
endpoints:
- {{ cluster: a, endpoints: [{{ address: "{}" }}] }}
- {{ cluster: failing, endpoints: [{{ address: "{}" }}] }}
- {{ cluster: bulk, endpoints: [{{ address: "{}" }}] }}
"#,
        upstream.addr, failing.addr, bulk.addr
    );
    let proxy = ProxyProcess::start("access_log", &yaml, &["--access-log"]).await;
    let cases = [
        ("web", "/items?x=1", StatusCode::OK, "-"),
        ("web", "/empty", StatusCode::SERVICE_UNAVAILABLE, "UH"),
        ("elsewhere", "/", StatusCode::NOT_FOUND, "NR"),
        ("web", "/failing", StatusCode::SERVICE_UNAVAILABLE, "URX"),
    ];
    for (host, path, status, _) in cases {
        let (mut sender, _connection) = client::h1(listen).await;
        let mut request = client::request(Method::GET, path, empty());
        request
            .headers_mut()
            .insert("host", host.parse().expect("host"));
        let response = within(WAIT, "an answer", sender.send_request(request))
            .await
            .expect("answer");
        assert_eq!(response.status(), status, "{host}{path}");
        client::text(response).await.expect("body");
    }
    // A client that leaves in the middle of a 100 MB download.
    let (mut sender, connection) = client::h1(listen).await;
    let mut request = client::request(Method::GET, "/download?bytes=100000000", empty());
    request
        .headers_mut()
        .insert("host", "web".parse().expect("host"));
    let response = within(WAIT, "an answer", sender.send_request(request))
        .await
        .expect("answer");
    assert_eq!(response.status(), StatusCode::OK);
    connection.abort();
    drop((response, sender));
    let lines = proxy.stdout_lines(cases.len() + 1).await;
    assert_eq!(lines.len(), cases.len() + 1, "{lines:?}");
    let left: serde_json::Value = serde_json::from_str(&lines[cases.len()]).expect("json");
    assert_eq!(left["response_flags"], "DC", "{left}");
    assert_eq!(left["response_code"], 200, "{left}");
    for (line, (host, path, status, flag)) in lines.iter().zip(cases) {
        let json: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        assert_eq!(json["authority"], host, "{line}");
        assert_eq!(json["path"], path, "{line}");
        assert_eq!(json["response_code"], status.as_u16(), "{line}");
        assert_eq!(json["response_flags"], flag, "{line}");
        assert_eq!(json["method"], "GET", "{line}");
    }
    let ok: serde_json::Value = serde_json::from_str(&lines[0]).expect("json");
    assert_eq!(ok["upstream_cluster"], "a");
    assert_eq!(ok["upstream_host"], upstream.addr.to_string());
    assert_eq!(ok["bytes_sent"], 1);
    let empty: serde_json::Value = serde_json::from_str(&lines[1]).expect("json");
    assert_eq!(empty["upstream_cluster"], "empty");
    assert!(empty["upstream_host"].is_null());
}
