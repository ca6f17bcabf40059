//! The sidecar's workload identity: a key made in memory (it never leaves the process), a
//! certificate for it from the mesh CA, renewed at half of its remaining life and kept through
//! CA outages.
//!
//! `IdentityArgs` holds the flags; `CaClient` asks the CA (`mesh.ca.v1`, on the control plane's
//! 15012) with the pod's token; `renew::run` keeps a current `WorkloadCert` in the
//! `IdentityStore`, which TLS configs read at every handshake, so a renewal takes effect without
//! touching open connections.

mod args;
mod ca_client;
mod certificate;
mod renew;

use std::sync::Arc;

use tokio::sync::watch;

pub use args::IdentityArgs;
pub use ca_client::CaClient;
pub(crate) use certificate::spiffe_id;
pub use certificate::{CertError, WorkloadCert};
pub use renew::run as run_renewal;

/// The current workload certificate, if one has arrived.
#[derive(Clone, Debug)]
pub struct IdentityStore {
    current: watch::Sender<Option<Arc<WorkloadCert>>>,
}

// === impl IdentityStore ===

impl IdentityStore {
    /// A store with no certificate yet.
    pub fn new() -> Self {
        IdentityStore {
            current: watch::Sender::new(None),
        }
    }

    /// The certificate in force.
    pub fn current(&self) -> Option<Arc<WorkloadCert>> {
        self.current.borrow().clone()
    }

    /// Replaces the certificate in force; new handshakes use it from now on.
    pub fn set(&self, cert: WorkloadCert) {
        self.current.send_replace(Some(Arc::new(cert)));
    }

    /// Waits until a certificate is in force.
    pub async fn ready(&self) {
        let mut watch = self.current.subscribe();
        // The sender lives in `self`, so the wait ends only with a certificate.
        let _ = watch.wait_for(Option::is_some).await;
    }

    /// Changes of the certificate in force (for TLS configs that rebuild on a new root).
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<WorkloadCert>>> {
        self.current.subscribe()
    }
}

impl Default for IdentityStore {
    fn default() -> Self {
        Self::new()
    }
}

/// Why the identity cannot be set up or renewed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The token file cannot be read.
    #[error(
        "cannot read the CA token {path}: {error} (is the projected service-account token mounted?)"
    )]
    Token {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The key or CSR cannot be made.
    #[error("cannot make a key and CSR: {0}")]
    Csr(#[from] rcgen::Error),
    /// The CA refused or could not be reached.
    #[error("the CA refused: {}: {}", .0.code(), .0.message())]
    Ca(#[from] tonic::Status),
    /// The CA's answer is not a usable certificate for our key.
    #[error("the CA's certificate is not usable: {0}")]
    Cert(#[from] CertError),
}
