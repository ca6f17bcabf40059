//! Workload certificates: the key from the caller's CSR, the identity from its credential.

use std::{sync::Arc, time::Duration};

use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DistinguishedName, ExtendedKeyUsagePurpose,
    KeyUsagePurpose, SanType, SerialNumber,
};

use ring::rand::{SecureRandom, SystemRandom};

use time::OffsetDateTime;

use super::MeshRoot;

/// The lifetime of a workload certificate unless `--workload-cert-ttl` says otherwise.
pub const DEFAULT_WORKLOAD_TTL: Duration = Duration::from_secs(24 * 3600);
/// The shortest lifetime a caller may ask for: shorter would renew faster than it is useful.
const MIN_WORKLOAD_TTL: Duration = Duration::from_secs(10);
/// Workload certificates start this long before they are made, for peers whose clocks lag (a
/// little: sidecars renew at half of what is left, counted from when they receive one).
const WORKLOAD_BACKDATE: Duration = Duration::from_secs(300);

/// Signs workload certificates with the mesh root.
pub struct WorkloadIssuer {
    root: Arc<MeshRoot>,
    ttl: Duration,
}

/// A signed workload certificate.
#[derive(Debug)]
pub struct IssuedCert {
    /// The chain, PEM: the workload certificate, then the root.
    pub chain: Vec<String>,
    /// The SPIFFE identity it carries.
    pub identity: String,
    /// Its serial number, hex.
    pub serial: String,
}

/// Why a CSR cannot be signed.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The CSR is not a PEM PKCS#10 request with a valid signature.
    #[error("the CSR is not a valid PEM certificate signing request: {0}")]
    Csr(rcgen::Error),
    /// The identity cannot be written as a URI SAN.
    #[error("{identity:?} cannot be a certificate's URI SAN")]
    Identity {
        /// The identity.
        identity: String,
    },
    /// The system's random number generator failed.
    #[error("cannot draw a random serial number")]
    Random,
    /// Signing failed.
    #[error("cannot sign the certificate: {0}")]
    Sign(#[from] super::CaError),
}

// === impl WorkloadIssuer ===

impl WorkloadIssuer {
    /// An issuer with the mesh root whose certificates last `ttl`.
    pub fn new(root: Arc<MeshRoot>, ttl: Duration) -> Self {
        WorkloadIssuer { root, ttl }
    }

    /// The mesh root certificates chain to.
    pub fn root(&self) -> &MeshRoot {
        &self.root
    }

    /// Signs a certificate for the public key of `csr_pem` whose only name is the URI SAN
    /// `identity`: every name and attribute the CSR asks for is ignored. It lasts `wanted`
    /// when that is shorter than the issuer's lifetime (and at least 10 s).
    pub fn issue(
        &self,
        csr_pem: &str,
        identity: &str,
        wanted: Option<Duration>,
    ) -> Result<IssuedCert, IssueError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(IssueError::Csr)?;
        let lifetime = wanted
            .map_or(self.ttl, |w| w.min(self.ttl))
            .max(MIN_WORKLOAD_TTL);
        let mut serial = [0u8; 16];
        SystemRandom::new()
            .fill(&mut serial)
            .map_err(|_| IssueError::Random)?;
        serial[0] &= 0x7f; // a positive number, as X.509 wants
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        let uri = identity.try_into().map_err(|_| IssueError::Identity {
            identity: identity.to_owned(),
        })?;
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        (params.not_before, params.not_after) = (now - WORKLOAD_BACKDATE, now + lifetime);
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        let cert = self.root.issue(&params, &csr.public_key)?;
        Ok(IssuedCert {
            chain: vec![cert.pem(), self.root.cert_pem().to_owned()],
            identity: identity.to_owned(),
            serial: serial.iter().map(|b| format!("{b:02x}")).collect(),
        })
    }
}
