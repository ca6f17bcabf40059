//! Names that cannot be DNS names are refused, naming the object to fix.

use std::net::Ipv4Addr;

use crate::dns::{DnsRecords, DnsRecordsError, HeadlessEndpoint, ServiceAddress};

/// A ClusterIP address.
fn cluster_ip() -> ServiceAddress {
    ServiceAddress::ClusterIp(Ipv4Addr::new(10, 96, 0, 20))
}

#[test]
fn a_cluster_domain_that_is_not_a_dns_name_is_refused() {
    for domain in ["", ".", "cluster..local", "cluster_local", "-cluster.local"] {
        let error = DnsRecords::builder(domain)
            .build()
            .expect_err("invalid domain");
        assert!(
            matches!(&error, DnsRecordsError::ClusterDomain { domain: d, .. } if d == domain),
            "{domain:?}: {error}"
        );
    }
}

#[test]
fn a_service_name_that_is_not_a_label_names_the_service() {
    let error = DnsRecords::builder("cluster.local")
        .add_service("shop", "web_v2", cluster_ip(), &[])
        .build()
        .expect_err("underscore");
    assert_eq!(
        error,
        DnsRecordsError::Label {
            object: "service shop/web_v2".to_owned(),
            field: "name",
            value: "web_v2".to_owned(),
            reason: "it has a character other than a letter, digit or '-'",
        }
    );
    assert!(
        error
            .to_string()
            .starts_with("service shop/web_v2: name \"web_v2\"")
    );
}

#[test]
fn a_hostname_longer_than_a_label_names_the_pod() {
    let long = "h".repeat(64);
    let error = DnsRecords::builder("cluster.local")
        .add_pod(
            "shop",
            Ipv4Addr::new(10, 244, 1, 7),
            Some(&long),
            Some("db"),
        )
        .build()
        .expect_err("64 characters");
    assert!(
        matches!(&error, DnsRecordsError::Label { field: "hostname", object, .. }
            if object == "pod 10.244.1.7 in namespace \"shop\""),
        "{error}"
    );

    let error = DnsRecords::builder("cluster.local")
        .add_service(
            "shop",
            "db",
            ServiceAddress::Headless(vec![HeadlessEndpoint {
                ip: Ipv4Addr::new(10, 244, 1, 7),
                hostname: Some("db-".to_owned()),
            }]),
            &[],
        )
        .build()
        .expect_err("trailing dash");
    assert!(
        matches!(
            &error,
            DnsRecordsError::Label {
                field: "endpoint hostname",
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn a_name_longer_than_dns_allows_is_refused() {
    let label = "a".repeat(63);
    let domain = format!("{label}.{label}");
    let error = DnsRecords::builder(&domain)
        .add_service(&label, &label, cluster_ip(), &[])
        .build()
        .expect_err("over 255 bytes");
    assert!(
        matches!(&error, DnsRecordsError::Name { object, .. } if object.starts_with("service ")),
        "{error}"
    );
}

#[test]
fn upper_case_names_are_served_in_lower_case() {
    let records = DnsRecords::builder("cluster.local")
        .add_service("Shop", "Web", cluster_ip(), &[])
        .build()
        .expect("valid");
    let response = super::ask(
        &records,
        "web.shop.svc.cluster.local.",
        hickory_proto::rr::RecordType::A,
    );
    assert_eq!(
        super::addresses(&response.answers),
        [Ipv4Addr::new(10, 96, 0, 20)]
    );
}

#[test]
fn pods_claim_names_under_example_test_only() {
    let records = DnsRecords::builder("cluster.local")
        .add_external("API.example.test", Ipv4Addr::new(10, 244, 9, 9))
        .add_external("api.example.test.", Ipv4Addr::new(10, 244, 9, 8))
        .build()
        .expect("valid");
    let response = super::ask(
        &records,
        "api.example.test.",
        hickory_proto::rr::RecordType::A,
    );
    let mut found = super::addresses(&response.answers);
    found.sort();
    assert_eq!(
        found,
        [Ipv4Addr::new(10, 244, 9, 8), Ipv4Addr::new(10, 244, 9, 9)]
    );
    assert!(response.metadata.authoritative);
    let unknown = super::ask(
        &records,
        "db.example.test.",
        hickory_proto::rr::RecordType::A,
    );
    assert_eq!(
        unknown.metadata.response_code,
        hickory_proto::op::ResponseCode::NXDomain
    );

    for name in [
        "api.example.com",
        "example.test",
        "web.shop.svc.cluster.local",
    ] {
        let error = DnsRecords::builder("cluster.local")
            .add_external(name, Ipv4Addr::new(10, 244, 9, 9))
            .build()
            .expect_err("outside example.test");
        assert!(
            error.to_string().contains("only names under example.test."),
            "{name}: {error}"
        );
    }
}
