//! Named network namespaces (`ip netns`), the commands that configure them, and running code
//! inside one: `setns` is per thread, so such code runs on a thread of its own, and sockets it
//! opens stay in that namespace after the thread ends.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

/// Where `ip netns` keeps named namespaces.
const NETNS_DIR: &str = "/run/netns";
/// Where `ip netns exec` finds per-namespace files (resolv.conf, hosts) to mount over /etc.
const NETNS_ETC: &str = "/etc/netns";
/// Every namespace the lab makes starts with this.
pub const LAB_PREFIX: &str = "mlab-";

/// A failed system command, with what it printed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The program could not be started at all.
    #[error(
        "cannot run {program}: {source} (is it installed? the lab needs iproute2 and iptables)"
    )]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// It ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        /// The whole command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed on stderr.
        stderr: String,
    },
    /// Code meant to run inside a namespace could not enter it.
    #[error("cannot enter network namespace {netns}: {reason}")]
    Enter {
        /// The namespace.
        netns: String,
        /// Why.
        reason: String,
    },
}

/// Runs a command to completion; fails with its stderr when it exits non-zero.
pub fn run(program: &str, args: &[&str]) -> Result<Output, CommandError> {
    run_with_input(program, args, None)
}

/// Runs a command with `input` on its stdin; fails with its stderr when it exits non-zero.
pub fn run_with_input(
    program: &str,
    args: &[&str],
    input: Option<&str>,
) -> Result<Output, CommandError> {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let spawn_error = |source| CommandError::Spawn {
        program: program.to_owned(),
        source,
    };
    let mut child = command.spawn().map_err(spawn_error)?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        use std::io::Write;
        stdin.write_all(input.as_bytes()).map_err(spawn_error)?;
    }
    let output = child.wait_with_output().map_err(spawn_error)?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(CommandError::Failed {
            command: format!("{program} {}", args.join(" ")),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// Runs `ip -n <netns> -batch -`: many `ip` commands in one namespace, one process.
pub fn ip_batch(netns: &str, commands: &[String]) -> Result<(), CommandError> {
    let input = commands.join("\n") + "\n";
    run_with_input("ip", &["-n", netns, "-batch", "-"], Some(&input)).map(drop)
}

/// Creates a named namespace with loopback up; an existing one of that name is replaced.
pub fn create(netns: &str) -> Result<(), CommandError> {
    if exists(netns) {
        delete(netns)?;
    }
    run("ip", &["netns", "add", netns])?;
    ip_batch(netns, &["link set lo up".to_owned()])
}

/// Whether the named namespace exists.
pub fn exists(netns: &str) -> bool {
    Path::new(NETNS_DIR).join(netns).exists()
}

/// Kills every process in the namespace, then deletes it and its /etc/netns files.
pub fn delete(netns: &str) -> Result<(), CommandError> {
    kill_all(netns);
    let _ = std::fs::remove_dir_all(etc_dir(netns));
    if exists(netns) {
        run("ip", &["netns", "del", netns])?;
    }
    Ok(())
}

/// The names of existing namespaces that start with `prefix`.
pub fn list(prefix: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with(prefix))
        .collect();
    names.sort();
    names
}

/// Sends SIGKILL to every process in the namespace (as `ip netns pids` lists them).
pub fn kill_all(netns: &str) {
    let Ok(output) = run("ip", &["netns", "pids", netns]) else {
        return;
    };
    for pid in String::from_utf8_lossy(&output.stdout).split_whitespace() {
        if let Ok(pid) = pid.parse::<i32>() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// `/etc/netns/<netns>`: files here replace their /etc namesakes for `ip netns exec`.
pub fn etc_dir(netns: &str) -> PathBuf {
    Path::new(NETNS_ETC).join(netns)
}

/// Writes `/etc/netns/<netns>/<file>`.
pub fn write_etc_file(netns: &str, file: &str, contents: &str) -> std::io::Result<()> {
    let dir = etc_dir(netns);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(file), contents)
}

/// Runs `work` on a new thread inside the namespace and returns its result.
pub fn run_inside<T, F>(netns: &str, work: F) -> Result<T, CommandError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let path = Path::new(NETNS_DIR).join(netns);
    let name = netns.to_owned();
    let enter_error = |reason: String| CommandError::Enter {
        netns: name.clone(),
        reason,
    };
    let file = std::fs::File::open(&path).map_err(|e| enter_error(e.to_string()))?;
    std::thread::spawn(move || {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| e.to_string())?;
        Ok(work())
    })
    .join()
    .map_err(|_| enter_error("the thread panicked".to_owned()))?
    .map_err(enter_error)
}
