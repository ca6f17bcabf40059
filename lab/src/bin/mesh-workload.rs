//! `mesh-workload`: the lab's built-in app (see `mesh_lab::workload`). Serves by default;
//! `call`, `call-tcp` and `call-grpc` send requests from inside a pod and print a summary.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use mesh_lab::workload::{
    self, Faults, RetrySimulation, ServerTls, Workload,
    client::{self, GrpcPlan, HttpPlan, HttpUrl, Load, Summary, Target, TcpPlan},
};
use tokio::{net::TcpListener, task::JoinSet};

/// The lab's built-in workload: echo servers that report who answered, and a client that
/// summarises who did.
#[derive(Parser, Debug)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the HTTP/1.1, h2c and gRPC echo, and the TCP echo (the default).
    Serve(ServeArgs),
    /// Send HTTP GET requests to URL and print a JSON summary of who answered.
    Call(CallArgs),
    /// Open TCP connections to the TCP echo at HOST:PORT and print a JSON summary.
    CallTcp(CallTcpArgs),
    /// Make mesh.lab.Echo gRPC calls to HOST:PORT and print a JSON summary.
    CallGrpc(CallGrpcArgs),
    /// Collect trace spans over OTLP/gRPC and serve them as JSON traces on HTTP (GET /traces).
    CollectTraces(CollectArgs),
}

/// `collect-traces`' arguments.
#[derive(Args, Debug)]
struct CollectArgs {
    /// Address for OTLP/gRPC.
    #[arg(long, default_value = "0.0.0.0:4317")]
    otlp_addr: SocketAddr,
    /// Address for the HTTP listing of traces.
    #[arg(long, default_value = "0.0.0.0:8080")]
    http_addr: SocketAddr,
}

/// Where to listen, who to be, and how to misbehave.
#[derive(Args, Debug)]
struct ServeArgs {
    /// Address for HTTP/1.1, h2c and gRPC; repeat (or separate with commas) for more ports.
    #[arg(
        long,
        env = "WORKLOAD_ADDR",
        value_delimiter = ',',
        default_value = "0.0.0.0:8080"
    )]
    addr: Vec<SocketAddr>,
    /// Address for the TCP echo; repeat (or separate with commas) for more ports.
    #[arg(long, env = "WORKLOAD_TCP_ADDR", value_delimiter = ',')]
    tcp_addr: Vec<SocketAddr>,
    /// Address for the HTTPS echo (HTTP/1.1 and h2 by ALPN); needs --tls-cert and --tls-key.
    #[arg(long, env = "WORKLOAD_TLS_ADDR", value_delimiter = ',', requires_all = ["tls_cert", "tls_key"])]
    tls_addr: Vec<SocketAddr>,
    /// PEM certificate chain the HTTPS echo presents.
    #[arg(long, env = "WORKLOAD_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "WORKLOAD_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// PEM roots: the HTTPS echo then requires a client certificate that chains to them.
    #[arg(long, env = "WORKLOAD_TLS_CLIENT_CA")]
    tls_client_ca: Option<PathBuf>,
    /// Pod name to report.
    #[arg(long, env = "POD_NAME", default_value = "workload")]
    pod: String,
    /// Version label to report.
    #[arg(long, env = "POD_VERSION", default_value = "v1")]
    pod_version: String,
    /// Before answering an HTTP request, GET this http:// URL, passing on the trace headers
    /// (the middle of a chain of services); a failed call makes the answer a 502.
    #[arg(long, env = "WORKLOAD_CALL")]
    call: Option<HttpUrl>,
    /// Share of requests (0-100) that fail: HTTP 503, gRPC UNAVAILABLE.
    #[arg(long, env = "WORKLOAD_FAIL_PERCENT", default_value_t = 0.0, value_parser = percent)]
    fail_percent: f64,
    /// Share of requests (0-100) delayed by --delay-ms.
    #[arg(long, env = "WORKLOAD_DELAY_PERCENT", default_value_t = 0.0, value_parser = percent)]
    delay_percent: f64,
    /// Delay for delayed requests, in milliseconds.
    #[arg(long, env = "WORKLOAD_DELAY_MS", default_value_t = 0)]
    delay_ms: u64,
}

