//! The `iptables-restore --noflush` input that brings one node's filter and nat tables to
//! kube-proxy's rules for a set of Service ports, in kube-proxy's own shape (chain names,
//! comments, match order), so the lab can be compared line by line with a real cluster.
//!
//! A sync is a full resync: it declares every KUBE chain it fills (which flushes it), adds the
//! hook jumps from the built-in chains only if they are missing, and flushes and deletes the
//! per-Service chains of an earlier sync that are no longer used — one transaction per table.
//! Two deliberate choices, both kube-proxy settings: masquerading uses the cluster CIDR
//! (`--cluster-cidr`), and NodePorts do not answer on 127.0.0.0/8
//! (`--iptables-localhost-nodeports=false`), so the lab needs no `route_localnet`.

use std::collections::BTreeSet;

use super::existing::{ExistingRules, Table};
use super::{Endpoint, KubeProxyError, ProxierConfig, ServicePort, chain_name};

/// The mark that asks KUBE-POSTROUTING to masquerade a packet.
const MASQUERADE_MARK: &str = "0x4000";

/// The filter chains a sync fills, in kube-proxy's order.
const FILTER_CHAINS: [&str; 5] = [
    "KUBE-SERVICES",
    "KUBE-EXTERNAL-SERVICES",
    "KUBE-FORWARD",
    "KUBE-NODEPORTS",
    "KUBE-PROXY-FIREWALL",
];

/// The nat chains a sync fills besides the per-Service ones, in kube-proxy's order.
const NAT_CHAINS: [&str; 4] = [
    "KUBE-SERVICES",
    "KUBE-NODEPORTS",
    "KUBE-POSTROUTING",
    "KUBE-MARK-MASQ",
];

/// A jump from a built-in chain into ours.
struct HookJump {
    table: Table,
    chain: &'static str,
    target: &'static str,
    comment: &'static str,
    /// Only for the first packet of a connection (`-m conntrack --ctstate NEW`).
    new_only: bool,
}

/// kube-proxy's hook jumps, in the order it ensures them (each prepended to its chain).
const HOOK_JUMPS: [HookJump; 12] = [
    hook(
        Table::Filter,
        "INPUT",
        "KUBE-EXTERNAL-SERVICES",
        EXTERNAL_PORTALS,
        true,
    ),
    hook(
        Table::Filter,
        "FORWARD",
        "KUBE-EXTERNAL-SERVICES",
        EXTERNAL_PORTALS,
        true,
    ),
    hook(
        Table::Filter,
        "INPUT",
        "KUBE-NODEPORTS",
        HEALTH_CHECKS,
        false,
    ),
    hook(Table::Filter, "FORWARD", "KUBE-SERVICES", PORTALS, true),
    hook(Table::Filter, "OUTPUT", "KUBE-SERVICES", PORTALS, true),
    hook(Table::Filter, "FORWARD", "KUBE-FORWARD", FORWARDING, false),
    hook(
        Table::Filter,
        "INPUT",
        "KUBE-PROXY-FIREWALL",
        FIREWALL,
        true,
    ),
    hook(
        Table::Filter,
        "OUTPUT",
        "KUBE-PROXY-FIREWALL",
        FIREWALL,
        true,
    ),
    hook(
        Table::Filter,
        "FORWARD",
        "KUBE-PROXY-FIREWALL",
        FIREWALL,
        true,
    ),
    hook(Table::Nat, "OUTPUT", "KUBE-SERVICES", PORTALS, false),
    hook(Table::Nat, "PREROUTING", "KUBE-SERVICES", PORTALS, false),
    hook(
        Table::Nat,
        "POSTROUTING",
        "KUBE-POSTROUTING",
        POSTROUTING,
        false,
    ),
];

const EXTERNAL_PORTALS: &str = "kubernetes externally-visible service portals";
const HEALTH_CHECKS: &str = "kubernetes health check service ports";
const PORTALS: &str = "kubernetes service portals";
const FORWARDING: &str = "kubernetes forwarding rules";
const FIREWALL: &str = "kubernetes load balancer firewall";
const POSTROUTING: &str = "kubernetes postrouting rules";

const fn hook(
    table: Table,
    chain: &'static str,
    target: &'static str,
    comment: &'static str,
    new_only: bool,
) -> HookJump {
    HookJump {
        table,
        chain,
        target,
        comment,
        new_only,
    }
}

/// One table's part of the restore input: chain declarations, then rules.
#[derive(Default)]
struct TableInput {
    chains: Vec<String>,
    rules: Vec<String>,
}

