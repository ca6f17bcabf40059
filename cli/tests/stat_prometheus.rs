//! `mesh stat` and `mesh edges` with `--prometheus URL`, against a fake Prometheus server that
//! speaks the HTTP API's `/api/v1/query` (its JSON answer shape, its error shape) and answers
//! only the PromQL it expects: the test checks the queries `mesh` sends and the rows it prints.

#[path = "support/output.rs"]
#[allow(dead_code)] // Its wait_until serves the tests that start processes.
mod output;

use std::{
    collections::BTreeMap,
    convert::Infallible,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use output::{rows, stderr, stdout};
use serde_json::{Value, json};
use tokio::{net::TcpListener, process::Command};

/// What the shop's servers reported, by workload, as `reporter="destination"`.
const SELECTOR: &str = r#"reporter="destination", destination_workload_namespace="shop""#;

/// A fake Prometheus: the answers it knows, by query, and the queries it was asked.
struct FakePrometheus {
    url: String,
    asked: Arc<Mutex<Vec<String>>>,
}

impl FakePrometheus {
    /// Serves `answers` (PromQL → the vector's samples); any other query gets the API's
    /// `bad_data` error, as a query Prometheus cannot parse would.
    async fn start(answers: Vec<(String, Value)>) -> FakePrometheus {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let answers: Arc<BTreeMap<String, Value>> = Arc::new(answers.into_iter().collect());
        let asked = Arc::new(Mutex::new(Vec::new()));
        let recorded = asked.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (answers, asked) = (answers.clone(), recorded.clone());
                let service = service_fn(move |request: Request<Incoming>| {
                    let answer = answer(&request, &answers, &asked);
                    async move { Ok::<_, Infallible>(answer) }
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        FakePrometheus { url, asked }
    }

    /// The queries asked so far, sorted.
    fn asked(&self) -> Vec<String> {
        let mut asked = self.asked.lock().expect("lock").clone();
        asked.sort();
        asked
    }
}

/// The API's answer to one request.
fn answer(
    request: &Request<Incoming>,
    answers: &BTreeMap<String, Value>,
    asked: &Mutex<Vec<String>>,
) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: Value| {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("a response")
    };
    let error = |status, kind: &str, why: String| {
        reply(
            status,
            json!({"status": "error", "errorType": kind, "error": why}),
        )
    };
    if request.method() != http::Method::GET || request.uri().path() != "/api/v1/query" {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            request.uri().to_string(),
        );
    }
    let params = query_params(request.uri().query().unwrap_or_default());
    let names: Vec<&str> = params.iter().map(|(name, _)| name.as_str()).collect();
    let [(name, promql)] = params.as_slice() else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_data",
            format!("params {names:?}"),
        );
    };
    if name != "query" {
        return error(StatusCode::BAD_REQUEST, "bad_data", format!("param {name}"));
    }
    asked.lock().expect("lock").push(promql.clone());
    match answers.get(promql) {
        Some(result) => reply(
            StatusCode::OK,
            json!({"status": "success", "data": {"resultType": "vector", "result": result}}),
        ),
        None => error(
            StatusCode::BAD_REQUEST,
            "bad_data",
            format!("unexpected query {promql}"),
        ),
    }
}

/// A query string's parameters, decoded as Prometheus (Go's `url.ParseQuery`) decodes them.
fn query_params(query: &str) -> Vec<(String, String)> {
    let decode = |text: &str| {
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'%' => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("hex");
                    out.push(u8::from_str_radix(hex, 16).expect("a %XX escape"));
                    i += 3;
                }
                b'+' => {
                    out.push(b' ');
                    i += 1;
                }
                byte => {
                    out.push(byte);
                    i += 1;
                }
            }
        }
        String::from_utf8(out).expect("UTF-8")
    };
    (query.split('&'))
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name), decode(value))
        })
        .collect()
}

/// A vector's samples: labels and the value as Prometheus writes it.
fn samples(rows: &[(&[(&str, &str)], &str)]) -> Value {
    let rows: Vec<Value> = (rows.iter())
        .map(|(labels, value)| {
            let metric: serde_json::Map<String, Value> = (labels.iter())
                .map(|(k, v)| ((*k).to_owned(), json!(v)))
                .collect();
            json!({"metric": metric, "value": [1_700_000_000.5, value]})
        })
        .collect();
    Value::Array(rows)
}

