//! The rule set: a pure function from `Options` to the nat-table rules of one address family,
//! and its rendering as `iptables-restore --noflush` input.
//!
//! Rules are written in the exact form `iptables-save` prints them, so a saved table can be
//! compared with the rule set line by line (that is how the jumps are added only once).

use std::fmt;

use crate::options::{Options, Selection};
use crate::table::NatTable;

/// Entry chain for inbound traffic, jumped to from `PREROUTING`.
pub const MESH_INBOUND: &str = "MESH_INBOUND";
/// Redirects to the inbound capture port.
pub const MESH_IN_REDIRECT: &str = "MESH_IN_REDIRECT";
/// Entry chain for locally generated traffic, jumped to from `OUTPUT`.
pub const MESH_OUTPUT: &str = "MESH_OUTPUT";
/// Redirects to the outbound capture port.
pub const MESH_REDIRECT: &str = "MESH_REDIRECT";
/// Our four chains, in the order they are declared.
pub const CHAINS: [&str; 4] = [MESH_INBOUND, MESH_IN_REDIRECT, MESH_OUTPUT, MESH_REDIRECT];
/// Built-in chains our jumps hang from.
pub const HOOKS: [&str; 2] = ["PREROUTING", "OUTPUT"];
/// Most ports one `-m multiport` match takes.
const MULTIPORT_MAX: usize = 15;

/// An address family: one table, one `iptables-restore` transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 (`iptables`).
    V4,
    /// IPv6 (`ip6tables`).
    V6,
}

/// One rule: `-A <chain> <spec>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The chain it is appended to.
    pub chain: String,
    /// Matches and target, in `iptables-save` form.
    pub spec: String,
}

/// The wanted state of our part of one family's nat table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSet {
    /// Which family these rules are for.
    pub family: Family,
    /// Jumps from `PREROUTING` and `OUTPUT` into our chains (added only when missing).
    pub jumps: Vec<Rule>,
    /// The contents of our chains (flushed and rewritten on every apply).
    pub rules: Vec<Rule>,
}

// === impl Family ===

impl Family {
    /// Both families, IPv4 first.
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    /// "IPv4" or "IPv6".
    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    /// The loopback destinations that are never captured (127.0.0.0/8 is never a pod IP).
    fn loopback(self) -> &'static str {
        match self {
            Family::V4 => "127.0.0.0/8",
            Family::V6 => "::1/128",
        }
    }

    /// The source the inbound proxy binds when it delivers to the app on the pod IP; such
    /// connections must reach the app, not come back to the inbound port.
    fn passthrough_source(self) -> &'static str {
        match self {
            Family::V4 => "127.0.0.6/32",
            Family::V6 => "::6/128",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// === impl Rule ===

impl Rule {
    /// A rule appended to `chain`.
    pub fn new(chain: &str, spec: impl Into<String>) -> Self {
        Self {
            chain: chain.to_string(),
            spec: spec.into(),
        }
    }

    /// The chain this rule jumps (`-j`) or goes (`-g`) to, if any.
    pub fn target(&self) -> Option<&str> {
        let mut words = self.spec.split_whitespace();
        while let Some(word) = words.next() {
            if word == "-j" || word == "-g" {
                return words.next();
            }
        }
        None
    }

    /// Whether two rules are the same once whitespace is normalised.
    pub fn same_as(&self, other: &Rule) -> bool {
        self.chain == other.chain
            && self
                .spec
                .split_whitespace()
                .eq(other.spec.split_whitespace())
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "-A {} {}", self.chain, self.spec)
    }
}

// === impl RuleSet ===

impl RuleSet {
    /// The rules for `family` under `options`: the heart of mesh-init, free of side effects.
    pub fn build(options: &Options, family: Family) -> Self {
        let jumps = vec![
            Rule::new("PREROUTING", format!("-p tcp -j {MESH_INBOUND}")),
            Rule::new("OUTPUT", format!("-p tcp -j {MESH_OUTPUT}")),
        ];
        let mut rules = inbound(options);
        rules.push(Rule::new(
            MESH_IN_REDIRECT,
            format!(
                "-p tcp -j REDIRECT --to-ports {}",
                options.inbound_capture_port
            ),
        ));
        rules.extend(outbound(options, family));
        rules.push(Rule::new(
            MESH_REDIRECT,
            format!(
                "-p tcp -j REDIRECT --to-ports {}",
                options.outbound_capture_port
            ),
        ));
        Self {
            family,
            jumps,
            rules,
        }
    }

    /// The restore input for a table that has none of our rules yet (what `--dry-run` shows
    /// for a fresh pod).
    pub fn render(&self) -> String {
        self.restore_input(&NatTable::default())
    }

