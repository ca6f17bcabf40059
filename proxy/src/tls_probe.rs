//! `GET /probe?cluster=NAME&endpoint=IP:PORT` on the admin port (`mesh tls-check --probe`): a
//! real connection from this sidecar to one endpoint of a cluster, as its traffic would go —
//! the mesh TLS handshake's version, cipher and the peer's identity — and whether the endpoint
//! refuses plain text.

use std::{net::SocketAddr, time::Duration};

use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use crate::{
    http::connect_tcp,
    proxy::ProxyState,
    tls::{Carried, ClientTls, identity_of},
};

/// How long each probe connection may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Probes `endpoint` of `cluster`; the answer as JSON, or why it cannot be asked.
pub async fn probe(
    state: &ProxyState,
    cluster: &str,
    endpoint: SocketAddr,
) -> Result<Value, String> {
    let snapshot = state.config.load();
    let cluster = snapshot
        .cluster(cluster)
        .ok_or_else(|| format!("cluster {cluster:?} is not in this proxy's config"))?;
    let picked = cluster
        .balancer
        .endpoints()
        .iter()
        .find(|e| e.addr() == endpoint)
        .ok_or_else(|| format!("{endpoint} is not an endpoint of {:?}", cluster.name))?;
    let mtls = match cluster.client_tls(picked, state.mesh_tls.as_deref(), Carried::Tcp) {
        Ok(None) => json!({ "used": false }),
        Ok(Some(tls)) => match handshake(tls, endpoint).await {
            Ok(details) => details,
            Err(error) => json!({ "used": true, "ok": false, "error": error }),
        },
        Err(error) => json!({ "used": true, "ok": false, "error": error.to_string() }),
    };
    Ok(json!({
        "cluster": cluster.name,
        "endpoint": endpoint.to_string(),
        "mtls": mtls,
        "plaintext": plaintext(endpoint).await,
    }))
}

/// A TLS handshake with `endpoint` as the cluster makes them: version, cipher and the peer's
/// identity.
async fn handshake(tls: ClientTls<'_>, endpoint: SocketAddr) -> Result<Value, String> {
    let stream = connect_tcp(endpoint, PROBE_TIMEOUT, None)
        .await
        .map_err(|e| e.to_string())?;
    let name = (tls.server_name.cloned()).unwrap_or(ServerName::IpAddress(endpoint.ip().into()));
    let tls = tokio::time::timeout(
        PROBE_TIMEOUT,
        TlsConnector::from(tls.config.clone()).connect(name, stream),
    )
    .await
    .map_err(|_| format!("no handshake within {PROBE_TIMEOUT:?}"))?
    .map_err(|e| e.to_string())?;
    let (_, session) = tls.get_ref();
    Ok(json!({
        "used": true,
        "ok": true,
        "version": session.protocol_version().map(|v| format!("{v:?}")),
        "cipher": session.negotiated_cipher_suite().map(|c| format!("{:?}", c.suite())),
        "peer": identity_of(session.peer_certificates()),
    }))
}

/// Whether `endpoint` answers a plain-text request: "accepted", or "refused" with how.
async fn plaintext(endpoint: SocketAddr) -> Value {
    let attempt = async {
        let mut stream = connect_tcp(endpoint, PROBE_TIMEOUT, None)
            .await
            .map_err(|e| e.to_string())?;
        stream
            .write_all(b"HEAD / HTTP/1.1\r\nhost: probe\r\nconnection: close\r\n\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut first = [0u8; 12];
        match stream.read(&mut first).await {
            Ok(0) => Err("closed without an answer".to_owned()),
            Ok(n) => Ok(String::from_utf8_lossy(&first[..n]).into_owned()),
            Err(e) => Err(e.to_string()),
        }
    };
    match tokio::time::timeout(PROBE_TIMEOUT, attempt).await {
        Ok(Ok(answer)) => json!({ "refused": false, "answer": answer.trim() }),
        Ok(Err(why)) => json!({ "refused": true, "how": why }),
        Err(_) => json!({ "refused": true, "how": "no answer" }),
    }
}
