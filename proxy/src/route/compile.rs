//! Turns a `RouteConfig` message into a `RouteTable`, reporting every invalid field at once.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use mesh_proto::config::v1 as pb;
use regex::Regex;

use crate::http::{DEFAULT_POLICY, RetryPolicy};

use super::{
    Action, DomainPattern, Fault, Forward, HashOn, HeaderChanges, HeaderCondition, Mirror,
    PathMatch, Redirect, Route, RouteMatcher, RouteTable, ValueMatch, VirtualHost,
};

/// Compiles a route config; `errors` collects a message per invalid field (prefixed by `where`).
pub fn compile_route_table(config: &pb::RouteConfig, errors: &mut Vec<String>) -> RouteTable {
    let mut hosts = Vec::with_capacity(config.virtual_hosts.len());
    let mut domains = Vec::new();
    for (index, vhost) in config.virtual_hosts.iter().enumerate() {
        let at = format!(
            "route config {:?} virtual host {:?}",
            config.name, vhost.name
        );
        for domain in &vhost.domains {
            let pattern = DomainPattern::parse(domain);
            if domains.iter().any(|(p, _)| *p == pattern) {
                errors.push(format!(
                    "{at}: domain {domain:?} appears in two virtual hosts"
                ));
                continue;
            }
            domains.push((pattern, index));
        }
        let routes = vhost
            .routes
            .iter()
            .enumerate()
            .filter_map(|(i, r)| compile_route(r, &format!("{at} route {i}"), errors))
            .collect();
        hosts.push(VirtualHost {
            name: vhost.name.clone(),
            routes,
        });
    }
    domains.sort_by_key(|(pattern, _)| pattern.precedence());
    RouteTable {
        name: config.name.clone(),
        hosts,
        domains,
    }
}

fn compile_route(route: &pb::Route, at: &str, errors: &mut Vec<String>) -> Option<Route> {
    let at = if route.name.is_empty() {
        at.to_owned()
    } else {
        format!("{at} ({:?})", route.name)
    };
    let before = errors.len();
    let matcher = route
        .r#match
        .as_ref()
        .map(|m| compile_match(m, &at, errors))
        .unwrap_or_default();
    let action = match &route.action {
        Some(pb::route::Action::Route(action)) => {
            compile_forward(action, &at, errors).map(Action::Forward)
        }
        Some(pb::route::Action::Redirect(redirect)) => {
            Some(Action::Redirect(compile_redirect(redirect, &at, errors)))
        }
        Some(pb::route::Action::DirectResponse(direct)) => Some(Action::Direct {
            status: status(direct.status, &at, errors),
            body: Bytes::from(direct.body.clone()),
        }),
        None => {
            errors.push(format!(
                "{at}: has no action (route, redirect or direct_response)"
            ));
            None
        }
    };
    let request_headers = header_changes(route.request_headers.as_ref(), &at, errors);
    let response_headers = header_changes(route.response_headers.as_ref(), &at, errors);
    if errors.len() != before {
        return None;
    }
    Some(Route {
        name: route.name.clone(),
        matcher,
        action: action?,
        request_headers,
        response_headers,
    })
}

fn compile_match(m: &pb::RouteMatch, at: &str, errors: &mut Vec<String>) -> RouteMatcher {
    use pb::route_match::Path;
    let path = match &m.path {
        None => PathMatch::Any,
        Some(Path::Prefix(p)) if p.is_empty() || p == "/" => PathMatch::Any,
        Some(Path::Prefix(p)) => PathMatch::Prefix(p.clone()),
        Some(Path::Exact(p)) => PathMatch::Exact(p.clone()),
        Some(Path::Regex(r)) => match full_regex(r, at, errors) {
            Some(re) => PathMatch::Regex(re),
            None => PathMatch::Any,
        },
    };
    let headers = m
        .headers
        .iter()
        .filter_map(|h| {
            let name = header_name(&h.name, at, errors)?;
            let value = value_match(h.value.as_ref(), at, errors)?;
            Some(HeaderCondition {
                name,
                value,
                invert: h.invert,
            })
        })
        .collect();
    let query = m
        .query_params
        .iter()
        .filter_map(|q| Some((q.name.clone(), value_match(q.value.as_ref(), at, errors)?)))
        .collect();
    let method = if m.method.is_empty() {
        None
    } else {
        match http::Method::from_bytes(m.method.as_bytes()) {
            Ok(method) => Some(method),
            Err(_) => {
                errors.push(format!("{at}: {:?} is not an HTTP method", m.method));
                None
            }
        }
    };
    RouteMatcher {
        path,
        headers,
        query,
        method,
    }
}

