//! A full translation measured in this process: the folder's objects (already parsed into a
//! store) checked and indexed (`Translator::new`, what `mesh_cp_translation_duration_seconds`
//! times in the binary), then one sidecar's whole config computed (`Translator::translate`, what
//! the binary does per distinct proxy view on its first push of a snapshot).

use std::path::Path;

use anyhow::{Context, Result};
use mesh_control_plane::{folder::load_dir, node::ProxyNode, translate::Translator};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{manifests::Mesh, results::Spread};

/// How long a full translation took, over several repetitions.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TranslationTiming {
    /// Services in the mesh.
    pub services: usize,
    /// Repetitions measured (after one unmeasured warm-up).
    pub repetitions: usize,
    /// Reading and parsing the folder once, ms (not part of the translation).
    pub load_ms: f64,
    /// `Translator::new`: checking and indexing the store, ms.
    pub index_ms: Spread,
    /// `Translator::translate` for one sidecar, ms.
    pub proxy_config_ms: Spread,
    /// Both, ms: the full translation.
    pub total_ms: Spread,
    /// Clusters in the sidecar's config.
    pub clusters: usize,
    /// Endpoints in the sidecar's config.
    pub endpoints: usize,
    /// Listeners in the sidecar's config.
    pub listeners: usize,
    /// Problems the translation reported (0 expected).
    pub problems: usize,
}

/// The sidecar whose config is computed: pod 0 of service 0.
pub fn sidecar() -> ProxyNode {
    let service = Mesh::service(0);
    ProxyNode {
        id: format!("{}-0.{}", service.name, service.namespace),
        pod: format!("{}-0", service.name),
        namespace: service.namespace,
        labels: [("app".to_owned(), service.name.clone())].into(),
        service_account: service.name,
        ip: "10.128.0.1".to_owned(),
        proxy_version: "bench".to_owned(),
    }
}

/// Translates the mesh in `dir` `repetitions` times.
pub fn measure(dir: &Path, services: usize, repetitions: usize) -> Result<TranslationTiming> {
    let started = Instant::now();
    let store = load_dir(dir)
        .context("loading the generated manifests")?
        .store;
    let load_ms = ms(started);
    let node = sidecar();
    let (mut index, mut proxy, mut total) = (Vec::new(), Vec::new(), Vec::new());
    let mut last = None;
    for repetition in 0..=repetitions {
        let started = Instant::now();
        let translator = Translator::new(&store);
        let indexed = ms(started);
        let started = Instant::now();
        let translation = translator.translate(&node);
        let translated = ms(started);
        if repetition > 0 {
            index.push(indexed);
            proxy.push(translated);
            total.push(indexed + translated);
        }
        last = Some(translation);
    }
    let translation = last.context("no repetition")?;
    let config = &translation.config;
    Ok(TranslationTiming {
        services,
        repetitions,
        load_ms,
        index_ms: Spread::of(&index),
        proxy_config_ms: Spread::of(&proxy),
        total_ms: Spread::of(&total),
        clusters: config.clusters.len(),
        endpoints: config.endpoints.iter().map(|e| e.endpoints.len()).sum(),
        listeners: config.listeners.len(),
        problems: translation.problems.len(),
    })
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}
