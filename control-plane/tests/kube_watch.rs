//! The Kubernetes source against a fake API server speaking the real list/watch protocol over
//! HTTP: the real kube-rs client, watcher and reflector run unchanged.

#[path = "kube_watch/feedback.rs"]
mod feedback;
#[path = "kube_watch/gateway_workload.rs"]
mod gateway_workload;

use gateway_api::experimental::httproutes::HttpRoute;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Resource;
use kube::runtime::watcher;
use mesh_control_plane::istio::VirtualService;
use mesh_control_plane::kube_source::KubeSource;
use mesh_control_plane::store::{Kind, ObjectRef, Store, Stored};
use mesh_test_support::fake_apiserver::{FakeApiServer, GoneForm, RecordedRequest};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::watch;

// === fixtures ===

fn service(namespace: &str, name: &str, port: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": port, "targetPort": 8080}]}
    })
}

fn endpoint_slice(namespace: &str, service: &str, ip: &str) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{service}-abc"), "namespace": namespace,
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
        "ports": [{"name": "http", "port": 8080}]
    })
}

fn pod(namespace: &str, name: &str, ip: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "web"}},
        "spec": {"serviceAccountName": "web", "containers": [{"name": "app", "image": "web:1"}]},
        "status": {"podIP": ip, "phase": "Running"}
    })
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
           "metadata": {"name": name, "labels": {"mesh-injection": "enabled"}}})
}

// === harness ===

/// A fake API server, the source watching it, and the store the source feeds.
struct Harness {
    server: FakeApiServer,
    store: watch::Receiver<Store>,
    source: KubeSource,
}

impl Harness {
    /// Starts the source against `server` and waits until every kind is listed.
    async fn start(server: FakeApiServer, config: watcher::Config) -> Self {
        let (sink, store) = watch::channel(Store::new());
        let source = KubeSource::spawn(server.client(), sink, config);
        within("every kind listed", source.wait_synced()).await;
        Self {
            server,
            store,
            source,
        }
    }

    /// Waits until the store satisfies `condition`.
    async fn until(&self, what: &str, condition: impl Fn(&Store) -> bool) {
        let mut store = self.store.clone();
        within(what, store.wait_for(|store| condition(store)))
            .await
            .expect("the source runs");
    }

    /// Waits until the store's objects of `T` are exactly the server's, version for version.
    async fn until_mirrors<T: Stored + Resource<DynamicType = ()>>(&self) {
        let api_version = T::api_version(&()).into_owned();
        let kind = T::kind(&()).into_owned();
        let expected: Vec<(String, String, String)> = self
            .server
            .objects(&api_version, &kind)
            .iter()
            .map(|o| {
                let field = |f: &str| o["metadata"][f].as_str().unwrap_or_default().to_string();
                (field("namespace"), field("name"), field("resourceVersion"))
            })
            .collect();
        self.until(
            &format!("the store mirrors the server's {kind}s"),
            |store| {
                let actual: Vec<(String, String, String)> = store
                    .list::<T>()
                    .map(|o| {
                        let meta = o.meta();
                        let field = |f: &Option<String>| f.clone().unwrap_or_default();
                        (
                            field(&meta.namespace),
                            field(&meta.name),
                            field(&meta.resource_version),
                        )
                    })
                    .collect();
                actual == expected
            },
        )
        .await;
    }

    fn service(&self, namespace: &str, name: &str) -> Option<i32> {
        let store = self.store.borrow();
        let service = store.get::<Service>(namespace, name)?;
        Some(service.spec.as_ref()?.ports.as_ref()?[0].port)
    }
}

async fn within<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(15), future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn is_watch_of(path: &str) -> impl Fn(&RecordedRequest) -> bool + '_ {
    move |request| request.is_watch() && request.path == path
}

fn is_list_of(path: &str) -> impl Fn(&RecordedRequest) -> bool + '_ {
    move |request| !request.is_watch() && request.path == path
}

// === tests ===