fn value_match(
    m: Option<&pb::StringMatch>,
    at: &str,
    errors: &mut Vec<String>,
) -> Option<ValueMatch> {
    use pb::string_match::Kind;
    Some(match m.and_then(|m| m.kind.as_ref()) {
        None | Some(Kind::Present(_)) => ValueMatch::Present,
        Some(Kind::Exact(v)) => ValueMatch::Exact(v.clone()),
        Some(Kind::Prefix(v)) => ValueMatch::Prefix(v.clone()),
        Some(Kind::Regex(r)) => ValueMatch::Regex(full_regex(r, at, errors)?),
    })
}

fn compile_forward(
    action: &pb::RouteAction,
    at: &str,
    errors: &mut Vec<String>,
) -> Option<Forward> {
    if action.destinations.is_empty() {
        errors.push(format!("{at}: route action has no destinations"));
        return None;
    }
    let destinations: Vec<_> = action
        .destinations
        .iter()
        .map(|d| super::Destination {
            cluster: d.cluster.clone(),
            weight: d.weight,
            request_headers: header_changes(d.request_headers.as_ref(), at, errors),
            response_headers: header_changes(d.response_headers.as_ref(), at, errors),
        })
        .collect();
    if let Some(empty) = destinations.iter().find(|d| d.cluster.is_empty()) {
        errors.push(format!(
            "{at}: a destination (weight {}) names no cluster",
            empty.weight
        ));
    }
    let total_weight = destinations.iter().map(|d| d.weight).sum();
    if total_weight == 0 && destinations.len() > 1 {
        errors.push(format!(
            "{at}: {} destinations but every weight is 0",
            destinations.len()
        ));
    }
    let hash_on = action.hash_policy.as_ref().and_then(|h| {
        use pb::hash_policy::Key;
        Some(match h.key.as_ref()? {
            Key::Header(name) => HashOn::Header(header_name(name, at, errors)?),
            Key::Cookie(name) => HashOn::Cookie(name.clone()),
            Key::SourceIp(true) => HashOn::SourceIp,
            Key::SourceIp(false) => return None,
            Key::QueryParam(name) => HashOn::QueryParam(name.clone()),
        })
    });
    let rewrite = action.rewrite.as_ref();
    let rewrite_authority = rewrite
        .filter(|r| !r.authority.is_empty())
        .and_then(|r| header_value(&r.authority, at, errors));
    Some(Forward {
        destinations,
        total_weight,
        timeout: checked_duration(action.timeout.as_ref(), "timeout", at, errors),
        retry: compile_retry(action.retries.as_ref(), at, errors),
        mirrors: (action.mirrors.iter())
            .filter_map(|m| compile_mirror(m, at, errors))
            .collect(),
        hash_on,
        rewrite_path_prefix: rewrite
            .filter(|r| !r.path_prefix.is_empty())
            .map(|r| r.path_prefix.clone()),
        rewrite_authority,
        fault: action.fault.as_ref().map(|f| compile_fault(f, at, errors)),
    })
}

