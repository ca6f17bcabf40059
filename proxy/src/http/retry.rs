//! Retries: which failed tries a route tries again, how long it waits between tries, and the
//! per-cluster budget that keeps retries a small share of the traffic a backend sees.

use std::{sync::LazyLock, time::Duration};

use http::{HeaderMap, StatusCode};
use tower::retry::budget::{Budget, TpsBudget};

use super::{UpstreamError, X_MESH_ERROR};

/// The `x-mesh-error` reasons of a sidecar that could not connect to its endpoint.
const CONNECT_FAILURES: [&[u8]; 2] = [b"connect_error", b"connect_timeout"];
/// The `x-mesh-error` reason of a sidecar whose connection to its endpoint failed mid-request.
const RESET: &[u8] = b"reset";

/// The first backoff when a policy names none.
const DEFAULT_BACKOFF: Duration = Duration::from_millis(25);
/// Backoffs grow to at most this many times the first.
const BACKOFF_CAP_FACTOR: u32 = 10;

/// When and how often a route tries again.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first try.
    pub attempts: u32,
    /// Limit on each try's wait for response headers.
    pub per_try_timeout: Option<Duration>,
    on: Conditions,
    /// The statuses `retriable-status-codes` retries.
    statuses: Box<[u16]>,
    backoff: Duration,
    /// Whether every wait is at least `backoff` rather than fully jittered below it.
    backoff_is_minimum: bool,
}

/// The conditions of a policy, one bit each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Conditions(u16);

/// The condition names a policy may use, and their bits.
const CONDITIONS: [(&str, u16); 12] = [
    ("5xx", 1),
    ("gateway-error", 1 << 1),
    ("reset", 1 << 2),
    ("connect-failure", 1 << 3),
    ("refused-stream", 1 << 4),
    ("retriable-4xx", 1 << 5),
    ("retriable-status-codes", 1 << 6),
    ("cancelled", 1 << 7),
    ("deadline-exceeded", 1 << 8),
    ("internal", 1 << 9),
    ("resource-exhausted", 1 << 10),
    ("unavailable", 1 << 11),
];

/// The gRPC status each gRPC condition retries.
const GRPC_CODES: [(&str, &[u8]); 5] = [
    ("cancelled", b"1"),
    ("deadline-exceeded", b"4"),
    ("internal", b"13"),
    ("resource-exhausted", b"8"),
    ("unavailable", b"14"),
];

/// The policy of a route that sets none (Istio's default).
pub static DEFAULT_POLICY: LazyLock<RetryPolicy> = LazyLock::new(|| {
    let on = [
        "connect-failure",
        "refused-stream",
        "unavailable",
        "cancelled",
    ];
    RetryPolicy::new(2, None, &on, &[], None).expect("the default conditions are known")
});

// === impl RetryPolicy ===

impl RetryPolicy {
    /// A policy from its parts; an error names a condition that is not known.
    pub fn new(
        attempts: u32,
        per_try_timeout: Option<Duration>,
        retry_on: &[impl AsRef<str>],
        statuses: &[u16],
        backoff: Option<Duration>,
    ) -> Result<Self, String> {
        let mut on = Conditions::default();
        for name in retry_on {
            let name = name.as_ref();
            let bit = CONDITIONS
                .iter()
                .find(|(known, _)| *known == name)
                .map(|(_, bit)| *bit)
                .ok_or_else(|| {
                    let known: Vec<_> = CONDITIONS.iter().map(|(n, _)| *n).collect();
                    format!(
                        "retry condition {name:?} is not one of {}",
                        known.join(", ")
                    )
                })?;
            on.0 |= bit;
        }
        Ok(RetryPolicy {
            attempts,
            per_try_timeout,
            on,
            statuses: statuses.into(),
            backoff: backoff.unwrap_or(DEFAULT_BACKOFF),
            backoff_is_minimum: false,
        })
    }

    /// The same policy waiting at least its backoff before every retry.
    pub fn with_minimum_backoff(self) -> Self {
        RetryPolicy {
            backoff_is_minimum: true,
            ..self
        }
    }

    /// Whether a try that got this response is tried again.
    pub fn retries_response(&self, status: StatusCode, headers: &HeaderMap) -> bool {
        let code = status.as_u16();
        // A server's sidecar that could not reach its app, or lost the connection to it, says
        // so: it counts as the connect failure or reset it was.
        if status == StatusCode::SERVICE_UNAVAILABLE
            && let Some(reason) = headers.get(&X_MESH_ERROR)
        {
            let reason = reason.as_bytes();
            if (CONNECT_FAILURES.contains(&reason) && self.retries_connect_failure())
                || (reason == RESET && self.has("reset"))
            {
                return true;
            }
        }
        if (self.has("5xx") && status.is_server_error())
            || (self.has("gateway-error") && matches!(code, 502..=504))
            || (self.has("retriable-4xx") && code == 409)
            || (self.has("retriable-status-codes") && self.statuses.contains(&code))
        {
            return true;
        }
        // gRPC failures before any message come as trailers-only answers: the status is here.
        let Some(grpc) = headers.get("grpc-status") else {
            return false;
        };
        GRPC_CODES
            .iter()
            .any(|(name, value)| grpc.as_bytes() == *value && self.has(name))
    }

