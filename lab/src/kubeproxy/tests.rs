//! Golden tests of the rendered restore input: each case must equal
//! `src/kubeproxy/golden/<case>.rules` exactly, and every rendering must be well-formed
//! restore input. Regenerate with `UPDATE_GOLDEN=1 cargo nextest run -p mesh-lab kubeproxy`,
//! then review the diff.

use std::collections::BTreeSet;
use std::fs;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::*;

const CONFIG: ProxierConfig = ProxierConfig {
    cluster_cidr: (Ipv4Addr::new(10, 244, 0, 0), 16),
};

fn endpoint(node: u8, pod: u8, port: u16) -> Endpoint {
    Endpoint {
        ip: Ipv4Addr::new(10, 244, node, pod),
        port,
    }
}

fn service_port(
    namespace: &str,
    service: &str,
    port_name: &str,
    cluster_ip: u8,
    port: u16,
) -> ServicePort {
    ServicePort {
        namespace: namespace.into(),
        service: service.into(),
        port_name: port_name.into(),
        protocol: Protocol::Tcp,
        cluster_ip: Ipv4Addr::new(10, 96, 0, cluster_ip),
        port,
        node_port: None,
        affinity_timeout: None,
        endpoints: Vec::new(),
    }
}

fn web() -> ServicePort {
    ServicePort {
        endpoints: vec![
            endpoint(1, 2, 8080),
            endpoint(1, 3, 8080),
            endpoint(2, 2, 8080),
        ],
        ..service_port("shop", "web", "http", 20, 80)
    }
}

fn front_node_port() -> ServicePort {
    ServicePort {
        node_port: Some(30080),
        endpoints: vec![endpoint(1, 5, 8080), endpoint(2, 5, 8080)],
        ..service_port("shop", "front", "", 30, 80)
    }
}

fn cart_with_affinity() -> ServicePort {
    ServicePort {
        affinity_timeout: Some(10800),
        endpoints: vec![endpoint(1, 6, 9000), endpoint(2, 6, 9000)],
        ..service_port("shop", "cart", "grpc", 40, 9000)
    }
}

fn kube_dns() -> [ServicePort; 2] {
    let endpoints = vec![endpoint(1, 10, 53), endpoint(2, 10, 53)];
    [
        ServicePort {
            protocol: Protocol::Udp,
            endpoints: endpoints.clone(),
            ..service_port("kube-system", "kube-dns", "dns", 10, 53)
        },
        ServicePort {
            endpoints,
            ..service_port("kube-system", "kube-dns", "dns-tcp", 10, 53)
        },
    ]
}

fn render(services: &[ServicePort], existing: &ExistingRules) -> String {
    let input = restore_input(&CONFIG, services, existing).expect("valid services");
    assert_well_formed(&input);
    input
}

fn check(case: &str, rendered: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("src/kubeproxy/golden/{case}.rules"));
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        fs::write(&path, rendered).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
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

/// What `iptables-save` would print after applying `input` to tables holding `before`
/// (chains and rules only, which is all a sync reads back).
fn saved_after(before: &str, input: &str) -> String {
    let mut chains: Vec<(String, String)> = Vec::new();
    let mut rules: Vec<(String, String)> = Vec::new();
    let mut table = String::new();
    for line in before.lines().chain(input.lines()) {
        if let Some(name) = line.strip_prefix('*') {
            table = name.to_string();
        } else if let Some(declaration) = line.strip_prefix(':') {
            let chain = declaration.split_whitespace().next().expect("chain name");
            let entry = (table.clone(), format!(":{chain} - [0:0]"));
            if !chains.contains(&entry) {
                chains.push(entry);
            }
            // A declaration flushes the chain.
            rules.retain(|(t, r)| !(t == &table && r.starts_with(&format!("-A {chain} "))));
        } else if let Some(rule) = line.strip_prefix("-I ") {
            rules.insert(0, (table.clone(), format!("-A {rule}")));
        } else if line.starts_with("-A ") {
            rules.push((table.clone(), line.to_string()));
        } else if let Some(chain) = line.strip_prefix("-X ") {
            chains.retain(|(t, c)| !(t == &table && c.starts_with(&format!(":{chain} "))));
        }
    }
    let mut saved = String::new();
    for name in ["filter", "nat"] {
        saved.push_str(&format!("*{name}\n"));
        for (_, chain) in chains.iter().filter(|(t, _)| t == name) {
            saved.push_str(&format!("{chain}\n"));
        }
        for (_, rule) in rules.iter().filter(|(t, _)| t == name) {
            saved.push_str(&format!("{rule}\n"));
        }
        saved.push_str("COMMIT\n");
    }
    saved
}

