//! Status conditions from real translations of small stores.

use gateway_api::{experimental::httproutes::HttpRoute, gateways::Gateway};
use serde_json::Value;

use super::*;
use crate::{folder::parse_manifests, translate::Translator};

const MESH: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: mesh }
spec: { controllerName: mesh.io/gateway-controller }
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: other }
spec: { controllerName: example.com/other }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: edge, namespace: shop, generation: 3 }
spec:
  gatewayClassName: mesh
  listeners: [{ name: http, port: 80, protocol: HTTP }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: theirs, namespace: shop }
spec:
  gatewayClassName: other
  listeners: [{ name: http, port: 80, protocol: HTTP }]
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  clusterIP: 10.96.0.20
  selector: { app: web }
  ports: [{ name: http, port: 80, targetPort: 8080 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: good, namespace: shop, generation: 2 }
spec:
  parentRefs: [{ group: "", kind: Service, name: web, port: 80 }]
  rules: [{ backendRefs: [{ name: web, port: 80 }] }]
status:
  parents:
  - parentRef: { group: "", kind: Service, name: web, port: 80 }
    controllerName: example.com/other
    conditions:
    - { type: Accepted, status: "True", reason: Accepted, message: theirs, lastTransitionTime: "2026-01-01T00:00:00Z" }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: missing-backend, namespace: shop }
spec:
  parentRefs: [{ group: "", kind: Service, name: web, port: 80 }]
  rules: [{ backendRefs: [{ name: nosuch, port: 80 }] }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: missing-parent, namespace: shop }
spec:
  parentRefs: [{ group: "", kind: Service, name: ghost, port: 80 }]
  rules: [{ backendRefs: [{ name: web, port: 80 }] }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: at-the-edge, namespace: shop }
spec:
  parentRefs: [{ name: edge }, { name: theirs }]
  rules: [{ backendRefs: [{ name: web, port: 80 }] }]
"#;

pub(super) const NOW: &str = "2026-11-23T12:00:00Z";
const LATER: &str = "2026-11-23T13:00:00Z";

pub(super) fn store(yaml: &str) -> Store {
    let parsed = parse_manifests(yaml, "test.yaml");
    let errors: Vec<_> = parsed.problems.iter().filter(|p| p.is_error()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let mut store = Store::new();
    for (object, _) in parsed.objects {
        store.apply(object);
    }
    store
}

pub(super) fn patches(store: &Store, now: &str) -> Vec<StatusPatch> {
    let translator = Translator::new(store);
    status_patches(
        store,
        translator.problems(),
        translator.listener_reports(),
        now,
    )
}

pub(super) fn patch_of<'a>(
    patches: &'a [StatusPatch],
    kind: Kind,
    name: &str,
) -> Option<&'a Value> {
    patches
        .iter()
        .find(|p| p.object.kind == kind && p.object.name == name)
        .map(|p| &p.body)
}

/// Our entry for the route's parent `index` as (type, status, reason) triples.
fn our_conditions(body: &Value, parent_name: &str) -> Vec<(String, String, String)> {
    let parents = body["status"]["parents"].as_array().expect("parents");
    let ours = parents
        .iter()
        .find(|p| p["controllerName"] == CONTROLLER_NAME && p["parentRef"]["name"] == parent_name)
        .expect("mesh's entry for the parent");
    ours["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .map(|c| {
            let field = |name: &str| c[name].as_str().unwrap_or_default().to_owned();
            (field("type"), field("status"), field("reason"))
        })
        .collect()
}

fn triple(kind: &str, status: &str, reason: &str) -> (String, String, String) {
    (kind.to_owned(), status.to_owned(), reason.to_owned())
}

/// The store after the API server applied every patch (merging `status`).
fn applied(store: &Store, patches: &[StatusPatch]) -> Store {
    let mut next = store.clone();
    for patch in patches {
        let object = store.object(&patch.object).expect("patched object exists");
        let mut json = serde_json::to_value(&object).expect("serializes");
        json["status"] = patch.body["status"].clone();
        match patch.object.kind {
            Kind::HttpRoute => {
                next.apply(serde_json::from_value::<HttpRoute>(json).expect("a route"));
            }
            Kind::Gateway => {
                next.apply(serde_json::from_value::<Gateway>(json).expect("a gateway"));
            }
            Kind::GatewayClass => {
                next.apply(serde_json::from_value::<GatewayClass>(json).expect("a class"));
            }
            other => panic!("unexpected status patch for {other}"),
        }
    }
    next
}

