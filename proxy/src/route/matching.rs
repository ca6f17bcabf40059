//! Whether a request matches a virtual host's domain and a route's conditions.

use super::{DomainPattern, HeaderCondition, PathMatch, RouteMatcher, ValueMatch};

/// The host part of an authority: `web:8080` → `web`, `[::1]:80` → `[::1]`.
pub(crate) fn strip_port(authority: &str) -> &str {
    match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => &authority[..i],
        _ => authority,
    }
}

// === impl DomainPattern ===

impl DomainPattern {
    /// Host names are case-insensitive; patterns are stored lower-case.
    pub(super) fn matches(&self, host: &str) -> bool {
        match self {
            DomainPattern::Any => true,
            DomainPattern::Exact(name) => host.eq_ignore_ascii_case(name),
            DomainPattern::Suffix(suffix) => {
                host.len() > suffix.len() && ends_with_ignore_case(host, suffix)
            }
            DomainPattern::Prefix(prefix) => {
                host.len() > prefix.len()
                    && host.is_char_boundary(prefix.len())
                    && host[..prefix.len()].eq_ignore_ascii_case(prefix)
            }
        }
    }
}

fn ends_with_ignore_case(host: &str, suffix: &str) -> bool {
    let start = host.len() - suffix.len();
    host.is_char_boundary(start) && host[start..].eq_ignore_ascii_case(suffix)
}

// === impl RouteMatcher ===

impl RouteMatcher {
    pub(super) fn matches<B>(&self, req: &http::Request<B>) -> bool {
        if self.method.as_ref().is_some_and(|m| m != req.method()) {
            return false;
        }
        let path = req.uri().path();
        let path_ok = match &self.path {
            PathMatch::Any => true,
            PathMatch::Exact(p) => path == p,
            PathMatch::Prefix(p) => prefix_matches(path, p),
            PathMatch::Regex(re) => re.is_match(path),
        };
        path_ok
            && self.headers.iter().all(|c| c.matches(req.headers()))
            && self
                .query
                .iter()
                .all(|(name, m)| query_param(req.uri().query(), name).is_some_and(|v| m.matches(v)))
    }
}

/// A path prefix matches on segment boundaries when it ends without `/`, as Envoy's
/// `path_separated_prefix` and Istio users expect: `/api` matches `/api` and `/api/v1`, not `/apix`.
fn prefix_matches(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        None => false,
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
    }
}

/// The first value of query parameter `name` (no percent-decoding).
pub(crate) fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

impl HeaderCondition {
    fn matches(&self, headers: &http::HeaderMap) -> bool {
        let hit = match &self.value {
            ValueMatch::Present => headers.contains_key(&self.name),
            m => headers
                .get_all(&self.name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| m.matches(v)),
        };
        hit != self.invert
    }
}

