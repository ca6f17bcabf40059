use std::collections::BTreeMap;

use super::*;

fn labels(reporter: Reporter) -> RequestLabels {
    let web = Workload::new(
        "web",
        "shop",
        &BTreeMap::from([("app".into(), "web".into())]),
    );
    RequestLabels {
        reporter,
        source: Arc::new(Workload::default()),
        source_principal: UNKNOWN.into(),
        destination: Arc::new(web),
        destination_principal: "spiffe://cluster.local/ns/shop/sa/web".into(),
        destination_service: "web.shop.svc.cluster.local".into(),
        request_protocol: Protocol::Http,
        connection_security_policy: "unknown",
    }
}

#[test]
fn the_security_policy_position_names_its_label() {
    assert_eq!(LABELS[SECURITY_POLICY], "connection_security_policy");
}

#[test]
fn requests_are_counted_by_response_with_istios_labels() {
    let registry = Registry::new();
    let metrics = StandardMetrics::new(&registry);
    let set = metrics
        .label_set(&labels(Reporter::Source))
        .expect("under the cap");
    for (status, flag) in [
        (200, ResponseFlag::None),
        (200, ResponseFlag::None),
        (503, ResponseFlag::NoHealthyUpstream),
    ] {
        let mut record = Record::new(Some(set.clone()), Instant::now(), 10);
        record.status = status;
        record.flag = flag;
        record.response_bytes = 1234;
        record.finish();
    }
    let mut text = Vec::new();
    prometheus::Encoder::encode(
        &prometheus::TextEncoder::new(),
        &registry.gather(),
        &mut text,
    )
    .expect("encodes");
    let text = String::from_utf8(text).expect("utf-8");
    let ok = text
        .lines()
        .find(|l| l.starts_with("istio_requests_total{") && l.contains("response_code=\"200\""))
        .expect("a 200 series");
    for label in [
        "reporter=\"source\"",
        "destination_workload=\"web\"",
        "destination_workload_namespace=\"shop\"",
        "destination_service_name=\"web\"",
        "destination_service_namespace=\"shop\"",
        "destination_app=\"web\"",
        "source_workload=\"unknown\"",
        "response_flags=\"-\"",
        "grpc_response_status=\"\"",
    ] {
        assert!(ok.contains(label), "{label} missing from {ok}");
    }
    assert!(ok.ends_with(" 2"), "{ok}");
    assert!(text.contains("response_flags=\"UH\""), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("istio_response_bytes_sum{")
                && l.contains("\"200\"")
                && l.ends_with(" 2468")),
        "{text}"
    );
}

#[test]
fn label_sets_are_shared_and_a_full_cache_still_answers() {
    let metrics = StandardMetrics::new(&Registry::new());
    let a = metrics.label_set(&labels(Reporter::Source)).expect("set");
    let b = metrics.label_set(&labels(Reporter::Source)).expect("set");
    assert!(Arc::ptr_eq(&a, &b));
    let cache: SmallCache<usize, usize> = SmallCache::default();
    for i in 0..MAX_CACHED + 5 {
        cache.insert(i, Arc::new(i));
    }
    assert_eq!(cache.get(&3).as_deref(), Some(&3));
    assert_eq!(cache.get(&(MAX_CACHED + 1)), None);
}

#[test]
fn tcp_connections_are_counted_without_response_labels() {
    let registry = Registry::new();
    let metrics = StandardMetrics::new(&registry);
    let mut tcp = labels(Reporter::Destination);
    tcp.request_protocol = Protocol::Tcp;
    let series = (metrics.label_set(&tcp).and_then(|s| s.tcp())).expect("tcp series");
    series.opened.inc();
    series.received.inc_by(5);
    let gathered = registry.gather();
    let opened = (gathered.iter())
        .find(|f| f.name() == "istio_tcp_connections_opened_total")
        .expect("family");
    let labels: Vec<&str> = (opened.get_metric()[0].get_label().iter())
        .map(|l| l.name())
        .collect();
    assert!(labels.contains(&"response_flags") && !labels.contains(&"response_code"));
    assert!(labels.contains(&"request_protocol"));
}

#[test]
fn services_split_into_name_and_namespace() {
    assert_eq!(service_parts("web.shop.svc.cluster.local"), ("web", "shop"));
    assert_eq!(service_parts("web.shop.svc"), ("web", "shop"));
    assert_eq!(
        service_parts("api.example.com"),
        ("api.example.com", UNKNOWN)
    );
    assert_eq!(service_parts("passthrough"), ("passthrough", UNKNOWN));
}

#[test]
fn the_proxys_own_answers_get_envoys_response_flags() {
    assert_eq!(ResponseFlag::from_error(b"no_endpoint").as_str(), "UH");
    assert_eq!(ResponseFlag::from_error(b"registry_only").as_str(), "NR");
    assert_eq!(ResponseFlag::from_error(b"rbac_denied").as_str(), "RBAC");
    assert_eq!(ResponseFlag::from_error(b"something_else").as_str(), "-");
}
