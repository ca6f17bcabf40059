//! One request's way through the proxy: route it, apply the route's policy, pick an endpoint,
//! forward it, and account for the answer (`observe`: metrics, access log, span).

mod observe;
mod requests;

use std::{
    net::{IpAddr, SocketAddr},
    sync::{Arc, OnceLock},
};

use arc_swap::ArcSwapOption;
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use tokio::time::Instant;

use self::requests::{
    authority_of, cookie, no_original_dst, no_route, prepare_uri, redirect_response, rewrite_path,
    uri_with_authority,
};
use super::{
    Body, ConnectSettings, Pools, RequestBody, UpstreamError, UpstreamVersion, X_MESH_ERROR,
    X_MESH_OVERLOADED,
    body::Recording,
    headers, local_response, mirror,
    pool::UpstreamBody,
    tries::{Sent, Tries},
};
use crate::{
    access_log::{Entry, LogLine},
    addr::ClientAddr,
    authz::{Authorizer, Decision, Facts, HttpFacts},
    balance::{Outcome, Pick, hash_key},
    config::{AppProtocol, Cluster, Snapshot},
    istio_metrics::{LabelSet, Record},
    limits::{Overflow, Permit},
    metrics::{ClusterMetrics, Direction, Handles, Peers, RetryOutcome},
    proxy::{Peer, ProxyState},
    route::{Action, Destination, Forward, HashOn, Route, matching::query_param},
    telemetry::LogPolicy,
    tls::{Carried, ClientTls},
    trace::Kind,
    workload::PEER_METADATA,
};

/// What to do after a try. Returned by value once per try, as the `Option` it replaced was.
#[allow(clippy::large_enum_variant)]
enum Retry {
    /// Try again with this request, after this wait, holding this place under the cluster's
    /// limit on retries.
    Next(Sent, std::time::Duration, Option<Permit>),
    /// The policy would retry, but every attempt has been made.
    Exhausted,
    /// Answer with what the try got.
    No,
}

/// Marks an upstream answer given after the route's last retry (response flag URX).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RetriesExhausted;

/// What one client connection's requests are sent to.
pub enum HttpTarget {
    /// Routed by the named route config, if any; requests it has no route for go by
    /// `unrouted`, else get 404.
    Routes {
        /// The route config.
        name: Option<String>,
        /// What becomes of requests without a route (catch-all outbound listeners).
        unrouted: Option<Unrouted>,
    },
    /// All sent to one cluster (the local app behind an inbound port).
    Cluster(Arc<Cluster>),
}

/// What becomes of the requests and connections a catch-all outbound listener does not route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unrouted {
    /// Sent on to the original destination.
    Passthrough,
    /// Refused: the destination is not in the registry (REGISTRY_ONLY).
    Blocked,
}

/// A client connection being served as HTTP.
pub struct HttpConn {
    /// Shared proxy state.
    pub state: Arc<ProxyState>,
    /// The upstream pools of the worker serving the connection.
    pub pools: Arc<Pools>,
    /// The client.
    pub client: ClientAddr,
    /// The kind of listener that accepted it.
    pub direction: Direction,
    /// Where its requests go.
    pub target: HttpTarget,
    /// The HTTP version the client speaks.
    pub version: UpstreamVersion,
    /// For inbound connections: the verified peer and the policies to check.
    pub inbound: Option<Inbound>,
    /// The client's `x-forwarded-for` entry, when its requests get one.
    forwarded_for: Option<HeaderValue>,
    /// Whether this proxy terminated the client's TLS (a gateway's HTTPS listener).
    over_tls: bool,
    /// Where a captured client was going, for passthrough.
    original_dst: Option<SocketAddr>,
    /// The one-endpoint cluster to `original_dst`, made on first need.
    passthrough: OnceLock<Arc<Cluster>>,
    /// Inbound: the metric handles (with the peers' identities) of the cluster the last
    /// request went to, by its name.
    inbound_metrics: ArcSwapOption<(String, Arc<ClusterMetrics>)>,
    /// Inbound: the standard metrics' label set of the last request, and what it was made of.
    inbound_labels: ArcSwapOption<InboundLabels>,
}

/// An inbound request's standard metrics labels, with what they were made from: the client's
/// peer metadata, the request's host and its protocol.
struct InboundLabels {
    peer_metadata: Option<HeaderValue>,
    host: String,
    grpc: bool,
    set: Arc<LabelSet>,
}

