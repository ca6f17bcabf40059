//! Reading Prometheus text back: names, labels (escapes included), values, and the sum and
//! single value tests assert on.

use mesh_test_support::prometheus::{Metrics, Sample};

const PAGE: &str = r#"# HELP mesh_requests_total HTTP requests completed
# TYPE mesh_requests_total counter
mesh_requests_total{cluster="web",direction="outbound",response_class="2xx"} 40
mesh_requests_total{cluster="web",direction="outbound",response_class="5xx"} 2
mesh_requests_total{cluster="inbound|8080",direction="inbound",response_class="2xx"} 7
mesh_config_reloads_total{result="ok"} 3 1700000000000
mesh_request_duration_seconds_bucket{direction="inbound",le="+Inf"} 7
mesh_uptime_seconds 12.5
odd{path="a \"quoted\", \\ and\nline",source_principal="x"} 1

not a sample
"#;

#[test]
fn every_sample_is_read_with_its_labels_and_value() {
    let metrics = Metrics::parse(PAGE);
    assert_eq!(metrics.samples.len(), 7, "{metrics:?}");
    let odd = metrics.samples.last().expect("a sample");
    assert_eq!(odd.name, "odd");
    assert_eq!(odd.labels["path"], "a \"quoted\", \\ and\nline");
    assert_eq!(odd.labels["source_principal"], "x");
    let uptime = Sample::parse("mesh_uptime_seconds 12.5").expect("a sample");
    assert!(uptime.labels.is_empty());
    assert_eq!(uptime.value, 12.5);
}

#[test]
fn sums_and_values_match_every_label_asked_for_exactly() {
    let metrics = Metrics::parse(PAGE);
    let outbound = [("direction", "outbound")];
    assert_eq!(metrics.sum("mesh_requests_total", &outbound), 42.0);
    assert_eq!(metrics.sum("mesh_requests_total", &[]), 49.0);
    let ok = [("direction", "outbound"), ("response_class", "2xx")];
    assert_eq!(metrics.sum("mesh_requests_total", &ok), 40.0);
    assert_eq!(metrics.value("mesh_requests_total", &ok), Some(40.0));
    // A label is matched by its whole name and value, never a part of one.
    assert_eq!(metrics.sum("odd", &[("principal", "x")]), 0.0);
    assert_eq!(
        metrics.sum("mesh_requests_total", &[("cluster", "we")]),
        0.0
    );
    // A timestamp after the value is not the value.
    assert_eq!(
        metrics.value("mesh_config_reloads_total", &[("result", "ok")]),
        Some(3.0)
    );
    assert_eq!(
        metrics.value("mesh_request_duration_seconds_bucket", &[("le", "+Inf")]),
        Some(7.0)
    );
    assert_eq!(metrics.value("mesh_absent_total", &[]), None);
    assert_eq!(metrics.sum("mesh_absent_total", &[]), 0.0);
}
