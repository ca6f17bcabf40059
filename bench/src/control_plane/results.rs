//! The control-plane benchmark's results: summaries of samples, the goals of issue #4 with
//! verdicts, and the JSON and markdown written to bench/results/control-plane.*.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::{proxy_memory::ProxyMemory, push::PushResult, translation::TranslationTiming};
use crate::report::{Goal, Meta, Verdict};

/// p99 push latency allowed at 1,000 proxies, ms.
pub const MAX_PUSH_P99_MS: f64 = 1_000.0;
/// The proxy count the push goal is stated for.
pub const GOAL_PROXIES: usize = 1_000;
/// Full translation of 1,000 services allowed, ms.
pub const MAX_TRANSLATION_MS: f64 = 200.0;
/// Proxy RSS growth allowed from 10 to 1,000 services, KiB.
pub const MAX_PROXY_GROWTH_KIB: u64 = 5 * 1024;
/// The most a proxy under a Sidecar scoped to its namespace may grow over a 10-service mesh.
pub const MAX_SCOPED_GROWTH_KIB: u64 = 1024;

/// Smallest, median and largest of a few samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Smallest.
    pub min: f64,
    /// Median (the lower middle of an even count).
    pub median: f64,
    /// Largest.
    pub max: f64,
}

/// Percentiles of many samples (nearest rank).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Quantiles {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// The control plane's own figures.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ControlPlaneUsage {
    /// Start to ready (first config published) with the mesh, s.
    pub startup_s: f64,
    /// The binary's first translation (`mesh_cp_translation_duration_seconds`), ms.
    pub first_translation_ms: f64,
    /// RSS with the mesh and no proxy, KiB.
    pub idle_rss_kib: u64,
    /// CPU with the mesh and no proxy (the folder poll), % of one core.
    pub idle_cpu_percent: f64,
}

/// Everything one run measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ControlPlaneReport {
    /// When, where and how.
    pub meta: Meta,
    /// Load average (1, 5, 15 min) before the measurements.
    pub load_average: String,
    /// Services in the mesh.
    pub services: usize,
    /// Endpoints per service.
    pub endpoints_per_service: usize,
    /// The in-process translation timing.
    pub translation: TranslationTiming,
    /// The control-plane process.
    pub control_plane: ControlPlaneUsage,
    /// A real proxy's memory, small mesh then full mesh.
    pub proxy_memory: Vec<ProxyMemory>,
    /// The push phases.
    pub push: Vec<PushResult>,
    /// The goals with verdicts.
    pub goals: Vec<Goal>,
}

// === impl Spread ===

impl Spread {
    /// The spread of `samples` (all zero when there are none).
    pub fn of(samples: &[f64]) -> Self {
        let sorted = sorted(samples);
        match (sorted.first(), sorted.last()) {
            (Some(&min), Some(&max)) => Spread {
                min,
                median: sorted[(sorted.len() - 1) / 2],
                max,
            },
            _ => Spread::default(),
        }
    }
}

// === impl Quantiles ===

impl Quantiles {
    /// The quantiles of `samples` (all zero when there are none).
    pub fn of(samples: &[f64]) -> Self {
        let sorted = sorted(samples);
        let rank = |q: f64| {
            let index = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
            sorted[index]
        };
        if sorted.is_empty() {
            return Quantiles::default();
        }
        Quantiles {
            count: sorted.len(),
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: rank(1.0),
        }
    }
}

fn sorted(samples: &[f64]) -> Vec<f64> {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
}

// === impl ControlPlaneReport ===

impl ControlPlaneReport {
    /// Checks the results against the goals of issue #4 and stores the verdicts.
    pub fn check_goals(&mut self) {
        let verdict = |met: Option<bool>| match met {
            Some(true) => Verdict::Met,
            Some(false) => Verdict::Missed,
            None => Verdict::NotMeasured,
        };
        let push = self
            .push
            .iter()
            .find(|p| p.proxies == GOAL_PROXIES && p.stream == "delta");
        let p99 = push.map(|p| p.seen_to_ack_ms.p99);
        let translation = &self.translation;
        let total = (translation.services == 1_000).then_some(translation.total_ms);
        let rss = |services: usize| {
            self.proxy_memory
                .iter()
                .find(|m| m.services == services && m.scope.is_none())
                .map(|m| m.rss_kib)
        };
        let scoped = (self.proxy_memory.iter())
            .find(|m| m.services == 1_000 && m.scope.is_some())
            .map(|m| m.rss_kib);
        let scoped_growth = rss(10)
            .zip(scoped)
            .map(|(small, big)| big as i64 - small as i64);
        let growth = rss(10)
            .zip(rss(1_000))
            .map(|(small, big)| big as i64 - small as i64);
        self.goals = vec![
            Goal {
                goal: "endpoint change ACKed by all 1,000 proxies, p99 (change seen → ACK, delta)"
                    .to_owned(),
                limit: "≤ 1 s".to_owned(),
                measured: p99.map_or("not measured".to_owned(), |v| format!("{v:.0} ms")),
                verdict: verdict(p99.map(|v| v <= MAX_PUSH_P99_MS)),
            },
            Goal {
                goal: "full translation of 1,000 services (index + one proxy's config), median"
                    .to_owned(),
                limit: "≤ 200 ms".to_owned(),
                measured: total.map_or("not measured".to_owned(), |t| {
                    format!("{:.1} ms (max {:.1} ms)", t.median, t.max)
                }),
                verdict: verdict(total.map(|t| t.median <= MAX_TRANSLATION_MS)),
            },
            Goal {
                goal: "real proxy RSS growth from 10 to 1,000 services".to_owned(),
                limit: "≤ 5 MiB".to_owned(),
                measured: growth.map_or("not measured".to_owned(), |g| {
                    format!("{:+.1} MiB", g as f64 / 1024.0)
                }),
                verdict: verdict(growth.map(|g| g <= MAX_PROXY_GROWTH_KIB as i64)),
            },
            Goal {
                goal: "real proxy RSS with 1,000 services under a Sidecar scoped to its namespace, vs 10 services"
                    .to_owned(),
                limit: "≤ 1 MiB".to_owned(),
                measured: scoped_growth.map_or("not measured".to_owned(), |g| {
                    format!("{:+.1} MiB", g as f64 / 1024.0)
                }),
                verdict: verdict(scoped_growth.map(|g| g <= MAX_SCOPED_GROWTH_KIB as i64)),
            },
        ];
    }