#[test]
fn routes_get_accepted_and_resolved_refs_per_mesh_parent() {
    let store = store(MESH);
    let patches = patches(&store, NOW);

    let good = patch_of(&patches, Kind::HttpRoute, "good").expect("good is patched");
    assert_eq!(
        our_conditions(good, "web"),
        [
            triple("Accepted", "True", "Accepted"),
            triple("ResolvedRefs", "True", "ResolvedRefs")
        ]
    );
    let parents = good["status"]["parents"].as_array().expect("parents");
    assert!(
        parents
            .iter()
            .any(|p| p["controllerName"] == "example.com/other"),
        "another controller's entry is kept: {parents:#?}"
    );
    let accepted = &parents.last().expect("ours")["conditions"][0];
    assert_eq!(accepted["observedGeneration"], 2);
    assert_eq!(accepted["lastTransitionTime"], NOW);

    let missing_backend = patch_of(&patches, Kind::HttpRoute, "missing-backend").expect("patched");
    assert_eq!(
        our_conditions(missing_backend, "web")[1],
        triple("ResolvedRefs", "False", "BackendNotFound")
    );
    let missing_parent = patch_of(&patches, Kind::HttpRoute, "missing-parent").expect("patched");
    assert_eq!(
        our_conditions(missing_parent, "ghost")[0],
        triple("Accepted", "False", "NoMatchingParent")
    );
    let message = missing_parent["status"]["parents"][0]["conditions"][0]["message"]
        .as_str()
        .expect("a message");
    assert!(message.contains("ghost"), "{message}");

    let edge = patch_of(&patches, Kind::HttpRoute, "at-the-edge").expect("patched");
    let parents = edge["status"]["parents"].as_array().expect("parents");
    assert_eq!(
        parents.len(),
        1,
        "only the mesh Gateway's entry: {parents:#?}"
    );
    assert_eq!(parents[0]["parentRef"]["name"], "edge");
}

#[test]
fn mesh_gateways_and_classes_are_accepted_and_others_left_alone() {
    let store = store(MESH);
    let patches = patches(&store, NOW);
    let edge = patch_of(&patches, Kind::Gateway, "edge").expect("edge is patched");
    assert_eq!(edge["status"]["conditions"][0]["type"], "Accepted");
    assert_eq!(edge["status"]["conditions"][0]["status"], "True");
    assert_eq!(edge["status"]["conditions"][0]["observedGeneration"], 3);
    assert!(patch_of(&patches, Kind::Gateway, "theirs").is_none());
    assert!(patch_of(&patches, Kind::GatewayClass, "mesh").is_some());
    assert!(patch_of(&patches, Kind::GatewayClass, "other").is_none());
}

