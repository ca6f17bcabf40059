//! DestinationRule `credentialName`: the TLS origination certificates a Secret holds (type
//! kubernetes.io/tls, in the DestinationRule's namespace): `tls.crt` and `tls.key` for MUTUAL,
//! and `ca.crt`, when present, for verifying the server. They reach the proxy inline.

use k8s_openapi::api::core::v1::Secret;
use rustls::pki_types::{CertificateDer, pem::PemObject};

use super::gateway::certificates::{from_secret, secret_text};
use crate::store::Store;

/// What a credential Secret gives TLS origination, as PEM.
#[derive(Debug, Default)]
pub(crate) struct ClientCredential {
    /// MUTUAL: the client certificate chain and its key.
    pub chain_and_key: Option<(String, String)>,
    /// The roots that verify the server (`ca.crt`).
    pub ca: Option<String>,
}

/// The credential in Secret `namespace/name`; `mutual` needs its certificate and key. `Err`
/// holds the message and a hint.
pub(crate) fn client_credential(
    store: &Store,
    namespace: &str,
    name: &str,
    mutual: bool,
) -> Result<ClientCredential, (String, &'static str)> {
    let Some(secret) = store.get::<Secret>(namespace, name) else {
        return Err((
            format!("Secret {namespace}/{name} does not exist"),
            "create it (type kubernetes.io/tls) in the DestinationRule's namespace, or fix the name",
        ));
    };
    let chain_and_key = match mutual {
        true => {
            let certificate = from_secret(store, namespace, name, Vec::new())?;
            Some((certificate.certificate_chain, certificate.private_key))
        }
        false => None,
    };
    let ca = match secret_text(secret, "ca.crt") {
        Ok(pem) => {
            let certificates = CertificateDer::pem_slice_iter(pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    let message = format!("Secret {namespace}/{name}: its ca.crt is not PEM: {e}");
                    (
                        message,
                        "store the PEM roots that verify the server in ca.crt",
                    )
                })?;
            if certificates.is_empty() {
                return Err((
                    format!("Secret {namespace}/{name}: its ca.crt holds no certificate"),
                    "store the PEM roots that verify the server in ca.crt",
                ));
            }
            Some(pem)
        }
        Err(_) if mutual => None,
        Err(why) => {
            return Err((
                format!("Secret {namespace}/{name}: {why}, which SIMPLE needs from credentialName"),
                "store the roots that verify the server in ca.crt, or use caCertificates",
            ));
        }
    };
    Ok(ClientCredential { chain_and_key, ca })
}
