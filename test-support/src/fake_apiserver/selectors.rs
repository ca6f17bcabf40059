//! The subset of label and field selectors the fake honours: equality-based label selectors
//! (`a=b`, `a==b`, `a!=b`, `a`, `!a`) and `metadata.name` / `metadata.namespace` field
//! selectors, and `type` for Secrets. Anything else (set-based `in`/`notin`, other fields) is refused with 400 so a
//! test that relies on it fails loudly instead of silently seeing everything.

use serde_json::Value;

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    Absent(String),
}

/// A parsed selector: all requirements must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    labels: Vec<Requirement>,
    fields: Vec<Requirement>,
}

impl Selector {
    /// Parses the `labelSelector` and `fieldSelector` query parameters.
    pub fn parse(labels: Option<&str>, fields: Option<&str>) -> Result<Self, String> {
        let labels = parse_terms(labels.unwrap_or_default())?;
        let fields = parse_terms(fields.unwrap_or_default())?;
        for field in &fields {
            match field {
                Requirement::Equals(key, _) | Requirement::NotEquals(key, _)
                    if key == "metadata.name" || key == "metadata.namespace" || key == "type" => {}
                other => {
                    return Err(format!(
                        "field selector {other:?} is not supported by the fake"
                    ));
                }
            }
        }
        Ok(Self { labels, fields })
    }

    /// Whether the object satisfies every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let metadata = &object["metadata"];
        let label = |key: &str| metadata["labels"][key].as_str().map(str::to_string);
        let field = |key: &str| match key {
            "metadata.name" => metadata["name"].as_str().map(str::to_string),
            "type" => object["type"].as_str().map(str::to_string),
            _ => Some(
                metadata["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ),
        };
        self.labels.iter().all(|r| holds(r, label)) && self.fields.iter().all(|r| holds(r, field))
    }
}

fn holds(requirement: &Requirement, value_of: impl Fn(&str) -> Option<String>) -> bool {
    match requirement {
        Requirement::Equals(key, value) => value_of(key).as_deref() == Some(value.as_str()),
        Requirement::NotEquals(key, value) => value_of(key).as_deref() != Some(value.as_str()),
        Requirement::Exists(key) => value_of(key).is_some(),
        Requirement::Absent(key) => value_of(key).is_none(),
    }
}

fn parse_terms(text: &str) -> Result<Vec<Requirement>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|term| !term.is_empty())
        .map(parse_term)
        .collect()
}

fn parse_term(term: &str) -> Result<Requirement, String> {
    let unsupported = || format!("selector term {term:?} is not supported by the fake");
    if term.contains(" in ") || term.contains(" notin ") || term.contains('(') {
        return Err(unsupported());
    }
    let requirement = if let Some((key, value)) = term.split_once("!=") {
        Requirement::NotEquals(key.trim().into(), value.trim().into())
    } else if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
        Requirement::Equals(key.trim().into(), value.trim().into())
    } else if let Some(key) = term.strip_prefix('!') {
        Requirement::Absent(key.trim().into())
    } else {
        Requirement::Exists(term.into())
    };
    Ok(requirement)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_filter_by_labels_and_fields() {
        let object = serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web", "tier": "front"}}
        });
        let matches = |labels, fields| {
            Selector::parse(labels, fields)
                .expect("parses")
                .matches(&object)
        };
        assert!(matches(
            Some("app=web,tier"),
            Some("metadata.namespace=shop")
        ));
        assert!(matches(Some("app==web,!canary,tier!=back"), None));
        assert!(!matches(Some("app=api"), None));
        assert!(!matches(None, Some("metadata.name!=web")));
        assert!(Selector::parse(Some("app in (web)"), None).is_err());
        assert!(Selector::parse(None, Some("spec.nodeName=a")).is_err());
    }
}
