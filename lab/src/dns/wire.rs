//! DNS packets in and out: decoding a query, FORMERR for malformed ones, and fitting the response
//! into what the transport allows (truncation with TC over UDP).

use hickory_proto::{
    op::{Header, Message, MessageType, ResponseCode},
    serialize::binary::{BinDecodable, BinDecoder},
};

use super::{answer::respond, records::DnsRecords};

/// The transport a query came over, which bounds the response's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// UDP: 512 bytes, or the EDNS payload size the client advertised.
    Udp,
    /// TCP: up to the 2-byte length prefix's 65535 bytes.
    Tcp,
}

/// The response packet for `packet`, or `None` when there is nothing to send back (a response,
/// or bytes too short to hold a header).
pub(crate) fn answer_packet(
    records: &DnsRecords,
    packet: &[u8],
    transport: Transport,
) -> Option<Vec<u8>> {
    let request = match Message::from_vec(packet) {
        Ok(request) => request,
        Err(error) => {
            tracing::debug!(%error, "malformed DNS query");
            return format_error(packet);
        }
    };
    let response = respond(records, &request)?;
    let limit = match transport {
        Transport::Udp => usize::from(request.max_payload()),
        Transport::Tcp => usize::from(u16::MAX),
    };
    encode_within(response, limit)
}

/// FORMERR for a packet whose header can be read and says it is a query.
fn format_error(packet: &[u8]) -> Option<Vec<u8>> {
    let header = Header::read(&mut BinDecoder::new(packet)).ok()?;
    if header.metadata.message_type == MessageType::Response {
        return None;
    }
    let mut response = Message::error_msg(
        header.metadata.id,
        header.metadata.op_code,
        ResponseCode::FormErr,
    );
    response.metadata.recursion_desired = header.metadata.recursion_desired;
    response.to_vec().ok()
}

/// `response` encoded in at most `limit` bytes: whole if it fits, else without the additional
/// section, else with only the question and TC set so that the client retries over TCP.
fn encode_within(mut response: Message, limit: usize) -> Option<Vec<u8>> {
    if let Some(bytes) = encode_if_fits(&response, limit) {
        return Some(bytes);
    }
    response.additionals.clear();
    if let Some(bytes) = encode_if_fits(&response, limit) {
        return Some(bytes);
    }
    response.answers.clear();
    response.authorities.clear();
    response.metadata.truncation = true;
    if let Some(bytes) = encode_if_fits(&response, limit) {
        return Some(bytes);
    }
    let failure = Message::error_msg(
        response.metadata.id,
        response.metadata.op_code,
        ResponseCode::ServFail,
    );
    failure.to_vec().ok()
}

/// `response` encoded, if that works and takes at most `limit` bytes.
fn encode_if_fits(response: &Message, limit: usize) -> Option<Vec<u8>> {
    match response.to_vec() {
        Ok(bytes) => (bytes.len() <= limit).then_some(bytes),
        Err(error) => {
            tracing::warn!(%error, id = response.metadata.id, "cannot encode DNS response");
            None
        }
    }
}