/// What the inbound side knows of a connection.
pub struct Inbound {
    /// The verified mesh peer, when the connection arrived in mesh TLS.
    pub peer: Option<Arc<Peer>>,
    /// The authorization policies of the port, if any.
    pub authz: Option<Arc<Authorizer>>,
    /// The address the client meant.
    pub destination: SocketAddr,
}

/// The route's decisions for one forwarded request.
struct Plan<'a> {
    cluster: &'a Cluster,
    route: Option<&'a Route>,
    destination: Option<&'a Destination>,
    forward: Option<&'a Forward>,
    /// The clusters this request is mirrored to (each drawn by its share).
    mirrors: Vec<Arc<Cluster>>,
}

// === impl Plan ===

impl<'a> Plan<'a> {
    /// Everything to `cluster`, with no route's policy.
    fn whole(cluster: &'a Cluster) -> Self {
        Plan {
            cluster,
            route: None,
            destination: None,
            forward: None,
            mirrors: Vec::new(),
        }
    }
}

// === impl HttpConn ===

impl HttpConn {
    /// A connection from `client`, accepted by a listener of `direction`.
    pub fn new(
        state: Arc<ProxyState>,
        pools: Arc<Pools>,
        client: ClientAddr,
        direction: Direction,
        target: HttpTarget,
        version: UpstreamVersion,
        inbound: Option<Inbound>,
    ) -> Self {
        HttpConn {
            state,
            pools,
            client,
            direction,
            target,
            version,
            inbound,
            forwarded_for: (direction != Direction::Outbound)
                .then(|| headers::forwarded_for(client)),
            over_tls: false,
            original_dst: None,
            passthrough: OnceLock::new(),
            inbound_metrics: ArcSwapOption::empty(),
            inbound_labels: ArcSwapOption::empty(),
        }
    }

    /// The same connection, whose client's TLS this proxy terminated.
    pub fn over_tls(self) -> Self {
        HttpConn {
            over_tls: true,
            ..self
        }
    }

    /// The same connection, captured on its way to `dst`.
    pub fn to_original_dst(self, dst: Option<SocketAddr>) -> Self {
        HttpConn {
            original_dst: dst,
            ..self
        }
    }

    /// The cluster of the client's original destination, if it had one.
    fn passthrough(&self) -> Option<&Arc<Cluster>> {
        let dst = self.original_dst?;
        Some(
            self.passthrough.get_or_init(|| {
                Arc::new(Cluster::direct("PassthroughCluster".to_owned(), dst, None))
            }),
        )
    }

    /// Serves one request; never fails: problems become answers that say what went wrong.
    /// Each is recorded in the standard metrics (and the access log, when it is on) when its
    /// response ends.
    pub async fn handle(self: Arc<Self>, mut req: Request<Incoming>) -> Response<Body> {
        let start = Instant::now();
        let grpc = req
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        let request_bytes = http_body::Body::size_hint(req.body()).exact().unwrap_or(0);
        let inbound_labels = self.inbound_labels(&mut req, grpc);
        let inbound = self.direction == Direction::Inbound;
        let kind = if inbound { Kind::Server } else { Kind::Client };
        let snapshot = self.state.config.load();
        let telemetry = snapshot.telemetry();
        let log = self.log_line(&req, telemetry.access_log(kind), inbound);
        let span = (self.state.tracer).begin(&mut req, kind, self.client.0, telemetry.tracing());
        let (response, cluster) = self.serve(&snapshot, req, grpc, start).await;
        let endpoint = match response.body() {
            Body::Upstream { pick, .. } => Some(&**pick.endpoint()),
            Body::Full(_) => None,
        };
        let labels = inbound_labels.or_else(|| self.outbound_labels(cluster, endpoint, grpc));
        if labels.is_none() && log.is_none() && span.is_none() {
            return response;
        }
        let mut record = Record::new(labels, start, request_bytes);
        if log.is_some() || span.is_some() {
            record.upstream_host = endpoint.map(crate::balance::Endpoint::addr);
            record.upstream_cluster = match (&self.target, cluster) {
                (_, Some(routed)) => Some(routed.name.clone()),
                (HttpTarget::Cluster(app), None) => Some(app.name.clone()),
                (HttpTarget::Routes { .. }, None) => None,
            };
        }
        record.log = log;
        record.span = span;
        observe::observe(response, record)
    }

