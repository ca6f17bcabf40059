//! The report of a whole `bench/run`: reads the per-target results it left in a directory, checks
//! them against the goals, and renders the markdown table that goes into bench/README.md.
//!
//! Layout of the results directory, one sub-directory per target (`direct`, `mesh-proxy`, ...):
//! `*.json` (summaries from `mesh-loadgen --json`; maximum throughput may come in several rounds,
//! of which the median counts), and optional one-line text files `version`,
//! `skipped` (why the target did not run), `notes` (one per line), `rss-idle-kib`,
//! `rss-peak-kib` and `cpu-percent`.

use crate::stats::Summary;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::{fs, path::Path};

mod goals;
mod markdown;

pub use goals::{Goal, Verdict, goals};
pub use markdown::markdown;

/// The client talking straight to the upstream: the baseline.
pub const DIRECT: &str = "direct";
/// Our proxy.
pub const MESH_PROXY: &str = "mesh-proxy";
/// The reference proxies.
pub const REFERENCES: [&str; 2] = ["nginx", "haproxy"];
/// The rate and protocol the latency and memory goals are stated at.
pub const GOAL_RPS: u64 = 1_000;
/// The protocol the goals are stated for.
pub const GOAL_PROTOCOL: &str = "HTTP/1.1";

/// Everything a run of `bench/run` measured, as written to `latest.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// When, where and how it ran.
    pub meta: Meta,
    /// One entry per target, baseline first.
    pub targets: Vec<TargetResult>,
    /// The goals of the issue, checked against the targets.
    pub goals: Vec<Goal>,
}

/// When, where and how a run happened.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Meta {
    /// UTC date and time of the run.
    pub date: String,
    /// Short git commit of the code measured.
    pub commit: String,
    /// The command that produced the results.
    pub command: String,
    /// The machine.
    pub machine: Machine,
    /// The load settings, in words.
    pub settings: String,
}

/// The machine a run happened on.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    /// CPUs available.
    pub nproc: usize,
    /// CPU model name.
    pub cpu: String,
    /// Kernel release.
    pub kernel: String,
}

/// What was measured for one target (direct, a proxy).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TargetResult {
    /// `direct`, `mesh-proxy`, `nginx` or `haproxy`.
    pub name: String,
    /// Version of the software, when known.
    pub version: Option<String>,
    /// Why the target was not measured, if it was not.
    pub skipped: Option<String>,
    /// Remarks the reader needs (e.g. which protocol goes upstream).
    pub notes: Vec<String>,
    /// Resident memory right after start, KiB (all processes of the target).
    pub rss_idle_kib: Option<u64>,
    /// Peak resident memory during the 1,000 rps HTTP/1.1 run, KiB.
    pub rss_peak_kib: Option<u64>,
    /// CPU used during the 1,000 rps HTTP/1.1 run, percent of one core.
    pub cpu_percent: Option<f64>,
    /// The load generator's summaries.
    pub runs: Vec<Summary>,
}

// === impl Machine ===

impl Machine {
    /// Describes the machine this process runs on, from /proc.
    pub fn this() -> Self {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".to_string());
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|k| k.trim().to_string())
            .unwrap_or_else(|_| "unknown kernel".to_string());
        Self {
            nproc: std::thread::available_parallelism().map_or(0, usize::from),
            cpu,
            kernel,
        }
    }
}

// === impl TargetResult ===

impl TargetResult {
    /// Reads one target's directory (see the module documentation for its layout).
    pub fn load(name: &str, dir: &Path) -> Result<Self> {
        let text = |file: &str| -> Option<String> {
            let value = fs::read_to_string(dir.join(file)).ok()?;
            let value = value.trim();
            (!value.is_empty()).then(|| value.to_string())
        };
        let mut runs = Vec::new();
        if dir.is_dir() {
            let paths: Vec<_> = fs::read_dir(dir)
                .with_context(|| format!("reading {}", dir.display()))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| path.extension().is_some_and(|e| e == "json"))
                .collect();
            for path in paths {
                let json = fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let summary: Summary = serde_json::from_str(&json)
                    .with_context(|| format!("{} is not a mesh-loadgen summary", path.display()))?;
                runs.push(summary);
            }
        }
        // Protocol, then rates in increasing order, then maximum throughput.
        runs.sort_by_key(|s| (s.http_version.clone(), s.target_rps.is_none(), s.target_rps));
        Ok(Self {
            name: name.to_string(),
            version: text("version"),
            skipped: text("skipped"),
            notes: text("notes")
                .map(|n| n.lines().map(str::to_string).collect())
                .unwrap_or_default(),
            rss_idle_kib: text("rss-idle-kib").and_then(|v| v.parse().ok()),
            rss_peak_kib: text("rss-peak-kib").and_then(|v| v.parse().ok()),
            cpu_percent: text("cpu-percent").and_then(|v| v.parse().ok()),
            runs,
        })
    }

    /// The constant-rate run at `rps` over `protocol`, if there was one.
    pub fn at_rate(&self, protocol: &str, rps: u64) -> Option<&Summary> {
        self.runs
            .iter()
            .find(|s| s.http_version == protocol && s.target_rps == Some(rps))
    }

    /// The maximum-throughput runs (rounds) over `protocol`, slowest first.
    pub fn max_rounds(&self, protocol: &str) -> Vec<&Summary> {
        let mut rounds: Vec<_> = self
            .runs
            .iter()
            .filter(|s| s.http_version == protocol && s.target_rps.is_none())
            .collect();
        rounds.sort_by(|a, b| a.achieved_rps.total_cmp(&b.achieved_rps));
        rounds
    }

    /// The median maximum-throughput round over `protocol` (the lower middle of an even count),
    /// if there was one.
    pub fn at_max(&self, protocol: &str) -> Option<&Summary> {
        let rounds = self.max_rounds(protocol);
        rounds.get(rounds.len().saturating_sub(1) / 2).copied()
    }
}

// === impl Report ===

impl Report {
    /// Reads every target directory under `dir`: known targets first, in a fixed order.
    pub fn load(dir: &Path, meta: Meta) -> Result<Self> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .with_context(|| format!("reading the results directory {}", dir.display()))?
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.path().is_dir())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort_by_key(|name| (order(name), name.clone()));
        let targets = names
            .iter()
            .map(|name| TargetResult::load(name, &dir.join(name)))
            .collect::<Result<Vec<_>>>()?;
        let goals = goals(&targets);
        Ok(Self {
            meta,
            targets,
            goals,
        })
    }

    /// The target called `name`, if it was measured.
    pub fn target(&self, name: &str) -> Option<&TargetResult> {
        find(&self.targets, name)
    }
}

/// The target called `name` among `targets`, unless it was skipped.
pub fn find<'a>(targets: &'a [TargetResult], name: &str) -> Option<&'a TargetResult> {
    targets
        .iter()
        .find(|t| t.name == name && t.skipped.is_none())
}

fn order(name: &str) -> usize {
    [DIRECT, MESH_PROXY, REFERENCES[0], REFERENCES[1]]
        .iter()
        .position(|known| *known == name)
        .unwrap_or(usize::MAX)
}

/// `1234567` as `1,234,567`.
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// KiB as MiB with one decimal.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests;