    /// The `iptables-restore --noflush` input that turns `current` into this rule set in one
    /// transaction: our chains declared (created or flushed) and refilled, jumps added only
    /// when missing, stale or duplicate jumps into our chains deleted.
    pub fn restore_input(&self, current: &NatTable) -> String {
        let mut out = String::from("*nat\n");
        for chain in CHAINS {
            out.push_str(&format!(":{chain} - [0:0]\n"));
        }
        let mut present = vec![false; self.jumps.len()];
        for rule in current.jumps_into_ours() {
            let wanted = self.jumps.iter().position(|jump| jump.same_as(rule));
            match wanted {
                Some(i) if !present[i] => present[i] = true,
                _ => out.push_str(&format!("-D {} {}\n", rule.chain, rule.spec)),
            }
        }
        for (jump, present) in self.jumps.iter().zip(present) {
            if !present {
                out.push_str(&format!("{jump}\n"));
            }
        }
        for rule in &self.rules {
            out.push_str(&format!("{rule}\n"));
        }
        out.push_str("COMMIT\n");
        out
    }
}

/// `MESH_INBOUND`: everything but the excluded ports, or only the listed ones.
fn inbound(options: &Options) -> Vec<Rule> {
    let excluded = &options.exclude_inbound_ports;
    match &options.inbound_ports {
        Selection::All => {
            let mut rules: Vec<Rule> = port_matches(excluded)
                .into_iter()
                .map(|m| Rule::new(MESH_INBOUND, format!("{m} -j RETURN")))
                .collect();
            rules.push(Rule::new(
                MESH_INBOUND,
                format!("-p tcp -j {MESH_IN_REDIRECT}"),
            ));
            rules
        }
        Selection::Only(ports) => {
            // Exclusions win over the list: the proxy's own ports are never captured.
            let ports: Vec<u16> = ports
                .iter()
                .copied()
                .filter(|p| !excluded.contains(p))
                .collect();
            port_matches(&ports)
                .into_iter()
                .map(|m| Rule::new(MESH_INBOUND, format!("{m} -j {MESH_IN_REDIRECT}")))
                .collect()
        }
    }
}

/// `MESH_OUTPUT`: loopback and proxy-owned traffic first, then exclusions, then captures.
fn outbound(options: &Options, family: Family) -> Vec<Rule> {
    let rule = |spec: String| Rule::new(MESH_OUTPUT, spec);
    let lo = family.loopback();
    let owners = [
        format!("--uid-owner {}", options.proxy_uid),
        format!("--gid-owner {}", options.proxy_gid),
    ];
    // The inbound proxy delivering to the app on the pod IP (from 127.0.0.6 / ::6).
    let mut rules = vec![rule(format!(
        "-s {} -o lo -j RETURN",
        family.passthrough_source()
    ))];
    // The proxy calling its own pod IP (it picked this pod as the endpoint) is inbound
    // traffic: it goes through MESH_INBOUND, so the inbound port list and exclusions apply.
    for owner in &owners {
        rules.push(rule(format!(
            "! -d {lo} -o lo -p tcp -m owner {owner} -j {MESH_INBOUND}"
        )));
    }
    // The app's own loopback traffic, and anyone's to 127.0.0.1 / ::1, is left alone.
    rules.push(rule("-o lo -j RETURN".into()));
    // The proxy's own outbound traffic is never captured: no loops.
    for owner in &owners {
        rules.push(rule(format!("-m owner {owner} -j RETURN")));
    }
    for m in port_matches(&options.exclude_outbound_ports) {
        rules.push(rule(format!("{m} -j RETURN")));
    }
    for cidr in options
        .exclude_outbound_cidrs
        .iter()
        .filter(|c| c.is_ipv6() == is_v6(family))
    {
        rules.push(rule(format!("-d {cidr} -j RETURN")));
    }
    match &options.include_outbound_cidrs {
        Selection::All => rules.push(rule(format!("-j {MESH_REDIRECT}"))),
        Selection::Only(cidrs) => {
            for cidr in cidrs.iter().filter(|c| c.is_ipv6() == is_v6(family)) {
                rules.push(rule(format!("-d {cidr} -j {MESH_REDIRECT}")));
            }
        }
    }
    rules
}

fn is_v6(family: Family) -> bool {
    family == Family::V6
}

/// Port matches in `iptables-save` form: one port through `-m tcp`, more through
/// `-m multiport` in groups of at most 15.
fn port_matches(ports: &[u16]) -> Vec<String> {
    ports
        .chunks(MULTIPORT_MAX)
        .map(|chunk| match chunk {
            [port] => format!("-p tcp -m tcp --dport {port}"),
            many => {
                let list: Vec<String> = many.iter().map(u16::to_string).collect();
                format!("-p tcp -m multiport --dports {}", list.join(","))
            }
        })
        .collect()
}
