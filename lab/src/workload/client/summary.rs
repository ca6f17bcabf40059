//! The client's one-line report: how many requests, how many failed and why, and which pods
//! and versions answered.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ClientError;

/// How a client run went, printed as one JSON line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Requests made.
    pub total: u64,
    /// Requests that succeeded: HTTP 2xx, gRPC OK, a faithful TCP echo.
    pub ok: u64,
    /// Requests that did not.
    pub failed: u64,
    /// Failed requests by reason: HTTP status, gRPC status name, or the error.
    pub failures: BTreeMap<String, u64>,
    /// Answers by the pod that gave them, failed ones included.
    pub pods: BTreeMap<String, u64>,
    /// Answers by the answering pod's version.
    pub versions: BTreeMap<String, u64>,
}

/// How one request went.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// The pod that answered, when the answer says.
    pub(crate) pod: Option<String>,
    /// Its version, when the answer says.
    pub(crate) version: Option<String>,
    /// Why the request failed; `None` when it succeeded.
    pub(crate) failure: Option<String>,
}

impl Outcome {
    /// A request that got no usable answer.
    pub(crate) fn failed(reason: String) -> Self {
        Self {
            failure: Some(reason),
            ..Self::default()
        }
    }

    /// A request that failed with `error`, its causes included.
    pub(crate) fn error(error: &ClientError) -> Self {
        Self::failed(error.with_causes())
    }
}

impl Summary {
    /// Counts one request.
    pub(crate) fn record(&mut self, outcome: Outcome) {
        self.total += 1;
        match outcome.failure {
            None => self.ok += 1,
            Some(reason) => {
                self.failed += 1;
                *self.failures.entry(reason).or_default() += 1;
            }
        }
        if let Some(pod) = outcome.pod {
            *self.pods.entry(pod).or_default() += 1;
        }
        if let Some(version) = outcome.version {
            *self.versions.entry(version).or_default() += 1;
        }
    }

    /// Adds another worker's counts.
    pub(crate) fn merge(&mut self, other: Summary) {
        self.total += other.total;
        self.ok += other.ok;
        self.failed += other.failed;
        for (mine, theirs) in [
            (&mut self.failures, other.failures),
            (&mut self.pods, other.pods),
            (&mut self.versions, other.versions),
        ] {
            for (key, count) in theirs {
                *mine.entry(key).or_default() += count;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(pod: &str, failure: Option<&str>) -> Outcome {
        Outcome {
            pod: Some(pod.into()),
            version: Some("v1".into()),
            failure: failure.map(Into::into),
        }
    }

    #[test]
    fn counts_successes_failures_and_answering_pods() {
        let mut summary = Summary::default();
        summary.record(answer("a", None));
        summary.record(answer("a", Some("503")));
        summary.record(Outcome::failed("connection refused".into()));
        let mut other = Summary::default();
        other.record(answer("b", None));
        other.record(answer("a", Some("503")));
        summary.merge(other);

        assert_eq!((summary.total, summary.ok, summary.failed), (5, 2, 3));
        assert_eq!(summary.failures["503"], 2);
        assert_eq!(summary.failures["connection refused"], 1);
        assert_eq!(summary.pods["a"], 3);
        assert_eq!(summary.pods["b"], 1);
        assert_eq!(summary.versions["v1"], 4);
    }

    #[test]
    fn prints_as_one_json_object() {
        let mut summary = Summary::default();
        summary.record(answer("a", None));
        let json = serde_json::to_string(&summary).expect("json");
        assert_eq!(
            json,
            r#"{"total":1,"ok":1,"failed":0,"failures":{},"pods":{"a":1},"versions":{"v1":1}}"#
        );
    }
}
