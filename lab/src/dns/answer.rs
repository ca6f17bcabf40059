//! One DNS question answered from the records: the response message, before any size limit.

use hickory_proto::{
    op::{Edns, Message, MessageType, OpCode, ResponseCode},
    rr::{
        DNSClass, LowerName, Name, RData, Record, RecordType,
        rdata::{A, PTR},
    },
};

use super::records::{DnsRecords, NameRecords, TTL_SECS, Zone};

/// The UDP payload this server says it accepts, in its EDNS OPT record (the DNS flag day size).
const ADVERTISED_UDP_PAYLOAD: u16 = 1232;

/// The response to `request`, or `None` when it is itself a response (never answer those).
pub(crate) fn respond(records: &DnsRecords, request: &Message) -> Option<Message> {
    if request.metadata.message_type == MessageType::Response {
        return None;
    }
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    if let Some(request_edns) = &request.edns {
        let mut edns = Edns::new();
        edns.set_max_payload(ADVERTISED_UDP_PAYLOAD);
        response.set_edns(edns);
        if request_edns.version() > 0 {
            return Some(with_code(response, ResponseCode::BADVERS));
        }
    }
    if request.metadata.op_code != OpCode::Query {
        return Some(with_code(response, ResponseCode::NotImp));
    }
    let [query] = request.queries.as_slice() else {
        return Some(with_code(response, ResponseCode::FormErr));
    };
    response.add_query(query.clone());
    let query_type = query.query_type();
    if query.query_class() != DNSClass::IN
        || matches!(query_type, RecordType::AXFR | RecordType::IXFR)
    {
        return Some(with_code(response, ResponseCode::Refused));
    }

    let name = LowerName::new(query.name());
    let Some(zone) = records.zone_of(&name) else {
        // Not ours, and the lab has no upstream: see the module docs for why NXDOMAIN.
        return Some(with_code(response, ResponseCode::NXDomain));
    };
    response.metadata.authoritative = true;
    let Some(found) = records.lookup(&name) else {
        response.add_authority(zone.soa.clone());
        return Some(with_code(response, ResponseCode::NXDomain));
    };

    let answers = answers(found, query.name(), query_type, zone, name == zone.apex);
    if answers.is_empty() {
        response.add_authority(zone.soa.clone());
        return Some(response);
    }
    let additionals = srv_target_addresses(records, &answers);
    response.add_answers(answers);
    response.add_additionals(additionals);
    Some(response)
}

/// `response` with its response code set.
fn with_code(mut response: Message, code: ResponseCode) -> Message {
    response.metadata.response_code = code;
    response
}

/// The records at `owner` of `query_type`; the owner keeps the asker's spelling of the name.
fn answers(
    found: &NameRecords,
    owner: &Name,
    query_type: RecordType,
    zone: &Zone,
    is_apex: bool,
) -> Vec<Record> {
    let wants =
        |record_type: RecordType| query_type == record_type || query_type == RecordType::ANY;
    let record = |data: RData| Record::from_rdata(owner.clone(), TTL_SECS, data);
    let mut answers = Vec::new();
    if wants(RecordType::A) {
        answers.extend(found.a.iter().map(|ip| record(RData::A(A(*ip)))));
    }
    if wants(RecordType::SRV) {
        answers.extend(found.srv.iter().map(|srv| record(RData::SRV(srv.clone()))));
    }
    if wants(RecordType::PTR) {
        answers.extend(
            found
                .ptr
                .iter()
                .map(|name| record(RData::PTR(PTR(name.clone())))),
        );
    }
    if is_apex && wants(RecordType::SOA) {
        let mut soa = zone.soa.clone();
        soa.name = owner.clone();
        answers.push(soa);
    }
    answers
}

/// The A records of the SRV answers' targets, for the additional section (as CoreDNS adds).
fn srv_target_addresses(records: &DnsRecords, answers: &[Record]) -> Vec<Record> {
    let mut additionals: Vec<Record> = Vec::new();
    for answer in answers {
        let RData::SRV(srv) = &answer.data else {
            continue;
        };
        let target = &srv.target;
        if additionals.iter().any(|record| &record.name == target) {
            continue;
        }
        if let Some(found) = records.lookup(&LowerName::new(target)) {
            additionals.extend(
                found
                    .a
                    .iter()
                    .map(|ip| Record::from_rdata(target.clone(), TTL_SECS, RData::A(A(*ip)))),
            );
        }
    }
    additionals
}
