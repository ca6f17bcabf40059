//! Retries and timeouts: VirtualService `retries` and HTTPRoute `retry` and `timeouts` as the
//! proxy's retry policy and route timeout, and absurd values refused by field.

use mesh_proto::config::v1::route;

use super::{
    Translation,
    tests::{SHOP, client, routes_of, store},
    translate,
};

#[test]
fn retries_translate_conditions_and_bare_status_codes_and_refuse_absurd_counts() {
    let yaml = format!(
        "{SHOP}{}",
        r#"
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: web, namespace: shop }
spec:
  hosts: [web]
  http:
  - match: [{ uri: { prefix: /off } }]
    route: [{ destination: { host: web } }]
    retries: { attempts: 0 }
  - route: [{ destination: { host: web } }]
    retries: { attempts: 3, perTryTimeout: 2s, retryOn: "gateway-error,409,reset", backoff: 50ms }
"#
    );
    let translation = translate(&store(&yaml), &client("shop", &[]));
    assert!(
        translation.problems.is_empty(),
        "{:?}",
        translation.problems
    );
    let retries = |i: usize| match &routes_of(&translation.config, "web", 80)[i].action {
        Some(route::Action::Route(action)) => action.retries.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        retries(0).unwrap().attempts,
        0,
        "attempts 0 turns retries off"
    );
    let policy = retries(1).unwrap();
    assert_eq!(policy.attempts, 3);
    assert_eq!(
        policy.retry_on,
        ["gateway-error", "reset", "retriable-status-codes"]
    );
    assert_eq!(policy.retriable_status_codes, [409]);
    assert_eq!(policy.per_try_timeout.unwrap().seconds, 2);
    assert_eq!(policy.backoff.unwrap().nanos, 50_000_000);

    for (retries, field, message) in [
        (
            "{ attempts: 10000 }",
            "attempts",
            "10000 attempts is more than 100",
        ),
        (
            "{ attempts: 2, retryOn: \"5xx,sometimes\" }",
            "retryOn",
            "retry condition \"sometimes\" is not supported by mesh",
        ),
        (
            "{ attempts: 2, retryOn: \"700\" }",
            "retryOn",
            "700 is not an HTTP status",
        ),
        (
            "{ attempts: 2, perTryTimeout: 0s }",
            "perTryTimeout",
            "0s is not a usable value",
        ),
    ] {
        let yaml = format!(
            "{SHOP}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{ name: web, namespace: shop }}\nspec:\n  hosts: [web]\n  http:\n  - route: [{{ destination: {{ host: web }} }}]\n    retries: {retries}\n"
        );
        let translation = translate(&store(&yaml), &client("shop", &[]));
        let error = translation.problems.iter().find(|p| p.is_error());
        let error = error.unwrap_or_else(|| panic!("{retries}: no error"));
        assert_eq!(error.field, format!("spec.http[0].retries.{field}"));
        assert_eq!(error.message, message);
    }
}

#[test]
fn a_backend_request_timeout_becomes_a_per_try_timeout_under_the_default_retries() {
    let yaml = format!(
        "{SHOP}{}",
        r#"
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: web, namespace: shop }
spec:
  parentRefs: [{ group: "", kind: Service, name: web, port: 80 }]
  rules: [{ backendRefs: [{ name: web, port: 80 }], timeouts: { request: 2s, backendRequest: 500ms } }]
"#
    );
    let translation = translate(&store(&yaml), &client("shop", &[]));
    assert!(
        translation.problems.is_empty(),
        "{:?}",
        translation.problems
    );
    let Some(route::Action::Route(action)) = &routes_of(&translation.config, "web", 80)[0].action
    else {
        panic!("a forwarding route")
    };
    assert_eq!(action.timeout.unwrap().seconds, 2);
    let retries = action.retries.as_ref().unwrap();
    assert_eq!(retries.per_try_timeout.unwrap().nanos, 500_000_000);
    assert_eq!(retries.attempts, 2);
    assert_eq!(
        retries.retry_on,
        [
            "connect-failure",
            "refused-stream",
            "unavailable",
            "cancelled"
        ]
    );
}