/// Fails unless `input` is restore input iptables accepts: `*table` ... `COMMIT` blocks,
/// chains declared once and before any rule, every rule's chain and every jump target
/// declared in its table (or built in), quotes balanced.
fn assert_well_formed(input: &str) {
    const BUILTIN_CHAINS: [&str; 5] = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"];
    const TARGETS: [&str; 7] = [
        "ACCEPT",
        "DROP",
        "RETURN",
        "REJECT",
        "DNAT",
        "MARK",
        "MASQUERADE",
    ];
    let mut table: Option<&str> = None;
    let mut declared: BTreeSet<&str> = BTreeSet::new();
    let mut seen_rule = false;
    let mut tables = Vec::new();
    for line in input.lines() {
        assert_eq!(
            line.matches('"').count() % 2,
            0,
            "unbalanced quotes: {line}"
        );
        if let Some(name) = line.strip_prefix('*') {
            assert!(table.is_none(), "{name} opened inside {table:?}");
            table = Some(name);
            tables.push(name);
            declared.clear();
            seen_rule = false;
            continue;
        }
        assert!(table.is_some(), "line outside a table: {line}");
        if line == "COMMIT" {
            table = None;
            continue;
        }
        if let Some(declaration) = line.strip_prefix(':') {
            let chain = declaration.split_whitespace().next().expect("name");
            assert!(!seen_rule, "{chain} declared after a rule");
            assert!(declared.insert(chain), "{chain} declared twice");
            continue;
        }
        seen_rule = true;
        let words: Vec<&str> = line.split_whitespace().collect();
        let known = |chain: &str| declared.contains(chain) || BUILTIN_CHAINS.contains(&chain);
        match words[..] {
            ["-A" | "-I", chain, ..] => assert!(known(chain), "undeclared chain: {line}"),
            ["-X", chain] => assert!(declared.contains(chain), "undeclared -X: {line}"),
            _ => panic!("not a rule: {line}"),
        }
        if let Some(at) = words.iter().position(|w| *w == "-j") {
            let target = words[at + 1];
            assert!(
                TARGETS.contains(&target) || declared.contains(target),
                "jump to an undeclared chain: {line}"
            );
        }
    }
    assert!(table.is_none(), "{table:?} has no COMMIT");
    assert_eq!(tables, ["filter", "nat"]);
}

#[test]
fn cluster_ip_with_three_endpoints() {
    check(
        "cluster-ip-three-endpoints",
        &render(&[web()], &ExistingRules::default()),
    );
}

#[test]
fn node_port() {
    check(
        "node-port",
        &render(&[front_node_port()], &ExistingRules::default()),
    );
}

#[test]
fn client_ip_affinity() {
    check(
        "client-ip-affinity",
        &render(&[cart_with_affinity()], &ExistingRules::default()),
    );
}

#[test]
fn no_endpoints_rejects() {
    let idle = ServicePort {
        node_port: Some(30090),
        ..service_port("shop", "idle", "http", 50, 80)
    };
    check("no-endpoints", &render(&[idle], &ExistingRules::default()));
}

#[test]
fn dns_over_udp_and_tcp() {
    check(
        "dns-udp-tcp",
        &render(&kube_dns(), &ExistingRules::default()),
    );
}

#[test]
fn resync_removes_a_service() {
    let mut both = vec![web()];
    both.extend(kube_dns());
    let first = render(&both, &ExistingRules::default());
    let saved = saved_after("", &first);
    let resync = render(&kube_dns(), &ExistingRules::parse(&saved));
    check("resync-removes-service", &resync);
}

#[test]
fn resync_deletes_exactly_the_chains_no_longer_used() {
    let mut both = vec![web()];
    both.extend(kube_dns());
    let saved = saved_after("", &render(&both, &ExistingRules::default()));
    let resync = render(&kube_dns(), &ExistingRules::parse(&saved));
    let deleted: BTreeSet<&str> = resync
        .lines()
        .filter_map(|l| l.strip_prefix("-X "))
        .collect();
    let web_chains: BTreeSet<String> = std::iter::once(chain_name::service_chain(&web()))
        .chain(
            web()
                .endpoints
                .iter()
                .map(|e| chain_name::endpoint_chain(&web(), e)),
        )
        .collect();
    assert_eq!(
        deleted,
        web_chains
            .iter()
            .map(String::as_str)
            .collect::<BTreeSet<_>>()
    );
    let after = saved_after(&saved, &resync);
    assert!(
        !after.contains(&chain_name::service_chain(&web())),
        "{after}"
    );
    assert!(
        after.contains("kube-system/kube-dns:dns cluster IP"),
        "{after}"
    );
}