impl ValueMatch {
    fn matches(&self, value: &str) -> bool {
        match self {
            ValueMatch::Present => true,
            ValueMatch::Exact(v) => value == v,
            ValueMatch::Prefix(p) => value.starts_with(p.as_str()),
            ValueMatch::Regex(re) => re.is_match(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use mesh_proto::config::v1 as pb;

    use crate::route::{Action, RouteTable, compile_route_table};

    fn table(yaml: &str) -> RouteTable {
        let config: pb::RouteConfig = serde_yaml::from_str(yaml).expect("test yaml parses");
        let mut errors = Vec::new();
        let table = compile_route_table(&config, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        table
    }

    fn route_name(
        table: &RouteTable,
        authority: &str,
        req: http::request::Builder,
    ) -> Option<String> {
        let req = req.body(()).expect("valid request");
        table.find(authority, &req).map(|r| r.name.clone())
    }

    const ROUTES: &str = r#"
name: web
virtual_hosts:
- name: exact
  domains: [web.shop.svc.cluster.local, web]
  routes:
  - { name: canary, match: { prefix: /api, headers: [{ name: x-canary, value: { exact: "1" } }] }, route: { destinations: [{ cluster: v2 }] } }
  - { name: api-post, match: { prefix: /api, method: POST }, route: { destinations: [{ cluster: v1 }] } }
  - { name: api, match: { prefix: /api }, route: { destinations: [{ cluster: v1 }] } }
  - { name: user, match: { regex: "/users/[0-9]+", query_params: [{ name: debug, value: { exact: "on" } }] }, direct_response: { status: 200, body: dbg } }
  - { name: not-mobile, match: { headers: [{ name: user-agent, value: { regex: ".*Mobile.*" }, invert: true }] }, route: { destinations: [{ cluster: desktop }] } }
  - { name: rest, route: { destinations: [{ cluster: v1 }] } }
- name: wild
  domains: ["*.example.com"]
  routes: [{ name: wild, route: { destinations: [{ cluster: ext }] } }]
- name: any
  domains: ["*"]
  routes: [{ name: fallback, direct_response: { status: 404 } }]
"#;

    #[test]
    fn virtual_host_by_authority_with_precedence() {
        let t = table(ROUTES);
        let get = || http::Request::get("/");
        assert_eq!(
            route_name(&t, "web:80", get()).as_deref(),
            Some("not-mobile")
        );
        assert_eq!(
            route_name(&t, "WEB.shop.svc.cluster.local", get()).as_deref(),
            Some("not-mobile")
        );
        assert_eq!(
            route_name(&t, "a.example.com:443", get()).as_deref(),
            Some("wild")
        );
        assert_eq!(
            route_name(&t, "example.com", get()).as_deref(),
            Some("fallback")
        );
        assert_eq!(route_name(&t, "other", get()).as_deref(), Some("fallback"));
    }

    #[test]
    fn first_matching_route_wins() {
        let t = table(ROUTES);
        let at = |req| route_name(&t, "web", req);
        assert_eq!(
            at(http::Request::get("/api/x").header("x-canary", "1")).as_deref(),
            Some("canary")
        );
        assert_eq!(
            at(http::Request::get("/api/x").header("x-canary", "2")).as_deref(),
            Some("api")
        );
        assert_eq!(at(http::Request::post("/api")).as_deref(), Some("api-post"));
        assert_eq!(
            at(http::Request::get("/apix").header("user-agent", "Mobile")).as_deref(),
            Some("rest")
        );
        assert_eq!(
            at(http::Request::get("/users/42?debug=on")).as_deref(),
            Some("user")
        );
        assert_eq!(
            at(http::Request::get("/users/42?debug=off").header("user-agent", "x Mobile y"))
                .as_deref(),
            Some("rest")
        );
        assert_eq!(
            at(http::Request::get("/users/42/x?debug=on")).as_deref(),
            Some("not-mobile")
        );
    }

    #[test]
    fn weighted_destinations_follow_weights() {
        let t = table(
            "name: t\nvirtual_hosts: [{ name: a, domains: ['*'], routes: [{ route: { destinations: [{ cluster: v1, weight: 90 }, { cluster: v2, weight: 10 }] } }] }]",
        );
        let req = http::Request::get("/").body(()).expect("valid");
        let Some(Action::Forward(fwd)) = t.find("x", &req).map(|r| &r.action) else {
            panic!("expected a forward route");
        };
        let v2 = (0..100u32)
            .filter(|roll| fwd.pick_destination(*roll).cluster == "v2")
            .count();
        assert_eq!(v2, 10);
    }

    #[test]
    fn invalid_routes_report_every_error() {
        let config: pb::RouteConfig = serde_yaml::from_str(
            "name: bad\nvirtual_hosts: [{ name: h, domains: ['*'], routes: [{ match: { regex: '(' } , route: { destinations: [{ cluster: a }] } }, { name: empty }, { redirect: { status: 200 } }] }]",
        )
        .expect("parses");
        let mut errors = Vec::new();
        let t = compile_route_table(&config, &mut errors);
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].contains("invalid regex"), "{errors:?}");
        assert!(errors[1].contains("has no action"), "{errors:?}");
        assert!(errors[2].contains("redirect status 200"), "{errors:?}");
        let req = http::Request::get("/").body(()).expect("valid");
        assert!(t.find("x", &req).is_none(), "invalid routes are dropped");
    }

    #[test]
    fn strip_port_handles_ipv6() {
        assert_eq!(super::strip_port("[::1]:80"), "[::1]");
        assert_eq!(super::strip_port("[::1]"), "[::1]");
        assert_eq!(super::strip_port("web:8080"), "web");
        assert_eq!(super::strip_port("web"), "web");
    }
}