    /// The markdown tables for bench/README.md.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let meta = &self.meta;
        let m = &meta.machine;
        let _ = writeln!(
            md,
            "Measured {} on {} ({} CPUs, Linux {}), commit `{}`, load average before: {}.\n\
             Command: `{}`. Mesh: {} services × {} endpoints (pods), {}.\n",
            meta.date,
            m.cpu,
            m.nproc,
            m.kernel,
            meta.commit,
            self.load_average,
            meta.command,
            self.services,
            self.endpoints_per_service,
            meta.settings,
        );
        md.push_str("### Goals (control plane)\n\n| goal | limit | measured | verdict |\n| --- | --- | --- | --- |\n");
        for goal in &self.goals {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                goal.goal,
                goal.limit,
                goal.measured,
                goal.verdict.label()
            );
        }
        md.push_str(
            "\n### Push latency of an endpoint change (ms)\n\n\
             | proxies (workloads) | stream | changes | seen → ACK p50 / p90 / p99 / max | published → ACK p50 / p99 | write → ACK p50 / p99 | write → seen (median) | seen → published (median) | responses per change | reconnects | CP ACKs ≤ 1 s | initial sync | CPU initial sync / changes | CP peak RSS |\n\
             | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
        );
        for p in &self.push {
            let q = |q: &Quantiles| {
                format!("{:.0} / {:.0} / {:.0} / {:.0}", q.p50, q.p90, q.p99, q.max)
            };
            let _ = writeln!(
                md,
                "| {} ({}) | {} | {} | {} | {:.0} / {:.0} | {:.0} / {:.0} | {:.0} | {:.0} | {:.2} | {} | {} | {:.1} s | {:.0} % / {:.0} % | {} |",
                p.proxies,
                p.workloads,
                p.stream,
                p.rounds,
                q(&p.seen_to_ack_ms),
                p.published_to_ack_ms.p50,
                p.published_to_ack_ms.p99,
                p.write_to_ack_ms.p50,
                p.write_to_ack_ms.p99,
                p.write_to_seen_ms.median,
                p.seen_to_published_ms.median,
                p.responses_per_change,
                p.reconnects,
                p.cp_acks_within_1s,
                p.initial_sync_s,
                p.initial_sync_cpu_percent,
                p.changes_cpu_percent,
                mib(p.cp_peak_rss_kib),
            );
        }
        let t = &self.translation;
        let cp = &self.control_plane;
        let _ = write!(
            md,
            "\n### Translation of {} services (ms, {} repetitions)\n\n\
             | step | median | min | max |\n| --- | --- | --- | --- |\n\
             | index (`Translator::new`) | {:.1} | {:.1} | {:.1} |\n\
             | one sidecar's config (`translate`) | {:.1} | {:.1} | {:.1} |\n\
             | full translation | {:.1} | {:.1} | {:.1} |\n\
             | binary: first translation (index, metric) | {:.1} | | |\n",
            t.services,
            t.repetitions,
            t.index_ms.median,
            t.index_ms.min,
            t.index_ms.max,
            t.proxy_config_ms.median,
            t.proxy_config_ms.min,
            t.proxy_config_ms.max,
            t.total_ms.median,
            t.total_ms.min,
            t.total_ms.max,
            cp.first_translation_ms,
        );
        for p in &self.push {
            let c = &p.translation_ms;
            let _ = writeln!(
                md,
                "| binary: translation per change, {} proxies (index, metric) | {:.1} | {:.1} | {:.1} |",
                p.proxies, c.median, c.min, c.max
            );
        }
        let _ = write!(
            md,
            "\nThe sidecar's config: {} clusters, {} endpoints, {} listeners, {} problems. \
             Reading and parsing the folder (not counted): {:.0} ms.\n",
            t.clusters, t.endpoints, t.listeners, t.problems, t.load_ms,
        );
        md.push_str(
            "\n### Memory and CPU\n\n| what | RSS | peak RSS | CPU |\n| --- | --- | --- | --- |\n",
        );
        let _ = writeln!(
            md,
            "| control plane, {} services, no proxy (started in {:.1} s) | {} | | {:.1} % |",
            self.services,
            cp.startup_s,
            mib(cp.idle_rss_kib),
            cp.idle_cpu_percent
        );
        for p in &self.push {
            let _ = writeln!(
                md,
                "| control plane, {} proxies connected ({}) | | {} | {:.0} % (initial sync), {:.0} % (changes) |",
                p.proxies,
                p.stream,
                mib(p.cp_peak_rss_kib),
                p.initial_sync_cpu_percent,
                p.changes_cpu_percent
            );
        }
        for m in &self.proxy_memory {
            let scope = m.scope.as_ref().map_or(String::new(), |s| format!(", {s}"));
            let _ = writeln!(
                md,
                "| mesh-proxy (discovery mode), {} services{scope}, after its ACKs | {} | {} | |",
                m.services,
                mib(m.rss_kib),
                mib(m.peak_rss_kib)
            );
        }
        md
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}
