//! Runs a command's async body on a current-thread runtime; an error is printed as the
//! command's and becomes its failure exit status.

use std::{future::Future, process::ExitCode};

/// Runs `body`, printing `mesh <command>: <error>` and exiting `failed` when it fails.
pub fn block_on(
    command: &str,
    failed: u8,
    body: impl Future<Output = anyhow::Result<ExitCode>>,
) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let result = match runtime {
        Ok(runtime) => runtime.block_on(body),
        Err(e) => Err(anyhow::anyhow!("cannot start the runtime: {e}")),
    };
    result.unwrap_or_else(|error| {
        eprintln!("mesh {command}: {error:#}");
        ExitCode::from(failed)
    })
}
