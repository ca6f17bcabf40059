//! `mesh-workload`: the lab's built-in echo server (see `mesh_lab::workload`).

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use clap::Parser;
use mesh_lab::workload::{self, Workload};

/// An HTTP/1.1 + h2c echo server that reports its pod name, version and what it saw.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "WORKLOAD_ADDR", default_value = "0.0.0.0:8080")]
    addr: SocketAddr,
    /// Pod name to report.
    #[arg(long, env = "POD_NAME", default_value = "workload")]
    pod: String,
    /// Version label to report.
    #[arg(long, env = "POD_VERSION", default_value = "v1")]
    pod_version: String,
    /// Share of requests (0-100) answered 503.
    #[arg(long, env = "WORKLOAD_FAIL_PERCENT", default_value_t = 0.0)]
    fail_percent: f64,
    /// Share of requests (0-100) delayed by --delay-ms.
    #[arg(long, env = "WORKLOAD_DELAY_PERCENT", default_value_t = 0.0)]
    delay_percent: f64,
    /// Delay for delayed requests, in milliseconds.
    #[arg(long, env = "WORKLOAD_DELAY_MS", default_value_t = 0)]
    delay_ms: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("cannot listen on {}", args.addr))?;
        eprintln!(
            "mesh-workload {} ({}) listening on {}",
            args.pod, args.pod_version, args.addr
        );
        let workload = Workload {
            pod: args.pod,
            version: args.pod_version,
            fail_percent: args.fail_percent,
            delay_percent: args.delay_percent,
            delay: Duration::from_millis(args.delay_ms),
        };
        workload::serve(listener, workload).await;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_is_well_formed() {
        <super::Args as clap::CommandFactory>::command().debug_assert();
    }
}
