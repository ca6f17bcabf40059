//! TLS origination to servers outside the mesh (DestinationRule `SIMPLE` and `MUTUAL`): the
//! server's chain is checked against the given roots (else the system's) and its names against
//! the expected ones (else the SNI); for `MUTUAL` the proxy presents a certificate from files.

use std::{
    path::Path,
    sync::{Arc, OnceLock},
};

use mesh_proto::config::v1::{UpstreamTls, upstream_tls::Mode};
use prost::Message;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{
        WebPkiSupportedAlgorithms, ring::default_provider, verify_tls12_signature,
        verify_tls13_signature,
    },
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, TrustAnchor, UnixTime, pem::PemObject},
};
use x509_parser::extensions::GeneralName;

use super::{Carried, ClientTls, verify::pki_error};

/// ALPN offered to servers outside the mesh, by what the connection carries.
const ALPN_HTTP1: &[u8] = b"http/1.1";
const ALPN_H2: &[u8] = b"h2";

/// The client configs and server name of one cluster's TLS origination.
#[derive(Debug)]
pub struct Origination {
    http1: Arc<ClientConfig>,
    h2: Arc<ClientConfig>,
    tcp: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    pool_key: u64,
}

/// Why a cluster's TLS origination settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OriginationError {
    /// A file could not be read.
    #[error("cannot read {what} {path:?}: {source}")]
    Read {
        /// Which setting named the file.
        what: &'static str,
        /// The path.
        path: String,
        /// The I/O or PEM error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A file holds no usable certificate.
    #[error("{what} {path:?} holds no usable PEM certificate")]
    NoCertificate {
        /// Which setting named the file.
        what: &'static str,
        /// The path.
        path: String,
    },
    /// The system has no root certificates.
    #[error("no ca_certificates given and the system has no root certificates")]
    NoSystemRoots,
    /// The SNI is not a DNS name or IP address.
    #[error("sni {0:?} is not a valid server name")]
    Sni(String),
    /// Neither an SNI nor a name to verify.
    #[error("no server name: set sni or subject_alt_names")]
    NoServerName,
    /// MUTUAL without its client certificate.
    #[error("MUTUAL needs client_certificate and private_key")]
    NoClientCertificate,
    /// rustls refused the settings (say, a key that does not match the certificate).
    #[error("{0}")]
    Rustls(#[from] Error),
}

// === impl Origination ===

impl Origination {
    /// Loads `settings` (mode SIMPLE or MUTUAL), reading the files it names.
    pub fn load(settings: &UpstreamTls) -> Result<Self, OriginationError> {
        let provider = Arc::new(default_provider());
        let server_name = server_name(settings)?;
        let check = match settings.insecure_skip_verify {
            true => None,
            false => Some(ServerCheck {
                roots: roots(settings)?,
                expected: match settings.subject_alt_names.as_slice() {
                    [] => vec![ExpectedName::Server(server_name.clone())],
                    names => names.iter().map(|n| ExpectedName::parse(n)).collect(),
                },
            }),
        };
        let verifier = Arc::new(OriginVerifier {
            check,
            algorithms: provider.signature_verification_algorithms,
        });
        let client_auth = match settings.mode() {
            Mode::Mutual => Some(client_certificate(settings)?),
            _ => None,
        };
        let config = |alpn: Option<&[u8]>| -> Result<Arc<ClientConfig>, OriginationError> {
            let builder = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()?
                .dangerous()
                .with_custom_certificate_verifier(verifier.clone());
            let mut config = match &client_auth {
                Some((chain, key)) => {
                    builder.with_client_auth_cert(chain.clone(), key.clone_key())?
                }
                None => builder.with_no_client_auth(),
            };
            config.alpn_protocols = alpn.into_iter().map(<[u8]>::to_vec).collect();
            Ok(Arc::new(config))
        };
        Ok(Origination {
            http1: config(Some(ALPN_HTTP1))?,
            h2: config(Some(ALPN_H2))?,
            tcp: config(None)?,
            server_name,
            // 0 and 1 stand for plain text and mesh TLS in the connection pools.
            pool_key: xxhash_rust::xxh64::xxh64(&settings.encode_to_vec(), 0).max(2),
        })
    }

    /// How a connection carrying `carried` is secured.
    pub fn client_tls(&self, carried: Carried) -> ClientTls<'_> {
        let config = match carried {
            Carried::Http1 => &self.http1,
            Carried::Http2 => &self.h2,
            Carried::Tcp => &self.tcp,
        };
        ClientTls {
            config,
            server_name: Some(&self.server_name),
            pool_key: self.pool_key,
        }
    }
}

/// The name sent in the ClientHello: the SNI, else the first expected name that is a DNS name
/// or an address.
fn server_name(settings: &UpstreamTls) -> Result<ServerName<'static>, OriginationError> {
    if !settings.sni.is_empty() {
        return ServerName::try_from(settings.sni.clone())
            .map_err(|_| OriginationError::Sni(settings.sni.clone()));
    }
    settings
        .subject_alt_names
        .iter()
        .find_map(|name| ServerName::try_from(name.clone()).ok())
        .ok_or(OriginationError::NoServerName)
}

