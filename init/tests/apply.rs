//! Privileged: the built `mesh-init` against real iptables, each test in a fresh network
//! namespace. Idempotence, exact cleanup, dry runs, backend detection, missing capability.

mod common;

use common::{Netns, describe, privileged};
use mesh_init::{Family, Options, RuleSet};

const FAMILIES: [(&str, Family); 2] = [("ipv4", Family::V4), ("ipv6", Family::V6)];

/// Both families' nat tables through one backend.
fn saved(ns: &Netns, backend: &str) -> Vec<String> {
    FAMILIES
        .iter()
        .map(|(family, _)| ns.saved_nat(backend, family))
        .collect()
}

fn appended(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("-A ")).collect()
}

fn apply_twice_is_identical(test: &str, backend: &str) {
    if !privileged(test) {
        return;
    }
    let ns = Netns::new(test);
    let other = if backend == "nft" { "legacy" } else { "nft" };
    let other_before = saved(&ns, other);
    ns.mesh_init_ok(&["--backend", backend, "--ipv6", "on"]);
    let first = saved(&ns, backend);
    ns.mesh_init_ok(&["--backend", backend, "--ipv6", "on"]);
    assert_eq!(first, saved(&ns, backend), "second apply changed the table");
    for ((_, family), table) in FAMILIES.iter().zip(&first) {
        // The kernel holds exactly the rendered rules, in order (they are in save form).
        let rendered = RuleSet::build(&Options::default(), *family).render();
        assert_eq!(
            appended(table),
            appended(&rendered),
            "{family} table:\n{table}"
        );
    }
    assert_eq!(
        other_before,
        saved(&ns, other),
        "the {other} backend was touched"
    );
}

#[test]
fn apply_twice_is_identical_nft() {
    apply_twice_is_identical("apply_twice_is_identical_nft", "nft");
}

#[test]
fn apply_twice_is_identical_legacy() {
    apply_twice_is_identical("apply_twice_is_identical_legacy", "legacy");
}

/// Someone else's rule, written in save form.
fn add_rule(ns: &Netns, tool: &str, rule: &str) {
    let mut args = vec![tool, "-w", "-t", "nat"];
    args.extend(rule.split(' '));
    ns.sh(&args);
}

fn cleanup_restores_the_table(test: &str, backend: &str) {
    if !privileged(test) {
        return;
    }
    let ns = Netns::new(test);
    let dnat = "-A OUTPUT -d 10.96.0.1/32 -p tcp -m tcp --dport 443 -j DNAT --to-destination 10.0.0.9:6443";
    let redirect = "-A PREROUTING -p tcp -m tcp --dport 8443 -j REDIRECT --to-ports 443";
    add_rule(&ns, &format!("iptables-{backend}"), dnat);
    add_rule(&ns, &format!("ip6tables-{backend}"), redirect);
    let before = saved(&ns, backend);

    ns.mesh_init_ok(&["--backend", backend, "--ipv6", "on"]);
    let applied = saved(&ns, backend);
    assert!(
        applied[0].contains(dnat) && applied[0].contains("-j MESH_OUTPUT"),
        "{}",
        applied[0]
    );
    assert!(
        applied[1].contains(redirect) && applied[1].contains("-j MESH_INBOUND"),
        "{}",
        applied[1]
    );

    ns.mesh_init_ok(&["--backend", backend, "--ipv6", "on", "--cleanup"]);
    assert_eq!(
        before,
        saved(&ns, backend),
        "cleanup left a different table"
    );
    ns.mesh_init_ok(&["--backend", backend, "--ipv6", "on", "--cleanup"]);
    assert_eq!(
        before,
        saved(&ns, backend),
        "a second cleanup changed the table"
    );
}

#[test]
fn cleanup_restores_the_table_nft() {
    cleanup_restores_the_table("cleanup_restores_the_table_nft", "nft");
}

#[test]
fn cleanup_restores_the_table_legacy() {
    cleanup_restores_the_table("cleanup_restores_the_table_legacy", "legacy");
}

#[test]
fn cleanup_of_a_fresh_namespace_creates_nothing() {
    if !privileged("cleanup_of_a_fresh_namespace_creates_nothing") {
        return;
    }
    let ns = Netns::new("cleanup_of_a_fresh_namespace_creates_nothing");
    for backend in ["legacy", "nft"] {
        let before = saved(&ns, backend);
        ns.mesh_init_ok(&["--backend", backend, "--ipv6", "on", "--cleanup"]);
        assert_eq!(before, saved(&ns, backend), "{backend}");
    }
}

