//! HTTPRoute and GRPCRoute objects into the common route model. The generated types of the two
//! kinds (and of rule-level and backend-level filters) share field names but not types, so the
//! conversions of the shared shapes are written once as macros.

use gateway_api::{
    experimental::httproutes::{
        HttpRoute, HttpRouteRulesFiltersRequestRedirectScheme, HttpRouteRulesMatches,
        HttpRouteRulesMatchesHeadersType, HttpRouteRulesMatchesMethod,
        HttpRouteRulesMatchesPathType, HttpRouteRulesMatchesQueryParamsType,
    },
    grpcroutes::{GrpcRoute, GrpcRouteRulesMatchesHeadersType, GrpcRouteRulesMatchesMethodType},
};
use mesh_proto::config::v1::{
    HeaderChanges, HeaderMatch, QueryParamMatch, Redirect, RetryPolicy, RouteMatch, StringMatch,
    route_match::Path, string_match::Kind,
};

use super::super::{
    problem::Report,
    rules::{Action, Forward},
    virtual_service::check_regex,
};
use super::{
    backends::{BackendRef, Backends},
    model::{ParentRef, RouteModel, RuleModel, internal_error},
    retries::timeouts_and_retries,
};
use crate::store::{Kind as StoreKind, ObjectRef};

/// Converts a header modifier filter of any route kind into header changes.
macro_rules! header_changes {
    ($modifier:expr, $at:expr, $report:expr) => {{
        let m = $modifier;
        let changes = HeaderChanges {
            set: m
                .set
                .iter()
                .flatten()
                .map(|h| (h.name.to_ascii_lowercase(), h.value.clone()))
                .collect(),
            add: m
                .add
                .iter()
                .flatten()
                .map(|h| (h.name.to_ascii_lowercase(), h.value.clone()))
                .collect(),
            remove: m.remove.clone().unwrap_or_default(),
        };
        super::super::headers::checked(changes, $at, $report)
    }};
}

/// Converts a reference with group, kind, name, namespace and port (backends, mirrors).
macro_rules! backend_ref {
    ($r:expr, $weight:expr) => {{
        let r = $r;
        BackendRef {
            group: r.group.clone().unwrap_or_default(),
            kind: r.kind.clone().unwrap_or_else(|| "Service".to_owned()),
            name: r.name.clone(),
            namespace: r.namespace.clone(),
            port: r.port,
            weight: $weight,
        }
    }};
}

/// Converts a mirror filter into its backend and percentage.
macro_rules! mirror {
    ($m:expr) => {{
        let m = $m;
        let percentage = m.percent.map(f64::from).or_else(|| {
            m.fraction.as_ref().map(|f| {
                let denominator = f.denominator.unwrap_or(100).max(1);
                f64::from(f.numerator) * 100.0 / f64::from(denominator)
            })
        });
        (backend_ref!(&m.backend_ref, None), percentage)
    }};
}

/// What a rule's filters ask for, gathered before the action is built.
#[derive(Default)]
struct Filters {
    request_headers: Option<HeaderChanges>,
    response_headers: Option<HeaderChanges>,
    mirrors: Vec<(BackendRef, Option<f64>)>,
    redirect: Option<Redirect>,
    rewrite_path: Option<RewritePath>,
    rewrite_host: Option<String>,
    /// (field, what) of each filter mesh cannot honour.
    unsupported: Vec<(String, String)>,
}

/// A URL rewrite of the path.
enum RewritePath {
    /// Replace the whole path.
    Full(String),
    /// Replace the matched prefix.
    Prefix(String),
}

