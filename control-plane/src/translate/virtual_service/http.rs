//! One VirtualService HTTP rule: its matches, and its action (forward with timeout, retries,
//! mirror, fault and rewrite; redirect; direct response) with header operations.

use mesh_proto::config::v1::{
    DirectResponse, FaultInjection, Redirect, RetryPolicy, Rewrite, RouteMatch,
    fault_injection::{Abort, Delay},
};

use super::super::{
    duration::{is_zero, parse_duration},
    problem::Report,
    rules::{Action, DEFAULT_RETRY_ON, Forward, HttpRule, MAX_RETRY_ATTEMPTS, Scope},
};
use super::{
    CompileContext,
    destination::{WeightedDestination, header_changes, resolve_destination, resolve_weighted},
    matching::compile_match,
};
use crate::istio::{
    common::Percent,
    virtual_service::{HttpFaultInjection, HttpRedirect, HttpRetry, HttpRoute},
};

/// Compiles one HTTP rule into one proxy rule per match (one catch-all when it has none).
pub(crate) fn compile_http_rule(
    rule: &HttpRoute,
    at: &str,
    default_name: &str,
    gateways: Option<&Vec<String>>,
    cx: &CompileContext<'_>,
    report: &mut Report<'_>,
) -> Vec<HttpRule> {
    let action = compile_action(rule, at, cx, report);
    let name = rule.name.clone().unwrap_or_else(|| default_name.to_owned());
    let request_headers = rule
        .headers
        .as_ref()
        .and_then(|h| header_changes(h.request.as_ref(), &format!("{at}.headers.request"), report));
    let response_headers = rule.headers.as_ref().and_then(|h| {
        header_changes(
            h.response.as_ref(),
            &format!("{at}.headers.response"),
            report,
        )
    });
    let matches: Vec<(String, RouteMatch, Scope)> = if rule.matches.is_empty() {
        let catch_all = RouteMatch {
            path: Some(mesh_proto::config::v1::route_match::Path::Prefix(
                "/".to_owned(),
            )),
            ..RouteMatch::default()
        };
        vec![(name.clone(), catch_all, Scope::default())]
    } else {
        rule.matches
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                let (matcher, mut scope) = compile_match(m, &format!("{at}.match[{i}]"), report)?;
                if !m.gateways.is_empty() {
                    scope.gateways = Some(super::resolve_gateways(&m.gateways, cx.namespace));
                }
                let route_name = match &m.name {
                    Some(match_name) => format!("{name}.{match_name}"),
                    None => name.clone(),
                };
                Some((route_name, matcher, scope))
            })
            .collect()
    };
    let Some(action) = action else {
        return Vec::new();
    };
    matches
        .into_iter()
        .map(|(name, matcher, mut scope)| {
            if scope.gateways.is_none() {
                scope.gateways = gateways.cloned();
            }
            HttpRule {
                name,
                scope,
                matcher,
                action: action.clone(),
                request_headers: request_headers.clone(),
                response_headers: response_headers.clone(),
            }
        })
        .collect()
}

