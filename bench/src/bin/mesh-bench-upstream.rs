//! `mesh-bench-upstream`: the benchmark's upstream server (see `mesh_bench::upstream`).

use anyhow::{Context, Result};
use clap::Parser;
use std::net::SocketAddr;

/// A minimal HTTP/1.1 + h2c server answering every request 200 with a 13-byte body.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:18000")]
    addr: SocketAddr,
    /// Worker threads of the runtime.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Wait this long before every answer, e.g. 5ms (a slow endpoint).
    #[arg(long, value_parser = mesh_bench::duration::parse_duration, default_value = "0s")]
    delay: std::time::Duration,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("listening on {}: is the port taken?", args.addr))?;
        eprintln!("mesh-bench-upstream: listening on {}", args.addr);
        mesh_bench::upstream::serve_with_delay(listener, args.delay).await
    })
}