    /// The access log line `req` gets under `policy` (the config's, else the flag's), if any.
    fn log_line(
        &self,
        req: &Request<Incoming>,
        policy: Option<&LogPolicy>,
        inbound: bool,
    ) -> Option<Box<LogLine>> {
        let filter = match policy {
            Some(policy) if policy.enabled => policy.filter.clone(),
            Some(_) => return None,
            None if self.state.settings.access_log => None,
            None => return None,
        };
        let log = self.state.access_log()?.clone();
        let entry = Entry::new(req, self.client.0, inbound, filter.as_deref());
        Some(Box::new(LogLine { log, entry, filter }))
    }

    /// Authorizes, routes and forwards one request; also gives the cluster it went to.
    async fn serve<'a>(
        &'a self,
        snapshot: &'a Snapshot,
        mut req: Request<Incoming>,
        grpc: bool,
        start: Instant,
    ) -> (Response<Body>, Option<&'a Cluster>) {
        if let Some(denied) = self.authorize(&req) {
            return (denied, None);
        }
        let (plan, routed) = match &self.target {
            HttpTarget::Cluster(cluster) => (Plan::whole(cluster), None),
            HttpTarget::Routes { name, unrouted } => {
                match self.route(snapshot, name.as_deref(), &mut req, grpc).await {
                    Ok(Some(mut plan)) => {
                        if plan.cluster.original_dst {
                            let Some(direct) = self.passthrough() else {
                                return (no_original_dst(plan.cluster, grpc), None);
                            };
                            plan.cluster = direct;
                        }
                        let cluster = plan.cluster;
                        (plan, Some(cluster))
                    }
                    Ok(None) => match (unrouted, self.passthrough()) {
                        (Some(Unrouted::Blocked), _) if !self.registered(snapshot) => {
                            return (self.blocked(&req, grpc), None);
                        }
                        (Some(_), Some(direct)) => (Plan::whole(direct), Some(&**direct)),
                        _ => return (no_route(&req, name.as_deref(), grpc), None),
                    },
                    Err(response) => return (response, None),
                }
            }
        };
        let mut response = self.forward(&plan, req, grpc, start).await;
        for changes in [
            plan.destination.map(|d| &d.response_headers),
            plan.route.map(|r| &r.response_headers),
        ]
        .into_iter()
        .flatten()
        {
            changes.apply(response.headers_mut());
        }
        (response, routed)
    }

    /// The 403 for a request the port's authorization policies refuse, as Envoy's RBAC answers.
    fn authorize(&self, req: &Request<Incoming>) -> Option<Response<Body>> {
        let inbound = self.inbound.as_ref()?;
        let authz = inbound.authz.as_ref()?;
        let facts = Facts {
            peer: inbound.peer.as_ref().map(|p| &*p.identity),
            source: self.client.0.ip(),
            destination: inbound.destination,
            http: Some(HttpFacts {
                method: req.method().as_str(),
                path: req.uri().path(),
                host: authority_of(req).unwrap_or_default(),
                headers: req.headers(),
            }),
        };
        let Decision::Deny(policy) = authz.check(&facts) else {
            return None;
        };
        self.state.metrics.authorization_denied("http");
        tracing::debug!(client = %self.client, policy = ?policy, path = req.uri().path(),
            "request denied by authorization policy");
        let mut response = Response::new(super::full(bytes::Bytes::from_static(
            b"RBAC: access denied",
        )));
        *response.status_mut() = StatusCode::FORBIDDEN;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        headers.insert(
            X_MESH_ERROR.clone(),
            HeaderValue::from_static("rbac_denied"),
        );
        Some(response)
    }

    /// Whether the original destination is an endpoint the config knows.
    fn registered(&self, snapshot: &Snapshot) -> bool {
        self.original_dst
            .is_some_and(|dst| snapshot.is_registered(dst))
    }

    /// The 502 for a request to a destination outside the registry (REGISTRY_ONLY), counted
    /// by its host.
    fn blocked(&self, req: &Request<Incoming>, grpc: bool) -> Response<Body> {
        let destination = self.original_dst.map(|d| d.to_string()).unwrap_or_default();
        let host = authority_of(req).map_or_else(|| destination.clone(), str::to_owned);
        self.state.metrics.outbound_blocked("http", &host);
        tracing::info!(client = %self.client, %host, %destination,
            "request refused: its destination is not in the mesh's registry (REGISTRY_ONLY)");
        let message = format!(
            "{host} is not in the mesh's registry and outbound traffic is REGISTRY_ONLY; declare it in a ServiceEntry"
        );
        local_response(StatusCode::BAD_GATEWAY, "registry_only", &message, grpc)
    }

    /// Finds the route and applies everything it asks for before forwarding; `None` when the
    /// route config (or no route config) has no route for the request.
    async fn route<'a>(
        &self,
        snapshot: &'a Snapshot,
        name: Option<&str>,
        req: &mut Request<Incoming>,
        grpc: bool,
    ) -> Result<Option<Plan<'a>>, Response<Body>> {
        let Some(name) = name else {
            return Ok(None);
        };
        let Some(table) = snapshot.route_table(name) else {
            let message = format!("route config {name:?} is not in the proxy's config");
            return Err(local_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_route_config",
                &message,
                grpc,
            ));
        };
        let authority = authority_of(req).unwrap_or_default();
        let Some(route) = table.find(authority, req) else {
            return Ok(None);
        };
        let forward = match &route.action {
            Action::Forward(forward) => forward,
            Action::Direct { status, body } => {
                let mut response = Response::new(super::full(body.clone()));
                *response.status_mut() = *status;
                route.response_headers.apply(response.headers_mut());
                return Err(response);
            }
            Action::Redirect(redirect) => {
                return Err(redirect_response(route, redirect, req, authority));
            }
        };
        if let Some(fault) = &forward.fault {
            if let Some((delay, percent)) = fault.delay
                && roll(percent)
            {
                tokio::time::sleep(delay).await;
            }
            if let Some((status, percent)) = fault.abort
                && roll(percent)
            {
                return Err(local_response(
                    status,
                    "fault_abort",
                    "fault injected by route policy",
                    grpc,
                ));
            }
        }
        let destination = forward.pick_destination(fastrand::u32(..));
        let Some(cluster) = snapshot.cluster(&destination.cluster) else {
            let message = format!(
                "cluster {:?} (route {:?}) is not in the proxy's config",
                destination.cluster, route.name
            );
            return Err(local_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_cluster",
                &message,
                grpc,
            ));
        };
        route.request_headers.apply(req.headers_mut());
        destination.request_headers.apply(req.headers_mut());
        if let Some(prefix) = &forward.rewrite_path_prefix {
            rewrite_path(route, req, prefix);
        }
        if let Some(authority) = &forward.rewrite_authority {
            req.headers_mut().insert(header::HOST, authority.clone());
            *req.uri_mut() = uri_with_authority(req.uri(), authority);
        }
        let mirrors = (forward.mirrors.iter())
            .filter(|m| roll(m.percent))
            .filter_map(|m| snapshot.cluster(&m.cluster).cloned())
            .collect();
        Ok(Some(Plan {
            cluster,
            route: Some(route),
            destination: Some(destination),
            forward: Some(forward),
            mirrors,
        }))
    }

    /// Picks an endpoint and sends the request to it, trying again (elsewhere when it can)
    /// as the route's retry policy allows, all within the route's timeout.
    async fn forward(
        &self,
        plan: &Plan<'_>,
        mut req: Request<Incoming>,
        grpc: bool,
        start: Instant,
    ) -> Response<Body> {
        let cluster = plan.cluster;
        let permit = match cluster.limits.request() {
            Ok(permit) => permit,
            Err(full) => {
                let error = UpstreamError::Overloaded(full);
                return self.failed(&self.metrics(cluster), cluster, error, grpc, start);
            }
        };
        let hash = plan
            .forward
            .and_then(|f| f.hash_on.as_ref())
            .and_then(|h| self.hash(h, &req));
        let version = match cluster.protocol {
            Some(AppProtocol::Http1) => UpstreamVersion::Http1,
            Some(AppProtocol::Http2) => UpstreamVersion::Http2,
            _ if cluster.h2_upgrade => UpstreamVersion::Http2,
            _ => self.version,
        };
        let upgrade =
            self.version == UpstreamVersion::Http1 && headers::is_upgrade_request(req.headers());
        headers::strip_hop_by_hop(req.headers_mut(), upgrade);
        headers::set_forwarded(
            req.headers_mut(),
            self.forwarded_for.as_ref(),
            self.over_tls,
        );
        if self.direction != Direction::Inbound
            && cluster.may_use_mesh_tls()
            && let Some(metadata) = &self.state.peer_metadata
        {
            req.headers_mut()
                .insert(PEER_METADATA.clone(), metadata.clone());
        }
        if self.direction == Direction::Inbound {
            let verified = (self.inbound.as_ref())
                .and_then(|i| i.peer.as_ref())
                .map(|p| &p.forwarded_client_cert);
            headers::set_client_cert(req.headers_mut(), verified);
        }
        let version = if upgrade {
            UpstreamVersion::Http1
        } else {
            version
        };
        let shadow = (!plan.mirrors.is_empty())
            .then(|| authority_of(&req).and_then(mirror::shadow_authority))
            .flatten();
        prepare_uri(&mut req, version);

        let deadline = plan.forward.and_then(|f| f.timeout).map(|t| (start + t, t));
        let retry = plan.forward.and_then(|f| f.retry.as_ref());
        let mut tries = Tries::new(req, retry, upgrade, !plan.mirrors.is_empty());
        if let Some(shadow) = &shadow {
            self.mirror(plan, &tries, version, shadow);
        }
        if retry.is_some() {
            cluster.retry_budget.deposit();
        }
        let Some(mut req) = tries.next() else {
            unreachable!("the first try always has its request")
        };
        let mut tried: Vec<SocketAddr> = Vec::new();
        // A retry's place under the cluster's limit on retries, held while it is tried.
        let mut _retrying = None;
        loop {
            let pick = if tried.is_empty() {
                cluster.balancer.pick(hash)
            } else {
                cluster.balancer.pick_avoiding(hash, &tried)
            };
            let Some(pick) = pick else {
                let error = UpstreamError::NoEndpoint {
                    cluster: cluster.name.clone(),
                };
                return self.failed(&self.metrics(cluster), cluster, error, grpc, start);
            };
            let (result, metrics) = self.try_once(plan, &pick, version, req, deadline).await;
            pick.observe_response();
            let outcome = match &result {
                Ok(response) => Some(Outcome::Answered(response.status().as_u16())),
                Err(error) => error.is_local_failure().then_some(Outcome::LocalFailure),
            };
            if let Some(outcome) = outcome {
                cluster.report_outcome(&self.state.metrics, pick.endpoint(), outcome);
            }
            let (next, wait, retry_permit) =
                match self.retry(cluster, &mut tries, &result, &metrics) {
                    Retry::Next(next, wait, permit) => (next, wait, permit),
                    retry => {
                        return match result {
                            Ok(response) => {
                                let exhausted = matches!(retry, Retry::Exhausted);
                                self.answer(response, pick, permit, &metrics, start, exhausted)
                            }
                            Err(error) => self.failed(&metrics, cluster, error, grpc, start),
                        };
                    }
                };
            _retrying = retry_permit;
            tried.push(pick.addr());
            drop(result);
            if let Some((at, limit)) = deadline
                && Instant::now() + wait >= at
            {
                tokio::time::sleep_until(at).await;
                let error = UpstreamError::Timeout(limit);
                return self.failed(&metrics, cluster, error, grpc, start);
            }
            tokio::time::sleep(wait).await;
            req = next;
        }
    }

    /// The client's response from an upstream one; `exhausted` when it is a failure the route
    /// would have retried had attempts been left (flagged URX).
    fn answer(
        &self,
        mut response: Response<UpstreamBody>,
        pick: Pick,
        permit: Option<Permit>,
        metrics: &ClusterMetrics,
        start: Instant,
        exhausted: bool,
    ) -> Response<Body> {
        let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        headers::strip_hop_by_hop(response.headers_mut(), switching);
        *response.version_mut() = match self.version {
            UpstreamVersion::Http1 => http::Version::HTTP_11,
            UpstreamVersion::Http2 => http::Version::HTTP_2,
        };
        metrics.request(response.status().as_u16(), start.elapsed());
        if exhausted {
            response.extensions_mut().insert(RetriesExhausted);
        }
        response.map(|body| Body::Upstream {
            body,
            pick,
            permit,
            recording: Recording::default(),
        })
    }

    /// Sends a copy of the request to each of the plan's mirrors, without waiting for them.
    fn mirror(
        &self,
        plan: &Plan<'_>,
        tries: &Tries<'_>,
        version: UpstreamVersion,
        host: &HeaderValue,
    ) {
        let deadline = plan.forward.and_then(|f| f.timeout);
        for cluster in &plan.mirrors {
            let sent = match tries.mirror(host) {
                Some(copy) => {
                    let pools = match cluster.limits.limits_connections() {
                        true => &self.state.limited_pools,
                        false => &self.pools,
                    };
                    mirror::send(&self.state, pools, cluster.clone(), version, copy, deadline)
                }
                None => Err(mirror::Skipped::Body),
            };
            if let Err(skipped) = sent {
                self.state
                    .metrics
                    .mirror_skipped(&cluster.name, skipped.as_str());
            }
        }
    }

    /// Sends one try to the picked endpoint, within the per-try timeout and the route's
    /// deadline; also returns the metric handles for the endpoint.
    async fn try_once<'a>(
        &'a self,
        plan: &Plan<'a>,
        pick: &Pick,
        version: UpstreamVersion,
        req: Sent,
        deadline: Option<(Instant, std::time::Duration)>,
    ) -> (Result<Response<UpstreamBody>, UpstreamError>, Handles<'a>) {
        let cluster = plan.cluster;
        let settings = ConnectSettings {
            connect_timeout: cluster.connect_timeout,
            max_requests_per_connection: cluster.max_requests_per_connection,
            keepalive: cluster.keepalive,
            limits: &cluster.limits,
            max_idle: cluster.max_idle_per_endpoint,
            idle_timeout: cluster.idle_timeout,
            source: cluster.source,
        };
        let addr = pick.addr();
        let carried = match (version, &req) {
            (_, Sent::Upgrade(_)) | (UpstreamVersion::Http1, _) => Carried::Http1,
            (UpstreamVersion::Http2, _) => Carried::Http2,
        };
        let mesh = self.state.mesh_tls.as_deref();
        let tls = cluster.client_tls(pick.endpoint(), mesh, carried);
        let metrics = match (&self.inbound, &tls) {
            (None, Ok(used)) => Handles::Cluster(cluster.endpoint_metrics(
                &self.state.metrics,
                self.direction,
                pick.endpoint(),
                *used,
                mesh,
            )),
            _ => self.metrics(cluster),
        };
        let sent = async {
            let tls = tls?;
            match req {
                // Rare and large: boxed, so that it does not grow every request's future.
                Sent::Upgrade(req) => Box::pin(self.send_upgrade(addr, settings, tls, req)).await,
                Sent::Request(req) => {
                    // Under a connection limit, an idle connection is every worker's.
                    let pools = match cluster.limits.limits_connections() {
                        true => &self.state.limited_pools,
                        false => &self.pools,
                    };
                    pools.send(addr, version, settings, tls, req).await
                }
            }
        };
        // Pinned in place: the timeout wraps a pointer rather than a second copy of the future.
        let sent = std::pin::pin!(sent);
        let per_try = plan
            .forward
            .and_then(|f| f.retry.as_ref())
            .and_then(|r| r.per_try_timeout)
            .map(|t| (Instant::now() + t, UpstreamError::TryTimeout(t)));
        let route = deadline.map(|(at, limit)| (at, UpstreamError::Timeout(limit)));
        let limit = match (per_try, route) {
            (Some(a), Some(b)) => Some(if a.0 < b.0 { a } else { b }),
            (a, b) => a.or(b),
        };
        let result = match limit {
            Some((at, error)) => tokio::time::timeout_at(at, sent)
                .await
                .unwrap_or(Err(error)),
            None => sent.await,
        };
        (result, metrics)
    }

    /// Whether to try again after `result`: the next try and the backoff to wait before it,
    /// when the retry policy asks for one, attempts are left, the body can be sent again and
    /// the cluster's retry budget allows; what became of a wanted retry is counted.
    fn retry(
        &self,
        cluster: &Cluster,
        tries: &mut Tries<'_>,
        result: &Result<Response<UpstreamBody>, UpstreamError>,
        metrics: &ClusterMetrics,
    ) -> Retry {
        let Some(policy) = tries.policy else {
            return Retry::No;
        };
        let wanted = match result {
            Ok(response) => policy.retries_response(response.status(), response.headers()),
            Err(error) => policy.retries_error(error),
        };
        if !wanted {
            return Retry::No;
        }
        if tries.made > policy.attempts {
            return Retry::Exhausted;
        }
        let Ok(permit) = cluster.limits.retry() else {
            metrics.retry(RetryOutcome::Overflow);
            self.state
                .metrics
                .overflowed(&cluster.name, Overflow::Retries);
            return Retry::No;
        };
        if !cluster.retry_budget.withdraw() {
            metrics.retry(RetryOutcome::BudgetExhausted);
            return Retry::No;
        }
        let Some(next) = tries.next() else {
            metrics.retry(RetryOutcome::BodyTooLarge);
            return Retry::No;
        };
        metrics.retry(RetryOutcome::Sent);
        Retry::Next(next, policy.backoff(tries.made - 1), permit)
    }

    /// The answer for a request to `cluster` that got no upstream response, counted.
    fn failed(
        &self,
        metrics: &ClusterMetrics,
        cluster: &Cluster,
        error: UpstreamError,
        grpc: bool,
        start: Instant,
    ) -> Response<Body> {
        tracing::debug!(cluster = %cluster.name, %error, "upstream failure");
        metrics.failure(error.failure());
        metrics.request(error.status().as_u16(), start.elapsed());
        let message = format!("{error} (cluster {:?})", cluster.name);
        let mut response = local_response(error.status(), error.failure().as_str(), &message, grpc);
        if let UpstreamError::Overloaded(limit) = error {
            self.state.metrics.overflowed(&cluster.name, limit);
            (response.headers_mut())
                .insert(X_MESH_OVERLOADED.clone(), HeaderValue::from_static("true"));
        }
        response
    }

    /// The metric handles for a request to `cluster` before an endpoint is picked: inbound,
    /// with the connection's peers (resolved once per connection and cluster); else the
    /// cluster's own.
    fn metrics<'a>(&self, cluster: &'a Cluster) -> Handles<'a> {
        let Some(inbound) = &self.inbound else {
            return Handles::Cluster(cluster.metrics(&self.state.metrics, self.direction));
        };
        if let Some(cached) = &*self.inbound_metrics.load()
            && cached.0 == cluster.name
        {
            return Handles::Connection(cached.1.clone());
        }
        let own = (self.state.mesh_tls.as_deref()).and_then(|m| m.own_identity());
        let peer = inbound.peer.as_deref().map(|p| &*p.identity);
        let peers = Peers::inbound(peer, own.as_deref());
        let handles = (self.state.metrics).cluster(self.direction, &cluster.name, peers);
        self.inbound_metrics
            .store(Some(Arc::new((cluster.name.clone(), handles.clone()))));
        Handles::Connection(handles)
    }

    /// Forwards an upgrade request and, when the endpoint switches protocols, joins the two
    /// upgraded connections into a tunnel.
    async fn send_upgrade(
        &self,
        addr: std::net::SocketAddr,
        settings: ConnectSettings<'_>,
        tls: Option<ClientTls<'_>>,
        mut req: Request<Incoming>,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let downstream = hyper::upgrade::on(&mut req);
        let req = req.map(RequestBody::Streamed);
        let mut response = self.pools.send_upgrade(addr, settings, tls, req).await?;
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            let upstream = hyper::upgrade::on(&mut response);
            self.state.tasks.spawn(async move {
                match tokio::try_join!(downstream, upstream) {
                    Ok((down, up)) => {
                        let mut down = hyper_util::rt::TokioIo::new(down);
                        let mut up = hyper_util::rt::TokioIo::new(up);
                        if let Err(error) = tokio::io::copy_bidirectional(&mut down, &mut up).await
                        {
                            tracing::debug!(%error, "upgraded connection ended");
                        }
                    }
                    Err(error) => tracing::debug!(%error, "upgrade did not complete"),
                }
            });
        }
        Ok(response.map(UpstreamBody::Unpooled))
    }

    fn hash(&self, on: &HashOn, req: &Request<Incoming>) -> Option<u64> {
        match on {
            HashOn::Header(name) => req.headers().get(name).map(|v| hash_key(v.as_bytes())),
            HashOn::Cookie(name) => cookie(req.headers(), name).map(|v| hash_key(v.as_bytes())),
            HashOn::QueryParam(name) => {
                query_param(req.uri().query(), name).map(|v| hash_key(v.as_bytes()))
            }
            HashOn::SourceIp => Some(match self.client.0.ip() {
                IpAddr::V4(ip) => hash_key(&ip.octets()),
                IpAddr::V6(ip) => hash_key(&ip.octets()),
            }),
        }
    }
}

/// True for `percent` percent of calls.
fn roll(percent: f64) -> bool {
    fastrand::f64() * 100.0 < percent
}
