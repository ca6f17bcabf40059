use super::*;
use crate::stats::{Percentiles, Requests};

fn run(protocol: &str, rps: Option<u64>, p50: u64, p99: u64, achieved: f64) -> Summary {
    Summary {
        mode: if rps.is_some() { "rate" } else { "max" }.to_string(),
        url: "http://127.0.0.1:1".to_string(),
        http_version: protocol.to_string(),
        connections: 100,
        streams_per_connection: 1,
        target_rps: rps,
        duration_s: 10.0,
        warmup_s: 2.0,
        threads: 1,
        requests: Requests {
            scheduled: 10_000,
            sent: 10_000,
            ok: 10_000,
            ..Requests::default()
        },
        reconnects: 0,
        achieved_rps: achieved,
        latency_us: Some(Percentiles {
            p50,
            p90: p50,
            p99,
            p999: p99,
            max: p99,
            mean: p50 as f64,
        }),
        send_lag_us: None,
    }
}

fn target(name: &str, p50: u64, p99: u64, max_rps: f64) -> TargetResult {
    TargetResult {
        name: name.to_string(),
        runs: vec![
            run("HTTP/1.1", Some(1_000), p50, p99, 1_000.0),
            run("HTTP/1.1", None, p50 * 10, p99 * 10, max_rps),
        ],
        ..TargetResult::default()
    }
}

fn meta() -> Meta {
    Meta {
        date: "2026-01-01 00:00 UTC".to_string(),
        commit: "abc1234".to_string(),
        command: "bench/run".to_string(),
        machine: Machine::default(),
        settings: String::new(),
    }
}

#[test]
fn goals_compare_the_proxy_with_direct_and_the_references() {
    let mut proxy = target(MESH_PROXY, 300, 1_900, 20_000.0);
    proxy.rss_idle_kib = Some(8 * 1024);
    proxy.rss_peak_kib = Some(31 * 1024);
    let targets = vec![
        target(DIRECT, 200, 800, 30_000.0),
        proxy,
        target("nginx", 350, 2_000, 19_000.0),
        target("haproxy", 320, 1_500, 21_000.0),
    ];
    let verdicts: Vec<_> = goals(&targets)
        .iter()
        .map(|g| (g.measured.clone(), g.verdict))
        .collect();
    assert_eq!(
        verdicts,
        vec![
            ("+100 µs".to_string(), Verdict::Met),
            ("+1100 µs".to_string(), Verdict::Missed),
            ("20,000 vs 19,000 req/s (105 %)".to_string(), Verdict::Met),
            ("20,000 vs 21,000 req/s (95 %)".to_string(), Verdict::Missed),
            ("8.0 MiB".to_string(), Verdict::Met),
            ("31.0 MiB".to_string(), Verdict::Missed),
        ]
    );
}

#[test]
fn goals_without_the_proxy_are_not_measured() {
    let mut proxy = target(MESH_PROXY, 0, 0, 0.0);
    proxy.skipped = Some("did not build".to_string());
    let targets = vec![target(DIRECT, 200, 800, 30_000.0), proxy];
    assert!(
        goals(&targets)
            .iter()
            .all(|g| g.verdict == Verdict::NotMeasured)
    );
}

#[test]
fn markdown_groups_targets_by_load() {
    let targets = vec![
        target(DIRECT, 200, 800, 30_000.0),
        target("nginx", 350, 2_000, 19_000.0),
    ];
    let report = Report {
        meta: meta(),
        goals: goals(&targets),
        targets,
    };
    let md = markdown(&report);
    assert!(md.contains("at commit `abc1234` with `bench/run`"), "{md}");
    assert!(
        md.contains("| HTTP/1.1, 100 conns | 1,000 | nginx | 1000 | 350 | 350 | 2000 | 2000 | 2000 | +150 / +1200 | 0 | — |"),
        "{md}"
    );
    assert!(
        md.contains("| HTTP/1.1, 100 conns | nginx | 19,000 | 3500 | 20000 | 0 |"),
        "{md}"
    );
    let direct_row = md.find("| 1,000 | direct |").unwrap();
    let nginx_row = md.find("| 1,000 | nginx |").unwrap();
    assert!(direct_row < nginx_row);
}

#[test]
fn loads_a_results_directory() {
    let dir = std::env::temp_dir().join(format!("mesh-bench-report-test-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    for name in ["haproxy", DIRECT, "mesh-proxy"] {
        fs::create_dir_all(dir.join(name)).unwrap();
    }
    let summary = run("HTTP/1.1", Some(500), 100, 200, 500.0);
    fs::write(
        dir.join(DIRECT).join("h1-500.json"),
        serde_json::to_string(&summary).unwrap(),
    )
    .unwrap();
    fs::write(dir.join("haproxy").join("rss-idle-kib"), "4242\n").unwrap();
    fs::write(dir.join("haproxy").join("notes"), "one\ntwo\n").unwrap();
    fs::write(dir.join("mesh-proxy").join("skipped"), "did not build\n").unwrap();

    let report = Report::load(&dir, meta()).unwrap();
    let names: Vec<_> = report.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, [DIRECT, MESH_PROXY, "haproxy"]);
    assert_eq!(report.targets[0].runs, vec![summary]);
    assert_eq!(report.targets[2].rss_idle_kib, Some(4242));
    assert_eq!(report.targets[2].notes, ["one", "two"]);
    assert!(report.target(MESH_PROXY).is_none());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn formats_numbers() {
    assert_eq!(thousands(0), "0");
    assert_eq!(thousands(999), "999");
    assert_eq!(thousands(1_000), "1,000");
    assert_eq!(thousands(1_234_567), "1,234,567");
    assert_eq!(mib(15 * 1024 + 512), "15.5 MiB");
}

#[test]
fn maximum_throughput_is_the_median_round() {
    let mut proxy = target(MESH_PROXY, 300, 1_900, 30_000.0);
    proxy
        .runs
        .push(run("HTTP/1.1", None, 3_000, 19_000, 40_000.0));
    proxy
        .runs
        .push(run("HTTP/1.1", None, 3_000, 19_000, 35_000.0));
    assert_eq!(
        proxy.at_max("HTTP/1.1").map(|s| s.achieved_rps),
        Some(35_000.0)
    );
    let report = Report {
        meta: meta(),
        goals: goals(std::slice::from_ref(&proxy)),
        targets: vec![proxy],
    };
    let table = markdown(&report);
    assert!(
        table.contains("| 35,000 | 3000 | 19000 | 0 | 30,000, 35,000, 40,000 |"),
        "{table}"
    );
}
