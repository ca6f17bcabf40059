use super::*;

#[test]
fn documents_become_typed_objects_with_their_source() {
    let yaml = r#"
apiVersion: v1
kind: Service
metadata: { name: web }
spec: { ports: [{ port: 80 }] }
---
# a comment-only document
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: { name: web, namespace: shop }
spec: { hosts: [web], http: [{ route: [{ destination: { host: web } }] }] }
---
apiVersion: v1
kind: Namespace
metadata: { name: shop, namespace: ignored }
"#;
    let parsed = parse_manifests(yaml, "shop.yaml");
    assert!(parsed.problems.is_empty(), "{:#?}", parsed.problems);
    let refs: Vec<_> = parsed
        .objects
        .iter()
        .map(|(o, at)| (o.object_ref().to_string(), at.as_str()))
        .collect();
    assert_eq!(
        refs,
        [
            ("Service default/web".to_owned(), "shop.yaml (document 1)"),
            (
                "VirtualService shop/web".to_owned(),
                "shop.yaml (document 3)"
            ),
            ("Namespace shop".to_owned(), "shop.yaml (document 4)"),
        ]
    );
}

#[test]
fn unknown_kinds_are_noted_and_broken_documents_reported() {
    let yaml = r#"
apiVersion: v1
kind: ServiceAccount
metadata: { name: web }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: web }
spec: { host: web, subsets: "not a list" }
---
kind: Service
metadata: { name: nothing }
"#;
    let parsed = parse_manifests(yaml, "x.yaml");
    assert!(parsed.objects.is_empty());
    let messages: Vec<_> = parsed.problems.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), 3, "{messages:#?}");
    assert!(
        messages[0]
            .starts_with("info: (x.yaml (document 1)): ServiceAccount (v1) is not used by mesh")
    );
    assert!(
        messages[1].starts_with("error: DestinationRule default/web (x.yaml (document 2)): does not read as a DestinationRule"),
        "{}",
        messages[1]
    );
    assert!(
        messages[2].contains("needs `apiVersion` and `kind`"),
        "{}",
        messages[2]
    );
}

#[test]
fn misspelt_and_unimplemented_fields_are_reported_with_their_path() {
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: web, namespace: shop, annotations: { a: b } }
spec:
  hosts: [web]
  http:
  - timout: 5s
    route: [{ destination: { host: web }, wieght: 10 }]
    headers: {}
status: { whatever: 1 }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: r, namespace: shop }
spec:
  parentRefs: [{ kind: Service, group: "", name: web }]
  rules: [{ retries: { attempts: 2 } }]
"#;
    let parsed = parse_manifests(yaml, "x.yaml");
    assert_eq!(parsed.objects.len(), 2);
    let fields: Vec<_> = parsed
        .problems
        .iter()
        .map(|p| (p.severity, p.field.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            (Severity::Warning, "spec.http[0].route[0].wieght"),
            (Severity::Warning, "spec.http[0].timout"),
            (Severity::Warning, "spec.rules[0].retries"),
        ]
    );
}

#[test]
fn invalid_yaml_is_an_error_naming_the_file() {
    let parsed = parse_manifests("a: [1, 2\n", "bad.yaml");
    assert_eq!(parsed.problems.len(), 1);
    assert!(parsed.problems[0].is_error());
    assert_eq!(
        parsed.problems[0].source.as_deref(),
        Some("bad.yaml (document 1)")
    );
}

#[test]
fn a_list_is_read_item_by_item() {
    let yaml = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: { name: web, namespace: shop }
  spec: { ports: [{ port: 80 }] }
- apiVersion: networking.istio.io/v1
  kind: VirtualService
  metadata: { name: web, namespace: shop }
  spec: { hosts: [web] }
"#;
    let parsed = parse_manifests(yaml, "list.yaml");
    let read: Vec<(String, &str)> = parsed
        .objects
        .iter()
        .map(|(object, at)| (object.object_ref().to_string(), at.as_str()))
        .collect();
    assert_eq!(
        read,
        [
            (
                "Service shop/web".to_owned(),
                "list.yaml (document 1, item 1)"
            ),
            (
                "VirtualService shop/web".to_owned(),
                "list.yaml (document 1, item 2)"
            ),
        ]
    );
}