/// How many requests, how many at once, and what counts as done.
#[derive(Args, Debug)]
struct LoadArgs {
    /// Requests to send.
    #[arg(long, default_value_t = 1)]
    count: u64,
    /// Requests in flight at once, each worker on its own connection.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// Longest wait for one answer, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Exit 0 even when some requests failed.
    #[arg(long)]
    allow_failures: bool,
}

/// `call`'s arguments.
#[derive(Args, Debug)]
struct CallArgs {
    /// http:// URL; its host is resolved through the system resolver (cluster DNS in a pod).
    url: HttpUrl,
    #[command(flatten)]
    load: LoadArgs,
    /// Extra request header NAME:VALUE; repeatable. `host:NAME` overrides the URL's host.
    #[arg(long = "header", value_name = "NAME:VALUE", value_parser = header)]
    headers: Vec<(String, String)>,
    /// Use HTTP/2 with prior knowledge (h2c) instead of HTTP/1.1.
    #[arg(long)]
    http2: bool,
    /// Open a new connection for every request instead of keeping one per worker.
    #[arg(long)]
    new_connection_each: bool,
}

/// `call-tcp`'s arguments.
#[derive(Args, Debug)]
struct CallTcpArgs {
    /// HOST:PORT of a TCP echo.
    target: Target,
    #[command(flatten)]
    load: LoadArgs,
}

/// `call-grpc`'s arguments.
#[derive(Args, Debug)]
struct CallGrpcArgs {
    /// HOST:PORT serving mesh.lab.Echo.
    target: Target,
    #[command(flatten)]
    load: LoadArgs,
    /// Extra request metadata NAME:VALUE; repeatable.
    #[arg(long = "header", value_name = "NAME:VALUE", value_parser = header)]
    headers: Vec<(String, String)>,
    /// Send each worker's requests as messages on one EchoStream call instead of unary Echo calls.
    #[arg(long)]
    stream: bool,
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        match cli.command.unwrap_or(Command::Serve(cli.serve)) {
            Command::Serve(args) => serve(args).await,
            Command::CollectTraces(args) => {
                let otlp = TcpListener::bind(args.otlp_addr)
                    .await
                    .with_context(|| format!("cannot listen on {} for OTLP", args.otlp_addr))?;
                let http = TcpListener::bind(args.http_addr)
                    .await
                    .with_context(|| format!("cannot listen on {} for HTTP", args.http_addr))?;
                eprintln!(
                    "mesh-workload: collecting traces: OTLP/gRPC on {}, GET /traces on {}",
                    args.otlp_addr, args.http_addr
                );
                workload::serve_collector(otlp, http).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Call(args) => {
                let plan = HttpPlan {
                    url: args.url,
                    headers: args.headers,
                    http2: args.http2,
                    new_connection_each: args.new_connection_each,
                    load: args.load.load(),
                };
                report(client::call_http(plan).await?, args.load.allow_failures)
            }
            Command::CallTcp(args) => {
                let plan = TcpPlan {
                    target: args.target,
                    load: args.load.load(),
                };
                report(client::call_tcp(plan).await, args.load.allow_failures)
            }
            Command::CallGrpc(args) => {
                let plan = GrpcPlan {
                    target: args.target,
                    headers: args.headers,
                    stream: args.stream,
                    load: args.load.load(),
                };
                report(client::call_grpc(plan).await?, args.load.allow_failures)
            }
        }
    })
}

/// Binds every listener first (any failure ends the process), says on stderr what listens
/// where, one line each, then serves until killed.
async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let workload = Workload {
        pod: args.pod,
        version: args.pod_version,
        faults: Faults {
            fail_percent: args.fail_percent,
            delay_percent: args.delay_percent,
            delay: Duration::from_millis(args.delay_ms),
        },
        retry_simulation: RetrySimulation::default(),
        call: args.call,
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) if !args.tls_addr.is_empty() => {
            Some(ServerTls::load(cert, key, args.tls_client_ca.as_deref())?)
        }
        _ => None,
    };
    let mut listeners = Vec::new();
    for (addresses, service) in [
        (&args.addr, Service::Http),
        (&args.tcp_addr, Service::TcpEcho),
        (&args.tls_addr, Service::Https),
    ] {
        for address in addresses {
            let listener = TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address} for {}", service.name()))?;
            listeners.push((listener, service));
        }
    }
    let mut serving = JoinSet::new();
    for (listener, service) in listeners {
        eprintln!(
            "mesh-workload {} ({}): {} listening on {}",
            workload.pod,
            workload.version,
            service.name(),
            listener.local_addr()?
        );
        match service {
            Service::Http => serving.spawn(workload::serve(listener, workload.clone())),
            Service::TcpEcho => serving.spawn(workload::serve_tcp_echo(listener, workload.clone())),
            Service::Https => match &tls {
                Some(tls) => {
                    serving.spawn(workload::serve_tls(listener, workload.clone(), tls.clone()))
                }
                None => continue,
            },
        };
    }
    while serving.join_next().await.is_some() {}
    Ok(ExitCode::SUCCESS)
}

