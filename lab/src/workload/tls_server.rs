//! The echo over TLS: a server outside the mesh that sidecars originate TLS to. It presents a
//! certificate from files, offers h2 and http/1.1 by ALPN, can require client certificates
//! from a CA, and reports each connection's SNI, ALPN and client certificate in the echo.

use std::{path::Path, sync::Arc, time::Duration};

use anyhow::Context;
use rustls::{
    RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::{
    Workload,
    server::{Connection, TlsSeen, next_connection, serve_connection},
};

/// Gives up on a client that does not finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS side of the echo's listeners.
#[derive(Clone)]
pub struct ServerTls(TlsAcceptor);

impl ServerTls {
    /// Presents the PEM chain in `cert` with the key in `key`; with `client_ca`, requires a
    /// client certificate that chains to the PEM roots in it.
    pub fn load(cert: &Path, key: &Path, client_ca: Option<&Path>) -> anyhow::Result<Self> {
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .with_context(|| format!("reading the certificate {}", cert.display()))?;
        let key = PrivateKeyDer::from_pem_file(key)
            .with_context(|| format!("reading the key {}", key.display()))?;
        let builder =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()?;
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(path)
                    .with_context(|| format!("reading the client CA {}", path.display()))?
                {
                    roots.add(cert?)?;
                }
                builder.with_client_cert_verifier(
                    WebPkiClientVerifier::builder(Arc::new(roots)).build()?,
                )
            }
        };
        let mut config = builder.with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(ServerTls(TlsAcceptor::from(Arc::new(config))))
    }
}

/// Serves the echo over TLS on `listener` until the process ends.
pub async fn serve_tls(listener: TcpListener, workload: Workload, tls: ServerTls) {
    let workload = Arc::new(workload);
    loop {
        let (stream, peer) = next_connection(&listener).await;
        let Ok(local) = stream.local_addr() else {
            continue;
        };
        let acceptor = tls.0.clone();
        let workload = workload.clone();
        tokio::spawn(async move {
            let stream =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        eprintln!("mesh-workload: TLS handshake from {peer} failed: {error}");
                        return;
                    }
                    Err(_) => return,
                };
            let (_, session) = stream.get_ref();
            let seen = TlsSeen {
                sni: session.server_name().map(str::to_owned),
                alpn: (session.alpn_protocol()).map(|p| String::from_utf8_lossy(p).into_owned()),
                client_certificate: session.peer_certificates().is_some(),
            };
            let connection = Connection {
                peer,
                local,
                tls: Some(Arc::new(seen)),
            };
            serve_connection(stream, connection, workload).await;
        });
    }
}
