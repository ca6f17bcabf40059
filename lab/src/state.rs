//! What a running lab records about itself in `/run/mesh-lab/<name>/state.json`: enough for
//! `mesh lab status`, `exec` and `logs` to work from another process, and for `down` to
//! find the supervisor.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::cluster::ClusterPlan;

/// Where labs keep their state, one folder per lab.
pub const STATE_ROOT: &str = "/run/mesh-lab";

/// A lab's recorded state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabState {
    /// The lab's name.
    pub name: String,
    /// The supervisor's process id.
    pub supervisor_pid: u32,
    /// The manifests folder it runs.
    pub manifests: PathBuf,
    /// The plan it runs.
    pub plan: ClusterPlan,
    /// Per pod (`namespace/name`): its runtime status.
    pub pods: BTreeMap<String, PodStatus>,
}

/// A pod's runtime status.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PodStatus {
    /// Its network namespace.
    pub netns: String,
    /// Whether it is ready (its endpoints are in Services).
    pub ready: bool,
    /// Per container (the sidecar is `mesh-proxy`): pid while running, and restarts.
    pub containers: BTreeMap<String, ContainerStatus>,
}

/// A container's runtime status.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ContainerStatus {
    /// Its process id while it runs.
    pub pid: Option<u32>,
    /// How often it was restarted.
    pub restarts: u32,
    /// Whether it reported ready (for the sidecar: `/healthz/ready`, so it has its first config).
    pub ready: bool,
    /// How it last ended, if it did.
    pub last_exit: Option<String>,
}

/// A lab's state folder.
pub fn lab_dir(name: &str) -> PathBuf {
    Path::new(STATE_ROOT).join(name)
}

/// Where a pod's container logs go.
pub fn log_file(name: &str, pod_key: &str, container: &str) -> PathBuf {
    lab_dir(name)
        .join("logs")
        .join(pod_key.replace('/', "_"))
        .join(format!("{container}.log"))
}

/// Why a lab's state could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// No lab of that name is running.
    #[error("no lab named {0} is running (start one with `mesh lab up -f DIR`)")]
    NotRunning(String),
    /// The state file is unreadable.
    #[error("cannot read {path}: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl LabState {
    /// Reads the state of the lab called `name`.
    pub fn read(name: &str) -> Result<LabState, StateError> {
        let path = lab_dir(name).join("state.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::NotRunning(name.to_owned()));
            }
            Err(e) => {
                return Err(StateError::Unreadable {
                    path,
                    reason: e.to_string(),
                });
            }
        };
        serde_json::from_str(&text).map_err(|e| StateError::Unreadable {
            path,
            reason: e.to_string(),
        })
    }

    /// Writes the state atomically (a reader never sees half a file).
    pub fn write(&self) -> std::io::Result<()> {
        let dir = lab_dir(&self.name);
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join("state.json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(tmp, dir.join("state.json"))
    }

    /// Finds a pod by `name`, `namespace/name`, or `deploy/NAME` (its first ready pod), in
    /// `namespace` unless the reference names one.
    pub fn find_pod(&self, reference: &str, namespace: Option<&str>) -> Option<String> {
        let (namespace, name) = match reference.split_once('/') {
            Some(("deploy" | "deployment", deployment)) => {
                return self
                    .plan
                    .pods
                    .iter()
                    .filter(|p| p.deployment.as_deref() == Some(deployment))
                    .filter(|p| namespace.is_none_or(|n| n == p.namespace))
                    .map(|p| p.key())
                    .find(|key| self.pods.get(key).is_some_and(|s| s.ready));
            }
            Some((ns, name)) => (Some(ns), name),
            None => (namespace, reference),
        };
        self.plan
            .pods
            .iter()
            .filter(|p| p.name == name && namespace.is_none_or(|n| n == p.namespace))
            .map(|p| p.key())
            .next()
    }
}
