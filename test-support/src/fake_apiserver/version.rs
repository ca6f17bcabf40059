//! `GET /version`: the API server's version, as kube-rs's `apiserver_version` reads it.

use serde_json::{Value, json};

/// The path the version is served on.
pub const PATH: &str = "/version";

/// The version the fake reports.
#[derive(Debug, Clone)]
pub struct Version {
    git_version: String,
}

impl Default for Version {
    fn default() -> Self {
        Version::new("v1.34.0")
    }
}

impl Version {
    /// A version from its `gitVersion`, e.g. `v1.28.3`.
    pub fn new(git_version: &str) -> Self {
        Version {
            git_version: git_version.to_owned(),
        }
    }

    /// The `/version` body: major and minor from the `gitVersion`, the rest filler.
    pub fn body(&self) -> Value {
        let numbers = self.git_version.trim_start_matches('v');
        let mut parts = numbers.split(['.', '-', '+']);
        let major = parts.next().unwrap_or_default();
        let minor = parts.next().unwrap_or_default();
        json!({
            "major": major,
            "minor": minor,
            "gitVersion": self.git_version,
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2025-01-01T00:00:00Z",
            "goVersion": "go1.24.0",
            "compiler": "gc",
            "platform": "linux/amd64",
        })
    }
}
