//! `mesh inject -f app.yaml`: the webhook's mutation applied to a manifest, as
//! `istioctl kube-inject` does. Pods and the pod templates of Deployments, StatefulSets,
//! DaemonSets, ReplicaSets, Jobs and CronJobs get the sidecar; other objects pass through;
//! multi-document YAML and `kind: List` keep their shape.

use std::{
    collections::BTreeMap,
    io::Read,
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::Args;
use k8s_openapi::api::core::v1::Namespace;
use mesh_injector::{
    InjectionConfig, InjectionSettings, NativeSidecars,
    decision::enabled_namespace,
    manifest::{self, is_list},
    settings::parse_minor,
    workload::{ObjectInjection, inject_object, object_namespace},
};
use serde_json::Value;

use crate::output::out;

/// `mesh inject` options.
#[derive(Args)]
#[command(
    after_help = "Namespaces defined in the input keep their mesh-injection label \
(an opted-out namespace is not injected); any other namespace is taken as labelled \
mesh-injection=enabled. Exit status: 0 when the output was written, 1 on unreadable input."
)]
pub struct InjectArgs {
    /// The manifest to inject, or `-` for standard input.
    #[arg(short = 'f', long = "filename")]
    file: PathBuf,
    /// The injection settings (the chart's `settings.yaml`); built-in defaults otherwise.
    #[arg(long)]
    settings: Option<PathBuf>,
    /// Native sidecars: auto (by --kubernetes-version), true or false; overrides the settings.
    #[arg(long, value_parser = ["auto", "true", "false"])]
    native_sidecars: Option<String>,
    /// The cluster's Kubernetes version (e.g. 1.28), for `nativeSidecars: auto`.
    #[arg(long)]
    kubernetes_version: Option<String>,
}

/// Runs `mesh inject`.
pub fn run(args: InjectArgs) -> ExitCode {
    match inject(&args) {
        Ok(text) => {
            out!("{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("mesh inject: {error}");
            ExitCode::FAILURE
        }
    }
}

fn inject(args: &InjectArgs) -> Result<String, String> {
    let config = config(args)?;
    let shown = args.file.display().to_string();
    let text = read_input(&args.file).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mut documents = Vec::new();
    for document in manifest::documents(&text) {
        let (_, value) = document.map_err(|e| format!("{shown}, {e}"))?;
        documents.push(value);
    }
    let namespaces = defined_namespaces(&documents);
    let mut output = Vec::new();
    for mut document in documents {
        if is_list(&document) {
            if let Some(items) = document.get_mut("items").and_then(Value::as_array_mut) {
                for item in items {
                    *item = injected(item, &namespaces, &config)?;
                }
            }
            output.push(document);
        } else {
            output.push(injected(&document, &namespaces, &config)?);
        }
    }
    manifest::to_yaml(&output).map_err(|e| format!("cannot write YAML: {e}"))
}

/// The settings with `--native-sidecars` and `--kubernetes-version` applied.
fn config(args: &InjectArgs) -> Result<InjectionConfig, String> {
    let mut settings = match &args.settings {
        Some(path) => InjectionSettings::load(path).map_err(|e| e.to_string())?,
        None => InjectionSettings::default(),
    };
    if let Some(native) = &args.native_sidecars {
        settings.native_sidecars = match native.as_str() {
            "true" => NativeSidecars::Always,
            "false" => NativeSidecars::Never,
            _ => NativeSidecars::Auto,
        };
    }
    let minor = match &args.kubernetes_version {
        Some(version) => {
            let minor = version
                .trim_start_matches('v')
                .split('.')
                .nth(1)
                .and_then(parse_minor);
            Some(
                minor
                    .ok_or_else(|| format!("--kubernetes-version {version:?} is not like 1.29"))?,
            )
        }
        None => None,
    };
    Ok(settings.for_cluster(minor))
}

fn injected(
    object: &Value,
    namespaces: &BTreeMap<String, Namespace>,
    config: &InjectionConfig,
) -> Result<Value, String> {
    let namespace_name = object_namespace(object);
    let namespace = namespaces
        .get(namespace_name)
        .cloned()
        .unwrap_or_else(|| enabled_namespace(namespace_name));
    match inject_object(object, &namespace, config).map_err(|e| e.to_string())? {
        ObjectInjection::Injected(value) => Ok(value),
        ObjectInjection::Skipped(why) => {
            eprintln!(
                "mesh inject: {} {namespace_name}/{} is not injected: {why}",
                object["kind"].as_str().unwrap_or_default(),
                object["metadata"]["name"].as_str().unwrap_or("(unnamed)"),
            );
            Ok(object.clone())
        }
        ObjectInjection::NotAWorkload => Ok(object.clone()),
    }
}

/// The Namespaces the input defines, by name (List items included).
fn defined_namespaces(documents: &[Value]) -> BTreeMap<String, Namespace> {
    let items = documents.iter().flat_map(|d| {
        if is_list(d) {
            d["items"].as_array().cloned().unwrap_or_default()
        } else {
            vec![d.clone()]
        }
    });
    items
        .filter(|o| o["apiVersion"] == "v1" && o["kind"] == "Namespace")
        .filter_map(|o| serde_json::from_value::<Namespace>(o).ok())
        .filter_map(|n| Some((n.metadata.name.clone()?, n)))
        .collect()
}

fn read_input(file: &Path) -> std::io::Result<String> {
    if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        return Ok(text);
    }
    std::fs::read_to_string(file)
}
