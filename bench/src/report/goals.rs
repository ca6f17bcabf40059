//! The goals of the benchmark issue, checked against measured results.

use super::{
    DIRECT, GOAL_PROTOCOL, GOAL_RPS, MESH_PROXY, REFERENCES, TargetResult, find, mib, thousands,
};
use serde::{Deserialize, Serialize};

/// Added p50 latency allowed over direct, µs.
pub const MAX_ADDED_P50_US: u64 = 150;
/// Added p99 latency allowed over direct, µs.
pub const MAX_ADDED_P99_US: u64 = 1_000;
/// Resident memory allowed when idle, KiB.
pub const MAX_RSS_IDLE_KIB: u64 = 10 * 1024;
/// Resident memory allowed at 1,000 rps over 100 connections, KiB.
pub const MAX_RSS_LOAD_KIB: u64 = 30 * 1024;

/// One goal and how the proxy did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Goal {
    /// What is measured.
    pub goal: String,
    /// The bound, in words.
    pub limit: String,
    /// The measured value, in words.
    pub measured: String,
    /// Whether the bound holds.
    pub verdict: Verdict,
}

/// Whether a goal is met.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The measured value is within the bound.
    Met,
    /// It is not.
    Missed,
    /// Something needed was not measured (a target skipped, a run failed).
    NotMeasured,
}

// === impl Verdict ===

impl Verdict {
    fn of(met: bool) -> Self {
        if met { Verdict::Met } else { Verdict::Missed }
    }

    /// The verdict in a table cell.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::Missed => "**missed**",
            Verdict::NotMeasured => "not measured",
        }
    }
}

/// Checks the mesh proxy's results against the goals of the issue.
pub fn goals(targets: &[TargetResult]) -> Vec<Goal> {
    let proxy = find(targets, MESH_PROXY);
    let direct = find(targets, DIRECT);
    let at_goal_rate = |t: Option<&TargetResult>| {
        t.and_then(|t| t.at_rate(GOAL_PROTOCOL, GOAL_RPS))
            .and_then(|s| s.latency_us)
    };
    let (proxy_latency, direct_latency) = (at_goal_rate(proxy), at_goal_rate(direct));
    let added = |pick: fn(&crate::stats::Percentiles) -> u64| {
        Some(pick(&proxy_latency?) as i64 - pick(&direct_latency?) as i64)
    };
    let mut goals = vec![
        added_latency("p50", added(|p| p.p50), MAX_ADDED_P50_US),
        added_latency("p99", added(|p| p.p99), MAX_ADDED_P99_US),
    ];
    let max_rps = |t: Option<&TargetResult>| {
        t.and_then(|t| t.at_max(GOAL_PROTOCOL))
            .map(|s| s.achieved_rps)
    };
    for reference in REFERENCES {
        let (ours, theirs) = (max_rps(proxy), max_rps(find(targets, reference)));
        goals.push(Goal {
            goal: format!("max throughput, {GOAL_PROTOCOL}, vs {reference}"),
            limit: format!("≥ {reference}"),
            measured: match (ours, theirs) {
                (Some(ours), Some(theirs)) => format!(
                    "{} vs {} req/s ({:.0} %)",
                    thousands(ours.round() as u64),
                    thousands(theirs.round() as u64),
                    100.0 * ours / theirs
                ),
                _ => "—".to_string(),
            },
            verdict: match (ours, theirs) {
                (Some(ours), Some(theirs)) => Verdict::of(ours >= theirs),
                _ => Verdict::NotMeasured,
            },
        });
    }
    goals.push(memory(
        "RSS idle",
        proxy.and_then(|p| p.rss_idle_kib),
        MAX_RSS_IDLE_KIB,
    ));
    goals.push(memory(
        "RSS at 1,000 rps, 100 connections",
        proxy.and_then(|p| p.rss_peak_kib),
        MAX_RSS_LOAD_KIB,
    ));
    goals
}

fn added_latency(percentile: &str, added_us: Option<i64>, limit_us: u64) -> Goal {
    Goal {
        goal: format!("added {percentile} latency at 1,000 rps, {GOAL_PROTOCOL}, vs direct"),
        limit: format!("≤ {} µs", thousands(limit_us)),
        measured: added_us.map_or_else(|| "—".to_string(), |us| format!("{us:+} µs")),
        verdict: added_us.map_or(Verdict::NotMeasured, |us| {
            Verdict::of(us <= limit_us as i64)
        }),
    }
}

fn memory(goal: &str, kib: Option<u64>, limit_kib: u64) -> Goal {
    Goal {
        goal: goal.to_string(),
        limit: format!("≤ {}", mib(limit_kib)),
        measured: kib.map_or_else(|| "—".to_string(), mib),
        verdict: kib.map_or(Verdict::NotMeasured, |kib| Verdict::of(kib <= limit_kib)),
    }
}
