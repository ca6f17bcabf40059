//! Telemetry on small stores: mesh, namespace and workload levels layered field by field and
//! side by side, providers resolved, and mistakes reported.

use mesh_proto::config::v1::{Telemetry as TelemetryConfig, telemetry};

use super::tests::{SHOP, client, store};
use super::*;

fn telemetry(name: &str, namespace: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: telemetry.istio.io/v1\nkind: Telemetry\n\
         metadata: {{ name: {name}, namespace: {namespace} }}\nspec: {spec}\n"
    )
}

fn settings() -> MeshSettings {
    MeshSettings {
        tracing_providers: providers(),
        ..MeshSettings::default()
    }
}

fn providers() -> TracingProviders {
    TracingProviders::parse(&[
        "otel=otel-collector.observability:4317".to_owned(),
        "backup=http://backup.observability:4317".to_owned(),
    ])
    .expect("providers")
}

fn config_of(manifests: &str, labels: &[(&str, &str)]) -> (Option<TelemetryConfig>, Vec<Problem>) {
    let translator = Translator::with_settings(&store(manifests), &settings());
    let translation = translator.translate(&client("shop", labels));
    assert!(translation.config.telemetry.len() <= 1);
    let config = translation.config.telemetry.into_iter().next();
    (config, translation.problems)
}

#[test]
fn without_a_telemetry_the_sidecar_flags_decide() {
    let (config, problems) = config_of(SHOP, &[("app", "web")]);
    assert_eq!(config, None);
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn levels_layer_field_by_field_and_side_by_side() {
    let mesh_default = telemetry(
        "mesh-default",
        "mesh-system",
        "{ tracing: [{ providers: [{ name: otel }], randomSamplingPercentage: 1 }], \
         accessLogging: [{ providers: [{ name: envoy }] }] }",
    );
    let manifests = [
        SHOP,
        &mesh_default,
        &telemetry(
            "shop",
            "shop",
            "{ tracing: [{ randomSamplingPercentage: 10 }], \
             accessLogging: [{ match: { mode: CLIENT }, disabled: true }] }",
        ),
        &telemetry(
            "web",
            "shop",
            "{ selector: { matchLabels: { app: web } }, \
             tracing: [{ match: { mode: CLIENT }, disableSpanReporting: true }], \
             accessLogging: [{ match: { mode: SERVER }, filter: { expression: 'response.code >= 500' } }] }",
        ),
    ]
    .concat();
    let (web, problems) = config_of(&manifests, &[("app", "web")]);
    assert!(problems.is_empty(), "{problems:?}");
    let web = web.expect("a telemetry for web");
    assert_eq!(web.name, TELEMETRY_NAME);
    assert_eq!(
        web.tracing,
        Some(telemetry::Tracing {
            collector: "http://otel-collector.observability:4317".into(),
            sampling: Some(10.0),
            disable_client: true,
            disable_server: false,
        })
    );
    let log = |enabled: bool, filter: &str| {
        Some(telemetry::AccessLog {
            enabled,
            filter: filter.into(),
        })
    };
    assert_eq!(web.client_access_log, log(false, ""));
    assert_eq!(web.server_access_log, log(true, "response.code >= 500"));

    // A pod the workload object does not select gets the namespace's layering only.
    let (other, _) = config_of(&manifests, &[("app", "reviews")]);
    let other = other.expect("a telemetry for reviews");
    let tracing = other.tracing.expect("tracing");
    assert!(!tracing.disable_client && !tracing.disable_server);
    assert_eq!(other.server_access_log, log(true, ""));

    // The root namespace's object alone applies to every namespace.
    let (mesh_only, _) = config_of(&format!("{SHOP}{mesh_default}"), &[]);
    let tracing = mesh_only.expect("mesh-wide").tracing.expect("tracing");
    assert_eq!(tracing.sampling, Some(1.0));
}

#[test]
fn the_oldest_object_of_a_level_applies_and_views_follow_selectors() {
    let manifests = [
        SHOP,
        &telemetry(
            "a-first",
            "shop",
            "{ selector: { matchLabels: { app: web } }, tracing: [{ providers: [{ name: backup }] }] }",
        ),
        &telemetry(
            "b-second",
            "shop",
            "{ selector: { matchLabels: { app: web } }, tracing: [{ providers: [{ name: otel }] }] }",
        ),
    ]
    .concat();
    let (web, _) = config_of(&manifests, &[("app", "web")]);
    let collector = web.expect("web").tracing.expect("tracing").collector;
    assert_eq!(collector, "http://backup.observability:4317");
    let translator = Translator::with_settings(&store(&manifests), &settings());
    let view = |labels: &[(&str, &str)]| translator.view_of(&client("shop", labels));
    assert_ne!(view(&[("app", "web")]), view(&[("app", "reviews")]));
}

#[test]
fn mistakes_are_reported_and_bad_objects_left_out() {
    let manifests = [
        SHOP,
        &telemetry(
            "bad-filter",
            "shop",
            "{ accessLogging: [{ filter: { expression: 'response.nope >= 1' } }] }",
        ),
        &telemetry(
            "bad-sampling",
            "shop",
            "{ selector: { matchLabels: { app: web } }, tracing: [{ randomSamplingPercentage: 140 }] }",
        ),
        &telemetry(
            "bad-mode",
            "shop",
            "{ selector: { matchLabels: { app: web } }, tracing: [{ match: { mode: BOTH } }] }",
        ),
        &telemetry(
            "unknown-names",
            "mesh-system",
            "{ tracing: [{ providers: [{ name: zipkin }], randomSamplingPercentage: 5 }], \
             accessLogging: [{ providers: [{ name: otel-als }] }], metrics: [{ providers: [{ name: prometheus }] }] }",
        ),
    ]
    .concat();
    let (web, problems) = config_of(&manifests, &[("app", "web")]);
    let errors: Vec<String> = (problems.iter())
        .filter(|p| p.is_error())
        .map(ToString::to_string)
        .collect();
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("bad-filter") && e.contains("response.nope"))
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("bad-sampling") && e.contains("140"))
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("bad-mode") && e.contains("BOTH"))
    );
    let warnings: Vec<String> = (problems.iter())
        .filter(|p| !p.is_error())
        .map(ToString::to_string)
        .collect();
    for expected in ["zipkin", "otel-als", "metric settings"] {
        assert!(
            warnings.iter().any(|w| w.contains(expected)),
            "no warning about {expected}: {warnings:#?}"
        );
    }
    // Only the mesh-wide object is valid: it has tracing with no known collector, and its
    // only access log entry was ignored.
    let web = web.expect("mesh-wide telemetry");
    assert_eq!(web.tracing.expect("tracing").collector, "");
    assert_eq!(web.server_access_log, None);
}

#[test]
fn provider_specs_are_checked() {
    assert!(TracingProviders::parse(&["otel".to_owned()]).is_err());
    assert!(TracingProviders::parse(&["=host:1".to_owned()]).is_err());
    let twice = ["a=h:1".to_owned(), "a=h:2".to_owned()];
    assert!(
        TracingProviders::parse(&twice)
            .unwrap_err()
            .contains("twice")
    );
}
