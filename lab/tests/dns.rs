//! The cluster DNS server over real sockets: on loopback, and inside a network namespace where
//! glibc's own resolver walks the pod's search list against it.

#[path = "dns/client.rs"]
mod client;
#[path = "dns/netns.rs"]
mod netns;

use std::{
    collections::BTreeSet,
    net::{Ipv4Addr, SocketAddr},
    time::Duration,
};

use hickory_proto::{
    op::{Message, ResponseCode},
    rr::{RData, RecordType, rdata::A},
};
use mesh_lab::dns::{
    ClusterDns, DnsRecords, HeadlessEndpoint, PortProtocol, ServiceAddress, ServicePortName,
    resolv_conf,
};
use mesh_test_support::netns::TestNetns;
use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream, UdpSocket},
    task::JoinHandle,
    time::Instant,
};

use client::{ask_on, ask_tcp, ask_udp, question, receive_tcp, receive_udp, send_frame};
use netns::{NetnsResolvConf, bind, require_root_tools};

/// The cluster DNS Service's address.
const DNS_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

/// `web` (ClusterIP) and `db` (headless, 3 endpoints, `db-0` named) in `shop`, `other` in
/// `default`, and `big` in `shop`: headless with 100 endpoints, too many for 512 bytes.
fn cluster() -> DnsRecords {
    let big: Vec<HeadlessEndpoint> = (1..=100)
        .map(|i| HeadlessEndpoint {
            ip: Ipv4Addr::new(10, 244, 5, i),
            hostname: None,
        })
        .collect();
    DnsRecords::builder("cluster.local")
        .add_service(
            "shop",
            "web",
            ServiceAddress::ClusterIp(Ipv4Addr::new(10, 96, 0, 20)),
            &[ServicePortName {
                name: "http".to_owned(),
                protocol: PortProtocol::Tcp,
                port: 80,
            }],
        )
        .add_service(
            "shop",
            "db",
            ServiceAddress::Headless(
                [[10, 244, 1, 7], [10, 244, 2, 8], [10, 244, 1, 9]]
                    .into_iter()
                    .map(|ip| HeadlessEndpoint {
                        ip: Ipv4Addr::from(ip),
                        hostname: None,
                    })
                    .collect(),
            ),
            &[],
        )
        .add_pod(
            "shop",
            Ipv4Addr::new(10, 244, 1, 7),
            Some("db-0"),
            Some("db"),
        )
        .add_service("shop", "big", ServiceAddress::Headless(big), &[])
        .add_service(
            "default",
            "other",
            ServiceAddress::ClusterIp(Ipv4Addr::new(10, 96, 0, 30)),
            &[],
        )
        .build()
        .expect("valid cluster")
}

/// The addresses answered, in order.
fn addresses(response: &Message) -> Vec<Ipv4Addr> {
    response
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(A(ip)) => Some(*ip),
            _ => None,
        })
        .collect()
}

/// A server on loopback: UDP and TCP on ports of their own.
struct LoopbackDns {
    dns: ClusterDns,
    udp: SocketAddr,
    tcp: SocketAddr,
    task: JoinHandle<()>,
}

impl LoopbackDns {
    /// Serves `records` on 127.0.0.1.
    async fn start(records: DnsRecords) -> LoopbackDns {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind UDP");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind TCP");
        let udp = socket.local_addr().expect("UDP address");
        let tcp = listener.local_addr().expect("TCP address");
        let dns = ClusterDns::new(records);
        let task = tokio::spawn(dns.clone().serve(socket, listener));
        LoopbackDns {
            dns,
            udp,
            tcp,
            task,
        }
    }
}

impl Drop for LoopbackDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn answers_the_same_over_udp_and_tcp() {
    let server = LoopbackDns::start(cluster()).await;
    let request = question("web.shop.svc.cluster.local.", RecordType::A, None);
    for response in [
        ask_udp(server.udp, &request).await,
        ask_tcp(server.tcp, &request).await,
    ] {
        assert_eq!(response.metadata.response_code, ResponseCode::NoError);
        assert!(response.metadata.authoritative);
        assert_eq!(addresses(&response), [Ipv4Addr::new(10, 96, 0, 20)]);
    }

