//! Keeps every Gateway of class mesh running, in a cluster: after each change of the store, each
//! such Gateway's ServiceAccount, Deployment and Service are created when missing and merged
//! (JSON merge patch) when what `render` makes has changed since they were last written.
//! Deleting a Gateway lets Kubernetes' garbage collector remove them: the Gateway owns them.
//! A write that fails is retried after a pause; a Gateway that cannot run is logged.

use std::{collections::HashMap, time::Duration};

use gateway_api::{gatewayclasses::GatewayClass, gateways::Gateway};
use k8s_openapi::NamespaceResourceScope;
use kube::{
    Api, Client, Resource,
    api::{Patch, PatchParams, PostParams},
};
use mesh_injector::InjectionConfig;
use serde::{Serialize, de::DeserializeOwned};
use tokio::sync::watch;

use super::{GatewayWorkload, render};
use crate::{store::Store, translate::CONTROLLER_NAME};

/// How long to wait before retrying writes that failed.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// What was last written, by (kind, namespace, name).
type Written = HashMap<(String, String, String), serde_json::Value>;

/// Runs the workloads of the store's mesh Gateways until the store's sender is gone.
pub async fn run(client: Client, config: InjectionConfig, mut store: watch::Receiver<Store>) {
    let mut written = Written::new();
    let mut retry = false;
    loop {
        if retry {
            tokio::select! {
                changed = store.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(RETRY_AFTER) => {}
            }
        } else if store.changed().await.is_err() {
            return;
        }
        let workloads = workloads(&store.borrow_and_update(), &config);
        let mut ok = true;
        for workload in workloads {
            ok &= apply(&client, &workload.service_account, &mut written).await;
            ok &= apply(&client, &workload.deployment, &mut written).await;
            ok &= apply(&client, &workload.service, &mut written).await;
        }
        retry = !ok;
    }
}

/// The workloads of the store's Gateways whose class names mesh's controller.
fn workloads(store: &Store, config: &InjectionConfig) -> Vec<GatewayWorkload> {
    let ours = |class: &str| {
        store.list::<GatewayClass>().any(|c| {
            c.metadata.name.as_deref() == Some(class) && c.spec.controller_name == CONTROLLER_NAME
        })
    };
    (store.list::<Gateway>())
        .filter(|gateway| ours(&gateway.spec.gateway_class_name))
        .filter_map(|gateway| match render(gateway, config) {
            Ok(workload) => Some(workload),
            Err(error) => {
                let name = gateway.metadata.name.as_deref().unwrap_or_default();
                let namespace = gateway.metadata.namespace.as_deref().unwrap_or_default();
                tracing::warn!(gateway = %format!("{namespace}/{name}"), %error,
                    "the Gateway cannot run");
                None
            }
        })
        .collect()
}

/// Creates `object`, or merges it into the one there, unless it was written as it is; false
/// when the write failed.
async fn apply<K>(client: &Client, object: &K, written: &mut Written) -> bool
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Serialize
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let kind = K::kind(&()).into_owned();
    let namespace = object.meta().namespace.clone().unwrap_or_default();
    let name = object.meta().name.clone().unwrap_or_default();
    let Ok(mut body) = serde_json::to_value(object) else {
        return true;
    };
    body["apiVersion"] = K::api_version(&()).into_owned().into();
    body["kind"] = kind.clone().into();
    let key = (kind.clone(), namespace.clone(), name.clone());
    if written.get(&key) == Some(&body) {
        return true;
    }
    let api: Api<K> = Api::namespaced(client.clone(), &namespace);
    let result = match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&body))
        .await
    {
        Err(kube::Error::Api(status)) if status.code == 404 => {
            api.create(&PostParams::default(), object).await
        }
        other => other,
    };
    match result {
        Ok(_) => {
            tracing::info!(%kind, %namespace, %name, "gateway workload written");
            written.insert(key, body);
            true
        }
        Err(error) => {
            tracing::warn!(%kind, %namespace, %name, %error,
                "cannot write the gateway workload; will retry");
            false
        }
    }
}
