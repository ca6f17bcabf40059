//! The TCP echo: greeting, byte-for-byte echo while open, and half-close after the client.

use mesh_lab::workload::Faults;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

use crate::support::{start_tcp_echo, within, workload};

#[tokio::test]
async fn greets_echoes_and_closes_after_the_client_half_closes() {
    let address = start_tcp_echo(workload("db-0", "v7", Faults::default())).await;
    let mut stream = BufReader::new(TcpStream::connect(address).await.expect("connect"));

    let mut greeting = String::new();
    stream.read_line(&mut greeting).await.expect("greeting");
    assert_eq!(greeting, "pod=db-0 version=v7\n");

    // Echoed while the connection is still open both ways.
    stream.get_mut().write_all(b"abc").await.expect("write");
    let mut echoed = [0; 3];
    within("echo while open", stream.read_exact(&mut echoed))
        .await
        .expect("echo");
    assert_eq!(&echoed, b"abc");

    // After the client's half-close, the rest comes back and then the server's own close.
    stream.get_mut().write_all(b"defg").await.expect("write");
    stream.get_mut().shutdown().await.expect("half-close");
    let mut rest = Vec::new();
    stream
        .read_to_end(&mut rest)
        .await
        .expect("until the server closes");
    assert_eq!(rest, b"defg");
}

#[tokio::test]
async fn each_connection_gets_its_own_greeting() {
    let address = start_tcp_echo(workload("db-1", "v1", Faults::default())).await;
    for _ in 0..3 {
        let mut stream = TcpStream::connect(address).await.expect("connect");
        stream.shutdown().await.expect("half-close at once");
        let mut everything = String::new();
        stream.read_to_string(&mut everything).await.expect("read");
        assert_eq!(everything, "pod=db-1 version=v1\n");
    }
}
