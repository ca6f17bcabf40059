//! Failing the first tries of a request on purpose, as the Gateway API conformance suite's
//! echo server does: `?uuid=U&succeedAfter=N[&responseCode=C][&delayRetry=D]` makes the first
//! N requests with that uuid fail (with status C, or by closing the connection when no code is
//! given), each after waiting D; later ones succeed.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use http::StatusCode;

/// How many request ids the simulation remembers before it starts afresh.
const REMEMBERED_IDS: usize = 10_000;

/// Tries seen per request id.
#[derive(Clone, Debug, Default)]
pub struct RetrySimulation {
    tries: Arc<Mutex<HashMap<String, u32>>>,
}

/// What the simulation makes of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Not a simulated request, or one whose failures are used up: answer as usual.
    Serve,
    /// Answer with this status.
    Fail(StatusCode),
    /// Close the connection without an answer.
    Drop,
}

/// One request's simulation parameters, from its query.
#[derive(Debug, Default, PartialEq)]
struct Parameters {
    uuid: String,
    succeed_after: u32,
    response_code: Option<StatusCode>,
    delay: Duration,
}

impl RetrySimulation {
    /// Counts this request's try and says how to answer it (after its delay, if any).
    pub(crate) async fn outcome(&self, query: Option<&str>) -> Outcome {
        let Some(parameters) = query.and_then(parameters) else {
            return Outcome::Serve;
        };
        let try_number = {
            let mut tries = self.tries.lock().unwrap_or_else(|e| e.into_inner());
            if tries.len() >= REMEMBERED_IDS && !tries.contains_key(&parameters.uuid) {
                tries.clear();
            }
            let count = tries.entry(parameters.uuid).or_default();
            *count += 1;
            *count
        };
        if try_number > parameters.succeed_after {
            return Outcome::Serve;
        }
        tokio::time::sleep(parameters.delay).await;
        parameters
            .response_code
            .map_or(Outcome::Drop, Outcome::Fail)
    }
}

/// The parameters of a query that asks for a simulation (it has `uuid` and `succeedAfter`).
fn parameters(query: &str) -> Option<Parameters> {
    let mut found = Parameters::default();
    let mut succeed_after = None;
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "uuid" => found.uuid = value.to_owned(),
            "succeedAfter" => succeed_after = value.parse().ok(),
            "responseCode" => found.response_code = value.parse::<u16>().ok().and_then(status),
            "delayRetry" => found.delay = milliseconds(value).unwrap_or_default(),
            _ => {}
        }
    }
    found.succeed_after = succeed_after?;
    (!found.uuid.is_empty()).then_some(found)
}

fn status(code: u16) -> Option<StatusCode> {
    StatusCode::from_u16(code).ok()
}

/// A duration written as `300ms` or `2s`.
fn milliseconds(text: &str) -> Option<Duration> {
    if let Some(ms) = text.strip_suffix("ms") {
        return ms.parse().ok().map(Duration::from_millis);
    }
    text.strip_suffix('s')?
        .parse()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_first_tries_fail_then_the_request_succeeds() {
        let simulation = RetrySimulation::default();
        let query = Some("uuid=a&succeedAfter=2&responseCode=500");
        let failed = Outcome::Fail(StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(simulation.outcome(query).await, failed);
        assert_eq!(simulation.outcome(query).await, failed);
        assert_eq!(simulation.outcome(query).await, Outcome::Serve);
        let other = Some("uuid=b&succeedAfter=1");
        assert_eq!(simulation.outcome(other).await, Outcome::Drop);
        assert_eq!(simulation.outcome(other).await, Outcome::Serve);
    }

    #[tokio::test(start_paused = true)]
    async fn failing_tries_wait_their_delay() {
        let simulation = RetrySimulation::default();
        let started = tokio::time::Instant::now();
        let query = Some("uuid=a&succeedAfter=1&responseCode=503&delayRetry=300ms");
        simulation.outcome(query).await;
        assert_eq!(started.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test]
    async fn requests_without_the_parameters_are_served() {
        let simulation = RetrySimulation::default();
        for query in [None, Some("a=b"), Some("succeedAfter=3"), Some("uuid=x")] {
            assert_eq!(simulation.outcome(query).await, Outcome::Serve);
        }
    }
}
