//! Runs the backend's save and restore binaries: apply, cleanup, and what `--dry-run` shows.
//! Each family's nat table changes in one `iptables-restore --noflush` transaction.

use std::fs;
use std::io::{self, Write};
use std::process::{Command, Output, Stdio};

use thiserror::Error;

use crate::backend::Backend;
use crate::rules::{Family, RuleSet};
use crate::table::{ForeignReference, NatTable};

/// Capability number of `CAP_NET_ADMIN` (linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;

/// What went wrong talking to iptables, each with what to do about it.
#[derive(Debug, Error)]
pub enum ApplyError {
    /// The binary is not installed.
    #[error("{binary} not found; install the iptables package")]
    MissingBinary {
        /// The binary looked for.
        binary: String,
    },
    /// The kernel refused: no `CAP_NET_ADMIN` in this network namespace.
    #[error(
        "{binary} was refused ({detail}): mesh-init needs CAP_NET_ADMIN; run as the init \
         container with NET_ADMIN and NET_RAW"
    )]
    NeedsNetAdmin {
        /// The binary that failed.
        binary: String,
        /// Its first line of complaint.
        detail: String,
    },
    /// The binary failed for another reason.
    #[error("{binary} failed ({status}): {detail}")]
    Failed {
        /// The binary that failed.
        binary: String,
        /// Its exit status.
        status: String,
        /// Its stderr, and the input it was given, if any.
        detail: String,
    },
    /// The binary could not be started.
    #[error("could not run {binary}: {source}")]
    Spawn {
        /// The binary.
        binary: String,
        /// Why.
        source: io::Error,
    },
    /// Someone else's rule uses one of our chains.
    #[error(transparent)]
    ForeignReference(#[from] ForeignReference),
}

/// One family's iptables, through one backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Iptables {
    /// The backend whose binaries are run.
    pub backend: Backend,
    /// The family whose table is read and written.
    pub family: Family,
}

// === impl Iptables ===

impl Iptables {
    /// Reads the current nat table (full `*-save`, so legacy does not create tables).
    pub fn read_nat(&self) -> Result<NatTable, ApplyError> {
        let binary = self.backend.save(self.family);
        let output = run(&binary, &[], None)?;
        Ok(NatTable::parse(&String::from_utf8_lossy(&output.stdout)))
    }

    /// Feeds `input` to `*-restore --noflush` (waiting for the xtables lock if held).
    pub fn restore(&self, input: &str) -> Result<(), ApplyError> {
        let binary = self.backend.restore(self.family);
        run(&binary, &["--noflush", "--wait"], Some(input)).map(drop)
    }

    /// The restore input that would bring the current table to `rules`.
    pub fn plan(&self, rules: &RuleSet) -> Result<String, ApplyError> {
        Ok(rules.restore_input(&self.read_nat()?))
    }

    /// Brings our part of the table to `rules` in one transaction; returns the input used.
    pub fn apply(&self, rules: &RuleSet) -> Result<String, ApplyError> {
        let input = self.plan(rules)?;
        self.restore(&input)?;
        Ok(input)
    }

    /// The restore input that would remove our jumps and chains; `None` if there are none.
    pub fn cleanup_plan(&self) -> Result<Option<String>, ApplyError> {
        Ok(self.read_nat()?.cleanup_input()?)
    }

    /// Removes our jumps and chains in one transaction; returns the input, if any was needed.
    pub fn cleanup(&self) -> Result<Option<String>, ApplyError> {
        let input = self.cleanup_plan()?;
        if let Some(input) = &input {
            self.restore(input)?;
        }
        Ok(input)
    }
}

/// Runs `binary`, mapping every failure to something a user can act on.
fn run(binary: &str, args: &[&str], input: Option<&str>) -> Result<Output, ApplyError> {
    let mut command = Command::new(binary);
    command
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let spawned = command
        .spawn()
        .map_err(|source| spawn_error(binary, source))?;
    let output = feed_and_wait(spawned, input).map_err(|source| spawn_error(binary, source))?;
    if output.status.success() {
        return Ok(output);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(classify(
        binary,
        &output.status.to_string(),
        &stderr,
        input,
        has_net_admin(),
    ))
}

fn feed_and_wait(mut child: std::process::Child, input: Option<&str>) -> io::Result<Output> {
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        // A restore that dies early closes its stdin; its stderr says why, so keep going.
        let _ = stdin.write_all(text.as_bytes());
    }
    child.wait_with_output()
}

