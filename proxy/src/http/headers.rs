//! Header hygiene between hops: hop-by-hop headers removed, `x-forwarded-*` and `x-request-id`
//! set as Envoy and Istio users expect.

use http::{HeaderMap, HeaderName, HeaderValue, header};

use crate::addr::ClientAddr;

/// `x-request-id`: kept when the client sent one, otherwise a fresh random UUID.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `x-forwarded-for`: the chain of client addresses.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `x-forwarded-proto`: the scheme the client used.
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `x-forwarded-client-cert`: the verified mesh peer, as the inbound sidecar tells the app.
pub static X_FORWARDED_CLIENT_CERT: HeaderName = HeaderName::from_static("x-forwarded-client-cert");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Removes the headers that describe one connection, not the message (RFC 9110 §7.6.1).
/// `te: trailers` survives (gRPC needs it); an upgrade keeps `connection` and `upgrade`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Most messages have none: one pass over their few names beats a lookup per hop-by-hop name.
    if !keep_upgrade && !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .filter(|name| !(keep_upgrade && name == header::UPGRADE))
        .collect();
    for name in listed {
        headers.remove(name);
    }
    let te_trailers = headers.get_all(header::TE).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        })
    });
    for name in [
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
    ] {
        headers.remove(name);
    }
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::CONNECTION);
        headers.remove(header::UPGRADE);
    }
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    [
        &header::CONNECTION,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
    ]
    .contains(&name)
}

/// The client's IP address as an `x-forwarded-for` entry; made once per connection.
pub fn forwarded_for(client: ClientAddr) -> HeaderValue {
    HeaderValue::from_str(&client.0.ip().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// Sets `x-forwarded-proto` (`https` when `over_tls`: a gateway terminated the client's TLS)
/// and `x-request-id`, and appends `client` (an entry made by [`forwarded_for`]) to
/// `x-forwarded-for` when given. Sidecars append on the way in (the app
/// then learns its real client, as it sees only the proxy's loopback address) and leave it
/// alone on the way out.
pub fn set_forwarded(headers: &mut HeaderMap, client: Option<&HeaderValue>, over_tls: bool) {
    if let Some(client) = client {
        append_forwarded_for(headers, client);
    }
    let scheme = if over_tls { "https" } else { "http" };
    headers
        .entry(&X_FORWARDED_PROTO)
        .or_insert_with(|| HeaderValue::from_static(scheme));
    headers.entry(&X_REQUEST_ID).or_insert_with(new_request_id);
}

/// Replaces `x-forwarded-client-cert` with what this proxy verified (or removes it): the app
/// must never trust a value a client wrote itself.
pub fn set_client_cert(headers: &mut HeaderMap, verified: Option<&HeaderValue>) {
    match verified {
        Some(value) => {
            headers.insert(&X_FORWARDED_CLIENT_CERT, value.clone());
        }
        None => {
            headers.remove(&X_FORWARDED_CLIENT_CERT);
        }
    }
}

fn append_forwarded_for(headers: &mut HeaderMap, client: &HeaderValue) {
    let value = match headers.get(&X_FORWARDED_FOR).map(HeaderValue::as_bytes) {
        Some(existing) if !existing.is_empty() => {
            HeaderValue::from_bytes(&[existing, b", ", client.as_bytes()].concat())
                .unwrap_or_else(|_| client.clone())
        }
        _ => client.clone(),
    };
    headers.insert(&X_FORWARDED_FOR, value);
}

/// A random (version 4) UUID, written digit by digit: `format!` costs ten times more.
fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bits = fastrand::u128(..) & !(0xf << 76) & !(0x3 << 62) | (0x4 << 76) | (0x2 << 62);
    let mut id = [b'-'; 36];
    for (i, byte) in id.iter_mut().enumerate().rev() {
        if !matches!(i, 8 | 13 | 18 | 23) {
            *byte = HEX[(bits & 0xf) as usize];
            bits >>= 4;
        }
    }
    HeaderValue::from_bytes(&id).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// Whether a request asks to switch protocols (WebSocket and friends).
pub fn is_upgrade_request(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        headers
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers, deflate"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("x-app", "kept"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["te", "x-app"]);
        assert_eq!(h["te"], "trailers");
    }

    #[test]
    fn upgrade_keeps_connection_and_upgrade() {
        let mut h = map(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "k"),
        ]);
        assert!(is_upgrade_request(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["sec-websocket-key"], "k");
    }

    #[test]
    fn forwarded_headers_append_and_keep_request_id() {
        let client = forwarded_for(ClientAddr("10.0.0.7:5555".parse().expect("addr")));
        let mut h = map(&[("x-forwarded-for", "1.2.3.4"), ("x-request-id", "abc")]);
        set_forwarded(&mut h, Some(&client), false);
        assert_eq!(h["x-forwarded-for"], "1.2.3.4, 10.0.0.7");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-request-id"], "abc");

        let mut fresh = HeaderMap::new();
        set_forwarded(&mut fresh, Some(&client), true);
        assert_eq!(fresh["x-forwarded-proto"], "https");
        assert_eq!(fresh["x-forwarded-for"], "10.0.0.7");
        let id = fresh["x-request-id"].to_str().expect("ascii");
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4", "version 4 UUID: {id}");
        let variant = u8::from_str_radix(&id[19..20], 16).expect("hex");
        assert_eq!(variant & 0b1100, 0b1000, "RFC 4122 variant: {id}");
        let groups: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
        assert!(
            id.bytes()
                .all(|b| b == b'-' || b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "lower-case hex: {id}"
        );
        let mut again = HeaderMap::new();
        set_forwarded(&mut again, None, false);
        assert!(again.get("x-forwarded-for").is_none());
        assert_ne!(fresh["x-request-id"], again["x-request-id"]);
    }
}
