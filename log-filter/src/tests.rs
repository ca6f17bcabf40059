//! Behaviour of `Filter` as the control plane and the proxy use it.

use std::time::Duration;

use crate::{Facts, Filter, ParseError};

/// A finished request; each test changes the fields it cares about.
struct Request {
    method: &'static str,
    path: &'static str,
    duration: Duration,
    response_code: u16,
    grpc_status: Option<u8>,
    response_flags: &'static str,
    mtls: bool,
    headers: Vec<(&'static str, &'static str)>,
}

impl Default for Request {
    fn default() -> Self {
        Request {
            method: "GET",
            path: "/api/v1?page=2",
            duration: Duration::from_millis(20),
            response_code: 200,
            grpc_status: None,
            response_flags: "-",
            mtls: true,
            headers: Vec::new(),
        }
    }
}

impl Request {
    fn passes(&self, expr: &str) -> bool {
        let filter = Filter::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        self.passes_filter(&filter)
    }

    fn passes_filter(&self, filter: &Filter) -> bool {
        let header = |name: &str| {
            self.headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| *v)
        };
        let facts = Facts {
            method: self.method,
            path: self.path,
            host: "reviews.default.svc.cluster.local",
            scheme: "http",
            protocol: "HTTP/1.1",
            request_size: 12,
            duration: self.duration,
            response_code: self.response_code,
            grpc_status: self.grpc_status,
            response_size: 3456,
            response_flags: self.response_flags,
            mtls: self.mtls,
            source_principal: "spiffe://cluster.local/ns/default/sa/productpage",
            destination_principal: "spiffe://cluster.local/ns/default/sa/reviews",
            header: &header,
        };
        filter.matches(&facts)
    }
}

fn code(response_code: u16) -> Request {
    Request {
        response_code,
        ..Request::default()
    }
}

fn error(expr: &str) -> ParseError {
    match Filter::parse(expr) {
        Ok(filter) => panic!("{expr} parsed as {filter:?}"),
        Err(error) => error,
    }
}

/// Asserts the error's offset and that its message starts with `start`.
fn assert_error(expr: &str, offset: usize, start: &str) {
    let error = error(expr);
    assert_eq!(error.offset, offset, "{expr}: {error}");
    assert!(error.to_string().starts_with(start), "{expr}: {error}");
}

#[test]
fn the_istio_documentation_examples_select_the_requests_they_describe() {
    assert!(code(404).passes("response.code >= 400"));
    assert!(!code(200).passes("response.code >= 400"));

    let errors_or_throttled = "response.code >= 500 || response.code == 429";
    assert!(code(429).passes(errors_or_throttled));
    assert!(code(503).passes(errors_or_throttled));
    assert!(!code(404).passes(errors_or_throttled));

    let failed_api = "request.url_path.startsWith('/api') && response.code != 200";
    assert!(code(500).passes(failed_api));
    assert!(!code(200).passes(failed_api));
    assert!(
        !Request {
            path: "/web?to=/api",
            ..code(500)
        }
        .passes(failed_api)
    );

    assert!(
        Request {
            mtls: false,
            ..Request::default()
        }
        .passes("!connection.mtls")
    );
    assert!(!Request::default().passes("!connection.mtls"));

    let debug = "request.headers['x-debug'] == 'on'";
    assert!(
        Request {
            headers: vec![("x-debug", "on")],
            ..Request::default()
        }
        .passes(debug)
    );
    assert!(
        !Request {
            headers: vec![("x-debug", "off")],
            ..Request::default()
        }
        .passes(debug)
    );
    assert!(!Request::default().passes(debug));

    let slow = "request.duration > duration('1s')";
    assert!(
        Request {
            duration: Duration::from_millis(1500),
            ..Request::default()
        }
        .passes(slow)
    );
    assert!(
        !Request {
            duration: Duration::from_secs(1),
            ..Request::default()
        }
        .passes(slow)
    );

    assert!(code(503).passes("response.code in [500, 503]"));
    assert!(!code(502).passes("response.code in [500, 503]"));

    assert!(
        Request {
            response_flags: "UH",
            ..Request::default()
        }
        .passes("response.flags == 'UH'")
    );
    assert!(!Request::default().passes("response.flags == 'UH'"));
}

#[test]
fn and_binds_tighter_than_or_and_parentheses_regroup() {
    let request = Request::default();
    assert!(request.passes("true || false && false"));
    assert!(request.passes("false && false || true"));
    assert!(!request.passes("(true || false) && false"));
    assert!(
        request.passes("response.code == 200 || response.code == 500 && request.method == 'POST'")
    );
    assert!(
        !request
            .passes("(response.code == 200 || response.code == 500) && request.method == 'POST'")
    );
    assert!(request.passes("!(response.code == 500) && !!connection.mtls"));
    assert!(request.passes("(response.code == 200) == true"));
}

