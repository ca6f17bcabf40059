//! Packets: truncation to the transport's size, EDNS payload sizes, malformed bytes.

use std::net::Ipv4Addr;

use hickory_proto::{
    op::{Edns, Message, ResponseCode},
    rr::RecordType,
};

use super::{addresses, endpoint, port, query, shop};
use crate::dns::{
    DnsRecords, PortProtocol, ServiceAddress,
    wire::{Transport, answer_packet},
};

/// A headless Service `big` in `shop` with `count` endpoints and a named port.
fn big(count: u8) -> DnsRecords {
    let endpoints = (1..=count)
        .map(|i| endpoint([10, 244, 5, i], None))
        .collect();
    DnsRecords::builder("cluster.local")
        .add_service(
            "shop",
            "big",
            ServiceAddress::Headless(endpoints),
            &[port("http", PortProtocol::Tcp, 8080)],
        )
        .build()
        .expect("valid")
}

/// `request` sent as bytes over `transport`, and the decoded response with its size.
fn exchange(records: &DnsRecords, request: &Message, transport: Transport) -> (Message, usize) {
    let packet = request.to_vec().expect("encode");
    let bytes = answer_packet(records, &packet, transport).expect("a response");
    (
        Message::from_vec(&bytes).expect("decodable response"),
        bytes.len(),
    )
}

#[test]
fn udp_answer_over_512_bytes_is_truncated_without_edns() {
    let request = query("big.shop.svc.cluster.local.", RecordType::A);
    let (response, size) = exchange(&big(60), &request, Transport::Udp);
    assert!(size <= 512, "{size} bytes");
    assert!(
        response.metadata.truncation,
        "TC tells the client to use TCP"
    );
    assert!(response.answers.is_empty());
    assert_eq!(response.queries, request.queries, "the question is kept");
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
}

#[test]
fn udp_answer_fits_in_the_edns_payload_the_client_offers() {
    let mut request = query("big.shop.svc.cluster.local.", RecordType::A);
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    request.set_edns(edns);
    let (response, size) = exchange(&big(60), &request, Transport::Udp);
    assert!(size > 512 && size <= 4096, "{size} bytes");
    assert!(!response.metadata.truncation);
    assert_eq!(addresses(&response.answers).len(), 60);
    assert!(response.edns.is_some(), "an OPT answers an OPT");
}

#[test]
fn edns_payload_below_512_still_allows_512() {
    let mut request = query("big.shop.svc.cluster.local.", RecordType::A);
    let mut edns = Edns::new();
    edns.set_max_payload(100);
    request.set_edns(edns);
    let (response, size) = exchange(&big(25), &request, Transport::Udp);
    assert!(size > 100 && size <= 512, "{size} bytes");
    assert_eq!(addresses(&response.answers).len(), 25);
}

#[test]
fn tcp_carries_the_whole_answer() {
    let request = query("big.shop.svc.cluster.local.", RecordType::A);
    let (response, size) = exchange(&big(200), &request, Transport::Tcp);
    assert!(size > 512, "{size} bytes");
    assert!(!response.metadata.truncation);
    let expected: Vec<Ipv4Addr> = (1..=200).map(|i| Ipv4Addr::new(10, 244, 5, i)).collect();
    assert_eq!(addresses(&response.answers), expected);
}

#[test]
fn additional_records_are_dropped_before_answers_are() {
    // 7 SRV answers fit in 512 bytes; with their 7 A records in additional they do not.
    let request = query("_http._tcp.big.shop.svc.cluster.local.", RecordType::SRV);
    let records = big(7);
    let (whole, whole_size) = exchange(&records, &request, Transport::Tcp);
    assert!(
        whole_size > 512,
        "{whole_size} bytes: the test needs more endpoints"
    );
    assert_eq!(whole.additionals.len(), 7);

    let (response, size) = exchange(&records, &request, Transport::Udp);
    assert!(size <= 512, "{size} bytes");
    assert!(
        !response.metadata.truncation,
        "the answer itself is complete"
    );
    assert_eq!(response.answers.len(), 7);
    assert!(response.additionals.is_empty());
}

#[test]
fn bytes_too_short_for_a_header_get_no_response() {
    for packet in [&b""[..], b"\x00", b"\x12\x34\x01\x00\x00\x01\x00"] {
        assert!(
            answer_packet(&shop(), packet, Transport::Udp).is_none(),
            "{packet:?}"
        );
    }
}

#[test]
fn a_query_header_with_a_broken_body_gets_a_format_error() {
    // id 0x1234, RD, one question promised but the name's label runs past the end.
    let packet = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07web";
    let bytes = answer_packet(&shop(), packet, Transport::Udp).expect("FORMERR");
    let response = Message::from_vec(&bytes).expect("decodable");
    assert_eq!(response.metadata.id, 0x1234);
    assert_eq!(response.metadata.response_code, ResponseCode::FormErr);
    assert!(response.metadata.recursion_desired);
}

#[test]
fn a_broken_response_gets_nothing_back() {
    let packet = b"\x12\x34\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00\x07web";
    assert!(answer_packet(&shop(), packet, Transport::Udp).is_none());
}