    /// Whether a try that failed with `error` (before any response) is tried again.
    pub fn retries_error(&self, error: &UpstreamError) -> bool {
        let any_failure = self.has("5xx") || self.has("gateway-error") || self.has("reset");
        match error {
            UpstreamError::Connect { .. }
            | UpstreamError::ConnectTimeout { .. }
            | UpstreamError::Tls { .. } => self.retries_connect_failure(),
            UpstreamError::Reset { source, .. } => {
                any_failure || (self.has("refused-stream") && refused_stream(source))
            }
            UpstreamError::TryTimeout(_) => any_failure,
            UpstreamError::NoEndpoint { .. }
            | UpstreamError::TlsSettings { .. }
            | UpstreamError::Overloaded(_)
            | UpstreamError::Timeout(_) => false,
        }
    }

    /// How long to wait before retry number `retry` (1 for the first): a random wait up to
    /// the backoff, which doubles with each retry up to ten times the first (full jitter);
    /// with a minimum backoff, a random wait between the first backoff and that ceiling.
    pub fn backoff(&self, retry: u32) -> Duration {
        let doubled = self
            .backoff
            .saturating_mul(1 << retry.saturating_sub(1).min(16));
        let ceiling = doubled.min(self.backoff.saturating_mul(BACKOFF_CAP_FACTOR));
        let floor = match self.backoff_is_minimum {
            true => self.backoff,
            false => Duration::ZERO,
        };
        floor + (ceiling - floor).mul_f64(fastrand::f64())
    }

    fn retries_connect_failure(&self) -> bool {
        ["5xx", "gateway-error", "reset", "connect-failure"]
            .iter()
            .any(|c| self.has(c))
    }

    fn has(&self, name: &str) -> bool {
        let bit = CONDITIONS
            .iter()
            .find(|(known, _)| *known == name)
            .map_or(0, |(_, bit)| *bit);
        self.on.0 & bit != 0
    }
}

/// Whether an HTTP/2 stream was refused by the server (REFUSED_STREAM: it did no work on it).
fn refused_stream(error: &hyper::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = source {
        if let Some(h2) = error.downcast_ref::<h2::Error>() {
            return h2.reason() == Some(h2::Reason::REFUSED_STREAM);
        }
        source = error.source();
    }
    false
}

/// A cluster's retry budget: retries may be at most 20 % of its requests plus 10 a second,
/// over the last 10 seconds (tower's `TpsBudget`, as linkerd2-proxy and Finagle budget).
#[derive(Debug, Default)]
pub struct RetryBudget(TpsBudget);

impl RetryBudget {
    /// Counts one request (not a retry) towards the budget.
    pub fn deposit(&self) {
        self.0.deposit();
    }

