//! `--pre-install`: may the current user create everything the chart installs? Asked with
//! SelfSubjectAccessReviews, which every authenticated user may make.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::{Api, api::PostParams};

use super::{
    client::describe,
    report::{Line, Report},
};

/// What the chart creates: API group, resource, and whether it lives in the mesh's namespace.
const CHART_OBJECTS: &[(&str, &str, bool)] = &[
    ("apiextensions.k8s.io", "customresourcedefinitions", false),
    ("rbac.authorization.k8s.io", "clusterroles", false),
    ("rbac.authorization.k8s.io", "clusterrolebindings", false),
    (
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        false,
    ),
    ("apps", "deployments", true),
    ("", "services", true),
    ("", "configmaps", true),
    ("", "secrets", true),
    ("", "serviceaccounts", true),
    ("rbac.authorization.k8s.io", "roles", true),
    ("rbac.authorization.k8s.io", "rolebindings", true),
    ("policy", "poddisruptionbudgets", true),
];

/// One line per kind of object the chart creates.
pub async fn check(client: &kube::Client, namespace: &str, report: &mut Report) {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    for &(group, resource, namespaced) in CHART_OBJECTS {
        let namespace = namespaced.then_some(namespace);
        let review = review("create", group, resource, namespace);
        let answer = api.create(&PostParams::default(), &review).await;
        let allowed = answer.map(|a| a.status.is_some_and(|s| s.allowed));
        report.line(judge(
            group,
            resource,
            namespace,
            allowed.map_err(|e| describe(&e)),
        ));
    }
}

/// The review of `verb` on `group`/`resource`, in `namespace` or cluster-wide.
fn review(
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
) -> SelfSubjectAccessReview {
    SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.to_owned()),
                group: Some(group.to_owned()),
                resource: Some(resource.to_owned()),
                namespace: namespace.map(str::to_owned),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    }
}

/// The line for one answer.
fn judge(
    group: &str,
    resource: &str,
    namespace: Option<&str>,
    allowed: Result<bool, String>,
) -> Line {
    let qualified = if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    };
    let scope = namespace.map_or("cluster-wide".to_owned(), |ns| format!("in {ns}"));
    match allowed {
        Ok(true) => Line::Pass(format!("can create {resource} {scope}")),
        Ok(false) => Line::fail(
            format!("cannot create {resource} {scope}"),
            format!(
                "the chart creates {qualified}: install as a cluster admin, or get a role that \
                 may create {qualified} {scope}"
            ),
        ),
        Err(error) => Line::fail(
            format!("cannot ask whether you may create {resource} {scope}: {error}"),
            "SelfSubjectAccessReviews are open to every authenticated user; are your \
             credentials valid? (kubectl auth can-i create deployments)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_denied_kind_says_what_the_chart_needs() {
        let denied = judge("apps", "deployments", Some("mesh-system"), Ok(false));
        let Line::Fail { what, hint } = denied else {
            panic!("a failure")
        };
        assert_eq!(what, "cannot create deployments in mesh-system");
        assert!(hint.contains("deployments.apps in mesh-system"), "{hint}");
        assert_eq!(
            judge("", "clusterroles", None, Ok(true)),
            Line::Pass("can create clusterroles cluster-wide".into())
        );
    }
}
