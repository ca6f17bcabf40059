//! The gate of tests that need what a laptop may lack (root, tools on the PATH, built sibling
//! binaries): with a reason they cannot run, they are skipped with that reason on a laptop and
//! fail in CI (`CI=true`), where a skip must never count as a pass.

use std::path::Path;

/// Whether `test` may run: `true` when `why_not` is `None`. Otherwise prints
/// `SKIPPED <test>: <why>` and returns `false`, or panics when `CI=true`.
pub fn run_or_skip(test: &str, why_not: Option<String>) -> bool {
    let Some(why) = why_not else {
        return true;
    };
    if in_ci() {
        panic!("{test} cannot run here and CI must run it: {why}");
    }
    eprintln!("SKIPPED {test}: {why}");
    false
}

/// Whether `test`, which needs root and the programs `tools` on the PATH, may run here; see
/// [`run_or_skip`].
pub fn require_root(test: &str, tools: &[&str]) -> bool {
    run_or_skip(test, why_not_root(tools))
}

/// Why a test that needs root and `tools` cannot run here, or `None` when it can.
pub fn why_not_root(tools: &[&str]) -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some(format!("needs root (and {tools:?}); not running as root"));
    }
    let missing = missing_tools(tools);
    (!missing.is_empty()).then(|| format!("needs {missing:?}, not found on the PATH"))
}

/// Why a test that runs the workspace's `binaries` from `dir` (the folder of the test's own
/// `CARGO_BIN_EXE_*`) cannot run here, or `None` when every one is built.
pub fn why_not_built(dir: &Path, binaries: &[&str]) -> Option<String> {
    let missing: Vec<&str> = binaries
        .iter()
        .copied()
        .filter(|binary| !dir.join(binary).exists())
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "needs {missing:?} built in {}; run `cargo build --workspace` first",
            dir.display()
        )
    })
}

/// The programs of `tools` that are not an executable file in a folder of the PATH.
pub fn missing_tools<'a>(tools: &[&'a str]) -> Vec<&'a str> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    tools
        .iter()
        .copied()
        .filter(|tool| !std::env::split_paths(&path).any(|dir| is_executable(&dir.join(tool))))
        .collect()
}

/// Whether this is a CI run (`CI=true`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
