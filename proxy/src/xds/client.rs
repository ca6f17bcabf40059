//! The discovery client: keeps one stream to the control plane open (reconnecting with backoff
//! and jitter), applies each response atomically through the proxy's config machinery, and ACKs
//! what it applied or NACKs what it could not, keeping the last good config.

use std::time::Duration;

use mesh_proto::discovery::v1::Node;
use tokio::{net::TcpListener, time::Instant};
use tonic::transport::Endpoint;

use super::{
    DiscoveryTls, XdsError,
    backoff::Backoff,
    cause,
    held::Held,
    session::{Session, Update},
    startup::StartupProbes,
};
use crate::{
    config::{ConfigError, EncodedConfig, Snapshot},
    proxy::Proxy,
};

/// How long the first config waits for what its listeners name (Envoy waits 15 s for a
/// listener's route config before it starts without it).
const WARMING_PATIENCE: Duration = Duration::from_secs(10);
/// Reconnection delays: from half a second up to 30 s.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Gives up on a connection attempt after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 pings detect a control plane that vanished without closing the connection.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where to connect and who the proxy is.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// The control plane, e.g. `https://mesh-control-plane.mesh-system:15012` (a bare
    /// `host:port` means plain `http://`).
    pub address: String,
    /// Whom to trust as the control plane; required for, and only for, `https://`.
    pub tls: Option<DiscoveryTls>,
    /// Use the delta stream.
    pub delta: bool,
    /// The node metadata sent on each new stream.
    pub node: Node,
}

/// A discovery client: `first_config` before the proxy starts, then `follow`.
pub struct DiscoveryClient {
    endpoint: Endpoint,
    delta: bool,
    node: Node,
    held: Held,
    session: Option<Session>,
    /// Whether the last stream failed or could not be opened, so the next attempt waits.
    failed: bool,
    backoff: Backoff,
    /// Listeners left out while their references are missing, as last logged.
    warming: Vec<String>,
}