/// The queries of `mesh stat` keyed `by` over the window `window`, with their answers: web
/// serves 2.5 rps, 10 % 5xx; backend 1 rps and 2 open TCP connections; idle nothing lately.
fn stat_answers(by: &str, window: &str, names: [&str; 3]) -> Vec<(String, Value)> {
    let [web, backend, idle] = names.map(|name| [(by, name)]);
    let quantile = |q: &str, values: [&str; 3]| {
        (
            format!(
                "histogram_quantile({q}, sum(rate(istio_request_duration_milliseconds_bucket\
                 {{{SELECTOR}}}[{window}])) by (le, {by}))"
            ),
            samples(&[(&web, values[0]), (&backend, values[1]), (&idle, values[2])]),
        )
    };
    vec![
        (
            format!("sum(rate(istio_requests_total{{{SELECTOR}}}[{window}])) by ({by})"),
            samples(&[(&web, "2.5"), (&backend, "1"), (&idle, "0")]),
        ),
        (
            format!(
                r#"sum(rate(istio_requests_total{{{SELECTOR}, response_code=~"5.."}}[{window}])) by ({by})"#
            ),
            samples(&[(&web, "0.25")]),
        ),
        quantile("0.5", ["3.2", "1.25", "NaN"]),
        quantile("0.95", ["8.7", "4", "NaN"]),
        quantile("0.99", ["9.9", "+Inf", "NaN"]),
        (
            format!("sum(istio_tcp_connections_opened_total{{{SELECTOR}}}) by ({by})"),
            samples(&[(&backend, "5")]),
        ),
        (
            format!("sum(istio_tcp_connections_closed_total{{{SELECTOR}}}) by ({by})"),
            samples(&[(&backend, "3")]),
        ),
    ]
}

async fn mesh(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args(args)
        .env_remove("MESH_LAB_NAME")
        .output()
        .await
        .expect("run mesh")
}

fn sorted_queries(answers: &[(String, Value)]) -> Vec<String> {
    let mut queries: Vec<String> = answers.iter().map(|(q, _)| q.clone()).collect();
    queries.sort();
    queries
}

#[tokio::test]
async fn stat_by_deployment_prints_rates_and_quantiles_from_prometheus() {
    let answers = stat_answers("destination_workload", "1m", ["web", "backend", "idle"]);
    let expected = sorted_queries(&answers);
    let prometheus = FakePrometheus::start(answers).await;
    let args = ["stat", "-n", "shop", "--prometheus", &prometheus.url];

    let output = mesh(&[&args[..], &["--window", "1m"]].concat()).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        prometheus.asked(),
        expected,
        "one query of each, as written"
    );
    let table = stdout(&output);
    assert_eq!(
        rows(&table),
        [
            [
                "NAME",
                "MESHED",
                "SUCCESS",
                "RPS",
                "LATENCY_P50",
                "LATENCY_P95",
                "LATENCY_P99",
                "TCP_CONN",
            ],
            ["backend", "-", "100.00%", "1.0rps", "1ms", "4ms", "-", "2"],
            ["idle", "-", "-", "0.0rps", "-", "-", "-", "-"],
            ["web", "-", "90.00%", "2.5rps", "3ms", "9ms", "10ms", "-"],
        ]
        .map(|row| row.map(str::to_owned).to_vec()),
        "{table}"
    );

    // The window defaults to a minute from Prometheus; JSON says what it cannot tell as null.
    let output = mesh(&[&args[..], &["-o", "json"]].concat()).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let json: Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    let web = &json[2];
    assert_eq!(web["name"], "web");
    assert_eq!(web["pods"], Value::Null);
    assert_eq!(web["meshed"], Value::Null);
    assert_eq!(web["requests"], 150.0, "2.5 rps over 60 s");
    assert_eq!(web["failures"], 15.0);
    assert_eq!(web["success_rate"], 0.9);
    assert_eq!(web["rps"], 2.5);
    assert_eq!(web["latency_ms_p99"], 9.9);
    assert_eq!(json[0]["latency_ms_p99"], Value::Null, "+Inf is no latency");
    assert_eq!(json[0]["tcp_open"], 2.0);
    assert_eq!(json[1]["success_rate"], Value::Null, "no requests, no rate");
}