/// The roots inline, else in the PEM file, else the system's.
fn roots(settings: &UpstreamTls) -> Result<Arc<[TrustAnchor<'static>]>, OriginationError> {
    let (what, path, inline) = match (&settings.ca_certificates_pem, &settings.ca_certificates) {
        (pem, _) if !pem.is_empty() => ("ca_certificates_pem", "(inline)", Some(pem.as_bytes())),
        (_, path) if !path.is_empty() => ("ca_certificates", path.as_str(), None),
        _ => return system_roots(),
    };
    let read = |source: Box<dyn std::error::Error + Send + Sync>| OriginationError::Read {
        what,
        path: path.to_owned(),
        source,
    };
    let certs: Vec<_> = match inline {
        Some(pem) => CertificateDer::pem_slice_iter(pem).collect(),
        None => CertificateDer::pem_file_iter(Path::new(path))
            .map_err(|e| read(e.into()))?
            .collect(),
    };
    let mut anchors = Vec::new();
    for cert in certs {
        let cert = cert.map_err(|e| read(e.into()))?;
        if let Ok(anchor) = webpki::anchor_from_trusted_cert(&cert) {
            anchors.push(anchor.to_owned());
        }
    }
    if anchors.is_empty() {
        return Err(OriginationError::NoCertificate {
            what,
            path: path.to_owned(),
        });
    }
    Ok(anchors.into())
}

/// The system's roots, read once per process.
fn system_roots() -> Result<Arc<[TrustAnchor<'static>]>, OriginationError> {
    static SYSTEM: OnceLock<Arc<[TrustAnchor<'static>]>> = OnceLock::new();
    let roots = SYSTEM.get_or_init(|| {
        let loaded = rustls_native_certs::load_native_certs();
        for error in &loaded.errors {
            tracing::warn!(%error, "a system root certificate could not be loaded");
        }
        loaded
            .certs
            .iter()
            .filter_map(|cert| webpki::anchor_from_trusted_cert(cert).ok())
            .map(|anchor| anchor.to_owned())
            .collect()
    });
    if roots.is_empty() {
        return Err(OriginationError::NoSystemRoots);
    }
    Ok(roots.clone())
}

/// MUTUAL's certificate chain and key, inline or from their PEM files.
fn client_certificate(
    settings: &UpstreamTls,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), OriginationError> {
    if !settings.client_certificate_pem.is_empty() && !settings.private_key_pem.is_empty() {
        return inline_client_certificate(settings);
    }
    if settings.client_certificate.is_empty() || settings.private_key.is_empty() {
        return Err(OriginationError::NoClientCertificate);
    }
    let read = |what, path: &str, source: Box<dyn std::error::Error + Send + Sync>| {
        OriginationError::Read {
            what,
            path: path.to_owned(),
            source,
        }
    };
    let cert_path = settings.client_certificate.as_str();
    let chain = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| read("client_certificate", cert_path, e.into()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read("client_certificate", cert_path, e.into()))?;
    if chain.is_empty() {
        return Err(OriginationError::NoCertificate {
            what: "client_certificate",
            path: cert_path.to_owned(),
        });
    }
    let key_path = settings.private_key.as_str();
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| read("private_key", key_path, e.into()))?;
    Ok((chain, key))
}

/// MUTUAL's certificate chain and key given inline.
fn inline_client_certificate(
    settings: &UpstreamTls,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), OriginationError> {
    let read = |what, source: Box<dyn std::error::Error + Send + Sync>| OriginationError::Read {
        what,
        path: "(inline)".to_owned(),
        source,
    };
    let chain = CertificateDer::pem_slice_iter(settings.client_certificate_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read("client_certificate_pem", e.into()))?;
    if chain.is_empty() {
        return Err(OriginationError::NoCertificate {
            what: "client_certificate_pem",
            path: "(inline)".to_owned(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(settings.private_key_pem.as_bytes())
        .map_err(|e| read("private_key_pem", e.into()))?;
    Ok((chain, key))
}

/// A name the server's certificate must carry.
#[derive(Debug)]
enum ExpectedName {
    /// A DNS name (wildcards in the certificate apply) or an IP address.
    Server(ServerName<'static>),
    /// A URI SAN, compared exactly (spiffe://...).
    Uri(String),
}

impl ExpectedName {
    fn parse(name: &str) -> Self {
        match ServerName::try_from(name.to_owned()) {
            Ok(server) if !name.contains("://") => ExpectedName::Server(server),
            _ => ExpectedName::Uri(name.to_owned()),
        }
    }

    fn matches(&self, cert: &webpki::EndEntityCert<'_>, der: &CertificateDer<'_>) -> bool {
        match self {
            ExpectedName::Server(name) => cert.verify_is_valid_for_subject_name(name).is_ok(),
            ExpectedName::Uri(uri) => uri_names(der).iter().any(|u| u == uri),
        }
    }
}

/// The URI SANs of a certificate.
fn uri_names(der: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let Ok(Some(names)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    (names.value.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some((*uri).to_owned()),
            _ => None,
        })
        .collect()
}

/// What a server's certificate is checked against.
#[derive(Debug)]
struct ServerCheck {
    roots: Arc<[TrustAnchor<'static>]>,
    expected: Vec<ExpectedName>,
}

/// Checks a server's chain against the roots and its names against the expected ones; with no
/// check (`insecure_skip_verify`) any certificate is taken, and the handshake signatures still
/// must hold.
#[derive(Debug)]
struct OriginVerifier {
    check: Option<ServerCheck>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for OriginVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let Some(check) = &self.check else {
            return Ok(ServerCertVerified::assertion());
        };
        let cert = webpki::EndEntityCert::try_from(end_entity).map_err(pki_error)?;
        cert.verify_for_usage(
            self.algorithms.all,
            &check.roots,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .map_err(pki_error)?;
        if !check.expected.iter().any(|n| n.matches(&cert, end_entity)) {
            return Err(Error::InvalidCertificate(CertificateError::NotValidForName));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
#[path = "origination_tests.rs"]
mod tests;