/// Every table of both backends and families, compared whole.
fn everything(ns: &Netns) -> Vec<String> {
    ["legacy", "nft"]
        .iter()
        .flat_map(|b| saved(ns, b))
        .collect()
}

#[test]
fn dry_run_prints_the_restore_input_and_changes_nothing() {
    if !privileged("dry_run_prints_the_restore_input_and_changes_nothing") {
        return;
    }
    let ns = Netns::new("dry_run_prints_the_restore_input_and_changes_nothing");
    ns.sh(&[
        "iptables-nft",
        "-t",
        "nat",
        "-A",
        "OUTPUT",
        "-d",
        "192.0.2.1",
        "-j",
        "RETURN",
    ]);
    let before = everything(&ns);
    let printed = ns.mesh_init_ok(&["--dry-run", "--ipv6", "on"]);
    assert_eq!(before, everything(&ns), "--dry-run changed a table");
    let expected = format!(
        "# apply: iptables-nft-restore --noflush (IPv4, nft backend)\n{}\
         # apply: ip6tables-nft-restore --noflush (IPv6, nft backend)\n{}",
        RuleSet::build(&Options::default(), Family::V4).render(),
        RuleSet::build(&Options::default(), Family::V6).render(),
    );
    assert_eq!(printed, expected);

    // Once applied, the jumps exist: a dry run shows they would not be added again, and a
    // cleanup dry run shows their removal; neither changes anything.
    ns.mesh_init_ok(&["--ipv6", "on"]);
    let applied = everything(&ns);
    let printed = ns.mesh_init_ok(&["--dry-run", "--ipv6", "off"]);
    assert!(
        !printed.contains("-A PREROUTING") && !printed.contains("-A OUTPUT"),
        "{printed}"
    );
    let printed = ns.mesh_init_ok(&["--dry-run", "--cleanup", "--ipv6", "off"]);
    assert!(
        printed.contains("-D OUTPUT -p tcp -j MESH_OUTPUT\n"),
        "{printed}"
    );
    assert!(printed.contains("-X MESH_REDIRECT\n"), "{printed}");
    assert_eq!(applied, everything(&ns), "a dry run changed a table");
}

#[test]
fn auto_backend_follows_the_existing_rules() {
    if !privileged("auto_backend_follows_the_existing_rules") {
        return;
    }
    let legacy_host = Netns::new("auto_backend_follows_the_existing_rules-legacy");
    legacy_host.sh(&["iptables-legacy", "-w", "-A", "INPUT", "-j", "ACCEPT"]);
    legacy_host.mesh_init_ok(&["--ipv6", "off"]);
    assert!(
        legacy_host
            .saved_nat("legacy", "ipv4")
            .contains("-j MESH_OUTPUT")
    );
    assert!(!legacy_host.saved_nat("nft", "ipv4").contains("MESH_"));

    let fresh = Netns::new("auto_backend_follows_the_existing_rules-fresh");
    fresh.mesh_init_ok(&["--ipv6", "off"]);
    assert!(fresh.saved_nat("nft", "ipv4").contains("-j MESH_OUTPUT"));
    assert!(!fresh.saved_nat("legacy", "ipv4").contains("MESH_"));
}

#[test]
fn without_net_admin_the_error_says_what_to_do() {
    if !privileged("without_net_admin_the_error_says_what_to_do") {
        return;
    }
    let ns = Netns::new("without_net_admin_the_error_says_what_to_do");
    let bin = env!("CARGO_BIN_EXE_mesh-init");
    for backend in ["nft", "legacy"] {
        let drop_caps = [
            "setpriv",
            "--inh-caps=-all",
            "--bounding-set=-net_admin,-net_raw",
        ];
        let mut args = drop_caps.to_vec();
        args.extend([bin, "--backend", backend, "--ipv6", "off"]);
        let output = ns.exec(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{backend}: {}", describe(&output));
        assert!(
            stderr.contains(
                "needs CAP_NET_ADMIN; run as the init container with NET_ADMIN and NET_RAW"
            ),
            "{backend}: {stderr}"
        );
    }
    assert!(!ns.saved_nat("nft", "ipv4").contains("MESH_"));
}
