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

const WEB: &str = "apiVersion: v1\nkind: Service\nmetadata: { name: web, namespace: shop }\nspec: { ports: [{ port: 80 }] }\n";
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
    assert!(loaded.problems[0].message.contains("defined twice"));
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
    let assigned = WEB.replace("spec: {", "spec: { clusterIP: 10.96.0.20,");
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
    assert_eq!(web.spec.as_ref().unwrap().cluster_ip, None);
    fs::remove_dir_all(&user).unwrap();
    fs::remove_dir_all(&cluster).unwrap();
}
