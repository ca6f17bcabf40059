//! Answers for each kind of name, checked on the messages themselves.

mod builder;
mod idle;
mod requests;
mod wire;

use std::net::Ipv4Addr;

use hickory_proto::{
    op::{Message, Query, ResponseCode},
    rr::{Name, RData, Record, RecordType, rdata::A},
};

use super::{
    DnsRecords, HeadlessEndpoint, PortProtocol, ServiceAddress, ServicePortName, answer::respond,
};

/// The shop: `web` (ClusterIP, ports `http` and an unnamed one), `db` (headless, three
/// endpoints: one named through its pod's hostname and subdomain, one with an endpoint
/// hostname, one unnamed), `empty` (headless, no endpoints), and `other` in `default`.
fn shop() -> DnsRecords {
    DnsRecords::builder("cluster.local")
        .add_service(
            "shop",
            "web",
            ServiceAddress::ClusterIp(Ipv4Addr::new(10, 96, 0, 20)),
            &[
                port("http", PortProtocol::Tcp, 80),
                port("", PortProtocol::Tcp, 8080),
            ],
        )
        .add_service(
            "shop",
            "db",
            ServiceAddress::Headless(vec![
                endpoint([10, 244, 1, 7], None),
                endpoint([10, 244, 2, 8], Some("db-1")),
                endpoint([10, 244, 1, 9], None),
            ]),
            &[port("pg", PortProtocol::Tcp, 5432)],
        )
        .add_service("shop", "empty", ServiceAddress::Headless(Vec::new()), &[])
        .add_service(
            "default",
            "other",
            ServiceAddress::ClusterIp(Ipv4Addr::new(10, 96, 0, 30)),
            &[port("dns", PortProtocol::Udp, 53)],
        )
        .add_pod(
            "shop",
            Ipv4Addr::new(10, 244, 1, 7),
            Some("db-0"),
            Some("db"),
        )
        .add_pod("shop", Ipv4Addr::new(10, 244, 2, 8), None, None)
        .add_pod("shop", Ipv4Addr::new(10, 244, 1, 9), Some("lonely"), None)
        .add_pod("shop", Ipv4Addr::new(10, 244, 3, 3), None, None)
        .add_pod("default", Ipv4Addr::new(10, 244, 1, 20), None, None)
        .build()
        .expect("valid cluster")
}

/// A Service port.
fn port(name: &str, protocol: PortProtocol, port: u16) -> ServicePortName {
    ServicePortName {
        name: name.to_owned(),
        protocol,
        port,
    }
}

/// A headless endpoint.
fn endpoint(ip: [u8; 4], hostname: Option<&str>) -> HeadlessEndpoint {
    HeadlessEndpoint {
        ip: Ipv4Addr::from(ip),
        hostname: hostname.map(str::to_owned),
    }
}

/// A fully qualified name, as queries carry on the wire.
fn fqdn(name: &str) -> Name {
    let mut name = Name::from_ascii(name).expect("name");
    name.set_fqdn(true);
    name
}

/// A recursive query for `name`, as glibc sends it.
fn query(name: &str, record_type: RecordType) -> Message {
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(fqdn(name), record_type));
    message
}

/// The response of `records` to a query for `name`.
fn ask(records: &DnsRecords, name: &str, record_type: RecordType) -> Message {
    respond(records, &query(name, record_type)).expect("a response")
}

/// The addresses in A records.
fn addresses(records: &[Record]) -> Vec<Ipv4Addr> {
    records
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(A(ip)) => Some(*ip),
            _ => None,
        })
        .collect()
}

/// The SOA record's owner, and its minimum TTL, of a negative answer.
fn soa_of(response: &Message) -> (String, u32) {
    let [record] = response.authorities.as_slice() else {
        panic!("expected one SOA in authority: {:?}", response.authorities);
    };
    let RData::SOA(soa) = &record.data else {
        panic!("authority is not a SOA: {record:?}");
    };
    (record.name.to_ascii(), soa.minimum)
}

/// Asserts a positive, authoritative answer with nothing in authority.
fn assert_answered(response: &Message) {
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert!(response.metadata.authoritative, "AA must be set");
    assert!(response.authorities.is_empty());
    assert!(!response.answers.is_empty(), "no answer: {response:?}");
}

/// Asserts NODATA: NOERROR, no answer, the zone's SOA in authority.
fn assert_no_data(response: &Message, zone: &str) {
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert!(response.metadata.authoritative);
    assert!(response.answers.is_empty(), "{:?}", response.answers);
    assert_eq!(soa_of(response), (zone.to_owned(), 5));
}

/// Asserts an authoritative NXDOMAIN with the zone's SOA in authority.
fn assert_no_such_name(response: &Message, zone: &str) {
    assert_eq!(response.metadata.response_code, ResponseCode::NXDomain);
    assert!(response.metadata.authoritative);
    assert!(response.answers.is_empty());
    assert_eq!(soa_of(response), (zone.to_owned(), 5));
}

