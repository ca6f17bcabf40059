//! Privileged: real traffic through the applied rules. A pod namespace (10.0.0.2, fd00::1)
//! wired by veth to a peer namespace that owns the "Service VIP" 10.96.0.10 and fd00::99; the
//! proxy's listeners are test sockets bound inside the pod. Every assertion is on where a
//! connection landed: a connection can land in one place only.

mod common;

use std::net::{IpAddr, SocketAddr};

use common::{Pod, landed, nothing_on, original_dst_v4, original_dst_v6, privileged};

/// A pod with `mesh-init` applied (both families, auto backend) plus `extra` flags.
fn meshed_pod(test: &str, extra: &[&str]) -> Option<Pod> {
    if !privileged(test) {
        return None;
    }
    let pod = Pod::new(test);
    let mut args = vec!["--ipv6", "on"];
    args.extend_from_slice(extra);
    pod.pod.mesh_init_ok(&args);
    Some(pod)
}

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("socket address")
}

fn pod_ip() -> IpAddr {
    Pod::IP.parse().expect("pod ip")
}

#[test]
fn ipv4_outbound_lands_on_15001_with_its_original_destination() {
    let Some(pod) = meshed_pod(
        "ipv4_outbound_lands_on_15001_with_its_original_destination",
        &[],
    ) else {
        return;
    };
    let outbound = pod.pod.listen("0.0.0.0:15001");
    let client = pod.pod.connect("10.96.0.10:80");
    let conn = landed(&outbound, "app to the VIP");
    assert_eq!(original_dst_v4(&conn), addr("10.96.0.10:80"));
    assert_eq!(conn.peer_addr().ok(), client.local_addr().ok());
}

#[test]
fn ipv6_outbound_lands_on_15001_with_its_original_destination() {
    let Some(pod) = meshed_pod(
        "ipv6_outbound_lands_on_15001_with_its_original_destination",
        &[],
    ) else {
        return;
    };
    let outbound = pod.pod.listen("[::]:15001");
    let client = pod.pod.connect("[fd00::99]:80");
    let conn = landed(&outbound, "app to the IPv6 VIP");
    assert_eq!(original_dst_v6(&conn), addr("[fd00::99]:80"));
    assert_eq!(conn.peer_addr().ok(), client.local_addr().ok());
}

#[test]
fn the_proxys_own_outbound_traffic_is_not_captured() {
    let Some(pod) = meshed_pod("the_proxys_own_outbound_traffic_is_not_captured", &[]) else {
        return;
    };
    let outbound = pod.pod.listen("0.0.0.0:15001");
    let vip = pod.peer.listen("10.96.0.10:80");
    pod.pod.connect_as_proxy(Pod::VIP, 80);
    let conn = landed(&vip, "uid 1337 to the VIP");
    assert_eq!(conn.peer_addr().expect("peer").ip(), pod_ip());
    nothing_on(&outbound, "uid 1337 to the VIP");
}

#[test]
fn calls_to_localhost_are_not_captured() {
    let Some(pod) = meshed_pod("calls_to_localhost_are_not_captured", &[]) else {
        return;
    };
    let outbound = pod.pod.listen("0.0.0.0:15001");
    let inbound = pod.pod.listen("0.0.0.0:15006");
    let app = pod.pod.listen("127.0.0.1:8080");
    let app6 = pod.pod.listen("[::1]:8080");
    let _app_client = pod.pod.connect("127.0.0.1:8080");
    landed(&app, "app to 127.0.0.1");
    pod.pod.connect_as_proxy("127.0.0.1", 8080);
    landed(&app, "uid 1337 to 127.0.0.1");
    pod.pod.connect_as_proxy("::1", 8080);
    landed(&app6, "uid 1337 to ::1");
    nothing_on(&outbound, "calls to localhost");
    nothing_on(&inbound, "calls to localhost");
}