/// The restore input for both tables, given what the node's tables hold now (read with
/// `iptables-save`; [`ExistingRules::default`] for a node that has none).
pub fn restore_input(
    config: &ProxierConfig,
    services: &[ServicePort],
    existing: &ExistingRules,
) -> Result<String, KubeProxyError> {
    check_unique(services)?;
    let mut filter = TableInput::declaring(&FILTER_CHAINS);
    let mut nat = TableInput::declaring(&NAT_CHAINS);
    for jump in HOOK_JUMPS
        .iter()
        .filter(|j| !existing.has_jump(j.table, j.chain, j.target))
    {
        let table = match jump.table {
            Table::Filter => &mut filter,
            Table::Nat => &mut nat,
        };
        table.rules.push(jump.insert_rule());
    }
    write_masquerade_rules(&mut nat);
    for port in services {
        write_service_port(config, port, &mut filter, &mut nat);
    }
    delete_stale_chains(existing, &mut nat);
    nat.rules.push(
        "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must \
         be the last rule in this chain\" -m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 \
         -j KUBE-NODEPORTS"
            .into(),
    );
    write_forward_rules(&mut filter);
    Ok(format!(
        "{}{}",
        filter.render(Table::Filter),
        nat.render(Table::Nat)
    ))
}

/// Each Service port and each of its endpoints once: duplicates would declare a chain twice.
fn check_unique(services: &[ServicePort]) -> Result<(), KubeProxyError> {
    let mut ports = BTreeSet::new();
    for port in services {
        if !ports.insert((port.service_port_name(), port.protocol)) {
            return Err(KubeProxyError::DuplicateServicePort {
                service_port: port.service_port_name(),
                protocol: port.protocol.to_string(),
            });
        }
        let mut endpoints = BTreeSet::new();
        if let Some(endpoint) = port.endpoints.iter().find(|e| !endpoints.insert(**e)) {
            return Err(KubeProxyError::DuplicateEndpoint {
                service_port: port.service_port_name(),
                endpoint: endpoint.to_string(),
            });
        }
    }
    Ok(())
}

/// KUBE-MARK-MASQ marks; KUBE-POSTROUTING masquerades what is marked, once.
fn write_masquerade_rules(nat: &mut TableInput) {
    nat.rules.extend([
        format!(
            "-A KUBE-POSTROUTING -m mark ! --mark {MASQUERADE_MARK}/{MASQUERADE_MARK} -j RETURN"
        ),
        format!("-A KUBE-POSTROUTING -j MARK --xor-mark {MASQUERADE_MARK}"),
        "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" \
         -j MASQUERADE --random-fully"
            .into(),
        format!("-A KUBE-MARK-MASQ -j MARK --or-mark {MASQUERADE_MARK}"),
    ]);
}

/// Forwarding: accept what kube-proxy marked and established flows; drop invalid ones.
fn write_forward_rules(filter: &mut TableInput) {
    filter.rules.extend([
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP".to_string(),
        format!(
            "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark \
             --mark {MASQUERADE_MARK}/{MASQUERADE_MARK} -j ACCEPT"
        ),
        "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m \
         conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
            .into(),
    ]);
}

/// One Service port: REJECTs when nothing is ready, else the ClusterIP and NodePort captures,
/// the KUBE-EXT, KUBE-SVC and KUBE-SEP chains, in the order kube-proxy writes them.
fn write_service_port(
    config: &ProxierConfig,
    port: &ServicePort,
    filter: &mut TableInput,
    nat: &mut TableInput,
) {
    let name = port.service_port_name();
    let protocol = port.protocol.as_str();
    let cluster_ip = format!(
        "-m {protocol} -p {protocol} -d {} --dport {}",
        port.cluster_ip, port.port
    );
    if port.endpoints.is_empty() {
        let comment = format!("\"{name} has no endpoints\"");
        filter.rules.push(format!(
            "-A KUBE-SERVICES -m comment --comment {comment} {cluster_ip} -j REJECT"
        ));
        if let Some(node_port) = port.node_port {
            filter.rules.push(format!(
                "-A KUBE-EXTERNAL-SERVICES -m comment --comment {comment} -m addrtype \
                 --dst-type LOCAL -m {protocol} -p {protocol} --dport {node_port} -j REJECT"
            ));
        }
        return;
    }

    let service_chain = chain_name::service_chain(port);
    let cluster_comment = format!("\"{name} cluster IP\"");
    nat.rules.push(format!(
        "-A KUBE-SERVICES -m comment --comment {cluster_comment} {cluster_ip} -j {service_chain}"
    ));
    let external_chain = port.node_port.map(|node_port| {
        let chain = chain_name::external_chain(port);
        nat.rules.push(format!(
            "-A KUBE-NODEPORTS -m comment --comment {name} -m {protocol} -p {protocol} \
             --dport {node_port} -j {chain}"
        ));
        chain
    });
    let (cidr, prefix) = config.cluster_cidr;
    nat.rules.push(format!(
        "-A {service_chain} -m comment --comment {cluster_comment} {cluster_ip} \
         ! -s {cidr}/{prefix} -j KUBE-MARK-MASQ"
    ));
    if let Some(external_chain) = external_chain {
        nat.rules.push(format!(
            "-A {external_chain} -m comment --comment \"masquerade traffic for {name} external \
             destinations\" -j KUBE-MARK-MASQ"
        ));
        nat.rules
            .push(format!("-A {external_chain} -j {service_chain}"));
        nat.chains.push(external_chain);
    }
    nat.chains.push(service_chain.clone());

    let endpoints: Vec<(String, &Endpoint)> = port
        .endpoints
        .iter()
        .map(|e| (chain_name::endpoint_chain(port, e), e))
        .collect();
    write_endpoint_choice(port, &name, &service_chain, &endpoints, nat);
    for (endpoint_chain, endpoint) in &endpoints {
        nat.chains.push(endpoint_chain.clone());
        // A pod that reaches itself through the Service must see a reply from the Service.
        nat.rules.push(format!(
            "-A {endpoint_chain} -m comment --comment {name} -s {} -j KUBE-MARK-MASQ",
            endpoint.ip
        ));
        let remember = match port.affinity_timeout {
            Some(_) => format!(" -m recent --name {endpoint_chain} --set"),
            None => String::new(),
        };
        nat.rules.push(format!(
            "-A {endpoint_chain} -m comment --comment {name}{remember} -m {protocol} \
             -p {protocol} -j DNAT --to-destination {endpoint}"
        ));
    }
}

