//! Where the client sends: `host:port` or an `http://` URL. Names are resolved through the
//! system resolver at every new connection, so inside a pod they go to cluster DNS.

use std::{fmt, str::FromStr};

use tokio::net::{TcpStream, lookup_host};

use super::ClientError;

/// A host (name or IP address) and a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// DNS name or IP address, without brackets.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// An `http://host[:port]/path?query` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    /// Where to connect.
    pub target: Target,
    /// The authority as written, sent as `Host` / `:authority`.
    pub authority: String,
    /// Path and query, `/` when the URL has none.
    pub path: String,
}

impl Target {
    /// Resolves the host and connects to the first of its addresses that accepts.
    pub(crate) async fn connect(&self) -> Result<TcpStream, ClientError> {
        let addresses = lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|source| ClientError::Resolve {
                host: self.host.clone(),
                source,
            })?;
        let mut last_error = ClientError::NoAddress(self.host.clone());
        for address in addresses {
            let connected = TcpStream::connect(address).await;
            match connected.and_then(|stream| stream.set_nodelay(true).map(|()| stream)) {
                Ok(stream) => return Ok(stream),
                Err(source) => last_error = ClientError::Connect { address, source },
            }
        }
        Err(last_error)
    }
}

impl FromStr for Target {
    type Err = ClientError;

    fn from_str(text: &str) -> Result<Self, ClientError> {
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| ClientError::NotHostPort(text.to_owned()))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(ClientError::NoHost(text.to_owned()));
        }
        let port = port.parse().map_err(|source| ClientError::BadPort {
            text: text.to_owned(),
            source,
        })?;
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for HttpUrl {
    type Err = ClientError;

    fn from_str(text: &str) -> Result<Self, ClientError> {
        let uri: http::Uri = text.parse().map_err(|source| ClientError::NotUrl {
            text: text.to_owned(),
            source,
        })?;
        if uri.scheme_str() != Some("http") {
            return Err(ClientError::NotHttp(text.to_owned()));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| ClientError::NoHost(text.to_owned()))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        Ok(Self {
            target: Target {
                host: host.to_owned(),
                port: authority.port_u16().unwrap_or(80),
            },
            authority: authority.as_str().to_owned(),
            path: uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |path| path.as_str().to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_names_and_bracketed_ipv6() {
        let name: Target = "web.shop.svc.cluster.local:8080".parse().expect("target");
        assert_eq!(name.host, "web.shop.svc.cluster.local");
        assert_eq!(name.port, 8080);
        let v6: Target = "[fd00::7]:9090".parse().expect("target");
        assert_eq!(v6.host, "fd00::7");
        assert_eq!(v6.to_string(), "[fd00::7]:9090");
        assert!("web".parse::<Target>().is_err());
        assert!("web:http".parse::<Target>().is_err());
        assert!(":80".parse::<Target>().is_err());
    }

    #[test]
    fn urls_keep_authority_and_path_and_default_the_port() {
        let url: HttpUrl = "http://web.shop/items?x=1".parse().expect("url");
        assert_eq!(url.target.host, "web.shop");
        assert_eq!(url.target.port, 80);
        assert_eq!(url.authority, "web.shop");
        assert_eq!(url.path, "/items?x=1");
        let bare: HttpUrl = "http://[::1]:8080".parse().expect("url");
        assert_eq!(bare.target.host, "::1");
        assert_eq!(bare.path, "/");
        assert!("https://web".parse::<HttpUrl>().is_err());
        assert!("web:80".parse::<HttpUrl>().is_err());
    }

    #[tokio::test]
    async fn connecting_goes_through_the_resolver() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let target = Target {
            host: "localhost".into(),
            port,
        };
        // localhost may resolve to ::1 first, where nothing listens: the next address is tried.
        let stream = target.connect().await.expect("connect");
        assert_eq!(stream.peer_addr().expect("peer").port(), port);

        let nowhere = Target {
            host: "no-such-host.invalid".into(),
            port,
        };
        let error = nowhere.connect().await.expect_err("no such host");
        assert!(
            error
                .with_causes()
                .starts_with("resolving no-such-host.invalid: "),
            "{error}"
        );
    }
}