#[test]
fn cluster_ip_service_resolves_to_its_cluster_ip() {
    let response = ask(&shop(), "web.shop.svc.cluster.local.", RecordType::A);
    assert_answered(&response);
    assert_eq!(addresses(&response.answers), [Ipv4Addr::new(10, 96, 0, 20)]);
    assert_eq!(response.answers[0].ttl, 5);
    assert!(response.metadata.recursion_desired, "RD is copied");
    assert!(
        !response.metadata.recursion_available,
        "no upstream to recurse to"
    );
    assert_eq!(response.queries.len(), 1, "the question is echoed");
}

#[test]
fn names_match_in_any_case_and_answers_keep_the_askers_spelling() {
    let response = ask(&shop(), "WeB.SHOP.svc.Cluster.LOCAL.", RecordType::A);
    assert_answered(&response);
    assert_eq!(addresses(&response.answers), [Ipv4Addr::new(10, 96, 0, 20)]);
    assert_eq!(
        response.answers[0].name.to_ascii(),
        "WeB.SHOP.svc.Cluster.LOCAL."
    );
}

#[test]
fn service_in_another_namespace_resolves() {
    let response = ask(&shop(), "other.default.svc.cluster.local.", RecordType::A);
    assert_answered(&response);
    assert_eq!(addresses(&response.answers), [Ipv4Addr::new(10, 96, 0, 30)]);
}

#[test]
fn headless_service_resolves_to_every_ready_endpoint() {
    let response = ask(&shop(), "db.shop.svc.cluster.local.", RecordType::A);
    assert_answered(&response);
    assert_eq!(
        addresses(&response.answers),
        [
            Ipv4Addr::new(10, 244, 1, 7),
            Ipv4Addr::new(10, 244, 2, 8),
            Ipv4Addr::new(10, 244, 1, 9)
        ]
    );
}

#[test]
fn headless_endpoints_are_named_by_hostname_pod_hostname_or_dashed_ip() {
    let records = shop();
    for (name, ip) in [
        ("db-0.db.shop.svc.cluster.local.", [10, 244, 1, 7]),
        ("db-1.db.shop.svc.cluster.local.", [10, 244, 2, 8]),
        ("10-244-1-9.db.shop.svc.cluster.local.", [10, 244, 1, 9]),
    ] {
        let response = ask(&records, name, RecordType::A);
        assert_answered(&response);
        assert_eq!(addresses(&response.answers), [Ipv4Addr::from(ip)], "{name}");
    }
    // A pod's hostname names it only under the Service its subdomain names, and an endpoint
    // with a name is not also known by its dashed IP.
    for name in [
        "lonely.db.shop.svc.cluster.local.",
        "10-244-1-7.db.shop.svc.cluster.local.",
    ] {
        assert_no_such_name(&ask(&records, name, RecordType::A), "cluster.local.");
    }
}

#[test]
fn headless_service_without_endpoints_exists_with_no_address() {
    let response = ask(&shop(), "empty.shop.svc.cluster.local.", RecordType::A);
    assert_no_data(&response, "cluster.local.");
}

#[test]
fn named_port_of_a_cluster_ip_service_has_an_srv_record_to_the_service() {
    let response = ask(
        &shop(),
        "_http._tcp.web.shop.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_answered(&response);
    let [record] = response.answers.as_slice() else {
        panic!("one SRV expected: {:?}", response.answers);
    };
    let RData::SRV(srv) = &record.data else {
        panic!("not SRV: {record:?}");
    };
    assert_eq!(
        (srv.priority, srv.weight, srv.port, srv.target.to_ascii()),
        (0, 100, 80, "web.shop.svc.cluster.local.".to_owned())
    );
    assert_eq!(
        addresses(&response.additionals),
        [Ipv4Addr::new(10, 96, 0, 20)],
        "the target's address is in the additional section"
    );
}

#[test]
fn named_port_of_a_headless_service_has_an_srv_record_per_endpoint() {
    let response = ask(
        &shop(),
        "_PG._tcp.db.shop.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_answered(&response);
    let targets: Vec<(u16, u16, String)> = response
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::SRV(srv) => Some((srv.weight, srv.port, srv.target.to_ascii())),
            _ => None,
        })
        .collect();
    assert_eq!(
        targets,
        [
            (33, 5432, "db-0.db.shop.svc.cluster.local.".to_owned()),
            (33, 5432, "db-1.db.shop.svc.cluster.local.".to_owned()),
            (33, 5432, "10-244-1-9.db.shop.svc.cluster.local.".to_owned()),
        ]
    );
    assert_eq!(addresses(&response.additionals).len(), 3);
}

