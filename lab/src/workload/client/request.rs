//! The head every request of a run carries, checked and built once from the plan: a `host`
//! header among the extra headers replaces the authority, which HTTP/1.1 sends as `Host`
//! and HTTP/2 as `:authority` (the URI's own).

use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version, header::HOST, uri::Scheme,
};

use super::ClientError;

/// A request head, ready to be copied onto every request of a run.
#[derive(Clone, Debug)]
pub(crate) struct RequestHead {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
}

impl RequestHead {
    /// `method` for `path` at `authority` with the `extra` headers, over HTTP/2 or HTTP/1.1.
    pub(crate) fn new(
        method: Method,
        authority: &str,
        path: &str,
        extra: &[(String, String)],
        http2: bool,
    ) -> Result<Self, ClientError> {
        let mut headers = HeaderMap::new();
        for (name, value) in extra {
            let bad_header = |source: http::Error| ClientError::BadHeader {
                name: name.clone(),
                source,
            };
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| bad_header(e.into()))?;
            let value = HeaderValue::from_str(value).map_err(|e| bad_header(e.into()))?;
            headers.append(name, value);
        }
        let authority = match headers.get(HOST) {
            Some(host) => String::from_utf8_lossy(host.as_bytes()).into_owned(),
            None => authority.to_owned(),
        };
        let bad_target = |source: http::Error| ClientError::BadRequestTarget {
            authority: authority.clone(),
            path: path.to_owned(),
            source,
        };
        let (uri, version) = if http2 {
            headers.remove(HOST);
            let uri = Uri::builder()
                .scheme(Scheme::HTTP)
                .authority(authority.as_str())
                .path_and_query(path)
                .build();
            (uri.map_err(bad_target)?, Version::HTTP_2)
        } else {
            if !headers.contains_key(HOST) {
                let host = HeaderValue::from_str(&authority).map_err(|e| bad_target(e.into()))?;
                headers.insert(HOST, host);
            }
            let uri = Uri::builder().path_and_query(path).build();
            (uri.map_err(bad_target)?, Version::HTTP_11)
        };
        Ok(Self {
            method,
            uri,
            version,
            headers,
        })
    }

    /// Sets header `name` to `value` on every request, in place of any value it had.
    pub(crate) fn insert(&mut self, name: HeaderName, value: &'static str) {
        self.headers.insert(name, HeaderValue::from_static(value));
    }

    /// A request with this head and `body`.
    pub(crate) fn request<B>(&self, body: B) -> Request<B> {
        let mut request = Request::new(body);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers.clone();
        request
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extra(headers: &[(&str, &str)]) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn http1_sends_the_authority_as_host_and_the_path_alone() {
        let head = RequestHead::new(
            Method::GET,
            "web.shop:8080",
            "/items?x=1",
            &extra(&[("X-Canary", "1"), ("x-canary", "2")]),
            false,
        )
        .expect("head");
        let request = head.request(());
        assert_eq!(request.uri(), "/items?x=1");
        assert_eq!(request.version(), Version::HTTP_11);
        assert_eq!(request.headers()[HOST], "web.shop:8080");
        let canaries: Vec<_> = request.headers().get_all("x-canary").iter().collect();
        assert_eq!(canaries, ["1", "2"]);
    }

    #[test]
    fn a_host_header_replaces_the_authority_in_either_version() {
        let overridden = extra(&[("Host", "web.other")]);
        let http1 = RequestHead::new(Method::GET, "10.0.0.1", "/", &overridden, false)
            .expect("head")
            .request(());
        assert_eq!(http1.headers()[HOST], "web.other");
        assert_eq!(http1.headers().get_all(HOST).iter().count(), 1);

        let http2 = RequestHead::new(Method::POST, "10.0.0.1:80", "/a", &overridden, true)
            .expect("head")
            .request(());
        assert_eq!(http2.uri(), "http://web.other/a");
        assert_eq!(http2.version(), Version::HTTP_2);
        assert!(http2.headers().get(HOST).is_none(), "sent as :authority");
    }

    #[test]
    fn headers_and_authorities_http_cannot_carry_are_refused() {
        let bad_name = RequestHead::new(Method::GET, "web", "/", &extra(&[("x y", "1")]), false);
        assert!(matches!(bad_name, Err(ClientError::BadHeader { name, .. }) if name == "x y"));
        let bad_value = RequestHead::new(Method::GET, "web", "/", &extra(&[("x", "a\nb")]), true);
        assert!(matches!(bad_value, Err(ClientError::BadHeader { .. })));
        let bad_authority =
            RequestHead::new(Method::GET, "web", "/", &extra(&[("host", "a b")]), true);
        assert!(matches!(
            bad_authority,
            Err(ClientError::BadRequestTarget { .. })
        ));
    }
}
