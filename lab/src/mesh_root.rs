//! The lab's mesh root CA, made once per lab in its state folder, as a cluster keeps it in a
//! Secret: the control plane signs its discovery certificate and the workload certificates with
//! it (so a restarted control plane is still trusted) and every sidecar verifies the control
//! plane against it. Beside it, the key of the lab's CA tokens: the lab signs each sidecar a
//! token with it, as kubelet projects a service-account token, and the control plane checks
//! them with it.

use std::{io::Write, os::unix::fs::OpenOptionsExt, path::PathBuf};

use mesh_control_plane::ca::{MeshRoot, lab_token::LabTokenKey};

use crate::{state, supervisor::LabError};

/// The root certificate (PEM), readable by the sidecars' uid.
pub fn cert_path(lab: &str) -> PathBuf {
    state::lab_dir(lab).join("ca").join("root-cert.pem")
}

/// The root's private key (PEM), readable by root only.
pub fn key_path(lab: &str) -> PathBuf {
    state::lab_dir(lab).join("ca").join("root-key.pem")
}

/// The key of the lab's CA tokens, readable by root only.
pub fn token_key_path(lab: &str) -> PathBuf {
    state::lab_dir(lab).join("ca").join("token-key")
}

/// Where each pod's sidecar volumes (its CA token, the mesh root, its labels) are written.
pub fn volumes_dir(lab: &str) -> PathBuf {
    state::lab_dir(lab).join("volumes")
}

/// Generates the lab's root and token key and writes them.
pub fn create(lab: &str) -> Result<(), LabError> {
    let root = MeshRoot::generate()?;
    let io = |what: &str| {
        let what = format!("{what} of the lab's mesh root");
        move |source| LabError::Io { what, source }
    };
    let cert = cert_path(lab);
    if let Some(dir) = cert.parent() {
        std::fs::create_dir_all(dir).map_err(io("the folder"))?;
    }
    write(&cert, root.cert_pem(), 0o644).map_err(io("the certificate"))?;
    write(&key_path(lab), &root.key_pem(), 0o600).map_err(io("the key"))?;
    let token_key = LabTokenKey::generate().map_err(|e| LabError::Io {
        what: "the token key".to_owned(),
        source: std::io::Error::other(e.to_string()),
    })?;
    write(&token_key_path(lab), &token_key.to_text(), 0o600).map_err(io("the token key"))
}

fn write(path: &std::path::Path, contents: &str, mode: u32) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)?
        .write_all(contents.as_bytes())
}
