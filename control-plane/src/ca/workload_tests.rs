//! Workload certificates and lab tokens: the identity comes from the caller, never the CSR; a
//! token says who it is for only when the lab's key signed it, for mesh-ca, and in time.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use rcgen::{CertificateParams, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, CertificateSigningRequestDer, pem::PemObject};
use x509_parser::{extensions::GeneralName, prelude::X509Certificate};

use super::{
    MeshRoot,
    credential::{Caller, CredentialError},
    lab_token::{LabClaims, LabTokenKey},
    workload::{IssueError, WorkloadIssuer},
};

/// A CSR for a new key that asks for `names` (URIs).
fn csr(names: &[&str]) -> String {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    params.subject_alt_names = names
        .iter()
        .map(|n| SanType::URI((*n).try_into().expect("uri")))
        .collect();
    params
        .serialize_request(&key)
        .expect("csr")
        .pem()
        .expect("pem")
}

fn uris(cert: &X509Certificate<'_>) -> Vec<String> {
    let names = cert
        .subject_alternative_name()
        .expect("parses")
        .expect("has SANs");
    names
        .value
        .general_names
        .iter()
        .map(|name| match name {
            GeneralName::URI(uri) => (*uri).to_owned(),
            other => panic!("a name other than a URI: {other:?}"),
        })
        .collect()
}

#[test]
fn a_csr_claiming_another_identity_gets_the_callers_own_and_nothing_else() {
    let root = Arc::new(MeshRoot::generate().expect("root"));
    let issuer = WorkloadIssuer::new(root.clone(), Duration::from_secs(24 * 3600));
    let claimed = csr(&["spiffe://cluster.local/ns/kube-system/sa/admin"]);
    let mine = "spiffe://cluster.local/ns/shop/sa/web";
    let issued = issuer.issue(&claimed, mine, None).expect("issued");
    assert_eq!(issued.chain.len(), 2);
    assert_eq!(issued.chain[1], root.cert_pem());
    let der = CertificateDer::from_pem_slice(issued.chain[0].as_bytes()).expect("pem");
    let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("x509");
    assert_eq!(uris(&cert), [mine]);
    assert!(cert.subject().iter_common_name().next().is_none());
    let lifetime = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
    assert_eq!(
        lifetime,
        24 * 3600 + 300,
        "24 h plus 5 minutes of backdating"
    );
}

#[test]
fn the_lifetime_asked_for_is_capped_by_the_issuers_and_floored_at_ten_seconds() {
    let root = Arc::new(MeshRoot::generate().expect("root"));
    let issuer = WorkloadIssuer::new(root, Duration::from_secs(3600));
    let lifetime = |wanted: Option<Duration>| {
        let issued = issuer
            .issue(&csr(&[]), "spiffe://cluster.local/ns/a/sa/b", wanted)
            .expect("issued");
        let der = CertificateDer::from_pem_slice(issued.chain[0].as_bytes()).expect("pem");
        let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("x509");
        cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp() - 300
    };
    assert_eq!(lifetime(None), 3600);
    assert_eq!(lifetime(Some(Duration::from_secs(60))), 60);
    assert_eq!(lifetime(Some(Duration::from_secs(86400))), 3600);
    assert_eq!(lifetime(Some(Duration::from_secs(1))), 10);
}

#[test]
fn a_garbage_or_tampered_csr_is_refused() {
    let root = Arc::new(MeshRoot::generate().expect("root"));
    let issuer = WorkloadIssuer::new(root, Duration::from_secs(3600));
    let id = "spiffe://cluster.local/ns/a/sa/b";
    for garbage in [
        "",
        "not a csr",
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
    ] {
        assert!(
            matches!(issuer.issue(garbage, id, None), Err(IssueError::Csr(_))),
            "{garbage:?}"
        );
    }
    // A CSR whose signature does not match its content (one byte of the key flipped).
    let good = csr(&[]);
    let der = CertificateSigningRequestDer::from_pem_slice(good.as_bytes()).expect("pem");
    let mut tampered = der.as_ref().to_vec();
    let at = tampered.len() / 2;
    tampered[at] ^= 0x01;
    let text = format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &tampered)
    );
    assert!(matches!(
        issuer.issue(&text, id, None),
        Err(IssueError::Csr(_))
    ));
}

#[test]
fn lab_tokens_prove_who_they_are_for_only_when_signed_fresh_and_for_mesh_ca() {
    let key = LabTokenKey::generate().expect("key");
    let now = SystemTime::now();
    let token = key.mint("shop", "web", "web-1", Duration::from_secs(60), now);
    let claims = key.verify(&token, now).expect("valid");
    assert_eq!(
        Caller::from_user(&claims.sub, claims.pod.clone()),
        Ok(Caller {
            namespace: "shop".into(),
            service_account: "web".into(),
            pod: Some("web-1".into()),
        })
    );
    assert_eq!(
        key.verify(&token, now + Duration::from_secs(61)),
        Err(CredentialError::Expired { ago_secs: 1 })
    );
    let other_key = LabTokenKey::generate().expect("another key");
    assert!(matches!(
        other_key.verify(&token, now),
        Err(CredentialError::Invalid(_))
    ));
    let (body, signature) = token.split_once('.').expect("two parts");
    let forged_body = {
        let forged = LabClaims {
            sub: "system:serviceaccount:kube-system:admin".into(),
            pod: None,
            aud: vec!["mesh-ca".into()],
            exp: u64::MAX,
        };
        other_key
            .sign(&forged)
            .split_once('.')
            .expect("two parts")
            .0
            .to_owned()
    };
    assert_ne!(forged_body, body);
    assert!(matches!(
        key.verify(&format!("{forged_body}.{signature}"), now),
        Err(CredentialError::Invalid(_))
    ));
    let wrong_audience = key.sign(&LabClaims {
        aud: vec!["kubernetes".into()],
        ..claims
    });
    assert_eq!(
        key.verify(&wrong_audience, now),
        Err(CredentialError::Audience {
            audiences: vec!["kubernetes".into()]
        })
    );
    for garbage in ["", "x", "a.b", "....", "\u{0}.\u{0}"] {
        assert!(key.verify(garbage, now).is_err(), "{garbage:?}");
    }
}

#[test]
fn only_service_account_users_are_callers() {
    assert!(Caller::from_user("system:serviceaccount:shop:web", None).is_ok());
    for user in [
        "admin",
        "system:serviceaccount:shop",
        "system:serviceaccount::web",
        "system:serviceaccount:shop:",
        "system:serviceaccount:Shop:web/../x",
    ] {
        assert!(
            matches!(
                Caller::from_user(user, None),
                Err(CredentialError::NotServiceAccount { .. })
            ),
            "{user}"
        );
    }
}

#[test]
fn a_lab_token_key_survives_its_file() {
    let key = LabTokenKey::generate().expect("key");
    let path = std::env::temp_dir().join(format!("mesh-lab-token-key-{}", std::process::id()));
    std::fs::write(&path, key.to_text()).expect("write");
    let loaded = LabTokenKey::load(&path).expect("loads");
    let now = SystemTime::now();
    let token = key.mint("a", "b", "c", Duration::from_secs(5), now);
    assert!(loaded.verify(&token, now).is_ok());
    std::fs::write(&path, "short").expect("write");
    assert!(LabTokenKey::load(&path).is_err());
    std::fs::remove_file(&path).expect("cleanup");
}