#[test]
fn every_attribute_reads_its_fact() {
    let request = Request {
        grpc_status: Some(14),
        ..Request::default()
    };
    for expr in [
        "request.method == 'GET'",
        "request.path == '/api/v1?page=2'",
        "request.url_path == '/api/v1'",
        "request.host.endsWith('.svc.cluster.local')",
        "request.scheme == \"http\"",
        "request.protocol == 'HTTP/1.1'",
        "request.size == 12",
        "request.duration == duration('20ms')",
        "response.code == 200u",
        "response.grpc_status == 14",
        "response.size > 3455 && response.size < 3457",
        "response.flags == '-'",
        "connection.mtls == true",
        "source.principal.contains('/sa/productpage')",
        "destination.principal.endsWith('/sa/reviews')",
    ] {
        assert!(request.passes(expr), "{expr}");
    }
}

#[test]
fn literals_compare_by_type() {
    let request = Request::default();
    assert!(request.passes("request.size > -1 && -9223372036854775808 < 9223372036854775807"));
    assert!(request.passes("request.method < 'H' && 'it\\'s' == \"it's\" && \"a\\\\\" == 'a\\\\'"));
    assert!(
        request.passes(
            "duration('1m30s') == duration(\"90s\") && duration('1.5s') > duration('1499ms')"
        )
    );
    assert!(request.passes("false < true && 'b' in ['a', 'b'] && !(request.size in [])"));
}

#[test]
fn a_missing_grpc_status_is_undefined_so_only_other_operands_decide() {
    let request = Request::default();
    assert!(!request.passes("response.grpc_status == 0"));
    assert!(!request.passes("response.grpc_status != 0"));
    assert!(!request.passes("!(response.grpc_status == 0)"));
    assert!(!request.passes("response.grpc_status in [0, 14]"));
    assert!(!request.passes("response.grpc_status == 0 || false"));
    assert!(!request.passes("!(response.grpc_status == 0 || false)"));
    assert!(request.passes("response.grpc_status == 0 || true"));
    assert!(request.passes("true || response.grpc_status == 0"));
    assert!(request.passes("!(response.grpc_status == 0 && false)"));
    assert!(
        Request {
            grpc_status: Some(0),
            ..Request::default()
        }
        .passes("response.grpc_status == 0")
    );
}

#[test]
fn headers_are_read_case_insensitively_and_missing_ones_are_empty() {
    let request = Request {
        headers: vec![("x-debug", "on")],
        ..Request::default()
    };
    assert!(request.passes("request.headers['X-Debug'] == 'on'"));
    assert!(request.passes("request.headers[\"x-missing\"] == ''"));
    assert!(request.passes("request.headers['x-debug'].startsWith('o')"));
}

#[test]
fn headers_lists_each_header_the_expression_reads_once() {
    let filter = Filter::parse(
        "request.headers['X-B'] == '' || request.headers[\"a\"] == 'x' || request.headers['x-b'] != 'y'",
    )
    .unwrap();
    assert_eq!(filter.headers().collect::<Vec<_>>(), ["a", "x-b"]);
    assert_eq!(
        Filter::parse("response.code >= 500")
            .unwrap()
            .headers()
            .count(),
        0
    );
    assert_eq!(filter, filter.clone());
}

#[test]
fn unknown_attributes_are_named_with_the_known_ones() {
    let error = error("request.foo == 'x'");
    assert_eq!(error.offset, 0);
    assert!(
        error
            .message
            .starts_with("unknown attribute `request.foo` at 0; known: request.method, ")
    );
    assert!(
        error.message.contains("response.flags")
            && error.message.contains("request.headers['<name>']")
    );
    assert_error(
        "response.code == 200 && xds.cluster_name == 'x'",
        24,
        "unknown attribute `xds.cluster_name`",
    );
    assert_error(
        "request.headers == 'x'",
        16,
        "expected a header name in brackets",
    );
}

#[test]
fn type_mismatches_are_parse_errors() {
    assert_error(
        "response.code == '200'",
        14,
        "cannot compare int with string at 14",
    );
    assert_error(
        "request.duration > 1",
        17,
        "cannot compare duration with int",
    );
    assert_error(
        "response.code && true",
        0,
        "an operand of `&&` must be bool, found int at 0",
    );
    assert_error(
        "true || request.method",
        8,
        "an operand of `||` must be bool, found string",
    );
    assert_error(
        "!response.code",
        1,
        "the operand of `!` must be bool, found int",
    );
    assert_error(
        "request.path",
        0,
        "a filter must be bool, found string at 0",
    );
    assert_error("response.code", 0, "a filter must be bool, found int");
    assert_error(
        "response.code in [500, '503']",
        23,
        "list element is string, but the left side of `in` is int",
    );
    assert_error(
        "response.code.startsWith('5')",
        0,
        "the receiver of `startsWith` must be string",
    );
    assert_error(
        "request.path.contains(1)",
        22,
        "the argument of `contains` must be string",
    );
}

