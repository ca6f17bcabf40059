//! Recursive descent over the tokens, type-checking each node as it is built.
//!
//! Precedence, loosest first: `||`, `&&`, comparisons and `in`, unary `!` and `-`, then
//! method calls. `||` and `&&` chains become one flat node, so only parentheses, lists, calls,
//! `!` and comparisons nest, and `MAX_DEPTH` bounds both this recursion and the tree.

mod cursor;
mod names;

use crate::ParseError;
use crate::ast::{CmpOp, Expr, Type};
use crate::lexer::{self, Kind, Token};

use cursor::{describe, unexpected};

/// The longest expression accepted, in bytes.
const MAX_LENGTH: usize = 4096;
/// The deepest nesting of parentheses, lists, calls, `!` and comparisons accepted.
const MAX_DEPTH: usize = 32;

/// Parses and type-checks a filter; returns its tree and the headers it reads, sorted.
pub(crate) fn parse(text: &str) -> Result<(Expr, Vec<Box<str>>), ParseError> {
    if text.len() > MAX_LENGTH {
        return Err(ParseError::new(
            MAX_LENGTH,
            format!("expression longer than {MAX_LENGTH} bytes"),
        )
        .hint(format_args!("it is {} bytes", text.len())));
    }
    let tokens = lexer::tokenize(text)?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        depth: 0,
        headers: Vec::new(),
    };
    let node = parser.or()?;
    let next = parser.peek();
    if next.kind != Kind::End {
        let found = describe(&next.kind);
        return Err(ParseError::new(
            next.offset,
            format!("unexpected {found} after a complete expression"),
        ));
    }
    expect_type(&node, Type::Bool, "a filter")?;
    let mut headers = parser.headers;
    headers.sort();
    headers.dedup();
    Ok((node.expr, headers))
}

/// An expression with its type and where it starts.
struct Node {
    expr: Expr,
    ty: Type,
    offset: usize,
}

// === impl Node ===

impl Node {
    /// A bool expression starting at `offset`.
    fn boolean(expr: Expr, offset: usize) -> Node {
        Node {
            expr,
            ty: Type::Bool,
            offset,
        }
    }
}

/// The tokens still to read, how deep we are, and the headers seen so far.
struct Parser<'s> {
    tokens: Vec<Token<'s>>,
    pos: usize,
    depth: usize,
    headers: Vec<Box<str>>,
}

/// A parsing step, for `Parser::chain`.
type Step<'s> = fn(&mut Parser<'s>) -> Result<Node, ParseError>;

// === impl Parser ===

impl<'s> Parser<'s> {
    fn or(&mut self) -> Result<Node, ParseError> {
        self.chain("||", Parser::and, Expr::Or)
    }

    fn and(&mut self) -> Result<Node, ParseError> {
        self.chain("&&", Parser::relation, Expr::And)
    }

    /// Bool operands joined by `op`, as one node; a single operand stands alone.
    fn chain(
        &mut self,
        op: &str,
        operand: Step<'s>,
        build: fn(Vec<Expr>) -> Expr,
    ) -> Result<Node, ParseError> {
        let first = operand(self)?;
        if !self.at(op) {
            return Ok(first);
        }
        let offset = first.offset;
        let what = format!("an operand of `{op}`");
        let mut operands = vec![expect_type(&first, Type::Bool, &what).map(|()| first.expr)?];
        while self.eat(op) {
            let next = operand(self)?;
            expect_type(&next, Type::Bool, &what)?;
            operands.push(next.expr);
        }
        Ok(Node::boolean(build(operands), offset))
    }

    /// Comparisons and `in`, left to right; each one nests a level.
    fn relation(&mut self) -> Result<Node, ParseError> {
        let outer = self.depth;
        let mut left = self.unary()?;
        loop {
            let Token { kind, offset } = self.peek().clone();
            let op = match kind {
                Kind::Punct(p) => CmpOp::from_token(p),
                _ => None,
            };
            if kind != Kind::Ident("in") && op.is_none() {
                break;
            }
            self.pos += 1;
            self.enter(offset)?;
            let (right, op) = match op {
                Some(op) => (self.unary()?, op),
                None => {
                    left = self.membership(left)?;
                    continue;
                }
            };
            if left.ty != right.ty {
                return Err(ParseError::new(
                    offset,
                    format!("cannot compare {} with {}", left.ty, right.ty),
                ));
            }
            let expr = Expr::Compare(Box::new(left.expr), op, Box::new(right.expr));
            left = Node::boolean(expr, left.offset);
        }
        self.depth = outer;
        Ok(left)
    }

