//! Telemetry: how each sidecar reports, as Istio layers it. The mesh-wide Telemetry (root
//! namespace `mesh-system`, no selector), then the namespace's (no selector), then the
//! workload's (a selector matching the proxy's labels): each level's fields override what the
//! levels above set, side by side (client: requests the app sends; server: requests it
//! receives). Among the objects of one level the oldest applies. A sidecar has one collector
//! and one sampling percentage: the server side's when the two sides differ.
//!
//! Tracing providers are names the control plane knows (`--tracing-provider otel=host:port`,
//! as Istio's mesh config names its extension providers); access lines go to the sidecar's
//! stdout, the provider Istio calls `envoy`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use mesh_log_filter::Filter;
use mesh_proto::config::v1::{Telemetry as TelemetryConfig, telemetry};

use super::{
    peer_authentication::ROOT_NAMESPACE,
    problem::{Problem, Report},
};
use crate::{
    istio::telemetry::{Telemetry, TrafficMatch, WorkloadMode},
    node::ProxyNode,
    store::{Kind, ObjectRef, Store},
};

/// The name of a proxy's one telemetry resource.
pub const TELEMETRY_NAME: &str = "telemetry";
/// The access log provider Istio has built in: the sidecar's stdout.
const STDOUT_PROVIDER: &str = "envoy";

/// Trace collectors by provider name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TracingProviders(BTreeMap<String, String>);

/// Every valid Telemetry, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Telemetries {
    objects: Vec<Compiled>,
}

#[derive(Debug)]
struct Compiled {
    origin: ObjectRef,
    selector: Option<BTreeMap<String, String>>,
    tracing: Vec<(Sides, Tracing)>,
    logging: Vec<(Sides, Logging)>,
    created: Option<Time>,
}

/// Which sides a setting applies to: (client, server).
type Sides = (bool, bool);

/// Tracing fields; `None` leaves a level above in charge.
#[derive(Debug, Clone, Default, PartialEq)]
struct Tracing {
    collector: Option<String>,
    sampling: Option<f64>,
    disabled: Option<bool>,
}

/// Access log fields; `configured` once any level says anything of the side. An empty filter
/// clears the filter of a level above.
#[derive(Debug, Clone, Default, PartialEq)]
struct Logging {
    configured: bool,
    disabled: Option<bool>,
    filter: Option<String>,
}

// === impl TracingProviders ===

impl TracingProviders {
    /// Reads `name=host:port` (or `name=http://host:port`) specs.
    pub fn parse(specs: &[String]) -> Result<Self, String> {
        let mut providers = BTreeMap::new();
        for spec in specs {
            let Some((name, address)) = spec.split_once('=') else {
                return Err(format!(
                    "tracing provider {spec:?}: expected name=host:port, e.g. otel=otel-collector.observability:4317"
                ));
            };
            let (name, address) = (name.trim(), address.trim());
            if name.is_empty() || address.is_empty() {
                return Err(format!("tracing provider {spec:?}: empty name or address"));
            }
            let url = if address.contains("://") {
                address.to_owned()
            } else {
                format!("http://{address}")
            };
            if providers.insert(name.to_owned(), url).is_some() {
                return Err(format!("tracing provider {name:?} is given twice"));
            }
        }
        Ok(TracingProviders(providers))
    }

    fn collector(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn names(&self) -> String {
        match self.0.is_empty() {
            true => "none".to_owned(),
            false => self.0.keys().cloned().collect::<Vec<_>>().join(", "),
        }
    }
}

// === impl Telemetries ===

impl Telemetries {
    /// Checks every Telemetry in the store; invalid ones are reported and left out.
    pub(crate) fn build(
        store: &Store,
        providers: &TracingProviders,
        problems: &mut Vec<Problem>,
    ) -> Self {
        let mut objects: Vec<Compiled> = store
            .list::<Telemetry>()
            .filter_map(|object| {
                let origin = ObjectRef::new(
                    Kind::Telemetry,
                    object.metadata.namespace.clone().unwrap_or_default(),
                    object.metadata.name.clone().unwrap_or_default(),
                );
                let mut report = Report::new(&origin);
                let compiled = compile(object, providers, &mut report);
                let valid = !report.has_errors();
                problems.extend(report.into_problems());
                valid.then_some(compiled)
            })
            .collect();
        objects.sort_by(|a, b| {
            let created = |c: &Compiled| (c.created.is_none(), c.created.clone());
            created(a)
                .cmp(&created(b))
                .then_with(|| a.origin.cmp(&b.origin))
        });
        Telemetries { objects }
    }

