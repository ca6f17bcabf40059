use std::collections::BTreeMap;

use super::*;

/// A span of `service` starting `start` ms into the trace and lasting `ms`.
fn span(id: &str, parent: &str, service: &str, kind: &str, start: u64, ms: u64) -> StoredSpan {
    let nanos = 1_700_000_000_000_000_000 + start * 1_000_000;
    StoredSpan {
        trace_id: "t1".into(),
        span_id: id.into(),
        parent_span_id: parent.into(),
        name: "GET web/".into(),
        kind: kind.into(),
        service: service.into(),
        start_unix_nano: nanos,
        end_unix_nano: nanos + ms * 1_000_000,
        status: "unset".into(),
        attributes: BTreeMap::from([("http.response.status_code".into(), "200".into())]),
    }
}

fn shape(nodes: &[Node<'_>]) -> Vec<String> {
    let mut lines = Vec::new();
    fn walk(node: &Node<'_>, depth: usize, lines: &mut Vec<String>) {
        let mark = if node.orphan { " (orphan)" } else { "" };
        lines.push(format!("{}{}{mark}", "  ".repeat(depth), node.span.span_id));
        for child in &node.children {
            walk(child, depth + 1, lines);
        }
    }
    for node in nodes {
        walk(node, 0, &mut lines);
    }
    lines
}

#[test]
fn spans_nest_under_their_parents_and_orphans_stand_at_the_top() {
    let trace = StoredTrace {
        trace_id: "t1".into(),
        spans: vec![
            span("a", "", "client.shop", "client", 0, 10),
            span("b", "a", "web.shop", "server", 1, 8),
            span("c", "b", "web.shop", "client", 2, 5),
            span("x", "gone", "other.shop", "server", 3, 1),
            span("d", "c", "backend.shop", "server", 3, 2),
            span("e", "b", "web.shop", "client", 4, 1),
        ],
    };
    assert_eq!(
        shape(&tree(&trace)),
        ["a", "  b", "    c", "      d", "    e", "x (orphan)"]
    );
}

#[test]
fn a_loop_of_parents_is_broken_at_its_first_span() {
    let trace = StoredTrace {
        trace_id: "t1".into(),
        spans: vec![
            span("p", "q", "web.shop", "server", 0, 1),
            span("q", "p", "web.shop", "client", 1, 1),
            span("s", "s", "web.shop", "client", 2, 1),
        ],
    };
    assert_eq!(shape(&tree(&trace)), ["p (orphan)", "  q", "s (orphan)"]);
}

#[test]
fn each_line_shows_the_span_and_its_peers_at_a_glance() {
    let mut root = span("a", "", "client.shop", "client", 0, 3);
    root.attributes.extend([
        ("mesh.destination_workload".into(), "web".into()),
        (
            "mesh.destination_principal".into(),
            "spiffe://x/ns/shop/sa/web".into(),
        ),
        ("network.peer.address".into(), "10.244.1.7:8080".into()),
        ("mesh.response_flags".into(), "-".into()),
    ]);
    let mut server = span("b", "a", "web.shop", "server", 1, 1);
    server.attributes.extend([
        ("mesh.source_workload".into(), "client".into()),
        ("mesh.source_principal".into(), "unknown".into()),
        ("http.response.status_code".into(), "503".into()),
        ("mesh.response_flags".into(), "UH".into()),
    ]);
    server.status = "error".into();
    let orphan = span("c", "ffff", "backend.shop", "server", 2, 1);
    let trace = StoredTrace {
        trace_id: "4bf92f35".into(),
        spans: vec![root, server, orphan],
    };
    let text = render(std::slice::from_ref(&trace));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "trace 4bf92f35   3 spans   3.00ms");
    assert_eq!(
        lines[1],
        "client.shop    client   GET web/   200         3.00ms   to=web peer=10.244.1.7:8080 mtls"
    );
    assert_eq!(
        lines[2],
        "  web.shop     server   GET web/   503 error   1.00ms   from=client flags=UH"
    );
    assert_eq!(
        lines[3],
        "backend.shop   server   GET web/   200         1.00ms   orphan: parent ffff not received"
    );

    let json = to_json(&trace);
    assert_eq!(json["span_count"], 3);
    assert_eq!(json["roots"][0]["children"][0]["service"], "web.shop");
    assert_eq!(json["roots"][0]["children"][0]["status"], "error");
    assert_eq!(json["roots"][1]["orphan"], true);
    assert_eq!(json["roots"][0]["duration_ms"], 3.0);
}
