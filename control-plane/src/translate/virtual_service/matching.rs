//! VirtualService match conditions: request conditions become a `RouteMatch`, source and port
//! conditions a `Scope`.

use mesh_proto::config::v1::{
    HeaderMatch, QueryParamMatch, RouteMatch, StringMatch as PbStringMatch, route_match::Path,
    string_match::Kind,
};

use super::super::{problem::Report, rules::Scope};
use crate::istio::{common::StringMatch, virtual_service::HttpMatchRequest};

/// Checks that `pattern` compiles as the proxy will compile it (anchored to the whole value).
pub(crate) fn check_regex(pattern: &str, at: &str, report: &mut Report<'_>) -> bool {
    match regex::Regex::new(&format!("^(?:{pattern})$")) {
        Ok(_) => true,
        Err(e) => {
            // The regex crate's syntax errors span lines (pattern, caret, message): keep the
            // message.
            let text = e.to_string();
            let reason = text.lines().last().unwrap_or_default().trim();
            let reason = reason.strip_prefix("error: ").unwrap_or(reason);
            report.error(
                at,
                format!("invalid regex {pattern:?}: {reason}"),
                "write an RE2-style regular expression",
            );
            false
        }
    }
}

/// A `StringMatch` with exactly one kind set; an empty one (`{}`) means "present".
fn string_match(m: &StringMatch, at: &str, report: &mut Report<'_>) -> Option<PbStringMatch> {
    let kinds = [&m.exact, &m.prefix, &m.regex]
        .iter()
        .filter(|k| k.is_some())
        .count();
    if kinds > 1 {
        report.error(
            at,
            "more than one of exact, prefix and regex is set",
            "keep one",
        );
        return None;
    }
    let kind = if let Some(exact) = &m.exact {
        Kind::Exact(exact.clone())
    } else if let Some(prefix) = &m.prefix {
        Kind::Prefix(prefix.clone())
    } else if let Some(regex) = &m.regex {
        if !check_regex(regex, at, report) {
            return None;
        }
        Kind::Regex(regex.clone())
    } else {
        Kind::Present(true)
    };
    Some(PbStringMatch { kind: Some(kind) })
}

/// The path condition of a `uri` match, honouring `ignoreUriCase`.
fn path(uri: &StringMatch, ignore_case: bool, at: &str, report: &mut Report<'_>) -> Option<Path> {
    let kind = string_match(uri, at, report)?.kind?;
    Some(match (kind, ignore_case) {
        (Kind::Present(_), _) => {
            report.error(
                at,
                "the uri condition is empty",
                "set exact, prefix or regex",
            );
            return None;
        }
        (Kind::Exact(p), false) => Path::Exact(p),
        (Kind::Prefix(p), false) => Path::Prefix(p),
        (Kind::Regex(r), false) => Path::Regex(r),
        (Kind::Exact(p), true) => Path::Regex(format!("(?i){}", regex::escape(&p))),
        (Kind::Prefix(p), true) => Path::Regex(format!("(?i){}.*", regex::escape(&p))),
        (Kind::Regex(r), true) => Path::Regex(format!("(?i)(?:{r})")),
    })
}

/// Compiles one HTTP match: the request condition and the scope (port, source). `None` when
/// the match is invalid (reported) or uses a condition mesh cannot honour.
pub(crate) fn compile_match(
    m: &HttpMatchRequest,
    at: &str,
    report: &mut Report<'_>,
) -> Option<(RouteMatch, Scope)> {
    let errors_before = report.error_count();
    for (present, field) in [
        (m.scheme.is_some(), "scheme"),
        (m.authority.is_some(), "authority"),
    ] {
        if present {
            report.error(
                format!("{at}.{field}"),
                format!("matching on {field} is not supported by mesh"),
                "match on uri, headers, method or queryParams instead",
            );
        }
    }
    let mut out = RouteMatch::default();
    if let Some(uri) = &m.uri {
        out.path = path(
            uri,
            m.ignore_uri_case == Some(true),
            &format!("{at}.uri"),
            report,
        );
    }
    if let Some(method) = &m.method {
        match (&method.exact, &method.prefix, &method.regex) {
            (Some(exact), None, None) => out.method = exact.to_ascii_uppercase(),
            _ => report.error(
                format!("{at}.method"),
                "only exact method matches are supported by mesh",
                "write method: { exact: GET }, or one match per method",
            ),
        }
    }
    for (name, value) in &m.headers {
        if let Some(value) = string_match(value, &format!("{at}.headers.{name}"), report) {
            out.headers.push(HeaderMatch {
                name: name.to_ascii_lowercase(),
                value: Some(value),
                invert: false,
            });
        }
    }
    for (name, value) in &m.without_headers {
        if let Some(value) = string_match(value, &format!("{at}.withoutHeaders.{name}"), report) {
            out.headers.push(HeaderMatch {
                name: name.to_ascii_lowercase(),
                value: Some(value),
                invert: true,
            });
        }
    }
    for (name, value) in &m.query_params {
        if let Some(value) = string_match(value, &format!("{at}.queryParams.{name}"), report) {
            out.query_params.push(QueryParamMatch {
                name: name.clone(),
                value: Some(value),
            });
        }
    }
    if out.path.is_none() {
        out.path = Some(Path::Prefix("/".to_owned()));
    }
    let scope = Scope {
        port: m.port,
        source_labels: m.source_labels.clone(),
        source_namespace: m.source_namespace.clone(),
        gateways: None,
    };
    (report.error_count() == errors_before).then_some((out, scope))
}
