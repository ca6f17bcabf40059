//! The mesh root kept in a Kubernetes Secret (`--ca-secret`), so every replica and every
//! restart of the control plane signs with the same root: read it when it exists, else make a
//! root and create the Secret; when another replica created it first, read theirs.

use std::{collections::BTreeMap, path::PathBuf};

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api,
    api::{ObjectMeta, PostParams},
};

use super::{CaError, MeshRoot};

/// The Secret key of the root certificate (PEM).
pub const CERT_KEY: &str = "ca-cert.pem";
/// The Secret key of the root's private key (PEM, PKCS#8).
pub const KEY_KEY: &str = "ca-key.pem";

/// Why the root could not be had from its Secret.
#[derive(Debug, thiserror::Error)]
pub enum RootSecretError {
    /// The API server refused or failed a request.
    #[error("Secret {namespace}/{name}: {error}")]
    Api {
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// The API error.
        error: Box<kube::Error>,
    },
    /// The Secret holds no usable root.
    #[error("Secret {namespace}/{name}: {error}")]
    Root {
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// What is wrong with the root in it.
        error: CaError,
    },
}

/// The root in Secret `namespace/name`, created with a new root when there is none.
pub async fn load_or_create(
    client: kube::Client,
    namespace: &str,
    name: &str,
) -> Result<MeshRoot, RootSecretError> {
    let secrets: Api<Secret> = Api::namespaced(client, namespace);
    let api_error = |error| RootSecretError::Api {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        error: Box::new(error),
    };
    if let Some(secret) = secrets.get_opt(name).await.map_err(api_error)? {
        tracing::info!(%namespace, %name, "loading the mesh root CA from its Secret");
        return root_from(&secret, namespace, name);
    }
    let root = MeshRoot::generate().map_err(|error| RootSecretError::Root {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        error,
    })?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some([("app.kubernetes.io/part-of".to_owned(), "mesh".to_owned())].into()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            (
                CERT_KEY.to_owned(),
                ByteString(root.cert_pem().as_bytes().to_vec()),
            ),
            (KEY_KEY.to_owned(), ByteString(root.key_pem().into_bytes())),
        ])),
        ..Secret::default()
    };
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            tracing::info!(%namespace, %name, "generated a mesh root CA and stored it in a Secret");
            Ok(root)
        }
        // Another replica stored its root first: use that one.
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let secret = secrets.get(name).await.map_err(api_error)?;
            root_from(&secret, namespace, name)
        }
        Err(error) => Err(api_error(error)),
    }
}

fn root_from(secret: &Secret, namespace: &str, name: &str) -> Result<MeshRoot, RootSecretError> {
    let origin = |key: &str| PathBuf::from(format!("Secret {namespace}/{name} key {key}"));
    let text = |key: &str| -> Result<String, CaError> {
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .ok_or_else(|| CaError::Certificate {
                path: origin(key),
                reason: "the key is missing".to_owned(),
            })?;
        String::from_utf8(bytes.0.clone()).map_err(|_| CaError::Certificate {
            path: origin(key),
            reason: "it is not UTF-8 PEM".to_owned(),
        })
    };
    let loaded = text(CERT_KEY).and_then(|cert| {
        MeshRoot::from_pem(cert, &text(KEY_KEY)?, &origin(CERT_KEY), &origin(KEY_KEY))
    });
    loaded.map_err(|error| RootSecretError::Root {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        error,
    })
}
