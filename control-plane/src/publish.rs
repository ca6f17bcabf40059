//! From the store to the discovery server: waits for a burst of store changes to settle
//! (debounce), indexes the store once with a `Translator`, and publishes a `ConfigSnapshot`
//! whose per-proxy configs are translated on demand and shared by proxies with the same view.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock, PoisonError},
    time::{Duration, SystemTime},
};

use mesh_proto::config::v1::ProxyConfig;
use prometheus::{Gauge, Histogram, HistogramOpts, IntCounter, Registry};
use tokio::sync::watch;

use crate::{
    node::ProxyNode,
    store::Store,
    translate::{
        ListenerReport, MeshSettings, Problem, ProxyView, Severity, TlsCheckRow, Translator,
    },
    xds::{ConfigSnapshot, ConfigSource},
};

/// How long the store must stay quiet before a translation, and the longest a burst may
/// delay one.
#[derive(Debug, Clone, Copy)]
pub struct Debounce {
    /// Quiet time after the last change.
    pub quiet: Duration,
    /// Upper bound from the first change of a burst.
    pub max_delay: Duration,
}

impl Default for Debounce {
    fn default() -> Self {
        Debounce {
            quiet: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        }
    }
}

/// The publisher's metrics.
#[derive(Clone)]
pub struct PublishMetrics {
    translations: IntCounter,
    translation_seconds: Histogram,
    change_seen: Gauge,
    published: Gauge,
}

impl PublishMetrics {
    /// Registers `mesh_cp_translations_total`, `mesh_cp_translation_duration_seconds`,
    /// `mesh_cp_change_seen_timestamp_seconds` and `mesh_cp_published_timestamp_seconds`.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let translations =
            IntCounter::new("mesh_cp_translations_total", "Store snapshots translated")?;
        let translation_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "mesh_cp_translation_duration_seconds",
                "Time to check and index the store for translation",
            )
            .buckets(prometheus::exponential_buckets(0.0005, 2.0, 14)?),
        )?;
        let change_seen = Gauge::new(
            "mesh_cp_change_seen_timestamp_seconds",
            "When the first store change of the latest published config was seen (Unix time)",
        )?;
        let published = Gauge::new(
            "mesh_cp_published_timestamp_seconds",
            "When the latest config was published (Unix time)",
        )?;
        registry.register(Box::new(translations.clone()))?;
        registry.register(Box::new(translation_seconds.clone()))?;
        registry.register(Box::new(change_seen.clone()))?;
        registry.register(Box::new(published.clone()))?;
        Ok(PublishMetrics {
            translations,
            translation_seconds,
            change_seen,
            published,
        })
    }
}

/// Now as Unix time in seconds, the unit of `*_timestamp_seconds` gauges.
fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A translated store and what translation found wrong with its objects, for whoever tells
/// users about it (`feedback` in a cluster).
#[derive(Debug, Clone, Default)]
pub struct Review {
    /// The store as translated.
    pub store: Store,
    /// Its problems.
    pub problems: Vec<Problem>,
    /// What became of each listener of mesh's Gateways.
    pub listeners: Vec<ListenerReport>,
}

/// Publishes a snapshot (and its review) for every settled change of the store, forever.
pub async fn run(
    mut store: watch::Receiver<Store>,
    snapshots: watch::Sender<Arc<ConfigSnapshot>>,
    reviews: watch::Sender<Arc<Review>>,
    debounce: Debounce,
    metrics: PublishMetrics,
    settings: MeshSettings,
) {
    let mut generation = 0;
    loop {
        let Some(seen) = settle(&mut store, debounce).await else {
            return;
        };
        let current = store.borrow_and_update().clone();
        let translated = current.clone();
        let timer = metrics.translation_seconds.start_timer();
        let settings = settings.clone();
        let source =
            tokio::task::spawn_blocking(move || TranslatedStore::new(&translated, &settings)).await;
        timer.observe_duration();
        let Ok(source) = source else {
            tracing::error!("translation panicked; keeping the last published config");
            continue;
        };
        metrics.translations.inc();
        for problem in source.translator.problems() {
            log_problem(problem);
        }
        generation += 1;
        tracing::info!(generation, "publishing config");
        reviews.send_replace(Arc::new(Review {
            store: current,
            problems: source.problems().to_vec(),
            listeners: source.translator.listener_reports().to_vec(),
        }));
        snapshots.send_replace(Arc::new(ConfigSnapshot::new(generation, Arc::new(source))));
        metrics.change_seen.set(seen);
        metrics.published.set(unix_now());
    }
}

