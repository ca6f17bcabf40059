//! TLS to the control plane: the roots its certificate must chain to and the name it must
//! carry, checked when the proxy starts so that a bad file stops it with a clear message.

use std::{path::Path, time::Duration};

use rustls::{
    RootCertStore,
    pki_types::{CertificateDer, ServerName, pem::PemObject},
};
use tonic::transport::ClientTlsConfig;

use super::XdsError;

/// Gives up on a TLS handshake with the control plane after this long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Whom the proxy trusts as its control plane.
#[derive(Debug, Clone)]
pub struct DiscoveryTls {
    roots: RootCertStore,
    server_name: Option<String>,
}

impl DiscoveryTls {
    /// Trusts the PEM certificates in `root_cert` (the mesh root); the control plane's
    /// certificate must be valid for `server_name`, or for the address's host when `None`.
    pub fn load(root_cert: &Path, server_name: Option<String>) -> Result<Self, XdsError> {
        let pem = std::fs::read(root_cert).map_err(|error| XdsError::RootCertFile {
            path: root_cert.to_owned(),
            error,
        })?;
        let invalid = |reason: String| XdsError::RootCert {
            path: root_cert.to_owned(),
            reason,
        };
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| invalid(format!("its PEM does not parse: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| invalid(format!("a certificate in it is not usable: {e}")))?;
        }
        if roots.is_empty() {
            return Err(invalid(
                "it holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned(),
            ));
        }
        if let Some(name) = &server_name {
            ServerName::try_from(name.as_str())
                .map_err(|_| XdsError::ServerName { name: name.clone() })?;
        }
        Ok(DiscoveryTls { roots, server_name })
    }

    /// tonic's client TLS settings: these roots only, the server name if given, ALPN h2.
    pub(crate) fn client_config(&self) -> ClientTlsConfig {
        let config = ClientTlsConfig::new()
            .trust_anchors(self.roots.roots.clone())
            .timeout(HANDSHAKE_TIMEOUT);
        match &self.server_name {
            Some(name) => config.domain_name(name),
            None => config,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn file(test: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("mesh-xds-tls-{}-{test}", std::process::id()));
        std::fs::write(&path, text).expect("write");
        path
    }

    fn load_error(test: &str, text: &str) -> String {
        let path = file(test, text);
        let error = DiscoveryTls::load(&path, None)
            .expect_err("refused")
            .to_string();
        std::fs::remove_file(&path).expect("cleanup");
        assert!(error.contains(&path.display().to_string()), "{error}");
        error
    }

    #[test]
    fn a_root_certificate_file_is_loaded_with_or_without_a_server_name() {
        let root = rcgen::generate_simple_self_signed(vec!["cp".to_owned()]).expect("cert");
        let path = file("good", &root.cert.pem());
        let tls = DiscoveryTls::load(&path, Some("127.0.0.1".to_owned())).expect("loads");
        assert_eq!(tls.roots.len(), 1);
        let error = DiscoveryTls::load(&path, Some("not a name".to_owned())).expect_err("bad name");
        assert!(
            error
                .to_string()
                .contains("neither a DNS name nor an IP address"),
            "{error}"
        );
        std::fs::remove_file(&path).expect("cleanup");
    }

    #[test]
    fn a_missing_or_garbage_root_file_is_refused_with_the_reason() {
        let missing = DiscoveryTls::load(Path::new("/nonexistent/root.pem"), None)
            .expect_err("missing")
            .to_string();
        assert!(
            missing.contains("cannot read the discovery root certificate /nonexistent/root.pem"),
            "{missing}"
        );
        let garbage = load_error("garbage", "this is not a certificate\n");
        assert!(garbage.contains("no PEM certificate"), "{garbage}");
        let bad = load_error(
            "bad-der",
            "-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n",
        );
        assert!(bad.contains("not usable"), "{bad}");
    }
}
