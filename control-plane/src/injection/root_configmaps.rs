//! ConfigMap `mesh-root-cert` in every namespace: the mesh root certificate that injected
//! sidecars mount to trust the control plane. Written for every namespace the store knows,
//! for each new namespace as it appears, and rewritten every ten minutes so an edited or
//! deleted ConfigMap comes back.

use std::{collections::BTreeSet, time::Duration};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::{
    Api,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
};
use mesh_injector::{ROOT_CERT_CONFIGMAP, ROOT_CERT_KEY};
use serde_json::json;
use tokio::sync::watch;

use crate::store::Store;

/// How often every namespace's ConfigMap is written again.
const RESYNC: Duration = Duration::from_secs(600);
/// How soon namespaces whose write failed are tried again.
const RETRY: Duration = Duration::from_secs(5);

/// Writes ConfigMap `mesh-root-cert` with `root_pem` into `namespace`: created, or its data
/// replaced when it exists.
pub async fn write_root_configmap(
    client: kube::Client,
    namespace: &str,
    root_pem: &str,
) -> Result<(), kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client, namespace);
    let configmap = ConfigMap {
        metadata: ObjectMeta {
            name: Some(ROOT_CERT_CONFIGMAP.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some([("app.kubernetes.io/part-of".to_owned(), "mesh".to_owned())].into()),
            ..ObjectMeta::default()
        },
        data: Some([(ROOT_CERT_KEY.to_owned(), root_pem.to_owned())].into()),
        ..ConfigMap::default()
    };
    match api.create(&PostParams::default(), &configmap).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let patch = json!({ "data": { ROOT_CERT_KEY: root_pem } });
            api.patch(
                ROOT_CERT_CONFIGMAP,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map(drop)
        }
        Err(error) => Err(error),
    }
}

/// Keeps `mesh-root-cert` in every namespace of `store`, for as long as the task runs.
pub async fn publish_root_configmaps(
    client: kube::Client,
    root_pem: String,
    mut store: watch::Receiver<Store>,
) {
    let mut written = BTreeSet::new();
    let mut resync = tokio::time::interval(RESYNC);
    resync.tick().await;
    loop {
        let namespaces: BTreeSet<String> = store
            .borrow_and_update()
            .list::<Namespace>()
            .filter(|n| n.metadata.deletion_timestamp.is_none())
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        written.retain(|n| namespaces.contains(n));
        let mut failed = false;
        for namespace in namespaces.difference(&written.clone()) {
            match write_root_configmap(client.clone(), namespace, &root_pem).await {
                Ok(()) => {
                    tracing::debug!(%namespace, "mesh-root-cert written");
                    written.insert(namespace.clone());
                }
                Err(error) => {
                    tracing::warn!(%namespace, %error, "cannot write ConfigMap mesh-root-cert");
                    failed = true;
                }
            }
        }
        tokio::select! {
            changed = store.changed() => if changed.is_err() { return },
            _ = resync.tick() => written.clear(),
            _ = tokio::time::sleep(RETRY), if failed => {}
        }
    }
}
