//! Network namespaces for privileged tests (feature `netns`): made with `ip netns`, removed on
//! drop (also when a test panics), and code run inside one on a thread of its own, since
//! `setns` is per thread. A socket made inside stays in the namespace wherever it is used later.

use std::{
    fs::File,
    process::{Command, Output},
    sync::atomic::{AtomicUsize, Ordering},
    thread::JoinHandle,
};

use nix::sched::{CloneFlags, setns};

/// Where `ip netns` keeps the namespaces it names.
const NETNS_DIR: &str = "/var/run/netns";

/// A named network namespace with loopback up, deleted on drop.
pub struct TestNetns {
    name: String,
}

// === impl TestNetns ===

impl TestNetns {
    /// Creates `mtest-<tag>-<pid>-<n>` (`n` counts this process's namespaces, so tests running
    /// side by side in one process never share one), replacing a leftover of the same name.
    pub fn create(tag: &str) -> TestNetns {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("mtest-{tag}-{}-{n}", std::process::id());
        // A namespace left by a killed earlier run with the same pid would make `add` fail.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run("ip", &["netns", "add", &name]);
        let netns = TestNetns { name };
        netns.ip(&["link", "set", "lo", "up"]);
        netns
    }

    /// The name `ip netns` knows it by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n <name> <args>`; panics with its output when it fails.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run("ip", &all);
    }

    /// `ip netns exec <name> <program>`: a command that runs inside, for the caller to give
    /// arguments, environment and a way to run.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    /// Runs `args` (a program and its arguments) inside; panics with its output when it fails.
    /// Returns its stdout.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut all = vec!["netns", "exec", self.name.as_str()];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Runs `work` on a thread of its own that has entered the namespace and returns its
    /// result; a panic in `work` carries on in the caller.
    pub fn enter<T: Send>(&self, work: impl FnOnce() -> T + Send) -> T {
        let file = self.open();
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    enter(&file, &self.name);
                    work()
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Starts `work` on a thread of its own inside the namespace and returns at once: for a
    /// server that lives as long as the test, or one the test joins at its end.
    pub fn spawn<T, F>(&self, work: F) -> JoinHandle<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let file = self.open();
        let name = self.name.clone();
        std::thread::spawn(move || {
            enter(&file, &name);
            work()
        })
    }

    /// The namespace's file, which `setns` enters.
    fn open(&self) -> File {
        let path = format!("{NETNS_DIR}/{}", self.name);
        File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"))
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Moves the calling thread into the namespace open as `file`.
fn enter(file: &File, name: &str) {
    setns(file, CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| panic!("setns {name}: {e}"));
}

/// Runs a command to completion (on the host, or inside a namespace through `ip netns exec`);
/// panics with its output when it fails. Returns its stdout.
pub fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} {args:?}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        describe(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A command's exit status and everything it printed, for a failure message.
pub fn describe(output: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
