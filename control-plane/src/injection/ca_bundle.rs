//! The injection webhook's `caBundle`: the MutatingWebhookConfiguration the chart installs has
//! none, and the control plane sets it to the mesh root at start, then checks it again every
//! minute (an upgrade or a person may reset it).

use std::time::Duration;

use k8s_openapi::{ByteString, api::admissionregistration::v1::MutatingWebhookConfiguration};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::json;

/// How often the caBundle is checked once it is right.
const RECHECK: Duration = Duration::from_secs(60);
/// How soon a failed check is tried again.
const RETRY: Duration = Duration::from_secs(5);

/// Sets every webhook's `caBundle` in the configuration `name` to `root_pem`; `Ok(true)` when
/// something changed. Uses a JSON merge patch guarded by the resourceVersion read.
pub async fn patch_ca_bundle(
    client: kube::Client,
    name: &str,
    root_pem: &str,
) -> Result<bool, kube::Error> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client);
    let config = api.get(name).await?;
    let bundle = ByteString(root_pem.as_bytes().to_vec());
    let mut webhooks = config.webhooks.unwrap_or_default();
    let stale = webhooks
        .iter()
        .any(|w| w.client_config.ca_bundle.as_ref() != Some(&bundle));
    if !stale {
        return Ok(false);
    }
    for webhook in &mut webhooks {
        webhook.client_config.ca_bundle = Some(bundle.clone());
    }
    let patch = json!({
        "metadata": { "resourceVersion": config.metadata.resource_version },
        "webhooks": webhooks,
    });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(true)
}

/// Keeps the `caBundle` of configuration `name` at `root_pem`, for as long as the task runs.
pub async fn keep_ca_bundle(client: kube::Client, name: String, root_pem: String) {
    loop {
        let wait = match patch_ca_bundle(client.clone(), &name, &root_pem).await {
            Ok(true) => {
                tracing::info!(webhook = %name, "injection webhook caBundle set to the mesh root");
                RECHECK
            }
            Ok(false) => RECHECK,
            Err(error) => {
                tracing::warn!(webhook = %name, %error,
                    "cannot set the injection webhook's caBundle; the API server cannot call the webhook until it is set");
                RETRY
            }
        };
        tokio::time::sleep(wait).await;
    }
}
