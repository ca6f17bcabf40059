//! The mesh's injection settings (the chart's `mesh-injector` ConfigMap, `settings.yaml`) and
//! the form the mutation uses once the cluster's version has decided native sidecars.

use std::{collections::BTreeMap, path::Path};

use k8s_openapi::{
    api::core::v1::ResourceRequirements, apimachinery::pkg::api::resource::Quantity,
};
use serde::{Deserialize, Serialize};

/// The first Kubernetes minor version (1.x) with native sidecars on by default.
pub const NATIVE_SIDECARS_SINCE_MINOR: u32 = 29;

/// What the chart writes to `settings.yaml`; every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct InjectionSettings {
    /// The image holding `mesh-proxy` and `mesh-init`.
    pub image: String,
    /// The image pull policy of both containers; Kubernetes' default when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    /// The control plane's discovery address the sidecars dial.
    pub discovery_address: String,
    /// Whether the sidecar runs as a native sidecar (an init container that keeps running).
    pub native_sidecars: NativeSidecars,
    /// The sidecar's own settings.
    pub proxy: ProxySettings,
}

/// The sidecar container's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ProxySettings {
    /// The proxy's log filter (`MESH_PROXY_LOG`).
    pub log_level: String,
    /// The proxy's worker threads (`MESH_PROXY_CONCURRENCY`).
    pub concurrency: u32,
    /// Requests and limits of the sidecar and the init container.
    pub resources: ResourceRequirements,
}

/// `nativeSidecars`: `auto` (by the cluster's version), `true` or `false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "NativeSidecarsText", into = "NativeSidecarsText")]
pub enum NativeSidecars {
    /// Native sidecars on Kubernetes ≥ 1.29, or when the version is not known.
    #[default]
    Auto,
    /// Always native sidecars.
    Always,
    /// Never: the proxy is the first container, holding the app until it is ready.
    Never,
}

/// The written forms of [`NativeSidecars`]: a YAML boolean or `"auto"`/`"true"`/`"false"`.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum NativeSidecarsText {
    Flag(bool),
    Word(String),
}

impl TryFrom<NativeSidecarsText> for NativeSidecars {
    type Error = String;

    fn try_from(text: NativeSidecarsText) -> Result<Self, String> {
        match text {
            NativeSidecarsText::Flag(true) => Ok(NativeSidecars::Always),
            NativeSidecarsText::Flag(false) => Ok(NativeSidecars::Never),
            NativeSidecarsText::Word(word) => match word.as_str() {
                "auto" => Ok(NativeSidecars::Auto),
                "true" => Ok(NativeSidecars::Always),
                "false" => Ok(NativeSidecars::Never),
                other => Err(format!(
                    "nativeSidecars must be auto, true or false, not {other:?}"
                )),
            },
        }
    }
}

impl From<NativeSidecars> for NativeSidecarsText {
    fn from(value: NativeSidecars) -> Self {
        match value {
            NativeSidecars::Auto => NativeSidecarsText::Word("auto".to_owned()),
            NativeSidecars::Always => NativeSidecarsText::Flag(true),
            NativeSidecars::Never => NativeSidecarsText::Flag(false),
        }
    }
}

/// Why the settings file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file could not be read.
    #[error("cannot read the injection settings {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid settings YAML.
    #[error("the injection settings {path} are not valid: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, with the field.
        message: String,
    },
}

impl Default for InjectionSettings {
    fn default() -> Self {
        InjectionSettings {
            image: format!("mesh:{}", env!("CARGO_PKG_VERSION")),
            image_pull_policy: None,
            discovery_address: "https://mesh-control-plane.mesh-system.svc:15012".to_owned(),
            native_sidecars: NativeSidecars::Auto,
            proxy: ProxySettings::default(),
        }
    }
}

impl Default for ProxySettings {
    fn default() -> Self {
        let quantities = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
                .collect::<BTreeMap<_, _>>()
        };
        ProxySettings {
            log_level: "info".to_owned(),
            concurrency: 2,
            resources: ResourceRequirements {
                requests: Some(quantities(&[("cpu", "100m"), ("memory", "64Mi")])),
                limits: Some(quantities(&[("memory", "256Mi")])),
                ..ResourceRequirements::default()
            },
        }
    }
}

impl InjectionSettings {
    /// Reads settings YAML; unknown fields are errors that name the field.
    pub fn parse(text: &str, path: &str) -> Result<Self, SettingsError> {
        serde_yaml::from_str(text).map_err(|e| SettingsError::Invalid {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Reads the settings file.
    pub fn load(path: &Path) -> Result<Self, SettingsError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    /// The settings for a cluster at Kubernetes 1.`minor` (`None`: not known).
    pub fn for_cluster(self, minor: Option<u32>) -> InjectionConfig {
        let native_sidecars = match self.native_sidecars {
            NativeSidecars::Always => true,
            NativeSidecars::Never => false,
            NativeSidecars::Auto => minor.is_none_or(|m| m >= NATIVE_SIDECARS_SINCE_MINOR),
        };
        InjectionConfig {
            settings: self,
            native_sidecars,
        }
    }
}

/// The settings with native sidecars decided: what the mutation reads.
#[derive(Debug, Clone, PartialEq)]
pub struct InjectionConfig {
    /// The settings as written.
    pub settings: InjectionSettings,
    /// Whether the sidecar is a native sidecar.
    pub native_sidecars: bool,
}

/// The minor version from a Kubernetes `version.minor`, e.g. `"29"` or `"29+"`.
pub fn parse_minor(minor: &str) -> Option<u32> {
    minor.trim_end_matches('+').parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_shaped_settings_read() {
        let settings = InjectionSettings::parse(
            "image: reg.example/mesh:1.2\nimagePullPolicy: Always\n\
             discoveryAddress: https://cp.mesh.svc:15012\nnativeSidecars: false\n\
             proxy:\n  logLevel: debug\n  concurrency: 4\n  resources:\n    requests: {cpu: 50m}\n",
            "settings.yaml",
        )
        .expect("valid");
        assert_eq!(settings.image, "reg.example/mesh:1.2");
        assert_eq!(settings.native_sidecars, NativeSidecars::Never);
        assert_eq!(settings.proxy.concurrency, 4);
        assert_eq!(
            settings.proxy.resources.requests.expect("requests")["cpu"],
            Quantity("50m".to_owned())
        );
    }

    #[test]
    fn unknown_fields_and_bad_words_are_named() {
        let error = InjectionSettings::parse("imagePullPolicey: Always\n", "s.yaml")
            .expect_err("unknown field");
        assert!(error.to_string().contains("imagePullPolicey"), "{error}");
        let error =
            InjectionSettings::parse("nativeSidecars: sometimes\n", "s.yaml").expect_err("bad");
        assert!(error.to_string().contains("sometimes"), "{error}");
    }

    #[test]
    fn auto_follows_the_cluster_version() {
        let auto = InjectionSettings::default();
        assert!(auto.clone().for_cluster(Some(29)).native_sidecars);
        assert!(!auto.clone().for_cluster(Some(28)).native_sidecars);
        assert!(auto.for_cluster(None).native_sidecars);
        assert_eq!(parse_minor("30+"), Some(30));
        assert_eq!(parse_minor("x"), None);
    }
}