/// What a listener serves.
#[derive(Clone, Copy, Debug)]
enum Service {
    /// HTTP/1.1, h2c and gRPC.
    Http,
    /// The TCP echo.
    TcpEcho,
    /// The echo over TLS.
    Https,
}

impl Service {
    /// How the start-up line names it.
    fn name(self) -> &'static str {
        match self {
            Self::Http => "http+grpc",
            Self::TcpEcho => "tcp echo",
            Self::Https => "https",
        }
    }
}

/// Prints the summary as one JSON line; fails the process when requests failed, unless allowed.
fn report(summary: Summary, allow_failures: bool) -> anyhow::Result<ExitCode> {
    println!("{}", serde_json::to_string(&summary)?);
    if summary.failed > 0 && !allow_failures {
        Ok(ExitCode::FAILURE)
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

impl LoadArgs {
    /// The load these arguments describe.
    fn load(&self) -> Load {
        Load {
            count: self.count,
            concurrency: usize::from(self.concurrency),
            timeout: Duration::from_millis(self.timeout_ms),
        }
    }
}

/// A share in percent, 0 to 100.
fn percent(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(share) if (0.0..=100.0).contains(&share) => Ok(share),
        _ => Err(format!("{text:?} is not a percentage from 0 to 100")),
    }
}

/// A header given as NAME:VALUE.
fn header(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(format!("{text:?} is not NAME:VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn command_line_is_well_formed() {
        <Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn serving_is_the_default_and_takes_several_addresses() {
        let cli = Cli::try_parse_from([
            "mesh-workload",
            "--addr",
            "127.0.0.1:8080",
            "--addr",
            "127.0.0.1:9090,[::1]:9091",
            "--tcp-addr",
            "127.0.0.1:7000",
            "--pod",
            "web-0",
        ])
        .expect("parses");
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.addr.len(), 3);
        assert_eq!(cli.serve.tcp_addr.len(), 1);
        assert_eq!(cli.serve.pod, "web-0");
    }

    #[test]
    fn call_takes_repeated_headers_and_flags() {
        let cli = Cli::try_parse_from([
            "mesh-workload",
            "call",
            "http://web.shop:8080/x",
            "--count",
            "20",
            "--concurrency",
            "4",
            "--header",
            "x-canary: 1",
            "--header",
            "host:web",
            "--http2",
            "--allow-failures",
        ])
        .expect("parses");
        let Some(Command::Call(call)) = cli.command else {
            panic!("not call: {:?}", cli.command);
        };
        assert_eq!(call.url.target.port, 8080);
        assert_eq!(call.headers[0], ("x-canary".into(), "1".into()));
        assert_eq!(call.headers[1], ("host".into(), "web".into()));
        assert!(call.http2 && call.load.allow_failures && !call.new_connection_each);
        assert_eq!(call.load.load().count, 20);
        assert_eq!(call.load.load().concurrency, 4);
    }

    #[test]
    fn bad_values_are_refused() {
        for args in [
            &["mesh-workload", "--fail-percent", "150"][..],
            &["mesh-workload", "call", "https://web"],
            &["mesh-workload", "call", "http://web", "--concurrency", "0"],
            &[
                "mesh-workload",
                "call",
                "http://web",
                "--header",
                "no-colon",
            ],
            &["mesh-workload", "call-tcp", "web"],
            &["mesh-workload", "--pod", "x", "call", "http://web"],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?} accepted");
        }
    }
}
