use super::*;

fn raw() -> RawOptions {
    RawOptions::default()
}

fn errors(raw: RawOptions) -> Vec<OptionError> {
    match raw.parse() {
        Ok(options) => panic!("expected errors, got {options:?}"),
        Err(InvalidOptions(errors)) => errors,
    }
}

fn cidr(text: &str) -> Cidr {
    Cidr::parse(text).unwrap()
}

#[test]
fn defaults_parse_to_default_options() {
    assert_eq!(raw().parse().unwrap(), Options::default());
    let options = Options::default();
    assert_eq!(options.inbound_ports, Selection::All);
    assert_eq!(options.exclude_inbound_ports, vec![15021, 15090]);
    assert_eq!(options.include_outbound_cidrs, Selection::All);
    assert_eq!((options.proxy_uid, options.proxy_gid), (1337, 1337));
    assert_eq!(
        (options.outbound_capture_port, options.inbound_capture_port),
        (15001, 15006)
    );
}

#[test]
fn lists_are_trimmed_deduplicated_and_keep_their_order() {
    let options = RawOptions {
        inbound_ports: " 8080, 9090,8080,".into(),
        exclude_inbound_ports: "22,15021".into(),
        exclude_outbound_ports: "5432 , 6379".into(),
        ..raw()
    }
    .parse()
    .unwrap();
    assert_eq!(options.inbound_ports, Selection::Only(vec![8080, 9090]));
    assert_eq!(options.exclude_inbound_ports, vec![15021, 15090, 22]);
    assert_eq!(options.exclude_outbound_ports, vec![5432, 6379]);
}

#[test]
fn empty_lists_mean_none() {
    let options = RawOptions {
        inbound_ports: String::new(),
        include_outbound_cidrs: " ".into(),
        ..raw()
    }
    .parse()
    .unwrap();
    assert_eq!(options.inbound_ports, Selection::Only(vec![]));
    assert_eq!(options.include_outbound_cidrs, Selection::Only(vec![]));
}

#[test]
fn cidrs_are_normalised_like_iptables_save() {
    assert_eq!(cidr("10.1.2.3/8").to_string(), "10.0.0.0/8");
    assert_eq!(cidr("192.168.0.7").to_string(), "192.168.0.7/32");
    assert_eq!(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
    assert_eq!(cidr("FD00:0:0::1/8").to_string(), "fd00::/8");
    assert_eq!(cidr("2001:db8::1").to_string(), "2001:db8::1/128");
    assert!(cidr("::/0").is_ipv6());
}

#[test]
fn bad_port_names_the_value_flag_and_variable() {
    let found = errors(RawOptions {
        inbound_ports: "80,http,0,70000".into(),
        ..raw()
    });
    let values: Vec<&str> = found.iter().map(|e| e.value.as_str()).collect();
    assert_eq!(values, ["http", "0", "70000"]);
    assert!(found.iter().all(|e| e.setting == INBOUND_PORTS));
    assert_eq!(
        found[0].to_string(),
        r#"--inbound-ports (MESH_INBOUND_PORTS): "http" is not a port (1-65535)"#
    );
}

#[test]
fn wildcard_only_alone() {
    let found = errors(RawOptions {
        inbound_ports: "*,80".into(),
        ..raw()
    });
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].value, "*");
    assert!(
        found[0].reason.contains("only allowed alone"),
        "{}",
        found[0]
    );
}

#[test]
fn bad_cidrs_name_the_value() {
    let found = errors(RawOptions {
        exclude_outbound_cidrs: "10.0.0.0/8,10.0.0.0/33,example.com".into(),
        include_outbound_cidrs: "fd00::/129".into(),
        ..raw()
    });
    let summary: Vec<(&str, &str)> = found
        .iter()
        .map(|e| (e.setting.env, e.value.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("MESH_EXCLUDE_OUTBOUND_CIDRS", "10.0.0.0/33"),
            ("MESH_EXCLUDE_OUTBOUND_CIDRS", "example.com"),
            ("MESH_INCLUDE_OUTBOUND_CIDRS", "fd00::/129"),
        ]
    );
    assert!(found[0].reason.contains("0-32"), "{}", found[0]);
    assert!(
        found[1].reason.contains("not an IP address or CIDR"),
        "{}",
        found[1]
    );
    assert!(found[2].reason.contains("0-128"), "{}", found[2]);
}

#[test]
fn capture_ports_must_be_set_and_differ() {
    let found = errors(RawOptions {
        outbound_capture_port: 0,
        ..raw()
    });
    assert_eq!(found[0].setting, OUTBOUND_PORT_SETTING);
    let found = errors(RawOptions {
        outbound_capture_port: 15006,
        ..raw()
    });
    assert_eq!(found[0].setting, INBOUND_PORT_SETTING);
    assert!(
        found[0].to_string().contains("--outbound-capture-port"),
        "{}",
        found[0]
    );
}

#[test]
fn every_bad_value_is_reported_at_once() {
    let error = RawOptions {
        inbound_ports: "x".into(),
        exclude_inbound_ports: "y".into(),
        exclude_outbound_ports: "z".into(),
        exclude_outbound_cidrs: "w".into(),
        ..raw()
    }
    .parse()
    .unwrap_err();
    assert_eq!(error.0.len(), 4);
    let text = error.to_string();
    assert!(
        text.starts_with("invalid options:\n  --inbound-ports"),
        "{text}"
    );
    for env in [
        "MESH_INBOUND_PORTS",
        "MESH_EXCLUDE_INBOUND_PORTS",
        "MESH_EXCLUDE_OUTBOUND_PORTS",
        "MESH_EXCLUDE_OUTBOUND_CIDRS",
    ] {
        assert!(text.contains(env), "{env} missing from {text}");
    }
}