fn compile_mirror(m: &pb::MirrorPolicy, at: &str, errors: &mut Vec<String>) -> Option<Mirror> {
    let percent = m.percentage.unwrap_or(100.0);
    if !(0.0..=100.0).contains(&percent) {
        errors.push(format!(
            "{at}: mirror percentage {percent} is outside 0..=100"
        ));
        return None;
    }
    if m.cluster.is_empty() {
        errors.push(format!("{at}: a mirror names no cluster"));
        return None;
    }
    Some(Mirror {
        cluster: m.cluster.clone(),
        percent,
    })
}

/// More retries than this is a mistake, not a policy.
const MAX_RETRIES: u32 = 100;

/// The route's retry policy: the default when it sets none, `None` when it sets 0 attempts.
fn compile_retry(
    retries: Option<&pb::RetryPolicy>,
    at: &str,
    errors: &mut Vec<String>,
) -> Option<RetryPolicy> {
    let Some(retries) = retries else {
        return Some(DEFAULT_POLICY.clone());
    };
    if retries.attempts > MAX_RETRIES {
        errors.push(format!(
            "{at}: retries.attempts {} is more than {MAX_RETRIES}",
            retries.attempts
        ));
    }
    let statuses: Vec<u16> = retries
        .retriable_status_codes
        .iter()
        .filter_map(|&code| match u16::try_from(code) {
            Ok(code @ 100..=599) => Some(code),
            _ => {
                errors.push(format!(
                    "{at}: retries.retriable_status_codes: {code} is not an HTTP status"
                ));
                None
            }
        })
        .collect();
    let per_try_timeout = positive_duration(
        retries.per_try_timeout.as_ref(),
        "retries.per_try_timeout",
        at,
        errors,
    );
    let backoff = positive_duration(retries.backoff.as_ref(), "retries.backoff", at, errors);
    let policy = RetryPolicy::new(
        retries.attempts,
        per_try_timeout,
        &retries.retry_on,
        &statuses,
        backoff,
    )
    .map_err(|e| errors.push(format!("{at}: retries.retry_on: {e}")))
    .ok()?;
    let policy = match retries.backoff_is_minimum {
        true => policy.with_minimum_backoff(),
        false => policy,
    };
    (retries.attempts > 0).then_some(policy)
}

/// An optional duration that must be positive when present.
fn positive_duration(
    d: Option<&pbjson_types::Duration>,
    field: &str,
    at: &str,
    errors: &mut Vec<String>,
) -> Option<Duration> {
    let d = d?;
    match duration(Some(d)) {
        Some(positive) if d.seconds >= 0 && d.nanos >= 0 => Some(positive),
        _ => {
            errors.push(format!(
                "{at}: {field} must be positive (got {}s {}ns)",
                d.seconds, d.nanos
            ));
            None
        }
    }
}

/// An optional duration that may be zero (meaning none) but not negative.
fn checked_duration(
    d: Option<&pbjson_types::Duration>,
    field: &str,
    at: &str,
    errors: &mut Vec<String>,
) -> Option<Duration> {
    let d = d?;
    if d.seconds < 0 || d.nanos < 0 {
        errors.push(format!(
            "{at}: {field} is negative ({}s {}ns)",
            d.seconds, d.nanos
        ));
        return None;
    }
    duration(Some(d))
}

fn compile_fault(fault: &pb::FaultInjection, at: &str, errors: &mut Vec<String>) -> Fault {
    let percent = |p: f64, errors: &mut Vec<String>| {
        if !(0.0..=100.0).contains(&p) {
            errors.push(format!("{at}: fault percentage {p} is outside 0..=100"));
        }
        p
    };
    Fault {
        delay: fault.delay.as_ref().map(|d| {
            (
                duration(d.fixed_delay.as_ref()).unwrap_or_default(),
                percent(d.percentage, errors),
            )
        }),
        abort: fault.abort.as_ref().map(|a| {
            (
                status(a.http_status, at, errors),
                percent(a.percentage, errors),
            )
        }),
    }
}