/// Compiles an HTTPRoute.
pub(crate) fn http_route(
    route: &HttpRoute,
    backends: &Backends<'_>,
    report: &mut Report<'_>,
) -> RouteModel {
    let namespace = report.object().namespace.clone();
    let spec = &route.spec;
    let rules = spec
        .rules
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, rule)| {
            let at = format!("spec.rules[{i}]");
            let mut matches: Vec<RouteMatch> = rule
                .matches
                .iter()
                .flatten()
                .enumerate()
                .filter_map(|(j, m)| http_match(m, &format!("{at}.matches[{j}]"), report))
                .collect();
            if rule.matches.as_ref().is_none_or(Vec::is_empty) {
                matches.push(prefix_match("/"));
            }
            let mut filters = Filters::default();
            for (j, f) in rule.filters.iter().flatten().enumerate() {
                let field = format!("{at}.filters[{j}]");
                if let Some(m) = &f.request_header_modifier {
                    let at = format!("{field}.requestHeaderModifier");
                    filters.request_headers = Some(header_changes!(m, &at, report));
                } else if let Some(m) = &f.response_header_modifier {
                    let at = format!("{field}.responseHeaderModifier");
                    filters.response_headers = Some(header_changes!(m, &at, report));
                } else if let Some(m) = &f.request_mirror {
                    filters.mirrors.push(mirror!(m));
                } else if let Some(r) = &f.request_redirect {
                    let path = r.path.as_ref().map(|p| {
                        match (&p.replace_full_path, &p.replace_prefix_match) {
                            (Some(full), _) => RewritePath::Full(full.clone()),
                            (None, prefix) => {
                                RewritePath::Prefix(prefix.clone().unwrap_or_default())
                            }
                        }
                    });
                    let (path, path_prefix) = match path {
                        None => (String::new(), String::new()),
                        Some(RewritePath::Full(full)) => (full, String::new()),
                        Some(RewritePath::Prefix(prefix)) if exact_paths(&matches) => {
                            (prefix, String::new())
                        }
                        Some(RewritePath::Prefix(prefix)) => {
                            if matches
                                .iter()
                                .any(|m| matches!(m.path, Some(Path::Regex(_))))
                            {
                                filters.unsupported.push((
                                    field.clone(),
                                    "a redirect with ReplacePrefixMatch on a regex match"
                                        .to_owned(),
                                ));
                            }
                            (
                                String::new(),
                                if prefix.is_empty() {
                                    "/".to_owned()
                                } else {
                                    prefix
                                },
                            )
                        }
                    };
                    filters.redirect = Some(Redirect {
                        scheme: match &r.scheme {
                            Some(HttpRouteRulesFiltersRequestRedirectScheme::Http) => {
                                "http".to_owned()
                            }
                            Some(HttpRouteRulesFiltersRequestRedirectScheme::Https) => {
                                "https".to_owned()
                            }
                            None => String::new(),
                        },
                        host: r.hostname.clone().unwrap_or_default(),
                        port: r.port.and_then(|p| u32::try_from(p).ok()).unwrap_or(0),
                        path,
                        path_prefix,
                        status: r
                            .status_code
                            .and_then(|c| u32::try_from(c).ok())
                            .unwrap_or(302),
                    });
                } else if let Some(rewrite) = &f.url_rewrite {
                    filters.rewrite_host = rewrite.hostname.clone();
                    filters.rewrite_path = rewrite.path.as_ref().map(|p| {
                        match (&p.replace_full_path, &p.replace_prefix_match) {
                            (Some(full), _) => RewritePath::Full(full.clone()),
                            (None, prefix) => {
                                RewritePath::Prefix(prefix.clone().unwrap_or_default())
                            }
                        }
                    });
                } else if f.cors.is_some() {
                    filters
                        .unsupported
                        .push((field.clone(), "the CORS filter".to_owned()));
                } else if f.extension_ref.is_some() {
                    filters
                        .unsupported
                        .push((field.clone(), "the ExtensionRef filter".to_owned()));
                } else if f.external_auth.is_some() {
                    filters
                        .unsupported
                        .push((field.clone(), "the ExternalAuth filter".to_owned()));
                } else {
                    filters
                        .unsupported
                        .push((field.clone(), "a filter without its settings".to_owned()));
                }
            }
            let refs: Vec<BackendRef> = rule
                .backend_refs
                .iter()
                .flatten()
                .enumerate()
                .map(|(j, b)| {
                    for (k, f) in b.filters.iter().flatten().enumerate() {
                        if f.request_header_modifier.is_none()
                            && f.response_header_modifier.is_none()
                        {
                            filters.unsupported.push((
                                format!("{at}.backendRefs[{j}].filters[{k}]"),
                                "a backend filter other than a header modifier".to_owned(),
                            ));
                        }
                    }
                    backend_ref!(b, b.weight)
                })
                .collect();
            let backend_headers: Vec<(Option<HeaderChanges>, Option<HeaderChanges>)> = rule
                .backend_refs
                .iter()
                .flatten()
                .enumerate()
                .map(|(j, b)| {
                    let mut request = None;
                    let mut response = None;
                    for (k, f) in b.filters.iter().flatten().enumerate() {
                        let field = format!("{at}.backendRefs[{j}].filters[{k}]");
                        if let Some(m) = &f.request_header_modifier {
                            let at = format!("{field}.requestHeaderModifier");
                            request = Some(header_changes!(m, &at, report));
                        }
                        if let Some(m) = &f.response_header_modifier {
                            let at = format!("{field}.responseHeaderModifier");
                            response = Some(header_changes!(m, &at, report));
                        }
                    }
                    (request, response)
                })
                .collect();
            let timeouts = rule.timeouts.as_ref();
            let (timeout, retries) = timeouts_and_retries(
                timeouts.and_then(|t| t.request.as_deref()),
                timeouts.and_then(|t| t.backend_request.as_deref()),
                rule.retry.as_ref(),
                &at,
                report,
            );
            if rule.session_persistence.is_some() {
                report.warning(
                    format!("{at}.sessionPersistence"),
                    "mesh does not keep sessions on one backend; requests are balanced as usual",
                    "remove the field, or pin with a DestinationRule consistentHash",
                );
            }
            let name = rule.name.clone().unwrap_or_else(|| i.to_string());
            build_rule(
                RuleParts {
                    name: format!("{}/{}.{name}", namespace, report.object().name),
                    matches,
                    filters,
                    refs,
                    backend_headers,
                    timeout,
                    retries,
                },
                &at,
                backends,
                report,
            )
        })
        .collect();
    RouteModel {
        origin: report.object().clone(),
        created: route.metadata.creation_timestamp.clone(),
        hostnames: spec.hostnames.clone().unwrap_or_default(),
        parents: parent_refs!(spec.parent_refs, namespace),
        rules,
        l4: Vec::new(),
    }
}