#[test]
fn srv_names_need_the_right_port_name_and_protocol() {
    let records = shop();
    for name in [
        "_http._udp.web.shop.svc.cluster.local.",
        "_https._tcp.web.shop.svc.cluster.local.",
        "_dns._tcp.other.default.svc.cluster.local.",
    ] {
        assert_no_such_name(&ask(&records, name, RecordType::SRV), "cluster.local.");
    }
    let response = ask(
        &records,
        "_dns._udp.other.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_answered(&response);
}

#[test]
fn pod_names_resolve_only_in_the_pods_namespace() {
    let records = shop();
    let response = ask(
        &records,
        "10-244-3-3.shop.pod.cluster.local.",
        RecordType::A,
    );
    assert_answered(&response);
    assert_eq!(addresses(&response.answers), [Ipv4Addr::new(10, 244, 3, 3)]);
    for name in [
        "10-244-3-3.default.pod.cluster.local.",
        "10-244-9-9.shop.pod.cluster.local.",
    ] {
        assert_no_such_name(&ask(&records, name, RecordType::A), "cluster.local.");
    }
}

#[test]
fn reverse_lookups_name_cluster_ips_endpoints_and_pods() {
    let records = shop();
    for (name, target) in [
        ("20.0.96.10.in-addr.arpa.", "web.shop.svc.cluster.local."),
        (
            "7.1.244.10.in-addr.arpa.",
            "db-0.db.shop.svc.cluster.local.",
        ),
        (
            "3.3.244.10.in-addr.arpa.",
            "10-244-3-3.shop.pod.cluster.local.",
        ),
        (
            "20.1.244.10.IN-ADDR.ARPA.",
            "10-244-1-20.default.pod.cluster.local.",
        ),
    ] {
        let response = ask(&records, name, RecordType::PTR);
        assert_answered(&response);
        let pointers: Vec<String> = response
            .answers
            .iter()
            .filter_map(|record| match &record.data {
                RData::PTR(ptr) => Some(ptr.0.to_ascii()),
                _ => None,
            })
            .collect();
        assert_eq!(pointers, [target], "{name}");
    }
    assert_no_such_name(
        &ask(&records, "9.9.9.9.in-addr.arpa.", RecordType::PTR),
        "in-addr.arpa.",
    );
}

#[test]
fn existing_name_asked_for_another_type_is_nodata_with_the_soa() {
    let records = shop();
    assert_no_data(
        &ask(&records, "web.shop.svc.cluster.local.", RecordType::AAAA),
        "cluster.local.",
    );
    assert_no_data(
        &ask(&records, "20.0.96.10.in-addr.arpa.", RecordType::A),
        "in-addr.arpa.",
    );
}

#[test]
fn names_above_existing_names_are_nodata() {
    let records = shop();
    for name in [
        "shop.svc.cluster.local.",
        "svc.cluster.local.",
        "_tcp.web.shop.svc.cluster.local.",
        "shop.pod.cluster.local.",
    ] {
        assert_no_data(&ask(&records, name, RecordType::A), "cluster.local.");
    }
}

#[test]
fn unknown_name_in_the_cluster_domain_is_nxdomain_with_the_soa() {
    let records = shop();
    for name in [
        "nosuch.shop.svc.cluster.local.",
        "web.shop.svc.cluster.local.shop.svc.cluster.local.",
        "web.cluster.local.",
        "nosuch.svc.cluster.local.",
    ] {
        assert_no_such_name(&ask(&records, name, RecordType::A), "cluster.local.");
    }
}

#[test]
fn names_outside_the_cluster_domain_are_nxdomain_without_authority() {
    let records = shop();
    for name in ["example.com.", "web.", "cluster.local.example.com."] {
        let response = ask(&records, name, RecordType::A);
        assert_eq!(response.metadata.response_code, ResponseCode::NXDomain);
        assert!(!response.metadata.authoritative, "{name}: not our zone");
        assert!(response.answers.is_empty() && response.authorities.is_empty());
    }
}

#[test]
fn zone_apex_answers_its_soa() {
    let response = ask(&shop(), "Cluster.Local.", RecordType::SOA);
    assert_answered(&response);
    let [record] = response.answers.as_slice() else {
        panic!("one SOA expected: {:?}", response.answers);
    };
    let RData::SOA(soa) = &record.data else {
        panic!("not a SOA: {record:?}");
    };
    assert_eq!(soa.mname.to_ascii(), "ns.dns.cluster.local.");
    assert_eq!(soa.rname.to_ascii(), "hostmaster.cluster.local.");
    assert_eq!(record.name.to_ascii(), "Cluster.Local.");
}

#[test]
fn any_returns_every_record_at_the_name() {
    let response = ask(&shop(), "web.shop.svc.cluster.local.", RecordType::ANY);
    assert_answered(&response);
    assert_eq!(addresses(&response.answers), [Ipv4Addr::new(10, 96, 0, 20)]);
}

#[test]
fn another_cluster_domain_is_served_instead_of_cluster_local() {
    let records = DnsRecords::builder("Lab.Internal.")
        .add_service(
            "shop",
            "web",
            ServiceAddress::ClusterIp(Ipv4Addr::new(10, 96, 0, 99)),
            &[],
        )
        .build()
        .expect("valid");
    let response = ask(&records, "web.shop.svc.lab.internal.", RecordType::A);
    assert_answered(&response);
    assert_eq!(addresses(&response.answers), [Ipv4Addr::new(10, 96, 0, 99)]);
    let response = ask(&records, "web.shop.svc.cluster.local.", RecordType::A);
    assert_eq!(response.metadata.response_code, ResponseCode::NXDomain);
    assert!(
        !response.metadata.authoritative,
        "cluster.local is not ours"
    );
}
