//! The nat table as `iptables-save` shows it, and the restore input that removes exactly our
//! part of it. Pure: the text comes in, the text goes out.

use thiserror::Error;

use crate::rules::{CHAINS, HOOKS, Rule};

/// The chains and rules of one family's nat table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NatTable {
    /// Every chain, built-in and user-defined, in saved order.
    pub chains: Vec<String>,
    /// Every rule, in saved order.
    pub rules: Vec<Rule>,
}

/// Why our chains cannot be removed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error(
    "chain {chain} is still used by a rule that mesh-init did not write: `{rule}`; \
     delete that rule first, then run --cleanup again"
)]
pub struct ForeignReference {
    /// Our chain.
    pub chain: String,
    /// The other rule that jumps to it.
    pub rule: String,
}

// === impl NatTable ===

impl NatTable {
    /// Reads the `*nat` section of `iptables-save` output (other tables are ignored; no `*nat`
    /// section means an empty table).
    pub fn parse(saved: &str) -> Self {
        let mut table = Self::default();
        let mut in_nat = false;
        for line in saved.lines().map(str::trim) {
            if let Some(name) = line.strip_prefix('*') {
                in_nat = name.trim() == "nat";
            } else if line == "COMMIT" {
                in_nat = false;
            } else if !in_nat {
                continue;
            } else if let Some(chain) = line.strip_prefix(':') {
                if let Some(name) = chain.split_whitespace().next() {
                    table.chains.push(name.to_string());
                }
            } else if let Some(rest) = line.strip_prefix("-A ") {
                let (chain, spec) = rest.split_once(' ').unwrap_or((rest, ""));
                table.rules.push(Rule::new(chain, spec.trim()));
            }
        }
        table
    }

    /// Rules in `PREROUTING` or `OUTPUT` that jump into one of our chains.
    pub fn jumps_into_ours(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(|rule| {
            HOOKS.contains(&rule.chain.as_str()) && rule.target().is_some_and(is_ours)
        })
    }

    /// Which of our chains exist.
    pub fn our_chains(&self) -> Vec<&str> {
        CHAINS
            .into_iter()
            .filter(|c| self.chains.iter().any(|have| have == c))
            .collect()
    }

    /// The restore input that deletes our jumps and chains and nothing else, or `None` when
    /// there is nothing of ours (so a clean table is not even touched).
    pub fn cleanup_input(&self) -> Result<Option<String>, ForeignReference> {
        let ours = self.our_chains();
        let jumps: Vec<&Rule> = self.jumps_into_ours().collect();
        if ours.is_empty() && jumps.is_empty() {
            return Ok(None);
        }
        let foreign = self.rules.iter().find(|rule| {
            !is_ours(&rule.chain)
                && !HOOKS.contains(&rule.chain.as_str())
                && rule.target().is_some_and(is_ours)
        });
        if let Some(rule) = foreign {
            let chain = rule.target().unwrap_or_default().to_string();
            return Err(ForeignReference {
                chain,
                rule: rule.to_string(),
            });
        }
        let mut out = String::from("*nat\n");
        for chain in &ours {
            // Declaring a chain with --noflush flushes it, so the -X below cannot fail on
            // rules between our own chains.
            out.push_str(&format!(":{chain} - [0:0]\n"));
        }
        for rule in jumps {
            out.push_str(&format!("-D {} {}\n", rule.chain, rule.spec));
        }
        for chain in &ours {
            out.push_str(&format!("-X {chain}\n"));
        }
        out.push_str("COMMIT\n");
        Ok(Some(out))
    }
}

fn is_ours(chain: &str) -> bool {
    CHAINS.contains(&chain)
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
