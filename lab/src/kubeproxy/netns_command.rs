//! Runs a program inside a named network namespace (`ip netns exec`), feeding it input and
//! turning its failures into errors that say what to do.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use super::KubeProxyError;

/// Runs `program args` in `netns`; any exit status is returned, only a failure to start is
/// an error.
pub(crate) fn output(
    netns: &str,
    program: &str,
    args: &[&str],
    input: Option<&str>,
) -> Result<Output, KubeProxyError> {
    let spawn_error = |source| KubeProxyError::Spawn {
        command: program.to_string(),
        netns: netns.to_string(),
        source,
    };
    let mut child = Command::new("ip")
        .args(["netns", "exec", netns, program])
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        // A program that dies early closes its stdin; its stderr says why, so carry on.
        let _ = stdin.write_all(text.as_bytes());
    }
    child.wait_with_output().map_err(spawn_error)
}

/// Runs `program args` in `netns` and fails unless it succeeds.
pub(crate) fn run(
    netns: &str,
    program: &str,
    args: &[&str],
    input: Option<&str>,
) -> Result<Output, KubeProxyError> {
    let output = output(netns, program, args, input)?;
    if output.status.success() {
        return Ok(output);
    }
    Err(failure(
        netns,
        program,
        &output.status.to_string(),
        &String::from_utf8_lossy(&output.stderr),
        input,
    ))
}

/// The error for a failed run: a missing namespace and refusals get their own advice.
pub(crate) fn failure(
    netns: &str,
    program: &str,
    status: &str,
    stderr: &str,
    input: Option<&str>,
) -> KubeProxyError {
    let complaint: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("# Warning"))
        .collect();
    if stderr.contains("Cannot open network namespace") && stderr.contains("No such file") {
        return KubeProxyError::NoNamespace {
            netns: netns.to_string(),
        };
    }
    let refused = [
        "Permission denied",
        "Operation not permitted",
        "must be root",
    ]
    .iter()
    .any(|r| stderr.contains(r));
    if refused {
        return KubeProxyError::NeedsRoot {
            command: program.to_string(),
            netns: netns.to_string(),
            detail: complaint.first().copied().unwrap_or("no message").into(),
        };
    }
    let mut detail = complaint.join("; ");
    if detail.is_empty() {
        detail = "no message".into();
    }
    if let Some(input) = input {
        detail.push_str("\ninput was:\n");
        detail.push_str(input);
    }
    KubeProxyError::Failed {
        command: program.to_string(),
        netns: netns.to_string(),
        status: status.to_string(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_namespace_says_to_create_the_node() {
        let error = failure(
            "node-1",
            "iptables-nft-save",
            "exit status: 255",
            "Cannot open network namespace \"node-1\": No such file or directory\n",
            None,
        );
        assert!(
            matches!(error, KubeProxyError::NoNamespace { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("ip netns add node-1"), "{error}");
    }

    #[test]
    fn refusal_says_root_is_needed() {
        let error = failure(
            "node-1",
            "ip",
            "exit status: 1",
            "setting the network namespace \"node-1\" failed: Operation not permitted\n",
            None,
        );
        assert!(matches!(error, KubeProxyError::NeedsRoot { .. }), "{error}");
        assert!(error.to_string().contains("needs root"), "{error}");
    }

    #[test]
    fn other_failures_carry_stderr_and_input() {
        let error = failure(
            "node-1",
            "iptables-nft-restore",
            "exit status: 1",
            "# Warning: iptables-legacy tables present\niptables-restore: line 3 failed\n",
            Some("*nat\n"),
        );
        let text = error.to_string();
        assert!(matches!(error, KubeProxyError::Failed { .. }), "{text}");
        assert!(
            text.contains("line 3 failed") && text.contains("input was:\n*nat"),
            "{text}"
        );
        assert!(!text.contains("Warning"), "{text}");
    }
}
