use super::*;
use crate::detect::test_util::{
    HelloBuilder, SNI, find, rustls_client_hello, rustls_client_hello_with_alpn,
};

fn tls(sni: Option<&str>) -> ClientHello {
    ClientHello::Tls {
        sni: sni.map(str::to_owned),
    }
}

/// Offsets into a [`HelloBuilder`] record.
const SESSION_ID_LEN_AT: usize = 43;
const CIPHER_SUITES_LEN_AT: usize = 44;
const COMPRESSION_LEN_AT: usize = 48;
const EXTENSIONS_LEN_AT: usize = 50;
/// The server_name list length, when server_name is the first extension.
const SERVER_NAME_LIST_LEN_AT: usize = 56;

/// Breaks a well-formed record in one place.
type Mutation = dyn Fn(&mut Vec<u8>);

fn set_u16(record: &mut [u8], at: usize, value: u16) {
    record[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

#[test]
fn real_client_hello_gives_its_sni() {
    let hello = rustls_client_hello(SNI);
    assert_eq!(parse_client_hello(&hello), tls(Some(SNI)));
    // Bytes after the first record do not matter.
    let mut more = hello.clone();
    more.extend_from_slice(b"\x17\x03\x03garbage");
    assert_eq!(parse_client_hello(&more), tls(Some(SNI)));
}

#[test]
fn real_client_hello_to_an_ip_has_no_sni() {
    let hello = rustls_client_hello("10.96.0.20");
    assert_eq!(parse_client_hello(&hello), tls(None));
}

#[test]
fn every_truncation_of_a_real_client_hello_needs_more() {
    let hello = rustls_client_hello(SNI);
    for end in 0..hello.len() {
        assert_eq!(
            parse_client_hello(&hello[..end]),
            ClientHello::NeedMore,
            "first {end} of {} bytes",
            hello.len()
        );
    }
}

#[test]
fn every_truncation_judged_at_the_end_is_tls_with_sni_once_it_is_read() {
    let hello = rustls_client_hello(SNI);
    let sni_end = find(&hello, SNI.as_bytes()).expect("the SNI is in the hello") + SNI.len();
    for end in 0..=hello.len() {
        let expected = match end {
            // Not even the handshake type yet: too little to call it TLS.
            0..=5 => ClientHello::NotTls,
            _ if end < sni_end => tls(None),
            _ => tls(Some(SNI)),
        };
        assert_eq!(
            parse_truncated_client_hello(&hello[..end]),
            expected,
            "first {end} bytes"
        );
    }
}

#[test]
fn host_names_are_lowercased_and_checked() {
    let parse = |name_type, name: &[u8]| {
        parse_client_hello(&HelloBuilder::new().server_name(name_type, name).build())
    };
    assert_eq!(parse(0, b"Web.Shop.SVC"), tls(Some("web.shop.svc")));
    assert_eq!(
        parse(0, b"my_host-1.example"),
        tls(Some("my_host-1.example"))
    );
    assert_eq!(parse(0, b""), tls(None));
    assert_eq!(parse(0, b"bad name"), tls(None));
    assert_eq!(parse(0, "caf\u{e9}.example".as_bytes()), tls(None));
    assert_eq!(parse(0, &[b'a'; 254]), tls(None));
    // Only host_name (type 0) is a server name.
    assert_eq!(parse(1, b"web"), tls(None));
    assert_eq!(parse_client_hello(&HelloBuilder::new().build()), tls(None));
}

#[test]
fn a_hello_spanning_records_is_judged_on_the_first() {
    let sni_first = HelloBuilder::new()
        .server_name(0, SNI.as_bytes())
        .padding(20_000)
        .build_records(MAX_RECORD_LEN);
    assert_eq!(parse_client_hello(&sni_first), tls(Some(SNI)));

    let sni_in_second = HelloBuilder::new()
        .padding(20_000)
        .server_name(0, SNI.as_bytes())
        .build_records(MAX_RECORD_LEN);
    assert_eq!(parse_client_hello(&sni_in_second), tls(None));

    // Even a first record holding only part of the handshake header.
    let tiny = HelloBuilder::new()
        .server_name(0, SNI.as_bytes())
        .build_records(2);
    assert_eq!(parse_client_hello(&tiny), tls(None));
}

#[test]
fn what_is_not_a_client_hello() {
    let good = HelloBuilder::new().server_name(0, b"web").build();
    assert_eq!(parse_client_hello(&good), tls(Some("web")));
    let mutated = |mutate: &Mutation| {
        let mut record = good.clone();
        mutate(&mut record);
        parse_client_hello(&record)
    };
    let cases: &[(&str, &Mutation)] = &[
        ("application data record", &|r| r[0] = 0x17),
        ("version 2", &|r| r[1] = 0x02),
        ("version 3.5", &|r| r[2] = 0x05),
        ("empty record", &|r| set_u16(r, 3, 0)),
        ("record over 2^14", &|r| set_u16(r, 3, 0x4001)),
        ("server hello", &|r| r[5] = 0x02),
        ("hello version 2.0", &|r| r[9] = 0x02),
        ("session id of 33", &|r| r[SESSION_ID_LEN_AT] = 33),
        ("odd cipher suites", &|r| {
            set_u16(r, CIPHER_SUITES_LEN_AT, 3)
        }),
        ("no compression method", &|r| r[COMPRESSION_LEN_AT] = 0),
        ("extensions overrun", &|r| {
            set_u16(r, EXTENSIONS_LEN_AT, 500)
        }),
        ("bytes after extensions", &|r| {
            set_u16(r, EXTENSIONS_LEN_AT, 4)
        }),
        ("name list overruns", &|r| {
            set_u16(r, SERVER_NAME_LIST_LEN_AT, 99)
        }),
        ("name list too short", &|r| {
            set_u16(r, SERVER_NAME_LIST_LEN_AT, 2)
        }),
        ("message shorter than record", &|r| r[8] -= 1),
    ];
    for (name, mutate) in cases {
        assert_eq!(mutated(mutate), ClientHello::NotTls, "{name}");
    }
    // Ruled out as soon as the bytes show it, before the record is complete.
    assert_eq!(parse_client_hello(b"\x17"), ClientHello::NotTls);
    assert_eq!(parse_client_hello(b"\x16\x02"), ClientHello::NotTls);
    assert_eq!(parse_client_hello(&good[..6]), ClientHello::NeedMore);
    assert_eq!(
        parse_client_hello(b"\x16\x03\x01\x00\x40\x02"),
        ClientHello::NotTls
    );
    // An SSL 2.0 compatible hello.
    assert_eq!(
        parse_client_hello(b"\x80\x2e\x01\x03\x01"),
        ClientHello::NotTls
    );
}

#[test]
fn alpn_protocols_are_read_from_a_real_client_hello() {
    let hello = rustls_client_hello_with_alpn(SNI, &[b"mesh/h2", b"http/1.1"]);
    assert_eq!(
        client_hello_alpn(&hello),
        [b"mesh/h2".to_vec(), b"http/1.1".to_vec()]
    );
    assert!(client_hello_alpn(&rustls_client_hello(SNI)).is_empty());
    assert!(client_hello_alpn(b"GET / HTTP/1.1\r\n").is_empty());
    // Cut short before the extension: nothing, and no panic.
    assert!(client_hello_alpn(&hello[..40]).is_empty());
}

/// Checks what holds for any input, and that nothing panics.
fn check_any(input: &[u8]) {
    assert!(client_hello_alpn(input).iter().all(|p| !p.is_empty()));
    for result in [
        parse_client_hello(input),
        parse_truncated_client_hello(input),
    ] {
        if let ClientHello::Tls { sni: Some(name) } = &result {
            assert!(!name.is_empty() && name.len() <= MAX_HOST_NAME_LEN);
            assert_eq!(*name, name.to_ascii_lowercase());
        }
    }
    assert_ne!(parse_truncated_client_hello(input), ClientHello::NeedMore);
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    for _ in 0..4_000 {
        let mut input = vec![0; rng.usize(2..700)];
        rng.fill(&mut input);
        input[0] = 0x16;
        input[1] = 0x03;
        check_any(&input);
    }
}

#[test]
fn random_bodies_behind_plausible_headers_never_panic() {
    let mut rng = fastrand::Rng::with_seed(0xc11e);
    let mut tls_seen = 0;
    for _ in 0..4_000 {
        let body_len = rng.usize(0..600);
        let mut body = vec![0; body_len];
        rng.fill(&mut body);
        // A valid record and handshake header, so parsing reaches the random body.
        let hs_len = u32::try_from(body_len + 2).expect("small");
        let record_len = u16::try_from(body_len + 6).expect("small");
        let mut input = vec![0x16, 0x03, 0x01];
        input.extend_from_slice(&record_len.to_be_bytes());
        input.push(0x01);
        input.extend_from_slice(&hs_len.to_be_bytes()[1..]);
        input.extend_from_slice(&[0x03, 0x03]);
        input.extend_from_slice(&body);
        check_any(&input);
        tls_seen += usize::from(matches!(
            parse_client_hello(&input),
            ClientHello::Tls { .. }
        ));
    }
    // Random bodies are almost never well formed.
    assert!(tls_seen < 100, "{tls_seen} random bodies taken for TLS");
}

#[test]
fn mutated_real_hellos_never_panic() {
    let hello = rustls_client_hello(SNI);
    let mut rng = fastrand::Rng::with_seed(0xbad5);
    for _ in 0..4_000 {
        let mut input = hello.clone();
        for _ in 0..rng.usize(1..=4) {
            let at = rng.usize(..input.len());
            input[at] = rng.u8(..);
        }
        input.truncate(rng.usize(..=input.len()));
        check_any(&input);
    }
}