    let request = question(
        "_http._tcp.web.shop.svc.cluster.local.",
        RecordType::SRV,
        None,
    );
    let response = ask_udp(server.udp, &request).await;
    assert!(
        matches!(&response.answers[..], [record] if matches!(&record.data, RData::SRV(srv) if srv.port == 80)),
        "{:?}",
        response.answers
    );

    let request = question("nosuch.shop.svc.cluster.local.", RecordType::A, None);
    let response = ask_tcp(server.tcp, &request).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NXDomain);
}

#[tokio::test]
async fn a_truncated_udp_answer_is_complete_over_tcp() {
    let server = LoopbackDns::start(cluster()).await;
    let expected: Vec<Ipv4Addr> = (1..=100).map(|i| Ipv4Addr::new(10, 244, 5, i)).collect();

    let request = question("big.shop.svc.cluster.local.", RecordType::A, None);
    let truncated = ask_udp(server.udp, &request).await;
    assert!(
        truncated.metadata.truncation,
        "100 addresses do not fit 512 bytes"
    );
    assert!(truncated.answers.is_empty());

    let retried = ask_tcp(server.tcp, &request).await;
    assert!(!retried.metadata.truncation);
    assert_eq!(addresses(&retried), expected);

    let request = question("big.shop.svc.cluster.local.", RecordType::A, Some(4096));
    let response = ask_udp(server.udp, &request).await;
    assert!(!response.metadata.truncation, "fits the EDNS payload size");
    assert_eq!(addresses(&response), expected);
}

#[tokio::test]
async fn garbage_is_dropped_or_refused_and_the_next_query_answered() {
    let server = LoopbackDns::start(cluster()).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");

    // Too short for a header: dropped, so the first datagram back answers the next packet.
    socket
        .send_to(b"\xff\x00\x13", server.udp)
        .await
        .expect("send");
    // A query header with a name that runs off the end: FORMERR.
    let broken = b"\xbe\xef\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x09web";
    socket.send_to(broken, server.udp).await.expect("send");
    let response = receive_udp(&socket, 0xbeef).await;
    assert_eq!(response.metadata.response_code, ResponseCode::FormErr);

    let request = question("web.shop.svc.cluster.local.", RecordType::A, None);
    let packet = request.to_vec().expect("encode");
    socket.send_to(&packet, server.udp).await.expect("send");
    let response = receive_udp(&socket, request.metadata.id).await;
    assert_eq!(addresses(&response), [Ipv4Addr::new(10, 96, 0, 20)]);

    // Over TCP, a broken query gets FORMERR and the connection goes on.
    let mut stream = TcpStream::connect(server.tcp).await.expect("connect");
    send_frame(&mut stream, broken).await;
    let response = receive_tcp(&mut stream, 0xbeef).await;
    assert_eq!(response.metadata.response_code, ResponseCode::FormErr);
    let response = ask_on(&mut stream, &request).await;
    assert_eq!(addresses(&response), [Ipv4Addr::new(10, 96, 0, 20)]);
}

