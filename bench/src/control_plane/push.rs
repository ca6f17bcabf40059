//! Push latency of an endpoint change: S simulated proxies (real gRPC streams) connect to the
//! running control plane and sync; then one endpoint of one service flips ready / not ready,
//! round after round, and each proxy's arrival of the change is timed against the control
//! plane's own timestamps of the change (`mesh_cp_change_seen_timestamp_seconds`) and of its
//! publication (`mesh_cp_published_timestamp_seconds`), and against the file's write.

use std::{
    cell::Cell,
    path::Path,
    time::{Duration, SystemTime},
};

use anyhow::{Context, Result, bail};
use mesh_control_plane::xds::{ProxySync, ResourceType, SyncStatus};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{
    manifests::Mesh,
    monitoring::Monitoring,
    process::Process,
    results::{Quantiles, Spread},
};
use crate::sim_proxy::{SimOptions, SimProxy};

/// The longest a phase may wait for the proxies.
const PATIENCE: Duration = Duration::from_secs(300);
/// How many times the binary has translated the store.
pub const TRANSLATIONS: &str = "mesh_cp_translations_total";
/// The total time the binary spent translating, s.
pub const TRANSLATION_SUM: &str = "mesh_cp_translation_duration_seconds_sum";
/// The push latency histogram of the discovery server.
const PUSH_HISTOGRAM: &str = "mesh_cp_push_duration_seconds";

/// One push phase's settings.
#[derive(Clone, Copy, Debug)]
pub struct PushSettings {
    /// Simulated proxies.
    pub proxies: usize,
    /// Delta streams (else state of the world).
    pub delta: bool,
    /// Endpoint changes measured.
    pub rounds: usize,
}

/// What a push phase measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PushResult {
    /// Simulated proxies.
    pub proxies: usize,
    /// Distinct workloads (label sets and service accounts) among them.
    pub workloads: usize,
    /// `delta` or `state of the world`.
    pub stream: String,
    /// From the first connection to every proxy SYNCED on every type, s.
    pub initial_sync_s: f64,
    /// Control-plane CPU during the initial sync, % of one core.
    pub initial_sync_cpu_percent: f64,
    /// Endpoint changes measured.
    pub rounds: usize,
    /// Per proxy and change: from the control plane seeing the change to the proxy having it
    /// (and queueing its ACK), ms. The goal's measure.
    pub seen_to_ack_ms: Quantiles,
    /// Per proxy and change: from the publication of the translated config, ms.
    pub published_to_ack_ms: Quantiles,
    /// Per proxy and change: from the manifest file's write, ms (adds the folder poll).
    pub write_to_ack_ms: Quantiles,
    /// Per change: from the write until the control plane saw it (poll wait, read, parse), ms.
    pub write_to_seen_ms: Spread,
    /// Per change: from seeing it to publishing (debounce, translation), ms.
    pub seen_to_published_ms: Spread,
    /// Per change: until the last proxy had it, from the control plane seeing it, ms.
    pub seen_to_last_ack_ms: Spread,
    /// Per change: the binary's translation (`mesh_cp_translation_duration_seconds`), ms.
    pub translation_ms: Spread,
    /// Streams opened beyond one per proxy (a failed connection or stream, then a new one).
    pub reconnects: usize,
    /// Responses each proxy got per change (1: just the changed endpoints).
    pub responses_per_change: f64,
    /// Control plane's own view: ACKs of this phase's changes within 1 s of publication, of all.
    pub cp_acks_within_1s: String,
    /// Control-plane CPU over the change rounds, % of one core.
    pub changes_cpu_percent: f64,
    /// Control-plane peak RSS over the phase (VmHWM), KiB.
    pub cp_peak_rss_kib: u64,
}

/// The control plane and the mesh a push phase works on.
pub struct Target<'a> {
    /// The control-plane process.
    pub process: &'a Process,
    /// Its monitoring port.
    pub monitoring: Monitoring,
    /// Its discovery URL.
    pub url: String,
    /// The mesh it serves.
    pub mesh: Mesh,
    /// The folder it reads.
    pub dir: &'a Path,
    /// Whether service 0's last endpoint is down now (each change flips it).
    pub endpoint_down: Cell<bool>,
}