#[test]
fn the_proxy_calling_its_own_pod_ip_is_inbound_the_app_is_not_captured() {
    let Some(pod) = meshed_pod(
        "the_proxy_calling_its_own_pod_ip_is_inbound_the_app_is_not_captured",
        &[],
    ) else {
        return;
    };
    let inbound = pod.pod.listen("0.0.0.0:15006");
    let outbound = pod.pod.listen("0.0.0.0:15001");
    let app = pod.pod.listen("10.0.0.2:8080");
    pod.pod.connect_as_proxy(Pod::IP, 8080);
    let conn = landed(&inbound, "uid 1337 to its own pod IP");
    assert_eq!(original_dst_v4(&conn), addr("10.0.0.2:8080"));
    let client = pod.pod.connect("10.0.0.2:8080");
    let conn = landed(&app, "app to its own pod IP");
    assert_eq!(conn.peer_addr().ok(), client.local_addr().ok());
    nothing_on(&inbound, "app to its own pod IP");
    nothing_on(&outbound, "calls to the pod's own IP");
}

#[test]
fn the_inbound_proxy_delivering_from_127_0_0_6_reaches_the_app() {
    let Some(pod) = meshed_pod(
        "the_inbound_proxy_delivering_from_127_0_0_6_reaches_the_app",
        &[],
    ) else {
        return;
    };
    let inbound = pod.pod.listen("0.0.0.0:15006");
    let app = pod.pod.listen("10.0.0.2:8080");
    // curl binds 127.0.0.6 as source, like the inbound proxy; its exit status is irrelevant
    // (the test accepts and drops the connection), only where the connection lands counts.
    let curl = "timeout 10 curl -s -m 5 --interface 127.0.0.6 http://10.0.0.2:8080/";
    let args = [
        "setpriv",
        "--reuid",
        "1337",
        "--regid",
        "1337",
        "--clear-groups",
        "bash",
        "-c",
    ];
    let mut all = args.to_vec();
    all.push(curl);
    std::thread::scope(|scope| {
        let child = scope.spawn(|| pod.pod.exec(&all));
        let conn = landed(&app, "uid 1337 from 127.0.0.6 to the pod IP");
        assert_eq!(
            conn.peer_addr().expect("peer").ip(),
            addr("127.0.0.6:0").ip()
        );
        drop(conn);
        child.join().expect("curl thread");
    });
    nothing_on(&inbound, "uid 1337 from 127.0.0.6 to the pod IP");
}

#[test]
fn inbound_lands_on_15006_except_the_proxys_health_port() {
    let Some(pod) = meshed_pod("inbound_lands_on_15006_except_the_proxys_health_port", &[]) else {
        return;
    };
    let inbound = pod.pod.listen("0.0.0.0:15006");
    let health = pod.pod.listen("0.0.0.0:15021");
    let client = pod.peer.connect("10.0.0.2:8080");
    let conn = landed(&inbound, "peer to the pod's port 8080");
    assert_eq!(original_dst_v4(&conn), addr("10.0.0.2:8080"));
    assert_eq!(conn.peer_addr().ok(), client.local_addr().ok());
    let _probe = pod.peer.connect("10.0.0.2:15021");
    landed(&health, "peer to the health port");
    nothing_on(&inbound, "peer to the health port");
}

#[test]
fn an_excluded_outbound_port_is_not_captured() {
    let Some(pod) = meshed_pod(
        "an_excluded_outbound_port_is_not_captured",
        &["--exclude-outbound-ports", "5432"],
    ) else {
        return;
    };
    let outbound = pod.pod.listen("0.0.0.0:15001");
    let database = pod.peer.listen("10.96.0.10:5432");
    let client = pod.pod.connect("10.96.0.10:5432");
    let conn = landed(&database, "app to an excluded port");
    assert_eq!(conn.peer_addr().ok(), client.local_addr().ok());
    nothing_on(&outbound, "app to an excluded port");
    let _other = pod.pod.connect("10.96.0.10:80");
    let conn = landed(&outbound, "app to a port that is not excluded");
    assert_eq!(original_dst_v4(&conn), addr("10.96.0.10:80"));
}

#[test]
fn an_excluded_outbound_cidr_is_not_captured() {
    let Some(pod) = meshed_pod(
        "an_excluded_outbound_cidr_is_not_captured",
        &["--exclude-outbound-cidrs", "10.96.0.0/16"],
    ) else {
        return;
    };
    let outbound = pod.pod.listen("[::]:15001");
    let vip = pod.peer.listen("10.96.0.10:80");
    let _client = pod.pod.connect("10.96.0.10:80");
    landed(&vip, "app to an excluded CIDR");
    let _client6 = pod.pod.connect("[fd00::99]:80");
    let conn = landed(&outbound, "app to IPv6, not excluded");
    assert_eq!(original_dst_v6(&conn), addr("[fd00::99]:80"));
}
