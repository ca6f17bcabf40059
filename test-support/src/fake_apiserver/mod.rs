//! A fake Kubernetes API server that speaks the real list/watch protocol over HTTP/1.1 on
//! loopback, so the real kube-rs client, watcher and reflector run against it.
//!
//! Served: `GET` list and watch of the collections in [`resources::RESOURCES`] (all-namespaces
//! and namespaced paths) and `GET` of one object; `limit`/`continue` pagination over a consistent snapshot (an expired
//! token answers 410); watches from a resourceVersion replay history then stream live events,
//! with bookmarks on demand; a test can partition, close or expire open watches and compact
//! history, choose whether a too-old watch gets an `ERROR` event or an HTTP 410, and make
//! requests to a path fail with 500 or 404.
//!
//! TokenReviews: `POST` to `tokenreviews` answers for the tokens added with `add_token`.
//! SelfSubjectAccessReviews: `POST` to `selfsubjectaccessreviews` allows everything but what
//! `set_access` denied. `GET /version` answers the version `set_version` chose (v1.34.0).
//!
//! The service proxy: any method to `/api/v1/namespaces/{ns}/services/{service}/proxy/{path}`
//! is forwarded to the plain-HTTP base URL `set_service_proxy` gave for that service (`503` as
//! the real server answers when there is none, or when the target cannot be reached).
//!
//! Writes: `POST` to a collection creates an object (409 if the name is taken; `generateName`
//! honoured); `PATCH` with a JSON merge patch changes an object, or only its status through
//! `/status`, with `metadata.resourceVersion` in the patch as a precondition (409 on a
//! mismatch). Writes show in watches like any change.
//!
//! Not served: other write forms (PUT, DELETE, JSON patch, server-side apply), protobuf/Table/metadata-only responses (406),
//! set-based label selectors and field selectors other than `metadata.name`/`metadata.namespace`/`type`
//! (400), and streaming lists (`sendInitialEvents`, ignored). Selectors filter watch events by
//! the object's new state: an object leaving a selector is not turned into a DELETED event.
//! It lives in the test-support crate, a dev-dependency only: nothing in production should
//! ever talk to a fake cluster, and hyper's server stays out of production dependencies.

mod access_review;
mod cluster;
mod resources;
mod selectors;
mod service;
mod service_proxy;
mod token_review;
mod version;
mod wire;

pub use cluster::GoneForm;
pub use service::RecordedRequest;
pub use token_review::FakeToken;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use service::Shared;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// A running fake API server; dropping it stops it and ends every open connection.
pub struct FakeApiServer {
    shared: Arc<Shared>,
    address: SocketAddr,
    task: JoinHandle<()>,
}

