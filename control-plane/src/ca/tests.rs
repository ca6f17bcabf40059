//! The CA against rustls' own certificate verifier: what it signs chains to the root and
//! carries the names; what it loads is checked, and bad files give errors that say why.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use rcgen::{CertificateParams, IsCa, KeyPair};
use rustls::{
    CertificateError, Error, RootCertStore,
    client::{WebPkiServerVerifier, danger::ServerCertVerifier},
    pki_types::{CertificateDer, ServerName, UnixTime},
};

use super::*;

/// A fresh folder for one test's files.
fn folder(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mesh-ca-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

/// Verifies `cert` as a TLS server named `name` against `root`, as a proxy would.
fn verify(
    root: &CertificateDer<'static>,
    cert: &CertificateDer<'_>,
    name: &str,
) -> Result<(), Error> {
    let mut roots = RootCertStore::empty();
    roots.add(root.clone()).expect("root is a trust anchor");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .expect("verifier");
    let name = ServerName::try_from(name.to_owned()).expect("server name");
    verifier
        .verify_server_cert(cert, &[], &name, &[], UnixTime::now())
        .map(drop)
}

#[test]
fn the_serving_certificate_chains_to_the_root_and_carries_every_name() {
    let root = MeshRoot::generate().expect("root");
    let extra = ["127.0.0.1".to_owned(), "cp.example".to_owned()];
    let serving = ServingCert::issue(&root, &extra).expect("serving certificate");
    for name in SERVING_NAMES
        .into_iter()
        .chain(extra.iter().map(String::as_str))
    {
        verify(root.cert_der(), serving.cert_der(), name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert!(matches!(
        verify(root.cert_der(), serving.cert_der(), "elsewhere.example"),
        Err(Error::InvalidCertificate(
            CertificateError::NotValidForNameContext { .. }
        ))
    ));
    let stranger = MeshRoot::generate().expect("another root");
    assert_eq!(
        verify(stranger.cert_der(), serving.cert_der(), SERVING_NAMES[0]),
        Err(Error::InvalidCertificate(CertificateError::UnknownIssuer))
    );
    serving
        .server_config(&[b"h2"])
        .expect("rustls takes the certificate and key");
}

#[test]
fn a_root_kept_in_files_is_loaded_back_and_signs_for_the_same_trust() {
    let dir = folder("round-trip");
    let original = MeshRoot::generate().expect("root");
    let cert = write(&dir, "ca.pem", original.cert_pem());
    let key = write(&dir, "ca-key.pem", &original.key_pem());
    let out = dir.join("root-cert.pem");
    let args = CaArgs {
        ca_cert: Some(cert),
        ca_key: Some(key),
        root_cert_out: Some(out.clone()),
        ..CaArgs::default()
    };
    let loaded = args.root().expect("loads");
    assert_eq!(loaded.cert_der(), original.cert_der());
    assert_eq!(
        std::fs::read_to_string(&out).expect("written"),
        original.cert_pem()
    );
    let serving = ServingCert::issue(&loaded, &[]).expect("signs");
    verify(original.cert_der(), serving.cert_der(), SERVING_NAMES[3]).expect("same trust");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// The error `MeshRoot::load` gives for this certificate and key text.
fn load_error(dir: &Path, cert: &str, key: &str) -> String {
    let cert = write(dir, "ca.pem", cert);
    let key = write(dir, "ca-key.pem", key);
    match MeshRoot::load(&cert, &key) {
        Ok(_) => panic!("loaded"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn bad_ca_files_give_errors_that_name_the_file_and_the_fault() {
    let dir = folder("bad-files");
    let root = MeshRoot::generate().expect("root");
    let other = MeshRoot::generate().expect("another root");
    let key = root.key_pem();

    let missing = MeshRoot::load(&dir.join("absent.pem"), &dir.join("absent-key.pem"));
    assert!(matches!(missing, Err(CaError::Read { .. })));

    let garbage = load_error(&dir, "not a certificate at all\n", &key);
    assert!(
        garbage.contains("ca.pem") && garbage.contains("no PEM certificate"),
        "{garbage}"
    );

    let bad_der = "-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n";
    let bad_der = load_error(&dir, bad_der, &key);
    assert!(bad_der.contains("not an X.509 certificate"), "{bad_der}");

    let two = format!("{}{}", root.cert_pem(), other.cert_pem());
    let two = load_error(&dir, &two, &key);
    assert!(two.contains("holds 2 certificates"), "{two}");

    let leaf = rcgen::generate_simple_self_signed(vec!["leaf.example".to_owned()]).expect("leaf");
    let leaf = load_error(&dir, &leaf.cert.pem(), &leaf.signing_key.serialize_pem());
    assert!(leaf.contains("not a CA certificate"), "{leaf}");

    let expired_key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.not_after = time::OffsetDateTime::now_utc() - std::time::Duration::from_secs(60);
    let expired = params.self_signed(&expired_key).expect("expired root");
    let expired = load_error(&dir, &expired.pem(), &expired_key.serialize_pem());
    assert!(expired.contains("not now"), "{expired}");

    let garbage_key = load_error(
        &dir,
        root.cert_pem(),
        "-----BEGIN PRIVATE KEY-----\nAAEC\n-----END PRIVATE KEY-----\n",
    );
    assert!(
        garbage_key.contains("ca-key.pem") && garbage_key.contains("PKCS#8"),
        "{garbage_key}"
    );

    let mismatch = load_error(&dir, root.cert_pem(), &other.key_pem());
    assert!(
        mismatch.contains("is not the key of the CA certificate"),
        "{mismatch}"
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn a_name_that_is_neither_dns_nor_ip_is_refused() {
    let root = MeshRoot::generate().expect("root");
    let error = ServingCert::issue(&root, &["not a name!".to_owned()])
        .err()
        .expect("refused");
    assert!(matches!(error, CaError::SubjectName { ref name } if name == "not a name!"));
}
