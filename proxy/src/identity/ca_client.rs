//! Asking the mesh CA for a certificate: a new key in memory, a CSR for it, the pod's token.

use std::{
    path::PathBuf,
    time::{Duration, SystemTime},
};

use mesh_proto::ca::v1::{IssueRequest, certificates_client::CertificatesClient};
use rcgen::{CertificateParams, KeyPair, SanType};
use tonic::transport::{Channel, Endpoint};

use super::{IdentityError, WorkloadCert};

/// How long one certificate request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A client of the CA on the control plane's discovery port.
#[derive(Clone)]
pub struct CaClient {
    client: CertificatesClient<Channel>,
    token_file: PathBuf,
    lifetime: Option<Duration>,
    /// The identity the proxy expects (informational: the CA takes it from the token).
    expected: String,
}

// === impl CaClient ===

impl CaClient {
    /// A client that connects to `endpoint` when first used and proves itself with the token
    /// in `token_file`; `expected` names the identity it should get.
    pub fn new(
        endpoint: Endpoint,
        token_file: PathBuf,
        lifetime: Option<Duration>,
        expected: String,
    ) -> Self {
        CaClient {
            client: CertificatesClient::new(endpoint.connect_lazy()),
            token_file,
            lifetime,
            expected,
        }
    }

    /// A fresh key and a certificate for it.
    pub async fn fetch(&mut self) -> Result<WorkloadCert, IdentityError> {
        let token =
            std::fs::read_to_string(&self.token_file).map_err(|error| IdentityError::Token {
                path: self.token_file.clone(),
                error,
            })?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        if let Ok(uri) = self.expected.as_str().try_into() {
            params.subject_alt_names = vec![SanType::URI(uri)];
        }
        let csr = params.serialize_request(&key)?.pem()?;
        let mut request = tonic::Request::new(IssueRequest {
            csr,
            lifetime: self.lifetime.map(Into::into),
        });
        let bearer = format!("Bearer {}", token.trim());
        let value = bearer.parse().map_err(|_| IdentityError::Token {
            path: self.token_file.clone(),
            error: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the token is not a valid header value",
            ),
        })?;
        request.metadata_mut().insert("authorization", value);
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, self.client.issue(request))
            .await
            .map_err(|_| {
                tonic::Status::deadline_exceeded(format!(
                    "no answer from the CA within {REQUEST_TIMEOUT:?}"
                ))
            })??
            .into_inner();
        Ok(WorkloadCert::new(
            &key,
            &answer.cert_chain,
            SystemTime::now(),
        )?)
    }
}