#[tokio::test]
async fn a_stalled_tcp_client_does_not_hold_up_anyone_else() {
    let server = LoopbackDns::start(cluster()).await;
    let mut stalled = TcpStream::connect(server.tcp).await.expect("connect");
    stalled.write_all(&[0]).await.expect("half a length prefix");
    let mut silent = TcpStream::connect(server.tcp).await.expect("connect");
    silent
        .write_all(&[0, 60, 1, 2])
        .await
        .expect("a few bytes of a query");

    let started = Instant::now();
    let request = question("other.default.svc.cluster.local.", RecordType::A, None);
    assert_eq!(
        addresses(&ask_udp(server.udp, &request).await),
        [Ipv4Addr::new(10, 96, 0, 30)]
    );
    assert_eq!(
        addresses(&ask_tcp(server.tcp, &request).await),
        [Ipv4Addr::new(10, 96, 0, 30)]
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "answered after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_update_is_seen_by_the_next_query() {
    let server = LoopbackDns::start(cluster()).await;
    let mut connection = TcpStream::connect(server.tcp).await.expect("connect");
    let request = question("api.shop.svc.cluster.local.", RecordType::A, None);
    assert_eq!(
        ask_udp(server.udp, &request).await.metadata.response_code,
        ResponseCode::NXDomain
    );
    assert_eq!(
        ask_on(&mut connection, &request)
            .await
            .metadata
            .response_code,
        ResponseCode::NXDomain
    );

    server.dns.update(
        DnsRecords::builder("cluster.local")
            .add_service(
                "shop",
                "api",
                ServiceAddress::ClusterIp(Ipv4Addr::new(10, 96, 0, 40)),
                &[],
            )
            .build()
            .expect("valid"),
    );

    let expected = [Ipv4Addr::new(10, 96, 0, 40)];
    assert_eq!(addresses(&ask_udp(server.udp, &request).await), expected);
    assert_eq!(
        addresses(&ask_on(&mut connection, &request).await),
        expected,
        "an open connection sees the update too"
    );
    let gone = question("web.shop.svc.cluster.local.", RecordType::A, None);
    assert_eq!(
        ask_udp(server.udp, &gone).await.metadata.response_code,
        ResponseCode::NXDomain
    );
}

/// What `getent ahostsv4 <name>` prints inside the namespace: success, the addresses, and how
/// long the lookup took.
async fn getent(netns: &TestNetns, name: &str) -> (bool, BTreeSet<Ipv4Addr>, Duration) {
    let started = Instant::now();
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new("ip")
            .args(["netns", "exec", netns.name(), "getent", "ahostsv4", name])
            .output(),
    )
    .await
    .expect("getent finished")
    .expect("run getent");
    let elapsed = started.elapsed();
    let addresses = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next()?.parse().ok())
        .collect();
    (output.status.success(), addresses, elapsed)
}

#[tokio::test]
async fn glibc_in_a_pod_netns_resolves_cluster_names_through_its_search_list() {
    if !require_root_tools(
        "glibc_in_a_pod_netns_resolves_cluster_names_through_its_search_list",
        &["ip", "getent"],
    ) {
        return;
    }
    let netns = TestNetns::create("dns");
    netns.exec(&[
        "ip",
        "addr",
        "add",
        &format!("{DNS_SERVICE_IP}/32"),
        "dev",
        "lo",
    ]);
    let (udp, tcp) = bind(&netns, SocketAddr::from((DNS_SERVICE_IP, 53)));
    let dns = ClusterDns::new(cluster());
    let server = tokio::spawn(dns.serve(
        UdpSocket::from_std(udp).expect("tokio UDP"),
        TcpListener::from_std(tcp).expect("tokio TCP"),
    ));
    let _resolv_conf = NetnsResolvConf::write(
        &netns,
        &resolv_conf("shop", "cluster.local", DNS_SERVICE_IP),
    );

    let db: BTreeSet<Ipv4Addr> = [[10, 244, 1, 7], [10, 244, 2, 8], [10, 244, 1, 9]]
        .into_iter()
        .map(Ipv4Addr::from)
        .collect();
    let big: BTreeSet<Ipv4Addr> = (1..=100).map(|i| Ipv4Addr::new(10, 244, 5, i)).collect();
    let cases: [(&str, BTreeSet<Ipv4Addr>); 7] = [
        ("web", [Ipv4Addr::new(10, 96, 0, 20)].into()),
        ("web.shop", [Ipv4Addr::new(10, 96, 0, 20)].into()),
        (
            "web.shop.svc.cluster.local",
            [Ipv4Addr::new(10, 96, 0, 20)].into(),
        ),
        ("other.default", [Ipv4Addr::new(10, 96, 0, 30)].into()),
        ("db", db),
        ("db-0.db", [Ipv4Addr::new(10, 244, 1, 7)].into()),
        // Too big for 512 bytes: glibc gets TC over UDP and asks again over TCP.
        ("big", big),
    ];
    for (name, expected) in cases {
        let (found, addresses, _) = getent(&netns, name).await;
        assert!(found, "getent ahostsv4 {name} failed");
        assert_eq!(addresses, expected, "{name}");
    }

    // Each search domain and then the bare name are answered NXDOMAIN at once, so a name
    // that does not exist fails in one round trip per try, far below glibc's 5 s timeout.
    for name in ["nosuch", "nosuch.shop", "example.com"] {
        let (found, addresses, elapsed) = getent(&netns, name).await;
        assert!(
            !found && addresses.is_empty(),
            "{name} resolved to {addresses:?}"
        );
        assert!(
            elapsed < Duration::from_secs(2),
            "{name} took {elapsed:?} to fail"
        );
    }
    server.abort();
}
