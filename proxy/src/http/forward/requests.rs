//! What the forwarding path does to requests besides sending them: the authority, the URI
//! form each HTTP version wants, path rewrites and redirects, cookies for hashing, and the
//! answers made when no route or destination takes a request.

use http::{HeaderValue, Request, Response, StatusCode, Uri, header, uri::PathAndQuery};
use hyper::body::Incoming;

use super::super::{Body, UpstreamVersion, local_response};
use crate::{
    config::Cluster,
    route::{Redirect, Route},
};

/// The 503 for a request routed to the original destination on a listener that has none.
pub(super) fn no_original_dst(cluster: &Cluster, grpc: bool) -> Response<Body> {
    let message = format!(
        "cluster {:?} sends to the original destination, and this connection has none",
        cluster.name
    );
    local_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "no_original_dst",
        &message,
        grpc,
    )
}

/// The 404 for a request that no route takes.
pub(super) fn no_route(req: &Request<Incoming>, name: Option<&str>, grpc: bool) -> Response<Body> {
    let authority = authority_of(req).unwrap_or_default();
    let message = format!(
        "no route for {authority}{} in route config {:?}",
        req.uri().path(),
        name.unwrap_or_default()
    );
    local_response(StatusCode::NOT_FOUND, "no_route", &message, grpc)
}

/// The request's authority: HTTP/2's `:authority`, else the Host header.
pub(super) fn authority_of<B>(req: &Request<B>) -> Option<&str> {
    req.uri().authority().map(|a| a.as_str()).or_else(|| {
        req.headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
    })
}

/// HTTP/1.1 wants an origin-form target and a Host header; HTTP/2 an absolute URI.
pub(super) fn prepare_uri(req: &mut Request<Incoming>, version: UpstreamVersion) {
    let origin_form = req.uri().scheme().is_none() && req.uri().authority().is_none();
    match version {
        UpstreamVersion::Http1 => {
            *req.version_mut() = http::Version::HTTP_11;
            if origin_form && req.headers().contains_key(header::HOST) {
                return; // already what HTTP/1.1 wants: the common case costs nothing
            }
            if !req.headers().contains_key(header::HOST)
                && let Some(value) = authority_of(req).and_then(|a| HeaderValue::from_str(a).ok())
            {
                req.headers_mut().insert(header::HOST, value);
            }
            if !origin_form {
                let path = req.uri().path_and_query().cloned();
                let mut parts = http::uri::Parts::default();
                parts.path_and_query = path.or_else(|| Some(PathAndQuery::from_static("/")));
                if let Ok(uri) = Uri::from_parts(parts) {
                    *req.uri_mut() = uri;
                }
            }
        }
        UpstreamVersion::Http2 => {
            *req.version_mut() = http::Version::HTTP_2;
            if !origin_form {
                req.headers_mut().remove(header::HOST);
                return;
            }
            let authority = authority_of(req).unwrap_or("localhost").to_owned();
            let path = req.uri().path_and_query().cloned();
            let mut parts = http::uri::Parts::default();
            parts.scheme = Some(http::uri::Scheme::HTTP);
            parts.authority = authority.parse().ok();
            parts.path_and_query = path.or_else(|| Some(PathAndQuery::from_static("/")));
            if let Ok(uri) = Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
            req.headers_mut().remove(header::HOST);
        }
    }
}

pub(super) fn rewrite_path(route: &Route, req: &mut Request<Incoming>, prefix: &str) {
    let path_and_query = req.uri().path_and_query().map_or("/", PathAndQuery::as_str);
    let rewritten = route.rewrite_path(path_and_query, prefix);
    let mut parts = req.uri().clone().into_parts();
    if let Ok(pq) = rewritten.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
}

pub(super) fn uri_with_authority(uri: &Uri, authority: &HeaderValue) -> Uri {
    if uri.authority().is_none() {
        return uri.clone();
    }
    let mut parts = uri.clone().into_parts();
    parts.authority = authority.to_str().ok().and_then(|a| a.parse().ok());
    Uri::from_parts(parts).unwrap_or_else(|_| uri.clone())
}

pub(super) fn redirect_response(
    route: &Route,
    redirect: &Redirect,
    req: &Request<Incoming>,
    authority: &str,
) -> Response<Body> {
    let scheme = redirect.scheme.as_deref().unwrap_or("http");
    let host = redirect
        .host
        .clone()
        .unwrap_or_else(|| crate::route::matching::strip_port(authority).to_owned());
    let port = redirect.port.map(|p| format!(":{p}")).unwrap_or_default();
    let original = req.uri().path_and_query().map_or("/", PathAndQuery::as_str);
    let path = match (&redirect.path, &redirect.path_prefix) {
        (Some(path), _) => path.clone(),
        (None, Some(prefix)) => route.rewrite_path(original, prefix),
        (None, None) => original.to_owned(),
    };
    let mut response = Response::new(super::super::full(bytes::Bytes::new()));
    *response.status_mut() = redirect.status;
    if let Ok(location) = HeaderValue::from_str(&format!("{scheme}://{host}{port}{path}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

pub(super) fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then_some(value)
        })
}
