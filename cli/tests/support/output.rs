//! What the CLI tests read from `mesh`'s output, and how they wait for a condition.

use std::{process::Output, time::Duration};

/// The command's standard output as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The command's standard error as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The table's lines (the header too), split into cells.
pub fn rows(table: &str) -> Vec<Vec<String>> {
    // "NOT SENT" is one cell: cells are separated by at least three spaces.
    table
        .lines()
        .map(|line| {
            line.split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

/// Polls `what` (a readiness endpoint or the control plane's sync status) until it holds.
pub fn wait_until(what: &str, mut holds: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !holds() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}
