//! TLS termination on explicit (gateway) listeners: the certificates config gives, each served
//! to the clients whose SNI it names.

use std::{sync::Arc, time::Duration};

use mesh_proto::config::v1 as pb;
use rustls::{
    ServerConfig,
    crypto::{CryptoProvider, ring::default_provider},
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, server::TlsStream};

use crate::{addr::ClientAddr, fast_hash::FastMap};

/// How long a client has to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A listener's TLS server side.
#[derive(Debug)]
pub struct Termination {
    config: Arc<ServerConfig>,
}

/// Certificates by the server names they serve.
#[derive(Debug, Default)]
struct BySni {
    exact: FastMap<String, Arc<CertifiedKey>>,
    /// `.example.com` for `*.example.com`, longest first.
    wildcards: Vec<(String, Arc<CertifiedKey>)>,
    /// For clients that send no SNI, or one no certificate names.
    fallback: Option<Arc<CertifiedKey>>,
}

// === impl Termination ===

impl Termination {
    /// The server side of `tls`, offering HTTP/2 and HTTP/1.1 by ALPN when `http`; `None`
    /// with the reasons in `errors` when a certificate or key is unusable.
    pub fn compile(
        tls: &pb::TlsTermination,
        http: bool,
        at: &str,
        errors: &mut Vec<String>,
    ) -> Option<Arc<Self>> {
        let provider = Arc::new(default_provider());
        let before = errors.len();
        let mut by_sni = BySni::default();
        if tls.certificates.is_empty() {
            errors.push(format!("{at}: tls has no certificates"));
        }
        for (i, cert) in tls.certificates.iter().enumerate() {
            let at = format!("{at}: tls.certificates[{i}]");
            match certified_key(cert, &provider) {
                Ok(key) => by_sni.add(&cert.server_names, Arc::new(key)),
                Err(reason) => errors.push(format!("{at}: {reason}")),
            }
        }
        if errors.len() > before {
            return None;
        }
        by_sni
            .wildcards
            .sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        let mut config = match ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
        {
            Ok(builder) => builder
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(by_sni)),
            Err(error) => {
                errors.push(format!("{at}: tls: {error}"));
                return None;
            }
        };
        if http {
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        }
        Some(Arc::new(Termination {
            config: Arc::new(config),
        }))
    }

    /// Whether a terminated connection negotiated HTTP/2.
    pub fn is_h2(stream: &TlsStream<TcpStream>) -> bool {
        stream.get_ref().1.alpn_protocol() == Some(b"h2")
    }

    /// Completes a client's handshake; `None` (logged) when it fails or takes too long.
    pub async fn accept(
        &self,
        stream: TcpStream,
        client: ClientAddr,
    ) -> Option<TlsStream<TcpStream>> {
        let acceptor = TlsAcceptor::from(self.config.clone());
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => Some(stream),
            Ok(Err(error)) => {
                tracing::info!(%client, %error, "TLS handshake failed; closing the connection");
                None
            }
            Err(_) => {
                tracing::info!(%client, timeout = ?HANDSHAKE_TIMEOUT,
                    "TLS handshake did not complete in time; closing the connection");
                None
            }
        }
    }
}