/// Logs a problem at the level its severity calls for.
pub fn log_problem(problem: &Problem) {
    match problem.severity {
        Severity::Error => tracing::error!("{problem}"),
        Severity::Warning => tracing::warn!("{problem}"),
        Severity::Info => tracing::info!("{problem}"),
    }
}

/// Waits for a change, then for the store to stay quiet; returns when the change was seen
/// (Unix time), `None` when the store is gone.
async fn settle(store: &mut watch::Receiver<Store>, debounce: Debounce) -> Option<f64> {
    store.changed().await.ok()?;
    let seen = unix_now();
    let deadline = tokio::time::Instant::now() + debounce.max_delay;
    loop {
        let quiet = tokio::time::sleep(debounce.quiet);
        tokio::select! {
            () = quiet => return Some(seen),
            () = tokio::time::sleep_until(deadline) => return Some(seen),
            changed = store.changed() => if changed.is_err() { return Some(seen) },
        }
    }
}

/// One store, indexed once; each proxy's config translated on first request and shared by
/// every proxy with the same view (namespace and the labels that selectors read).
pub struct TranslatedStore {
    translator: Translator,
    /// Per view, its config once translated; translations of different views run in parallel.
    configs: Mutex<HashMap<ProxyView, Arc<OnceLock<Arc<ProxyConfig>>>>>,
}

impl TranslatedStore {
    /// Checks and indexes `store` under the mesh-wide `settings`.
    pub fn new(store: &Store, settings: &MeshSettings) -> Self {
        TranslatedStore {
            translator: Translator::with_settings(store, settings),
            configs: Mutex::default(),
        }
    }

    /// Problems with the store's objects.
    pub fn problems(&self) -> &[Problem] {
        self.translator.problems()
    }
}

impl ConfigSource for TranslatedStore {
    fn config_for(&self, node: &ProxyNode) -> Arc<ProxyConfig> {
        let cell = self
            .configs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(self.translator.view_of(node))
            .or_default()
            .clone();
        cell.get_or_init(|| Arc::new(self.translator.translate(node).config))
            .clone()
    }

    fn tls_check(&self, node: &ProxyNode) -> Vec<TlsCheckRow> {
        self.translator.tls_check(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_changes_gives_one_snapshot_after_it_settles() {
        let (store, store_rx) = watch::channel(Store::new());
        let (snapshots, mut snapshots_rx) = watch::channel(Arc::new(ConfigSnapshot::pending()));
        let metrics = PublishMetrics::new(&Registry::new()).unwrap();
        let debounce = Debounce::default();
        let reviews = watch::Sender::default();
        tokio::spawn(run(
            store_rx,
            snapshots,
            reviews,
            debounce,
            metrics.clone(),
            MeshSettings::default(),
        ));

        let start = tokio::time::Instant::now();
        for _ in 0..5 {
            store.send_modify(|_| {});
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        snapshots_rx.changed().await.unwrap();
        let waited = start.elapsed();
        assert_eq!(snapshots_rx.borrow().generation(), 1);
        // The last change came at 200 ms; quiet for 100 ms after it.
        assert!(
            waited >= Duration::from_millis(300) && waited < Duration::from_millis(400),
            "{waited:?}"
        );
        assert_eq!(
            metrics.translations.get(),
            1,
            "one translation for the burst"
        );
        let (seen, published) = (metrics.change_seen.get(), metrics.published.get());
        assert!(seen > 0.0 && seen <= published, "{seen} {published}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_never_ending_burst_is_published_after_the_max_delay() {
        let (store, store_rx) = watch::channel(Store::new());
        let (snapshots, mut snapshots_rx) = watch::channel(Arc::new(ConfigSnapshot::pending()));
        let metrics = PublishMetrics::new(&Registry::new()).unwrap();
        let reviews = watch::Sender::default();
        tokio::spawn(run(
            store_rx,
            snapshots,
            reviews,
            Debounce::default(),
            metrics,
            MeshSettings::default(),
        ));
        let start = tokio::time::Instant::now();
        let writer = tokio::spawn(async move {
            loop {
                store.send_modify(|_| {});
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        snapshots_rx.changed().await.unwrap();
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_secs(1) && waited < Duration::from_millis(1100),
            "{waited:?}"
        );
        writer.abort();
    }

    #[test]
    fn proxies_with_the_same_view_share_one_config() {
        let source = TranslatedStore::new(&Store::new(), &MeshSettings::default());
        let node = |id: &str, namespace: &str| ProxyNode {
            id: id.to_owned(),
            namespace: namespace.to_owned(),
            ..ProxyNode::default()
        };
        let a = source.config_for(&node("a.shop", "shop"));
        let b = source.config_for(&node("b.shop", "shop"));
        let c = source.config_for(&node("c.other", "other"));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
    }
}
