//! Service-account tokens checked by the API server: a TokenReview for audience `mesh-ca`.

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::{Api, api::PostParams};

use super::credential::{CA_AUDIENCE, Caller, CredentialError};

/// Asks the API server who `token` belongs to.
pub async fn review(client: &kube::Client, token: &str) -> Result<Caller, CredentialError> {
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.to_owned()),
            audiences: Some(vec![CA_AUDIENCE.to_owned()]),
        },
        ..TokenReview::default()
    };
    let answer = Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| CredentialError::Unavailable(format!("TokenReview failed: {e}")))?;
    let status = answer.status.unwrap_or_default();
    if status.authenticated != Some(true) {
        let why = status
            .error
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| "the API server does not authenticate it".to_owned());
        return Err(CredentialError::Invalid(why));
    }
    // An API server that answers with audiences says which the token is for; one made for
    // another audience is not authenticated for ours.
    if let Some(audiences) = status.audiences.filter(|a| !a.is_empty())
        && !audiences.iter().any(|a| a == CA_AUDIENCE)
    {
        return Err(CredentialError::Audience { audiences });
    }
    let user = status.user.unwrap_or_default();
    Caller::from_user(
        user.username.as_deref().unwrap_or_default(),
        Caller::pod_from_extra(user.extra.as_ref()),
    )
}
