//! A DNS client for the tests: one question over UDP or TCP, built and read with hickory-proto.

use std::{net::SocketAddr, time::Duration};

use hickory_proto::{
    op::{Edns, Message, Query},
    rr::{Name, RecordType},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpStream, UdpSocket},
    time::timeout,
};

/// How long a test waits for an answer before failing (the server answers in microseconds).
pub const ANSWER_DEADLINE: Duration = Duration::from_secs(5);

/// A recursive query for `name`, with an EDNS payload size when given.
pub fn question(name: &str, record_type: RecordType, edns_payload: Option<u16>) -> Message {
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(
        Name::from_ascii(name).expect("name"),
        record_type,
    ));
    if let Some(payload) = edns_payload {
        let mut edns = Edns::new();
        edns.set_max_payload(payload);
        message.set_edns(edns);
    }
    message
}

/// Sends `request` over UDP from a fresh socket and returns the matching response.
pub async fn ask_udp(server: SocketAddr, request: &Message) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    socket
        .send_to(&request.to_vec().expect("encode"), server)
        .await
        .expect("send");
    receive_udp(&socket, request.metadata.id).await
}

/// The next datagram on `socket`, decoded; it must answer query `id`.
pub async fn receive_udp(socket: &UdpSocket, id: u16) -> Message {
    let mut buffer = vec![0; 65_535];
    let (length, _) = timeout(ANSWER_DEADLINE, socket.recv_from(&mut buffer))
        .await
        .expect("answered in time")
        .expect("receive");
    let response = Message::from_vec(&buffer[..length]).expect("decodable response");
    assert_eq!(response.metadata.id, id, "response to another query");
    response
}

/// Sends `request` on an open TCP connection and returns its response.
pub async fn ask_on(stream: &mut TcpStream, request: &Message) -> Message {
    send_frame(stream, &request.to_vec().expect("encode")).await;
    receive_tcp(stream, request.metadata.id).await
}

/// The next response on a TCP connection, decoded; it must answer query `id`.
pub async fn receive_tcp(stream: &mut TcpStream, id: u16) -> Message {
    let response = timeout(ANSWER_DEADLINE, read_frame(stream))
        .await
        .expect("answered in time");
    let response = Message::from_vec(&response).expect("decodable response");
    assert_eq!(response.metadata.id, id, "response to another query");
    response
}

/// Sends `request` over a new TCP connection and returns its response.
pub async fn ask_tcp(server: SocketAddr, request: &Message) -> Message {
    let mut stream = TcpStream::connect(server).await.expect("connect");
    ask_on(&mut stream, request).await
}

/// Writes `message` with its 2-byte length prefix.
pub async fn send_frame(stream: &mut TcpStream, message: &[u8]) {
    let length = u16::try_from(message.len()).expect("short message");
    let mut frame = length.to_be_bytes().to_vec();
    frame.extend_from_slice(message);
    stream.write_all(&frame).await.expect("write");
}

/// Reads one length-prefixed message.
async fn read_frame(stream: &mut TcpStream) -> Vec<u8> {
    let length = stream.read_u16().await.expect("length prefix");
    let mut message = vec![0; usize::from(length)];
    stream.read_exact(&mut message).await.expect("message");
    message
}