fn compile_action(
    rule: &HttpRoute,
    at: &str,
    cx: &CompileContext<'_>,
    report: &mut Report<'_>,
) -> Option<Action> {
    if rule.delegate.is_some() {
        report.error(
            format!("{at}.delegate"),
            "delegate is not supported by mesh",
            "put the delegate's rules into this VirtualService",
        );
        return None;
    }
    if rule.cors_policy.is_some() {
        report.warning(
            format!("{at}.corsPolicy"),
            "corsPolicy is not supported by mesh; no CORS headers are added",
            "answer CORS preflight requests in the application",
        );
    }
    let kinds = usize::from(!rule.route.is_empty())
        + usize::from(rule.redirect.is_some())
        + usize::from(rule.direct_response.is_some());
    if kinds != 1 {
        report.error(
            at,
            if kinds == 0 {
                "the rule has no route, redirect or directResponse"
            } else {
                "the rule has more than one of route, redirect and directResponse"
            },
            "give it exactly one",
        );
        return None;
    }
    if let Some(redirect) = &rule.redirect {
        return compile_redirect(redirect, &format!("{at}.redirect"), report).map(Action::Redirect);
    }
    if let Some(direct) = &rule.direct_response {
        let at = format!("{at}.directResponse");
        if !(200..=599).contains(&direct.status) {
            report.error(
                format!("{at}.status"),
                format!("{} is not an HTTP status code", direct.status),
                "use 200 to 599",
            );
            return None;
        }
        let body = direct.body.as_ref();
        if body.is_some_and(|b| b.bytes.is_some()) {
            report.error(
                format!("{at}.body.bytes"),
                "binary bodies are not supported by mesh",
                "use body.string",
            );
            return None;
        }
        return Some(Action::Direct(DirectResponse {
            status: direct.status,
            body: body.and_then(|b| b.string.clone()).unwrap_or_default(),
        }));
    }
    let routes: Vec<_> = rule
        .route
        .iter()
        .map(|r| WeightedDestination {
            destination: &r.destination,
            weight: r.weight,
            headers: r.headers.as_ref(),
        })
        .collect();
    let dests = resolve_weighted(&routes, &format!("{at}.route"), cx, report);
    let timeout = rule.timeout.as_deref().and_then(|t| {
        parse_duration(t)
            .map_err(|e| report.error(format!("{at}.timeout"), e, "write e.g. \"10s\""))
            .ok()
            .filter(|d| !is_zero(d))
    });
    let retries = rule
        .retries
        .as_ref()
        .and_then(|r| compile_retries(r, &format!("{at}.retries"), report));
    let fault = rule
        .fault
        .as_ref()
        .and_then(|f| compile_fault(f, &format!("{at}.fault"), report));
    let mirrors = compile_mirrors(rule, at, cx, report);
    let rewrite = rule.rewrite.as_ref().and_then(|r| {
        if r.uri_regex_rewrite.is_some() {
            report.error(
                format!("{at}.rewrite.uriRegexRewrite"),
                "regex rewrites are not supported by mesh",
                "use rewrite.uri with a prefix match",
            );
        }
        let case_blind_prefix = rule.matches.iter().any(|m| {
            m.ignore_uri_case == Some(true) && m.uri.as_ref().is_some_and(|u| u.prefix.is_some())
        });
        if r.uri.is_some() && case_blind_prefix {
            report.error(
                format!("{at}.rewrite.uri"),
                "rewriting the prefix of a case-insensitive prefix match is not supported by mesh (the whole path would be replaced)",
                "drop ignoreUriCase, or write one rule per spelling",
            );
        }
        let rewrite = Rewrite {
            path_prefix: r.uri.clone().unwrap_or_default(),
            authority: r.authority.clone().unwrap_or_default(),
        };
        (rewrite != Rewrite::default()).then_some(rewrite)
    });
    Some(Action::Forward(Box::new(Forward {
        dests,
        timeout,
        retries,
        mirrors,
        fault,
        rewrite,
    })))
}

fn compile_redirect(
    redirect: &HttpRedirect,
    at: &str,
    report: &mut Report<'_>,
) -> Option<Redirect> {
    let status = redirect.redirect_code.unwrap_or(301);
    if !matches!(status, 301 | 302 | 303 | 307 | 308) {
        report.error(
            format!("{at}.redirectCode"),
            format!("{status} is not a redirect status"),
            "use 301, 302, 303, 307 or 308",
        );
        return None;
    }
    if redirect.derive_port.is_some() {
        report.warning(
            format!("{at}.derivePort"),
            "derivePort is not supported by mesh; the port is left as requested",
            "set redirect.port",
        );
    }
    if redirect.port.is_some_and(|p| p > 65535) {
        report.error(
            format!("{at}.port"),
            "the port is out of range",
            "use 1 to 65535",
        );
        return None;
    }
    Some(Redirect {
        scheme: redirect.scheme.clone().unwrap_or_default(),
        host: redirect.authority.clone().unwrap_or_default(),
        port: redirect.port.unwrap_or(0),
        path: redirect.uri.clone().unwrap_or_default(),
        path_prefix: String::new(),
        status,
    })
}

/// The retry conditions the proxy knows, besides bare status codes.
const RETRY_CONDITIONS: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "connect-failure",
    "refused-stream",
    "retriable-4xx",
    "retriable-status-codes",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// A rule's retry policy; `attempts: 0` (or unset) disables retries, as in Istio.
