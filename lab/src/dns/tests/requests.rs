//! Requests that are not a plain question: several questions, other opcodes and classes, EDNS.

use hickory_proto::{
    op::{Edns, Message, MessageType, OpCode, Query, ResponseCode},
    rr::{DNSClass, RecordType},
};

use super::{fqdn, query, shop};
use crate::dns::answer::respond;

/// The response code `shop()` answers `request` with.
fn code_for(request: &Message) -> ResponseCode {
    respond(&shop(), request)
        .expect("a response")
        .metadata
        .response_code
}

#[test]
fn a_request_without_exactly_one_question_is_a_format_error() {
    let mut none = query("web.shop.svc.cluster.local.", RecordType::A);
    none.queries.clear();
    assert_eq!(code_for(&none), ResponseCode::FormErr);

    let mut two = query("web.shop.svc.cluster.local.", RecordType::A);
    two.add_query(Query::query(
        fqdn("db.shop.svc.cluster.local."),
        RecordType::A,
    ));
    assert_eq!(code_for(&two), ResponseCode::FormErr);
}

#[test]
fn other_opcodes_are_not_implemented() {
    for op_code in [OpCode::Update, OpCode::Notify, OpCode::Status] {
        let mut request = query("web.shop.svc.cluster.local.", RecordType::A);
        request.metadata.op_code = op_code;
        let response = respond(&shop(), &request).expect("a response");
        assert_eq!(response.metadata.response_code, ResponseCode::NotImp);
        assert_eq!(response.metadata.op_code, op_code, "the opcode is echoed");
    }
}

#[test]
fn other_classes_and_zone_transfers_are_refused() {
    let mut chaos = Message::query();
    let mut question = Query::query(fqdn("version.bind."), RecordType::TXT);
    question.set_query_class(DNSClass::CH);
    chaos.add_query(question);
    assert_eq!(code_for(&chaos), ResponseCode::Refused);

    let transfer = query("cluster.local.", RecordType::AXFR);
    assert_eq!(code_for(&transfer), ResponseCode::Refused);
}

#[test]
fn responses_are_never_answered() {
    let mut response = query("web.shop.svc.cluster.local.", RecordType::A);
    response.metadata.message_type = MessageType::Response;
    assert!(respond(&shop(), &response).is_none());
}

#[test]
fn edns_is_answered_with_edns_and_unknown_versions_with_badvers() {
    let mut request = query("web.shop.svc.cluster.local.", RecordType::A);
    assert!(
        respond(&shop(), &request)
            .expect("a response")
            .edns
            .is_none(),
        "no OPT record without one in the query"
    );

    request.set_edns(Edns::new());
    let response = respond(&shop(), &request).expect("a response");
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert_eq!(response.edns.as_ref().map(Edns::version), Some(0));

    let mut future = Edns::new();
    future.set_version(1);
    request.set_edns(future);
    let response = respond(&shop(), &request).expect("a response");
    assert_eq!(response.metadata.response_code, ResponseCode::BADVERS);
    assert!(response.answers.is_empty());
    assert!(response.edns.is_some(), "BADVERS travels in the OPT record");
}
