//! One node's kube-proxy: syncs the node namespace's iptables to a set of Service ports.

use mesh_init::Family;
use mesh_init::backend::{self, Backend};

use super::conntrack::{StaleUdpFlows, stale_udp_flows};
use super::{ExistingRules, KubeProxyError, ProxierConfig, ServicePort, netns_command};

/// kube-proxy in iptables mode for one node, bound to the node's network namespace (a name
/// as `ip netns exec` takes it). Its methods block on `iptables-*` processes; call them from
/// `spawn_blocking` in async code.
#[derive(Debug)]
pub struct KubeProxy {
    netns: String,
    backend: Backend,
    /// The Service ports of the last successful sync, to find stale UDP flows.
    synced: Vec<ServicePort>,
}

// === impl KubeProxy ===

impl KubeProxy {
    /// A kube-proxy for node namespace `netns`, writing through the iptables backend the host
    /// already uses (mesh-init's detection).
    pub fn new(netns: impl Into<String>) -> Result<KubeProxy, KubeProxyError> {
        let detection = backend::detect(&[Family::V4]).ok_or(KubeProxyError::NoIptables)?;
        tracing::debug!(
            backend = %detection.backend,
            reason = %detection.reason,
            "kube-proxy chose an iptables backend"
        );
        Ok(KubeProxy::with_backend(netns, detection.backend))
    }

    /// A kube-proxy for node namespace `netns` that writes through `backend`.
    pub fn with_backend(netns: impl Into<String>, backend: Backend) -> KubeProxy {
        KubeProxy {
            netns: netns.into(),
            backend,
            synced: Vec::new(),
        }
    }

    /// The node's network namespace.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// The iptables backend rules are written through.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The node's tables as `iptables-save` prints them.
    pub fn save(&self) -> Result<String, KubeProxyError> {
        let output = netns_command::run(&self.netns, &self.backend.save(Family::V4), &[], None)?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Brings the node's rules to exactly `services` (a full resync: one `iptables-restore
    /// --noflush` transaction per table; repeating it changes nothing), then deletes the UDP
    /// conntrack entries the change made stale, if the `conntrack` tool is installed.
    pub fn sync(
        &mut self,
        config: &ProxierConfig,
        services: &[ServicePort],
    ) -> Result<(), KubeProxyError> {
        let existing = ExistingRules::parse(&self.save()?);
        let input = super::restore_input(config, services, &existing)?;
        let restore = self.backend.restore(Family::V4);
        netns_command::run(
            &self.netns,
            &restore,
            &["--noflush", "--wait"],
            Some(&input),
        )?;
        tracing::debug!(netns = %self.netns, services = services.len(), "kube-proxy synced");
        let stale = stale_udp_flows(&self.synced, services);
        self.synced = services.to_vec();
        self.delete_flows(&stale);
        Ok(())
    }

    /// Deletes stale UDP flows; best effort, as in kube-proxy: a failure is logged, and
    /// without the `conntrack` tool the flows simply expire.
    fn delete_flows(&self, stale: &[StaleUdpFlows]) {
        if stale.is_empty() {
            return;
        }
        if backend::find_binary("conntrack").is_none() {
            tracing::debug!(
                netns = %self.netns,
                "conntrack is not installed; stale UDP flows to Services expire on their own"
            );
            return;
        }
        for flows in stale {
            let args = flows.conntrack_args();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            match netns_command::output(&self.netns, "conntrack", &args, None) {
                // conntrack exits 1 when nothing matched.
                Ok(out) if out.status.success() => {}
                Ok(out) if String::from_utf8_lossy(&out.stderr).contains(" 0 flow entries") => {}
                Ok(out) => tracing::warn!(
                    netns = %self.netns,
                    ?args,
                    stderr = %String::from_utf8_lossy(&out.stderr).trim(),
                    "could not delete stale UDP flows; they expire on their own"
                ),
                Err(error) => tracing::warn!(%error, "could not delete stale UDP flows"),
            }
        }
    }
}