    /// The label keys selectors read (part of a proxy's view).
    pub(crate) fn label_keys(&self) -> impl Iterator<Item = &str> {
        self.objects
            .iter()
            .flat_map(|o| o.selector.iter().flat_map(|s| s.keys().map(String::as_str)))
    }

    /// The telemetry of `node`, or `None` when no Telemetry applies to it.
    pub(crate) fn config_for(&self, node: &ProxyNode) -> Option<TelemetryConfig> {
        let mut tracing = [Tracing::default(), Tracing::default()];
        let mut logging = [Logging::default(), Logging::default()];
        for object in self
            .levels(&node.namespace, &node.labels)
            .into_iter()
            .flatten()
        {
            for ((client, server), rule) in &object.tracing {
                for (side, applies) in [(0, *client), (1, *server)] {
                    if applies {
                        tracing[side].layer(rule);
                    }
                }
            }
            for ((client, server), rule) in &object.logging {
                for (side, applies) in [(0, *client), (1, *server)] {
                    if applies {
                        logging[side].layer(rule);
                    }
                }
            }
        }
        let [client_trace, server_trace] = tracing;
        let traced = client_trace != Tracing::default() || server_trace != Tracing::default();
        let [client_log, server_log] = logging.map(Logging::config);
        if !traced && client_log.is_none() && server_log.is_none() {
            return None;
        }
        Some(TelemetryConfig {
            name: TELEMETRY_NAME.to_owned(),
            tracing: traced.then(|| telemetry::Tracing {
                collector: (server_trace.collector.clone())
                    .or(client_trace.collector.clone())
                    .unwrap_or_default(),
                sampling: server_trace.sampling.or(client_trace.sampling),
                disable_client: client_trace.disabled.unwrap_or(false),
                disable_server: server_trace.disabled.unwrap_or(false),
            }),
            client_access_log: client_log,
            server_access_log: server_log,
        })
    }

    /// The objects of a workload's three levels: mesh-wide, namespace, workload selector.
    fn levels(&self, namespace: &str, labels: &BTreeMap<String, String>) -> [Option<&Compiled>; 3] {
        let oldest = |applies: &dyn Fn(&Compiled) -> bool| self.objects.iter().find(|o| applies(o));
        let mesh = oldest(&|o| o.origin.namespace == ROOT_NAMESPACE && o.selector.is_none());
        let in_namespace = (namespace != ROOT_NAMESPACE)
            .then(|| oldest(&|o| o.origin.namespace == namespace && o.selector.is_none()))
            .flatten();
        let workload = oldest(&|o| {
            o.origin.namespace == namespace
                && o.selector
                    .as_ref()
                    .is_some_and(|s| s.iter().all(|(k, v)| labels.get(k) == Some(v)))
        });
        [mesh, in_namespace, workload]
    }
}

// === impl Tracing ===

impl Tracing {
    /// Takes what `rule` sets over what is set.
    fn layer(&mut self, rule: &Tracing) {
        if rule.collector.is_some() {
            self.collector.clone_from(&rule.collector);
        }
        self.sampling = rule.sampling.or(self.sampling);
        self.disabled = rule.disabled.or(self.disabled);
    }
}

// === impl Logging ===

impl Logging {
    /// Takes what `rule` sets over what is set.
    fn layer(&mut self, rule: &Logging) {
        self.configured = true;
        self.disabled = rule.disabled.or(self.disabled);
        if rule.filter.is_some() {
            self.filter.clone_from(&rule.filter);
        }
    }