#[tokio::test]
async fn the_initial_list_fills_the_store_and_changes_arrive_while_watching() {
    let server = FakeApiServer::start().await;
    server.apply(namespace("shop"));
    server.apply(service("shop", "web", json!(80)));
    server.apply(endpoint_slice("shop", "web", "10.244.0.7"));
    server.apply(pod("shop", "web-1", "10.244.0.7"));
    let harness = Harness::start(server, watcher::Config::default()).await;

    {
        let store = harness.store.borrow();
        assert!(store.get::<Namespace>("", "shop").is_some());
        assert!(store.get::<EndpointSlice>("shop", "web-abc").is_some());
        let pod = store.get::<Pod>("shop", "web-1").expect("the pod");
        assert_eq!(
            pod.status.as_ref().unwrap().pod_ip.as_deref(),
            Some("10.244.0.7")
        );
    }
    assert_eq!(harness.service("shop", "web"), Some(80));

    let mut changes = harness.source.changes();
    changes.mark_unchanged();
    harness.server.apply(service("shop", "api", json!(9090)));
    harness
        .until("the created Service", |s| {
            s.get::<Service>("shop", "api").is_some()
        })
        .await;
    within("a change seen", changes.changed())
        .await
        .expect("the source runs");

    harness.server.apply(service("shop", "web", json!(8000)));
    harness
        .until("the modified Service", |_| {
            harness.service("shop", "web") == Some(8000)
        })
        .await;

    harness.server.delete("v1", "Service", "shop", "api");
    harness
        .until("the deleted Service gone", |s| {
            s.get::<Service>("shop", "api").is_none()
        })
        .await;
    harness.until_mirrors::<Service>().await;
}

#[tokio::test]
async fn bookmarks_advance_the_resource_version_without_events() {
    let server = FakeApiServer::start().await;
    server.apply(service("shop", "web", json!(80)));
    let harness = Harness::start(server, watcher::Config::default()).await;
    let server = &harness.server;
    let first_watch = server
        .wait_for_request(0, is_watch_of("/api/v1/services"))
        .await;
    assert_eq!(first_watch.param("allowWatchBookmarks"), Some("true"));

    // Versions move on elsewhere; the Services watch hears of them only through a bookmark.
    server.apply(pod("shop", "web-1", "10.244.0.7"));
    let latest = server.apply(pod("shop", "web-2", "10.244.0.8"));
    harness
        .until("both pods", |s| s.count(Kind::Pod) == 2)
        .await;
    let changes = *harness.source.changes().borrow();
    server.bookmark();
    // A watch that ends resumes from the last version it saw: the bookmark's.
    let before_close = server.request_count();
    server.close_watches();
    let resumed = server
        .wait_for_request(before_close, is_watch_of("/api/v1/services"))
        .await;
    assert_eq!(
        resumed.param("resourceVersion"),
        Some(latest.to_string().as_str())
    );
    assert_ne!(
        first_watch.param("resourceVersion"),
        resumed.param("resourceVersion")
    );

    let requests = server.requests();
    assert!(
        !requests[before_close..].iter().any(|r| !r.is_watch()),
        "a bookmark and a clean close need no re-list: {requests:#?}"
    );
    assert_eq!(
        *harness.source.changes().borrow(),
        changes,
        "bookmarks are not changes"
    );
    assert_eq!(harness.service("shop", "web"), Some(80));
}

/// Lets the client fall behind (its watches stay open but silent) while the server deletes,
/// adds and modifies Services, then compacts history so only a re-list can catch up.
fn fall_behind(server: &FakeApiServer) {
    server.partition();
    server.delete("v1", "Service", "shop", "b");
    server.apply(service("shop", "c", json!(8443)));
    server.apply(service("shop", "d", json!(80)));
    server.compact();
}