/// KUBE-SVC: clients seen recently go back to their endpoint (ClientIP affinity), others pick
/// one at random, the i-th of n endpoints with probability 1/(n-i) so that all are equal.
fn write_endpoint_choice(
    port: &ServicePort,
    name: &str,
    service_chain: &str,
    endpoints: &[(String, &Endpoint)],
    nat: &mut TableInput,
) {
    if let Some(seconds) = port.affinity_timeout {
        for (endpoint_chain, endpoint) in endpoints {
            nat.rules.push(format!(
                "-A {service_chain} -m comment --comment \"{name} -> {endpoint}\" -m recent \
                 --name {endpoint_chain} --rcheck --seconds {seconds} --reap -j {endpoint_chain}"
            ));
        }
    }
    let count = endpoints.len();
    for (index, (endpoint_chain, endpoint)) in endpoints.iter().enumerate() {
        let statistic = if index + 1 < count {
            format!(
                " -m statistic --mode random --probability {}",
                probability(count - index)
            )
        } else {
            String::new()
        };
        nat.rules.push(format!(
            "-A {service_chain} -m comment --comment \"{name} -> {endpoint}\"{statistic} \
             -j {endpoint_chain}"
        ));
    }
}

/// 1/n as kube-proxy writes it (`%0.10f`; `iptables-save` shows the kernel's 32-bit
/// fraction with 11 decimals instead, e.g. 0.33333333349).
fn probability(n: usize) -> String {
    format!("{:.10}", 1.0 / n as f64)
}

/// Per-Service chains of an earlier sync that this one does not fill: flushed by their
/// declaration, then deleted, in the same transaction.
fn delete_stale_chains(existing: &ExistingRules, nat: &mut TableInput) {
    let active: BTreeSet<String> = nat.chains.iter().cloned().collect();
    let stale: Vec<String> = existing
        .chains(Table::Nat)
        .filter(|c| chain_name::is_per_service_chain(c) && !active.contains(*c))
        .map(str::to_string)
        .collect();
    for chain in stale {
        nat.rules.push(format!("-X {chain}"));
        nat.chains.push(chain);
    }
}

// === impl HookJump ===

impl HookJump {
    /// The `-I` line that prepends this jump to its built-in chain.
    fn insert_rule(&self) -> String {
        let new_only = if self.new_only {
            "-m conntrack --ctstate NEW "
        } else {
            ""
        };
        format!(
            "-I {} {new_only}-m comment --comment \"{}\" -j {}",
            self.chain, self.comment, self.target
        )
    }
}

// === impl TableInput ===

impl TableInput {
    fn declaring(chains: &[&str]) -> TableInput {
        TableInput {
            chains: chains.iter().map(|c| c.to_string()).collect(),
            rules: Vec::new(),
        }
    }

    fn render(&self, table: Table) -> String {
        let mut out = format!("*{}\n", table.name());
        for chain in &self.chains {
            out.push_str(&format!(":{chain} - [0:0]\n"));
        }
        for rule in &self.rules {
            out.push_str(rule);
            out.push('\n');
        }
        out.push_str("COMMIT\n");
        out
    }
}
