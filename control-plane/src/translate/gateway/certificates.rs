//! The certificates of a Gateway's HTTPS listeners: the `tls.crt` and `tls.key` of the
//! Secrets in `tls.certificateRefs`, in the Gateway's namespace or in one whose ReferenceGrant
//! lets the Gateway's namespace refer to them; checked here so a bad one stops its listener
//! only, with the reason in the listener's status.

use gateway_api::{
    gateways::{GatewayListenersTls, GatewayListenersTlsMode},
    referencegrants::ReferenceGrant,
};
use k8s_openapi::api::core::v1::Secret;
use mesh_proto::config::v1::ServerCertificate;
use rustls::{
    crypto::ring::default_provider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    sign::CertifiedKey,
};

use super::super::{gateway_api::granted, problem::Problem};
use crate::store::{ObjectRef, Store};

/// The certificates of an HTTPS listener whose hostname is `hostname`; `Err` with the
/// problems (reason `InvalidCertificateRef` or `RefNotPermitted`) when any is unusable.
pub(super) fn resolve(
    store: &Store,
    gateway: &ObjectRef,
    tls: Option<&GatewayListenersTls>,
    hostname: Option<&str>,
    at: &str,
) -> Result<Vec<ServerCertificate>, Vec<Problem>> {
    let problem = |field: String, message: String, hint: &str, reason| {
        Problem::warning(gateway, field, message, hint).with_reason(reason)
    };
    let refs = tls
        .and_then(|tls| tls.certificate_refs.as_deref())
        .unwrap_or_default();
    if tls.is_some_and(|tls| tls.mode == Some(GatewayListenersTlsMode::Passthrough)) {
        let message = "an HTTPS listener terminates TLS; Passthrough is for TLS listeners";
        let hint = "use mode Terminate, or protocol TLS with TLSRoutes";
        return Err(vec![problem(
            format!("{at}.tls.mode"),
            message.to_owned(),
            hint,
            "UnsupportedValue",
        )]);
    }
    if refs.is_empty() {
        let message = "an HTTPS listener needs a certificate in tls.certificateRefs".to_owned();
        let hint = "name a Secret of type kubernetes.io/tls";
        return Err(vec![problem(
            format!("{at}.tls.certificateRefs"),
            message,
            hint,
            "InvalidCertificateRef",
        )]);
    }
    let grants: Vec<&ReferenceGrant> = store.list::<ReferenceGrant>().map(|g| &**g).collect();
    let mut certificates = Vec::new();
    let mut problems = Vec::new();
    for (i, reference) in refs.iter().enumerate() {
        let field = format!("{at}.tls.certificateRefs[{i}]");
        let group = reference.group.as_deref().unwrap_or_default();
        let kind = reference.kind.as_deref().unwrap_or("Secret");
        if !matches!(group, "" | "core") || kind != "Secret" {
            let message = format!("{kind} ({group}) is not a kind of certificate mesh reads");
            problems.push(problem(
                field,
                message,
                "refer to a Secret",
                "InvalidCertificateRef",
            ));
            continue;
        }
        let namespace = reference.namespace.as_deref().unwrap_or(&gateway.namespace);
        let name = &reference.name;
        let from = ("Gateway", gateway.namespace.as_str());
        if namespace != gateway.namespace && !granted(&grants, from, ("Secret", namespace, name)) {
            let message = format!(
                "Secret {namespace}/{name} is in another namespace and no ReferenceGrant there lets Gateways from {} refer to it",
                gateway.namespace
            );
            let hint = format!(
                "add a ReferenceGrant in {namespace} from {{group: gateway.networking.k8s.io, kind: Gateway, namespace: {}}} to {{group: \"\", kind: Secret}}",
                gateway.namespace
            );
            problems.push(problem(
                format!("{field}.namespace"),
                message,
                &hint,
                "RefNotPermitted",
            ));
            continue;
        }
        let names: Vec<String> = hostname.map(str::to_owned).into_iter().collect();
        match from_secret(store, namespace, name, names) {
            Ok(certificate) => certificates.push(certificate),
            Err((message, hint)) => {
                problems.push(problem(field, message, hint, "InvalidCertificateRef"))
            }
        }
    }
    match problems.is_empty() {
        true => Ok(certificates),
        false => Err(problems),
    }
}

/// The certificate of Secret `namespace/name`, served to `server_names`; else what is wrong
/// and what to do.
pub(crate) fn from_secret(
    store: &Store,
    namespace: &str,
    name: &str,
    server_names: Vec<String>,
) -> Result<ServerCertificate, (String, &'static str)> {
    let Some(secret) = store.get::<Secret>(namespace, name) else {
        let message = format!("Secret {namespace}/{name} does not exist");
        return Err((
            message,
            "create it (type kubernetes.io/tls), or fix the name",
        ));
    };
    certificate(secret, server_names).map_err(|why| {
        let message = format!("Secret {namespace}/{name}: {why}");
        let hint = "store a PEM certificate chain in tls.crt and its private key in tls.key";
        (message, hint)
    })
}

/// A Secret's `key` as text (from `data`, else `stringData`).
pub(crate) fn secret_text(secret: &Secret, key: &str) -> Result<String, String> {
    let data = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.clone());
    let text = secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|s| s.clone().into_bytes());
    let bytes = data.or(text).ok_or_else(|| format!("it has no {key}"))?;
    String::from_utf8(bytes).map_err(|_| format!("its {key} is not PEM text"))
}

/// The certificate a TLS Secret holds, checked: PEM, a chain, and the key that belongs to it.
fn certificate(secret: &Secret, server_names: Vec<String>) -> Result<ServerCertificate, String> {
    let field = |key: &str| secret_text(secret, key);
    let chain_pem = field("tls.crt")?;
    let key_pem = field("tls.key")?;
    let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("its tls.crt is not PEM: {e}"))?;
    if chain.is_empty() {
        return Err("its tls.crt holds no certificate".to_owned());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| format!("its tls.key is not a PEM private key: {e}"))?;
    let key = default_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("its tls.key is unusable: {e}"))?;
    CertifiedKey::new(chain, key)
        .keys_match()
        .map_err(|e| format!("its tls.key does not belong to the certificate in tls.crt: {e}"))?;
    Ok(ServerCertificate {
        server_names,
        certificate_chain: chain_pem,
        private_key: key_pem,
    })
}
