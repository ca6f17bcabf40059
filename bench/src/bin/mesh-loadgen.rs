//! `mesh-loadgen`: a constant-rate, coordinated-omission-safe HTTP load generator
//! (see `mesh_bench::loadgen` and bench/README.md).

use anyhow::{Context, Result, bail};
use clap::Parser;
use mesh_bench::{
    client::Target,
    duration::parse_duration,
    loadgen::{self, Config, Load},
};
use std::time::Duration;

/// Sends HTTP requests at a constant rate (or as fast as possible) and reports latency.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The URL to request, e.g. http://127.0.0.1:18081/.
    #[arg(long)]
    url: String,
    /// Requests per second, due on a fixed schedule (open model).
    #[arg(long, required_unless_present = "max", conflicts_with = "max")]
    rate: Option<u64>,
    /// Closed model instead: each connection (or stream) sends back to back; reports throughput.
    #[arg(long)]
    max: bool,
    /// TCP connections to open.
    #[arg(long, default_value_t = 100)]
    connections: usize,
    /// Speak h2c (HTTP/2 with prior knowledge) instead of HTTP/1.1 keep-alive.
    #[arg(long)]
    http2: bool,
    /// For https:// URLs: the PEM file of the CA (or certificate) the server is verified with.
    #[arg(long)]
    cacert: Option<std::path::PathBuf>,
    /// Open a new connection (and TLS handshake) for every request instead of keeping them.
    #[arg(long)]
    new_connections: bool,
    /// Concurrent streams per HTTP/2 connection (ignored for HTTP/1.1).
    #[arg(long, default_value_t = 10)]
    streams: usize,
    /// Length of the measured window.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Time before the measured window: requests are sent but not counted.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Longest wait for a connection or a complete response.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
    /// Worker threads (1 runs everything on the main thread, plus the pacer thread).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print the summary as JSON on stdout (and the human summary on stderr).
    #[arg(long)]
    json: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut target = Target::parse(&args.url, args.http2, args.cacert.as_deref())?;
    target.new_connections = args.new_connections;
    if args.connections == 0 {
        bail!("--connections must be at least 1");
    }
    let config = Config {
        target,
        load: args.rate.map_or(Load::Max, Load::Rate),
        connections: args.connections,
        streams: args.streams,
        duration: args.duration,
        warmup: args.warmup,
        timeout: args.timeout,
        threads: args.threads.max(1),
    };
    let runtime = if config.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.threads)
            .enable_all()
            .build()
    }
    .context("starting the tokio runtime")?;
    let summary = runtime.block_on(loadgen::run(&config))?;
    if args.json {
        // The human summary still goes to stderr, so a script shows progress as it collects JSON.
        eprint!("{summary}");
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{summary}");
    }
    Ok(())
}