/// The retry policy of the one HTTPRoute rule `rule` (YAML flow mapping fields) on `web:80`.
fn http_route_retries(rule: &str) -> (Translation, Option<mesh_proto::config::v1::RetryPolicy>) {
    let yaml = format!(
        "{SHOP}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{ name: web, namespace: shop }}\nspec:\n  parentRefs: [{{ group: \"\", kind: Service, name: web, port: 80 }}]\n  rules: [{{ backendRefs: [{{ name: web, port: 80 }}], {rule} }}]\n"
    );
    let translation = translate(&store(&yaml), &client("shop", &[]));
    let routes = routes_of(&translation.config, "web", 80);
    let retries = match routes.first().and_then(|r| r.action.as_ref()) {
        Some(route::Action::Route(action)) => action.retries.clone(),
        _ => None,
    };
    (translation, retries)
}

#[test]
fn an_http_route_retry_retries_connection_failures_and_its_codes_after_a_minimum_backoff() {
    let (translation, retries) = http_route_retries(
        "retry: { attempts: 3, codes: [500, 502], backoff: 100ms }, timeouts: { backendRequest: 200ms }",
    );
    assert!(
        translation.problems.is_empty(),
        "{:?}",
        translation.problems
    );
    let retries = retries.expect("a retry policy");
    assert_eq!(retries.attempts, 3);
    assert_eq!(
        retries.retry_on,
        [
            "connect-failure",
            "refused-stream",
            "reset",
            "retriable-status-codes"
        ]
    );
    assert_eq!(retries.retriable_status_codes, [500, 502]);
    assert_eq!(retries.backoff.unwrap().nanos, 100_000_000);
    assert!(retries.backoff_is_minimum);
    assert_eq!(retries.per_try_timeout.unwrap().nanos, 200_000_000);

    let (_, retries) = http_route_retries("retry: {}");
    let retries = retries.expect("a retry policy");
    assert_eq!(retries.attempts, 2, "Istio's count when attempts is unset");
    assert!(retries.retriable_status_codes.is_empty());
    assert!(!retries.backoff_is_minimum);
}

#[test]
fn an_http_route_without_retries_bounds_its_one_try_by_the_backend_request_timeout() {
    let yaml_rule = "retry: { attempts: 0 }, timeouts: { request: 2s, backendRequest: 300ms }";
    let (translation, retries) = http_route_retries(yaml_rule);
    assert!(
        translation.problems.is_empty(),
        "{:?}",
        translation.problems
    );
    assert_eq!(retries.expect("retries off").attempts, 0);
    let Some(route::Action::Route(action)) = &routes_of(&translation.config, "web", 80)[0].action
    else {
        panic!("a forwarding route")
    };
    let timeout = action.timeout.unwrap();
    assert_eq!((timeout.seconds, timeout.nanos), (0, 300_000_000));
}

#[test]
fn session_persistence_is_a_warning_and_the_route_still_forwards() {
    let (translation, _) = http_route_retries("sessionPersistence: { sessionName: s }");
    let fields: Vec<_> = translation
        .problems
        .iter()
        .map(|p| p.field.as_str())
        .collect();
    assert_eq!(fields, ["spec.rules[0].sessionPersistence"]);
    assert!(!translation.problems[0].is_error());
    let route = &routes_of(&translation.config, "web", 80)[0];
    assert!(matches!(route.action, Some(route::Action::Route(_))));
}

#[test]
fn absurd_http_route_retries_are_errors_naming_the_field() {
    for (retry, field, message) in [
        (
            "{ attempts: 10000 }",
            "attempts",
            "10000 is not a usable number of retries",
        ),
        (
            "{ attempts: -1 }",
            "attempts",
            "-1 is not a usable number of retries",
        ),
        ("{ codes: [200] }", "codes[0]", "200 is not an error status"),
        ("{ backoff: soon }", "backoff", ""),
    ] {
        let (translation, _) = http_route_retries(&format!("retry: {retry}"));
        let error = translation.problems.iter().find(|p| p.is_error());
        let error = error.unwrap_or_else(|| panic!("{retry}: no error"));
        assert_eq!(error.field, format!("spec.rules[0].retry.{field}"));
        assert!(error.message.contains(message), "{}", error.message);
    }
}
