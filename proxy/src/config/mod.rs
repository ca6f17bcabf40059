//! Proxy configuration: reading the static YAML file, compiling it into a `Snapshot`, and
//! reloading it on SIGHUP or file change.

mod cluster;
mod encoded;
mod listener;
mod reload;
mod snapshot;

use std::path::{Path, PathBuf};

use mesh_proto::config::v1::ProxyConfig;

pub use cluster::{Cluster, UpstreamTls};
pub use encoded::EncodedConfig;
pub use listener::{AppProtocol, ListenerConfig, TcpRouting};
pub use reload::{ConfigStore, FileWatcher};
pub use snapshot::Snapshot;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid YAML for the config model.
    #[error("config file {path} is not a valid proxy config: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's error, with line and column.
        source: serde_yaml::Error,
    },
    /// The config parsed but some fields are invalid.
    #[error("config {origin} has {} invalid field(s); nothing was applied:\n  - {}", errors.len(), errors.join("\n  - "))]
    Invalid {
        /// Where the config came from.
        origin: String,
        /// One message per invalid field.
        errors: Vec<String>,
    },
}

/// Reads and parses a YAML (or JSON) config file.
pub fn read_file(path: &Path) -> Result<ProxyConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path)
}

/// Parses config text; an empty document is an empty config.
pub fn parse(text: &str, path: &Path) -> Result<ProxyConfig, ConfigError> {
    if text.trim().is_empty() {
        return Ok(ProxyConfig::default());
    }
    serde_yaml::from_str(text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests;