fn compile_retries(retries: &HttpRetry, at: &str, report: &mut Report<'_>) -> Option<RetryPolicy> {
    if retries.retry_remote_localities.is_some() {
        report.warning(
            format!("{at}.retryRemoteLocalities"),
            "mesh does not balance by locality; retries go to any endpoint",
            "remove the field",
        );
    }
    if retries.retry_ignore_previous_hosts == Some(false) {
        report.warning(
            format!("{at}.retryIgnorePreviousHosts"),
            "mesh always sends a retry to an endpoint not tried yet when there is one",
            "remove the field",
        );
    }
    let attempts = match retries.attempts {
        Some(a) if a < 0 => {
            report.error(
                format!("{at}.attempts"),
                format!("{a} attempts is negative"),
                "use 0 to disable retries, or a positive count",
            );
            return None;
        }
        Some(a) if a > MAX_RETRY_ATTEMPTS => {
            report.error(
                format!("{at}.attempts"),
                format!("{a} attempts is more than {MAX_RETRY_ATTEMPTS}"),
                "a few retries are enough; the retry budget limits them anyway",
            );
            return None;
        }
        Some(a) => a.unsigned_abs(),
        None => 0,
    };
    let positive = |text: Option<&str>, field: &str, report: &mut Report<'_>| {
        let text = text?;
        match parse_duration(text) {
            Ok(d) if !is_zero(&d) => Some(d),
            Ok(_) => {
                report.error(
                    format!("{at}.{field}"),
                    "0s is not a usable value",
                    "write a positive duration, e.g. \"2s\"",
                );
                None
            }
            Err(e) => {
                report.error(format!("{at}.{field}"), e, "write e.g. \"2s\"");
                None
            }
        }
    };
    let per_try_timeout = positive(retries.per_try_timeout.as_deref(), "perTryTimeout", report);
    let backoff = positive(retries.backoff.as_deref(), "backoff", report);
    let mut retry_on = Vec::new();
    let mut retriable_status_codes = Vec::new();
    let conditions = retries.retry_on.as_deref().map_or_else(
        || DEFAULT_RETRY_ON.to_vec(),
        |list| {
            list.split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        },
    );
    for condition in conditions {
        if let Ok(code) = condition.parse::<u32>() {
            if !(100..=599).contains(&code) {
                report.error(
                    format!("{at}.retryOn"),
                    format!("{code} is not an HTTP status"),
                    "list statuses from 100 to 599",
                );
                return None;
            }
            retriable_status_codes.push(code);
            continue;
        }
        if !RETRY_CONDITIONS.contains(&condition) {
            report.error(
                format!("{at}.retryOn"),
                format!("retry condition {condition:?} is not supported by mesh"),
                format!("use {}, or HTTP status codes", RETRY_CONDITIONS.join(", ")),
            );
            return None;
        }
        retry_on.push(condition.to_owned());
    }
    if !retriable_status_codes.is_empty() && !retry_on.iter().any(|c| c == "retriable-status-codes")
    {
        retry_on.push("retriable-status-codes".to_owned());
    }
    Some(RetryPolicy {
        attempts,
        per_try_timeout,
        retry_on,
        retriable_status_codes,
        backoff,
        backoff_is_minimum: false,
    })
}

/// A fault percentage: `percentage.value`, else the deprecated integer `percent`, else every
/// request.
fn fault_percentage(
    percentage: Option<&Percent>,
    percent: Option<i32>,
    at: &str,
    report: &mut Report<'_>,
) -> f64 {
    let value = percentage
        .map(|p| p.value)
        .or(percent.map(f64::from))
        .unwrap_or(100.0);
    if !(0.0..=100.0).contains(&value) {
        report.error(
            format!("{at}.percentage"),
            format!("{value} is not a percentage"),
            "use 0 to 100",
        );
    }
    value
}

