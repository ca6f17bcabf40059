//! Test inputs shared by detection's tests: real and hand-made ClientHellos.

use std::sync::Arc;

use rustls::{ClientConfig, ClientConnection, RootCertStore, pki_types::ServerName};

/// The name the tests' clients ask for.
pub(super) const SNI: &str = "web.shop.svc.cluster.local";

/// The first flight of a real rustls client connecting to `server_name` (a DNS name or an IP).
pub(super) fn rustls_client_hello(server_name: &str) -> Vec<u8> {
    rustls_client_hello_with_alpn(server_name, &[])
}

/// The first flight of a real rustls client offering the ALPN `protocols`.
pub(super) fn rustls_client_hello_with_alpn(server_name: &str, protocols: &[&[u8]]) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
    let name = ServerName::try_from(server_name.to_owned()).expect("a valid server name");
    let mut conn = ClientConnection::new(Arc::new(config), name).expect("a client connection");
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).expect("writing to a Vec");
    }
    out
}

/// Where `needle` first occurs in `haystack`.
pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// A ClientHello built by hand, so tests control every length.
#[derive(Clone, Debug, Default)]
pub(super) struct HelloBuilder {
    /// Extensions as (type, content), in order.
    extensions: Vec<(u16, Vec<u8>)>,
}

impl HelloBuilder {
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// Adds a server_name extension with one entry of `name_type`.
    pub(super) fn server_name(mut self, name_type: u8, name: &[u8]) -> Self {
        let mut entry = vec![name_type];
        entry.extend_from_slice(&u16_be(name.len()));
        entry.extend_from_slice(name);
        let mut content = u16_be(entry.len()).to_vec();
        content.extend_from_slice(&entry);
        self.extensions.push((0, content));
        self
    }

    /// Adds a padding extension (RFC 7685) of `len` zero bytes.
    pub(super) fn padding(mut self, len: usize) -> Self {
        self.extensions.push((21, vec![0; len]));
        self
    }

    /// One record: header, handshake header, ClientHello.
    pub(super) fn build(&self) -> Vec<u8> {
        self.build_records(usize::from(u16::MAX))
    }

    /// The handshake message cut into records of at most `max_fragment` bytes each.
    pub(super) fn build_records(&self, max_fragment: usize) -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[0x42; 32]);
        body.push(0); // empty session id
        body.extend_from_slice(&[0x00, 0x02, 0x13, 0x01]); // TLS_AES_128_GCM_SHA256
        body.extend_from_slice(&[0x01, 0x00]); // null compression
        let mut extensions = Vec::new();
        for (extension_type, content) in &self.extensions {
            extensions.extend_from_slice(&extension_type.to_be_bytes());
            extensions.extend_from_slice(&u16_be(content.len()));
            extensions.extend_from_slice(content);
        }
        body.extend_from_slice(&u16_be(extensions.len()));
        body.extend_from_slice(&extensions);

        let mut handshake = vec![0x01];
        handshake.extend_from_slice(&body.len().to_be_bytes()[size_of::<usize>() - 3..]);
        handshake.extend_from_slice(&body);

        let mut records = Vec::new();
        for fragment in handshake.chunks(max_fragment) {
            records.extend_from_slice(&[0x16, 0x03, 0x01]);
            records.extend_from_slice(&u16_be(fragment.len()));
            records.extend_from_slice(fragment);
        }
        records
    }
}

fn u16_be(len: usize) -> [u8; 2] {
    u16::try_from(len).expect("fits in u16").to_be_bytes()
}
