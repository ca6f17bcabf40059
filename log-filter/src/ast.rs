//! The checked syntax tree a filter evaluates, and the attributes it can read.

use std::cmp::Ordering;
use std::fmt;

/// A type-checked expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Bool(bool),
    Int(i64),
    Str(Box<str>),
    /// A duration in nanoseconds.
    Duration(i64),
    Attr(Attr),
    /// A request header by lowercased name; a missing header reads as "".
    Header(Box<str>),
    Not(Box<Expr>),
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Compare(Box<Expr>, CmpOp, Box<Expr>),
    /// The left side equals one of the list's elements.
    In(Box<Expr>, Vec<Expr>),
    /// A string method: receiver, method, argument.
    Call(Box<Expr>, StrMethod, Box<Expr>),
}

/// The type of an expression, fixed at parse time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Type {
    Bool,
    Int,
    Str,
    Duration,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A method on strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StrMethod {
    StartsWith,
    EndsWith,
    Contains,
}

/// An attribute of a finished request, named as Envoy names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attr {
    Method,
    Path,
    UrlPath,
    Host,
    Scheme,
    Protocol,
    RequestSize,
    Duration,
    ResponseCode,
    GrpcStatus,
    ResponseSize,
    ResponseFlags,
    Mtls,
    SourcePrincipal,
    DestinationPrincipal,
}

/// Every attribute by name, in the order errors list them (headers are indexed, so apart).
const ATTRIBUTES: [(&str, Attr); 15] = [
    ("request.method", Attr::Method),
    ("request.path", Attr::Path),
    ("request.url_path", Attr::UrlPath),
    ("request.host", Attr::Host),
    ("request.scheme", Attr::Scheme),
    ("request.protocol", Attr::Protocol),
    ("request.size", Attr::RequestSize),
    ("request.duration", Attr::Duration),
    ("response.code", Attr::ResponseCode),
    ("response.grpc_status", Attr::GrpcStatus),
    ("response.size", Attr::ResponseSize),
    ("response.flags", Attr::ResponseFlags),
    ("connection.mtls", Attr::Mtls),
    ("source.principal", Attr::SourcePrincipal),
    ("destination.principal", Attr::DestinationPrincipal),
];

// === impl Type ===

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Type::Bool => "bool",
            Type::Int => "int",
            Type::Str => "string",
            Type::Duration => "duration",
        })
    }
}

// === impl CmpOp ===

impl CmpOp {
    /// The operator a token spells, if it is one.
    pub(crate) fn from_token(token: &str) -> Option<CmpOp> {
        Some(match token {
            "==" => CmpOp::Eq,
            "!=" => CmpOp::Ne,
            "<" => CmpOp::Lt,
            "<=" => CmpOp::Le,
            ">" => CmpOp::Gt,
            ">=" => CmpOp::Ge,
            _ => return None,
        })
    }

    /// Whether `left op right` holds when `left` compares to `right` as `ordering`.
    pub(crate) fn holds(self, ordering: Ordering) -> bool {
        match self {
            CmpOp::Eq => ordering.is_eq(),
            CmpOp::Ne => ordering.is_ne(),
            CmpOp::Lt => ordering.is_lt(),
            CmpOp::Le => ordering.is_le(),
            CmpOp::Gt => ordering.is_gt(),
            CmpOp::Ge => ordering.is_ge(),
        }
    }
}

// === impl StrMethod ===

impl StrMethod {
    /// The method called `name`, if we support it.
    pub(crate) fn from_name(name: &str) -> Option<StrMethod> {
        Some(match name {
            "startsWith" => StrMethod::StartsWith,
            "endsWith" => StrMethod::EndsWith,
            "contains" => StrMethod::Contains,
            _ => return None,
        })
    }

    /// Calls the method on `receiver` with `arg`.
    pub(crate) fn apply(self, receiver: &str, arg: &str) -> bool {
        match self {
            StrMethod::StartsWith => receiver.starts_with(arg),
            StrMethod::EndsWith => receiver.ends_with(arg),
            StrMethod::Contains => receiver.contains(arg),
        }
    }
}

// === impl Attr ===

impl Attr {
    /// The attribute called `name` (e.g. `response.code`), if there is one.
    pub(crate) fn from_name(name: &str) -> Option<Attr> {
        ATTRIBUTES.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
    }

    /// Every name `from_name` knows, plus the header form, for error messages.
    pub(crate) fn known() -> String {
        let mut names: Vec<&str> = ATTRIBUTES.iter().map(|(n, _)| *n).collect();
        names.push("request.headers['<name>']");
        names.join(", ")
    }

    /// The type of the attribute's value.
    pub(crate) fn ty(self) -> Type {
        match self {
            Attr::Method
            | Attr::Path
            | Attr::UrlPath
            | Attr::Host
            | Attr::Scheme
            | Attr::Protocol
            | Attr::ResponseFlags
            | Attr::SourcePrincipal
            | Attr::DestinationPrincipal => Type::Str,
            Attr::RequestSize | Attr::ResponseCode | Attr::GrpcStatus | Attr::ResponseSize => {
                Type::Int
            }
            Attr::Duration => Type::Duration,
            Attr::Mtls => Type::Bool,
        }
    }
}
