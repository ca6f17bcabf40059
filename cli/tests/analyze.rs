//! `mesh analyze -f DIR` as a user runs it: a clean folder says so and exits 0; a broken one
//! prints each problem with its level, object and file and exits 1; an unreadable one says
//! which path it could not read.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

const SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata: { name: reviews, namespace: shop }
spec:
  clusterIP: 10.96.0.30
  selector: { app: reviews }
  ports: [{ name: http, port: 9080 }]
"#;

const BROKEN_ROUTE: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: broken, namespace: shop }
spec:
  hosts: [reviews]
  http: [{ route: [{ destination: { host: reviews, subset: nope } }] }]
"#;

/// A folder of manifests made for one test, removed when it ends.
struct Folder(PathBuf);

impl Folder {
    fn new(name: &str, files: &[(&str, &str)]) -> Folder {
        let dir =
            std::env::temp_dir().join(format!("mesh-cli-analyze-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        for (file, text) in files {
            std::fs::write(dir.join(file), text).expect("write a manifest");
        }
        Folder(dir)
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn analyze(dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mesh"))
        .arg("analyze")
        .arg("-f")
        .arg(dir)
        .output()
        .expect("run mesh")
}

#[test]
fn a_clean_folder_passes_with_a_message() {
    let folder = Folder::new("clean", &[("reviews.yaml", SERVICE)]);
    let output = analyze(&folder.0);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert_eq!(
        stdout.trim(),
        format!(
            "\u{2714} No validation issues found when analyzing {}.",
            folder.0.display()
        )
    );
}

#[test]
fn a_broken_folder_names_each_problem_and_fails() {
    let folder = Folder::new(
        "broken",
        &[
            ("reviews.yaml", SERVICE),
            ("routes.yaml", BROKEN_ROUTE),
            ("typo.yaml", "kind: [unclosed\n"),
        ],
    );
    let output = analyze(&folder.0);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    let route = stdout
        .lines()
        .find(|l| l.contains("(VirtualService shop/broken)"))
        .unwrap_or_else(|| panic!("the broken route is reported:\n{stdout}"));
    assert!(route.starts_with("Error "), "{route}");
    assert!(route.contains("routes.yaml (document 1)"), "{route}");
    assert!(route.contains("subset \"nope\""), "{route}");
    let typo = stdout
        .lines()
        .find(|l| l.contains("typo.yaml"))
        .unwrap_or_else(|| panic!("the unreadable file is reported:\n{stdout}"));
    assert!(typo.contains("not valid YAML"), "{typo}");
    assert!(
        stdout
            .lines()
            .next()
            .is_some_and(|l| l.starts_with("Error ")),
        "errors first:\n{stdout}"
    );
    assert!(stderr.contains("error(s)"), "{stderr}");
}

#[test]
fn a_missing_folder_is_named() {
    let missing = std::env::temp_dir().join("mesh-cli-analyze-no-such-folder");
    let output = analyze(&missing);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
}

const TELEMETRY: &str = r#"
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: mesh-default, namespace: mesh-system }
spec:
  tracing: [{ providers: [{ name: otel }], randomSamplingPercentage: 10 }]
  accessLogging: [{ filter: { expression: "response.code >= 400 &&" } }]
"#;

#[test]
fn telemetry_providers_and_filters_are_checked() {
    let folder = Folder::new("telemetry", &[("telemetry.yaml", TELEMETRY)]);
    let output = analyze(&folder.0);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let filter = (stdout.lines())
        .find(|l| l.contains("filter.expression"))
        .unwrap_or_else(|| panic!("the broken filter is reported:\n{stdout}"));
    assert!(
        filter.starts_with("Error (Telemetry mesh-system/mesh-default)"),
        "{filter}"
    );
    assert!(stdout.contains("tracing provider \"otel\""), "{stdout}");

    let fixed = TELEMETRY.replace(" &&\"", "\"");
    let folder = Folder::new("telemetry-fixed", &[("telemetry.yaml", &fixed)]);
    let output = Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args([
            "analyze",
            "--tracing-provider",
            "otel=otel-collector.observability:4317",
        ])
        .arg("-f")
        .arg(&folder.0)
        .output()
        .expect("run mesh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("No validation issues"), "{stdout}");
}

#[test]
fn an_object_defined_in_two_files_is_reported_with_both() {
    let moved = SERVICE.replace("port: 9080", "port: 9081");
    let folder = Folder::new(
        "twice",
        &[("reviews.yaml", SERVICE), ("reviews-copy.yaml", &moved)],
    );
    let output = analyze(&folder.0);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let twice = (stdout.lines())
        .find(|l| l.contains("defined twice"))
        .unwrap_or_else(|| panic!("the second definition is reported:\n{stdout}"));
    assert!(
        twice.starts_with("Warning (Service shop/reviews)"),
        "{twice}"
    );
    // Files are read in order of name: reviews.yaml replaces reviews-copy.yaml.
    let (at, message) = twice.split_once(": ").expect("a message");
    assert!(at.ends_with("reviews.yaml (document 1)"), "{twice}");
    assert!(
        message.contains("reviews-copy.yaml (document 1)"),
        "{twice}"
    );
}

#[test]
fn a_service_without_a_cluster_ip_is_given_one_and_says_so() {
    let unwritten = SERVICE.replace("  clusterIP: 10.96.0.30\n", "");
    let headless = SERVICE
        .replace("name: reviews,", "name: reviews-pods,")
        .replace("10.96.0.30", "None");
    let folder = Folder::new(
        "no-cluster-ip",
        &[("reviews.yaml", &unwritten), ("pods.yaml", &headless)],
    );
    let output = analyze(&folder.0);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let note = (stdout.lines())
        .find(|l| l.contains("clusterIP"))
        .unwrap_or_else(|| panic!("the given address is noted:\n{stdout}"));
    assert!(
        note.starts_with("Info (Service shop/reviews) ") && note.contains("10.96.0.20"),
        "{note}"
    );
    assert!(
        !stdout.contains("reviews-pods"),
        "headless is fine:\n{stdout}"
    );
}

#[test]
fn a_backend_weighted_0_may_name_a_missing_service() {
    let route = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: reviews, namespace: shop }
spec:
  parentRefs: [{ group: "", kind: Service, name: reviews, port: 9080 }]
  rules:
  - backendRefs:
    - { name: reviews, port: 9080, weight: 100 }
    - { name: reviews-v9, port: 9080, weight: 0 }
"#;
    let folder = Folder::new(
        "weight-0",
        &[("reviews.yaml", SERVICE), ("route.yaml", route)],
    );
    let output = analyze(&folder.0);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("No validation issues"), "{stdout}");
}
