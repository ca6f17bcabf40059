//! Evaluates a checked tree against one request's facts, without allocating.
//!
//! As in CEL, a missing value (only `response.grpc_status` can be missing) makes the
//! comparison that reads it undefined rather than false; `!` keeps it undefined, `||` and
//! `&&` let a decisive other operand win (`true || undefined` is true), and a filter that
//! ends undefined does not match.

use crate::Facts;
use crate::ast::{Attr, Expr};

/// A value during evaluation; the parser has made sure both sides of a comparison share a
/// variant, so the derived ordering only ever compares like with like.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
enum Value<'v> {
    Bool(bool),
    Int(i64),
    Str(&'v str),
    /// Nanoseconds.
    Duration(i64),
}

/// Whether `expr` is true for `facts`; undefined counts as false.
pub(crate) fn matches(expr: &Expr, facts: &Facts<'_>) -> bool {
    truth(expr, facts) == Some(true)
}

/// The truth of a bool expression; `None` when undefined.
fn truth(expr: &Expr, facts: &Facts<'_>) -> Option<bool> {
    match eval(expr, facts)? {
        Value::Bool(b) => Some(b),
        _ => None,
    }
}

/// The value of `expr`; `None` when undefined.
fn eval<'v>(expr: &'v Expr, facts: &'v Facts<'_>) -> Option<Value<'v>> {
    let value = match expr {
        Expr::Bool(b) => Value::Bool(*b),
        Expr::Int(n) => Value::Int(*n),
        Expr::Str(s) => Value::Str(s),
        Expr::Duration(nanos) => Value::Duration(*nanos),
        Expr::Attr(attr) => return attribute(*attr, facts),
        Expr::Header(name) => Value::Str((facts.header)(name).unwrap_or_default()),
        Expr::Not(operand) => Value::Bool(!truth(operand, facts)?),
        Expr::Or(operands) => Value::Bool(decide(operands, true, facts)?),
        Expr::And(operands) => Value::Bool(decide(operands, false, facts)?),
        Expr::Compare(left, op, right) => {
            let ordering = eval(left, facts)?.partial_cmp(&eval(right, facts)?)?;
            Value::Bool(op.holds(ordering))
        }
        Expr::In(needle, list) => {
            let needle = eval(needle, facts)?;
            let items = list
                .iter()
                .map(|item| eval(item, facts).map(|v| v == needle));
            Value::Bool(any(items, true)?)
        }
        Expr::Call(receiver, method, arg) => match (eval(receiver, facts)?, eval(arg, facts)?) {
            (Value::Str(receiver), Value::Str(arg)) => Value::Bool(method.apply(receiver, arg)),
            _ => return None,
        },
    };
    Some(value)
}

/// `||` (`decisive` true) or `&&` (`decisive` false) over `operands`, left to right.
fn decide(operands: &[Expr], decisive: bool, facts: &Facts<'_>) -> Option<bool> {
    any(
        operands.iter().map(|operand| truth(operand, facts)),
        decisive,
    )
}

/// `decisive` as soon as an item is; otherwise undefined if any item was, else `!decisive`.
fn any(items: impl Iterator<Item = Option<bool>>, decisive: bool) -> Option<bool> {
    let mut undefined = false;
    for item in items {
        match item {
            Some(b) if b == decisive => return Some(decisive),
            Some(_) => {}
            None => undefined = true,
        }
    }
    if undefined { None } else { Some(!decisive) }
}

/// The value of an attribute; `None` for a gRPC status the response did not have.
fn attribute<'v>(attr: Attr, facts: &'v Facts<'_>) -> Option<Value<'v>> {
    let count = |n: u64| Value::Int(i64::try_from(n).unwrap_or(i64::MAX));
    Some(match attr {
        Attr::Method => Value::Str(facts.method),
        Attr::Path => Value::Str(facts.path),
        Attr::UrlPath => Value::Str(
            facts
                .path
                .split_once('?')
                .map_or(facts.path, |(path, _)| path),
        ),
        Attr::Host => Value::Str(facts.host),
        Attr::Scheme => Value::Str(facts.scheme),
        Attr::Protocol => Value::Str(facts.protocol),
        Attr::RequestSize => count(facts.request_size),
        Attr::Duration => {
            Value::Duration(i64::try_from(facts.duration.as_nanos()).unwrap_or(i64::MAX))
        }
        Attr::ResponseCode => Value::Int(facts.response_code.into()),
        Attr::GrpcStatus => Value::Int(facts.grpc_status?.into()),
        Attr::ResponseSize => count(facts.response_size),
        Attr::ResponseFlags => Value::Str(facts.response_flags),
        Attr::Mtls => Value::Bool(facts.mtls),
        Attr::SourcePrincipal => Value::Str(facts.source_principal),
        Attr::DestinationPrincipal => Value::Str(facts.destination_principal),
    })
}
