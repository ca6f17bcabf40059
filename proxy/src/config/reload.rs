//! The current configuration and how it changes: whole snapshots swapped atomically, and a
//! watcher that reports a config file's new content on SIGHUP or when the content changes.
//!
//! Requests load the snapshot once and keep it until they finish, so a swap never shows a
//! request half of one config and half of another, and in-flight requests end on the old one.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use arc_swap::ArcSwap;
use mesh_proto::config::v1::ProxyConfig;
use tokio::{
    signal::unix::{Signal, SignalKind},
    sync::watch,
};

use super::{ConfigError, EncodedConfig, Snapshot, read_file};
use crate::metrics::Metrics;

/// How often the config file's content is compared with what was last read.
const FILE_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Holds the snapshot in force.
pub struct ConfigStore {
    current: ArcSwap<Snapshot>,
    metrics: Arc<Metrics>,
    /// The version of the snapshot in force, for tasks that follow config changes.
    versions: watch::Sender<u64>,
}

/// Reports a config file's content each time SIGHUP arrives or the content changes.
pub struct FileWatcher {
    path: PathBuf,
    hangup: Option<Signal>,
    last: Option<Vec<u8>>,
    poll: tokio::time::Interval,
}

// === impl ConfigStore ===

impl ConfigStore {
    /// Starts from an already compiled snapshot.
    pub fn new(initial: Snapshot, metrics: Arc<Metrics>) -> Self {
        metrics.config_reload(true);
        Self {
            versions: watch::Sender::new(initial.version),
            current: ArcSwap::from_pointee(initial),
            metrics,
        }
    }

    /// The snapshot in force now.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Notified each time a snapshot is swapped in.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.versions.subscribe()
    }

    /// Validates `config` against the snapshot in force (whose endpoint state and resolved
    /// DNS names carry over).
    pub fn compile(&self, config: EncodedConfig) -> Result<Snapshot, Vec<String>> {
        Snapshot::compile(config, Some(&self.current.load()))
    }

    /// Swaps `snapshot` in.
    pub fn commit(&self, snapshot: Snapshot, origin: &str) -> Arc<Snapshot> {
        let snapshot = Arc::new(snapshot);
        self.current.store(snapshot.clone());
        self.versions.send_replace(snapshot.version);
        self.metrics.config_reload(true);
        tracing::info!(version = snapshot.version, %origin, "applied config");
        snapshot
    }
}

// === impl FileWatcher ===

impl FileWatcher {
    /// Watches `path`; the SIGHUP handler is installed now, so a SIGHUP that arrives from this
    /// point on reloads rather than ends the process.
    pub fn new(path: PathBuf) -> Self {
        let hangup = match tokio::signal::unix::signal(SignalKind::hangup()) {
            Ok(signal) => Some(signal),
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP; relying on file changes only");
                None
            }
        };
        let mut poll = tokio::time::interval(FILE_POLL_INTERVAL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            last: std::fs::read(&path).ok(),
            path,
            hangup,
            poll,
        }
    }

    /// The watched file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for SIGHUP or a change of the file's content, then reads and parses it.
    pub async fn next(&mut self) -> Result<ProxyConfig, ConfigError> {
        loop {
            let forced = tokio::select! {
                _ = async {
                    match self.hangup.as_mut() {
                        Some(signal) => { signal.recv().await; }
                        None => std::future::pending().await,
                    }
                } => true,
                _ = self.poll.tick() => false,
            };
            let content = tokio::fs::read(&self.path).await.ok();
            if forced || content != self.last {
                self.last = content;
                return read_file(&self.path);
            }
        }
    }
}
