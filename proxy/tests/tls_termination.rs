//! TLS termination on an explicit (gateway) listener: real handshakes from a rustls client,
//! the certificate chosen by SNI, HTTP/2 or HTTP/1.1 by ALPN, a new certificate served after a
//! config change, and a bad certificate refused with the old config kept.

mod support;

use std::{net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_proxy::config::{EncodedConfig, parse};
use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, ServerName},
};
use support::*;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A self-signed certificate for `names`: (PEM chain, PEM key, DER).
fn self_signed(names: &[&str]) -> (String, String, CertificateDer<'static>) {
    let key = rcgen::KeyPair::generate().expect("key");
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let cert = rcgen::CertificateParams::new(names)
        .expect("params")
        .self_signed(&key)
        .expect("certificate");
    (cert.pem(), key.serialize_pem(), cert.der().clone())
}

/// A gateway config: one listener terminating TLS with `certs` ((names, chain, key)), routing
/// everything to `{UP}`.
fn config(certs: &[(&[&str], &str, &str)]) -> String {
    let certificates: Vec<_> = certs
        .iter()
        .map(|(names, chain, key)| {
            serde_json::json!({ "server_names": names, "certificate_chain": chain, "private_key": key })
        })
        .collect();
    let tls = serde_json::json!({ "certificates": certificates });
    format!(
        r#"
listeners:
- {{ name: https, address: "127.0.0.1:0", mode: EXPLICIT, route_config: test, tls: {tls} }}
routes:
- name: test
  virtual_hosts:
  - {{ name: any, domains: ["*"], routes: [ {{ match: {{ prefix: / }}, route: {{ destinations: [{{ cluster: up }}] }} }} ] }}
clusters: [ {{ name: up }} ]
endpoints: [ {{ cluster: up, endpoints: [{{ address: "{{UP}}" }}] }} ]
"#
    )
}

/// A TLS connection to `addr` with `sni`, trusting `roots` and offering `alpn`: the
/// certificate the server presented, and the stream.
async fn connect(
    addr: SocketAddr,
    sni: &str,
    roots: &[&CertificateDer<'static>],
    alpn: &[u8],
) -> std::io::Result<(
    CertificateDer<'static>,
    tokio_rustls::client::TlsStream<TcpStream>,
)> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add((*root).clone()).expect("root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(store)
        .with_no_client_auth();
    client.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(sni.to_owned()).expect("server name");
    let stream = TlsConnector::from(Arc::new(client))
        .connect(name, tcp)
        .await?;
    let presented = stream
        .get_ref()
        .1
        .peer_certificates()
        .expect("server certificate")[0]
        .clone();
    Ok((presented, stream))
}

/// One GET over `stream` at the HTTP version ALPN chose: the status and the upstream's echo.
async fn get_over(
    stream: tokio_rustls::client::TlsStream<TcpStream>,
    host: &str,
) -> (StatusCode, serde_json::Value) {
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let req = Request::get(format!("https://{host}/page"))
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .expect("request");
    let io = TokioIo::new(stream);
    let response = if h2 {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .expect("h2 handshake");
        tokio::spawn(conn);
        sender.send_request(req).await.expect("response")
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .expect("h1 handshake");
        tokio::spawn(conn);
        let mut req = req;
        *req.uri_mut() = "/page".parse().expect("path");
        sender.send_request(req).await.expect("response")
    };
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, json(&body))
}

#[tokio::test]
async fn sni_picks_the_certificate_and_alpn_the_http_version() {
    let up = echo_upstream("up").await;
    let (a_chain, a_key, a_der) = self_signed(&["a.example.com"]);
    let (b_chain, b_key, b_der) = self_signed(&["*.b.example.com"]);
    let yaml = config(&[
        (&["a.example.com"], &a_chain, &a_key),
        (&["*.b.example.com"], &b_chain, &b_key),
    ]);
    let proxy = start_proxy(&yaml, &[("UP", up.addr)]).await;
    let roots = [&a_der, &b_der];

    let (presented, stream) = connect(proxy.addr, "a.example.com", &roots, b"h2")
        .await
        .expect("handshake for a.example.com");
    assert_eq!(presented, a_der, "a.example.com gets its own certificate");
    let (status, seen) = get_over(stream, "a.example.com").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen["upstream"], "up");
    assert_eq!(seen["version"], "HTTP/2.0");
    assert_eq!(seen["headers"]["x-forwarded-proto"], "https", "{seen}");
    assert!(
        seen["uri"]
            .as_str()
            .is_some_and(|uri| uri.ends_with("a.example.com/page")),
        "{seen}"
    );

    let (presented, stream) = connect(proxy.addr, "x.b.example.com", &roots, b"http/1.1")
        .await
        .expect("handshake for x.b.example.com");
    assert_eq!(
        presented, b_der,
        "the wildcard certificate serves x.b.example.com"
    );
    let (status, seen) = get_over(stream, "x.b.example.com").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen["version"], "HTTP/1.1");

    // No certificate names c.example.com and none is the fallback: the handshake fails, and
    // the listener goes on serving.
    assert!(
        connect(proxy.addr, "c.example.com", &roots, b"h2")
            .await
            .is_err()
    );
    let (presented, _) = connect(proxy.addr, "a.example.com", &roots, b"h2")
        .await
        .expect("handshake after a refused one");
    assert_eq!(presented, a_der);
}

#[tokio::test]
async fn a_new_certificate_is_served_without_rebinding_and_a_bad_one_is_refused() {
    let up = echo_upstream("up").await;
    let (old_chain, old_key, old_der) = self_signed(&["a.example.com"]);
    let (new_chain, new_key, new_der) = self_signed(&["a.example.com"]);
    let proxy = start_proxy(
        &config(&[(&["a.example.com"], &old_chain, &old_key)]),
        &[("UP", up.addr)],
    )
    .await;
    let roots = [&old_der, &new_der];
    let encoded = |yaml: String| {
        let yaml = yaml.replace("{UP}", &up.addr.to_string());
        EncodedConfig::encode(&parse(&yaml, "test.yaml".as_ref()).expect("parses"))
    };

    let renewed = config(&[(&["a.example.com"], &new_chain, &new_key)]);
    proxy
        .proxy
        .apply(encoded(renewed), "test")
        .await
        .expect("renewed certificate applies");
    let (presented, stream) = connect(proxy.addr, "a.example.com", &roots, b"h2")
        .await
        .expect("handshake");
    assert_eq!(
        presented, new_der,
        "the renewed certificate is served on the same port"
    );
    assert_eq!(get_over(stream, "a.example.com").await.0, StatusCode::OK);

    let broken = config(&[(&["a.example.com"], &new_chain, &old_key)]);
    let Err(error) = proxy.proxy.apply(encoded(broken), "test").await else {
        panic!("a key that does not match its certificate must be refused");
    };
    assert!(
        error
            .to_string()
            .contains("private_key does not belong to the certificate"),
        "{error}"
    );
    let (presented, _) = connect(proxy.addr, "a.example.com", &roots, b"h2")
        .await
        .expect("handshake after the refused config");
    assert_eq!(presented, new_der, "the config in force stays");
}