/// The chain and key of `cert`, checked to belong together.
fn certified_key(
    cert: &pb::ServerCertificate,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, String> {
    let chain = CertificateDer::pem_slice_iter(cert.certificate_chain.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("certificate_chain is not PEM: {e}"))?;
    let leaf = chain
        .first()
        .ok_or("certificate_chain holds no certificate")?;
    webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| format!("certificate_chain's first certificate is malformed: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(cert.private_key.as_bytes())
        .map_err(|e| format!("private_key is not a PEM private key: {e}"))?;
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("private_key is unusable: {e}"))?;
    let certified = CertifiedKey::new(chain, key);
    certified
        .keys_match()
        .map_err(|e| format!("private_key does not belong to the certificate: {e}"))?;
    Ok(certified)
}

// === impl BySni ===

impl BySni {
    /// Serves `key` to `names` (exact or `*.` wildcards); with no names, to everyone else.
    fn add(&mut self, names: &[String], key: Arc<CertifiedKey>) {
        if names.is_empty() {
            self.fallback.get_or_insert(key);
            return;
        }
        for name in names {
            let name = name.to_ascii_lowercase();
            match name.strip_prefix('*') {
                Some(suffix) => self.wildcards.push((suffix.to_owned(), key.clone())),
                None => {
                    self.exact.entry(name).or_insert_with(|| key.clone());
                }
            }
        }
    }

    /// The certificate for `server_name`: exact, then the longest wildcard, then the fallback.
    fn find(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let found = server_name.and_then(|name| {
            let name = name.to_ascii_lowercase();
            self.exact.get(&name).cloned().or_else(|| {
                (self.wildcards.iter())
                    .find(|(suffix, _)| name.len() > suffix.len() && name.ends_with(suffix))
                    .map(|(_, key)| key.clone())
            })
        });
        found.or_else(|| self.fallback.clone())
    }
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.find(client_hello.server_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(names: &[&str]) -> pb::ServerCertificate {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.self_signed(&key).unwrap();
        pb::ServerCertificate {
            server_names: names.iter().map(|n| n.to_string()).collect(),
            certificate_chain: cert.pem(),
            private_key: key.serialize_pem(),
        }
    }

    fn compile(certificates: Vec<pb::ServerCertificate>) -> Result<Arc<Termination>, Vec<String>> {
        let mut errors = Vec::new();
        let tls = pb::TlsTermination { certificates };
        Termination::compile(&tls, true, "listener \"gw\"", &mut errors).ok_or(errors)
    }

    #[test]
    fn sni_picks_exact_then_longest_wildcard_then_the_fallback() {
        let mut by_sni = BySni::default();
        let provider = default_provider();
        let mut key = |names: &[&str]| {
            let key = Arc::new(certified_key(&self_signed(names), &provider).unwrap());
            by_sni.add(
                &names.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
                key.clone(),
            );
            key
        };
        let exact = key(&["a.example.com"]);
        let wide = key(&["*.example.com"]);
        let narrow = key(&["*.b.example.com"]);
        let fallback = key(&[]);
        by_sni
            .wildcards
            .sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        let is = |name: Option<&str>, want: &Arc<CertifiedKey>| {
            let got = by_sni.find(name).unwrap();
            assert!(Arc::ptr_eq(&got, want), "{name:?}");
        };
        is(Some("A.example.com"), &exact);
        is(Some("c.example.com"), &wide);
        is(Some("x.y.example.com"), &wide);
        is(Some("c.b.example.com"), &narrow);
        is(Some("example.com"), &fallback);
        is(None, &fallback);
    }

    #[test]
    fn bad_certificates_and_keys_are_named() {
        let good = self_signed(&["a.example.com"]);
        assert!(compile(vec![good.clone()]).is_ok());

        let mut not_pem = good.clone();
        not_pem.certificate_chain = "garbage".to_owned();
        let mut wrong_key = good.clone();
        wrong_key.private_key = self_signed(&["other"]).private_key;
        let mut no_key = good.clone();
        no_key.private_key = String::new();
        let errors = compile(vec![good, not_pem, wrong_key, no_key]).unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors[0].contains("tls.certificates[1]: certificate_chain holds no certificate"),
            "{errors:?}"
        );
        assert!(
            errors[1].contains("tls.certificates[2]: private_key does not belong"),
            "{errors:?}"
        );
        assert!(
            errors[2].contains("tls.certificates[3]: private_key is not a PEM"),
            "{errors:?}"
        );
        assert!(compile(Vec::new()).unwrap_err()[0].contains("tls has no certificates"));
    }
}
