//! Gateway API backends weighted 0 are unused: a missing Service or a wrong port behind one is
//! no error, it is never a destination, and the rule goes on with its other backends. A rule
//! whose backends are all weighted 0 answers 500; a negative weight stays an error.

use mesh_proto::config::v1::route;

use super::tests::{SHOP, client, clusters_of, routes_of, store};
use super::*;

/// A route of `kind` from the Service web (port 80) to `backends` (a flow sequence).
fn route_to(kind: &str, backends: &str) -> String {
    format!(
        "{SHOP}---\napiVersion: gateway.networking.k8s.io/v1\nkind: {kind}\n\
         metadata: {{ name: web, namespace: shop }}\n\
         spec:\n  parentRefs: [{{ group: \"\", kind: Service, name: web, port: 80 }}]\n  \
         rules: [{{ backendRefs: {backends} }}]\n"
    )
}

/// Unused references next to a used one: a Service that does not exist and a port web lacks.
const WITH_UNUSED: &str = "[{ name: web, port: 80, weight: 1 }, \
    { name: retired, port: 80, weight: 0 }, { name: web, port: 8081, weight: 0 }]";

#[test]
fn backends_weighted_0_are_skipped_without_an_error_in_http_and_grpc_routes() {
    for kind in ["HTTPRoute", "GRPCRoute"] {
        let translation = translate(&store(&route_to(kind, WITH_UNUSED)), &client("shop", &[]));
        assert!(
            translation.problems.is_empty(),
            "{kind}: {:#?}",
            translation.problems
        );
        let routes = routes_of(&translation.config, "web", 80);
        assert_eq!(
            clusters_of(&routes[0]),
            [("outbound|80||web.shop.svc.cluster.local".to_owned(), 1)],
            "{kind}"
        );
    }
}

#[test]
fn a_rule_whose_backends_are_all_weighted_0_answers_500() {
    let backends = "[{ name: retired, port: 80, weight: 0 }, { name: web, port: 80, weight: 0 }]";
    let translation = translate(
        &store(&route_to("HTTPRoute", backends)),
        &client("shop", &[]),
    );
    let problems: Vec<_> = translation
        .problems
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        !translation.problems.iter().any(Problem::is_error),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("no backend can take traffic")),
        "{problems:#?}"
    );
    let routes = routes_of(&translation.config, "web", 80);
    let Some(route::Action::DirectResponse(answer)) = &routes[0].action else {
        panic!("a direct answer: {:?}", routes[0].action)
    };
    assert_eq!(answer.status, 500);
}

#[test]
fn a_negative_weight_is_still_an_error() {
    let backends = "[{ name: web, port: 80 }, { name: retired, port: 80, weight: -1 }]";
    let translation = translate(
        &store(&route_to("HTTPRoute", backends)),
        &client("shop", &[]),
    );
    let errors: Vec<_> = (translation.problems.iter())
        .filter(|p| p.is_error())
        .map(ToString::to_string)
        .collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].contains("weight -1 is negative"), "{errors:#?}");
}
