//! The control plane's part in sidecar injection, as istiod does it: it serves the injection
//! webhook (`mesh_injector`'s mutation, HTTPS on 15017 with a certificate from the mesh root),
//! sets the webhook configuration's `caBundle` to the mesh root (`ca_bundle`), and publishes
//! the root to every namespace as ConfigMap `mesh-root-cert` (`root_configmaps`).

pub mod ca_bundle;
pub mod root_configmaps;

use std::{net::SocketAddr, sync::Arc};

use k8s_openapi::api::core::v1::Namespace;
use mesh_injector::{InjectionConfig, webhook::Webhook};
use tokio::sync::watch;

use crate::{
    ca::{MeshRoot, ServingCert},
    store::Store,
};

/// Binds the webhook's port and serves it in a task, with a certificate from `root` for the
/// control plane's names and `extra_names`; namespaces' labels come from `store`.
pub async fn spawn_webhook(
    address: SocketAddr,
    root: &MeshRoot,
    extra_names: &[String],
    config: InjectionConfig,
    store: watch::Receiver<Store>,
) -> anyhow::Result<()> {
    let tls = ServingCert::issue(root, extra_names)?.server_config(&[b"h2", b"http/1.1"])?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| anyhow::anyhow!("cannot bind the webhook port {address}: {e}"))?;
    let webhook = Webhook {
        config: Arc::new(config),
        namespaces: Arc::new(move |name: &str| {
            store
                .borrow()
                .get::<Namespace>("", name)
                .map(|n| Namespace::clone(n))
        }),
    };
    tracing::info!(%address, native_sidecars = webhook.config.native_sidecars, "serving the injection webhook");
    tokio::spawn(mesh_injector::webhook::serve(listener, tls, webhook));
    Ok(())
}