    /// Takes one retry from the budget; false when it is spent.
    pub fn withdraw(&self) -> bool {
        self.0.withdraw()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(on: &[&str], statuses: &[u16]) -> RetryPolicy {
        RetryPolicy::new(3, None, on, statuses, None).unwrap()
    }

    fn grpc(status: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", http::HeaderValue::from_static(status));
        headers
    }

    #[test]
    fn status_conditions_select_their_statuses() {
        let none = HeaderMap::new();
        let five = policy(&["5xx"], &[]);
        assert!(five.retries_response(StatusCode::INTERNAL_SERVER_ERROR, &none));
        assert!(five.retries_response(StatusCode::SERVICE_UNAVAILABLE, &none));
        assert!(!five.retries_response(StatusCode::CONFLICT, &none));
        let gateway = policy(&["gateway-error"], &[]);
        assert!(gateway.retries_response(StatusCode::BAD_GATEWAY, &none));
        assert!(!gateway.retries_response(StatusCode::INTERNAL_SERVER_ERROR, &none));
        assert!(policy(&["retriable-4xx"], &[]).retries_response(StatusCode::CONFLICT, &none));
        let listed = policy(&["retriable-status-codes"], &[418]);
        assert!(listed.retries_response(StatusCode::IM_A_TEAPOT, &none));
        assert!(!listed.retries_response(StatusCode::SERVICE_UNAVAILABLE, &none));
        // Codes listed without the condition retry nothing (as Envoy).
        assert!(!policy(&["5xx"], &[418]).retries_response(StatusCode::IM_A_TEAPOT, &none));
    }

    #[test]
    fn grpc_conditions_read_the_trailers_only_status() {
        let p = policy(&["unavailable", "cancelled"], &[]);
        assert!(p.retries_response(StatusCode::OK, &grpc("14")));
        assert!(p.retries_response(StatusCode::OK, &grpc("1")));
        assert!(!p.retries_response(StatusCode::OK, &grpc("4")));
        assert!(!p.retries_response(StatusCode::OK, &grpc("0")));
        assert!(policy(&["deadline-exceeded"], &[]).retries_response(StatusCode::OK, &grpc("4")));
    }

    #[test]
    fn connect_failures_retry_under_the_failure_conditions() {
        let refused = UpstreamError::Connect {
            addr: "10.0.0.1:80".parse().unwrap(),
            source: std::io::ErrorKind::ConnectionRefused.into(),
        };
        for on in ["connect-failure", "5xx", "gateway-error", "reset"] {
            assert!(policy(&[on], &[]).retries_error(&refused), "{on}");
        }
        assert!(!policy(&["retriable-4xx"], &[]).retries_error(&refused));
        let deadline = UpstreamError::Timeout(Duration::from_secs(1));
        assert!(
            !policy(&["5xx"], &[]).retries_error(&deadline),
            "the route's timeout is final"
        );
        let try_deadline = UpstreamError::TryTimeout(Duration::from_secs(1));
        assert!(policy(&["5xx"], &[]).retries_error(&try_deadline));
        assert!(!policy(&["connect-failure"], &[]).retries_error(&try_deadline));
    }

    #[test]
    fn a_server_sidecars_connect_failure_counts_as_one() {
        let mut headers = HeaderMap::new();
        headers.insert(
            &X_MESH_ERROR,
            http::HeaderValue::from_static("connect_error"),
        );
        let unavailable = StatusCode::SERVICE_UNAVAILABLE;
        assert!(DEFAULT_POLICY.retries_response(unavailable, &headers));
        assert!(!policy(&["retriable-4xx"], &[]).retries_response(unavailable, &headers));
        headers.insert(&X_MESH_ERROR, http::HeaderValue::from_static("no_route"));
        assert!(!DEFAULT_POLICY.retries_response(unavailable, &headers));
    }

    #[test]
    fn a_server_sidecars_reset_counts_as_one() {
        let mut headers = HeaderMap::new();
        headers.insert(&X_MESH_ERROR, http::HeaderValue::from_static("reset"));
        let unavailable = StatusCode::SERVICE_UNAVAILABLE;
        assert!(policy(&["reset"], &[]).retries_response(unavailable, &headers));
        assert!(!DEFAULT_POLICY.retries_response(unavailable, &headers));
    }

    #[test]
    fn unknown_conditions_are_refused_by_name() {
        let error = RetryPolicy::new(1, None, &["5xx", "sometimes"], &[], None).unwrap_err();
        assert!(error.contains("\"sometimes\""), "{error}");
    }

    #[test]
    fn the_default_policy_retries_twice_on_connect_failure_and_unavailable() {
        let p = &*DEFAULT_POLICY;
        assert_eq!(p.attempts, 2);
        assert!(p.retries_response(StatusCode::OK, &grpc("14")));
        assert!(!p.retries_response(StatusCode::SERVICE_UNAVAILABLE, &HeaderMap::new()));
    }

    #[test]
    fn backoff_is_jittered_below_a_doubling_capped_ceiling() {
        let p = policy(&["5xx"], &[]);
        for _ in 0..200 {
            assert!(p.backoff(1) <= Duration::from_millis(25));
            assert!(p.backoff(2) <= Duration::from_millis(50));
            assert!(p.backoff(30) <= Duration::from_millis(250));
        }
    }

    #[test]
    fn a_minimum_backoff_is_never_undercut() {
        let p = policy(&["5xx"], &[]).with_minimum_backoff();
        for _ in 0..200 {
            assert_eq!(p.backoff(1), Duration::from_millis(25));
            let second = p.backoff(2);
            assert!(second >= Duration::from_millis(25) && second <= Duration::from_millis(50));
            assert!(p.backoff(30) >= Duration::from_millis(25));
        }
    }

    #[test]
    fn the_budget_allows_a_fifth_of_requests_plus_a_reserve() {
        let budget = RetryBudget::default();
        for _ in 0..1000 {
            budget.deposit();
        }
        let allowed = (0..10_000).take_while(|_| budget.withdraw()).count();
        // 20 % of 1,000 plus 10 a second over 10 seconds.
        assert_eq!(allowed, 300);
    }
}
