//! Reads the server name (SNI) out of the first TLS record of a connection.
//!
//! Only the first record is read. A ClientHello larger than one record (over 16 KiB, which takes
//! thousands of cipher suites or a huge session ticket) is judged on the part in the first record:
//! it is TLS, with the SNI if the server_name extension lies wholly in that part, else `None`.
//! Waiting for more records would buy little (the SNI comes in the first few hundred bytes of
//! every client we know) for a buffer with no natural bound.
//!
//! The parser is defensive: every length is checked against both the bytes present and the
//! length its enclosing structure declared, so it never indexes out of bounds, and a length that
//! overruns its container makes the record "not TLS".

/// What the first bytes of a connection say about TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientHello {
    /// A handshake record has started, but its end has not been read yet.
    NeedMore,
    /// Not a TLS handshake record holding a well-formed ClientHello.
    NotTls,
    /// A ClientHello.
    Tls {
        /// The `host_name` of the server_name extension, ASCII-lowercased; `None` when absent or
        /// not a valid DNS name.
        sni: Option<String>,
    },
}

const RECORD_HEADER_LEN: usize = 5;
const CONTENT_TYPE_HANDSHAKE: u8 = 0x16;
const HANDSHAKE_CLIENT_HELLO: u8 = 0x01;
/// TLS plaintext records carry at most 2^14 bytes (RFC 8446, section 5.1).
const MAX_RECORD_LEN: usize = 1 << 14;
const EXTENSION_SERVER_NAME: u16 = 0;
const EXTENSION_ALPN: u16 = 16;
const NAME_TYPE_HOST_NAME: u8 = 0;
/// The longest DNS name, in its text form without a trailing dot.
const MAX_HOST_NAME_LEN: usize = 253;

/// Parses the SNI out of a TLS ClientHello record prefix.
///
/// `buf` holds the first bytes of the connection. The answer is `NeedMore` until the whole first
/// record is in `buf` (bytes after it are ignored), unless the bytes so far already rule TLS out.
pub fn parse_client_hello(buf: &[u8]) -> ClientHello {
    match record(buf) {
        Record::NotTls => ClientHello::NotTls,
        Record::Partial(_) => ClientHello::NeedMore,
        Record::Complete(fragment) => client_hello(fragment),
    }
}

/// Like [`parse_client_hello`], for when no more bytes will come: a first record cut short is
/// judged on its part in `buf`, as a ClientHello spanning records is. Never `NeedMore`.
pub(super) fn parse_truncated_client_hello(buf: &[u8]) -> ClientHello {
    match record(buf) {
        Record::NotTls => ClientHello::NotTls,
        Record::Partial(fragment) | Record::Complete(fragment) => client_hello(fragment),
    }
}

/// The first record, as far as `buf` holds it.
enum Record<'a> {
    NotTls,
    /// The record's content so far (possibly empty).
    Partial(&'a [u8]),
    /// The record's whole content.
    Complete(&'a [u8]),
}

fn record(buf: &[u8]) -> Record<'_> {
    let header_ok = [
        buf.first().is_none_or(|&t| t == CONTENT_TYPE_HANDSHAKE),
        // Version 3.x: SSL 3.0 to TLS 1.3 (which still says 3.1 or 3.3 here).
        buf.get(1).is_none_or(|&major| major == 3),
        buf.get(2).is_none_or(|&minor| minor <= 4),
    ];
    if header_ok.contains(&false) {
        return Record::NotTls;
    }
    let (Some(&hi), Some(&lo)) = (buf.get(3), buf.get(4)) else {
        return Record::Partial(&[]);
    };
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    if len == 0 || len > MAX_RECORD_LEN {
        return Record::NotTls;
    }
    let content = buf.get(RECORD_HEADER_LEN..).unwrap_or_default();
    match content.get(..len) {
        Some(whole) => Record::Complete(whole),
        None if content
            .first()
            .is_some_and(|&t| t != HANDSHAKE_CLIENT_HELLO) =>
        {
            Record::NotTls
        }
        None => Record::Partial(content),
    }
}

/// The protocols a ClientHello's ALPN extension offers (RFC 7301), in the client's order; empty
/// when `buf` does not start with a ClientHello record or offers none. Like the SNI, only what
/// lies in the first record counts.
pub fn client_hello_alpn(buf: &[u8]) -> Vec<Vec<u8>> {
    let fragment = match record(buf) {
        Record::NotTls => return Vec::new(),
        Record::Partial(fragment) | Record::Complete(fragment) => fragment,
    };
    hello_fields(fragment).map(|f| f.alpn).unwrap_or_default()
}

/// What a ClientHello says, as far as it was read.
#[derive(Default)]
struct HelloFields {
    sni: Option<String>,
    alpn: Vec<Vec<u8>>,
}

/// Parses the start of a handshake stream: a ClientHello message, whole or cut short.
fn client_hello(fragment: &[u8]) -> ClientHello {
    match hello_fields(fragment) {
        Some(fields) => ClientHello::Tls { sni: fields.sni },
        None => ClientHello::NotTls,
    }
}

/// The fields of a ClientHello message, whole or cut short (judged on the part read); `None`
/// when it is not one.
fn hello_fields(fragment: &[u8]) -> Option<HelloFields> {
    // The declared length is unknown until the message header is read.
    let mut reader = Reader {
        buf: fragment,
        declared: usize::MAX,
    };
    if reader.u8() != Ok(HANDSHAKE_CLIENT_HELLO) {
        return None;
    }
    let mut fields = HelloFields::default();
    match client_hello_message(&mut reader, &mut fields) {
        Ok(()) | Err(Stop::Truncated) => Some(fields),
        Err(Stop::Malformed) => None,
    }
}

