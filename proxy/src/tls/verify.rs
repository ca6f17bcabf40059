//! Peer verification for mesh TLS: the chain must lead to the mesh root in force, and the
//! certificate's SPIFFE identity must be one the connection expects. Server names play no part:
//! workload certificates carry a URI SAN only.

use std::sync::Arc;

use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, OtherError, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{
        CryptoProvider, WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature,
    },
    pki_types::{CertificateDer, ServerName, UnixTime},
    server::danger::{ClientCertVerified, ClientCertVerifier},
};

use crate::identity::IdentityStore;

/// Verifies peers against the identity store's roots.
#[derive(Debug)]
pub(super) struct PeerVerifier {
    identity: IdentityStore,
    /// The identities a server may present; `None` on the server side (any mesh client).
    expected: Option<Arc<[String]>>,
    algorithms: WebPkiSupportedAlgorithms,
}

// === impl PeerVerifier ===

impl PeerVerifier {
    pub(super) fn new(
        identity: IdentityStore,
        expected: Option<Arc<[String]>>,
        provider: &CryptoProvider,
    ) -> Self {
        PeerVerifier {
            identity,
            expected,
            algorithms: provider.signature_verification_algorithms,
        }
    }

    /// Checks the chain up to the mesh root for `usage`; returns the peer's SPIFFE identity.
    fn verify_chain(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        usage: webpki::KeyUsage,
    ) -> Result<String, Error> {
        let Some(current) = self.identity.current() else {
            return Err(Error::General(
                "no mesh root yet: this proxy has no workload certificate".to_owned(),
            ));
        };
        let cert = webpki::EndEntityCert::try_from(end_entity).map_err(pki_error)?;
        cert.verify_for_usage(
            self.algorithms.all,
            &current.roots.roots,
            intermediates,
            now,
            usage,
            None,
            None,
        )
        .map_err(pki_error)?;
        peer_identity(end_entity).ok_or(Error::InvalidCertificate(
            CertificateError::ApplicationVerificationFailure,
        ))
    }
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let identity = self.verify_chain(
            end_entity,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
        )?;
        let expected = self.expected.as_deref().unwrap_or_default();
        if !expected.is_empty() && !expected.contains(&identity) {
            return Err(Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(UnexpectedIdentity {
                    presented: identity,
                    expected: expected.to_vec(),
                })),
            )));
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

impl ClientCertVerifier for PeerVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.verify_chain(
            end_entity,
            intermediates,
            now,
            webpki::KeyUsage::client_auth(),
        )?;
        Ok(ClientCertVerified::assertion())
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

/// The server presented a valid mesh certificate of a workload the cluster does not expect.
#[derive(Debug, thiserror::Error)]
#[error("the server is {presented}, not one of {expected:?}")]
struct UnexpectedIdentity {
    presented: String,
    expected: Vec<String>,
}

/// The `spiffe://` URI SAN of a certificate.
pub fn peer_identity(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    crate::identity::spiffe_id(&parsed)
}

/// A webpki error as rustls reports certificate problems.
pub(super) fn pki_error(error: webpki::Error) -> Error {
    use webpki::Error as E;
    let problem = match error {
        E::BadDer | E::BadDerTime | E::TrailingData(_) => CertificateError::BadEncoding,
        E::CertNotValidYet { .. } => CertificateError::NotValidYet,
        E::CertExpired { .. } => CertificateError::Expired,
        E::UnknownIssuer => CertificateError::UnknownIssuer,
        E::InvalidSignatureForPublicKey => CertificateError::BadSignature,
        other => CertificateError::Other(OtherError(Arc::new(other))),
    };
    Error::InvalidCertificate(problem)
}
