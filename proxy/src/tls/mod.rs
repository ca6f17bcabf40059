//! Mutual TLS between sidecars: the rustls configs both ends use, with the workload certificate
//! of the `IdentityStore` and peers verified against the mesh root by SPIFFE identity; and TLS
//! origination to servers outside the mesh (`Origination`).
//!
//! ALPN says what a connection carries (`ALPN_HTTP1`, `ALPN_H2`, `ALPN_TCP`), and a ClientHello
//! offering one of them is how the inbound side tells mesh TLS from an app's own TLS. Both
//! configs read the certificate and roots at each handshake, so a renewal or a new root takes
//! effect on the next connection and open connections are left alone.

mod origination;
mod resolve;
mod stream;
mod termination;
mod verify;

use std::sync::Arc;

use rustls::{
    ClientConfig, ServerConfig,
    crypto::{CryptoProvider, ring::default_provider},
    pki_types::{CertificateDer, ServerName},
    version::TLS13,
};

pub use origination::{Origination, OriginationError};
pub use stream::MaybeTls;
pub use termination::Termination;
pub use verify::peer_identity;

use self::{resolve::CurrentCert, verify::PeerVerifier};
use crate::identity::IdentityStore;

/// HTTP/1.1 between sidecars.
pub const ALPN_HTTP1: &[u8] = b"mesh/http1.1";
/// HTTP/2 (gRPC included) between sidecars.
pub const ALPN_H2: &[u8] = b"mesh/h2";
/// Opaque TCP between sidecars.
pub const ALPN_TCP: &[u8] = b"mesh/tcp";

/// Whether an offered ALPN protocol is one of the mesh's.
pub fn is_mesh_alpn(protocol: &[u8]) -> bool {
    [ALPN_HTTP1, ALPN_H2, ALPN_TCP].contains(&protocol)
}

/// The mesh's TLS configs for one proxy.
#[derive(Debug)]
pub struct MeshTls {
    identity: IdentityStore,
    provider: Arc<CryptoProvider>,
    server: Arc<ServerConfig>,
}

/// Client configs for one set of expected peer identities, one per ALPN protocol.
#[derive(Debug)]
pub struct ClientConfigs {
    http1: Arc<ClientConfig>,
    h2: Arc<ClientConfig>,
    tcp: Arc<ClientConfig>,
}

/// How one connection to an endpoint is secured.
#[derive(Clone, Copy, Debug)]
pub struct ClientTls<'a> {
    /// The rustls config.
    pub config: &'a Arc<ClientConfig>,
    /// The name to send and verify; `None` for mesh TLS, where the identity is what counts.
    pub server_name: Option<&'a ServerName<'static>>,
    /// Tells apart pools of connections secured differently (1 is mesh TLS).
    pub pool_key: u64,
}

// === impl ClientTls ===

impl ClientTls<'_> {
    /// Whether this is mesh TLS (identities checked) rather than TLS origination.
    pub fn is_mesh(&self) -> bool {
        self.server_name.is_none()
    }
}

/// What a mesh connection carries, from its ALPN protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carried {
    /// HTTP/1.1.
    Http1,
    /// HTTP/2.
    Http2,
    /// Opaque bytes.
    Tcp,
}

// === impl MeshTls ===

impl MeshTls {
    /// TLS 1.3 configs that present the certificate in `identity` and require the peer's.
    pub fn new(identity: IdentityStore) -> Result<Self, rustls::Error> {
        let provider = Arc::new(default_provider());
        let verifier = Arc::new(PeerVerifier::new(identity.clone(), None, &provider));
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&TLS13])?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(CurrentCert(identity.clone())));
        server.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec(), ALPN_TCP.to_vec()];
        Ok(MeshTls {
            identity,
            provider,
            server: Arc::new(server),
        })
    }

    /// The inbound side's config.
    pub fn server_config(&self) -> &Arc<ServerConfig> {
        &self.server
    }

    /// Client configs that accept a server presenting one of `expected` (any mesh identity
    /// when empty).
    pub fn client_configs(&self, expected: Arc<[String]>) -> Result<ClientConfigs, rustls::Error> {
        let verifier = Arc::new(PeerVerifier::new(
            self.identity.clone(),
            Some(expected),
            &self.provider,
        ));
        let config = |alpn: &[u8]| -> Result<Arc<ClientConfig>, rustls::Error> {
            let mut config = ClientConfig::builder_with_provider(self.provider.clone())
                .with_protocol_versions(&[&TLS13])?
                .dangerous()
                .with_custom_certificate_verifier(verifier.clone())
                .with_client_cert_resolver(Arc::new(CurrentCert(self.identity.clone())));
            config.alpn_protocols = vec![alpn.to_vec()];
            Ok(Arc::new(config))
        };
        Ok(ClientConfigs {
            http1: config(ALPN_HTTP1)?,
            h2: config(ALPN_H2)?,
            tcp: config(ALPN_TCP)?,
        })
    }

    /// The identity this proxy presents, once it has a certificate.
    pub fn own_identity(&self) -> Option<String> {
        self.identity.current().map(|c| c.identity.clone())
    }
}

// === impl ClientConfigs ===

impl ClientConfigs {
    /// How a mesh connection that carries `carried` is secured.
    pub fn get(&self, carried: Carried) -> ClientTls<'_> {
        let config = match carried {
            Carried::Http1 => &self.http1,
            Carried::Http2 => &self.h2,
            Carried::Tcp => &self.tcp,
        };
        ClientTls {
            config,
            server_name: None,
            pool_key: 1,
        }
    }
}

// === impl Carried ===

impl Carried {
    /// What a negotiated ALPN protocol says a connection carries.
    pub fn from_alpn(protocol: Option<&[u8]>) -> Option<Self> {
        match protocol? {
            p if p == ALPN_HTTP1 => Some(Carried::Http1),
            p if p == ALPN_H2 => Some(Carried::Http2),
            p if p == ALPN_TCP => Some(Carried::Tcp),
            _ => None,
        }
    }
}

/// The SPIFFE identity in a verified peer's certificate chain.
pub fn identity_of(certs: Option<&[CertificateDer<'_>]>) -> Option<String> {
    certs?.first().and_then(|c| peer_identity(c))
}