/// Runs one phase: connect, sync, `rounds` endpoint changes; the proxies leave at the end.
pub async fn measure(target: &Target<'_>, settings: PushSettings) -> Result<PushResult> {
    let Target {
        process,
        monitoring,
        ..
    } = target;
    process.reset_peak_rss()?;
    let cpu_before = process.cpu_time()?;
    let started = Instant::now();
    let sims: Vec<SimProxy> = (0..settings.proxies)
        .map(|p| spawn(target, p, settings.delta))
        .collect();
    wait_synced(*monitoring, &sims, "the initial sync").await?;
    let initial_sync = started.elapsed();
    let initial_sync_cpu = process.cpu_time()?.percent_since(cpu_before, initial_sync);

    let metrics = monitoring.metrics().await?;
    let (acks_before, fast_before) = (
        metrics.value(&format!("{PUSH_HISTOGRAM}_count")),
        metrics.bucket(PUSH_HISTOGRAM, "1"),
    );
    let cpu_before = process.cpu_time()?;
    let started = Instant::now();
    let mut rounds = Rounds::default();
    for round in 0..settings.rounds {
        rounds.run(target, &sims, round).await?;
    }
    let changes_cpu = process
        .cpu_time()?
        .percent_since(cpu_before, started.elapsed());
    let metrics = monitoring.metrics().await?;
    let acks = metrics.value(&format!("{PUSH_HISTOGRAM}_count")) - acks_before;
    let fast = metrics.bucket(PUSH_HISTOGRAM, "1") - fast_before;
    let cp_peak_rss_kib = process.peak_rss_kib()?;
    let streams: usize = sims.iter().map(|s| s.with(|s| s.streams)).sum();
    drop(sims);
    wait_for(*monitoring, "the proxies to leave", |s| {
        s.proxies.is_empty()
    })
    .await?;

    let workloads = settings.proxies.min(target.mesh.services);
    Ok(PushResult {
        proxies: settings.proxies,
        workloads,
        stream: if settings.delta {
            "delta"
        } else {
            "state of the world"
        }
        .to_owned(),
        initial_sync_s: initial_sync.as_secs_f64(),
        initial_sync_cpu_percent: initial_sync_cpu,
        rounds: settings.rounds,
        seen_to_ack_ms: Quantiles::of(&rounds.seen_to_ack),
        published_to_ack_ms: Quantiles::of(&rounds.published_to_ack),
        write_to_ack_ms: Quantiles::of(&rounds.write_to_ack),
        write_to_seen_ms: Spread::of(&rounds.write_to_seen),
        seen_to_published_ms: Spread::of(&rounds.seen_to_published),
        seen_to_last_ack_ms: Spread::of(&rounds.seen_to_last_ack),
        translation_ms: Spread::of(&rounds.translation),
        reconnects: streams.saturating_sub(settings.proxies),
        responses_per_change: rounds.responses as f64
            / (settings.proxies * settings.rounds).max(1) as f64,
        cp_acks_within_1s: format!("{fast:.0} of {acks:.0}"),
        changes_cpu_percent: changes_cpu,
        cp_peak_rss_kib,
    })
}

/// Simulated proxy `p`: pod `p / N` of service `p mod N`, with that service's labels and
/// service account, as the sidecar of that workload would be.
fn spawn(target: &Target<'_>, p: usize, delta: bool) -> SimProxy {
    let service = Mesh::service(p % target.mesh.services);
    let id = format!(
        "{}-p{}.{}",
        service.name,
        p / target.mesh.services,
        service.namespace
    );
    // Like a real proxy, a simulated one reconnects when its connection fails (1,000 opened
    // at once can overflow the listener's backlog); `reconnects` counts how often.
    let options = SimOptions {
        delta,
        reconnect: true,
        workload: Some(service.name),
        ..SimOptions::default()
    };
    SimProxy::spawn(&target.url, &id, options)
}

/// The samples of every change round.
#[derive(Default)]
struct Rounds {
    seen_to_ack: Vec<f64>,
    published_to_ack: Vec<f64>,
    write_to_ack: Vec<f64>,
    write_to_seen: Vec<f64>,
    seen_to_published: Vec<f64>,
    seen_to_last_ack: Vec<f64>,
    translation: Vec<f64>,
    responses: usize,
}

