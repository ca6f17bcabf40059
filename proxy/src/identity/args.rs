//! The command line of the identity: where the CA token is and how long a certificate to ask for.

use std::{path::PathBuf, time::Duration};

/// Identity options; every option also reads from the environment variable named.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct IdentityArgs {
    /// The pod's token for the CA (the projected service-account token with audience mesh-ca,
    /// or the lab's token); with it the proxy gets a workload certificate from the control
    /// plane and speaks mutual TLS to meshed peers. Read again at every renewal.
    #[arg(long, env = "MESH_CA_TOKEN_FILE", requires = "discovery_address")]
    pub ca_token_file: Option<PathBuf>,
    /// The certificate lifetime to ask for, e.g. "60s" (the CA caps it at its own).
    #[arg(long, env = "MESH_CERT_LIFETIME", value_parser = crate::duration::parse)]
    pub cert_lifetime: Option<Duration>,
}