/// Compiles a GRPCRoute.
pub(crate) fn grpc_route(
    route: &GrpcRoute,
    backends: &Backends<'_>,
    report: &mut Report<'_>,
) -> RouteModel {
    let namespace = report.object().namespace.clone();
    let spec = &route.spec;
    let rules = spec
        .rules
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, rule)| {
            let at = format!("spec.rules[{i}]");
            let mut matches: Vec<RouteMatch> = Vec::new();
            for (j, m) in rule.matches.iter().flatten().enumerate() {
                let at = format!("{at}.matches[{j}]");
                let regex = m.method.as_ref().is_some_and(|m| {
                    m.r#type == Some(GrpcRouteRulesMatchesMethodType::RegularExpression)
                });
                let service = m.method.as_ref().and_then(|m| m.service.clone());
                let method = m.method.as_ref().and_then(|m| m.method.clone());
                let path = match (service, method, regex) {
                    (None, None, _) if m.method.is_some() => {
                        report.warning(
                            format!("{at}.method"),
                            "a method match needs service or method",
                            "set one of them",
                        );
                        continue;
                    }
                    (None, None, _) => Path::Prefix("/".to_owned()),
                    (Some(s), Some(m), false) => Path::Exact(format!("/{s}/{m}")),
                    (Some(s), None, false) => Path::Prefix(format!("/{s}/")),
                    (None, Some(m), false) => Path::Regex(format!("/[^/]+/{}", regex::escape(&m))),
                    (s, m, true) => {
                        let s = s.unwrap_or_else(|| "[^/]+".to_owned());
                        let m = m.unwrap_or_else(|| "[^/]+".to_owned());
                        let pattern = format!("/(?:{s})/(?:{m})");
                        if !check_regex(&pattern, &format!("{at}.method"), report) {
                            continue;
                        }
                        Path::Regex(pattern)
                    }
                };
                let mut headers = Vec::new();
                for (k, h) in m.headers.iter().flatten().enumerate() {
                    let regex =
                        h.r#type == Some(GrpcRouteRulesMatchesHeadersType::RegularExpression);
                    if let Some(value) =
                        value_match(&h.value, regex, &format!("{at}.headers[{k}]"), report)
                    {
                        headers.push(HeaderMatch {
                            name: h.name.to_ascii_lowercase(),
                            value: Some(value),
                            invert: false,
                        });
                    }
                }
                matches.push(RouteMatch {
                    path: Some(path),
                    headers,
                    ..RouteMatch::default()
                });
            }
            if rule.matches.as_ref().is_none_or(Vec::is_empty) {
                matches.push(prefix_match("/"));
            }
            let mut filters = Filters::default();
            for (j, f) in rule.filters.iter().flatten().enumerate() {
                let field = format!("{at}.filters[{j}]");
                if let Some(m) = &f.request_header_modifier {
                    let at = format!("{field}.requestHeaderModifier");
                    filters.request_headers = Some(header_changes!(m, &at, report));
                } else if let Some(m) = &f.response_header_modifier {
                    let at = format!("{field}.responseHeaderModifier");
                    filters.response_headers = Some(header_changes!(m, &at, report));
                } else if let Some(m) = &f.request_mirror {
                    filters.mirrors.push(mirror!(m));
                } else if f.extension_ref.is_some() {
                    filters
                        .unsupported
                        .push((field.clone(), "the ExtensionRef filter".to_owned()));
                } else {
                    filters
                        .unsupported
                        .push((field.clone(), "a filter without its settings".to_owned()));
                }
            }
            let refs = rule
                .backend_refs
                .iter()
                .flatten()
                .map(|b| backend_ref!(b, b.weight))
                .collect();
            let backend_headers = rule
                .backend_refs
                .iter()
                .flatten()
                .enumerate()
                .map(|(j, b)| {
                    let mut request = None;
                    let mut response = None;
                    for (k, f) in b.filters.iter().flatten().enumerate() {
                        let field = format!("{at}.backendRefs[{j}].filters[{k}]");
                        if let Some(m) = &f.request_header_modifier {
                            let at = format!("{field}.requestHeaderModifier");
                            request = Some(header_changes!(m, &at, report));
                        }
                        if let Some(m) = &f.response_header_modifier {
                            let at = format!("{field}.responseHeaderModifier");
                            response = Some(header_changes!(m, &at, report));
                        }
                    }
                    (request, response)
                })
                .collect();
            let name = rule.name.clone().unwrap_or_else(|| i.to_string());
            build_rule(
                RuleParts {
                    name: format!("{}/{}.{name}", namespace, report.object().name),
                    matches,
                    filters,
                    refs,
                    backend_headers,
                    timeout: None,
                    retries: None,
                },
                &at,
                backends,
                report,
            )
        })
        .collect();
    RouteModel {
        origin: report.object().clone(),
        created: route.metadata.creation_timestamp.clone(),
        hostnames: spec.hostnames.clone().unwrap_or_default(),
        parents: parent_refs!(spec.parent_refs, namespace),
        rules,
        l4: Vec::new(),
    }
}

