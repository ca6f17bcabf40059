//! Names in an expression: attributes, request headers, the `duration` function and
//! string methods.

use super::cursor::unexpected;
use super::{Node, Parser};
use crate::ParseError;
use crate::ast::{Attr, Expr, StrMethod, Type};
use crate::duration;
use crate::lexer::Kind;

// === impl Parser ===

impl Parser<'_> {
    /// A call of the only function, `duration('1m30s')`, in nanoseconds.
    pub(super) fn function(&mut self, name: &str, offset: usize) -> Result<i64, ParseError> {
        match name {
            "duration" => {}
            "matches" => return Err(no_regex(offset)),
            _ => {
                return Err(
                    ParseError::new(offset, format!("unknown function `{name}`"))
                        .hint("the only function is duration, as in duration('1.5s')"),
                );
            }
        }
        self.expect("(", "`(`")?;
        let token = self.advance();
        let Kind::Str(text) = &token.kind else {
            return Err(unexpected(&token, "a string literal such as '1.5s'"));
        };
        let nanos = duration::parse(text).ok_or_else(|| {
            ParseError::new(token.offset, format!("invalid duration `{text}`"))
                .hint("write numbers with units h, m, s, ms, us or ns, as in '1.5s' or '1m30s'")
        })?;
        self.expect(")", "`)`")?;
        Ok(nanos)
    }

    /// A dotted attribute name, or a `request.headers['name']` lookup.
    pub(super) fn attribute(&mut self, first: &str, offset: usize) -> Result<Node, ParseError> {
        let mut name = first.to_owned();
        // Take `.field` parts, but leave `.method(` to `member`.
        while self.at(".")
            && let Some(Kind::Ident(field)) = self.kind_at(1)
            && self.kind_at(2) != Some(&Kind::Punct("("))
        {
            name.push('.');
            name.push_str(field);
            self.pos += 2;
        }
        if name == "request.headers" {
            return self.header(offset);
        }
        let attr = Attr::from_name(&name).ok_or_else(|| {
            ParseError::new(offset, format!("unknown attribute `{name}`"))
                .hint(format_args!("known: {}", Attr::known()))
        })?;
        Ok(Node {
            expr: Expr::Attr(attr),
            ty: attr.ty(),
            offset,
        })
    }

    /// The `['name']` after `request.headers`; the name is kept lowercased.
    pub(super) fn header(&mut self, offset: usize) -> Result<Node, ParseError> {
        self.expect(
            "[",
            "a header name in brackets, as in request.headers['x-debug']",
        )?;
        let token = self.advance();
        let Kind::Str(name) = token.kind else {
            return Err(unexpected(&token, "a header name in quotes"));
        };
        if name.is_empty() {
            return Err(ParseError::new(token.offset, "empty header name"));
        }
        self.expect("]", "`]`")?;
        let name: Box<str> = name.to_ascii_lowercase().into();
        self.headers.push(name.clone());
        Ok(Node {
            expr: Expr::Header(name),
            ty: Type::Str,
            offset,
        })
    }
}

/// The string method called `name`.
pub(super) fn method(name: &str, offset: usize) -> Result<StrMethod, ParseError> {
    if name == "matches" {
        return Err(no_regex(offset));
    }
    StrMethod::from_name(name).ok_or_else(|| {
        ParseError::new(offset, format!("unknown method `{name}`"))
            .hint("supported: startsWith, endsWith, contains")
    })
}

/// Why `matches` is refused.
fn no_regex(offset: usize) -> ParseError {
    ParseError::new(
        offset,
        "`matches` is not supported: regular expressions are not available",
    )
    .hint("use startsWith, endsWith or contains")
}