/// Where a config is applied.
enum Target<'a> {
    /// Before the proxy starts: compiled only; the last good one is kept here.
    Startup(&'a mut Option<Snapshot>),
    /// The running proxy.
    Running(&'a Proxy),
}

impl DiscoveryClient {
    /// A client for `settings`; it connects on first use.
    pub fn new(settings: ClientSettings) -> Result<Self, XdsError> {
        let url = if settings.address.contains("://") {
            settings.address.clone()
        } else {
            format!("http://{}", settings.address)
        };
        let address = || settings.address.clone();
        let endpoint = Endpoint::from_shared(url)
            .map_err(|source| XdsError::Address {
                address: address(),
                source,
            })?
            .connect_timeout(CONNECT_TIMEOUT)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .tcp_nodelay(true);
        let https = endpoint.uri().scheme_str() == Some("https");
        let endpoint = match (https, &settings.tls) {
            (true, Some(tls)) => endpoint
                .tls_config(tls.client_config())
                .map_err(|error| XdsError::Tls { error })?,
            (false, None) => endpoint,
            (true, None) => return Err(XdsError::NoRootCert { address: address() }),
            (false, Some(_)) => return Err(XdsError::RootCertWithoutTls { address: address() }),
        };
        Ok(DiscoveryClient {
            endpoint,
            delta: settings.delta,
            node: settings.node,
            held: Held::default(),
            session: None,
            failed: false,
            backoff: Backoff::new(BACKOFF_MIN, BACKOFF_MAX),
            warming: Vec::new(),
        })
    }

    /// The control plane's endpoint (address and TLS), for the CA client beside the stream.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Waits for the first complete config (every type received, compiled, ACKed, and no
    /// listener waiting for what it names, or `WARMING_PATIENCE` spent waiting) and returns it
    /// for `Proxy::start`. Meanwhile `health`, if given, answers live but not ready; it is
    /// handed back for the admin server.
    pub async fn first_config(
        &mut self,
        health: Option<TcpListener>,
    ) -> (Snapshot, Option<TcpListener>) {
        tracing::info!(control_plane = %self.endpoint.uri(), node = %self.node.id,
            "waiting for the first complete config from the control plane");
        let probes = health.map(StartupProbes::serve);
        let mut last_good = None;
        let mut warming_deadline = None;
        let snapshot = loop {
            let update = match warming_deadline {
                None => self.next_update().await,
                Some(deadline) => tokio::select! {
                    update = self.next_update() => update,
                    () = tokio::time::sleep_until(deadline) => {
                        tracing::warn!(listeners = ?self.warming, "starting without listeners \
                            whose route configs or clusters did not arrive within {WARMING_PATIENCE:?}");
                        warming_deadline = None;
                        match last_good.take() {
                            Some(snapshot) => break snapshot,
                            None => continue,
                        }
                    }
                },
            };
            self.process(update, Target::Startup(&mut last_good)).await;
            if self.held.is_complete() && last_good.is_some() {
                if self.warming.is_empty()
                    && let Some(snapshot) = last_good.take()
                {
                    break snapshot;
                }
                warming_deadline.get_or_insert_with(|| Instant::now() + WARMING_PATIENCE);
            }
        };
        let health = match probes {
            Some(probes) => probes.finish().await,
            None => None,
        };
        (snapshot, health)
    }

    /// Applies every later response to `proxy` until it drains; on a lost stream the proxy
    /// keeps serving its last good config while the client reconnects.
    pub async fn follow(mut self, proxy: &Proxy) {
        let drain = proxy.state().drain.clone();
        loop {
            let update = tokio::select! {
                _ = drain.cancelled() => return,
                update = self.next_update() => update,
            };
            self.process(update, Target::Running(proxy)).await;
        }
    }

    /// The next response, (re)opening the stream as needed.
    async fn next_update(&mut self) -> Update {
        loop {
            let session = match &mut self.session {
                Some(session) => session,
                None => {
                    if self.failed {
                        let delay = self.backoff.next_delay();
                        tracing::info!(?delay, "reconnecting to the control plane");
                        tokio::time::sleep(delay).await;
                    }
                    match self.open().await {
                        Ok(session) => self.session.insert(session),
                        Err(error) => {
                            tracing::warn!(control_plane = %self.endpoint.uri(), "{error}");
                            self.failed = true;
                            continue;
                        }
                    }
                }
            };
            match session.next().await {
                Ok(Some(update)) => {
                    self.failed = false;
                    self.backoff.reset();
                    return update;
                }
                Ok(None) => tracing::warn!(
                    "the control plane closed the discovery stream; serving the last good config"
                ),
                Err(status) => tracing::warn!(code = ?status.code(), message = status.message(),
                    "the discovery stream failed; serving the last good config"),
            }
            self.session = None;
            self.failed = true;
        }
    }

    async fn open(&self) -> Result<Session, String> {
        let channel = self.endpoint.connect().await.map_err(|e| {
            format!(
                "cannot connect to the control plane: {}",
                cause::explain(&e)
            )
        })?;
        Session::open(channel, self.delta, &self.node, &self.held)
            .await
            .map_err(|status| {
                format!(
                    "the control plane refused the discovery stream: {:?}: {}",
                    status.code(),
                    status.message()
                )
            })
    }

    /// Applies `update` on top of what is held: ACK if the whole config compiles and applies,
    /// else NACK and keep everything as it was.
    async fn process(&mut self, update: Update, target: Target<'_>) {
        let outcome = match self.held.updated(&update) {
            Err(error) => Err(error),
            Ok((next, false)) => Ok(next),
            Ok((next, true)) => {
                let assembled = next.assemble();
                if assembled.warming != self.warming {
                    if !assembled.warming.is_empty() {
                        tracing::info!(listeners = ?assembled.warming,
                            "listeners wait for route configs or clusters not received yet");
                    }
                    self.warming = assembled.warming;
                }
                let origin = format!("control plane ({} {})", update.ty, update.version);
                target
                    .apply(assembled.config, &origin)
                    .await
                    .map(|()| next)
                    .map_err(|errors| errors.join("\n"))
            }
        };
        let kept = self.held.version(update.ty).unwrap_or_default().to_owned();
        let error = match outcome {
            Ok(next) => {
                self.held = next;
                None
            }
            Err(error) => {
                tracing::error!(ty = %update.ty, version = %update.version,
                    "rejected config from the control plane (NACK); keeping the config in force:\n{error}");
                Some(error)
            }
        };
        if let Some(session) = &self.session {
            session.answer(&update, &kept, error);
        }
    }
}

impl Target<'_> {
    /// Compiles (and for a running proxy, applies) `config`; every problem on failure.
    async fn apply(self, config: EncodedConfig, origin: &str) -> Result<(), Vec<String>> {
        match self {
            Target::Startup(last_good) => {
                *last_good = Some(Snapshot::compile(config, None)?);
                Ok(())
            }
            Target::Running(proxy) => match proxy.apply(config, origin).await {
                Ok(_) => Ok(()),
                Err(ConfigError::Invalid { errors, .. }) => Err(errors),
                Err(other) => Err(vec![other.to_string()]),
            },
        }
    }
}