async fn relist_scenario(form: GoneForm) {
    let server = FakeApiServer::start().await;
    server.set_gone_form(form);
    for name in ["a", "b", "c"] {
        server.apply(service("shop", name, json!(80)));
    }
    let harness = Harness::start(server, watcher::Config::default()).await;
    let server = &harness.server;
    fall_behind(server);
    let before = server.request_count();
    match form {
        GoneForm::ErrorEvent => server.expire_watches(),
        GoneForm::HttpStatus => server.close_watches(),
    }

    harness.until_mirrors::<Service>().await;
    assert_eq!(
        harness.service("shop", "b"),
        None,
        "the deletion in the gap is applied"
    );
    assert_eq!(harness.service("shop", "c"), Some(8443));
    assert_eq!(harness.service("shop", "d"), Some(80));
    let relist = server
        .wait_for_request(before, is_list_of("/api/v1/services"))
        .await;
    assert_eq!(relist.param("continue"), None);
    // The source watches again, from the re-list's version, and hears new changes.
    server.apply(service("shop", "e", json!(80)));
    harness
        .until("a Service created after the re-list", |s| {
            s.get::<Service>("shop", "e").is_some()
        })
        .await;
}

#[tokio::test]
async fn gone_as_a_watch_error_event_forces_a_relist_that_matches_the_server() {
    relist_scenario(GoneForm::ErrorEvent).await;
}

#[tokio::test]
async fn gone_as_an_http_410_forces_a_relist_that_matches_the_server() {
    relist_scenario(GoneForm::HttpStatus).await;
}

#[tokio::test]
async fn custom_resources_arrive_typed() {
    let server = FakeApiServer::start().await;
    server.apply(json!({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": "shop"},
        "spec": {"hosts": ["reviews"], "http": [{"route": [
            {"destination": {"host": "reviews", "subset": "v1"}, "weight": 90},
            {"destination": {"host": "reviews", "subset": "v2"}, "weight": 10}
        ]}]}
    }));
    let harness = Harness::start(server, watcher::Config::default()).await;
    {
        let store = harness.store.borrow();
        let vs = store
            .get::<VirtualService>("shop", "reviews")
            .expect("the VirtualService");
        assert_eq!(vs.spec.hosts, ["reviews"]);
        let weights: Vec<_> = vs.spec.http[0].route.iter().map(|r| r.weight).collect();
        assert_eq!(weights, [Some(90), Some(10)]);
    }

    harness.server.apply(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "parentRefs": [{"group": "", "kind": "Service", "name": "web", "port": 80}],
            "rules": [{"backendRefs": [{"name": "web-v2", "port": 80, "weight": 10}]}]
        }
    }));
    harness
        .until("the HTTPRoute", |s| {
            s.get::<HttpRoute>("shop", "web").is_some()
        })
        .await;
    let store = harness.store.borrow();
    let route = store.get::<HttpRoute>("shop", "web").unwrap();
    let parent = &route.spec.parent_refs.as_ref().unwrap()[0];
    assert_eq!(
        (parent.kind.as_deref(), parent.name.as_str()),
        (Some("Service"), "web")
    );
    let backend = &route.spec.rules.as_ref().unwrap()[0]
        .backend_refs
        .as_ref()
        .unwrap()[0];
    assert_eq!(
        (backend.name.as_str(), backend.weight),
        ("web-v2", Some(10))
    );
}