    fn config(self) -> Option<telemetry::AccessLog> {
        self.configured.then(|| telemetry::AccessLog {
            enabled: !self.disabled.unwrap_or(false),
            filter: self.filter.unwrap_or_default(),
        })
    }
}

fn compile(object: &Telemetry, providers: &TracingProviders, report: &mut Report<'_>) -> Compiled {
    let spec = &object.spec;
    if !spec.target_refs.is_empty() {
        report.error(
            "spec.targetRefs",
            "targetRefs is not supported",
            "select the workloads with spec.selector.matchLabels",
        );
    }
    if !spec.metrics.is_empty() {
        report.warning(
            "spec.metrics",
            "metric settings are not supported: every sidecar reports Istio's standard metrics with their standard labels",
            "remove spec.metrics",
        );
    }
    let tracing = (spec.tracing.iter().enumerate())
        .filter_map(|(i, t)| {
            let at = format!("spec.tracing[{i}]");
            let sides = sides(t.match_.as_ref(), &at, report)?;
            if let Some(sampling) = t.random_sampling_percentage
                && !(0.0..=100.0).contains(&sampling)
            {
                report.error(
                    format!("{at}.randomSamplingPercentage"),
                    format!("{sampling} is not a percentage"),
                    "use 0 to 100",
                );
            }
            if !t.custom_tags.is_empty() {
                report.warning(
                    format!("{at}.customTags"),
                    "custom tags are not supported; spans carry the HTTP conventions' attributes and the peers' identities",
                    "remove customTags",
                );
            }
            let collector = t.providers.first().and_then(|provider| {
                let collector = providers.collector(&provider.name);
                if collector.is_none() {
                    report.warning(
                        format!("{at}.providers[0]"),
                        format!(
                            "tracing provider {:?} is not one the control plane knows (known: {}); the sidecars keep their own --tracing-collector",
                            provider.name,
                            providers.names()
                        ),
                        "start the control plane with --tracing-provider NAME=HOST:PORT",
                    );
                }
                collector.map(str::to_owned)
            });
            if t.providers.len() > 1 {
                report.warning(
                    format!("{at}.providers"),
                    "a sidecar sends spans to one provider; only the first is used",
                    "keep one provider",
                );
            }
            let rule = Tracing {
                collector,
                sampling: t.random_sampling_percentage,
                disabled: t.disable_span_reporting,
            };
            Some((sides, rule))
        })
        .collect();
    let logging = (spec.access_logging.iter().enumerate())
        .filter_map(|(i, log)| {
            let at = format!("spec.accessLogging[{i}]");
            let sides = sides(log.match_.as_ref(), &at, report)?;
            if let Some(other) = log.providers.iter().find(|p| p.name != STDOUT_PROVIDER) {
                report.warning(
                    format!("{at}.providers"),
                    format!(
                        "access log provider {:?} is not supported; this entry is ignored",
                        other.name
                    ),
                    format!("use the provider {STDOUT_PROVIDER:?}: JSON lines on the sidecar's stdout"),
                );
                return None;
            }
            let filter = log.filter.as_ref().map(|f| f.expression.trim().to_owned());
            if let Some(expression) = filter.as_deref().filter(|e| !e.is_empty())
                && let Err(error) = Filter::parse(expression)
            {
                report.error(
                    format!("{at}.filter.expression"),
                    format!("{expression:?}: {error}"),
                    "write a CEL comparison over request.*, response.*, connection.mtls, source.principal or destination.principal",
                );
            }
            let rule = Logging {
                configured: true,
                disabled: log.disabled,
                filter,
            };
            Some((sides, rule))
        })
        .collect();
    Compiled {
        origin: report.object().clone(),
        selector: (spec.selector.as_ref())
            .map(|s| s.match_labels.clone())
            .filter(|labels| !labels.is_empty()),
        tracing,
        logging,
        created: object.metadata.creation_timestamp.clone(),
    }
}

/// The sides a `match` names; `None` (reported) for an unknown mode.
fn sides(traffic: Option<&TrafficMatch>, at: &str, report: &mut Report<'_>) -> Option<Sides> {
    match traffic.and_then(|m| m.mode.as_ref()) {
        None | Some(WorkloadMode::ClientAndServer) => Some((true, true)),
        Some(WorkloadMode::Client) => Some((true, false)),
        Some(WorkloadMode::Server) => Some((false, true)),
        Some(WorkloadMode::Unknown(other)) => {
            report.error(
                format!("{at}.match.mode"),
                format!("unknown mode {other:?}"),
                "use CLIENT_AND_SERVER, CLIENT or SERVER",
            );
            None
        }
    }
}
