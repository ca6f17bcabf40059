//! `POST /apis/authentication.k8s.io/v1/tokenreviews`, answered as the API server answers for
//! service-account tokens: authenticated with the account's user name, the pod in `extra` and
//! the audiences; or not authenticated, with the reason in `error`.

use serde_json::{Value, json};

/// The collection path the fake answers TokenReviews on.
pub const PATH: &str = "/apis/authentication.k8s.io/v1/tokenreviews";

/// A service-account token the fake knows.
#[derive(Clone, Debug)]
pub struct FakeToken {
    /// The account's namespace.
    pub namespace: String,
    /// The account.
    pub service_account: String,
    /// The pod it is bound to.
    pub pod: String,
    /// The audiences it was made for.
    pub audiences: Vec<String>,
    /// Whether it has expired.
    pub expired: bool,
}

/// The answered review for the review `request`, given the tokens known.
pub fn review(request: &Value, known: &std::collections::BTreeMap<String, FakeToken>) -> Value {
    let token = request["spec"]["token"].as_str().unwrap_or_default();
    let wanted: Vec<String> = request["spec"]["audiences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let status = match known.get(token) {
        None => {
            json!({"authenticated": false, "error": "[invalid bearer token, square/go-jose: error in cryptographic primitive]"})
        }
        Some(found) if found.expired => json!({
            "authenticated": false,
            "error": "[invalid bearer token, service account token has expired]"
        }),
        Some(found)
            if !wanted.is_empty() && !wanted.iter().any(|w| found.audiences.contains(w)) =>
        {
            json!({
                "authenticated": false,
                "error": format!(
                    "[invalid bearer token, token audiences {:?} is invalid for the target audiences {:?}]",
                    found.audiences, wanted
                )
            })
        }
        Some(found) => json!({
            "authenticated": true,
            "audiences": if wanted.is_empty() { found.audiences.clone() } else { wanted },
            "user": {
                "username": format!("system:serviceaccount:{}:{}", found.namespace, found.service_account),
                "uid": "00000000-0000-0000-0000-000000000001",
                "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{}", found.namespace)],
                "extra": {
                    "authentication.kubernetes.io/pod-name": [found.pod],
                    "authentication.kubernetes.io/pod-uid": ["00000000-0000-0000-0000-000000000002"],
                },
            },
        }),
    };
    json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "metadata": {"creationTimestamp": null},
        "spec": request["spec"].clone(),
        "status": status,
    })
}