#[tokio::test]
async fn stat_by_pod_groups_by_the_pod_label_or_says_it_is_missing() {
    let pods = ["web-v1-7d9c-abcde", "backend-5f6b-fghij", "idle-0"];
    let answers = stat_answers("pod", "30s", pods);
    let expected = sorted_queries(&answers);
    let prometheus = FakePrometheus::start(answers).await;
    let output = mesh(&[
        "stat",
        "pod",
        "-n",
        "shop",
        "--window",
        "30s",
        "-o",
        "json",
        "--prometheus",
        &prometheus.url,
    ])
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(prometheus.asked(), expected);
    let json: Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    let names: Vec<&str> = (json.as_array().expect("rows").iter())
        .map(|row| row["name"].as_str().expect("a name"))
        .collect();
    assert_eq!(names, ["backend-5f6b-fghij", "idle-0", "web-v1-7d9c-abcde"]);
    assert_eq!(json[2]["requests"], 75.0, "2.5 rps over 30 s");

    // Series scraped without a `pod` label sum into one sample without it.
    let unlabelled = vec![(
        format!("sum(rate(istio_requests_total{{{SELECTOR}}}[30s])) by (pod)"),
        samples(&[(&[], "3.5")]),
    )];
    let prometheus = FakePrometheus::start(unlabelled).await;
    let output = mesh(&[
        "stat",
        "pod",
        "-n",
        "shop",
        "--window",
        "30s",
        "--prometheus",
        &prometheus.url,
    ])
    .await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("carry no `pod` label"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn edges_come_from_both_reporters_in_prometheus() {
    let labels = "reporter, source_workload, source_workload_namespace, destination_workload, \
                  destination_workload_namespace, connection_security_policy, destination_principal";
    let series = r#"__name__=~"istio_requests_total|istio_tcp_connections_opened_total""#;
    let query = format!(
        "sum({{{series}, source_workload_namespace=\"shop\"}}) by ({labels}) or \
         sum({{{series}, destination_workload_namespace=\"shop\"}}) by ({labels})"
    );
    let edge = |reporter, src, src_ns, dst, dst_ns, policy, principal| {
        [
            ("reporter", reporter),
            ("source_workload", src),
            ("source_workload_namespace", src_ns),
            ("destination_workload", dst),
            ("destination_workload_namespace", dst_ns),
            ("connection_security_policy", policy),
            ("destination_principal", principal),
        ]
    };
    let web_id = "spiffe://cluster.local/ns/shop/sa/web";
    let client_to_web = edge("source", "client", "shop", "web", "shop", "unknown", web_id);
    let web_from_client = edge(
        "destination",
        "client",
        "shop",
        "web",
        "shop",
        "mutual_tls",
        web_id,
    );
    let web_to_db = edge("source", "web", "shop", "db", "data", "unknown", "unknown");
    let outsider = edge(
        "destination",
        "outsider",
        "legacy",
        "web",
        "shop",
        "none",
        web_id,
    );
    let gone = edge("source", "old", "shop", "web", "shop", "unknown", web_id);
    let answers = vec![(
        query.clone(),
        samples(&[
            (&client_to_web, "100"),
            (&web_from_client, "100"),
            (&web_to_db, "5"),
            (&outsider, "7"),
            (&gone, "0"),
        ]),
    )];
    let prometheus = FakePrometheus::start(answers).await;
    let output = mesh(&["edges", "-n", "shop", "--prometheus", &prometheus.url]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(prometheus.asked(), [query]);
    let table = stdout(&output);
    assert_eq!(
        rows(&table),
        [
            ["SRC", "DST", "SRC_NS", "DST_NS", "SECURED"],
            ["client", "web", "shop", "shop", "√"],
            ["outsider", "web", "legacy", "shop", "×"],
            ["web", "db", "shop", "data", "×"],
        ]
        .map(|row| row.map(str::to_owned).to_vec()),
        "{table}"
    );
}

#[tokio::test]
async fn a_prometheus_error_is_shown_with_the_query() {
    let prometheus = FakePrometheus::start(Vec::new()).await;
    let output = mesh(&["stat", "-n", "shop", "--prometheus", &prometheus.url]).await;
    assert_eq!(output.status.code(), Some(2));
    let error = stderr(&output);
    assert!(
        error.starts_with("mesh stat: query sum(rate(istio_requests_total{"),
        "{error}"
    );
    assert!(
        error.contains("(400 Bad Request): bad_data: unexpected query"),
        "{error}"
    );

    let output = mesh(&["edges", "--prometheus", "http://127.0.0.1:9/metrics"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("--prometheus"),
        "{}",
        stderr(&output)
    );
}
