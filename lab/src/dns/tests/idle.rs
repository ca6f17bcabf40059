//! TCP connections: several queries answered in order, and closed once idle.

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use arc_swap::ArcSwap;
use hickory_proto::{op::Message, rr::RecordType};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, DuplexStream},
    time::Instant,
};

use super::{addresses, query, shop};
use crate::dns::server::{TCP_IDLE_TIMEOUT, serve_connection};

/// Sends one length-prefixed query and reads its response.
async fn ask_tcp(stream: &mut DuplexStream, name: &str) -> Message {
    let packet = query(name, RecordType::A).to_vec().expect("encode");
    let length = u16::try_from(packet.len()).expect("small");
    stream
        .write_all(&length.to_be_bytes())
        .await
        .expect("write");
    stream.write_all(&packet).await.expect("write");
    let length = stream.read_u16().await.expect("length");
    let mut response = vec![0; usize::from(length)];
    stream.read_exact(&mut response).await.expect("response");
    Message::from_vec(&response).expect("decodable")
}

/// A connection to the shop's records over an in-memory stream, on paused time.
fn connect() -> DuplexStream {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let records = Arc::new(ArcSwap::from_pointee(shop()));
    let peer = SocketAddr::from(([127, 0, 0, 1], 5353));
    tokio::spawn(serve_connection(records, server, peer));
    client
}

#[tokio::test(start_paused = true)]
async fn a_connection_is_closed_after_the_idle_timeout_and_not_before() {
    let mut client = connect();
    let response = ask_tcp(&mut client, "web.shop.svc.cluster.local.").await;
    assert_eq!(addresses(&response.answers), [Ipv4Addr::new(10, 96, 0, 20)]);

    // A query shortly before the timeout is still answered, and the wait starts again.
    tokio::time::sleep(TCP_IDLE_TIMEOUT - Duration::from_millis(1)).await;
    let response = ask_tcp(&mut client, "other.default.svc.cluster.local.").await;
    assert_eq!(addresses(&response.answers), [Ipv4Addr::new(10, 96, 0, 30)]);

    let idle_since = Instant::now();
    let mut rest = Vec::new();
    let read = client.read_to_end(&mut rest).await.expect("closed cleanly");
    assert_eq!(read, 0, "nothing but the close");
    assert_eq!(idle_since.elapsed(), TCP_IDLE_TIMEOUT);
}

#[tokio::test(start_paused = true)]
async fn a_query_that_stops_halfway_is_given_up_after_the_idle_timeout() {
    let mut client = connect();
    client.write_all(&[0, 40, 0x12]).await.expect("write");
    let started = Instant::now();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await.expect("closed");
    assert!(rest.is_empty());
    assert_eq!(started.elapsed(), TCP_IDLE_TIMEOUT);
}

#[tokio::test]
async fn queries_sent_together_are_answered_in_order() {
    let mut client = connect();
    let names = [
        "web.shop.svc.cluster.local.",
        "other.default.svc.cluster.local.",
        "nosuch.shop.svc.cluster.local.",
    ];
    let mut batch = Vec::new();
    for name in names {
        let packet = query(name, RecordType::A).to_vec().expect("encode");
        batch.extend_from_slice(&u16::try_from(packet.len()).expect("small").to_be_bytes());
        batch.extend_from_slice(&packet);
    }
    client.write_all(&batch).await.expect("write");
    for name in names {
        let length = client.read_u16().await.expect("length");
        let mut response = vec![0; usize::from(length)];
        client.read_exact(&mut response).await.expect("response");
        let response = Message::from_vec(&response).expect("decodable");
        assert_eq!(response.queries[0].name().to_ascii(), name);
    }
}
