//! Where the control plane's monitoring port and a sidecar's admin port are: given as URLs,
//! or found in a running lab (the control plane pod in `mesh-system`, the pod's own netns).

use anyhow::{Context, bail};
use mesh_lab::state::{LabState, StateError};

use crate::http_get::Endpoint;

/// The control plane's monitoring port (`/debug/syncz`, `/debug/config`).
pub const MONITORING_PORT: u16 = 15014;

/// A sidecar's admin port (`/config_dump`), on its pod's localhost.
pub const PROXY_ADMIN_PORT: u16 = 15000;

/// The namespace the lab runs the control plane in.
const CONTROL_PLANE_NAMESPACE: &str = "mesh-system";

/// The name every control-plane pod starts with.
const CONTROL_PLANE_POD_PREFIX: &str = "mesh-control-plane";

/// The sidecar's container name in a lab pod.
pub(crate) const SIDECAR: &str = "mesh-proxy";

/// A control plane found: how to reach it and the name `proxy-status` shows for it.
#[derive(Debug, Clone)]
pub struct ControlPlane {
    /// Its monitoring port.
    pub endpoint: Endpoint,
    /// Its pod name in a lab, else its URL's `host:port`.
    pub name: String,
}

/// The control plane at `url`, else the one running in the lab `lab`.
pub fn control_plane(url: Option<&str>, lab: &str) -> anyhow::Result<ControlPlane> {
    if let Some(url) = url {
        let endpoint = Endpoint::parse_url(url).context("--control-plane")?;
        let name = endpoint
            .to_string()
            .trim_start_matches("http://")
            .to_owned();
        return Ok(ControlPlane { endpoint, name });
    }
    let state = read_lab(
        lab,
        "no control plane given: pass --control-plane URL (or set MESH_CONTROL_PLANE)",
    )?;
    let prefix = format!("{CONTROL_PLANE_NAMESPACE}/{CONTROL_PLANE_POD_PREFIX}");
    let mut candidates: Vec<_> = state
        .pods
        .iter()
        .filter(|(key, _)| key.starts_with(&prefix))
        .collect();
    // A ready one first; among equals, the first by name.
    candidates.sort_by_key(|(key, status)| (!status.ready, key.as_str()));
    let Some((key, status)) = candidates.first() else {
        bail!(
            "lab {lab} runs no control plane (no pod {prefix}* in its state); \
             pass --control-plane URL to reach one elsewhere"
        );
    };
    Ok(ControlPlane {
        endpoint: Endpoint::InPod {
            pod: (*key).clone(),
            netns: status.netns.clone(),
            port: MONITORING_PORT,
        },
        name: key
            .rsplit_once('/')
            .map_or(key.as_str(), |(_, name)| name)
            .to_owned(),
    })
}

/// The admin port of the sidecar in pod `namespace/name`: at `url`, else in the lab `lab`.
pub fn proxy_admin(
    url: Option<&str>,
    lab: &str,
    namespace: &str,
    name: &str,
) -> anyhow::Result<Endpoint> {
    if let Some(url) = url {
        return Endpoint::parse_url(url).context("--proxy-admin");
    }
    let state = read_lab(lab, "no proxy admin given: pass --proxy-admin URL")?;
    let key = format!("{namespace}/{name}");
    let Some(status) = state.pods.get(&key) else {
        bail!("lab {lab} has no pod {key} (see `mesh lab status`)");
    };
    if !status.containers.contains_key(SIDECAR) {
        bail!("pod {key} in lab {lab} has no {SIDECAR} sidecar: nothing to compare");
    }
    Ok(Endpoint::InPod {
        pod: key,
        netns: status.netns.clone(),
        port: PROXY_ADMIN_PORT,
    })
}

/// The lab's state; when none runs, `instead` says what else the user could do.
pub(crate) fn read_lab(lab: &str, instead: &str) -> anyhow::Result<LabState> {
    match LabState::read(lab) {
        Ok(state) => Ok(state),
        Err(StateError::NotRunning(_)) => bail!(
            "{instead}, or start a lab: no lab named {lab} is running \
             (`mesh lab up -f DIR`, or --lab NAME for another one)"
        ),
        Err(other) => Err(other.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_wins_over_the_lab_and_names_the_control_plane() {
        let found = control_plane(Some("http://127.0.0.1:15014"), "no-such-lab").expect("url");
        assert_eq!(found.name, "127.0.0.1:15014");
        let admin =
            proxy_admin(Some("http://127.0.0.1:15000"), "no-such-lab", "shop", "web").expect("url");
        assert_eq!(admin.to_string(), "http://127.0.0.1:15000");
    }

    #[test]
    fn without_a_url_or_a_lab_the_error_says_what_to_pass() {
        let lab = "mesh-cli-test-no-such-lab";
        let error = format!("{:#}", control_plane(None, lab).expect_err("no lab"));
        assert!(error.contains("--control-plane URL"), "{error}");
        assert!(
            error.contains(&format!("no lab named {lab} is running")),
            "{error}"
        );
        let error = format!(
            "{:#}",
            proxy_admin(None, lab, "shop", "web").expect_err("no lab")
        );
        assert!(error.contains("--proxy-admin URL"), "{error}");
    }
}
