//! The injection webhook's configuration: present, and every webhook's `caBundle` the mesh
//! root the control plane publishes in ConfigMap `mesh-root-cert` ("caBundle current").

use k8s_openapi::api::{
    admissionregistration::v1::MutatingWebhookConfiguration, core::v1::ConfigMap,
};
use kube::Api;
use mesh_injector::{ROOT_CERT_CONFIGMAP, ROOT_CERT_KEY};

use super::{
    CONTROL_PLANE, INJECTOR_SERVICE, WEBHOOK_CONFIG,
    client::describe,
    report::{Line, Report},
};

/// The Service the webhook configuration calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectorService {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its port.
    pub port: i32,
    /// The webhook's path on it.
    pub path: String,
}

/// Checks the configuration and its caBundle; the Service its first webhook calls (the
/// chart's when there is no configuration).
pub async fn check(client: &kube::Client, namespace: &str, report: &mut Report) -> InjectorService {
    let chart_default = InjectorService {
        namespace: namespace.to_owned(),
        name: INJECTOR_SERVICE.to_owned(),
        port: 443,
        path: "/inject".to_owned(),
    };
    let configs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let config = match configs.get_opt(WEBHOOK_CONFIG).await {
        Ok(Some(config)) => {
            let count = config.webhooks.as_ref().map_or(0, Vec::len);
            let plural = if count == 1 { "" } else { "s" };
            report.line(Line::Pass(format!(
                "MutatingWebhookConfiguration {WEBHOOK_CONFIG} exists ({count} webhook{plural})"
            )));
            config
        }
        Ok(None) => {
            report.line(Line::fail(
                format!("MutatingWebhookConfiguration {WEBHOOK_CONFIG} is missing"),
                format!("install the mesh: helm install mesh charts/mesh -n {namespace}"),
            ));
            return chart_default;
        }
        Err(error) => {
            report.line(Line::fail(
                format!(
                    "cannot read MutatingWebhookConfiguration {WEBHOOK_CONFIG}: {}",
                    describe(&error)
                ),
                "checking the webhook needs get on mutatingwebhookconfigurations",
            ));
            return chart_default;
        }
    };
    let root = root_pem(client, namespace).await;
    report.line(judge_ca_bundle(&config, namespace, root));
    called_service(&config).unwrap_or(chart_default)
}

/// The mesh root from ConfigMap `mesh-root-cert` in the mesh's namespace.
async fn root_pem(client: &kube::Client, namespace: &str) -> Result<String, String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let configmap = api
        .get_opt(ROOT_CERT_CONFIGMAP)
        .await
        .map_err(|e| {
            format!(
                "cannot read ConfigMap {namespace}/{ROOT_CERT_CONFIGMAP}: {}",
                describe(&e)
            )
        })?
        .ok_or_else(|| format!("ConfigMap {namespace}/{ROOT_CERT_CONFIGMAP} is missing"))?;
    configmap
        .data
        .and_then(|mut data| data.remove(ROOT_CERT_KEY))
        .ok_or_else(|| {
            format!("ConfigMap {namespace}/{ROOT_CERT_CONFIGMAP} has no {ROOT_CERT_KEY}")
        })
}

/// "caBundle current": every webhook trusts exactly the published mesh root.
fn judge_ca_bundle(
    config: &MutatingWebhookConfiguration,
    namespace: &str,
    root: Result<String, String>,
) -> Line {
    let logs = format!("kubectl -n {namespace} logs deploy/{CONTROL_PLANE}");
    let root = match root {
        Ok(root) => root,
        Err(why) => {
            return Line::fail(
                format!("cannot compare the caBundle with the mesh root: {why}"),
                format!(
                    "the control plane writes the mesh root there at start: is it running? ({logs})"
                ),
            );
        }
    };
    let webhooks = config.webhooks.as_deref().unwrap_or_default();
    if webhooks.is_empty() {
        return Line::fail(
            format!("MutatingWebhookConfiguration {WEBHOOK_CONFIG} has no webhooks"),
            format!("reinstall the mesh: helm upgrade --install mesh charts/mesh -n {namespace}"),
        );
    }
    let stale: Vec<String> = webhooks
        .iter()
        .filter(|webhook| {
            let bundle = webhook.client_config.ca_bundle.as_ref();
            bundle.is_none_or(|b| b.0.trim_ascii() != root.as_bytes().trim_ascii())
        })
        .map(|webhook| match webhook.client_config.ca_bundle {
            None => format!("{} (none set)", webhook.name),
            Some(_) => webhook.name.clone(),
        })
        .collect();
    if stale.is_empty() {
        return Line::Pass(format!(
            "caBundle current: the mesh root of ConfigMap {namespace}/{ROOT_CERT_CONFIGMAP}"
        ));
    }
    Line::fail(
        format!(
            "caBundle stale in {}: not the mesh root of ConfigMap {namespace}/{ROOT_CERT_CONFIGMAP}",
            stale.join(", ")
        ),
        format!(
            "the control plane sets it at start and every minute; look for \"cannot set the \
             injection webhook's caBundle\" in {logs}"
        ),
    )
}

/// The Service the first webhook calls, if it calls one.
fn called_service(config: &MutatingWebhookConfiguration) -> Option<InjectorService> {
    let webhook = config.webhooks.as_ref()?.first()?;
    let service = webhook.client_config.service.as_ref()?;
    Some(InjectorService {
        namespace: service.namespace.clone(),
        name: service.name.clone(),
        port: service.port.unwrap_or(443),
        path: service.path.clone().unwrap_or_else(|| "/".to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(bundle: Option<&str>) -> MutatingWebhookConfiguration {
        let mut client_config = serde_json::json!({
            "service": {"namespace": "mesh", "name": "mesh-injector", "path": "/inject"}
        });
        if let Some(bundle) = bundle {
            use base64::Engine;
            client_config["caBundle"] = base64::engine::general_purpose::STANDARD
                .encode(bundle)
                .into();
        }
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": WEBHOOK_CONFIG},
            "webhooks": [{"name": "sidecar-injector.mesh.io", "clientConfig": client_config,
                          "sideEffects": "None", "admissionReviewVersions": ["v1"]}]
        }))
        .expect("a webhook configuration")
    }

    #[test]
    fn the_ca_bundle_must_be_the_published_root() {
        let root = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let current = judge_ca_bundle(&config(Some(root)), "mesh", Ok(root.trim_end().to_owned()));
        assert!(matches!(current, Line::Pass(_)), "{current:?}");
        let stale = judge_ca_bundle(&config(Some("old")), "mesh", Ok(root.to_owned()));
        assert!(
            matches!(&stale, Line::Fail { what, .. } if what.contains("sidecar-injector.mesh.io"))
        );
        let unset = judge_ca_bundle(&config(None), "mesh", Ok(root.to_owned()));
        assert!(matches!(&unset, Line::Fail { what, .. } if what.contains("(none set)")));
        let service = called_service(&config(None)).expect("a service");
        assert_eq!(
            (
                service.namespace.as_str(),
                service.port,
                service.path.as_str()
            ),
            ("mesh", 443, "/inject")
        );
    }
}