fn compile_redirect(r: &pb::Redirect, at: &str, errors: &mut Vec<String>) -> Redirect {
    let code = if r.status == 0 { 301 } else { r.status };
    if !matches!(code, 301 | 302 | 303 | 307 | 308) {
        errors.push(format!(
            "{at}: redirect status {code} is not one of 301, 302, 303, 307, 308"
        ));
    }
    let port = match u16::try_from(r.port) {
        Ok(0) => None,
        Ok(port) => Some(port),
        Err(_) => {
            errors.push(format!("{at}: redirect port {} is out of range", r.port));
            None
        }
    };
    let some = |s: &String| (!s.is_empty()).then(|| s.clone());
    Redirect {
        scheme: some(&r.scheme),
        host: some(&r.host),
        port,
        path: some(&r.path),
        path_prefix: some(&r.path_prefix),
        status: status(code, at, errors),
    }
}

fn header_changes(
    c: Option<&pb::HeaderChanges>,
    at: &str,
    errors: &mut Vec<String>,
) -> HeaderChanges {
    let Some(c) = c else {
        return HeaderChanges::default();
    };
    let mut pairs = |map: &std::collections::BTreeMap<String, String>| {
        let mut pairs: Vec<_> = map
            .iter()
            .filter_map(|(k, v)| Some((header_name(k, at, errors)?, header_value(v, at, errors)?)))
            .collect();
        pairs.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        pairs
    };
    let set = pairs(&c.set);
    let add = pairs(&c.add);
    HeaderChanges {
        set,
        add,
        remove: c
            .remove
            .iter()
            .filter_map(|n| header_name(n, at, errors))
            .collect(),
    }
}

fn full_regex(pattern: &str, at: &str, errors: &mut Vec<String>) -> Option<Regex> {
    match Regex::new(&format!("^(?:{pattern})$")) {
        Ok(re) => Some(re),
        Err(e) => {
            errors.push(format!("{at}: invalid regex {pattern:?}: {e}"));
            None
        }
    }
}

fn header_name(name: &str, at: &str, errors: &mut Vec<String>) -> Option<HeaderName> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| errors.push(format!("{at}: {name:?} is not a valid header name")))
        .ok()
}

fn header_value(value: &str, at: &str, errors: &mut Vec<String>) -> Option<HeaderValue> {
    HeaderValue::from_str(value)
        .map_err(|_| errors.push(format!("{at}: {value:?} is not a valid header value")))
        .ok()
}

fn status(code: u32, at: &str, errors: &mut Vec<String>) -> StatusCode {
    u16::try_from(code)
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or_else(|| {
            errors.push(format!("{at}: {code} is not an HTTP status code"));
            StatusCode::INTERNAL_SERVER_ERROR
        })
}

/// Converts a protobuf duration; negative or absent means none.
pub(crate) fn duration(d: Option<&pbjson_types::Duration>) -> Option<Duration> {
    let d = d?;
    let secs = u64::try_from(d.seconds).ok()?;
    let nanos = u32::try_from(d.nanos).ok()?;
    Some(Duration::new(secs, nanos)).filter(|d| !d.is_zero())
}

// === impl DomainPattern ===

impl DomainPattern {
    fn parse(domain: &str) -> Self {
        let domain = domain.to_ascii_lowercase();
        if domain == "*" {
            DomainPattern::Any
        } else if let Some(suffix) = domain.strip_prefix('*') {
            DomainPattern::Suffix(suffix.to_owned())
        } else if let Some(prefix) = domain.strip_suffix('*') {
            DomainPattern::Prefix(prefix.to_owned())
        } else {
            DomainPattern::Exact(domain)
        }
    }

    /// Sort key: exact first, then longer suffixes, then longer prefixes, then any.
    fn precedence(&self) -> (u8, std::cmp::Reverse<usize>) {
        match self {
            DomainPattern::Exact(_) => (0, std::cmp::Reverse(0)),
            DomainPattern::Suffix(s) => (1, std::cmp::Reverse(s.len())),
            DomainPattern::Prefix(p) => (2, std::cmp::Reverse(p.len())),
            DomainPattern::Any => (3, std::cmp::Reverse(0)),
        }
    }
}