/// The reference of a route object.
pub(crate) fn route_ref(
    kind: StoreKind,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> ObjectRef {
    ObjectRef::new(
        kind,
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// Everything a rule says, gathered.
struct RuleParts {
    name: String,
    matches: Vec<RouteMatch>,
    filters: Filters,
    refs: Vec<BackendRef>,
    backend_headers: Vec<(Option<HeaderChanges>, Option<HeaderChanges>)>,
    timeout: Option<pbjson_types::Duration>,
    retries: Option<RetryPolicy>,
}

/// Builds the rule's action; a rule with unsupported filters or no usable backend answers 500.
fn build_rule(
    parts: RuleParts,
    at: &str,
    backends: &Backends<'_>,
    report: &mut Report<'_>,
) -> RuleModel {
    let RuleParts {
        name,
        mut matches,
        filters,
        refs,
        backend_headers,
        timeout,
        retries,
    } = parts;
    let mut unsupported = filters.unsupported;
    let mut rewrite = mesh_proto::config::v1::Rewrite {
        path_prefix: String::new(),
        authority: filters.rewrite_host.unwrap_or_default(),
    };
    match filters.rewrite_path {
        Some(RewritePath::Prefix(prefix)) => {
            if matches
                .iter()
                .any(|m| matches!(m.path, Some(Path::Regex(_))))
            {
                unsupported.push((
                    format!("{at}.filters"),
                    "a URLRewrite with ReplacePrefixMatch on a regex path match".to_owned(),
                ));
            }
            rewrite.path_prefix = if prefix.is_empty() {
                "/".to_owned()
            } else {
                prefix
            };
        }
        Some(RewritePath::Full(full)) => {
            // The proxy replaces the whole path for exact and regex matches: prefix matches
            // become the equivalent regex.
            for m in &mut matches {
                if let Some(Path::Prefix(prefix)) = &m.path {
                    m.path = Some(Path::Regex(prefix_as_regex(prefix)));
                }
            }
            rewrite.path_prefix = full;
        }
        None => {}
    }
    let action = if !unsupported.is_empty() {
        for (field, what) in &unsupported {
            report.error(
                field,
                format!("{what} is not supported by mesh; the rule answers 500"),
                "remove the filter, or route this traffic another way",
            );
        }
        internal_error()
    } else if let Some(redirect) = filters.redirect {
        Action::Redirect(redirect)
    } else {
        let mut dests = backends.resolve(&refs, &format!("{at}.backendRefs"), report);
        for (dest, (request, response)) in dests.iter_mut().zip(backend_headers) {
            if let Some(dest) = dest {
                dest.request_headers = request;
                dest.response_headers = response;
            }
        }
        let dests: Vec<_> = dests.into_iter().flatten().collect();
        let mirrors = (filters.mirrors.into_iter())
            .filter_map(|(backend, percentage)| {
                let mut resolved = backends.resolve(
                    &[backend],
                    &format!("{at}.filters.requestMirror.backendRef"),
                    report,
                );
                resolved.pop().flatten().map(|d| (d, percentage))
            })
            .collect();
        if dests.is_empty() {
            if !refs.is_empty() {
                report.warning(
                    format!("{at}.backendRefs"),
                    "no backend can take traffic (all invalid or weighted 0); the rule answers 500",
                    "fix the backends or their weights",
                );
            }
            internal_error()
        } else {
            Action::Forward(Box::new(Forward {
                dests,
                timeout,
                retries,
                mirrors,
                fault: None,
                rewrite: (rewrite != mesh_proto::config::v1::Rewrite::default()).then_some(rewrite),
            }))
        }
    };
    RuleModel {
        name,
        matches,
        action,
        request_headers: filters.request_headers,
        response_headers: filters.response_headers,
    }
}

/// An HTTPRoute match in proxy terms; `None` when invalid (reported).
fn http_match(m: &HttpRouteRulesMatches, at: &str, report: &mut Report<'_>) -> Option<RouteMatch> {
    let before = report.error_count();
    let path = match &m.path {
        None => Path::Prefix("/".to_owned()),
        Some(p) => {
            let value = p.value.clone().unwrap_or_else(|| "/".to_owned());
            match p
                .r#type
                .clone()
                .unwrap_or(HttpRouteRulesMatchesPathType::PathPrefix)
            {
                HttpRouteRulesMatchesPathType::Exact => Path::Exact(value),
                HttpRouteRulesMatchesPathType::PathPrefix => Path::Prefix(value),
                HttpRouteRulesMatchesPathType::RegularExpression => {
                    check_regex(&value, &format!("{at}.path.value"), report);
                    Path::Regex(value)
                }
            }
        }
    };
    let mut out = RouteMatch {
        path: Some(path),
        method: m
            .method
            .as_ref()
            .map(method_name)
            .unwrap_or_default()
            .to_owned(),
        ..RouteMatch::default()
    };
    for (k, h) in m.headers.iter().flatten().enumerate() {
        let regex = h.r#type == Some(HttpRouteRulesMatchesHeadersType::RegularExpression);
        if let Some(value) = value_match(&h.value, regex, &format!("{at}.headers[{k}]"), report) {
            out.headers.push(HeaderMatch {
                name: h.name.to_ascii_lowercase(),
                value: Some(value),
                invert: false,
            });
        }
    }
    for (k, q) in m.query_params.iter().flatten().enumerate() {
        let regex = q.r#type == Some(HttpRouteRulesMatchesQueryParamsType::RegularExpression);
        if let Some(value) = value_match(&q.value, regex, &format!("{at}.queryParams[{k}]"), report)
        {
            out.query_params.push(QueryParamMatch {
                name: q.name.clone(),
                value: Some(value),
            });
        }
    }
    (report.error_count() == before).then_some(out)
}

fn value_match(value: &str, regex: bool, at: &str, report: &mut Report<'_>) -> Option<StringMatch> {
    let kind = if regex {
        if !check_regex(value, &format!("{at}.value"), report) {
            return None;
        }
        Kind::Regex(value.to_owned())
    } else {
        Kind::Exact(value.to_owned())
    };
    Some(StringMatch { kind: Some(kind) })
}

fn method_name(method: &HttpRouteRulesMatchesMethod) -> &'static str {
    match method {
        HttpRouteRulesMatchesMethod::Get => "GET",
        HttpRouteRulesMatchesMethod::Head => "HEAD",
        HttpRouteRulesMatchesMethod::Post => "POST",
        HttpRouteRulesMatchesMethod::Put => "PUT",
        HttpRouteRulesMatchesMethod::Delete => "DELETE",
        HttpRouteRulesMatchesMethod::Connect => "CONNECT",
        HttpRouteRulesMatchesMethod::Options => "OPTIONS",
        HttpRouteRulesMatchesMethod::Trace => "TRACE",
        HttpRouteRulesMatchesMethod::Patch => "PATCH",
    }
}

fn prefix_match(prefix: &str) -> RouteMatch {
    RouteMatch {
        path: Some(Path::Prefix(prefix.to_owned())),
        ..RouteMatch::default()
    }
}

/// Whether every match is an exact path match.
fn exact_paths(matches: &[RouteMatch]) -> bool {
    matches
        .iter()
        .all(|m| matches!(m.path, Some(Path::Exact(_))))
}

/// A path-prefix match (by path elements) as a regex.
fn prefix_as_regex(prefix: &str) -> String {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() {
        "/.*".to_owned()
    } else {
        format!("{}(?:/.*)?", regex::escape(trimmed))
    }
}