#[test]
fn repeated_syncs_add_hook_jumps_once_and_delete_nothing() {
    let services = [web(), front_node_port()];
    let first = render(&services, &ExistingRules::default());
    assert_eq!(first.lines().filter(|l| l.starts_with("-I ")).count(), 12);
    let saved = saved_after("", &first);
    let second = render(&services, &ExistingRules::parse(&saved));
    assert!(
        !second
            .lines()
            .any(|l| l.starts_with("-I ") || l.starts_with("-X ")),
        "{second}"
    );
    // Applying the second sync leaves the tables as the first left them.
    assert_eq!(saved_after(&saved, &second), saved);
}

#[test]
fn only_missing_hook_jumps_are_added() {
    let saved = "*nat\n:PREROUTING ACCEPT [0:0]\n\
                 -A PREROUTING -m comment --comment \"kubernetes service portals\" \
                 -j KUBE-SERVICES\nCOMMIT\n";
    let input = render(&[web()], &ExistingRules::parse(saved));
    let nat_jumps: Vec<&str> = input
        .split("*nat")
        .nth(1)
        .expect("nat table")
        .lines()
        .filter(|l| l.starts_with("-I "))
        .collect();
    assert_eq!(
        nat_jumps,
        [
            "-I OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
            "-I POSTROUTING -m comment --comment \"kubernetes postrouting rules\" \
             -j KUBE-POSTROUTING",
        ]
    );
}

#[test]
fn endpoint_probabilities_make_an_even_split() {
    let many = ServicePort {
        endpoints: (2..6).map(|pod| endpoint(1, pod, 80)).collect(),
        ..service_port("shop", "many", "", 60, 80)
    };
    let input = render(&[many], &ExistingRules::default());
    let choices: Vec<&str> = input
        .lines()
        .filter(|l| l.starts_with("-A KUBE-SVC-") && l.contains("-j KUBE-SEP-"))
        .collect();
    assert_eq!(choices.len(), 4);
    let probabilities: Vec<Option<f64>> = choices
        .iter()
        .map(|l| {
            l.split("--probability ")
                .nth(1)
                .map(|rest| rest.split(' ').next().expect("value").parse().expect("f64"))
        })
        .collect();
    assert_eq!(
        probabilities,
        [Some(0.25), Some(0.3333333333), Some(0.5), None]
    );
}

#[test]
fn node_port_capture_is_the_last_service_rule() {
    let input = render(&[web(), front_node_port()], &ExistingRules::default());
    let last = input
        .lines()
        .rfind(|l| l.starts_with("-A KUBE-SERVICES "))
        .expect("rules");
    assert!(last.ends_with("-j KUBE-NODEPORTS"), "{last}");
}

#[test]
fn duplicates_are_refused_with_the_port_named() {
    let error = restore_input(&CONFIG, &[web(), web()], &ExistingRules::default())
        .expect_err("duplicate port");
    assert_eq!(
        error.to_string(),
        "Service port shop/web:http (tcp) is listed twice; pass each Service port once"
    );
    let mut doubled = web();
    doubled.endpoints.push(endpoint(1, 2, 8080));
    let error =
        restore_input(&CONFIG, &[doubled], &ExistingRules::default()).expect_err("duplicate");
    assert!(
        error
            .to_string()
            .contains("endpoint 10.244.1.2:8080 is listed twice"),
        "{error}"
    );
}

#[test]
fn malformed_input_is_caught_by_the_checker() {
    let bad = [
        "*nat\n-A KUBE-SERVICES -j ACCEPT\nCOMMIT\n*filter\nCOMMIT\n",
        "*filter\nCOMMIT\n*nat\n:KUBE-SERVICES - [0:0]\n-A KUBE-SERVICES -j KUBE-SVC-X\nCOMMIT\n",
        "*filter\nCOMMIT\n*nat\n:A - [0:0]\n",
    ];
    for input in bad {
        let caught = std::panic::catch_unwind(|| assert_well_formed(input));
        assert!(caught.is_err(), "accepted:\n{input}");
    }
}
