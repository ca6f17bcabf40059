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
