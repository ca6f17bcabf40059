//! Moving over the tokens: looking ahead, consuming, and counting nesting.

use super::{MAX_DEPTH, Parser};
use crate::ParseError;
use crate::lexer::{Kind, Token};

// === impl Parser ===

impl<'s> Parser<'s> {
    /// Goes one level deeper, failing past `MAX_DEPTH`.
    pub(super) fn enter(&mut self, offset: usize) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError::new(
                offset,
                format!("expression nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    /// Comes back up a level.
    pub(super) fn leave(&mut self) {
        self.depth -= 1;
    }

    pub(super) fn peek(&self) -> &Token<'s> {
        &self.tokens[self.pos]
    }

    pub(super) fn kind_at(&self, ahead: usize) -> Option<&Kind<'s>> {
        self.tokens.get(self.pos + ahead).map(|t| &t.kind)
    }

    /// The next token; the final `End` is never passed.
    pub(super) fn advance(&mut self) -> Token<'s> {
        let token = self.tokens[self.pos].clone();
        if token.kind != Kind::End {
            self.pos += 1;
        }
        token
    }

    pub(super) fn at(&self, punct: &str) -> bool {
        matches!(self.peek().kind, Kind::Punct(p) if p == punct)
    }

    pub(super) fn eat(&mut self, punct: &str) -> bool {
        let found = self.at(punct);
        if found {
            self.pos += 1;
        }
        found
    }

    /// Consumes `punct`, or says that `wanted` was expected.
    pub(super) fn expect(&mut self, punct: &str, wanted: &str) -> Result<(), ParseError> {
        if self.eat(punct) {
            Ok(())
        } else {
            Err(unexpected(self.peek(), wanted))
        }
    }
}

/// "expected `wanted`, found ..." at `token`.
pub(super) fn unexpected(token: &Token<'_>, wanted: &str) -> ParseError {
    ParseError::new(
        token.offset,
        format!("expected {wanted}, found {}", describe(&token.kind)),
    )
}

/// A token as an error message names it.
pub(super) fn describe(kind: &Kind<'_>) -> String {
    match kind {
        Kind::Ident(name) => format!("`{name}`"),
        Kind::Int(n) => format!("number {n}"),
        Kind::Str(s) => format!("string '{s}'"),
        Kind::Punct(p) => format!("`{p}`"),
        Kind::End => "end of expression".to_owned(),
    }
}