/// The ClientHello after its type byte (RFC 8446, section 4.1.2); fills `fields` as it finds
/// them.
fn client_hello_message(reader: &mut Reader<'_>, fields: &mut HelloFields) -> Result<(), Stop> {
    let len = reader.u24()?;
    let mut hello = reader.sub(len)?;
    let [major, _minor] = hello.array()?;
    if major != 3 {
        return Err(Stop::Malformed);
    }
    let _random: [u8; 32] = hello.array()?;
    let session_id_len = usize::from(hello.u8()?);
    if session_id_len > 32 {
        return Err(Stop::Malformed);
    }
    hello.sub(session_id_len)?;
    let cipher_suites_len = usize::from(hello.u16()?);
    if cipher_suites_len == 0 || cipher_suites_len % 2 != 0 {
        return Err(Stop::Malformed);
    }
    hello.sub(cipher_suites_len)?;
    let compression_methods_len = usize::from(hello.u8()?);
    if compression_methods_len == 0 {
        return Err(Stop::Malformed);
    }
    hello.sub(compression_methods_len)?;
    if hello.declared == 0 {
        // SSL 3.0 style: no extensions at all.
        return Ok(());
    }
    let extensions_len = usize::from(hello.u16()?);
    let mut extensions = hello.sub(extensions_len)?;
    if hello.declared != 0 {
        return Err(Stop::Malformed);
    }
    while extensions.declared != 0 {
        let extension_type = extensions.u16()?;
        let len = usize::from(extensions.u16()?);
        let mut extension = extensions.sub(len)?;
        if extension_type == EXTENSION_SERVER_NAME && fields.sni.is_none() {
            fields.sni = server_name(&mut extension)?;
        } else if extension_type == EXTENSION_ALPN && fields.alpn.is_empty() {
            fields.alpn = protocol_names(&mut extension)?;
        }
    }
    Ok(())
}

/// The server_name extension's content (RFC 6066, section 3): the first `host_name`, if any.
fn server_name(extension: &mut Reader<'_>) -> Result<Option<String>, Stop> {
    let list_len = usize::from(extension.u16()?);
    let mut list = extension.sub(list_len)?;
    if extension.declared != 0 {
        return Err(Stop::Malformed);
    }
    while list.declared != 0 {
        let name_type = list.u8()?;
        let len = usize::from(list.u16()?);
        let mut name = list.sub(len)?;
        if name_type == NAME_TYPE_HOST_NAME {
            return Ok(host_name(name.bytes(len)?));
        }
    }
    Ok(None)
}

/// The ALPN extension's content: a list of non-empty protocol names.
fn protocol_names(extension: &mut Reader<'_>) -> Result<Vec<Vec<u8>>, Stop> {
    let list_len = usize::from(extension.u16()?);
    let mut list = extension.sub(list_len)?;
    let mut names = Vec::new();
    while list.declared != 0 {
        let len = usize::from(list.u8()?);
        if len == 0 {
            return Err(Stop::Malformed);
        }
        names.push(list.bytes(len)?.to_vec());
    }
    Ok(names)
}

/// A DNS name in text form, lowercased, or `None` when `name` is not one.
fn host_name(name: &[u8]) -> Option<String> {
    let valid = !name.is_empty()
        && name.len() <= MAX_HOST_NAME_LEN
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if !valid {
        return None;
    }
    let name = std::str::from_utf8(name).ok()?;
    Some(name.to_ascii_lowercase())
}

/// Why parsing stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// A structure continues past the bytes present (but within its declared length).
    Truncated,
    /// A length overruns the structure that contains it, or a field has an impossible value.
    Malformed,
}

/// A cursor over a structure that declares `declared` bytes, of which `buf` are present.
#[derive(Debug)]
struct Reader<'a> {
    buf: &'a [u8],
    declared: usize,
}

// === impl Reader ===

impl<'a> Reader<'a> {
    /// The next `n` bytes; they must be declared and present.
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], Stop> {
        if n > self.declared {
            return Err(Stop::Malformed);
        }
        let Some((head, rest)) = self.buf.split_at_checked(n) else {
            return Err(Stop::Truncated);
        };
        self.buf = rest;
        self.declared -= n;
        Ok(head)
    }

    /// The next `n` declared bytes as a structure of their own, however many of them are present.
    fn sub(&mut self, n: usize) -> Result<Reader<'a>, Stop> {
        if n > self.declared {
            return Err(Stop::Malformed);
        }
        let (head, rest) = self.buf.split_at(n.min(self.buf.len()));
        self.buf = rest;
        self.declared -= n;
        Ok(Reader {
            buf: head,
            declared: n,
        })
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Stop> {
        let bytes = self.bytes(N)?;
        bytes.try_into().map_err(|_| Stop::Malformed)
    }

    fn u8(&mut self) -> Result<u8, Stop> {
        let [b] = self.array()?;
        Ok(b)
    }

    fn u16(&mut self) -> Result<u16, Stop> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u24(&mut self) -> Result<usize, Stop> {
        let [a, b, c] = self.array()?;
        Ok(usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c))
    }
}

#[cfg(test)]
mod tests;
