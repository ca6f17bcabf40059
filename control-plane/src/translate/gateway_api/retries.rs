//! A rule's `timeouts` and `retry` as the proxy's route timeout and retry policy.

use gateway_api::experimental::httproutes::HttpRouteRulesRetry;
use mesh_proto::config::v1::RetryPolicy;

use super::super::{
    duration::{is_zero, parse_duration},
    problem::Report,
    rules::{MAX_RETRY_ATTEMPTS, default_retry_policy},
};

/// A rule's `timeouts` and `retry`: `request` bounds the whole request, retries included;
/// `backendRequest` bounds each try (Istio's per-try timeout, under the default retry
/// conditions when the rule has no `retry`). A value that does not parse is reported and left out.
pub(super) fn timeouts_and_retries(
    request: Option<&str>,
    backend_request: Option<&str>,
    retry: Option<&HttpRouteRulesRetry>,
    at: &str,
    report: &mut Report<'_>,
) -> (Option<pbjson_types::Duration>, Option<RetryPolicy>) {
    let mut parse = |text: Option<&str>, field: &str| {
        parse_duration(text?)
            .map_err(|e| report.warning(format!("{at}.timeouts.{field}"), e, "write e.g. \"10s\""))
            .ok()
            .filter(|d| !is_zero(d))
    };
    let mut request = parse(request, "request");
    let backend_request = parse(backend_request, "backendRequest");
    if let (Some(whole), Some(each)) = (&request, &backend_request)
        && (each.seconds, each.nanos) > (whole.seconds, whole.nanos)
    {
        report.warning(
            format!("{at}.timeouts.backendRequest"),
            "is longer than timeouts.request, which bounds every try anyway",
            "make backendRequest at most request",
        );
    }
    let policy = match retry {
        Some(retry) => retry_policy(retry, &format!("{at}.retry"), report),
        None => Some(default_retry_policy()),
    };
    let Some(mut policy) = policy else {
        return (request, None);
    };
    if policy.attempts == 0 {
        // One try only: its limit bounds the request.
        if let Some(each) = backend_request
            && request
                .as_ref()
                .is_none_or(|whole| (each.seconds, each.nanos) < (whole.seconds, whole.nanos))
        {
            request = Some(each);
        }
        return (request, Some(policy));
    }
    policy.per_try_timeout = backend_request;
    let explicit = retry.is_some() || policy.per_try_timeout.is_some();
    (request, explicit.then_some(policy))
}

/// A rule's `retry`: `attempts` retries (2 when unset, as Istio) on connection failures and
/// resets, and on the listed `codes`; `backoff` is the least wait between tries.
fn retry_policy(
    retry: &HttpRouteRulesRetry,
    at: &str,
    report: &mut Report<'_>,
) -> Option<RetryPolicy> {
    let attempts = match retry.attempts {
        None => 2,
        Some(a) if !(0..=i64::from(MAX_RETRY_ATTEMPTS)).contains(&a) => {
            report.error(
                format!("{at}.attempts"),
                format!("{a} is not a usable number of retries"),
                format!("use 0 (no retries) to {MAX_RETRY_ATTEMPTS}"),
            );
            return None;
        }
        Some(a) => u32::try_from(a).unwrap_or_default(),
    };
    let mut codes = Vec::new();
    for (i, &code) in retry.codes.iter().flatten().enumerate() {
        match u32::try_from(code) {
            Ok(code @ 400..=599) => codes.push(code),
            _ => {
                report.error(
                    format!("{at}.codes[{i}]"),
                    format!("{code} is not an error status"),
                    "list statuses from 400 to 599",
                );
                return None;
            }
        }
    }
    let backoff = match retry.backoff.as_deref().map(parse_duration) {
        None => None,
        Some(Ok(d)) if is_zero(&d) => None,
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => {
            report.error(format!("{at}.backoff"), e, "write e.g. \"100ms\"");
            return None;
        }
    };
    let mut retry_on: Vec<String> = ["connect-failure", "refused-stream", "reset"]
        .map(str::to_owned)
        .into();
    if !codes.is_empty() {
        retry_on.push("retriable-status-codes".to_owned());
    }
    Some(RetryPolicy {
        attempts,
        retry_on,
        retriable_status_codes: codes,
        backoff_is_minimum: backoff.is_some(),
        backoff,
        ..RetryPolicy::default()
    })
}
