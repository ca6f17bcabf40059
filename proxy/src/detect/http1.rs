//! Recognises an HTTP/1.x request line, `METHOD SP request-target SP HTTP/1.0|1.1 CRLF`
//! (RFC 9112, section 3), byte by byte as it arrives.
//!
//! The matcher is incremental, so a client that trickles its bytes costs linear time in all.
//! It is strict where a client must be: no leading empty line, single spaces, a CRLF ending, a
//! visible-ASCII target. A client that breaks those rules is still served, as opaque TCP.

/// What the bytes so far say about a request line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Match {
    /// A complete, valid request line.
    Yes,
    /// Can no longer become one.
    No,
    /// A valid beginning of one.
    Maybe,
}

/// An incremental matcher over a growing buffer.
#[derive(Debug, Default)]
pub(super) struct RequestLine {
    state: State,
    /// How many bytes of the buffer `state` accounts for.
    pos: usize,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    /// Nothing read yet.
    #[default]
    Method,
    /// Inside the method token, which has at least one byte.
    MethodByte,
    /// After the method's space.
    Target,
    /// Inside the request-target, which has at least one byte.
    TargetByte,
    /// Matched this many bytes of `HTTP/1.`.
    Version(usize),
    Minor,
    Cr,
    Lf,
    Matched,
    Failed,
}

const VERSION_PREFIX: &[u8] = b"HTTP/1.";

// === impl RequestLine ===

impl RequestLine {
    /// Takes in the bytes of `buf` not seen yet (`buf` only ever grows) and says where it stands.
    pub(super) fn advance(&mut self, buf: &[u8]) -> Match {
        for &byte in buf.get(self.pos..).unwrap_or_default() {
            self.state = next(self.state, byte);
            self.pos += 1;
            if matches!(self.state, State::Matched | State::Failed) {
                break;
            }
        }
        match self.state {
            State::Matched => Match::Yes,
            State::Failed => Match::No,
            _ => Match::Maybe,
        }
    }
}

fn next(state: State, byte: u8) -> State {
    match state {
        State::Method | State::MethodByte if is_tchar(byte) => State::MethodByte,
        State::MethodByte if byte == b' ' => State::Target,
        State::Target | State::TargetByte if byte.is_ascii_graphic() => State::TargetByte,
        State::TargetByte if byte == b' ' => State::Version(0),
        State::Version(n) if VERSION_PREFIX.get(n) == Some(&byte) => {
            if n + 1 == VERSION_PREFIX.len() {
                State::Minor
            } else {
                State::Version(n + 1)
            }
        }
        State::Minor if matches!(byte, b'0' | b'1') => State::Cr,
        State::Cr if byte == b'\r' => State::Lf,
        State::Lf if byte == b'\n' => State::Matched,
        State::Matched => State::Matched,
        _ => State::Failed,
    }
}

/// A token character (RFC 9110, section 5.6.2), the alphabet of methods.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(input: &[u8]) -> Match {
        RequestLine::default().advance(input)
    }

    /// Feeds `input` one byte more at a time, as a trickling client would.
    fn trickled(input: &[u8]) -> Match {
        let mut line = RequestLine::default();
        let mut result = line.advance(&[]);
        for end in 1..=input.len() {
            result = line.advance(&input[..end]);
        }
        result
    }

    #[test]
    fn request_lines() {
        let cases: &[(&[u8], Match)] = &[
            (b"", Match::Maybe),
            (b"GE", Match::Maybe),
            (b"GET /index.html?q=1 HTT", Match::Maybe),
            (b"GET / HTTP/1.1\r", Match::Maybe),
            (b"GET / HTTP/1.1\r\n", Match::Yes),
            (b"GET / HTTP/1.0\r\nHost: a\r\n\r\n", Match::Yes),
            (b"OPTIONS * HTTP/1.1\r\n", Match::Yes),
            (b"CONNECT db:5432 HTTP/1.1\r\n", Match::Yes),
            (b"M-SEARCH * HTTP/1.1\r\n", Match::Yes),
            (b"GET http://a/b HTTP/1.1\r\nbinary\xff", Match::Yes),
            (b" GET / HTTP/1.1\r\n", Match::No),
            (b"\r\nGET / HTTP/1.1\r\n", Match::No),
            (b"GET  / HTTP/1.1\r\n", Match::No),
            (b"GET / HTTP/1.2\r\n", Match::No),
            (b"GET / HTTP/2.0\r\n", Match::No),
            (b"GET / HTTP/1.1\n", Match::No),
            (b"GET / HTTP/1.1\r\r", Match::No),
            (b"GET /caf\xc3\xa9 HTTP/1.1\r\n", Match::No),
            (b"GET / http/1.1\r\n", Match::No),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Match::No),
            (b"*1\r\n$4\r\nPING\r\n", Match::No),
            (b"\x16\x03\x01", Match::No),
        ];
        for &(input, expected) in cases {
            let shown = String::from_utf8_lossy(input);
            assert_eq!(whole(input), expected, "whole {shown:?}");
            assert_eq!(trickled(input), expected, "trickled {shown:?}");
        }
    }
}
