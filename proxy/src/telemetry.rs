//! The telemetry a config asks for: Istio's `Telemetry` resources as the control plane resolved
//! them for this workload. Which sides record spans, how many new traces are sampled and where
//! spans go; which sides write access log lines and for which requests. A part the config
//! leaves unset stays with the proxy's flags.

use std::sync::Arc;

use mesh_log_filter::Filter;
use mesh_proto::config::v1 as pb;

use crate::trace::{Kind, SpanSink, Tracer, check_sampling, collector_endpoint};

/// The config's telemetry, compiled.
#[derive(Debug, Default)]
pub struct TelemetryPolicy {
    tracing: Option<TracingPolicy>,
    client_log: Option<LogPolicy>,
    server_log: Option<LogPolicy>,
}

/// The config's tracing.
#[derive(Debug)]
pub struct TracingPolicy {
    /// The collector the config names; `None`: the flags'.
    collector: Option<String>,
    /// Percent of new traces recorded; `None`: the flags'.
    pub sampling: Option<f64>,
    client: bool,
    server: bool,
    /// The exporter of `collector`, once bound to the tracer.
    sink: Option<SpanSink>,
}

/// The config's access logging of one side.
#[derive(Debug)]
pub struct LogPolicy {
    /// Whether lines are written.
    pub enabled: bool,
    /// Which requests get a line; `None`: every one.
    pub filter: Option<Arc<Filter>>,
}

// === impl TelemetryPolicy ===

impl TelemetryPolicy {
    /// Compiles a config's telemetry (at most one), adding what is wrong to `errors`.
    pub fn compile(configs: &[pb::Telemetry], errors: &mut Vec<String>) -> Self {
        let Some(config) = configs.first() else {
            return TelemetryPolicy::default();
        };
        if configs.len() > 1 {
            errors.push(format!(
                "telemetry is given {} times; a config holds at most one",
                configs.len()
            ));
        }
        let at = format!("telemetry {:?}", config.name);
        TelemetryPolicy {
            tracing: config.tracing.as_ref().and_then(|t| {
                let policy = TracingPolicy::compile(t);
                policy
                    .map_err(|e| errors.push(format!("{at}: tracing: {e}")))
                    .ok()
            }),
            client_log: config
                .client_access_log
                .as_ref()
                .map(|log| LogPolicy::compile(log, &format!("{at}: client access log"), errors)),
            server_log: config
                .server_access_log
                .as_ref()
                .map(|log| LogPolicy::compile(log, &format!("{at}: server access log"), errors)),
        }
    }

    /// Starts (or reuses) the exporter of the collector the config names.
    pub fn bind(&mut self, tracer: &Tracer) -> anyhow::Result<()> {
        if let Some(tracing) = &mut self.tracing
            && let Some(collector) = &tracing.collector
        {
            tracing.sink = Some(tracer.sink(collector)?);
        }
        Ok(())
    }

    /// The config's tracing; `None`: the flags decide.
    pub fn tracing(&self) -> Option<&TracingPolicy> {
        self.tracing.as_ref()
    }

    /// The config's access logging of one side; `None`: the flag decides.
    pub fn access_log(&self, kind: Kind) -> Option<&LogPolicy> {
        match kind {
            Kind::Client => self.client_log.as_ref(),
            Kind::Server => self.server_log.as_ref(),
        }
    }
}

// === impl TracingPolicy ===

impl TracingPolicy {
    fn compile(config: &pb::telemetry::Tracing) -> anyhow::Result<Self> {
        if let Some(sampling) = config.sampling {
            check_sampling(sampling)?;
        }
        let collector = (!config.collector.is_empty()).then(|| config.collector.clone());
        if let Some(collector) = &collector {
            collector_endpoint(collector)?;
        }
        Ok(TracingPolicy {
            collector,
            sampling: config.sampling,
            client: !config.disable_client,
            server: !config.disable_server,
            sink: None,
        })
    }

    /// Whether spans of `kind` are recorded.
    pub fn records(&self, kind: Kind) -> bool {
        match kind {
            Kind::Client => self.client,
            Kind::Server => self.server,
        }
    }

    /// The exporter of the collector the config names, once bound.
    pub fn sink(&self) -> Option<&SpanSink> {
        self.sink.as_ref()
    }
}

// === impl LogPolicy ===

impl LogPolicy {
    fn compile(config: &pb::telemetry::AccessLog, at: &str, errors: &mut Vec<String>) -> Self {
        let filter = match config.filter.trim() {
            "" => None,
            text => match Filter::parse(text) {
                Ok(filter) => Some(Arc::new(filter)),
                Err(error) => {
                    errors.push(format!("{at}: filter {text:?}: {error}"));
                    None
                }
            },
        };
        LogPolicy {
            enabled: config.enabled,
            filter,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn telemetry(tracing: Option<pb::telemetry::Tracing>, filter: &str) -> pb::Telemetry {
        pb::Telemetry {
            name: "telemetry".into(),
            tracing,
            client_access_log: None,
            server_access_log: Some(pb::telemetry::AccessLog {
                enabled: true,
                filter: filter.into(),
            }),
        }
    }

    #[test]
    fn unset_parts_leave_the_flags_in_charge() {
        let mut errors = Vec::new();
        let policy = TelemetryPolicy::compile(&[telemetry(None, "")], &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert!(policy.tracing().is_none());
        assert!(policy.access_log(Kind::Client).is_none());
        let server = policy.access_log(Kind::Server).expect("server log");
        assert!(server.enabled && server.filter.is_none());
        assert!(
            TelemetryPolicy::compile(&[], &mut errors)
                .tracing()
                .is_none()
        );
    }

    #[test]
    fn sides_and_sampling_follow_the_config() {
        let tracing = pb::telemetry::Tracing {
            collector: "http://collector:4317".into(),
            sampling: Some(25.0),
            disable_client: true,
            disable_server: false,
        };
        let mut errors = Vec::new();
        let policy = TelemetryPolicy::compile(
            &[telemetry(Some(tracing), "response.code >= 500")],
            &mut errors,
        );
        assert!(errors.is_empty(), "{errors:?}");
        let tracing = policy.tracing().expect("tracing");
        assert!(tracing.records(Kind::Server) && !tracing.records(Kind::Client));
        assert_eq!(tracing.sampling, Some(25.0));
        assert!(tracing.sink().is_none(), "bound only by the proxy");
        let server = policy.access_log(Kind::Server).expect("server log");
        assert!(server.filter.is_some());
    }

    #[test]
    fn bad_parts_are_errors_that_name_them() {
        let tracing = pb::telemetry::Tracing {
            sampling: Some(150.0),
            ..Default::default()
        };
        let mut errors = Vec::new();
        TelemetryPolicy::compile(
            &[telemetry(Some(tracing), "response.nope > 1")],
            &mut errors,
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("tracing") && errors[0].contains("150"));
        assert!(errors[1].contains("server access log") && errors[1].contains("response.nope"));
        let mut errors = Vec::new();
        TelemetryPolicy::compile(&[telemetry(None, ""), telemetry(None, "")], &mut errors);
        assert!(errors[0].contains("at most one"), "{errors:?}");
    }
}
