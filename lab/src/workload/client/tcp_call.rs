//! `mesh-workload call-tcp HOST:PORT`: a new connection per request to the TCP echo: read
//! its greeting, send a probe, half-close, and check that the probe came back before the
//! server closed its side. Counted by the pod and version in the greeting.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{
    ClientError,
    runner::{Caller, Load, run},
    summary::{Outcome, Summary},
    target::Target,
};

/// Most bytes read back from one connection.
const MAX_ECHO_BYTES: u64 = 64 * 1024;

/// One `mesh-workload call-tcp` run.
#[derive(Clone, Debug)]
pub struct TcpPlan {
    /// Where to connect.
    pub target: Target,
    /// How many connections and how.
    pub load: Load,
}

/// Makes the plan's connections and counts how they went.
pub async fn call_tcp(plan: TcpPlan) -> Summary {
    let target = Arc::new(plan.target);
    let mut workers = 0;
    run(plan.load, || {
        workers += 1;
        TcpCaller {
            target: target.clone(),
            worker: workers,
            sent: 0,
        }
    })
    .await
}

/// A worker making one connection per request.
struct TcpCaller {
    target: Arc<Target>,
    /// This worker's number, in its probes.
    worker: u64,
    sent: u64,
}

impl Caller for TcpCaller {
    async fn call(&mut self, _is_last: bool) -> Outcome {
        self.sent += 1;
        let probe = format!("worker {} probe {}\n", self.worker, self.sent);
        match self.exchange(&probe).await {
            Ok(outcome) => outcome,
            Err(error) => Outcome::error(&error),
        }
    }

    fn reset(&mut self) {}
}

impl TcpCaller {
    /// One connection: probe out, half-close, everything back until the server closes.
    async fn exchange(&self, probe: &str) -> Result<Outcome, ClientError> {
        let mut stream = self.target.connect().await?;
        stream
            .write_all(probe.as_bytes())
            .await
            .map_err(ClientError::Probe)?;
        stream.shutdown().await.map_err(ClientError::Probe)?;
        let mut received = Vec::new();
        (&mut stream)
            .take(MAX_ECHO_BYTES)
            .read_to_end(&mut received)
            .await
            .map_err(ClientError::Echo)?;
        let received = String::from_utf8_lossy(&received);
        let Some((greeting, echo)) = received.split_once('\n') else {
            return Err(ClientError::NoGreeting);
        };
        let (pod, version) = parse_greeting(greeting)?;
        Ok(Outcome {
            pod: Some(pod),
            version: Some(version),
            failure: (echo != probe).then(|| "wrong echo".to_owned()),
        })
    }
}

/// The pod and version in a greeting line `pod=<name> version=<version>`.
fn parse_greeting(line: &str) -> Result<(String, String), ClientError> {
    let mut pod = None;
    let mut version = None;
    for word in line.split_whitespace() {
        if let Some(name) = word.strip_prefix("pod=") {
            pod = Some(name.to_owned());
        } else if let Some(label) = word.strip_prefix("version=") {
            version = Some(label.to_owned());
        }
    }
    match (pod, version) {
        (Some(pod), Some(version)) => Ok((pod, version)),
        _ => Err(ClientError::BadGreeting(line.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greetings_name_pod_and_version() {
        let (pod, version) = parse_greeting("pod=db-0 version=v3").expect("greeting");
        assert_eq!((pod.as_str(), version.as_str()), ("db-0", "v3"));
        assert!(parse_greeting("SSH-2.0-OpenSSH_9.6").is_err());
    }
}
