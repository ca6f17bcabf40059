//! gRPC (HTTP/2 with trailers), WebSocket upgrades, opaque TCP with half-close, and protocol
//! detection, through an in-process proxy against real servers on loopback.

mod support;

use std::{convert::Infallible, net::SocketAddr};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::*;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_stream_shim::ReceiverStream;
use tokio_tungstenite::tungstenite::{Message, handshake::derive_accept_key, protocol::Role};

/// A tiny stand-in for tokio-stream's ReceiverStream, to keep dependencies small.
mod tokio_stream_shim {
    use std::{
        pin::Pin,
        task::{Context, Poll},
    };

    pub struct ReceiverStream<T>(pub tokio::sync::mpsc::Receiver<T>);

    impl<T> futures_util::Stream for ReceiverStream<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}

type TestBody = BoxBody<Bytes, Infallible>;

/// A gRPC message frame: compressed flag, 4-byte length, payload.
fn grpc_frame(payload: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(5 + payload.len());
    buf.put_u8(0);
    buf.put_u32(payload.len() as u32);
    buf.put_slice(payload);
    buf.freeze()
}

/// A gRPC echo server (h2c): every request message is answered at once with "echo:" + message;
/// when the request stream ends it sends trailers with `grpc-status: 0` and a custom trailer.
async fn grpc_echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = service_fn(|req: Request<Incoming>| async move {
                    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
                    tokio::spawn(async move {
                        let mut body = req.into_body();
                        let mut pending = BytesMut::new();
                        while let Some(Ok(frame)) = body.frame().await {
                            if let Ok(data) = frame.into_data() {
                                pending.extend_from_slice(&data);
                            }
                            while pending.len() >= 5 {
                                let len = (&pending[1..5]).get_u32() as usize;
                                if pending.len() < 5 + len {
                                    break;
                                }
                                let message = pending.split_to(5 + len);
                                let reply = [b"echo:", &message[5..]].concat();
                                let _ = tx.send(Ok(Frame::data(grpc_frame(&reply)))).await;
                            }
                        }
                        let mut trailers = HeaderMap::new();
                        trailers.insert("grpc-status", HeaderValue::from_static("0"));
                        trailers.insert("x-echo-trailer", HeaderValue::from_static("done"));
                        let _ = tx.send(Ok(Frame::trailers(trailers))).await;
                    });
                    let body: TestBody = BodyExt::boxed(StreamBody::new(ReceiverStream(rx)));
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("content-type", "application/grpc")
                            .body(body)
                            .expect("response"),
                    )
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

const GRPC: &str = r#"
listeners:
- { name: test, address: "127.0.0.1:0", mode: EXPLICIT, protocol: GRPC, route_config: test }
routes:
- name: test
  virtual_hosts:
  - { name: any, domains: ["*"], routes: [ { match: { prefix: /echo.Echo/ }, route: { destinations: [{ cluster: grpc }] } } ] }
clusters: [ { name: grpc, protocol: GRPC } ]
endpoints: [ { cluster: grpc, endpoints: [{ address: "{GRPC}" }] } ]
"#;

#[tokio::test]
async fn grpc_unary_and_bidi_streaming_carry_trailers() {
    let server = grpc_echo_server().await;
    let proxy = start_proxy(GRPC, &[("GRPC", server)]).await;
    let stream = TcpStream::connect(proxy.addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);

    // Bidirectional streaming: each reply arrives before the next message is sent, which
    // proves neither direction is buffered by the proxy.
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
    let req = Request::post("http://echo.svc/echo.Echo/Chat")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(BodyExt::boxed(StreamBody::new(ReceiverStream(rx))))
        .expect("req");
    let response = sender.send_request(req).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    for word in ["one", "two", "three"] {
        tx.send(Ok(Frame::data(grpc_frame(word.as_bytes()))))
            .await
            .expect("send");
        let frame = body.frame().await.expect("a frame").expect("ok frame");
        let data = frame.into_data().expect("data frame");
        assert_eq!(&data[5..], format!("echo:{word}").as_bytes());
    }
    drop(tx);
    let trailers = loop {
        let frame = body.frame().await.expect("trailers frame").expect("ok");
        if let Ok(trailers) = frame.into_trailers() {
            break trailers;
        }
    };
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["x-echo-trailer"], "done");

    // Unary: one message in, one message and trailers out.
    let req = Request::post("http://echo.svc/echo.Echo/Say")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(http_body_util::Full::new(grpc_frame(b"hi")))
        .expect("req");
    let mut sender = sender;
    let collected = sender
        .send_request(req.map(BodyExt::boxed))
        .await
        .expect("response")
        .into_body()
        .collect()
        .await
        .expect("body");
    let trailers = collected.trailers().cloned().expect("trailers");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(&collected.to_bytes()[5..], b"echo:hi");
}