fn spawn_error(binary: &str, source: io::Error) -> ApplyError {
    match source.kind() {
        io::ErrorKind::NotFound => ApplyError::MissingBinary {
            binary: binary.to_string(),
        },
        _ => ApplyError::Spawn {
            binary: binary.to_string(),
            source,
        },
    }
}

/// Turns a failed run into an error: refusals (or a process without `CAP_NET_ADMIN`, whose
/// legacy restore only says "unable to initialize table") become `NeedsNetAdmin`.
pub fn classify(
    binary: &str,
    status: &str,
    stderr: &str,
    input: Option<&str>,
    net_admin: Option<bool>,
) -> ApplyError {
    const REFUSALS: [&str; 3] = [
        "Permission denied",
        "Operation not permitted",
        "you must be root",
    ];
    let complaint: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("# Warning"))
        .collect();
    let refused = REFUSALS.iter().any(|r| stderr.contains(r));
    if refused || net_admin == Some(false) {
        let detail = complaint
            .first()
            .copied()
            .unwrap_or("no message")
            .to_string();
        return ApplyError::NeedsNetAdmin {
            binary: binary.to_string(),
            detail,
        };
    }
    let mut detail = complaint.join("; ");
    if detail.is_empty() {
        detail = "no message".into();
    }
    if let Some(input) = input {
        detail.push_str("\ninput was:\n");
        detail.push_str(input);
    }
    ApplyError::Failed {
        binary: binary.to_string(),
        status: status.to_string(),
        detail,
    }
}

/// Whether this process holds `CAP_NET_ADMIN` (`None` if /proc cannot tell).
pub fn has_net_admin() -> Option<bool> {
    net_admin_in_status(&fs::read_to_string("/proc/self/status").ok()?)
}

/// Reads the effective capability set out of /proc/PID/status text.
pub fn net_admin_in_status(status: &str) -> Option<bool> {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    let caps = u64::from_str_radix(hex, 16).ok()?;
    Some(caps & (1 << CAP_NET_ADMIN) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_says_what_capability_is_missing() {
        let stderr = "iptables-nft-restore v1.8.9 (nf_tables): Could not fetch rule set \
                      generation id: Permission denied (you must be root)\n";
        let error = classify(
            "iptables-nft-restore",
            "exit status: 4",
            stderr,
            None,
            Some(true),
        );
        let text = error.to_string();
        assert!(matches!(error, ApplyError::NeedsNetAdmin { .. }), "{text}");
        assert!(text.contains("needs CAP_NET_ADMIN; run as the init container with NET_ADMIN"));
    }

    #[test]
    fn legacy_vague_failure_without_the_capability_is_a_refusal() {
        let stderr = "iptables-restore v1.8.9 (legacy): iptables-restore: unable to \
                      initialize table 'nat'\n";
        let error = classify(
            "iptables-legacy-restore",
            "exit status: 2",
            stderr,
            None,
            Some(false),
        );
        assert!(matches!(error, ApplyError::NeedsNetAdmin { .. }), "{error}");
    }

    #[test]
    fn other_failures_carry_stderr_and_input() {
        let stderr = "# Warning: iptables-legacy tables present\niptables-restore: line 2 failed\n";
        let error = classify(
            "iptables-restore",
            "exit status: 1",
            stderr,
            Some("*nat\n"),
            None,
        );
        let text = error.to_string();
        assert!(matches!(error, ApplyError::Failed { .. }));
        assert!(
            text.contains("line 2 failed") && text.contains("input was:\n*nat"),
            "{text}"
        );
        assert!(!text.contains("Warning"), "{text}");
    }

    #[test]
    fn missing_binary_names_the_package() {
        let error = spawn_error("iptables-restore", io::ErrorKind::NotFound.into());
        assert_eq!(
            error.to_string(),
            "iptables-restore not found; install the iptables package"
        );
    }

    #[test]
    fn capability_bit_is_read_from_proc_status() {
        assert_eq!(
            net_admin_in_status("Name:\tx\nCapEff:\t000001ffffffffff\n"),
            Some(true)
        );
        assert_eq!(
            net_admin_in_status("CapEff:\t0000000000000000\n"),
            Some(false)
        );
        assert_eq!(
            net_admin_in_status("CapEff:\t0000000000001000\n"),
            Some(true)
        );
        assert_eq!(net_admin_in_status("Name:\tx\n"), None);
    }
}
