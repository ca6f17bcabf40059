//! The Kubernetes client `mesh check` asks with: from `--kubeconfig` and `--context`, else as
//! kubectl finds its config (or in-cluster). Every request is bounded, and a 503 is an answer
//! to report rather than something to retry for minutes, as kube-rs does by default.

use std::{path::Path, time::Duration};

use anyhow::Context;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// How long connecting to the API server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one answer may take (the API server waits up to 10 s for a webhook).
const READ_TIMEOUT: Duration = Duration::from_secs(15);

/// A client for the chosen cluster and the API server's URL.
pub async fn connect(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> anyhow::Result<(kube::Client, String)> {
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..KubeConfigOptions::default()
    };
    let mut config = match (kubeconfig, context) {
        (Some(path), _) => {
            let file = Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read the kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .with_context(|| format!("cannot use the kubeconfig {}", path.display()))?
        }
        (None, Some(context)) => kube::Config::from_kubeconfig(&options)
            .await
            .with_context(|| format!("cannot use kubeconfig context {context:?}"))?,
        (None, None) => kube::Config::infer()
            .await
            .context("no cluster found: no kubeconfig ($KUBECONFIG, ~/.kube/config) and not in a pod; pass --kubeconfig")?,
    };
    config.default_retry = false;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(READ_TIMEOUT);
    let server = config
        .cluster_url
        .to_string()
        .trim_end_matches('/')
        .to_owned();
    let client = kube::Client::try_from(config)
        .with_context(|| format!("cannot make a client for the API server {server}"))?;
    Ok((client, server))
}

/// A kube-rs error as one line: the API's own message for an API error, else the error and
/// its causes.
pub fn describe(error: &kube::Error) -> String {
    if let kube::Error::Api(status) = error {
        return format!("{} ({} {})", status.message, status.code, status.reason);
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}
