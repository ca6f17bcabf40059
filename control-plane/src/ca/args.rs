//! The command line of the CA and of the discovery port's TLS.

use std::{path::PathBuf, sync::Arc, time::Duration};

use rustls::ServerConfig;

use super::{
    CaError, MeshRoot, ServingCert, lab_token::LabTokenKey, workload::DEFAULT_WORKLOAD_TTL,
};

/// CA options; every option also reads from the environment variable named.
#[derive(clap::Args, Debug, Clone)]
pub struct CaArgs {
    /// The mesh root CA certificate (PEM), with --ca-key; without both, a root is generated at
    /// start (and proxies must be given the new one).
    #[arg(long, env = "MESH_CA_CERT", requires = "ca_key")]
    pub ca_cert: Option<PathBuf>,
    /// The mesh root CA's private key (PEM, PKCS#8).
    #[arg(long, env = "MESH_CA_KEY", requires = "ca_cert")]
    pub ca_key: Option<PathBuf>,
    /// Write the root certificate (PEM) to this file, for proxies' --discovery-root-cert.
    #[arg(long, env = "MESH_ROOT_CERT_OUT")]
    pub root_cert_out: Option<PathBuf>,
    /// Another name (DNS name or IP address) for the discovery server's certificate, besides
    /// mesh-control-plane[.mesh-system[.svc[.cluster.local]]]; repeat or separate with commas.
    #[arg(long = "xds-san", env = "MESH_XDS_SANS", value_delimiter = ',')]
    pub xds_sans: Vec<String>,
    /// Serve the discovery API as plain h2c, without TLS: for clients that speak only h2c (the
    /// simulated proxies of tests and the bench; the lab until its sidecars get the mesh root).
    #[arg(long, env = "MESH_PLAINTEXT_XDS",
        conflicts_with_all = ["ca_cert", "ca_key", "root_cert_out", "xds_sans"])]
    pub plaintext_xds: bool,
    /// How long workload certificates last, e.g. 24h or 60s; sidecars renew at half.
    #[arg(long, env = "MESH_WORKLOAD_CERT_TTL", default_value = "24h", value_parser = parse_ttl)]
    pub workload_cert_ttl: Duration,
    /// Keep the mesh root in this Secret of the control plane's namespace (keys ca-cert.pem
    /// and ca-key.pem): read when it exists, else generated and stored (needs Kubernetes).
    #[arg(long, env = "MESH_CA_SECRET", conflicts_with_all = ["ca_cert", "ca_key", "plaintext_xds"])]
    pub ca_secret: Option<String>,
    /// Check CA callers' tokens with this lab token key instead of a TokenReview (the lab).
    #[arg(long, env = "MESH_LAB_TOKEN_KEY")]
    pub lab_token_key: Option<PathBuf>,
}

impl Default for CaArgs {
    fn default() -> Self {
        CaArgs {
            ca_cert: None,
            ca_key: None,
            root_cert_out: None,
            xds_sans: Vec::new(),
            plaintext_xds: false,
            workload_cert_ttl: DEFAULT_WORKLOAD_TTL,
            ca_secret: None,
            lab_token_key: None,
        }
    }
}

impl CaArgs {
    /// The mesh root: loaded from --ca-cert and --ca-key, else generated; written to
    /// --root-cert-out when given.
    pub fn root(&self) -> Result<MeshRoot, CaError> {
        let (root, generated) = match (&self.ca_cert, &self.ca_key) {
            (Some(cert), Some(key)) => {
                tracing::info!(cert = %cert.display(), "loading the mesh root CA");
                (MeshRoot::load(cert, key)?, false)
            }
            _ => {
                tracing::info!(
                    "generating a mesh root CA (give --ca-cert and --ca-key to keep one across restarts)"
                );
                (MeshRoot::generate()?, true)
            }
        };
        match &self.root_cert_out {
            Some(path) => {
                root.write_cert(path)?;
                tracing::info!(path = %path.display(), "mesh root certificate written");
            }
            None if generated => tracing::warn!(
                "no --root-cert-out: proxies cannot get the generated root to trust the discovery server"
            ),
            None => {}
        }
        Ok(root)
    }

    /// The discovery port's TLS config, its certificate signed by `root`, or `None` with
    /// --plaintext-xds.
    pub fn discovery_tls(&self, root: &MeshRoot) -> Result<Option<Arc<ServerConfig>>, CaError> {
        if self.plaintext_xds {
            tracing::warn!("--plaintext-xds: the discovery API is served without TLS");
            return Ok(None);
        }
        ServingCert::issue(root, &self.xds_sans)?
            .server_config(&[b"h2"])
            .map(Some)
    }

    /// The lab token key, when --lab-token-key is given.
    pub fn lab_tokens(&self) -> Result<Option<LabTokenKey>, super::lab_token::LabKeyError> {
        self.lab_token_key
            .as_deref()
            .map(LabTokenKey::load)
            .transpose()
    }
}

/// A Go-style duration of at least 10 s, e.g. "24h" or "60s".
fn parse_ttl(text: &str) -> Result<Duration, String> {
    let parsed = crate::translate::duration::parse_duration(text)?;
    let ttl = Duration::try_from(parsed).map_err(|e| format!("{text:?}: {e}"))?;
    if ttl < Duration::from_secs(10) {
        return Err(format!("{text:?} is shorter than the 10 s minimum"));
    }
    Ok(ttl)
}
