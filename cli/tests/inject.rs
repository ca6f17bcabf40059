//! `mesh inject` as a user runs it: every workload kind of a multi-document manifest (with a
//! `kind: List`) gets the sidecar in its pod template, other objects pass through, an
//! opted-out namespace is left alone and said so, stdin works, and bad input is an error that
//! names the document. The output is a golden (`UPDATE_GOLDEN=1` rewrites it) that the chart
//! tests validate against the Kubernetes schemas.

use std::{
    io::Write,
    path::PathBuf,
    process::{Command, Output, Stdio},
};

use serde_json::Value;

fn inject_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/inject")
}

fn mesh(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mesh");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .expect("write stdin");
    drop(input);
    child.wait_with_output().expect("mesh exits")
}

fn documents(text: &str) -> Vec<Value> {
    mesh_injector::manifest::documents(text)
        .into_iter()
        .map(|d| d.expect("output reads").1)
        .collect()
}

fn containers(template: &Value) -> Vec<String> {
    let names = |field: &str| -> Vec<String> {
        template["spec"][field]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    [names("initContainers"), names("containers")].concat()
}

#[test]
fn workloads_get_the_sidecar_and_the_rest_passes_through() {
    let input = inject_dir().join("app.yaml");
    let output = mesh(&["inject", "-f", input.to_str().expect("path")], None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let text = String::from_utf8(output.stdout).expect("utf-8");

    let golden = inject_dir().join("app.injected.yaml");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &text).expect("write golden");
    }
    let expected = std::fs::read_to_string(&golden).expect("golden (UPDATE_GOLDEN=1 writes it)");
    assert!(
        text == expected,
        "mesh inject's output differs from {}:\n{text}",
        golden.display()
    );

    let out = documents(&text);
    let input_documents = documents(&std::fs::read_to_string(&input).expect("input"));
    assert_eq!(
        out.len(),
        input_documents.len(),
        "one output document per input document"
    );
    let sidecar = ["mesh-init", "mesh-proxy"];
    let deployment = &out[1]["spec"]["template"];
    assert_eq!(containers(deployment), [&sidecar[..], &["web"]].concat());
    assert_eq!(
        out[2], input_documents[2],
        "the Service passes through unchanged"
    );
    assert_eq!(out[3]["kind"], "List");
    let statefulset = &out[3]["items"][0]["spec"]["template"];
    assert_eq!(containers(statefulset), [&sidecar[..], &["db"]].concat());
    let cronjob = &out[3]["items"][1]["spec"]["jobTemplate"]["spec"]["template"];
    assert_eq!(containers(cronjob), [&sidecar[..], &["report"]].concat());
    assert_eq!(
        containers(&out[4]["spec"]["template"]),
        [&sidecar[..], &["migrate"]].concat()
    );
    assert_eq!(
        containers(&out[5]["spec"]["template"]),
        [&sidecar[..], &["agent"]].concat()
    );
    assert_eq!(
        out[6], input_documents[6],
        "the opted-out namespace's ReplicaSet is unchanged"
    );
    assert!(
        stderr.contains("ReplicaSet legacy/old is not injected"),
        "the skip is explained: {stderr}"
    );
}

#[test]
fn stdin_classic_sidecars_and_bad_input() {
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: app, image: a}]}\n";
    let output = mesh(
        &["inject", "-f", "-", "--kubernetes-version", "1.28.3"],
        Some(pod),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out = documents(&String::from_utf8_lossy(&output.stdout));
    assert_eq!(
        containers(&out[0]),
        ["mesh-init", "mesh-proxy", "app"],
        "before 1.29 the proxy is the first app container"
    );
    assert!(out[0]["spec"]["containers"][0]["lifecycle"]["postStart"].is_object());

    let output = mesh(
        &["inject", "-f", "-"],
        Some("kind: Pod\n---\nkey: [unclosed\n"),
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("document 2") && stderr.contains("not valid YAML"),
        "{stderr}"
    );

    let output = mesh(&["inject", "-f", "/nonexistent/app.yaml"], None);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read /nonexistent/app.yaml"));
}