#[tokio::test]
async fn a_malformed_object_is_reported_and_the_others_still_arrive() {
    let server = FakeApiServer::start().await;
    server.apply(service("shop", "good", json!(80)));
    server.apply(service("shop", "bad", json!("eighty")));
    let harness = Harness::start(server, watcher::Config::default()).await;
    let bad = ObjectRef::new(Kind::Service, "shop", "bad");

    // In the initial list: the list still succeeds, the broken object is reported and absent.
    assert_eq!(harness.service("shop", "good"), Some(80));
    assert_eq!(harness.service("shop", "bad"), None);
    let broken = harness.source.broken_objects().borrow().clone();
    let report = broken.get(&bad).expect("the broken Service is reported");
    assert!(report.error.contains("eighty"), "{report}");
    assert!(
        report
            .to_string()
            .starts_with("Service shop/bad (resourceVersion "),
        "{report}"
    );

    // While watching: a good object turning bad leaves the store and is reported; the watch
    // goes on and delivers the next change, and fixing the object clears the report.
    let mut reports = harness.source.broken_objects();
    harness
        .server
        .apply(service("shop", "good", json!({"not": "a port"})));
    harness
        .until("the now broken Service gone", |_| {
            harness.service("shop", "good").is_none()
        })
        .await;
    let good = ObjectRef::new(Kind::Service, "shop", "good");
    within("the report", reports.wait_for(|b| b.contains_key(&good)))
        .await
        .unwrap();
    harness.server.apply(service("shop", "other", json!(81)));
    harness
        .until("a later Service", |_| {
            harness.service("shop", "other") == Some(81)
        })
        .await;
    harness.server.apply(service("shop", "bad", json!(82)));
    harness
        .until("the fixed Service", |_| {
            harness.service("shop", "bad") == Some(82)
        })
        .await;
    within(
        "the report cleared",
        reports.wait_for(|b| !b.contains_key(&bad)),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn lists_are_paged_with_limit_and_continue() {
    let server = FakeApiServer::start().await;
    for name in ["a", "b", "c", "d", "e"] {
        server.apply(service("shop", name, json!(80)));
    }
    let harness = Harness::start(server, watcher::Config::default().page_size(2)).await;
    harness.until_mirrors::<Service>().await;

    let pages: Vec<_> = harness
        .server
        .requests()
        .into_iter()
        .filter(is_list_of("/api/v1/services"))
        .collect();
    let limits: Vec<_> = pages.iter().map(|p| p.param("limit")).collect();
    assert_eq!(
        limits,
        [Some("2"); 3],
        "five Services in pages of two: {pages:#?}"
    );
    assert_eq!(pages[0].param("continue"), None);
    assert!(pages[1].param("continue").is_some() && pages[2].param("continue").is_some());
    assert_ne!(pages[1].param("continue"), pages[2].param("continue"));
}

#[tokio::test]
async fn failing_requests_are_logged_with_their_kind_and_retried() {
    let log = CapturedLog::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_ansi(false)
        .finish();
    // Thread-local: the test's current-thread runtime runs the source's tasks on this thread.
    let _subscriber = tracing::subscriber::set_default(subscriber);
    let server = FakeApiServer::start().await;
    let path = "/apis/networking.istio.io/v1/virtualservices";
    server.fail_requests(path, 2, 500);
    let harness = Harness::start(server, watcher::Config::default()).await;

    let lists = harness
        .server
        .requests()
        .into_iter()
        .filter(is_list_of(path))
        .count();
    assert_eq!(lists, 3, "two failed lists, then one that worked");
    let log = log.text();
    let failures: Vec<_> = log.lines().filter(|l| l.contains("watch failed")).collect();
    assert_eq!(failures.len(), 2, "{log}");
    assert!(
        failures
            .iter()
            .all(|l| l.contains("kind=VirtualService") && l.contains("injected failure")),
        "{log}"
    );
}

#[tokio::test]
async fn a_kind_the_server_does_not_serve_counts_as_empty_until_installed() {
    let server = FakeApiServer::start().await;
    let path = "/apis/networking.istio.io/v1/virtualservices";
    server.fail_requests(path, usize::MAX, 404);
    server.apply(service("shop", "web", json!(80)));
    // Readiness does not wait for a CRD that is not installed.
    let harness = Harness::start(server, watcher::Config::default()).await;
    assert_eq!(harness.store.borrow().count(Kind::VirtualService), 0);
    assert_eq!(harness.service("shop", "web"), Some(80));

    // Installed later: the retries find it.
    harness.server.fail_requests(path, 0, 404);
    harness.server.apply(json!({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "web", "namespace": "shop"}, "spec": {"hosts": ["web"]}
    }));
    harness
        .until("the VirtualService once its CRD exists", |s| {
            s.count(Kind::VirtualService) == 1
        })
        .await;
}

/// A tracing writer that keeps what is logged, for assertions.
#[derive(Clone, Default)]
struct CapturedLog(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLog {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log lock")).into_owned()
    }
}

impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLog {
    type Writer = Self;

    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}