#[tokio::test]
async fn grpc_to_a_dead_backend_gets_grpc_unavailable() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let proxy = start_proxy(GRPC, &[("GRPC", closed)]).await;
    let stream = TcpStream::connect(proxy.addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let req = Request::post("http://echo.svc/echo.Echo/Say")
        .header("content-type", "application/grpc")
        .body(http_body_util::Full::new(grpc_frame(b"hi")))
        .expect("req");
    let response = sender.send_request(req).await.expect("response");
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "gRPC errors travel as trailers-only responses"
    );
    assert_eq!(response.headers()["grpc-status"], "14");
    assert!(
        response.headers()["grpc-message"]
            .to_str()
            .expect("ascii")
            .contains("connect error")
    );
}

/// A WebSocket echo server behind a plain hyper HTTP/1.1 server with upgrades.
async fn websocket_echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = service_fn(|mut req: Request<Incoming>| async move {
                    let key = req
                        .headers()
                        .get("sec-websocket-key")
                        .cloned()
                        .expect("websocket key");
                    let upgrade = hyper::upgrade::on(&mut req);
                    tokio::spawn(async move {
                        let upgraded = upgrade.await.expect("upgrade");
                        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                            TokioIo::new(upgraded),
                            Role::Server,
                            None,
                        )
                        .await;
                        while let Some(Ok(message)) = ws.next().await {
                            if let Message::Text(text) = message {
                                ws.send(Message::text(format!("echo:{text}")))
                                    .await
                                    .expect("send");
                            }
                        }
                    });
                    Ok::<_, Infallible>(
                        Response::builder()
                            .status(StatusCode::SWITCHING_PROTOCOLS)
                            .header("connection", "upgrade")
                            .header("upgrade", "websocket")
                            .header("sec-websocket-accept", derive_accept_key(key.as_bytes()))
                            .body(http_body_util::Empty::<Bytes>::new())
                            .expect("response"),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn websocket_upgrade_tunnels_messages_both_ways() {
    let server = websocket_echo_server().await;
    let proxy = start_proxy(SIMPLE, &[("UP", server)]).await;
    let stream = TcpStream::connect(proxy.addr).await.expect("connect");
    let (mut ws, response) = tokio_tungstenite::client_async("ws://web/chat", stream)
        .await
        .expect("websocket handshake through the proxy");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    for i in 0..3 {
        ws.send(Message::text(format!("hello {i}")))
            .await
            .expect("send");
        let reply = ws.next().await.expect("a reply").expect("ok");
        assert_eq!(
            reply.into_text().expect("text").as_str(),
            format!("echo:hello {i}")
        );
    }
    ws.close(None).await.expect("close");
}

const TCP_AND_HTTP: &str = r#"
listeners:
- name: test
  address: "127.0.0.1:0"
  mode: EXPLICIT
  route_config: test
  tcp: { destinations: [{ cluster: tcp }] }
routes:
- name: test
  virtual_hosts:
  - { name: any, domains: ["*"], routes: [ { route: { destinations: [{ cluster: http }] } } ] }
clusters: [ { name: tcp }, { name: http } ]
endpoints:
- { cluster: tcp, endpoints: [{ address: "{TCP}" }] }
- { cluster: http, endpoints: [{ address: "{HTTP}" }] }
"#;

#[tokio::test]
async fn tcp_half_close_still_delivers_the_answer() {
    let tcp = named_count_server("tcp").await;
    let http = echo_upstream("http").await;
    let proxy = start_proxy(TCP_AND_HTTP, &[("TCP", tcp), ("HTTP", http.addr)]).await;
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    let payload = vec![0xa5u8; 100_000];
    stream.write_all(&payload).await.expect("write");
    stream.shutdown().await.expect("half-close");
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .await
        .expect("read answer after half-close");
    assert_eq!(answer, "tcp got 100000 bytes");
    let metrics = proxy.proxy.state().metrics.render();
    assert!(
        metrics.contains(
            r#"mesh_tcp_bytes_total{cluster="tcp",connection_security_policy="unknown",destination_principal="unknown",direction="explicit",flow="to_upstream",source_principal="unknown"} 100000"#
        ),
        "{metrics}"
    );
    assert!(
        metrics
            .contains(r#"mesh_tcp_connections_closed_total{cluster="tcp",connection_security_policy="unknown",destination_principal="unknown",direction="explicit",source_principal="unknown"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn one_port_detects_http1_http2_and_opaque_tcp() {
    let tcp = named_count_server("tcp").await;
    let http = echo_upstream("http").await;
    let proxy = start_proxy(TCP_AND_HTTP, &[("TCP", tcp), ("HTTP", http.addr)]).await;

    let (status, _, body) = get(proxy.addr, "/one").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["version"], "HTTP/1.1");

    let stream = TcpStream::connect(proxy.addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let req = Request::get("http://web/two")
        .body(http_body_util::Empty::<Bytes>::new())
        .expect("req");
    let response = sender.send_request(req).await.expect("response");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(json(&body)["version"], "HTTP/2.0");

    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    stream
        .write_all(b"\x00\x01binary protocol")
        .await
        .expect("write");
    stream.shutdown().await.expect("half-close");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    assert_eq!(
        answer, "tcp got 17 bytes",
        "the detection bytes are replayed, none lost"
    );
}

/// A real TLS ClientHello for `server_name`, as rustls sends it.
fn client_hello(server_name: &str) -> Vec<u8> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name =
        rustls::pki_types::ServerName::try_from(server_name.to_owned()).expect("server name");
    let mut conn =
        rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("client");
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).expect("hello");
    hello
}

/// Reads until the client half-closes, then answers `"<name> got <n> bytes"`.
async fn named_count_server(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut received = Vec::new();
                stream
                    .read_to_end(&mut received)
                    .await
                    .expect("read to EOF");
                let answer = format!("{name} got {} bytes", received.len());
                stream.write_all(answer.as_bytes()).await.expect("answer");
            });
        }
    });
    addr
}

