//! HTTP routing: virtual hosts chosen by authority, then the first route whose match accepts the
//! request. Compiled once from config (regexes built, weights summed) so matching allocates nothing.

mod compile;
pub(crate) mod matching;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use regex::Regex;

pub use compile::compile_route_table;
pub(crate) use compile::duration;

/// The routes of one `RouteConfig`.
#[derive(Debug)]
pub struct RouteTable {
    /// The config's name.
    pub name: String,
    hosts: Vec<VirtualHost>,
    /// Domain patterns in precedence order: exact, longest suffix, longest prefix, then `*`.
    domains: Vec<(DomainPattern, usize)>,
}

/// A set of domains and their routes.
#[derive(Debug)]
pub struct VirtualHost {
    /// The virtual host's name.
    pub name: String,
    routes: Vec<Route>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum DomainPattern {
    Exact(String),
    /// `*.example.com` stored as `.example.com`.
    Suffix(String),
    /// `example.*` stored as `example.`.
    Prefix(String),
    Any,
}

/// One route: a match and what to do with the requests it accepts.
#[derive(Debug)]
pub struct Route {
    /// The route's name (for logs and metrics).
    pub name: String,
    matcher: RouteMatcher,
    /// What to do with a matching request.
    pub action: Action,
    /// Edits to the request before it is forwarded.
    pub request_headers: HeaderChanges,
    /// Edits to the response before it is returned.
    pub response_headers: HeaderChanges,
}

#[derive(Debug, Default)]
struct RouteMatcher {
    path: PathMatch,
    headers: Vec<HeaderCondition>,
    query: Vec<(String, ValueMatch)>,
    method: Option<http::Method>,
}

#[derive(Debug, Default)]
enum PathMatch {
    #[default]
    Any,
    Prefix(String),
    Exact(String),
    Regex(Regex),
}

#[derive(Debug)]
struct HeaderCondition {
    name: HeaderName,
    value: ValueMatch,
    invert: bool,
}

#[derive(Debug)]
enum ValueMatch {
    Exact(String),
    Prefix(String),
    Regex(Regex),
    Present,
}

/// What a route does with a request.
#[derive(Debug)]
pub enum Action {
    /// Forward to one of the weighted clusters.
    Forward(Forward),
    /// Answer with a redirect.
    Redirect(Redirect),
    /// Answer with a fixed status and body.
    Direct {
        /// The status to answer with.
        status: StatusCode,
        /// The body to answer with.
        body: Bytes,
    },
}

/// Forwarding policy of a route.
#[derive(Debug)]
pub struct Forward {
    /// The weighted destinations; never empty.
    pub destinations: Vec<Destination>,
    total_weight: u32,
    /// The whole-request deadline, every try included.
    pub timeout: Option<Duration>,
    /// When to try again; `None` never.
    pub retry: Option<crate::http::RetryPolicy>,
    /// Clusters that get a copy of a share of the requests.
    pub mirrors: Vec<Mirror>,
    /// What consistent-hash clusters hash on.
    pub hash_on: Option<HashOn>,
    /// Replacement for the matched path prefix.
    pub rewrite_path_prefix: Option<String>,
    /// Replacement authority.
    pub rewrite_authority: Option<HeaderValue>,
    /// Injected faults.
    pub fault: Option<Fault>,
}

/// A cluster that gets copies of a share of a route's requests.
#[derive(Debug, Clone, PartialEq)]
pub struct Mirror {
    /// The cluster's name.
    pub cluster: String,
    /// The share of requests copied, 0..=100.
    pub percent: f64,
}

/// One weighted destination.
#[derive(Debug)]
pub struct Destination {
    /// The cluster's name.
    pub cluster: String,
    /// Its weight among the route's destinations.
    pub weight: u32,
    /// Request edits for this destination only.
    pub request_headers: HeaderChanges,
    /// Response edits for this destination only.
    pub response_headers: HeaderChanges,
}

/// What a consistent-hash load balancer hashes on.
#[derive(Debug, Clone)]
pub enum HashOn {
    /// A request header's value.
    Header(HeaderName),
    /// A cookie's value.
    Cookie(String),
    /// The client's IP address.
    SourceIp,
    /// A query parameter's value.
    QueryParam(String),
}

/// Faults injected into a share of requests.
#[derive(Debug, Clone)]
pub struct Fault {
    /// Delay this share (0..=100) of requests by this long.
    pub delay: Option<(Duration, f64)>,
    /// Answer this share (0..=100) of requests with this status instead of forwarding.
    pub abort: Option<(StatusCode, f64)>,
}

/// A redirect answer.
#[derive(Debug, Clone)]
pub struct Redirect {
    /// New scheme, if any.
    pub scheme: Option<String>,
    /// New host, if any.
    pub host: Option<String>,
    /// New port, if any.
    pub port: Option<u16>,
    /// New path, if any.
    pub path: Option<String>,
    /// Replacement for the matched prefix, if any (when `path` is not set).
    pub path_prefix: Option<String>,
    /// The redirect status.
    pub status: StatusCode,
}

/// Header edits: set replaces, add appends, remove deletes.
#[derive(Debug, Default, Clone)]
pub struct HeaderChanges {
    set: Vec<(HeaderName, HeaderValue)>,
    add: Vec<(HeaderName, HeaderValue)>,
    remove: Vec<HeaderName>,
}

// === impl RouteTable ===

impl RouteTable {
    /// Finds the route for a request to `authority` (port ignored).
    pub fn find<B>(&self, authority: &str, req: &http::Request<B>) -> Option<&Route> {
        let host = self.host_for(authority)?;
        host.routes.iter().find(|r| r.matcher.matches(req))
    }

    fn host_for(&self, authority: &str) -> Option<&VirtualHost> {
        let host = matching::strip_port(authority);
        self.domains
            .iter()
            .find(|(pattern, _)| pattern.matches(host))
            .map(|(_, i)| &self.hosts[*i])
    }
}

// === impl Forward ===

impl Forward {
    /// Picks a destination by weight; `roll` is a uniform random number.
    pub fn pick_destination(&self, roll: u32) -> &Destination {
        if self.destinations.len() == 1 || self.total_weight == 0 {
            return &self.destinations[0];
        }
        let mut point = roll % self.total_weight;
        for dest in &self.destinations {
            if point < dest.weight {
                return dest;
            }
            point -= dest.weight;
        }
        &self.destinations[self.destinations.len() - 1]
    }
}

// === impl HeaderChanges ===

impl HeaderChanges {
    /// Whether there is nothing to change.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }

    /// Applies the edits to a header map.
    pub fn apply(&self, headers: &mut http::HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
    }
}

// === impl Route ===

impl Route {
    /// The path after replacing what this route matched with `new_prefix` (Envoy's
    /// `prefix_rewrite`): the matched prefix for prefix routes, the whole path otherwise.
    pub fn rewrite_path(&self, path: &str, new_prefix: &str) -> String {
        let rest = match &self.matcher.path {
            PathMatch::Prefix(prefix) => path.strip_prefix(prefix.as_str()).unwrap_or(path),
            PathMatch::Any => path.strip_prefix('/').unwrap_or(path),
            PathMatch::Exact(_) | PathMatch::Regex(_) => "",
        };
        match (new_prefix.ends_with('/'), rest.starts_with('/')) {
            (true, true) => format!("{new_prefix}{}", &rest[1..]),
            (false, false) if !rest.is_empty() && new_prefix != "/" && !rest.starts_with('?') => {
                format!("{new_prefix}/{rest}")
            }
            _ => format!("{new_prefix}{rest}"),
        }
    }
}