/// `(type, status, reason)` of a Gateway's conditions in its patch.
fn gateway_conditions(patch: &Value) -> Vec<(String, String, String)> {
    (patch["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten())
    .map(|c| {
        let field = |f: &str| c[f].as_str().unwrap_or_default();
        triple(field("type"), field("status"), field("reason"))
    })
    .collect()
}

#[test]
fn a_mesh_gateway_is_programmed_once_its_service_has_an_address() {
    let pending = patches(&store(MESH), NOW);
    let edge = patch_of(&pending, Kind::Gateway, "edge").expect("edge");
    assert!(gateway_conditions(edge).contains(&triple("Programmed", "False", "Pending")));
    assert_eq!(edge["status"]["addresses"], serde_json::json!([]));

    let service = |spec: &str, status: &str| {
        format!(
            "{MESH}---\napiVersion: v1\nkind: Service\nmetadata: {{ name: edge-mesh, namespace: shop }}\nspec: {spec}\nstatus: {status}\n"
        )
    };
    let waiting = store(&service(
        "{ type: LoadBalancer, clusterIP: 10.96.0.40, ports: [{ port: 80 }] }",
        "{}",
    ));
    let edge = patch_of(&patches(&waiting, NOW), Kind::Gateway, "edge")
        .cloned()
        .expect("edge");
    assert!(gateway_conditions(&edge).contains(&triple(
        "Programmed",
        "False",
        "AddressNotAssigned"
    )));

    let balanced = store(&service(
        "{ type: LoadBalancer, clusterIP: 10.96.0.40, ports: [{ port: 80 }] }",
        "{ loadBalancer: { ingress: [{ ip: 203.0.113.7 }, { hostname: lb.example.com }] } }",
    ));
    let edge = patch_of(&patches(&balanced, NOW), Kind::Gateway, "edge")
        .cloned()
        .expect("edge");
    assert!(gateway_conditions(&edge).contains(&triple("Programmed", "True", "Programmed")));
    assert_eq!(
        edge["status"]["addresses"],
        serde_json::json!([
            { "type": "IPAddress", "value": "203.0.113.7" },
            { "type": "Hostname", "value": "lb.example.com" },
        ])
    );

    let node_port = store(&service(
        "{ type: NodePort, clusterIP: 10.96.0.40, ports: [{ port: 80 }] }",
        "{}",
    ));
    let edge = patch_of(&patches(&node_port, NOW), Kind::Gateway, "edge")
        .cloned()
        .expect("edge");
    assert_eq!(
        edge["status"]["addresses"],
        serde_json::json!([{ "type": "IPAddress", "value": "10.96.0.40" }])
    );
}

#[test]
fn written_status_is_a_fixed_point_and_keeps_transition_times() {
    let first = store(MESH);
    let written = applied(&first, &patches(&first, NOW));
    assert!(
        patches(&written, LATER).is_empty(),
        "status already written needs no patch: {:#?}",
        patches(&written, LATER)
    );

    // The missing backend appears: ResolvedRefs flips, Accepted keeps its time.
    let fixed = format!(
        "{MESH}---\napiVersion: v1\nkind: Service\nmetadata: {{ name: nosuch, namespace: shop }}\nspec: {{ clusterIP: 10.96.0.21, ports: [{{ port: 80 }}] }}\n"
    );
    let mut fixed_store = self::store(&fixed);
    for kind in [Kind::HttpRoute, Kind::Gateway, Kind::GatewayClass] {
        for object in written.objects(kind) {
            fixed_store.apply(object);
        }
    }
    let patches = patches(&fixed_store, LATER);
    assert_eq!(patches.len(), 1, "{patches:#?}");
    let body = &patches[0].body;
    let conditions = &body["status"]["parents"][0]["conditions"];
    assert_eq!(
        conditions[0]["lastTransitionTime"], NOW,
        "Accepted did not change"
    );
    assert_eq!(conditions[1]["status"], "True");
    assert_eq!(
        conditions[1]["lastTransitionTime"], LATER,
        "ResolvedRefs flipped"
    );
}

#[test]
fn unresolved_backends_say_why_in_the_reason() {
    let routes = r#"
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: across, namespace: shop }
spec:
  parentRefs: [{ group: "", kind: Service, name: web, port: 80 }]
  rules: [{ backendRefs: [{ name: api, namespace: backend, port: 80 }] }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: odd-kind, namespace: shop }
spec:
  parentRefs: [{ group: "", kind: Service, name: web, port: 80 }]
  rules: [{ backendRefs: [{ group: example.com, kind: Bucket, name: b }] }]
"#;
    let store = store(&format!("{MESH}{routes}"));
    let patches = patches(&store, NOW);
    for (route, reason) in [
        ("across", "RefNotPermitted"),
        ("odd-kind", "InvalidKind"),
        ("missing-backend", "BackendNotFound"),
    ] {
        let body = patch_of(&patches, Kind::HttpRoute, route).expect("patched");
        assert!(
            our_conditions(body, "web").contains(&triple("ResolvedRefs", "False", reason)),
            "{route}: {:?}",
            our_conditions(body, "web")
        );
    }
}
