//! Splits an expression into tokens, each with the byte offset where it starts.

use crate::ParseError;

/// A token and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token<'s> {
    pub(crate) kind: Kind<'s>,
    pub(crate) offset: usize,
}

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind<'s> {
    Ident(&'s str),
    /// An integer literal without its sign (a `u` suffix is accepted and dropped).
    Int(u64),
    /// A string literal with its escapes resolved.
    Str(String),
    Punct(&'static str),
    End,
}

/// Operators and punctuation, longest first so that `<=` is not read as `<`.
const PUNCTS: [&str; 16] = [
    "||", "&&", "==", "!=", "<=", ">=", "!", "(", ")", "[", "]", ",", ".", "<", ">", "-",
];

/// The tokens of `text`, ending with `Kind::End` at `text.len()`.
pub(crate) fn tokenize(text: &str) -> Result<Vec<Token<'_>>, ParseError> {
    let mut tokens = Vec::new();
    let mut offset = 0;
    while let Some(&byte) = text.as_bytes().get(offset) {
        if byte.is_ascii_whitespace() {
            offset += 1;
            continue;
        }
        let rest = &text[offset..];
        let (kind, len) = match byte {
            b'0'..=b'9' => number(rest, offset)?,
            b'\'' | b'"' => string(rest, offset)?,
            b'_' | b'a'..=b'z' | b'A'..=b'Z' => {
                let len = rest.bytes().take_while(|b| is_ident(*b)).count();
                (Kind::Ident(&rest[..len]), len)
            }
            _ => punct(rest, offset)?,
        };
        tokens.push(Token { kind, offset });
        offset += len;
    }
    tokens.push(Token {
        kind: Kind::End,
        offset: text.len(),
    });
    Ok(tokens)
}

/// Whether `byte` may continue an identifier.
fn is_ident(byte: u8) -> bool {
    byte == b'_' || byte.is_ascii_alphanumeric()
}

/// An integer literal at the start of `rest`, and its length.
fn number(rest: &str, offset: usize) -> Result<(Kind<'static>, usize), ParseError> {
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let value = rest[..digits].parse().map_err(|_| {
        ParseError::new(
            offset,
            format!("integer `{}` is too large", &rest[..digits]),
        )
    })?;
    let mut len = digits;
    if matches!(rest.as_bytes().get(len), Some(b'u' | b'U')) {
        len += 1;
    }
    match rest.as_bytes().get(len..) {
        Some([b'.' | b'e' | b'E', ..]) if len == digits => Err(ParseError::new(
            offset,
            "floating-point numbers are not supported",
        )
        .hint("use an integer, or duration('1.5s') for times")),
        Some([next, ..]) if is_ident(*next) => {
            Err(ParseError::new(offset, "malformed number")
                .hint("write decimal integers such as 503"))
        }
        _ => Ok((Kind::Int(value), len)),
    }
}

/// A quoted string at the start of `rest`, and its length with the quotes.
fn string(rest: &str, offset: usize) -> Result<(Kind<'static>, usize), ParseError> {
    let mut chars = rest.char_indices();
    let quote = chars.next().map(|(_, c)| c);
    let mut value = String::new();
    while let Some((at, c)) = chars.next() {
        if Some(c) == quote {
            return Ok((Kind::Str(value), at + c.len_utf8()));
        }
        if c != '\\' {
            value.push(c);
            continue;
        }
        match chars.next() {
            Some((_, escaped @ ('\\' | '\'' | '"'))) => value.push(escaped),
            Some((_, other)) => {
                return Err(ParseError::new(
                    offset + at,
                    format!("unsupported escape `\\{other}`"),
                )
                .hint("only \\\\, \\' and \\\" are supported"));
            }
            None => break,
        }
    }
    Err(ParseError::new(offset, "unterminated string"))
}

/// An operator or punctuation mark at the start of `rest`.
fn punct(rest: &str, offset: usize) -> Result<(Kind<'static>, usize), ParseError> {
    if let Some(punct) = PUNCTS.iter().find(|p| rest.starts_with(**p)) {
        return Ok((Kind::Punct(punct), punct.len()));
    }
    let c = rest.chars().next().unwrap_or_default();
    let error = ParseError::new(offset, format!("unexpected character `{c}`"));
    Err(match c {
        '=' => error.hint("use `==` to compare"),
        '&' => error.hint("use `&&`"),
        '|' => error.hint("use `||`"),
        _ => error,
    })
}

#[cfg(test)]
mod tests {
    use super::{Kind, tokenize};

    fn kinds(text: &str) -> Vec<Kind<'_>> {
        tokenize(text)
            .unwrap()
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    #[test]
    fn splits_operators_literals_and_names_with_offsets() {
        let tokens = tokenize("a.b<=-5u||'x\\'y'").unwrap();
        let offsets: Vec<usize> = tokens.iter().map(|t| t.offset).collect();
        assert_eq!(offsets, [0, 1, 2, 3, 5, 6, 8, 10, 16]);
        assert_eq!(
            kinds("a.b<=-5u||'x\\'y'"),
            [
                Kind::Ident("a"),
                Kind::Punct("."),
                Kind::Ident("b"),
                Kind::Punct("<="),
                Kind::Punct("-"),
                Kind::Int(5),
                Kind::Punct("||"),
                Kind::Str("x'y".into()),
                Kind::End,
            ]
        );
        assert_eq!(
            kinds(r#""a\"\\é""#),
            [Kind::Str("a\"\\é".into()), Kind::End]
        );
    }

    #[test]
    fn reports_bad_characters_escapes_and_numbers() {
        let error = tokenize("a = 1").unwrap_err();
        assert_eq!(
            (error.offset, error.message.as_str()),
            (2, "unexpected character `=` at 2; use `==` to compare")
        );
        assert_eq!(tokenize("'a\\n'").unwrap_err().offset, 2);
        assert_eq!(tokenize("x == 1.5").unwrap_err().offset, 5);
        assert_eq!(tokenize("0x1F").unwrap_err().offset, 0);
        assert_eq!(tokenize("99999999999999999999").unwrap_err().offset, 0);
        assert_eq!(tokenize("'abc\\").unwrap_err().offset, 0);
    }
}
