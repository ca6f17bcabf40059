//! Reading a folder of ordinary Kubernetes manifests: the kinds the lab runs itself are parsed
//! into their real API types; every other object (Istio, Gateway API, mesh config) is kept as
//! it was written, for the control plane.

use std::path::{Path, PathBuf};

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Namespace, Pod, Service, ServiceAccount},
};
use mesh_injector::manifest::{self, Position};
use serde::de::DeserializeOwned;

/// Everything found in a folder of manifests.
#[derive(Debug, Default, Clone)]
pub struct Manifests {
    /// Namespaces, with their labels (`mesh-injection=enabled` marks meshed ones).
    pub namespaces: Vec<Namespace>,
    /// Service accounts (the workload identity of pods).
    pub service_accounts: Vec<ServiceAccount>,
    /// Bare pods.
    pub pods: Vec<Pod>,
    /// Deployments, expanded into pods by the lab.
    pub deployments: Vec<Deployment>,
    /// Services.
    pub services: Vec<Service>,
    /// Objects of other kinds, kept for the control plane, with the file they came from.
    pub other: Vec<OtherObject>,
}

/// An object of a kind the lab does not run itself (e.g. an Istio VirtualService).
#[derive(Debug, Clone)]
pub struct OtherObject {
    /// `apiVersion` as written.
    pub api_version: String,
    /// `kind` as written.
    pub kind: String,
    /// The whole object.
    pub value: serde_json::Value,
    /// The file it came from.
    pub file: PathBuf,
}

/// Why a folder of manifests could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The folder or a file in it could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// What could not be read.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A document is not valid YAML or does not fit its kind's schema.
    #[error("{file}, {position}: {message}")]
    Invalid {
        /// The file holding the document.
        file: PathBuf,
        /// Where in the file: the document (from 1) and the item of a `kind: List`.
        position: Position,
        /// What is wrong with it.
        message: String,
    },
    /// The folder holds no manifests at all.
    #[error("no manifests (*.yaml, *.yml, *.json) in {0}")]
    Empty(PathBuf),
}

impl Manifests {
    /// Reads every `*.yaml`, `*.yml` and `*.json` file under `dir` (recursively, in name order).
    pub fn read_dir(dir: &Path) -> Result<Manifests, ManifestError> {
        let mut files = Vec::new();
        collect_files(dir, &mut files)?;
        if files.is_empty() {
            return Err(ManifestError::Empty(dir.to_path_buf()));
        }
        let mut manifests = Manifests::default();
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|source| ManifestError::Read {
                path: file.clone(),
                source,
            })?;
            manifests.add_text(&text, &file)?;
        }
        Ok(manifests)
    }

    /// Adds every object of one multi-document YAML (or JSON) text, `kind: List` expanded.
    pub fn add_text(&mut self, text: &str, file: &Path) -> Result<(), ManifestError> {
        for object in manifest::objects(text) {
            let invalid = |position, message| ManifestError::Invalid {
                file: file.to_path_buf(),
                position,
                message,
            };
            let object = object.map_err(|e| invalid(e.position, e.message))?;
            self.add_object(object.value, file)
                .map_err(|message| invalid(object.position, message))?;
        }
        Ok(())
    }

    fn add_object(&mut self, value: serde_json::Value, file: &Path) -> Result<(), String> {
        // The reader checked both are there.
        let field = |name: &str| value[name].as_str().unwrap_or_default().to_owned();
        let (api_version, kind) = (field("apiVersion"), field("kind"));
        match (api_version.as_str(), kind.as_str()) {
            ("v1", "Namespace") => self.namespaces.push(typed(value, &kind)?),
            ("v1", "ServiceAccount") => self.service_accounts.push(typed(value, &kind)?),
            ("v1", "Pod") => self.pods.push(typed(value, &kind)?),
            ("v1", "Service") => self.services.push(typed(value, &kind)?),
            ("apps/v1", "Deployment") => self.deployments.push(typed(value, &kind)?),
            _ => self.other.push(OtherObject {
                api_version,
                kind,
                value,
                file: file.to_path_buf(),
            }),
        }
        Ok(())
    }
}

/// Parses an object into its API type, naming the object when it does not fit.
fn typed<T: DeserializeOwned>(value: serde_json::Value, kind: &str) -> Result<T, String> {
    let name = value
        .pointer("/metadata/name")
        .and_then(|n| n.as_str())
        .unwrap_or("<no name>")
        .to_owned();
    serde_json::from_value(value).map_err(|e| format!("{kind} {name}: {e}"))
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), ManifestError> {
    let read_error = |source| ManifestError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_error)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(read_error)?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_files(&path, files)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            files.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOP: &str = r#"
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { mesh-injection: enabled } }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: web-v1, namespace: shop }
spec:
  replicas: 2
  selector: { matchLabels: { app: web, version: v1 } }
  template:
    metadata: { labels: { app: web, version: v1 } }
    spec:
      containers:
      - name: web
        command: [mesh-workload, --addr, "0.0.0.0:8080"]
        ports: [{ containerPort: 8080, name: http }]
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  selector: { app: web }
  ports: [{ name: http, port: 80, targetPort: http }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: web, namespace: shop }
spec: { hosts: [web] }
---
"#;

    #[test]
    fn kinds_are_typed_and_other_objects_kept() {
        let mut manifests = Manifests::default();
        manifests.add_text(SHOP, Path::new("shop.yaml")).unwrap();
        assert_eq!(manifests.namespaces.len(), 1);
        assert_eq!(manifests.deployments.len(), 1);
        assert_eq!(manifests.services.len(), 1);
        assert_eq!(manifests.other.len(), 1);
        assert_eq!(manifests.other[0].kind, "VirtualService");
        let deployment = &manifests.deployments[0];
        assert_eq!(deployment.spec.as_ref().unwrap().replicas, Some(2));
    }

    #[test]
    fn errors_name_the_file_document_and_object() {
        let mut manifests = Manifests::default();
        let bad = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: eighty}]}\n";
        let error = manifests
            .add_text(bad, Path::new("bad.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("bad.yaml, document 2: Service web:"),
            "{error}"
        );

        let error = manifests
            .add_text("kind: Pod\n", Path::new("x.yaml"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("needs `apiVersion` and `kind`"), "{error}");

        let error = manifests
            .add_text("a: [\n", Path::new("y.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("y.yaml, document 1: not valid YAML"),
            "{error}"
        );
    }

    #[test]
    fn a_folder_is_read_recursively_and_an_empty_one_is_an_error() {
        let dir = std::env::temp_dir().join(format!("mesh-lab-manifests-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/shop.yaml"), SHOP).unwrap();
        std::fs::write(dir.join("notes.txt"), "not a manifest").unwrap();
        let manifests = Manifests::read_dir(&dir).unwrap();
        assert_eq!(manifests.services.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();

        std::fs::create_dir_all(&dir).unwrap();
        let error = Manifests::read_dir(&dir).unwrap_err();
        assert!(matches!(error, ManifestError::Empty(_)));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
