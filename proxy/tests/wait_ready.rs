//! `mesh-proxy --wait-ready`, the sidecar's postStart hook, run as the binary against a small
//! health server that answers the statuses a test scripts.

use std::{net::SocketAddr, process::Output, sync::Arc, time::Duration};

use parking_lot::Mutex;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    process::Command,
    time::Instant,
};

/// The bound on every wait here (debug builds on a shared 2-core machine).
const WAIT: Duration = Duration::from_secs(20);

/// How soon after answering 200 the waiter must have exited.
const PROMPT: Duration = Duration::from_secs(2);

/// A health server: answers `/healthz/ready` with the scripted statuses in turn (the last one
/// for ever after) and records when each answer was sent.
struct HealthServer {
    addr: SocketAddr,
    answered: Arc<Mutex<Vec<(u16, String, Instant)>>>,
}

impl HealthServer {
    async fn start(script: &'static [u16]) -> HealthServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let answered = Arc::new(Mutex::new(Vec::new()));
        let log = answered.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&request)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let status = {
                    let log = log.lock();
                    script[log.len().min(script.len() - 1)]
                };
                let reason = if status == 200 { "OK" } else { "Not Ready" };
                let response = format!(
                    "HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = stream.write_all(response.as_bytes()).await;
                log.lock().push((status, line, Instant::now()));
            }
        });
        HealthServer { addr, answered }
    }

    fn answered(&self) -> Vec<(u16, String, Instant)> {
        self.answered.lock().clone()
    }
}

/// `mesh-proxy` with `args` and only `env` in its environment.
fn waiter(args: &[&str], env: &[(&str, String)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mesh-proxy"));
    command.args(args).env_clear().envs(env.iter().cloned());
    command.kill_on_drop(true);
    command
}

/// Runs the waiter to its end: its output and when it exited.
async fn finish(mut command: Command) -> (Output, Instant) {
    let output = tokio::time::timeout(WAIT, command.output())
        .await
        .expect("the waiter exits within the bound")
        .expect("the waiter runs");
    (output, Instant::now())
}

#[tokio::test]
async fn wait_ready_polls_through_503s_and_exits_0_promptly_after_the_200() {
    let health = HealthServer::start(&[503, 503, 200]).await;
    let health_addr = format!("--health-addr={}", health.addr);

    let (output, exited) = finish(waiter(&["--wait-ready=30s", &health_addr], &[])).await;

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let answered = health.answered();
    let statuses: Vec<u16> = answered.iter().map(|(status, ..)| *status).collect();
    assert_eq!(statuses, [503, 503, 200], "asked again after the 200?");
    assert!(
        answered
            .iter()
            .all(|(_, line, _)| line == "GET /healthz/ready HTTP/1.1"),
        "{answered:?}"
    );
    // Polled, not hammered: two intervals passed between the first question and the 200.
    let polled = answered[2].2 - answered[0].2;
    assert!(polled >= Duration::from_millis(300), "{polled:?}");
    let after_ready = exited - answered[2].2;
    assert!(after_ready < PROMPT, "exited {after_ready:?} after the 200");
}

#[tokio::test]
async fn wait_ready_times_out_with_exit_1_and_says_what_the_health_port_answered() {
    let health = HealthServer::start(&[503]).await;
    let health_addr = format!("--health-addr={}", health.addr);
    let started = Instant::now();

    let (output, exited) = finish(waiter(&["--wait-ready=1s", &health_addr], &[])).await;

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let waited = exited - started;
    assert!(
        waited >= Duration::from_millis(800),
        "gave up early: {waited:?}"
    );
    assert!(stderr.contains("not ready within 1s"), "{stderr}");
    assert!(stderr.contains("503"), "{stderr}");
    assert!(stderr.contains("/healthz/ready"), "{stderr}");
    assert!(health.answered().len() >= 3, "{:?}", health.answered());
}

#[tokio::test]
async fn wait_ready_in_the_sidecars_environment_dials_a_wildcard_health_addr_on_loopback() {
    let health = HealthServer::start(&[200]).await;
    // What the injector gives the sidecar, which the postStart hook inherits: the discovery
    // settings must neither be needed nor conflict, and nothing but the wait may happen.
    let env = [
        (
            "MESH_DISCOVERY_ADDRESS",
            "https://mesh-control-plane.mesh-system:15012".to_owned(),
        ),
        (
            "MESH_DISCOVERY_ROOT_CERT",
            "/nonexistent/root-cert.pem".to_owned(),
        ),
        ("MESH_CA_TOKEN_FILE", "/nonexistent/mesh-token".to_owned()),
        ("MESH_POD_LABELS_FILE", "/nonexistent/labels".to_owned()),
        ("MESH_APP_PROBES", "not even JSON".to_owned()),
        ("POD_NAME", "web-1".to_owned()),
        ("POD_NAMESPACE", "shop".to_owned()),
        (
            "MESH_PROXY_HEALTH_ADDR",
            format!("0.0.0.0:{}", health.addr.port()),
        ),
    ];

    let (output, _) = finish(waiter(&["--wait-ready=600s"], &env)).await;

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(health.answered().len(), 1);
}

#[tokio::test]
async fn wait_ready_with_the_health_port_off_fails_at_once() {
    let (output, _) = finish(waiter(&["--wait-ready=600s", "--health-addr=off"], &[])).await;

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--health-addr is \"off\""), "{stderr}");
}