fn compile_fault(
    fault: &HttpFaultInjection,
    at: &str,
    report: &mut Report<'_>,
) -> Option<FaultInjection> {
    let delay = fault.delay.as_ref().and_then(|d| {
        let at = format!("{at}.delay");
        let Some(text) = &d.fixed_delay else {
            report.error(
                format!("{at}.fixedDelay"),
                "a delay needs fixedDelay",
                "write e.g. fixedDelay: 5s",
            );
            return None;
        };
        let fixed_delay = parse_duration(text)
            .map_err(|e| report.error(format!("{at}.fixedDelay"), e, "write e.g. \"5s\""))
            .ok()?;
        Some(Delay {
            fixed_delay: Some(fixed_delay),
            percentage: fault_percentage(d.percentage.as_ref(), d.percent, &at, report),
        })
    });
    let abort = fault.abort.as_ref().and_then(|a| {
        let at = format!("{at}.abort");
        if a.http2_error.is_some() {
            report.error(
                format!("{at}.http2Error"),
                "HTTP/2 error aborts are not supported by mesh",
                "use httpStatus or grpcStatus",
            );
            return None;
        }
        let percentage = fault_percentage(a.percentage.as_ref(), None, &at, report);
        match (a.http_status, a.grpc_status.as_deref()) {
            (Some(status), None) if (200..=599).contains(&status) => Some(Abort {
                http_status: status.unsigned_abs(),
                grpc_status: 0,
                percentage,
            }),
            (Some(status), None) => {
                report.error(
                    format!("{at}.httpStatus"),
                    format!("{status} is not an HTTP status code"),
                    "use 200 to 599",
                );
                None
            }
            (None, Some(name)) => match grpc_code(name) {
                Some(code) => Some(Abort {
                    http_status: 200,
                    grpc_status: code,
                    percentage,
                }),
                None => {
                    report.error(
                        format!("{at}.grpcStatus"),
                        format!("{name:?} is not a gRPC status name"),
                        "use a name such as UNAVAILABLE or NOT_FOUND",
                    );
                    None
                }
            },
            _ => {
                report.error(
                    at,
                    "an abort needs exactly one of httpStatus and grpcStatus",
                    "set one",
                );
                None
            }
        }
    });
    (delay.is_some() || abort.is_some()).then_some(FaultInjection { delay, abort })
}

/// The code of a gRPC status name (Istio writes names, e.g. `UNAVAILABLE`).
fn grpc_code(name: &str) -> Option<u32> {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    let position = NAMES.iter().position(|n| n.eq_ignore_ascii_case(name));
    position.and_then(|p| u32::try_from(p).ok())
}

/// The rule's mirrors: `mirror` with `mirrorPercentage`, or each of `mirrors[]`.
fn compile_mirrors(
    rule: &HttpRoute,
    at: &str,
    cx: &CompileContext<'_>,
    report: &mut Report<'_>,
) -> Vec<(super::super::rules::Dest, Option<f64>)> {
    let wanted: Vec<_> = match (&rule.mirror, rule.mirrors.as_slice()) {
        (Some(_), [_, ..]) => {
            report.error(
                format!("{at}.mirrors"),
                "both mirror and mirrors are set",
                "use one",
            );
            return Vec::new();
        }
        (Some(mirror), []) => {
            let percentage = (rule.mirror_percentage.as_ref())
                .map(|p| p.value)
                .or(rule.mirror_percent.map(f64::from));
            vec![(
                mirror,
                percentage,
                format!("{at}.mirror"),
                "mirrorPercentage",
            )]
        }
        (None, mirrors) => mirrors
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let percentage = m.percentage.as_ref().map(|p| p.value);
                (
                    &m.destination,
                    percentage,
                    format!("{at}.mirrors[{i}]"),
                    "percentage",
                )
            })
            .collect(),
    };
    let mut mirrors = Vec::new();
    for (destination, percentage, field, percentage_field) in wanted {
        if let Some(p) = percentage.filter(|p| !(0.0..=100.0).contains(p)) {
            let field = match percentage_field {
                "mirrorPercentage" => format!("{at}.mirrorPercentage"),
                _ => format!("{field}.percentage"),
            };
            report.error(field, format!("{p} is not a percentage"), "use 0 to 100");
            continue;
        }
        if let Some(dest) = resolve_destination(destination, &field, cx, report) {
            mirrors.push((dest, percentage));
        }
    }
    mirrors
}