impl Rounds {
    /// One change: service 0's last endpoint goes down, or up again.
    async fn run(&mut self, target: &Target<'_>, sims: &[SimProxy], round: usize) -> Result<()> {
        let monitoring = target.monitoring;
        let metrics = monitoring.metrics().await?;
        let translations = metrics.value("mesh_cp_translations_total");
        let translating = metrics.value(TRANSLATION_SUM);
        let logged: Vec<usize> = sims.iter().map(|s| s.with(|s| s.log.len())).collect();
        let clock = Clock::now();
        let written = clock.unix(Instant::now());
        let down = !target.endpoint_down.get();
        target.mesh.set_last_endpoint_down(target.dir, 0, down)?;
        target.endpoint_down.set(down);
        let deadline = Instant::now() + PATIENCE;
        let arrived = loop {
            let arrived: Option<Vec<Instant>> = sims
                .iter()
                .zip(&logged)
                .map(|(sim, &from)| sim.with(|s| first_endpoints(&s.log[from..])))
                .collect();
            if let Some(arrived) = arrived {
                break arrived;
            }
            if Instant::now() > deadline {
                bail!("round {round}: not every proxy got the endpoint change");
            }
            target.process.ensure_alive()?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        wait_synced(monitoring, sims, "the ACKs of the change").await?;
        let metrics = monitoring.metrics().await?;
        if metrics.value("mesh_cp_translations_total") != translations + 1.0 {
            bail!("round {round}: expected exactly one translation for one change");
        }
        let seen = metrics.value("mesh_cp_change_seen_timestamp_seconds");
        let published = metrics.value("mesh_cp_published_timestamp_seconds");
        let mut last = f64::MIN;
        for at in arrived {
            let at = clock.unix(at);
            last = last.max(at);
            self.seen_to_ack.push((at - seen) * 1e3);
            self.published_to_ack.push((at - published) * 1e3);
            self.write_to_ack.push((at - written) * 1e3);
        }
        self.write_to_seen.push((seen - written) * 1e3);
        self.seen_to_published.push((published - seen) * 1e3);
        self.seen_to_last_ack.push((last - seen) * 1e3);
        self.translation
            .push((metrics.value(TRANSLATION_SUM) - translating) * 1e3);
        self.responses += sims
            .iter()
            .zip(&logged)
            .map(|(sim, &from)| sim.with(|s| s.log.len() - from))
            .sum::<usize>();
        Ok(())
    }
}

/// When the first endpoints response among `log` arrived.
fn first_endpoints(log: &[crate::sim_proxy::Received]) -> Option<Instant> {
    log.iter()
        .find(|r| r.ty == ResourceType::Endpoints)
        .map(|r| r.at)
}

/// Maps this process's monotonic instants to Unix time, the control plane's timestamps' clock.
struct Clock {
    instant: Instant,
    unix: f64,
}

impl Clock {
    fn now() -> Self {
        let unix = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Clock {
            instant: Instant::now(),
            unix,
        }
    }

    /// `at` in Unix seconds.
    fn unix(&self, at: Instant) -> f64 {
        if at >= self.instant {
            self.unix + (at - self.instant).as_secs_f64()
        } else {
            self.unix - (self.instant - at).as_secs_f64()
        }
    }
}

/// Waits until every simulated proxy ACKed every type and the control plane shows each of
/// them SYNCED.
async fn wait_synced(monitoring: Monitoring, sims: &[SimProxy], what: &str) -> Result<()> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let synced = sims
            .iter()
            .filter(|s| s.with(|s| s.acked.len() == ResourceType::ALL.len()))
            .count();
        if synced == sims.len() {
            break;
        }
        if Instant::now() > deadline {
            let streams: usize = sims.iter().map(|s| s.with(|s| s.streams)).sum();
            bail!(
                "timed out waiting for {what}: {synced} of {} proxies ACKed every type \
                 ({streams} streams opened)",
                sims.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let count = sims.len();
    wait_for(monitoring, what, move |s| {
        s.proxies.len() == count && s.proxies.iter().all(ProxySync::is_synced)
    })
    .await
}

/// Polls `/debug/syncz` until `done`.
pub async fn wait_for(
    monitoring: Monitoring,
    what: &str,
    done: impl Fn(&SyncStatus) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let status = monitoring.sync_status().await.context(what.to_owned())?;
        if done(&status) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
