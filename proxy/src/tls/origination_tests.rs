//! TLS origination against a real rustls server: names, roots, client certificates, and the
//! errors that settings which cannot work give.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use mesh_proto::config::v1::{UpstreamTls, upstream_tls::Mode};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
use rustls::{
    RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
    server::WebPkiClientVerifier,
};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::{Origination, OriginationError};
use crate::{http::connect_upstream, tls::Carried};

/// A CA that signs the test's server and client certificates, written out as PEM files.
struct Pki {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    ca: CertificateDer<'static>,
}

impl Pki {
    fn new(test: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("mesh-origination-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        (params.distinguished_name).push(rcgen::DnType::CommonName, format!("test CA {test}"));
        let ca = params.self_signed(&key).expect("ca");
        std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write ca");
        Pki {
            dir,
            ca: ca.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf with `names` (DNS names, or URIs when they have a scheme), as DER and key.
    fn leaf(&self, names: &[&str]) -> (CertificateDer<'static>, PrivateKeyDer<'static>, String) {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.contains("://") {
                true => SanType::URI(n.to_string().try_into().expect("uri")),
                false => SanType::DnsName(n.to_string().try_into().expect("dns")),
            })
            .collect();
        let cert = params.signed_by(&key, &self.issuer).expect("leaf");
        let pem = cert.pem();
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (cert.der().clone(), key_der, pem + &key.serialize_pem())
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).to_string_lossy().into_owned()
    }

    /// Writes a client certificate and key; returns their paths.
    fn client_files(&self) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names = vec![SanType::DnsName("client.test".try_into().expect("dns"))];
        let cert = params.signed_by(&key, &self.issuer).expect("client");
        std::fs::write(self.dir.join("client.pem"), cert.pem()).expect("write");
        std::fs::write(self.dir.join("client.key"), key.serialize_pem()).expect("write");
        (self.path("client.pem"), self.path("client.key"))
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What the server saw of a handshake.
#[derive(Debug)]
struct Seen {
    sni: Option<String>,
    alpn: Option<Vec<u8>>,
    client_certificate: bool,
}

/// A TLS server presenting `names`, offering h2 and http/1.1, requiring a client certificate
/// from the CA when `require_client` is set; reports each handshake it completes.
async fn server(
    pki: &Pki,
    names: &[&str],
    require_client: bool,
) -> (SocketAddr, tokio::sync::mpsc::Receiver<Seen>) {
    let (cert, key, _) = pki.leaf(names);
    let builder = ServerConfig::builder();
    let builder = if require_client {
        let mut roots = RootCertStore::empty();
        roots.add(pki.ca.clone()).expect("root");
        let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
            .build()
            .expect("verifier");
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder
        .with_single_cert(vec![cert], key)
        .expect("server config");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let Ok(tls) = acceptor.accept(stream).await else {
                continue;
            };
            let (_, session) = tls.get_ref();
            let seen = Seen {
                sni: session.server_name().map(str::to_owned),
                alpn: session.alpn_protocol().map(<[u8]>::to_vec),
                client_certificate: session.peer_certificates().is_some(),
            };
            let _ = tx.send(seen).await;
        }
    });
    (addr, rx)
}

fn simple(pki: &Pki, sni: &str) -> UpstreamTls {
    UpstreamTls {
        mode: Mode::Simple.into(),
        sni: sni.to_owned(),
        ca_certificates: pki.path("ca.pem"),
        ..Default::default()
    }
}

/// Connects with `settings`; the handshake's error as text when it fails.
async fn connect(settings: &UpstreamTls, addr: SocketAddr, carried: Carried) -> Result<(), String> {
    let origination = Origination::load(settings).map_err(|e| e.to_string())?;
    connect_upstream(
        addr,
        Duration::from_secs(5),
        Some(origination.client_tls(carried)),
        None,
        None,
    )
    .await
    .map(drop)
    .map_err(|e| e.to_string())
}

