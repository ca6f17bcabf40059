//! The plain GET against a one-shot server on loopback: the request it sends, bodies by
//! length, in chunks and to the end of the connection, and errors a poller can retry on.

use std::{
    io::{BufRead, BufReader, Write},
    net::{SocketAddr, TcpListener},
    thread::JoinHandle,
};

use mesh_test_support::{free_addr, free_port, http_get};

/// Serves one connection with `response`; the thread returns the request's head.
fn answer_once(response: &'static str) -> (SocketAddr, JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        while !head.ends_with("\r\n\r\n") {
            assert_ne!(reader.read_line(&mut head).expect("read"), 0, "{head}");
        }
        reader
            .get_mut()
            .write_all(response.as_bytes())
            .expect("write");
        head
    });
    (addr, server)
}

#[test]
fn a_get_asks_for_the_path_and_reads_a_body_by_its_length() {
    let (addr, server) = answer_once("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello");
    assert_eq!(
        http_get(addr, "/ready?x=1").expect("an answer"),
        (200, "hello".to_owned())
    );
    let head = server.join().expect("server");
    assert!(head.starts_with("GET /ready?x=1 HTTP/1.1\r\n"), "{head}");
    assert!(head.contains(&format!("host: {addr}\r\n")), "{head}");
    assert!(head.contains("connection: close\r\n"), "{head}");
}

#[test]
fn a_chunked_body_is_decoded() {
    let (addr, server) = answer_once(
        "HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n\
         4\r\nnot \r\n6;ext=1\r\nready!\r\n0\r\n\r\n",
    );
    assert_eq!(
        http_get(("127.0.0.1", addr.port()), "/").expect("an answer"),
        (503, "not ready!".to_owned())
    );
    server.join().expect("server");
}

#[test]
fn without_a_length_the_body_runs_to_the_end_of_the_connection() {
    let (addr, server) = answer_once("HTTP/1.0 404 Not Found\r\n\r\nno such page");
    assert_eq!(
        http_get(addr.to_string().as_str(), "/x").expect("an answer"),
        (404, "no such page".to_owned())
    );
    server.join().expect("server");
}

#[test]
fn a_body_cut_short_and_a_reply_that_is_not_http_are_errors() {
    let (addr, server) = answer_once("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort");
    let error = http_get(addr, "/").expect_err("cut short");
    assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof);
    server.join().expect("server");

    let (addr, server) = answer_once("SSH-2.0-OpenSSH\r\n");
    let error = http_get(addr, "/").expect_err("not HTTP");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
    assert!(error.to_string().contains("SSH-2.0"), "{error}");
    server.join().expect("server");
}

#[test]
fn a_free_port_refuses_connections_until_someone_binds_it() {
    let error = http_get(("127.0.0.1", free_port()), "/").expect_err("nothing listens");
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused);
    let addr = free_addr();
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    TcpListener::bind(addr).expect("the free address can be bound");
}
