//! Golden tests of the rule text: each case's rendered `iptables-restore` input (for a table
//! without our rules) must equal `tests/golden/<case>.rules` exactly.
//! Regenerate with `UPDATE_GOLDEN=1 cargo nextest run -p mesh-init --test golden`, then review
//! the diff.

use std::fs;
use std::path::PathBuf;

use mesh_init::{Family, RawOptions, RuleSet};

fn check(case: &str, family: Family, raw: RawOptions) {
    let options = raw.parse().unwrap_or_else(|e| panic!("{case}: {e}"));
    let rendered = RuleSet::build(&options, family).render();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/{case}.rules"));
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        fs::write(&path, &rendered).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let expected = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    assert!(
        rendered == expected,
        "{case} differs from {}; run with UPDATE_GOLDEN=1 and review the diff\n\
         --- expected\n{expected}--- rendered\n{rendered}",
        path.display()
    );
}

fn defaults() -> RawOptions {
    RawOptions::default()
}

#[test]
fn defaults_ipv4() {
    check("defaults-ipv4", Family::V4, defaults());
}

#[test]
fn defaults_ipv6() {
    check("defaults-ipv6", Family::V6, defaults());
}

#[test]
fn inbound_port_list() {
    let raw = RawOptions {
        inbound_ports: "8080,9090,15021".into(),
        ..defaults()
    };
    check("inbound-ports-ipv4", Family::V4, raw);
}

#[test]
fn inbound_capture_disabled() {
    let raw = RawOptions {
        inbound_ports: String::new(),
        ..defaults()
    };
    check("no-inbound-ipv4", Family::V4, raw);
}

fn exclusions() -> RawOptions {
    RawOptions {
        exclude_inbound_ports: "22,8081".into(),
        exclude_outbound_ports: "5432".into(),
        exclude_outbound_cidrs: "169.254.169.254,10.1.2.3/16,fd00:abcd::/32".into(),
        ..defaults()
    }
}

#[test]
fn exclusions_ipv4() {
    check("exclusions-ipv4", Family::V4, exclusions());
}

#[test]
fn exclusions_ipv6() {
    check("exclusions-ipv6", Family::V6, exclusions());
}

fn include_cidrs() -> RawOptions {
    RawOptions {
        include_outbound_cidrs: "10.96.0.0/12,10.244.0.0/16,fd00:10:96::/112".into(),
        exclude_outbound_cidrs: "10.96.0.1".into(),
        ..defaults()
    }
}

#[test]
fn include_cidrs_ipv4() {
    check("include-cidrs-ipv4", Family::V4, include_cidrs());
}

#[test]
fn include_cidrs_ipv6() {
    check("include-cidrs-ipv6", Family::V6, include_cidrs());
}

#[test]
fn many_ports_split_into_multiport_groups() {
    let ports: Vec<String> = (8000..8017).map(|p| p.to_string()).collect();
    let raw = RawOptions {
        exclude_outbound_ports: ports.join(","),
        ..defaults()
    };
    check("many-ports-ipv4", Family::V4, raw);
}

#[test]
fn custom_proxy_identity_and_ports() {
    let raw = RawOptions {
        proxy_uid: 2000,
        proxy_gid: 3000,
        outbound_capture_port: 16001,
        inbound_capture_port: 16006,
        ..defaults()
    };
    check("custom-proxy-ipv6", Family::V6, raw);
}
