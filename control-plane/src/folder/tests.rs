use std::fs;

use k8s_openapi::api::core::v1::Service;

use super::*;
use crate::istio::VirtualService;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mesh-folder-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("nested")).unwrap();
    dir
}

const WEB: &str = "apiVersion: v1\nkind: Service\nmetadata: { name: web, namespace: shop }\nspec: { clusterIP: 10.96.0.30, ports: [{ port: 80 }] }\n";
const VS: &str = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: { name: web, namespace: shop }\nspec: { hosts: [web] }\n";

#[test]
fn a_folder_reads_nested_manifests_and_skips_other_files() {
    let dir = temp_dir("read");
    fs::write(dir.join("web.yaml"), WEB).unwrap();
    fs::write(dir.join("nested/vs.yml"), VS).unwrap();
    fs::write(dir.join("notes.txt"), "kind: nonsense").unwrap();
    fs::write(dir.join(".hidden.yaml"), "not: [valid").unwrap();
    let loaded = load_dir(&dir).unwrap();
    assert!(loaded.problems.is_empty(), "{:#?}", loaded.problems);
    assert!(loaded.store.get::<Service>("shop", "web").is_some());
    assert!(loaded.store.get::<VirtualService>("shop", "web").is_some());
    let source = &loaded.sources[&ObjectRef::new(Kind::VirtualService, "shop", "web")];
    assert!(source.ends_with("nested/vs.yml (document 1)"), "{source}");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_folder_is_an_error_that_names_it() {
    let err = load_dir(Path::new("/nonexistent/mesh/manifests")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot read /nonexistent/mesh/manifests:"),
        "{err}"
    );
}

#[test]
fn polling_reports_only_changed_content_and_apply_relists_every_kind() {
    let dir = temp_dir("poll");
    fs::write(dir.join("web.yaml"), WEB).unwrap();
    fs::write(dir.join("vs.yaml"), VS).unwrap();
    let mut folder = Folder::new(&dir);
    let first = folder
        .poll()
        .unwrap()
        .expect("the first poll reads the folder");
    let mut store = Store::new();
    assert!(first.apply_to(&mut store));
    assert!(folder.poll().unwrap().is_none(), "nothing changed");

    fs::remove_file(dir.join("vs.yaml")).unwrap();
    let second = folder.poll().unwrap().expect("a removed file is a change");
    assert!(second.apply_to(&mut store));
    assert!(store.get::<VirtualService>("shop", "web").is_none());
    assert!(store.get::<Service>("shop", "web").is_some());
    assert!(
        !second.apply_to(&mut store),
        "applying the same objects changes nothing"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_duplicate_definition_is_reported_and_the_later_one_wins() {
    let dir = temp_dir("dup");
    fs::write(dir.join("a.yaml"), WEB).unwrap();
    fs::write(dir.join("b.yaml"), WEB.replace("port: 80", "port: 81")).unwrap();
    let loaded = load_dir(&dir).unwrap();
    assert_eq!(loaded.problems.len(), 1);
    let problem = &loaded.problems[0];
    assert!(problem.message.contains("defined twice"), "{problem}");
    // Both files are named: the replacing one as the source, the replaced one in the message.
    let source = problem.source.as_deref().unwrap();
    assert!(source.ends_with("b.yaml (document 1)"), "{problem}");
    assert!(problem.message.contains("a.yaml (document 1)"), "{problem}");
    let web = loaded.store.get::<Service>("shop", "web").unwrap();
    assert_eq!(
        web.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].port,
        81
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn watch_calls_back_when_a_file_changes() {
    let dir = temp_dir("watch");
    fs::write(dir.join("web.yaml"), WEB).unwrap();
    let (sender, mut changes) = tokio::sync::mpsc::unbounded_channel();
    let watcher = tokio::spawn(
        Folder::new(&dir).watch(Duration::from_millis(20), move |loaded| {
            let _ = sender.send(loaded);
        }),
    );
    let first = changes.recv().await.unwrap();
    assert_eq!(first.store.len(), 1);
    fs::write(dir.join("vs.yaml"), VS).unwrap();
    let second = tokio::time::timeout(Duration::from_secs(5), changes.recv())
        .await
        .expect("the change is seen")
        .unwrap();
    assert_eq!(second.store.len(), 2);
    watcher.abort();
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_later_folder_replaces_an_earlier_ones_objects_silently() {
    let user = temp_dir("layer-user");
    let cluster = temp_dir("layer-cluster");
    fs::write(user.join("web.yaml"), WEB).unwrap();
    fs::write(user.join("vs.yaml"), VS).unwrap();
    let assigned = WEB.replace("10.96.0.30", "10.96.0.20");
    fs::write(cluster.join("services.yaml"), &assigned).unwrap();
    let mut folder = Folder::layered(vec![user.clone(), cluster.clone()]);
    let loaded = folder.poll().unwrap().expect("the first poll reads both");
    assert!(loaded.problems.is_empty(), "{:#?}", loaded.problems);
    let web = loaded.store.get::<Service>("shop", "web").unwrap();
    let spec = web.spec.as_ref().unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.20"));
    assert!(
        loaded.store.get::<VirtualService>("shop", "web").is_some(),
        "objects only the first folder has stay"
    );
    let source = &loaded.sources[&ObjectRef::new(Kind::Service, "shop", "web")];
    assert!(source.contains("layer-cluster"), "{source}");

    // A change in either folder is a change; dropping the later object uncovers the earlier.
    assert!(folder.poll().unwrap().is_none());
    fs::remove_file(cluster.join("services.yaml")).unwrap();
    let uncovered = folder
        .poll()
        .unwrap()
        .expect("a change in the later folder");
    let web = uncovered.store.get::<Service>("shop", "web").unwrap();
    let spec = web.spec.as_ref().unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.30"));
    fs::remove_dir_all(&user).unwrap();
    fs::remove_dir_all(&cluster).unwrap();
}

#[test]
fn a_later_folders_cluster_ip_is_kept_and_none_is_handed_out() {
    let user = temp_dir("address-user");
    let cluster = temp_dir("address-cluster");
    let unwritten = WEB.replace("clusterIP: 10.96.0.30, ", "");
    fs::write(user.join("web.yaml"), &unwritten).unwrap();
    fs::write(cluster.join("services.yaml"), WEB).unwrap();
    let loaded = Folder::layered(vec![user.clone(), cluster.clone()])
        .load()
        .unwrap();
    assert!(loaded.problems.is_empty(), "{:#?}", loaded.problems);
    let web = loaded.store.get::<Service>("shop", "web").unwrap();
    let spec = web.spec.as_ref().unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.30"));

    // Alone, the user's folder gets the lab's first automatic address.
    let alone = load_dir(&user).unwrap();
    let web = alone.store.get::<Service>("shop", "web").unwrap();
    let spec = web.spec.as_ref().unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.20"));
    fs::remove_dir_all(&user).unwrap();
    fs::remove_dir_all(&cluster).unwrap();
}

#[test]
fn workloads_are_read_as_the_pods_they_would_make() {
    let dir = temp_dir("workloads");
    let workloads = r#"
apiVersion: apps/v1
kind: Deployment
metadata: { name: web-v1 }
spec:
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web, version: v1 } }
    spec: { containers: [{ name: web, image: web }] }
---
apiVersion: apps/v1
kind: StatefulSet
metadata: { name: db, namespace: shop }
spec:
  template: { metadata: { labels: { app: db } } }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: web }
"#;
    fs::write(dir.join("workloads.yaml"), workloads).unwrap();
    let loaded = load_dir(&dir).unwrap();
    let labels = |pairs: &[(&str, &str)]| {
        (pairs.iter())
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    assert_eq!(
        loaded.templates,
        [
            WorkloadTemplate {
                namespace: "default".to_owned(),
                labels: labels(&[("app", "web"), ("version", "v1")]),
            },
            WorkloadTemplate {
                namespace: "shop".to_owned(),
                labels: labels(&[("app", "db")]),
            },
        ]
    );
    // Only the ServiceAccount is noted as unused.
    let notes: Vec<String> = loaded.problems.iter().map(ToString::to_string).collect();
    assert_eq!(notes.len(), 1, "{notes:#?}");
    assert!(
        notes[0].contains("ServiceAccount (v1) is not used"),
        "{notes:#?}"
    );
    fs::remove_dir_all(&dir).unwrap();
}
