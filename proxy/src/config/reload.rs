//! The current configuration and how it changes: atomic swaps of whole snapshots, driven by
//! SIGHUP or a change of the file's content.
//!
//! Requests load the snapshot once and keep it until they finish, so a swap never shows a
//! request half of one config and half of another, and in-flight requests end on the old one.

use std::{path::PathBuf, sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use mesh_proto::config::v1::ProxyConfig;
use tokio::{signal::unix::SignalKind, sync::watch};
use tokio_util::sync::CancellationToken;

use super::{ConfigError, Snapshot, read_file};
use crate::metrics::Metrics;

/// How often the config file's content is compared with what was last applied.
const FILE_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Holds the current snapshot and announces each new version.
pub struct ConfigStore {
    current: ArcSwap<Snapshot>,
    version_tx: watch::Sender<u64>,
    metrics: Arc<Metrics>,
}

// === impl ConfigStore ===

impl ConfigStore {
    /// Starts from an already compiled snapshot.
    pub fn new(initial: Snapshot, metrics: Arc<Metrics>) -> Arc<Self> {
        let (version_tx, _) = watch::channel(initial.version);
        metrics.config_reload(true);
        Arc::new(Self {
            current: ArcSwap::from_pointee(initial),
            version_tx,
            metrics,
        })
    }

    /// The snapshot in force now.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Validates `config` and, only if all of it is valid, swaps it in.
    pub fn apply(&self, config: ProxyConfig, origin: &str) -> Result<Arc<Snapshot>, ConfigError> {
        let previous = self.current.load();
        match Snapshot::compile(config, Some(&previous)) {
            Ok(snapshot) => {
                let snapshot = Arc::new(snapshot);
                self.current.store(snapshot.clone());
                self.metrics.config_reload(true);
                self.version_tx.send_replace(snapshot.version);
                tracing::info!(version = snapshot.version, %origin, "applied config");
                Ok(snapshot)
            }
            Err(errors) => {
                self.metrics.config_reload(false);
                Err(ConfigError::Invalid {
                    origin: origin.to_owned(),
                    errors,
                })
            }
        }
    }

    /// A receiver that sees every new version.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version_tx.subscribe()
    }
}

/// Reloads `path` on SIGHUP and whenever its content changes, until `shutdown`.
/// A bad file is reported and the last good config stays in force.
pub async fn watch_file(store: Arc<ConfigStore>, path: PathBuf, shutdown: CancellationToken) {
    let mut hangup = match tokio::signal::unix::signal(SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; relying on file changes only");
            None
        }
    };
    let mut last = std::fs::read(&path).ok();
    let mut poll = tokio::time::interval(FILE_POLL_INTERVAL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let forced = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = async { match hangup.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => true,
            _ = poll.tick() => false,
        };
        let content = tokio::fs::read(&path).await.ok();
        if !forced && content == last {
            continue;
        }
        last = content;
        let origin = path.display().to_string();
        let result = match read_file(&path) {
            Ok(config) => store.apply(config, &origin).map(drop),
            Err(error) => {
                store.metrics.config_reload(false);
                Err(error)
            }
        };
        if let Err(error) = result {
            tracing::error!("{error}; keeping the config in force");
        }
    }
}