    /// The list literal after `in`, each element of the left side's type.
    fn membership(&mut self, left: Node) -> Result<Node, ParseError> {
        self.expect("[", "a list such as [500, 503] after `in`")?;
        let mut elements = Vec::new();
        while !self.eat("]") {
            let element = self.or()?;
            if element.ty != left.ty {
                let message = format!(
                    "list element is {}, but the left side of `in` is {}",
                    element.ty, left.ty
                );
                return Err(ParseError::new(element.offset, message));
            }
            elements.push(element.expr);
            if !self.eat(",") {
                self.expect("]", "`,` or `]`")?;
                break;
            }
        }
        let expr = Expr::In(Box::new(left.expr), elements);
        Ok(Node::boolean(expr, left.offset))
    }

    fn unary(&mut self) -> Result<Node, ParseError> {
        let offset = self.peek().offset;
        if self.eat("!") {
            self.enter(offset)?;
            let operand = self.unary()?;
            self.leave();
            expect_type(&operand, Type::Bool, "the operand of `!`")?;
            return Ok(Node::boolean(Expr::Not(Box::new(operand.expr)), offset));
        }
        if self.eat("-") {
            let token = self.advance();
            return match token.kind {
                Kind::Int(n) => Ok(Node {
                    expr: Expr::Int(integer(n, true, offset)?),
                    ty: Type::Int,
                    offset,
                }),
                _ => Err(ParseError::new(offset, "`-` only negates integer literals")),
            };
        }
        self.member()
    }

    /// A value followed by string method calls.
    fn member(&mut self) -> Result<Node, ParseError> {
        let mut node = self.primary()?;
        loop {
            let offset = self.peek().offset;
            if self.at("[") {
                return Err(ParseError::new(
                    offset,
                    "only request.headers can be indexed",
                ));
            }
            if !self.eat(".") {
                return Ok(node);
            }
            let token = self.advance();
            let Kind::Ident(name) = token.kind else {
                return Err(unexpected(&token, "a method name"));
            };
            let method = names::method(name, token.offset)?;
            expect_type(&node, Type::Str, &format!("the receiver of `{name}`"))?;
            self.expect("(", "`(`")?;
            self.enter(token.offset)?;
            let arg = self.or()?;
            self.expect(")", "`)`")?;
            self.leave();
            expect_type(&arg, Type::Str, &format!("the argument of `{name}`"))?;
            let expr = Expr::Call(Box::new(node.expr), method, Box::new(arg.expr));
            node = Node::boolean(expr, node.offset);
        }
    }

    /// A literal, a parenthesised expression, a `duration(...)` or an attribute.
    fn primary(&mut self) -> Result<Node, ParseError> {
        let token = self.advance();
        let offset = token.offset;
        let (expr, ty) = match token.kind {
            Kind::Int(n) => (Expr::Int(integer(n, false, offset)?), Type::Int),
            Kind::Str(s) => (Expr::Str(s.into()), Type::Str),
            Kind::Ident("true") => (Expr::Bool(true), Type::Bool),
            Kind::Ident("false") => (Expr::Bool(false), Type::Bool),
            Kind::Ident(name) if self.at("(") => {
                (Expr::Duration(self.function(name, offset)?), Type::Duration)
            }
            Kind::Ident(name) => return self.attribute(name, offset),
            Kind::Punct("(") => {
                self.enter(offset)?;
                let inner = self.or()?;
                self.expect(")", "`)`")?;
                self.leave();
                return Ok(Node { offset, ..inner });
            }
            Kind::Punct("[") => {
                return Err(ParseError::new(offset, "a list may only follow `in`"));
            }
            _ => return Err(unexpected(&token, "a value")),
        };
        Ok(Node { expr, ty, offset })
    }
}

/// Fails unless `node` has type `ty`; `what` names the node's role.
fn expect_type(node: &Node, ty: Type, what: &str) -> Result<(), ParseError> {
    if node.ty == ty {
        return Ok(());
    }
    Err(ParseError::new(
        node.offset,
        format!("{what} must be {ty}, found {}", node.ty),
    ))
}

/// `n` or `-n`, if it fits an `i64`.
fn integer(n: u64, negative: bool, offset: usize) -> Result<i64, ParseError> {
    let value = if negative {
        0i64.checked_sub_unsigned(n)
    } else {
        i64::try_from(n).ok()
    };
    value.ok_or_else(|| ParseError::new(offset, format!("integer {n} is out of range")))
}
