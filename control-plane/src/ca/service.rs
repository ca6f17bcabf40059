//! The CA's gRPC service (`mesh.ca.v1.Certificates`) on the discovery port: authenticate the
//! caller, check its token is its own pod's, sign the CSR for the caller's identity, count it.

use std::{net::IpAddr, sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::Pod;
use mesh_proto::ca::v1::{
    IssueRequest, IssueResponse,
    certificates_server::{Certificates, CertificatesServer},
};
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use super::{
    credential::{Authenticator, Caller},
    workload::WorkloadIssuer,
};
use crate::{store::Store, translate::names::spiffe_identity};

/// The CA service: what it signs with, how it checks callers, and the pods it knows.
#[derive(Clone)]
pub struct CaService {
    issuer: Arc<WorkloadIssuer>,
    authenticator: Authenticator,
    store: watch::Receiver<Store>,
    metrics: CaMetrics,
}

/// `mesh_cp_ca_*`: certificates issued, and requests refused by reason.
#[derive(Clone)]
struct CaMetrics {
    issued: IntCounter,
    rejected: IntCounterVec,
}

// === impl CaService ===

impl CaService {
    /// A CA that signs with `issuer`, checks callers with `authenticator` and binds tokens to
    /// the pods in `store`; its metrics go to `registry`.
    pub fn new(
        issuer: Arc<WorkloadIssuer>,
        authenticator: Authenticator,
        store: watch::Receiver<Store>,
        registry: &Registry,
    ) -> prometheus::Result<Self> {
        let issued = IntCounter::new(
            "mesh_cp_ca_certificates_issued_total",
            "Workload certificates the CA signed.",
        )?;
        let rejected = IntCounterVec::new(
            Opts::new(
                "mesh_cp_ca_rejections_total",
                "Certificate requests the CA refused, by reason.",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(issued.clone()))?;
        registry.register(Box::new(rejected.clone()))?;
        Ok(CaService {
            issuer,
            authenticator,
            store,
            metrics: CaMetrics { issued, rejected },
        })
    }

    /// The tonic service to add to the discovery port's server.
    pub fn into_service(self) -> CertificatesServer<Self> {
        CertificatesServer::new(self)
    }

    /// Refuses a token bound to a pod the store knows when the call comes from another IP.
    fn check_pod(&self, caller: &Caller, peer: Option<IpAddr>) -> Result<(), Status> {
        let (Some(pod_name), Some(peer)) = (&caller.pod, peer) else {
            return Ok(());
        };
        let store = self.store.borrow();
        let Some(pod) = store.get::<Pod>(&caller.namespace, pod_name) else {
            return Ok(());
        };
        let pod_ips: Vec<IpAddr> = pod
            .status
            .iter()
            .flat_map(|s| s.pod_ips.iter().flatten())
            .filter_map(|ip| ip.ip.parse().ok())
            .chain(
                pod.status
                    .as_ref()
                    .and_then(|s| s.pod_ip.as_deref())
                    .and_then(|ip| ip.parse().ok()),
            )
            .collect();
        if pod_ips.is_empty() || pod_ips.contains(&peer) {
            return Ok(());
        }
        Err(Status::permission_denied(format!(
            "the token belongs to pod {}/{pod_name} ({}), but the call comes from {peer}; \
             a sidecar must use its own pod's token",
            caller.namespace,
            pod_ips
                .iter()
                .map(IpAddr::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }

    fn reject(&self, reason: &str, status: Status, peer: Option<IpAddr>) -> Status {
        self.metrics.rejected.with_label_values(&[reason]).inc();
        tracing::warn!(peer = ?peer, reason, "certificate request refused: {}", status.message());
        status
    }
}

#[tonic::async_trait]
impl Certificates for CaService {
    async fn issue(
        &self,
        request: Request<IssueRequest>,
    ) -> Result<Response<IssueResponse>, Status> {
        let peer = request.remote_addr().map(|a| a.ip().to_canonical());
        let authorization = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let caller = self
            .authenticator
            .authenticate(authorization.as_deref())
            .await
            .map_err(|e| self.reject(e.reason(), e.status(), peer))?;
        self.check_pod(&caller, peer)
            .map_err(|status| self.reject("token_of_another_pod", status, peer))?;
        let identity = spiffe_identity(&caller.namespace, &caller.service_account);
        let body = request.into_inner();
        let wanted = body.lifetime.and_then(|d| Duration::try_from(d).ok());
        let issued = self
            .issuer
            .issue(&body.csr, &identity, wanted)
            .map_err(|e| self.reject("bad_csr", Status::invalid_argument(e.to_string()), peer))?;
        self.metrics.issued.inc();
        tracing::info!(%identity, serial = %issued.serial, peer = ?peer, "workload certificate issued");
        Ok(Response::new(IssueResponse {
            cert_chain: issued.chain,
            identity: issued.identity,
        }))
    }
}
