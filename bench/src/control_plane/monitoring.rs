//! Reads the control plane's monitoring port: Prometheus text from `/metrics`, the sync status
//! from `/debug/syncz`, readiness from `/healthz/ready`.

use std::{net::SocketAddr, time::Duration};

use anyhow::{Context, Result, bail};
use mesh_control_plane::xds::SyncStatus;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// The control plane's monitoring address.
#[derive(Clone, Copy, Debug)]
pub struct Monitoring(pub SocketAddr);

/// A scrape of `/metrics`.
#[derive(Clone, Debug)]
pub struct Metrics(String);

// === impl Monitoring ===

impl Monitoring {
    /// The body of `GET path` if the answer is 200.
    pub async fn get(&self, path: &str) -> Result<String> {
        let fetch = async {
            let mut stream = TcpStream::connect(self.0).await?;
            // HTTP/1.0: the body comes whole, not chunked, and the server closes after it.
            let request = format!("GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.0);
            stream.write_all(request.as_bytes()).await?;
            let mut response = Vec::new();
            stream.read_to_end(&mut response).await?;
            anyhow::Ok(String::from_utf8_lossy(&response).into_owned())
        };
        let response = tokio::time::timeout(Duration::from_secs(10), fetch)
            .await
            .with_context(|| format!("GET {path} from {} timed out", self.0))?
            .with_context(|| format!("GET {path} from {}", self.0))?;
        let (head, body) = response
            .split_once("\r\n\r\n")
            .with_context(|| format!("GET {path}: no HTTP response"))?;
        if !head.lines().next().is_some_and(|l| l.contains(" 200 ")) {
            bail!("GET {path}: {}", head.lines().next().unwrap_or_default());
        }
        Ok(body.to_owned())
    }

    /// Whether `/healthz/ready` answers 200 (the first config is published).
    pub async fn ready(&self) -> bool {
        self.get("/healthz/ready").await.is_ok()
    }

    /// The metrics now.
    pub async fn metrics(&self) -> Result<Metrics> {
        self.get("/metrics").await.map(Metrics)
    }

    /// Every connected proxy's sync state.
    pub async fn sync_status(&self) -> Result<SyncStatus> {
        let json = self.get("/debug/syncz").await?;
        serde_json::from_str(&json).context("/debug/syncz is not a sync status")
    }
}

// === impl Metrics ===

impl Metrics {
    /// The value of the sample named exactly `name` (a counter, gauge, or a histogram's `_sum`
    /// or `_count`), summed over its label sets; 0 when absent.
    pub fn value(&self, name: &str) -> f64 {
        self.0
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let series_name = series.split_once('{').map_or(series, |(n, _)| n);
                (series_name == name).then(|| value.parse::<f64>().ok())?
            })
            .sum()
    }

    /// The cumulative count of a histogram's bucket `le` (e.g. `"1"`).
    pub fn bucket(&self, histogram: &str, le: &str) -> f64 {
        let prefix = format!("{histogram}_bucket{{");
        let bound = format!("le=\"{le}\"");
        self.0
            .lines()
            .filter(|line| line.starts_with(&prefix) && line.contains(&bound))
            .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    }
}