const TLS_PASSTHROUGH: &str = r#"
listeners:
- name: test
  address: "127.0.0.1:0"
  mode: EXPLICIT
  protocol: TLS
  tcp:
    destinations: [{ cluster: default }]
    sni_routes: [ { sni: ["api.example.com", "*.internal.example.com"], destinations: [{ cluster: api }] } ]
clusters: [ { name: api }, { name: default } ]
endpoints:
- { cluster: api, endpoints: [{ address: "{API}" }] }
- { cluster: default, endpoints: [{ address: "{DEFAULT}" }] }
"#;

#[tokio::test]
async fn tls_is_passed_through_unopened_and_routed_by_sni() {
    let api = named_count_server("api").await;
    let default = named_count_server("default").await;
    let proxy = start_proxy(TLS_PASSTHROUGH, &[("API", api), ("DEFAULT", default)]).await;
    for (server_name, expected) in [
        ("api.example.com", "api"),
        ("db.internal.example.com", "api"),
        ("www.example.com", "default"),
    ] {
        let hello = client_hello(server_name);
        let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
        stream.write_all(&hello).await.expect("write hello");
        stream.shutdown().await.expect("half-close");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("read");
        assert_eq!(
            answer,
            format!("{expected} got {} bytes", hello.len()),
            "SNI {server_name}"
        );
    }
}
