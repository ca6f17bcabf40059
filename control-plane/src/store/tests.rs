use k8s_openapi::{
    api::core::v1::{Namespace, Service, ServiceSpec},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};

use super::*;
use crate::istio::{VirtualService, virtual_service::VirtualServiceSpec};

fn service(namespace: &str, name: &str, ip: &str) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some(ip.to_owned()),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn virtual_service(namespace: &str, name: &str) -> VirtualService {
    let mut vs = VirtualService::new(name, VirtualServiceSpec::default());
    vs.metadata.namespace = Some(namespace.to_owned());
    vs
}

#[test]
fn apply_updates_and_reports_only_real_changes() {
    let mut store = Store::new();
    assert!(store.apply(service("shop", "web", "10.96.0.20")));
    assert!(!store.apply(service("shop", "web", "10.96.0.20")));
    assert_eq!(store.revision(), 1);
    assert!(store.apply(service("shop", "web", "10.96.0.21")));
    let web = store.get::<Service>("shop", "web").unwrap();
    assert_eq!(
        web.spec.as_ref().unwrap().cluster_ip.as_deref(),
        Some("10.96.0.21")
    );
    assert_eq!(store.count(Kind::Service), 1);
    assert_eq!(store.revision(), 2);
}

#[test]
fn delete_removes_one_object_of_one_kind() {
    let mut store = Store::new();
    store.apply(service("shop", "web", "10.96.0.20"));
    store.apply(virtual_service("shop", "web"));
    assert!(!store.delete(Kind::Service, "shop", "other"));
    assert!(store.delete(Kind::Service, "shop", "web"));
    assert!(store.get::<Service>("shop", "web").is_none());
    assert!(store.get::<VirtualService>("shop", "web").is_some());
    assert_eq!(store.len(), 1);
}

#[test]
fn snapshots_do_not_see_later_changes() {
    let mut store = Store::new();
    store.apply(service("shop", "web", "10.96.0.20"));
    let snapshot = store.clone();
    store.apply(service("shop", "api", "10.96.0.30"));
    store.delete(Kind::Service, "shop", "web");
    assert_eq!(snapshot.count(Kind::Service), 1);
    assert!(snapshot.get::<Service>("shop", "web").is_some());
    assert!(store.get::<Service>("shop", "web").is_none());
}

#[test]
fn replace_all_is_a_relist_and_rejects_other_kinds_whole() {
    let mut store = Store::new();
    store.apply(service("shop", "old", "10.96.0.9"));
    store.apply(virtual_service("shop", "keep"));
    let fresh = vec![
        Object::from(service("shop", "web", "10.96.0.20")),
        Object::from(service("mail", "smtp", "10.96.0.25")),
    ];
    assert!(store.replace_all(Kind::Service, fresh.clone()).unwrap());
    assert!(!store.replace_all(Kind::Service, fresh).unwrap());
    assert!(store.get::<Service>("shop", "old").is_none());
    assert_eq!(store.count(Kind::Service), 2);
    assert_eq!(store.count(Kind::VirtualService), 1);

    let mixed = vec![
        Object::from(service("shop", "x", "10.96.0.40")),
        Object::from(virtual_service("shop", "y")),
    ];
    let err = store.replace_all(Kind::Service, mixed).unwrap_err();
    assert_eq!(
        err.to_string(),
        "a re-list of Service objects contains VirtualService shop/y; nothing was replaced"
    );
    assert!(store.get::<Service>("shop", "x").is_none());
}

#[test]
fn typed_replace_and_listing_by_namespace() {
    let mut store = Store::new();
    store.replace([
        service("a", "one", "10.0.0.1"),
        service("b", "two", "10.0.0.2"),
        service("b", "three", "10.0.0.3"),
        service("c", "four", "10.0.0.4"),
    ]);
    let names: Vec<_> = store
        .list_in::<Service>("b")
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["three", "two"]);
    assert_eq!(store.list::<Service>().count(), 4);
    assert_eq!(store.list_in::<Service>("z").count(), 0);
}

#[test]
fn cluster_scoped_objects_have_an_empty_namespace() {
    let mut store = Store::new();
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some("shop".to_owned()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    let object = Object::from(ns);
    assert_eq!(object.object_ref().to_string(), "Namespace shop");
    store.apply(object);
    assert!(store.get::<Namespace>("", "shop").is_some());
}
