//! The markdown rendering of a report: the table pasted into bench/README.md.

use super::{DIRECT, Report, TargetResult, find, mib, thousands};
use crate::stats::Summary;
use std::{collections::BTreeSet, fmt::Write as _};

/// Renders the report as markdown: header, goals, latency, throughput, memory, notes.
pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    header(&mut out, report);
    goals(&mut out, report);
    latency(&mut out, report);
    throughput(&mut out, report);
    memory(&mut out, report);
    notes(&mut out, report);
    out
}

fn header(out: &mut String, report: &Report) {
    let m = &report.meta;
    let _ = writeln!(
        out,
        "Measured {} at commit `{}` with `{}`.",
        m.date, m.commit, m.command
    );
    let _ = writeln!(
        out,
        "Machine: {} CPUs ({}), Linux {}. {}",
        m.machine.nproc, m.machine.cpu, m.machine.kernel, m.settings
    );
    out.push('\n');
}

fn goals(out: &mut String, report: &Report) {
    out.push_str(
        "### Goals (mesh-proxy)\n\n| goal | limit | measured | verdict |\n|---|---|---|---|\n",
    );
    for g in &report.goals {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            g.goal,
            g.limit,
            g.measured,
            g.verdict.label()
        );
    }
    out.push('\n');
}

fn latency(out: &mut String, report: &Report) {
    out.push_str(
        "### Latency at a constant rate (µs, from each request's due time)\n\n\
         | protocol | rate | target | achieved | p50 | p90 | p99 | p99.9 | max | vs direct p50 / p99 | errors | gen. lag p99 |\n\
         |---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    // Rows grouped by protocol and rate, so that the targets at one load sit together.
    let points: BTreeSet<(String, u64)> = report
        .targets
        .iter()
        .flat_map(|t| &t.runs)
        .filter_map(|s| Some((s.http_version.clone(), s.target_rps?)))
        .collect();
    let direct = find(&report.targets, DIRECT);
    for (protocol, rps) in &points {
        for target in &report.targets {
            let Some(run) = target.at_rate(protocol, *rps) else {
                continue;
            };
            let baseline = direct
                .and_then(|d| d.at_rate(protocol, *rps))
                .and_then(|s| s.latency_us);
            let vs_direct = match (run.latency_us, baseline) {
                _ if target.name == DIRECT => String::new(),
                (Some(p), Some(b)) => format!(
                    "{:+} / {:+}",
                    p.p50 as i64 - b.p50 as i64,
                    p.p99 as i64 - b.p99 as i64
                ),
                _ => "—".to_string(),
            };
            let lag = run
                .send_lag_us
                .map_or_else(|| "—".to_string(), |l| l.p99.to_string());
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.0} | {} | {} | {} | {} |",
                protocol_cell(run),
                thousands(*rps),
                target.name,
                run.achieved_rps,
                percentile_cells(run),
                vs_direct,
                errors_cell(run),
                lag,
            );
        }
    }
    out.push('\n');
}

fn throughput(out: &mut String, report: &Report) {
    out.push_str(
        "### Maximum throughput (closed loop, median of the rounds)\n\n\
         | protocol | target | req/s | p50 µs | p99 µs | errors | every round, req/s |\n\
         |---|---|--:|--:|--:|--:|--:|\n",
    );
    for target in &report.targets {
        let mut protocols: Vec<_> = target
            .runs
            .iter()
            .filter(|s| s.target_rps.is_none())
            .map(|s| s.http_version.as_str())
            .collect();
        protocols.dedup();
        for protocol in protocols {
            let Some(median) = target.at_max(protocol) else {
                continue;
            };
            let rounds = target.max_rounds(protocol);
            let every: Vec<_> = rounds
                .iter()
                .map(|s| thousands(s.achieved_rps.round() as u64))
                .collect();
            let p = median.latency_us.unwrap_or_default();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                protocol_cell(median),
                target.name,
                thousands(median.achieved_rps.round() as u64),
                p.p50,
                p.p99,
                rounds.iter().map(|s| s.errors()).sum::<u64>(),
                every.join(", "),
            );
        }
    }
    out.push('\n');
}

fn memory(out: &mut String, report: &Report) {
    out.push_str(
        "### Proxy memory and CPU (all processes of the proxy)\n\n\
         | target | RSS idle | RSS peak, 1,000 rps HTTP/1.1 | CPU, 1,000 rps HTTP/1.1 |\n|---|--:|--:|--:|\n",
    );
    for target in report
        .targets
        .iter()
        .filter(|t| t.name != DIRECT && t.skipped.is_none())
    {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            target.name,
            target.rss_idle_kib.map_or_else(|| "—".to_string(), mib),
            target.rss_peak_kib.map_or_else(|| "—".to_string(), mib),
            target
                .cpu_percent
                .map_or_else(|| "—".to_string(), |c| format!("{c:.0} % of a core")),
        );
    }
    out.push('\n');
}

fn notes(out: &mut String, report: &Report) {
    let lines: Vec<String> = report.targets.iter().flat_map(target_notes).collect();
    if lines.is_empty() {
        return;
    }
    out.push_str("### Notes\n\n");
    for line in lines {
        let _ = writeln!(out, "- {line}");
    }
    out.push('\n');
}

fn target_notes(target: &TargetResult) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(reason) = &target.skipped {
        lines.push(format!("{}: not measured: {reason}", target.name));
    }
    if let Some(version) = &target.version {
        lines.push(format!("{}: {version}", target.name));
    }
    lines.extend(target.notes.iter().map(|n| format!("{}: {n}", target.name)));
    lines
}

fn protocol_cell(run: &Summary) -> String {
    if run.streams_per_connection > 1 {
        format!(
            "{}, {}×{} streams",
            run.http_version, run.connections, run.streams_per_connection
        )
    } else {
        format!("{}, {} conns", run.http_version, run.connections)
    }
}

fn percentile_cells(run: &Summary) -> String {
    match run.latency_us {
        Some(p) => format!("{} | {} | {} | {} | {}", p.p50, p.p90, p.p99, p.p999, p.max),
        None => "— | — | — | — | —".to_string(),
    }
}

fn errors_cell(run: &Summary) -> String {
    let r = &run.requests;
    if run.errors() == 0 {
        return "0".to_string();
    }
    let parts: Vec<String> = [
        (r.non_2xx, "non-2xx"),
        (r.transport_errors, "transport"),
        (r.timeouts, "timeout"),
        (r.unsent, "unsent"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    format!("{} ({})", run.errors(), parts.join(", "))
}
