//! A workload certificate with its key, as rustls uses it, and the facts the admin port and
//! the renewal schedule need.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use rcgen::{KeyPair, PublicKeyData};
use rustls::{
    RootCertStore,
    crypto::ring::sign::any_ecdsa_type,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, pem::PemObject},
    sign::CertifiedKey,
};
use x509_parser::{extensions::GeneralName, prelude::X509Certificate};

/// A certificate the CA signed for this proxy's key.
#[derive(Debug)]
pub struct WorkloadCert {
    /// The chain and signing key, for rustls.
    pub certified: Arc<CertifiedKey>,
    /// The mesh root the certificate chains to (the chain's last certificate).
    pub roots: Arc<RootCertStore>,
    /// The root certificate, PEM.
    pub root_pem: String,
    /// The SPIFFE identity, e.g. `spiffe://cluster.local/ns/shop/sa/web`.
    pub identity: String,
    /// The serial number, hex.
    pub serial: String,
    /// When it became valid.
    pub not_before: SystemTime,
    /// When it expires.
    pub not_after: SystemTime,
    /// When it arrived.
    pub received: SystemTime,
    /// The root's subject, e.g. `O=mesh, CN=mesh root CA ...`.
    pub root_subject: String,
}

/// Why a CA answer cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// No certificates in the answer.
    #[error("the chain is empty")]
    Empty,
    /// A certificate does not parse.
    #[error("certificate #{index} does not parse: {reason}")]
    Parse {
        /// Its position in the chain.
        index: usize,
        /// Why.
        reason: String,
    },
    /// The certificate is not for our key.
    #[error("the certificate is not for this proxy's key")]
    WrongKey,
    /// The certificate carries no SPIFFE URI SAN.
    #[error("the certificate carries no spiffe:// URI SAN")]
    NoIdentity,
    /// rustls cannot use the key or root.
    #[error("rustls cannot use it: {0}")]
    Rustls(String),
}

// === impl WorkloadCert ===

impl WorkloadCert {
    /// The certificate in `chain_pem` (leaf first, root last) for `key`, received at `now`.
    pub fn new(key: &KeyPair, chain_pem: &[String], now: SystemTime) -> Result<Self, CertError> {
        let chain: Vec<CertificateDer<'static>> = chain_pem
            .iter()
            .enumerate()
            .map(|(index, pem)| {
                CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| CertError::Parse {
                    index,
                    reason: e.to_string(),
                })
            })
            .collect::<Result<_, _>>()?;
        let (leaf_der, root_der) = match (chain.first(), chain.last()) {
            (Some(leaf), Some(root)) => (leaf, root),
            _ => return Err(CertError::Empty),
        };
        let leaf = parse(leaf_der, 0)?;
        let root = parse(root_der, chain.len() - 1)?;
        if leaf.public_key().raw != key.subject_public_key_info() {
            return Err(CertError::WrongKey);
        }
        let identity = spiffe_id(&leaf).ok_or(CertError::NoIdentity)?;
        let mut roots = RootCertStore::empty();
        roots
            .add(root_der.clone())
            .map_err(|e| CertError::Rustls(e.to_string()))?;
        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signing = any_ecdsa_type(&private).map_err(|e| CertError::Rustls(e.to_string()))?;
        // The peer has the root: send the workload certificate and any intermediates.
        let presented = chain[..chain.len().saturating_sub(1).max(1)].to_vec();
        Ok(WorkloadCert {
            identity,
            serial: leaf.raw_serial_as_string().replace(':', ""),
            not_before: to_system_time(leaf.validity().not_before.timestamp()),
            not_after: to_system_time(leaf.validity().not_after.timestamp()),
            received: now,
            root_subject: root.subject().to_string(),
            root_pem: chain_pem.last().cloned().unwrap_or_default(),
            roots: Arc::new(roots),
            certified: Arc::new(CertifiedKey::new(presented, signing)),
        })
    }

    /// When to renew: half way from its arrival to its expiry.
    pub fn renew_at(&self) -> SystemTime {
        let left = self
            .not_after
            .duration_since(self.received)
            .unwrap_or_default();
        self.received + left / 2
    }
}

fn parse<'a>(der: &'a CertificateDer<'_>, index: usize) -> Result<X509Certificate<'a>, CertError> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, cert)| cert)
        .map_err(|e| CertError::Parse {
            index,
            reason: e.to_string(),
        })
}

/// The certificate's `spiffe://` URI SAN.
pub(crate) fn spiffe_id(cert: &X509Certificate<'_>) -> Option<String> {
    let names = cert.subject_alternative_name().ok()??;
    names
        .value
        .general_names
        .iter()
        .find_map(|name| match name {
            GeneralName::URI(uri) if uri.starts_with("spiffe://") => Some((*uri).to_owned()),
            _ => None,
        })
}

fn to_system_time(unix: i64) -> SystemTime {
    match u64::try_from(unix) {
        Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs),
        Err(_) => UNIX_EPOCH,
    }
}
