//! The JSON shapes of the API protocol: lists, watch event lines and `Status` errors.

use super::resources::ResourceType;
use bytes::Bytes;
use serde_json::{Value, json};

/// An API error: HTTP status plus the `Status` object the real server sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code, also `Status.code`.
    pub code: u16,
    /// Machine-readable `Status.reason`.
    pub reason: &'static str,
    /// Human-readable `Status.message`.
    pub message: String,
}

impl ApiError {
    /// 410 Gone: the requested resourceVersion or continue token is older than history.
    pub fn expired(message: impl Into<String>) -> Self {
        Self {
            code: 410,
            reason: "Expired",
            message: message.into(),
        }
    }

    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            code: 400,
            reason: "BadRequest",
            message: message.into(),
        }
    }

    /// 404 Not Found.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            code: 404,
            reason: "NotFound",
            message: message.into(),
        }
    }

    /// 409 Conflict: the object exists already, or changed since the writer read it.
    pub fn conflict(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code: 409,
            reason,
            message: message.into(),
        }
    }

    /// 405 Method Not Allowed.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self {
            code: 405,
            reason: "MethodNotAllowed",
            message: message.into(),
        }
    }

    /// 415 Unsupported Media Type.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self {
            code: 415,
            reason: "UnsupportedMediaType",
            message: message.into(),
        }
    }

    /// 503 Service Unavailable, as the service proxy answers for a service it cannot reach.
    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Self {
            code: 503,
            reason: "ServiceUnavailable",
            message: message.into(),
        }
    }

    /// 406 Not Acceptable.
    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self {
            code: 406,
            reason: "NotAcceptable",
            message: message.into(),
        }
    }

    /// The `Status` object.
    pub fn status(&self) -> Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        })
    }
}

/// A `{Kind}List` body.
pub fn list(
    resource: &ResourceType,
    resource_version: u64,
    continue_token: Option<String>,
    items: Vec<Value>,
) -> Value {
    let mut metadata = json!({ "resourceVersion": resource_version.to_string() });
    if let Some(token) = continue_token {
        metadata["continue"] = Value::String(token);
    }
    json!({
        "kind": format!("{}List", resource.kind),
        "apiVersion": resource.api_version(),
        "metadata": metadata,
        "items": items,
    })
}

/// One newline-terminated watch event line.
pub fn event_line(event_type: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({ "type": event_type, "object": object }))
        .expect("a JSON value serializes");
    line.push(b'\n');
    Bytes::from(line)
}

/// A `BOOKMARK` line: only the type and the resourceVersion, like the real server.
pub fn bookmark_line(resource: &ResourceType, resource_version: u64) -> Bytes {
    let object = json!({
        "kind": resource.kind,
        "apiVersion": resource.api_version(),
        "metadata": { "resourceVersion": resource_version.to_string() },
    });
    event_line("BOOKMARK", &object)
}

/// An `ERROR` line carrying a `Status`.
pub fn error_line(error: &ApiError) -> Bytes {
    event_line("ERROR", &error.status())
}
