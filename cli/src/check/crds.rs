//! The CRDs the mesh reads: Istio's (required) and the Gateway API's (optional), each serving
//! the version the control plane watches (v1).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;

use super::{
    client::describe,
    report::{Line, Report},
};

/// The version of every CRD the control plane watches.
const READ_VERSION: &str = "v1";

/// Istio's CRDs the control plane watches.
const ISTIO: &[&str] = &[
    "virtualservices.networking.istio.io",
    "destinationrules.networking.istio.io",
    "gateways.networking.istio.io",
    "serviceentries.networking.istio.io",
    "peerauthentications.security.istio.io",
    "authorizationpolicies.security.istio.io",
];

/// The Gateway API's CRDs the control plane watches when they are installed.
const GATEWAY_API: &[&str] = &[
    "gatewayclasses.gateway.networking.k8s.io",
    "gateways.gateway.networking.k8s.io",
    "httproutes.gateway.networking.k8s.io",
    "grpcroutes.gateway.networking.k8s.io",
];

/// What a look-up of one CRD found.
#[derive(Debug)]
enum Found {
    /// Present and serving the version the mesh reads.
    Serving,
    /// Present, but not serving it: the versions it serves.
    OtherVersions(Vec<String>),
    /// Not installed.
    Missing,
    /// The look-up failed.
    Error(String),
}

/// One line per Istio CRD, one for the Gateway API's.
pub async fn check(client: &kube::Client, report: &mut Report) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in ISTIO {
        report.line(judge_istio(name, find(&api, name).await));
    }
    let mut gateway_api = Vec::new();
    for name in GATEWAY_API {
        gateway_api.push((*name, find(&api, name).await));
    }
    report.lines(judge_gateway_api(&gateway_api));
}

async fn find(api: &Api<CustomResourceDefinition>, name: &str) -> Found {
    match api.get_opt(name).await {
        Ok(None) => Found::Missing,
        Ok(Some(crd)) => {
            let served: Vec<String> = crd
                .spec
                .versions
                .iter()
                .filter(|v| v.served)
                .map(|v| v.name.clone())
                .collect();
            if served.iter().any(|v| v == READ_VERSION) {
                Found::Serving
            } else {
                Found::OtherVersions(served)
            }
        }
        Err(error) => Found::Error(describe(&error)),
    }
}

fn judge_istio(name: &str, found: Found) -> Line {
    match found {
        Found::Serving => Line::Pass(format!("CRD {name}")),
        Found::Missing => Line::fail(
            format!("CRD {name} is missing"),
            "install the mesh's chart, whose crds/ folder holds Istio's CRDs \
             (helm install mesh charts/mesh -n mesh-system), or Istio's base chart",
        ),
        Found::OtherVersions(served) => Line::fail(
            format!(
                "CRD {name} does not serve {READ_VERSION} (serves {})",
                served.join(", ")
            ),
            format!(
                "the mesh reads {READ_VERSION}: upgrade the CRD (from the mesh's chart, or \
                 Istio's 1.22 or newer)"
            ),
        ),
        Found::Error(error) => Line::fail(
            format!("cannot read CRD {name}: {error}"),
            "checking CRDs needs get on customresourcedefinitions",
        ),
    }
}

fn judge_gateway_api(found: &[(&str, Found)]) -> Vec<Line> {
    let short = |name: &str| name.split('.').next().unwrap_or(name).to_owned();
    let mut lines = Vec::new();
    let mut absent = Vec::new();
    for (name, found) in found {
        match found {
            Found::Serving => {}
            Found::Missing => absent.push(short(name)),
            Found::OtherVersions(served) => {
                absent.push(format!("{} (serves {})", short(name), served.join(", ")))
            }
            Found::Error(error) => lines.push(Line::fail(
                format!("cannot read CRD {name}: {error}"),
                "checking CRDs needs get on customresourcedefinitions",
            )),
        }
    }
    let all: Vec<String> = found.iter().map(|(name, _)| short(name)).collect();
    if absent.is_empty() && lines.is_empty() {
        lines.push(Line::Pass(format!(
            "Gateway API CRDs ({}) serve {READ_VERSION}",
            all.join(", ")
        )));
    } else if !absent.is_empty() {
        lines.push(Line::Info(format!(
            "Gateway API CRDs not installed at {READ_VERSION}: {}; they are optional (only \
             Gateway API routes need them, Istio's resources work without)",
            absent.join(", ")
        )));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_crds_must_serve_v1_and_gateway_api_ones_are_optional() {
        assert!(matches!(
            judge_istio("gateways.networking.istio.io", Found::Serving),
            Line::Pass(_)
        ));
        let old = judge_istio(
            "gateways.networking.istio.io",
            Found::OtherVersions(vec!["v1beta1".into(), "v1alpha3".into()]),
        );
        assert!(
            matches!(&old, Line::Fail { what, .. } if what.contains("serves v1beta1, v1alpha3"))
        );
        assert!(matches!(
            judge_istio("x", Found::Missing),
            Line::Fail { .. }
        ));
        let partly = judge_gateway_api(&[
            ("httproutes.gateway.networking.k8s.io", Found::Serving),
            ("grpcroutes.gateway.networking.k8s.io", Found::Missing),
        ]);
        assert!(matches!(&partly[..], [Line::Info(text)] if text.contains("grpcroutes")));
        let all = judge_gateway_api(&[("httproutes.gateway.networking.k8s.io", Found::Serving)]);
        assert!(matches!(&all[..], [Line::Pass(_)]));
    }
}
