//! Opaque TCP forwarding: bytes copied both ways, each direction closed on its own so
//! half-closed connections (a client that shuts down writing and waits for the answer) work.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::{
    config::Cluster,
    http::connect_tcp,
    metrics::{Direction, Metrics},
};

/// Buffer per direction: bounds memory per connection.
const BUFFER_SIZE: usize = 16 * 1024;

/// Connects to an endpoint of `cluster` and copies bytes until both directions have closed.
pub async fn forward<I>(
    mut client: I,
    cluster: Arc<Cluster>,
    direction: Direction,
    metrics: &Metrics,
) where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let cluster_metrics = cluster.metrics(metrics, direction);
    let Some(pick) = cluster.balancer.pick(None) else {
        cluster_metrics.failure(crate::metrics::UpstreamFailure::NoEndpoint);
        tracing::info!(cluster = %cluster.name, "no endpoint for TCP connection; closing it");
        return;
    };
    let mut upstream = match connect_tcp(pick.addr(), cluster.connect_timeout).await {
        Ok(stream) => stream,
        Err(error) => {
            cluster_metrics.failure(error.failure());
            tracing::info!(cluster = %cluster.name, %error, "closing TCP connection");
            return;
        }
    };
    pick.observe_response();
    cluster_metrics.tcp_opened.inc();
    let result = tokio::io::copy_bidirectional_with_sizes(
        &mut client,
        &mut upstream,
        BUFFER_SIZE,
        BUFFER_SIZE,
    )
    .await;
    cluster_metrics.tcp_closed.inc();
    match result {
        Ok((to_upstream, to_downstream)) => {
            cluster_metrics.tcp_bytes_to_upstream.inc_by(to_upstream);
            cluster_metrics
                .tcp_bytes_to_downstream
                .inc_by(to_downstream);
        }
        Err(error) => {
            tracing::debug!(cluster = %cluster.name, %error, "TCP connection ended with an error")
        }
    }
}
