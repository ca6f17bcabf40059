//! The control plane's serving certificate: signed by the mesh root, named for every way a
//! proxy addresses the discovery port and the API server addresses the injection webhook.

use std::{net::IpAddr, sync::Arc, time::Duration};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::{
    ServerConfig,
    pki_types::{CertificateDer, DnsName, PrivateKeyDer, PrivatePkcs8KeyDer},
};

use super::{CaError, MeshRoot, validity};

/// The control plane's Services in every form a client may name them: proxies the discovery
/// port, the API server the webhook (`mesh-injector.mesh-system.svc`).
pub const SERVING_NAMES: [&str; 5] = [
    "mesh-control-plane",
    "mesh-control-plane.mesh-system",
    "mesh-control-plane.mesh-system.svc",
    "mesh-control-plane.mesh-system.svc.cluster.local",
    "mesh-injector.mesh-system.svc",
];

/// How long the serving certificate is valid; each start issues a new one.
const SERVING_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// The discovery server's certificate and private key.
pub struct ServingCert {
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl ServingCert {
    /// A server certificate from `root` for `SERVING_NAMES` and `extra_names` (DNS names or
    /// IP addresses), with a new ECDSA P-256 key.
    pub fn issue(root: &MeshRoot, extra_names: &[String]) -> Result<Self, CaError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, SERVING_NAMES[0]);
        params.subject_alt_names = SERVING_NAMES
            .into_iter()
            .chain(extra_names.iter().map(String::as_str))
            .map(subject_name)
            .collect::<Result<_, _>>()?;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        (params.not_before, params.not_after) = validity(SERVING_LIFETIME);
        let cert = root.issue(&params, &key)?;
        Ok(ServingCert {
            cert: cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        })
    }

    /// The certificate (DER).
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// A TLS server config presenting this certificate and offering the ALPN protocols
    /// `alpn` (the discovery port offers only h2, which gRPC needs).
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, CaError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![self.cert.clone()],
                PrivateKeyDer::Pkcs8(self.key.clone_key()),
            )?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

/// A subject alternative name: an IP address if `name` is one, else a DNS name.
fn subject_name(name: &str) -> Result<SanType, CaError> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let invalid = || CaError::SubjectName {
        name: name.to_owned(),
    };
    DnsName::try_from(name).map_err(|_| invalid())?;
    Ok(SanType::DnsName(name.try_into().map_err(|_| invalid())?))
}
