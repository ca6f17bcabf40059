//! The workspace's one reader of Kubernetes manifests: multi-document YAML (or JSON), empty
//! documents skipped, `kind: List` expanded into its items, every object with its position.
//! The control plane's folder source, the lab and `mesh inject` all read through it.

use std::fmt;

use serde_json::Value;

/// One object of a manifest text and where it was.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestObject {
    /// The object as written.
    pub value: Value,
    /// Where it was in the text.
    pub position: Position,
}

/// An object's place in a manifest text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The YAML document, from 1.
    pub document: usize,
    /// The item of a `kind: List`, from 1.
    pub item: Option<usize>,
}

/// A document that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{position}: {message}")]
pub struct ManifestError {
    /// Where.
    pub position: Position,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "document {}", self.document)?;
        if let Some(item) = self.item {
            write!(f, ", item {item}")?;
        }
        Ok(())
    }
}

/// The documents of `text` as written (a `kind: List` stays one document), empty ones skipped.
/// A YAML syntax error ends the stream: nothing after it can be read.
pub fn documents(text: &str) -> Vec<Result<(usize, Value), ManifestError>> {
    let mut out = Vec::new();
    for (i, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let position = Position {
            document: i + 1,
            item: None,
        };
        match <Value as serde::Deserialize>::deserialize(document) {
            Ok(Value::Null) => {}
            Ok(value) => out.push(Ok((position.document, value))),
            Err(e) => {
                out.push(Err(ManifestError {
                    position,
                    message: format!("not valid YAML: {e}"),
                }));
                break;
            }
        }
    }
    out
}

/// The objects of `text`: every document, with `kind: List` expanded; each must be a mapping
/// with `apiVersion` and `kind`.
pub fn objects(text: &str) -> Vec<Result<ManifestObject, ManifestError>> {
    let mut out = Vec::new();
    for document in documents(text) {
        let (number, value) = match document {
            Ok(document) => document,
            Err(e) => {
                out.push(Err(e));
                continue;
            }
        };
        let position = Position {
            document: number,
            item: None,
        };
        if is_list(&value) {
            let items = value.get("items").and_then(Value::as_array);
            for (i, item) in items.into_iter().flatten().enumerate() {
                let position = Position {
                    item: Some(i + 1),
                    ..position
                };
                out.push(checked(item.clone(), position));
            }
            continue;
        }
        out.push(checked(value, position));
    }
    out
}

/// Whether `value` is a `kind: List` (`v1` List or any `*List` with items).
pub fn is_list(value: &Value) -> bool {
    value.get("kind").and_then(Value::as_str) == Some("List")
}

/// Writes objects as multi-document YAML.
pub fn to_yaml(objects: &[Value]) -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for (i, object) in objects.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_yaml::to_string(object)?);
    }
    Ok(out)
}

fn checked(value: Value, position: Position) -> Result<ManifestObject, ManifestError> {
    let has = |field: &str| value.get(field).and_then(Value::as_str).is_some();
    if !value.is_object() {
        return Err(ManifestError {
            position,
            message: "not a mapping; every object needs `apiVersion` and `kind`".to_owned(),
        });
    }
    if !has("apiVersion") || !has("kind") {
        return Err(ManifestError {
            position,
            message: "every object needs `apiVersion` and `kind`".to_owned(),
        });
    }
    Ok(ManifestObject { value, position })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_lists_and_empties() {
        let text = "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\n\
            apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Service, metadata: {name: s}}\n\
            - {kind: Pod}\n";
        let read = objects(text);
        assert_eq!(read.len(), 3);
        let first = read[0].as_ref().expect("namespace");
        assert_eq!(first.position.to_string(), "document 1");
        let second = read[1].as_ref().expect("service");
        assert_eq!(second.value["kind"], "Service");
        assert_eq!(second.position.to_string(), "document 3, item 1");
        let error = read[2].as_ref().expect_err("no apiVersion");
        assert_eq!(
            error.to_string(),
            "document 3, item 2: every object needs `apiVersion` and `kind`"
        );
    }

    #[test]
    fn a_syntax_error_ends_the_stream() {
        let read =
            objects("apiVersion: v1\nkind: A\n---\nkey: [unclosed\n---\napiVersion: v1\nkind: B\n");
        assert_eq!(read.len(), 2);
        let error = read[1].as_ref().expect_err("syntax");
        assert!(error.message.starts_with("not valid YAML"), "{error}");
        assert_eq!(error.position.document, 2);
    }

    #[test]
    fn yaml_out_reads_back() {
        let objects_in = vec![
            serde_json::json!({"apiVersion": "v1", "kind": "A"}),
            serde_json::json!({"apiVersion": "v1", "kind": "B"}),
        ];
        let text = to_yaml(&objects_in).expect("yaml");
        let back: Vec<Value> = objects(&text)
            .into_iter()
            .map(|o| o.expect("object").value)
            .collect();
        assert_eq!(back, objects_in);
    }
}