#[test]
fn malformed_text_is_reported_where_it_goes_wrong() {
    assert_error("request.method == 'GET", 18, "unterminated string at 18");
    assert_error(
        "response.code == 200 200",
        21,
        "unexpected number 200 after a complete expression",
    );
    assert_error(
        "response.code == 200)",
        20,
        "unexpected `)` after a complete expression",
    );
    assert_error(
        "(response.code == 200",
        21,
        "expected `)`, found end of expression",
    );
    assert_error(
        "response.code = 200",
        14,
        "unexpected character `=` at 14; use `==` to compare",
    );
    assert_error(
        "response.code in 500",
        17,
        "expected a list such as [500, 503] after `in`",
    );
    assert_error(
        "response.code == 2.5",
        17,
        "floating-point numbers are not supported",
    );
    assert_error(
        "response.code == 9223372036854775808",
        17,
        "integer 9223372036854775808 is out of range",
    );
    assert_error(
        "request.duration > duration('1x')",
        28,
        "invalid duration `1x`",
    );
    assert_error(
        "request.duration > duration(1)",
        28,
        "expected a string literal",
    );
    assert_error("size(request.path) > 0", 0, "unknown function `size`");
    assert_error(
        "request.path.lowerAscii() == ''",
        13,
        "unknown method `lowerAscii`",
    );
    assert_error("", 0, "expected a value, found end of expression");
}

#[test]
fn matches_is_rejected_because_there_are_no_regular_expressions() {
    let error = error("request.path.matches('^/api')");
    assert_eq!(error.offset, 13);
    assert!(error.message.contains("regular expressions"), "{error}");
    assert_error(
        "matches(request.path, 'x')",
        0,
        "`matches` is not supported",
    );
}

#[test]
fn nesting_and_length_are_limited() {
    let nested = |depth: usize| format!("{}true{}", "(".repeat(depth), ")".repeat(depth));
    assert!(Request::default().passes(&nested(32)));
    assert_error(
        &nested(33),
        32,
        "expression nests deeper than 32 levels at 32",
    );
    assert_error(&nested(100_000)[..4000], 32, "expression nests deeper");
    assert_error(
        &format!("{}true", "!".repeat(33)),
        32,
        "expression nests deeper",
    );
    assert_error(
        &format!("true{}", " == true".repeat(40)),
        261,
        "expression nests deeper",
    );

    // A flat chain is not nesting: a long `||` list parses and evaluates.
    let chain = vec!["response.code == 1"; 180].join(" || ");
    assert!(!Request::default().passes(&chain));
    assert!(code(1).passes(&chain));

    let long = format!("true{}", " || true".repeat(600));
    assert_error(
        &long,
        4096,
        "expression longer than 4096 bytes at 4096; it is 4804 bytes",
    );
}

#[test]
fn junk_and_every_prefix_of_valid_expressions_never_panic() {
    let valid = [
        "request.url_path.startsWith('/api') && response.code != 200",
        "response.code in [500, 503,] || !(request.headers[\"x-é\"] == 'ü\\'')",
        "request.duration >= duration('-1h2m3.5s') && response.grpc_status != -1",
    ];
    let junk = [
        "",
        " ",
        "(",
        ")",
        "[",
        "]",
        "!",
        "-",
        "--1",
        "'",
        "\"",
        "\\",
        "'\\",
        "é",
        "💥 == 1",
        "a.",
        ".a",
        "a..b",
        "request.headers[",
        "request.headers['a'",
        "request.headers[1]",
        "in",
        "1 in",
        "1 in [",
        "[1] in [1]",
        "duration(",
        "duration('",
        "duration()",
        "x(",
        "true.contains('a')",
        "'a'.contains",
        "'a'.contains(",
        "1u == 1U",
        "1uu",
        "0x10",
        "1e3",
        "true ==",
        "&& true",
        "true &&",
        "true &",
        "true |",
        "a = b",
        "\0",
    ];
    let request = Request::default();
    let mut inputs: Vec<String> = junk.iter().map(|s| s.to_string()).collect();
    for expr in valid {
        inputs.extend(expr.char_indices().map(|(at, _)| expr[..at].to_owned()));
        inputs.push(expr.to_owned());
    }
    // Token soup from a fixed pseudo-random sequence.
    let pieces = [
        "(", ")", "[", "]", "!", "-", "1", "'a'", "true", ",", ".", "in", "==", "<", "&&", "||",
    ];
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..2000 {
        let mut soup = String::new();
        for _ in 0..12 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            soup.push_str(pieces[(seed % pieces.len() as u64) as usize]);
        }
        inputs.push(soup);
    }
    let mut parsed = 0;
    for input in &inputs {
        match Filter::parse(input) {
            Ok(filter) => {
                request.passes_filter(&filter);
                parsed += 1;
            }
            Err(error) => assert!(error.offset <= input.len(), "{input:?}: {error}"),
        }
    }
    assert!(parsed >= valid.len(), "the complete expressions parse");
}
