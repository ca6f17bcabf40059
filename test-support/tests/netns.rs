//! Network namespaces for tests: made with loopback up, commands and code run inside, and
//! gone after drop. Needs root and `ip`: skipped on a laptop, a failure in CI.

use std::net::{TcpListener, TcpStream};

use mesh_test_support::{netns::TestNetns, require_root};

/// Whether `netns` is listed by `ip netns`.
fn listed(name: &str) -> bool {
    mesh_test_support::netns::run("ip", &["netns", "list"])
        .lines()
        .any(|line| line.split_whitespace().next() == Some(name))
}

#[test]
fn a_namespace_runs_commands_and_code_inside_and_is_removed_on_drop() {
    if !require_root("a_namespace_runs_commands_and_code_inside", &["ip"]) {
        return;
    }
    let netns = TestNetns::create("support");
    let other = TestNetns::create("support");
    assert_ne!(netns.name(), other.name(), "one tag, two namespaces");
    assert!(
        netns.name().starts_with("mtest-support-"),
        "{}",
        netns.name()
    );
    assert!(listed(netns.name()));

    netns.ip(&["addr", "add", "10.123.0.1/32", "dev", "lo"]);
    let addresses = netns.exec(&["ip", "-4", "-o", "addr", "show", "dev", "lo"]);
    assert!(addresses.contains("10.123.0.1/32"), "{addresses}");
    let output = netns
        .command("ip")
        .args(["link", "show", "lo"])
        .output()
        .expect("run ip");
    assert!(String::from_utf8_lossy(&output.stdout).contains("UP"));

    // A listener made inside is reached from inside, not from the other namespace.
    let listener = netns.enter(|| TcpListener::bind("10.123.0.1:0").expect("bind inside"));
    let addr = listener.local_addr().expect("addr");
    let answer = netns.spawn(move || TcpStream::connect(addr).map(|_| ()));
    answer.join().expect("thread").expect("connects inside");
    let outside = other.enter(|| TcpStream::connect(addr));
    assert!(outside.is_err(), "reached {addr} from another namespace");

    // A panic inside is the caller's.
    let panic = std::panic::catch_unwind(|| netns.enter(|| panic!("inside")));
    assert_eq!(panic.expect_err("panics").downcast_ref(), Some(&"inside"));

    let name = netns.name().to_owned();
    drop(netns);
    assert!(!listed(&name), "{name} is still there after drop");
}
