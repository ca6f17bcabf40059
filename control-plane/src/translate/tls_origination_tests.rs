//! DestinationRule `tls` for destinations outside the mesh: what reaches the proxy for SIMPLE
//! and MUTUAL, and the settings that cannot work reported instead of sent.

use mesh_proto::config::v1::{UpstreamTls, upstream_tls::Mode};

use super::{
    Translator,
    tests::{SHOP, client, store},
};

/// The translated `tls` of the cluster `outbound|80||web.shop.svc.cluster.local` under `rule`,
/// and the problems' messages.
fn web_tls(rule: &str) -> (Option<UpstreamTls>, Vec<String>) {
    let store = store(&format!("{SHOP}---\n{rule}"));
    let translation = Translator::new(&store).translate(&client("shop", &[]));
    let tls = (translation.config.clusters.iter())
        .find(|c| c.name == "outbound|80||web.shop.svc.cluster.local")
        .and_then(|c| c.tls.clone());
    let problems = translation
        .problems
        .iter()
        .map(|p| format!("{p}"))
        .collect();
    (tls, problems)
}

#[test]
fn simple_carries_the_files_and_names_and_sends_the_host_as_sni_by_default() {
    let (tls, problems) = web_tls(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: web, namespace: shop }
spec:
  host: web
  trafficPolicy:
    tls: { mode: SIMPLE, caCertificates: /etc/certs/ca.pem, subjectAltNames: [web.example.com] }
    portLevelSettings:
    - port: { number: 9000 }
      tls: { mode: SIMPLE, sni: tcp.example.com, insecureSkipVerify: true }
"#,
    );
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(
        tls,
        Some(UpstreamTls {
            mode: Mode::Simple.into(),
            sni: "web.shop.svc.cluster.local".to_owned(),
            subject_alt_names: vec!["web.example.com".to_owned()],
            ca_certificates: "/etc/certs/ca.pem".to_owned(),
            ..Default::default()
        })
    );
}

#[test]
fn mutual_carries_the_client_certificate() {
    let (tls, problems) = web_tls(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: web, namespace: shop }
spec:
  host: web.shop.svc.cluster.local
  trafficPolicy:
    tls:
      mode: MUTUAL
      clientCertificate: /etc/certs/client.pem
      privateKey: /etc/certs/client.key
      sni: api.example.com
"#,
    );
    assert!(problems.is_empty(), "{problems:#?}");
    let tls = tls.expect("tls");
    assert_eq!(tls.mode(), Mode::Mutual);
    assert_eq!(tls.sni, "api.example.com");
    assert_eq!(tls.client_certificate, "/etc/certs/client.pem");
    assert_eq!(tls.private_key, "/etc/certs/client.key");
    assert_eq!(tls.ca_certificates, "", "no roots file: the system's roots");
}

#[test]
fn settings_that_cannot_work_are_errors_and_unused_ones_warnings() {
    let (tls, problems) = web_tls(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: web, namespace: shop }
spec:
  host: web
  trafficPolicy: { tls: { mode: MUTUAL, caCertificates: /etc/certs/ca.pem } }
"#,
    );
    assert_eq!(tls, None, "the rule is not applied");
    assert!(
        problems
            .iter()
            .any(|p| p.contains("MUTUAL needs the client's certificate and key")),
        "{problems:#?}"
    );

    let (tls, problems) = web_tls(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: web, namespace: shop }
spec:
  host: web
  trafficPolicy: { tls: { mode: SIMPLE, credentialName: web-client } }
"#,
    );
    assert_eq!(tls, None);
    assert!(
        problems.iter().any(|p| p.contains("credentialName")),
        "{problems:#?}"
    );

    let (tls, problems) = web_tls(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: web, namespace: shop }
spec:
  host: web
  trafficPolicy: { tls: { mode: ISTIO_MUTUAL, sni: web.example.com } }
"#,
    );
    assert_eq!(
        tls,
        Some(UpstreamTls {
            mode: Mode::MeshMutual.into(),
            ..Default::default()
        })
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("tls.sni") && p.contains("not used with mode ISTIO_MUTUAL")),
        "{problems:#?}"
    );
}

/// A TLS Secret `shop/{name}` holding a fresh certificate and key, and `ca.crt` when `ca`.
fn credential_secret(name: &str, ca: bool) -> (String, String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["client.shop.example".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let (cert, key) = (cert.pem(), key.serialize_pem());
    let mut data = serde_json::json!({ "tls.crt": cert, "tls.key": key });
    if ca {
        data["ca.crt"] = serde_json::Value::String(cert.clone());
    }
    let yaml = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{ name: {name}, namespace: shop }}\ntype: kubernetes.io/tls\nstringData: {data}\n---\n"
    );
    (yaml, cert, key)
}

#[test]
fn credential_name_sends_the_secrets_certificates_inline() {
    let (secret, cert, key) = credential_secret("web-client", true);
    let (tls, problems) = web_tls(&format!(
        r#"{secret}
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{ name: web, namespace: shop }}
spec:
  host: web
  trafficPolicy:
    tls: {{ mode: MUTUAL, credentialName: web-client, clientCertificate: /etc/certs/c.pem }}
"#
    ));
    let tls = tls.expect("applied");
    assert_eq!(tls.mode(), Mode::Mutual);
    assert_eq!(tls.client_certificate_pem, cert);
    assert_eq!(tls.private_key_pem, key);
    assert_eq!(tls.ca_certificates_pem, cert, "ca.crt verifies the server");
    assert_eq!(tls.client_certificate, "/etc/certs/c.pem");
    assert!(
        problems.iter().any(
            |p| p.contains("clientCertificate") && p.contains("ignored: credentialName is set")
        ),
        "{problems:#?}"
    );
}

#[test]
fn credential_name_needs_what_its_mode_uses() {
    let (secret, _, _) = credential_secret("no-ca", false);
    let (tls, problems) = web_tls(&format!(
        r#"{secret}
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{ name: web, namespace: shop }}
spec:
  host: web
  trafficPolicy: {{ tls: {{ mode: SIMPLE, credentialName: no-ca }} }}
"#
    ));
    assert_eq!(tls, None);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("Secret shop/no-ca: it has no ca.crt")),
        "{problems:#?}"
    );
    let (tls, problems) = web_tls(&format!(
        r#"{secret}
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{ name: web, namespace: shop }}
spec:
  host: web
  trafficPolicy: {{ tls: {{ mode: MUTUAL, credentialName: no-ca }} }}
"#
    ));
    let tls = tls.expect("MUTUAL without ca.crt verifies with the system's roots");
    assert!(!tls.private_key_pem.is_empty() && tls.ca_certificates_pem.is_empty());
    assert!(problems.is_empty(), "{problems:#?}");
}
