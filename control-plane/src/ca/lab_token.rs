//! The lab's per-pod CA tokens: what a projected service-account token is in a cluster, made
//! and checked without an API server. A token is `<claims>.<signature>`, both base64url: the
//! claims are JSON (`sub` the service account's user name, `pod`, `aud`, `exp`), the signature an
//! HMAC-SHA256 over the claims with the lab's key, which only the lab and its control plane read.

use std::{
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::{
    hmac,
    rand::{SecureRandom, SystemRandom},
};
use serde::{Deserialize, Serialize};

use super::credential::{CA_AUDIENCE, CredentialError};

/// The key's length in bytes.
const KEY_LEN: usize = 32;

/// The key that signs and checks lab tokens.
#[derive(Clone)]
pub struct LabTokenKey {
    key: hmac::Key,
    bytes: [u8; KEY_LEN],
}

/// What a lab token says.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LabClaims {
    /// The Kubernetes user: `system:serviceaccount:<ns>:<sa>`.
    pub sub: String,
    /// The pod it was made for.
    pub pod: Option<String>,
    /// The audiences it is for.
    pub aud: Vec<String>,
    /// When it expires, in seconds since the Unix epoch.
    pub exp: u64,
}

/// Why the key cannot be made or read.
#[derive(Debug, thiserror::Error)]
pub enum LabKeyError {
    /// The file cannot be read or written.
    #[error("cannot use the lab token key {path}: {error}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The file does not hold a key.
    #[error("{path} does not hold a lab token key ({KEY_LEN} bytes, base64url)")]
    Format {
        /// The file.
        path: std::path::PathBuf,
    },
    /// The system's random number generator failed.
    #[error("cannot draw a random lab token key")]
    Random,
}

// === impl LabTokenKey ===

impl LabTokenKey {
    /// A new random key.
    pub fn generate() -> Result<Self, LabKeyError> {
        let mut bytes = [0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| LabKeyError::Random)?;
        Ok(Self::from_bytes(bytes))
    }

    /// The key in `path` (base64url text, as `write` leaves it).
    pub fn load(path: &Path) -> Result<Self, LabKeyError> {
        let text = std::fs::read_to_string(path).map_err(|error| LabKeyError::Io {
            path: path.to_owned(),
            error,
        })?;
        let format = || LabKeyError::Format {
            path: path.to_owned(),
        };
        let decoded = URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| format())?;
        let bytes = <[u8; KEY_LEN]>::try_from(decoded).map_err(|_| format())?;
        Ok(Self::from_bytes(bytes))
    }

    /// The key as base64url text, for the file `load` reads.
    pub fn to_text(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.bytes)
    }

    /// A token for the service account `service_account` of `namespace`, made for `pod`,
    /// valid for `lifetime` from `now`.
    pub fn mint(
        &self,
        namespace: &str,
        service_account: &str,
        pod: &str,
        lifetime: Duration,
        now: SystemTime,
    ) -> String {
        let claims = LabClaims {
            sub: format!("system:serviceaccount:{namespace}:{service_account}"),
            pod: Some(pod.to_owned()),
            aud: vec![CA_AUDIENCE.to_owned()],
            exp: unix_seconds(now + lifetime),
        };
        self.sign(&claims)
    }

    /// Signs any claims (tests make wrong ones with it).
    pub fn sign(&self, claims: &LabClaims) -> String {
        let json = serde_json::to_vec(claims).unwrap_or_default();
        let body = URL_SAFE_NO_PAD.encode(json);
        let tag = hmac::sign(&self.key, body.as_bytes());
        format!("{body}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// The claims of `token` when this key signed it, it is for `mesh-ca` and it has not
    /// expired at `now`.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<LabClaims, CredentialError> {
        let invalid = |why: &str| CredentialError::Invalid(why.to_owned());
        let (body, signature) = token
            .split_once('.')
            .ok_or_else(|| invalid("not a lab token (<claims>.<signature>)"))?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| invalid("its signature is not base64url"))?;
        hmac::verify(&self.key, body.as_bytes(), &signature)
            .map_err(|_| invalid("its signature is not the lab's"))?;
        let json = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| invalid("its claims are not base64url"))?;
        let claims: LabClaims =
            serde_json::from_slice(&json).map_err(|_| invalid("its claims are not JSON"))?;
        if !claims.aud.iter().any(|a| a == CA_AUDIENCE) {
            return Err(CredentialError::Audience {
                audiences: claims.aud,
            });
        }
        let now = unix_seconds(now);
        if claims.exp <= now {
            return Err(CredentialError::Expired {
                ago_secs: now - claims.exp,
            });
        }
        Ok(claims)
    }

    fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        LabTokenKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, &bytes),
            bytes,
        }
    }
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}
