//! Who is calling the CA: the caller's credential checked into a service-account identity.
//!
//! Two kinds of credential, one result: in a cluster the pod's projected service-account token,
//! which the API server checks (a TokenReview); in the lab a per-pod token signed with the lab's
//! key (`LabTokenKey`). Both end as a Kubernetes user name, `system:serviceaccount:<ns>:<sa>`,
//! and the pod the token was made for; everything after that is the same code.

use super::lab_token::LabTokenKey;

/// The audience a token must be made for.
pub const CA_AUDIENCE: &str = "mesh-ca";
/// The extra field of a TokenReview's user that names the pod a bound token belongs to.
const POD_NAME_EXTRA: &str = "authentication.kubernetes.io/pod-name";

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The service account's namespace.
    pub namespace: String,
    /// The service account.
    pub service_account: String,
    /// The pod the credential was made for, when it says.
    pub pod: Option<String>,
}

/// How the CA checks credentials.
#[derive(Clone)]
pub enum Authenticator {
    /// Service-account tokens, checked by the API server (TokenReview, audience `mesh-ca`).
    TokenReview(kube::Client),
    /// The lab's per-pod tokens, checked with the lab's key.
    LabTokens(LabTokenKey),
}

/// Why a credential proves nothing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialError {
    /// No `authorization: Bearer` metadata.
    #[error(
        "no credential: send the pod's service-account token (audience mesh-ca) as `authorization: Bearer <token>`"
    )]
    Missing,
    /// The token is not one of ours or its signature is wrong.
    #[error("the token is not valid: {0}")]
    Invalid(String),
    /// The token has expired.
    #[error("the token expired {ago_secs} s ago; mount a fresh projected token")]
    Expired {
        /// Seconds since it expired.
        ago_secs: u64,
    },
    /// The token is for another audience.
    #[error(
        "the token is for audience {audiences:?}, not \"mesh-ca\"; project it with audience mesh-ca"
    )]
    Audience {
        /// The audiences it is for.
        audiences: Vec<String>,
    },
    /// The token is valid but not a service account's.
    #[error("the token is {user:?}'s, not a service account's")]
    NotServiceAccount {
        /// The user it authenticates.
        user: String,
    },
    /// The token cannot be checked now (the API server does not answer).
    #[error("the token cannot be checked now: {0}")]
    Unavailable(String),
}

// === impl Authenticator ===

impl Authenticator {
    /// Checks the `authorization` metadata value of a call.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
    ) -> Result<Caller, CredentialError> {
        let token = authorization
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or(CredentialError::Missing)?;
        match self {
            Authenticator::TokenReview(client) => super::token_review::review(client, token).await,
            Authenticator::LabTokens(key) => {
                let claims = key.verify(token, std::time::SystemTime::now())?;
                Caller::from_user(&claims.sub, claims.pod)
            }
        }
    }
}

// === impl Caller ===

impl Caller {
    /// The caller a Kubernetes user name proves, `system:serviceaccount:<ns>:<sa>`.
    pub fn from_user(user: &str, pod: Option<String>) -> Result<Caller, CredentialError> {
        let not_service_account = || CredentialError::NotServiceAccount {
            user: user.to_owned(),
        };
        let rest = user
            .strip_prefix("system:serviceaccount:")
            .ok_or_else(not_service_account)?;
        let (namespace, service_account) = rest.split_once(':').ok_or_else(not_service_account)?;
        let valid = |part: &str| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        };
        if !valid(namespace) || !valid(service_account) {
            return Err(not_service_account());
        }
        Ok(Caller {
            namespace: namespace.to_owned(),
            service_account: service_account.to_owned(),
            pod: pod.filter(|p| !p.is_empty()),
        })
    }

    /// The pod name a TokenReview's user extra carries for a bound token.
    pub fn pod_from_extra(
        extra: Option<&std::collections::BTreeMap<String, Vec<String>>>,
    ) -> Option<String> {
        extra?.get(POD_NAME_EXTRA)?.first().cloned()
    }
}

// === impl CredentialError ===

impl CredentialError {
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            CredentialError::Missing => "no_credential",
            CredentialError::Invalid(_) => "invalid_token",
            CredentialError::Expired { .. } => "expired_token",
            CredentialError::Audience { .. } => "wrong_audience",
            CredentialError::NotServiceAccount { .. } => "not_service_account",
            CredentialError::Unavailable(_) => "review_unavailable",
        }
    }

    /// The gRPC status that tells the caller.
    pub fn status(&self) -> tonic::Status {
        match self {
            CredentialError::Unavailable(_) => tonic::Status::unavailable(self.to_string()),
            _ => tonic::Status::unauthenticated(self.to_string()),
        }
    }
}
