//! Requests to a running lab's supervisor (a separate process) over a unix socket in the lab's
//! state folder: one JSON request line, one JSON reply line. `mesh lab scale` uses it.

use std::{
    future::Future,
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt},
    net::{UnixListener, UnixStream},
};

use crate::state;

/// The longest a request may take (scaling waits for pods to stop gracefully).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the supervisor waits for a request line.
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest request line the supervisor reads.
const MAX_REQUEST: u64 = 64 * 1024;

/// What a client asks of the supervisor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Scale a Deployment to `replicas` pods.
    Scale {
        /// The Deployment's namespace.
        namespace: String,
        /// The Deployment's name.
        deployment: String,
        /// How many pods it should have.
        replicas: u32,
    },
}

/// The supervisor's answer: what it did, or why it could not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// Done; what changed.
    Done(String),
    /// Refused or failed; why.
    Failed(String),
}

/// Why a request did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No supervisor listens.
    #[error(
        "cannot reach the lab's supervisor at {path}: {error}; is the lab running (`mesh lab status`)?"
    )]
    Unreachable {
        /// The socket.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// The exchange broke off or the answer was not understood.
    #[error("the lab's supervisor did not answer properly: {reason}")]
    BadAnswer {
        /// Why.
        reason: String,
    },
}

/// The socket of the lab called `lab`.
pub fn socket_path(lab: &str) -> PathBuf {
    state::lab_dir(lab).join("supervisor.sock")
}

/// Binds the socket at `path` (see `socket_path`), replacing a stale one.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    let _ = std::fs::remove_file(path);
    UnixListener::bind(path)
}

/// Answers requests with `handle`, one connection at a time, forever.
pub async fn serve<F, Fut>(listener: UnixListener, handle: F)
where
    F: Fn(Request) -> Fut,
    Fut: Future<Output = Reply>,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        if let Err(error) = answer(stream, &handle).await {
            tracing::warn!("control request: {error}");
        }
    }
}

async fn answer<F, Fut>(stream: UnixStream, handle: &F) -> std::io::Result<()>
where
    F: Fn(Request) -> Fut,
    Fut: Future<Output = Reply>,
{
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_REQUEST));
    // A client that never finishes its line must not hold the socket from others.
    tokio::time::timeout(REQUEST_READ_TIMEOUT, reader.read_line(&mut line))
        .await
        .map_err(|_| std::io::Error::other("no request line within 5 s"))??;
    let reply = match serde_json::from_str::<Request>(&line) {
        Ok(request) => handle(request).await,
        Err(e) => Reply::Failed(format!("not a request the supervisor knows: {e}")),
    };
    let mut text = serde_json::to_string(&reply).map_err(std::io::Error::other)?;
    text.push('\n');
    write.write_all(text.as_bytes()).await
}

/// Sends `request` to the supervisor listening at `path` and waits for its reply (blocking).
pub fn send(path: &Path, request: &Request) -> Result<Reply, ControlError> {
    let mut stream = std::os::unix::net::UnixStream::connect(path).map_err(|error| {
        ControlError::Unreachable {
            path: path.to_owned(),
            error,
        }
    })?;
    let bad = |reason: String| ControlError::BadAnswer { reason };
    let mut text = serde_json::to_string(request).map_err(|e| bad(e.to_string()))?;
    text.push('\n');
    stream
        .set_read_timeout(Some(REQUEST_TIMEOUT))
        .and_then(|()| stream.write_all(text.as_bytes()))
        .map_err(|e| bad(e.to_string()))?;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .map_err(|e| bad(e.to_string()))?;
    serde_json::from_str(&line).map_err(|e| bad(format!("{e} in {line:?}")))
}

#[cfg(test)]
mod tests;
