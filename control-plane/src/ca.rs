//! The mesh's certificate authority: the root every mesh certificate chains to, the discovery
//! server's serving certificate, and the workload certificates sidecars ask for.
//!
//! The root is loaded from `--ca-cert`/`--ca-key` when given; in a cluster it lives in the
//! Secret `--ca-secret` (`secret`: read, or made and stored by the first replica); otherwise
//! it is generated at start and written to `--root-cert-out` for proxies to trust
//! (`--discovery-root-cert`). In a cluster the root certificate is published to every
//! namespace as ConfigMap `mesh-root-cert` (`crate::injection`). `MeshRoot::issue` is the one
//! signing path.
//!
//! Workload certificates (`service`, the `mesh.ca.v1.Certificates` gRPC service on 15012): the
//! caller's credential is checked (`credential`: a TokenReview in a cluster, a lab token in the
//! lab), the token must be its own pod's, and `workload` signs the CSR's key for the caller's
//! SPIFFE identity only.

mod args;
pub mod credential;
pub mod lab_token;
mod root;
pub mod secret;
mod service;
mod serving;
mod token_review;
pub mod workload;

use std::{path::PathBuf, time::Duration};

use time::OffsetDateTime;

pub use args::CaArgs;
pub use root::MeshRoot;
pub use service::CaService;
pub use serving::{SERVING_NAMES, ServingCert};

/// Certificates start this long before they are made, so peers whose clocks lag accept them.
const CLOCK_SKEW: Duration = Duration::from_secs(3600);

/// Why the CA cannot load, make or hand out a certificate.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// A file cannot be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The CA certificate file holds no usable CA certificate.
    #[error("{path} is not a usable CA certificate: {reason}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The CA key file holds no usable private key.
    #[error(
        "{path} is not a usable CA private key ({reason}); give the PEM PKCS#8 key \
         (-----BEGIN PRIVATE KEY-----) that signed --ca-cert"
    )]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key does not belong to the certificate.
    #[error(
        "the key in {key} is not the key of the CA certificate in {cert}; give the matching pair"
    )]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// A name for the serving certificate is neither a DNS name nor an IP address.
    #[error("--xds-san {name:?} is neither a DNS name nor an IP address")]
    SubjectName {
        /// The name given.
        name: String,
    },
    /// Key generation or signing failed.
    #[error("cannot make a certificate: {0}")]
    Sign(rcgen::Error),
    /// The root certificate cannot be written.
    #[error("cannot write the root certificate to {path}: {error}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// rustls refused the serving certificate and key.
    #[error("cannot serve TLS with the discovery server's certificate: {0}")]
    Tls(rustls::Error),
}

// The causes are part of the messages (not error sources), so a printed chain says each once.
impl From<rcgen::Error> for CaError {
    fn from(error: rcgen::Error) -> Self {
        CaError::Sign(error)
    }
}

impl From<rustls::Error> for CaError {
    fn from(error: rustls::Error) -> Self {
        CaError::Tls(error)
    }
}

/// The validity window of a certificate made now that lasts `lifetime`.
fn validity(lifetime: Duration) -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    (now - CLOCK_SKEW, now + lifetime)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod workload_tests;
