//! Instant queries to a Prometheus server's HTTP API (`GET /api/v1/query?query=...`): the
//! samples of the vector it answers, or the error it gives.

use std::collections::BTreeMap;

use anyhow::{Context, anyhow, bail};
use serde_json::Value;

use crate::http_get::Endpoint;

/// A Prometheus server.
pub struct Prometheus {
    endpoint: Endpoint,
}

/// One sample of a vector: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Its labels (an aggregation keeps only the ones it groups by).
    pub labels: BTreeMap<String, String>,
    /// Its value (`NaN` where Prometheus has none, e.g. a quantile of no requests).
    pub value: f64,
}

// === impl Prometheus ===

impl Prometheus {
    /// The server at the base URL `url` (`http://HOST:PORT`).
    pub fn at(url: &str) -> anyhow::Result<Prometheus> {
        let endpoint = Endpoint::parse_url(url).context("--prometheus")?;
        Ok(Prometheus { endpoint })
    }

    /// Evaluates `promql` now; its result must be a vector.
    pub async fn query(&self, promql: &str) -> anyhow::Result<Vec<Sample>> {
        let path = format!("/api/v1/query?query={}", encode(promql));
        // The cause, without the encoded query the request path repeats.
        let answer = (self.endpoint.get(&path).await)
            .map_err(|e| {
                anyhow!(
                    "Prometheus at {} did not answer: {}",
                    self.endpoint,
                    e.root_cause()
                )
            })
            .with_context(|| format!("query {promql}"))?;
        vector(&answer.body)
            .with_context(|| format!("Prometheus at {} ({})", self.endpoint, answer.status))
            .with_context(|| format!("query {promql}"))
    }
}

/// The samples of an API answer, or the error it carries.
fn vector(body: &str) -> anyhow::Result<Vec<Sample>> {
    let Ok(answer) = serde_json::from_str::<Value>(body) else {
        let start: String = body.chars().take(200).collect();
        bail!(
            "the answer is not the Prometheus API's JSON (is the URL a Prometheus server?): {start:?}"
        );
    };
    if answer["status"] != "success" {
        bail!(
            "{}: {}",
            answer["errorType"].as_str().unwrap_or("error"),
            answer["error"].as_str().unwrap_or("no reason given")
        );
    }
    let data = &answer["data"];
    if data["resultType"] != "vector" {
        bail!("the result is a {}, not a vector", data["resultType"]);
    }
    let results = data["result"]
        .as_array()
        .context("the vector has no `result` list")?;
    results.iter().map(sample).collect()
}

/// `{"metric": {...}, "value": [time, "1.5"]}`.
fn sample(result: &Value) -> anyhow::Result<Sample> {
    let labels = (result["metric"].as_object().into_iter().flatten())
        .map(|(name, value)| (name.clone(), value.as_str().unwrap_or_default().to_owned()))
        .collect();
    let text = result["value"][1]
        .as_str()
        .with_context(|| format!("a sample without a value: {result}"))?;
    let value = text
        .parse()
        .with_context(|| format!("sample value {text:?} is not a number"))?;
    Ok(Sample { labels, value })
}

/// Percent-encodes `text` for a query string: everything but unreserved characters.
fn encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len() * 2);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_encoded_whole() {
        assert_eq!(
            encode(r#"sum(rate(x{a="b c"}[1m])) by (le)"#),
            "sum%28rate%28x%7Ba%3D%22b%20c%22%7D%5B1m%5D%29%29%20by%20%28le%29"
        );
    }

    #[test]
    fn vectors_are_read_and_nan_and_errors_are_told() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"destination_workload":"web"},"value":[1700000000.123,"2.5"]},
            {"metric":{},"value":[1700000000.123,"NaN"]}]}}"#;
        let samples = vector(body).expect("a vector");
        assert_eq!(samples[0].labels["destination_workload"], "web");
        assert_eq!(samples[0].value, 2.5);
        assert!(samples[1].labels.is_empty() && samples[1].value.is_nan());

        let error = r#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#;
        let error = format!("{:#}", vector(error).expect_err("an error answer"));
        assert_eq!(error, "bad_data: parse error at char 5");
        let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(format!("{:#}", vector(matrix).expect_err("a matrix")).contains("not a vector"));
        let html = "<html>not found</html>";
        assert!(
            format!("{:#}", vector(html).expect_err("html")).contains("not the Prometheus API")
        );
    }
}
