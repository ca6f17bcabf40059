//! `mesh-label-memory`: the heap that Istio's standard metrics hold per peer in a sidecar. It
//! resolves the label sets of `--peers` distinct destinations (as many clusters, each with its
//! own workload), then records one request in each (making its series), counting the bytes
//! allocated and freed meanwhile (`stats_alloc`); and renders the Prometheus text a scrape gets.

use std::{alloc::System, sync::Arc};

use clap::Parser;
use mesh_proxy::{
    istio_metrics::{Protocol, Record, Reporter, RequestLabels, StandardMetrics},
    workload::Workload,
};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

/// The system allocator, counting what is allocated and freed.
#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Measures the standard metrics' memory per peer.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Distinct destinations (label sets).
    #[arg(long, default_value_t = 1000)]
    peers: usize,
}

/// Bytes allocated and not freed since `region` began.
fn live(region: &Region<'_, System>) -> isize {
    let change = region.change();
    change.bytes_allocated as isize - change.bytes_deallocated as isize + change.bytes_reallocated
}

fn main() {
    let args = Args::parse();
    let registry = prometheus::Registry::new();
    let metrics = StandardMetrics::new(&registry);
    let source = Arc::new(Workload {
        name: "client".into(),
        namespace: "shop".into(),
        app: "client".into(),
        version: "v1".into(),
        canonical_service: "client".into(),
        canonical_revision: "v1".into(),
    });
    // What the sidecar holds anyway (its clusters' endpoint workloads), made before counting.
    let peers: Vec<RequestLabels> = (0..args.peers)
        .map(|i| RequestLabels {
            reporter: Reporter::Source,
            source: source.clone(),
            source_principal: "spiffe://cluster.local/ns/shop/sa/client".into(),
            destination: Arc::new(Workload {
                name: format!("service-{i}"),
                namespace: "shop".into(),
                app: format!("service-{i}"),
                version: "v1".into(),
                canonical_service: format!("service-{i}"),
                canonical_revision: "v1".into(),
            }),
            destination_principal: format!("spiffe://cluster.local/ns/shop/sa/service-{i}").into(),
            destination_service: format!("service-{i}.shop.svc.cluster.local").into(),
            request_protocol: Protocol::Http,
            connection_security_policy: "unknown",
        })
        .collect();

    let region = Region::new(ALLOCATOR);
    let start = live(&region);
    let sets: Vec<_> = (peers.iter())
        .filter_map(|labels| metrics.label_set(labels))
        .collect();
    let after_sets = live(&region);
    for set in &sets {
        let mut record = Record::new(Some(set.clone()), tokio::time::Instant::now(), 0);
        record.status = 200;
        record.finish();
    }
    let after_series = live(&region);
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap_or_default();

    let per_peer = |bytes: isize| bytes as f64 / sets.len().max(1) as f64;
    println!(
        "peers={} label_sets_bytes={} ({:.0} per peer) series_bytes={} ({:.0} per peer) total_per_peer={:.0} scrape_bytes={} ({:.0} per peer)",
        sets.len(),
        after_sets - start,
        per_peer(after_sets - start),
        after_series - after_sets,
        per_peer(after_series - after_sets),
        per_peer(after_series - start),
        text.len(),
        text.len() as f64 / sets.len().max(1) as f64,
    );
}
