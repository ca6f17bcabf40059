//! Which iptables backend to use (legacy or nft) and the binaries that belong to it.
//!
//! The two backends keep separate tables in the kernel, and rules written through the wrong
//! one are silently ignored by whoever reads the other, so mesh-init writes through the
//! backend that already holds rules, as kube's iptables-wrapper does: kubelet's hint chains
//! first, then whichever has more rules, nft when neither has any.

use std::env;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::rules::Family;

/// An iptables backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The x_tables kernel API (`iptables-legacy-*`).
    Legacy,
    /// nf_tables through the iptables syntax (`iptables-nft-*`).
    Nft,
}

/// How the backend was chosen, for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detection {
    /// The chosen backend.
    pub backend: Backend,
    /// Why, in a few words.
    pub reason: String,
}

/// Chains kubelet creates (in the mangle table) through the backend the node uses.
const KUBELET_HINTS: [&str; 2] = [":KUBE-IPTABLES-HINT", ":KUBE-KUBELET-CANARY"];

// === impl Backend ===

impl Backend {
    /// Both backends, nft (the default) first.
    pub const ALL: [Backend; 2] = [Backend::Nft, Backend::Legacy];

    /// "legacy" or "nft".
    pub fn name(self) -> &'static str {
        match self {
            Backend::Legacy => "legacy",
            Backend::Nft => "nft",
        }
    }

    /// The restore binary for `family`, e.g. `ip6tables-nft-restore`.
    pub fn restore(self, family: Family) -> String {
        format!("{}-{}-restore", tool(family), self.name())
    }

    /// The save binary for `family`, e.g. `iptables-legacy-save`.
    pub fn save(self, family: Family) -> String {
        format!("{}-{}-save", tool(family), self.name())
    }

    /// Whether this backend's binaries for `families` are all on `PATH`.
    pub fn installed(self, families: &[Family]) -> bool {
        families
            .iter()
            .all(|&f| find_binary(&self.restore(f)).is_some())
            && families
                .iter()
                .all(|&f| find_binary(&self.save(f)).is_some())
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn tool(family: Family) -> &'static str {
    match family {
        Family::V4 => "iptables",
        Family::V6 => "ip6tables",
    }
}

/// Chooses a backend from the full `*-save` output of each (both families concatenated).
pub fn choose(legacy_saved: &str, nft_saved: &str) -> Detection {
    let hinted = |saved: &str| {
        saved
            .lines()
            .any(|l| KUBELET_HINTS.iter().any(|h| l.starts_with(h)))
    };
    let count = |saved: &str| saved.lines().filter(|l| l.starts_with("-A ")).count();
    let (backend, reason) = if hinted(nft_saved) {
        (Backend::Nft, "kubelet's hint chain is in nft".to_string())
    } else if hinted(legacy_saved) {
        (
            Backend::Legacy,
            "kubelet's hint chain is in legacy".to_string(),
        )
    } else {
        let (legacy, nft) = (count(legacy_saved), count(nft_saved));
        let backend = if legacy > nft {
            Backend::Legacy
        } else {
            Backend::Nft
        };
        (
            backend,
            format!("{legacy} legacy rule(s), {nft} nft rule(s)"),
        )
    };
    Detection { backend, reason }
}

/// Detects the backend in use by running both backends' save binaries (read-only; no `-t`,
/// which would make legacy create the table). A backend whose binaries are missing is not a
/// candidate; `None` when neither is installed.
pub fn detect(families: &[Family]) -> Option<Detection> {
    let installed: Vec<Backend> = Backend::ALL
        .into_iter()
        .filter(|b| b.installed(families))
        .collect();
    match installed[..] {
        [] => None,
        [only] => Some(Detection {
            backend: only,
            reason: "the only one installed".into(),
        }),
        _ => {
            let saved = |backend: Backend| -> String {
                families
                    .iter()
                    .map(|&f| quiet_output(&backend.save(f)))
                    .collect()
            };
            Some(choose(&saved(Backend::Legacy), &saved(Backend::Nft)))
        }
    }
}

/// A command's stdout, or nothing if it cannot run or fails: detection is best effort.
fn quiet_output(binary: &str) -> String {
    let output = Command::new(binary)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    match output {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        _ => String::new(),
    }
}

/// Finds an executable on `PATH`.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether the kernel has IPv6 in this network namespace (`ipv6.disable=1` removes it).
pub fn ipv6_available() -> bool {
    Path::new("/proc/net/if_inet6").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NFT_HINTED: &str = "*mangle\n:KUBE-IPTABLES-HINT - [0:0]\nCOMMIT\n";

    #[test]
    fn kubelet_hint_wins_over_counts() {
        let legacy = "*nat\n-A OUTPUT -j ACCEPT\n-A OUTPUT -j ACCEPT\nCOMMIT\n";
        assert_eq!(choose(legacy, NFT_HINTED).backend, Backend::Nft);
        let hinted = "*mangle\n:KUBE-KUBELET-CANARY - [0:0]\nCOMMIT\n";
        assert_eq!(choose(hinted, "").backend, Backend::Legacy);
    }

    #[test]
    fn more_legacy_rules_means_legacy() {
        let legacy = "*filter\n-A INPUT -j ACCEPT\nCOMMIT\n";
        let detection = choose(legacy, "");
        assert_eq!(detection.backend, Backend::Legacy);
        assert_eq!(detection.reason, "1 legacy rule(s), 0 nft rule(s)");
    }

    #[test]
    fn no_rules_or_a_tie_means_nft() {
        assert_eq!(choose("", "").backend, Backend::Nft);
        let one = "*nat\n-A OUTPUT -j ACCEPT\nCOMMIT\n";
        assert_eq!(choose(one, one).backend, Backend::Nft);
    }

    #[test]
    fn binary_names_follow_family_and_backend() {
        assert_eq!(Backend::Nft.restore(Family::V4), "iptables-nft-restore");
        assert_eq!(Backend::Legacy.save(Family::V6), "ip6tables-legacy-save");
    }
}
