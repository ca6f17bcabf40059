//! Traces as trees: each span under its parent (by `parent_span_id`), siblings in start order;
//! a span whose parent never reached the collector stands at the top, marked an orphan.
//! Printed a line per span, indented by depth, or as nested JSON.

use std::collections::HashMap;

use mesh_lab::workload::{StoredSpan, StoredTrace};
use serde_json::{Value, json};

use crate::output::columns;

/// A span in its trace's tree.
pub struct Node<'a> {
    /// The span.
    pub span: &'a StoredSpan,
    /// Whether it stands at the top though it names a parent (one the trace does not hold).
    pub orphan: bool,
    /// Its children, in start order.
    pub children: Vec<Node<'a>>,
}

/// The trace's spans as trees: its roots and orphans in start order, each with its descendants.
pub fn tree(trace: &StoredTrace) -> Vec<Node<'_>> {
    let spans = &trace.spans;
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, span) in spans.iter().enumerate() {
        index.entry(span.span_id.as_str()).or_insert(i);
    }
    let mut children = vec![Vec::new(); spans.len()];
    let mut tops = Vec::new();
    for (i, span) in spans.iter().enumerate() {
        match index.get(span.parent_span_id.as_str()) {
            Some(&parent) if !span.parent_span_id.is_empty() && parent != i => {
                children[parent].push(i);
            }
            _ => tops.push(i),
        }
    }
    let mut placed = vec![false; spans.len()];
    let mut nodes: Vec<Node<'_>> = (tops.into_iter())
        .map(|i| place(i, spans, &children, &mut placed))
        .collect();
    // Spans whose parents form a loop reach no top: the first of each loop goes there.
    for i in 0..spans.len() {
        if !placed[i] {
            nodes.push(place(i, spans, &children, &mut placed));
        }
    }
    for node in &mut nodes {
        node.orphan = !node.span.parent_span_id.is_empty();
    }
    nodes.sort_by_key(|node| node.span.start_unix_nano);
    nodes
}

/// Span `i` with the spans under it not placed yet (so a loop of parents ends).
fn place<'a>(
    i: usize,
    spans: &'a [StoredSpan],
    children: &[Vec<usize>],
    placed: &mut [bool],
) -> Node<'a> {
    placed[i] = true;
    let mut node = Node {
        span: &spans[i],
        orphan: false,
        children: Vec::new(),
    };
    for &child in &children[i] {
        if !placed[child] {
            node.children.push(place(child, spans, children, placed));
        }
    }
    node
}

/// The traces as text: a heading per trace, then a line per span, children indented under
/// their parent.
pub fn render(traces: &[StoredTrace]) -> String {
    let mut text = String::new();
    for trace in traces {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&format!(
            "trace {}   {} spans   {}\n",
            trace.trace_id,
            trace.spans.len(),
            ms(trace_duration(trace))
        ));
        let mut lines = Vec::new();
        for node in tree(trace) {
            lines_of(&node, 0, &mut lines);
        }
        text.push_str(&columns(&lines));
    }
    text
}

/// The trace as JSON: its id, span count, duration, and its trees (`roots`, each span with its
/// `children`).
pub fn to_json(trace: &StoredTrace) -> Value {
    let roots: Vec<Value> = tree(trace).iter().map(node_json).collect();
    json!({
        "trace_id": trace.trace_id,
        "span_count": trace.spans.len(),
        "duration_ms": trace_duration(trace),
        "roots": roots,
    })
}

fn node_json(node: &Node<'_>) -> Value {
    let span = node.span;
    let children: Vec<Value> = node.children.iter().map(node_json).collect();
    json!({
        "service": span.service,
        "kind": span.kind,
        "name": span.name,
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id,
        "status": span.status,
        "duration_ms": span_duration(span),
        "attributes": span.attributes,
        "orphan": node.orphan,
        "children": children,
    })
}

/// One line per span of the tree under `node`: service, kind, name, status, duration, and
/// the attributes worth a glance.
fn lines_of(node: &Node<'_>, depth: usize, lines: &mut Vec<[String; 6]>) {
    let span = node.span;
    let service = if span.service.is_empty() {
        "unknown"
    } else {
        &span.service
    };
    lines.push([
        format!("{}{service}", "  ".repeat(depth)),
        span.kind.clone(),
        span.name.clone(),
        status(span),
        ms(span_duration(span)),
        glance(node),
    ]);
    for child in &node.children {
        lines_of(child, depth + 1, lines);
    }
}

/// The HTTP status code (and a gRPC status other than OK), and `error` when the span failed.
fn status(span: &StoredSpan) -> String {
    let attribute = |key: &str| span.attributes.get(key).map(String::as_str);
    let mut status = attribute("http.response.status_code")
        .unwrap_or("-")
        .to_owned();
    if let Some(grpc) = attribute("rpc.grpc.status_code").filter(|code| *code != "0") {
        status.push_str(&format!(" grpc={grpc}"));
    }
    if span.status == "error" {
        status.push_str(" error");
    }
    status
}

/// The peer (`from=` for a server, `to=` and `peer=` for a client), `mtls` when the peer's
/// identity was proven, response flags, and why an orphan stands at the top.
fn glance(node: &Node<'_>) -> String {
    let span = node.span;
    let known = |key: &str| {
        (span.attributes.get(key).map(String::as_str))
            .filter(|v| !v.is_empty() && !matches!(*v, "unknown" | "-"))
    };
    let mut parts = Vec::new();
    let principal = match span.kind.as_str() {
        "server" => {
            parts.extend(known("mesh.source_workload").map(|w| format!("from={w}")));
            known("mesh.source_principal")
        }
        "client" => {
            parts.extend(known("mesh.destination_workload").map(|w| format!("to={w}")));
            parts.extend(known("network.peer.address").map(|a| format!("peer={a}")));
            known("mesh.destination_principal")
        }
        _ => None,
    };
    if principal.is_some() {
        parts.push("mtls".to_owned());
    }
    parts.extend(known("mesh.response_flags").map(|f| format!("flags={f}")));
    if node.orphan {
        parts.push(format!(
            "orphan: parent {} not received",
            span.parent_span_id
        ));
    }
    parts.join(" ")
}

fn span_duration(span: &StoredSpan) -> f64 {
    nanos_to_ms(span.end_unix_nano.saturating_sub(span.start_unix_nano))
}

/// From the first span's start to the last span's end.
fn trace_duration(trace: &StoredTrace) -> f64 {
    let start = trace.spans.iter().map(|s| s.start_unix_nano).min();
    let end = trace.spans.iter().map(|s| s.end_unix_nano).max();
    match (start, end) {
        (Some(start), Some(end)) => nanos_to_ms(end.saturating_sub(start)),
        _ => 0.0,
    }
}

fn nanos_to_ms(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

fn ms(value: f64) -> String {
    format!("{value:.2}ms")
}

#[cfg(test)]
mod tests;
