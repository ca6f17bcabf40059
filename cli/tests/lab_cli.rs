//! `mesh lab` from the command line: up in the background, status, exec, logs, scale, and down,
//! which removes everything even after the supervisor was killed with SIGKILL.

use std::{path::Path, process::Command};

use mesh_test_support::{run_or_skip, why_not_built, why_not_root};

fn mesh(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args(["lab", "--name", "clitest"])
        .args(args)
        .output()
        .expect("run mesh");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn lab_namespaces() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with("mlab-clitest-"))
                .collect()
        })
        .unwrap_or_default()
}

/// Removes the lab even when an assertion fails half way.
struct Down;

impl Drop for Down {
    fn drop(&mut self) {
        let _ = mesh(&["down"]);
    }
}

#[test]
fn up_status_exec_logs_and_down_after_the_supervisor_is_killed() {
    let bins = Path::new(env!("CARGO_BIN_EXE_mesh")).parent().unwrap();
    let binaries = [
        "mesh-proxy",
        "mesh-init",
        "mesh-control-plane",
        "mesh-workload",
    ];
    let why_not = why_not_root(&[]).or_else(|| why_not_built(bins, &binaries));
    if !run_or_skip("up_status_exec_logs_and_down", why_not) {
        return;
    }
    let _down = Down;
    let shop = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lab/examples/shop");
    let (ok, out, err) = mesh(&["up", "-f", shop.to_str().unwrap()]);
    assert!(ok, "up failed:\n{out}\n{err}");
    assert!(
        out.contains("web-v1-") && out.contains("mesh-proxy"),
        "{out}"
    );

    let (ok, status, _) = mesh(&["status"]);
    assert!(ok);
    let web_ready = status
        .lines()
        .filter(|l| l.contains(" web-v") && l.contains("2/2 "))
        .count();
    assert_eq!(
        web_ready, 3,
        "three web pods, each app + sidecar running:\n{status}"
    );

    // The running supervisor scales a Deployment when asked, and says why it cannot.
    let (ok, out, err) = mesh(&["scale", "-n", "shop", "deploy/web-v2", "--replicas", "2"]);
    assert!(
        ok && out.contains("scaled to 2; started web-v2-"),
        "{out}{err}"
    );
    let (ok, _, err) = mesh(&["scale", "-n", "shop", "deploy/nope", "--replicas", "2"]);
    assert!(!ok && err.contains("no Deployment shop/nope"), "{err}");

    let (ok, answer, err) = mesh(&[
        "exec",
        "-n",
        "shop",
        "deploy/sleep",
        "--",
        "curl",
        "-sf",
        "http://web/",
    ]);
    assert!(ok, "{err}");
    assert!(answer.contains("\"pod\":\"web-v"), "{answer}");
    let (ok, _, _) = mesh(&["exec", "-n", "shop", "deploy/sleep", "--", "false"]);
    assert!(!ok, "exec passes the command's exit status on");

    let (ok, logs, _) = mesh(&["logs", "-n", "shop", "deploy/sleep", "-c", "mesh-proxy"]);
    assert!(ok && logs.contains("mesh-proxy ready"), "{logs}");
    let (ok, _, err) = mesh(&["logs", "-n", "shop", "deploy/sleep", "-c", "nope"]);
    assert!(!ok && err.contains("has no container nope"), "{err}");

    // A crashed supervisor: SIGKILL leaves pods, namespaces and rules behind; down removes them.
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("/run/mesh-lab/clitest/state.json").unwrap())
            .unwrap();
    let pid = state["supervisor_pid"].as_i64().unwrap() as i32;
    let pod_pids: Vec<i32> = state["pods"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|pod| pod["containers"].as_object().unwrap().values())
        .filter_map(|c| c["pid"].as_i64())
        .map(|p| p as i32)
        .collect();
    assert!(
        pod_pids.len() >= 8,
        "apps and sidecars are running: {pod_pids:?}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(!lab_namespaces().is_empty());
    let (ok, out, err) = mesh(&["down"]);
    assert!(ok, "{out}{err}");
    assert_eq!(
        lab_namespaces(),
        Vec::<String>::new(),
        "down removed every namespace"
    );
    assert!(!Path::new("/run/mesh-lab/clitest").exists());
    assert!(!Path::new("/etc/netns").read_dir().unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("mlab-clitest-")
    }));
    let leftover = Command::new("pgrep")
        .args(["-f", "mlab-clitest"])
        .output()
        .unwrap();
    assert!(
        leftover.stdout.is_empty(),
        "no process of the lab is left: {}",
        String::from_utf8_lossy(&leftover.stdout)
    );
}