impl FakeApiServer {
    /// Starts a server on an ephemeral loopback port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let address = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            cluster: Mutex::new(cluster::Cluster::new()),
            requests: tokio::sync::watch::Sender::new(Vec::new()),
            tokens: Mutex::new(std::collections::BTreeMap::new()),
            access: Mutex::new(access_review::Access::default()),
            proxies: Mutex::new(service_proxy::Targets::default()),
            version: Mutex::new(version::Version::default()),
        });
        let task = tokio::spawn(accept(listener, shared.clone()));
        Self {
            shared,
            address,
            task,
        }
    }

    /// The server's base URL, `http://127.0.0.1:PORT`, e.g. for a kubeconfig.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// A kube client config pointed at this server, with kube-rs's defaults (which retry
    /// 429, 503 and 504 answers with backoff, for minutes).
    pub fn config(&self) -> kube::Config {
        kube::Config::new(self.url().parse().expect("a valid URL"))
    }

    /// A real kube client pointed at this server.
    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(self.config()).expect("a kube client")
    }

    fn cluster(&self) -> MutexGuard<'_, cluster::Cluster> {
        self.shared.cluster.lock().expect("cluster lock")
    }

    /// Creates or replaces an object; returns its new resourceVersion.
    pub fn apply(&self, object: Value) -> u64 {
        self.cluster().apply(object)
    }

    /// Deletes an object; returns the deletion's resourceVersion.
    pub fn delete(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> u64 {
        self.cluster().delete(api_version, kind, namespace, name)
    }

    /// The current objects of a kind, sorted by namespace and name.
    pub fn objects(&self, api_version: &str, kind: &str) -> Vec<Value> {
        self.cluster().objects(api_version, kind)
    }

    /// Sends a BOOKMARK at the current resourceVersion on every open watch that allows them.
    pub fn bookmark(&self) {
        self.cluster().bookmark();
    }

    /// Ends every open watch stream cleanly (as the server's timeout would).
    pub fn close_watches(&self) {
        self.cluster().close_watches();
    }

    /// Keeps open watches open but silent: later changes reach them only by a re-list.
    pub fn partition(&self) {
        self.cluster().partition();
    }

    /// Sends an `ERROR` 410 Expired event on every open watch and ends it.
    pub fn expire_watches(&self) {
        self.cluster().expire_watches();
    }

    /// Forgets history up to now, so a watch from an older resourceVersion is refused with 410.
    pub fn compact(&self) {
        self.cluster().compact();
    }

    /// Makes the next `count` requests to `path` fail with HTTP `status`: 500 for a failing
    /// server, 404 for a kind it does not serve (a CRD not installed); 0 requests ends it.
    pub fn fail_requests(&self, path: &str, count: usize, status: u16) {
        self.cluster().fail_requests(path, count, status);
    }

    /// Makes `token` a service-account token that TokenReviews authenticate as `found` says.
    pub fn add_token(&self, token: &str, found: FakeToken) {
        self.shared
            .tokens
            .lock()
            .expect("tokens lock")
            .insert(token.to_owned(), found);
    }

    /// Makes SelfSubjectAccessReviews answer `allowed` for `verb` on `resource` of `group`
    /// ("" for the core group), in every namespace; anything never set is allowed.
    pub fn set_access(&self, verb: &str, group: &str, resource: &str, allowed: bool) {
        self.shared
            .access
            .lock()
            .expect("access lock")
            .set(verb, group, resource, allowed);
    }

    /// Forwards the service proxy of `service` in `namespace` (the path's form, e.g.
    /// `https:mesh-injector:443`) to the plain-HTTP base URL `target` (`http://host:port`).
    pub fn set_service_proxy(&self, namespace: &str, service: &str, target: &str) {
        self.shared
            .proxies
            .lock()
            .expect("proxies lock")
            .set(namespace, service, target);
    }

    /// Makes `GET /version` answer `git_version`, e.g. `v1.28.3`.
    pub fn set_version(&self, git_version: &str) {
        *self.shared.version.lock().expect("version lock") = version::Version::new(git_version);
    }

    /// Chooses how a too-old watch is refused.
    pub fn set_gone_form(&self, form: GoneForm) {
        self.cluster().set_gone_form(form);
    }

    /// How many requests the server has answered so far.
    pub fn request_count(&self) -> usize {
        self.shared.requests.borrow().len()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.borrow().clone()
    }

    /// Waits (at most 10 s) for a request after the first `after` that satisfies `matches`.
    pub async fn wait_for_request(
        &self,
        after: usize,
        matches: impl Fn(&RecordedRequest) -> bool,
    ) -> RecordedRequest {
        let mut log = self.shared.requests.subscribe();
        let wait = log.wait_for(|log| log.iter().skip(after).any(&matches));
        let log = tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .expect("the expected request within 10 s")
            .expect("the server is running");
        log.iter()
            .skip(after)
            .find(|r| matches(r))
            .cloned()
            .expect("found above")
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    // Owned here so that aborting the accept loop also ends every connection.
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(service::handle(&shared, request).await) }
            });
            // A client hanging up mid-watch is normal.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}