#[tokio::test]
async fn simple_sends_the_sni_and_checks_the_server_against_it() {
    let pki = Pki::new("simple");
    let (addr, mut seen) = server(&pki, &["api.example.test"], false).await;
    connect(&simple(&pki, "api.example.test"), addr, Carried::Http1)
        .await
        .expect("the server carries the SNI's name");
    let seen = seen.recv().await.expect("a handshake");
    assert_eq!(seen.sni.as_deref(), Some("api.example.test"));
    assert_eq!(seen.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert!(!seen.client_certificate);

    let error = connect(&simple(&pki, "other.example.test"), addr, Carried::Http1)
        .await
        .expect_err("a certificate for another name is refused");
    assert!(error.contains("NotValidForName"), "{error}");
}

#[tokio::test]
async fn subject_alt_names_replace_the_sni_as_the_names_to_check() {
    let pki = Pki::new("sans");
    let uri = "spiffe://partner.example/ns/api/sa/gateway";
    let (addr, mut seen) = server(&pki, &["internal.example.test", uri], false).await;
    let mut settings = simple(&pki, "api.example.test");
    settings.subject_alt_names = vec!["nope.example.test".to_owned(), uri.to_owned()];
    connect(&settings, addr, Carried::Http2)
        .await
        .expect("the URI SAN matches");
    let seen = seen.recv().await.expect("a handshake");
    assert_eq!(seen.sni.as_deref(), Some("api.example.test"));
    assert_eq!(seen.alpn.as_deref(), Some(&b"h2"[..]));

    settings.subject_alt_names = vec!["internal.example.test".to_owned()];
    connect(&settings, addr, Carried::Tcp)
        .await
        .expect("the DNS SAN matches");
    settings.subject_alt_names = vec!["spiffe://partner.example/ns/api/sa/other".to_owned()];
    let error = connect(&settings, addr, Carried::Tcp)
        .await
        .expect_err("no expected name matches");
    assert!(error.contains("NotValidForName"), "{error}");
}

#[tokio::test]
async fn a_server_from_another_ca_is_refused_unless_verification_is_skipped() {
    let pki = Pki::new("roots");
    let stranger = Pki::new("roots-stranger");
    let (addr, _seen) = server(&stranger, &["api.example.test"], false).await;
    let error = connect(&simple(&pki, "api.example.test"), addr, Carried::Http1)
        .await
        .expect_err("unknown issuer");
    assert!(error.contains("UnknownIssuer"), "{error}");

    let mut insecure = simple(&pki, "api.example.test");
    insecure.insecure_skip_verify = true;
    connect(&insecure, addr, Carried::Http1)
        .await
        .expect("insecure_skip_verify takes any certificate");
}

#[tokio::test]
async fn mutual_presents_the_client_certificate_the_server_requires() {
    let pki = Pki::new("mutual");
    let (addr, mut seen) = server(&pki, &["api.example.test"], true).await;
    let (cert, key) = pki.client_files();
    let mut settings = simple(&pki, "api.example.test");
    settings.mode = Mode::Mutual.into();
    settings.client_certificate = cert;
    settings.private_key = key;
    connect(&settings, addr, Carried::Http1)
        .await
        .expect("mutual TLS");
    assert!(seen.recv().await.expect("a handshake").client_certificate);
}

#[tokio::test]
async fn certificates_given_inline_replace_the_files() {
    let pki = Pki::new("inline");
    let (addr, mut seen) = server(&pki, &["api.example.test"], true).await;
    let (cert, key) = pki.client_files();
    let read = |path: &str| std::fs::read_to_string(path).expect("read");
    let settings = UpstreamTls {
        mode: Mode::Mutual.into(),
        sni: "api.example.test".to_owned(),
        ca_certificates: "/nonexistent/ca.pem".to_owned(),
        ca_certificates_pem: read(&pki.path("ca.pem")),
        client_certificate_pem: read(&cert),
        private_key_pem: read(&key),
        ..Default::default()
    };
    connect(&settings, addr, Carried::Http1)
        .await
        .expect("mutual TLS with inline certificates");
    assert!(seen.recv().await.expect("a handshake").client_certificate);

    let broken = UpstreamTls {
        ca_certificates_pem: "not PEM".to_owned(),
        ..settings
    };
    let error = connect(&broken, addr, Carried::Http1)
        .await
        .expect_err("no roots");
    assert!(error.contains("ca_certificates_pem"), "{error}");
}

#[test]
fn settings_that_cannot_work_say_why() {
    let pki = Pki::new("errors");
    let mut settings = simple(&pki, "api.example.test");
    settings.ca_certificates = pki.path("missing.pem");
    let error = Origination::load(&settings).expect_err("no such file");
    assert!(matches!(
        error,
        OriginationError::Read {
            what: "ca_certificates",
            ..
        }
    ));
    assert!(error.to_string().contains("missing.pem"), "{error}");

    std::fs::write(pki.dir.join("empty.pem"), "not pem\n").expect("write");
    settings.ca_certificates = pki.path("empty.pem");
    let error = Origination::load(&settings).expect_err("no certificate");
    assert!(
        matches!(error, OriginationError::NoCertificate { .. }),
        "{error}"
    );

    let mut settings = simple(&pki, "");
    assert!(matches!(
        Origination::load(&settings),
        Err(OriginationError::NoServerName)
    ));
    settings.sni = "bad name!".to_owned();
    assert!(matches!(
        Origination::load(&settings),
        Err(OriginationError::Sni(_))
    ));

    let mut settings = simple(&pki, "api.example.test");
    settings.mode = Mode::Mutual.into();
    assert!(matches!(
        Origination::load(&settings),
        Err(OriginationError::NoClientCertificate)
    ));
    let (cert, _) = pki.client_files();
    settings.client_certificate = cert.clone();
    settings.private_key = cert;
    let error = Origination::load(&settings).expect_err("a certificate is not a key");
    assert!(
        matches!(
            error,
            OriginationError::Read {
                what: "private_key",
                ..
            }
        ),
        "{error}"
    );
}
