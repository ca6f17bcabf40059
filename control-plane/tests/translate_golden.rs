//! Golden translation tests: each folder under `tests/golden/` (but `common/`) holds a case,
//! written in the style of Istio's and the Gateway API's documentation:
//!
//! - `manifests.yaml`: the objects (plus `common/<name>.yaml` files named by `include`),
//! - `case.yaml`: `include` and the `proxies` to translate for (namespace, pod, labels),
//! - `expected.yaml`: the problems and, per proxy, the translated config as the proxy reads it
//!   (the protobuf JSON mapping), with map keys sorted.
//!
//! `UPDATE_GOLDEN=1 cargo nextest run -p mesh-control-plane translate_golden` rewrites the
//! expected files. Every translated config must also be accepted by the real proxy.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use mesh_control_plane::{
    folder::load_dir,
    node::ProxyNode,
    store::Store,
    translate::{MeshSettings, Problem, Translator},
};
use mesh_proto::config::v1::{ProxyConfig, upstream_tls::Mode};
use serde::Deserialize;
use serde_json::Value;

/// A case's description of what to translate.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// Shared manifests from `common/`, by file stem.
    #[serde(default)]
    include: Vec<String>,
    /// Proxies to translate for.
    proxies: Vec<Proxy>,
    /// The mesh's outbound traffic policy, when not ALLOW_ANY.
    #[serde(default)]
    outbound_traffic_policy: Option<String>,
}

/// A proxy of a case.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Proxy {
    namespace: String,
    pod: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Reads a case's manifests (its own and the included ones) into a store, with the problems
/// met reading them.
fn load_case(dir: &Path, case: &Case) -> (Store, Vec<Problem>) {
    let mut store = Store::new();
    let mut problems = Vec::new();
    let mut files: Vec<PathBuf> = case
        .include
        .iter()
        .map(|name| golden_dir().join("common").join(format!("{name}.yaml")))
        .collect();
    files.push(dir.join("manifests.yaml"));
    for file in files {
        let loaded = load_dir(&file).unwrap_or_else(|e| panic!("{e}"));
        for kind in mesh_control_plane::store::Kind::ALL {
            for object in loaded.store.objects(kind) {
                store.apply(object);
            }
        }
        problems.extend(loaded.problems);
    }
    (store, problems)
}

/// JSON with every object's keys sorted, so maps (labels, header changes) print stably.
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let entries: BTreeMap<String, Value> =
                map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(entries.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// Checks that the proxy accepts the config; upstream TLS, which this proxy does not
/// implement yet, is the one thing it may refuse.
fn assert_proxy_accepts(config: &ProxyConfig, what: &str) {
    let mut config = config.clone();
    for cluster in &mut config.clusters {
        if let Some(tls) = &mut cluster.tls {
            tls.set_mode(Mode::Disable);
        }
    }
    let encoded = mesh_proxy::config::EncodedConfig::encode(&config);
    if let Err(errors) = mesh_proxy::config::Snapshot::compile(encoded, None) {
        panic!("{what}: the proxy refuses the translated config: {errors:#?}");
    }
}

/// Translates one case and renders the result as `expected.yaml` holds it.
fn render(dir: &Path) -> String {
    let case: Case = serde_yaml::from_str(
        &std::fs::read_to_string(dir.join("case.yaml"))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display())),
    )
    .unwrap_or_else(|e| panic!("{}/case.yaml: {e}", dir.display()));
    let (store, mut problems) = load_case(dir, &case);
    let settings = MeshSettings {
        outbound_traffic_policy: (case.outbound_traffic_policy.as_deref())
            .map(|p| p.parse().expect("ALLOW_ANY or REGISTRY_ONLY"))
            .unwrap_or_default(),
        ..MeshSettings::default()
    };
    let translator = Translator::with_settings(&store, &settings);
    let mut proxies = serde_json::Map::new();
    for proxy in &case.proxies {
        let node = ProxyNode {
            id: format!("{}.{}", proxy.pod, proxy.namespace),
            pod: proxy.pod.clone(),
            namespace: proxy.namespace.clone(),
            labels: proxy.labels.clone(),
            service_account: "default".to_owned(),
            ip: "10.244.0.100".to_owned(),
            proxy_version: "golden".to_owned(),
        };
        let translation = translator.translate(&node);
        assert_proxy_accepts(
            &translation.config,
            &format!("{} proxy {}", dir.display(), node.id),
        );
        problems.extend(translation.problems);
        let config = serde_json::to_value(&translation.config).expect("a config serializes");
        proxies.insert(node.id, sorted(config));
    }
    problems.sort();
    problems.dedup();
    let root = golden_dir().display().to_string();
    let problems: Vec<Value> = problems
        .iter()
        .map(|p| Value::from(p.to_string().replace(&root, "golden")))
        .collect();
    let mut out = serde_json::Map::new();
    out.insert("problems".to_owned(), Value::Array(problems));
    out.insert("proxies".to_owned(), Value::Object(proxies));
    serde_yaml::to_string(&Value::Object(out)).expect("JSON values print as YAML")
}

#[test]
fn translations_match_their_golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n != "common"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 10, "golden cases are missing: {cases:?}");
    let mut mismatches = Vec::new();
    for dir in cases {
        let actual = render(&dir);
        let expected_path = dir.join("expected.yaml");
        if update {
            std::fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != actual {
            let actual_path = dir.join("actual.yaml");
            std::fs::write(&actual_path, &actual).unwrap();
            mismatches.push(format!(
                "{}: differs from expected.yaml; see {} (UPDATE_GOLDEN=1 to accept)",
                dir.display(),
                actual_path.display()
            ));
        } else {
            let _ = std::fs::remove_file(dir.join("actual.yaml"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
