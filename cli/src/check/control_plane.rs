//! Is the control plane's Deployment there, with every replica ready?

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;

use super::{
    CONTROL_PLANE,
    client::describe,
    report::{Line, Report},
};

/// One line: the Deployment's readiness.
pub async fn check(client: &kube::Client, namespace: &str, report: &mut Report) {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let found = api.get_opt(CONTROL_PLANE).await.map_err(|e| describe(&e));
    report.line(judge(namespace, found));
}

fn judge(namespace: &str, found: Result<Option<Deployment>, String>) -> Line {
    let name = format!("Deployment {namespace}/{CONTROL_PLANE}");
    let logs = format!(
        "kubectl -n {namespace} describe deployment {CONTROL_PLANE}; \
         kubectl -n {namespace} logs deploy/{CONTROL_PLANE}"
    );
    let deployment = match found {
        Ok(Some(deployment)) => deployment,
        Ok(None) => {
            return Line::fail(
                format!("{name} is missing"),
                format!(
                    "install the mesh: helm install mesh charts/mesh -n {namespace} \
                     --create-namespace (or pass -n with the mesh's namespace)"
                ),
            );
        }
        Err(error) => {
            return Line::fail(
                format!("cannot read {name}: {error}"),
                format!("checking the control plane needs get on deployments in {namespace}"),
            );
        }
    };
    let wanted = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let status = deployment.status.unwrap_or_default();
    let ready = status.ready_replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(ready);
    if wanted == 0 {
        return Line::fail(
            format!("{name} is scaled to 0 replicas"),
            format!("kubectl -n {namespace} scale deployment {CONTROL_PLANE} --replicas=1"),
        );
    }
    if ready < wanted {
        return Line::fail(
            format!("control plane not ready: {ready}/{wanted} replicas of {name} ready"),
            logs,
        );
    }
    if updated < wanted {
        return Line::fail(
            format!("control plane rolling out: {updated}/{wanted} replicas of {name} updated"),
            format!("wait for kubectl -n {namespace} rollout status deployment {CONTROL_PLANE}"),
        );
    }
    Line::Pass(format!(
        "control plane ready: {ready}/{wanted} replicas of {name}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(json: serde_json::Value) -> Deployment {
        serde_json::from_value(json).expect("a deployment")
    }

    #[test]
    fn every_wanted_replica_must_be_ready() {
        let ready = deployment(serde_json::json!({
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"readyReplicas": 2, "updatedReplicas": 2}
        }));
        assert!(matches!(
            judge("mesh-system", Ok(Some(ready))),
            Line::Pass(_)
        ));
        let half = deployment(serde_json::json!({
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"readyReplicas": 1}
        }));
        assert!(
            matches!(judge("mesh-system", Ok(Some(half))), Line::Fail { what, .. } if what.contains("1/2"))
        );
        let never = deployment(serde_json::json!({"spec": {"selector": {}, "template": {}}}));
        assert!(
            matches!(judge("mesh-system", Ok(Some(never))), Line::Fail { what, .. } if what.contains("0/1"))
        );
        assert!(
            matches!(judge("mesh-system", Ok(None)), Line::Fail { what, .. } if what.contains("missing"))
        );
    }
}
