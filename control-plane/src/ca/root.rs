//! The mesh root: the CA key pair and the certificate every mesh certificate chains to.

use std::{
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, PublicKeyData,
};
use rustls::pki_types::{CertificateDer, pem::PemObject};

use super::{CaError, validity};

/// How long a generated root is valid.
const ROOT_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The mesh's root certificate authority.
pub struct MeshRoot {
    issuer: Issuer<'static, KeyPair>,
    cert: CertificateDer<'static>,
    cert_pem: String,
}

impl MeshRoot {
    /// A new self-signed root: ECDSA P-256, valid for ten years.
    pub fn generate() -> Result<Self, CaError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "mesh");
        // A name of its own, so a certificate from another root reads as "unknown issuer".
        let id = xxhash_rust::xxh64::xxh64(key.public_key_raw(), 0);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("mesh root CA {id:016x}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        (params.not_before, params.not_after) = validity(ROOT_LIFETIME);
        let cert = params.self_signed(&key)?;
        Ok(MeshRoot {
            cert_pem: cert.pem(),
            cert: cert.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The root in `cert_path` and `key_path` (PEM), checked: a single CA certificate, valid
    /// now, whose public key is the key's.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, CaError> {
        Self::from_pem(read(cert_path)?, &read(key_path)?, cert_path, key_path)
    }

    /// The root from PEM texts, checked as [`MeshRoot::load`] does; `cert_path` and `key_path`
    /// name where the texts came from in errors.
    pub fn from_pem(
        cert_pem: String,
        key_pem: &str,
        cert_path: &Path,
        key_path: &Path,
    ) -> Result<Self, CaError> {
        let invalid_cert = |reason: String| CaError::Certificate {
            path: cert_path.to_owned(),
            reason,
        };
        let cert = single_certificate(&cert_pem).map_err(invalid_cert)?;
        let (_, x509) = x509_parser::parse_x509_certificate(&cert)
            .map_err(|e| invalid_cert(format!("not an X.509 certificate: {e}")))?;
        if !x509.is_ca() {
            return Err(invalid_cert(
                "it is not a CA certificate (basicConstraints CA:TRUE is missing)".to_owned(),
            ));
        }
        let window = x509.validity();
        if !window.is_valid() {
            return Err(invalid_cert(format!(
                "it is valid from {} to {}, not now",
                window.not_before, window.not_after
            )));
        }
        let key = KeyPair::from_pem(key_pem).map_err(|e| CaError::Key {
            path: key_path.to_owned(),
            reason: e.to_string(),
        })?;
        if x509.public_key().raw != key.subject_public_key_info() {
            return Err(CaError::KeyMismatch {
                cert: cert_path.to_owned(),
                key: key_path.to_owned(),
            });
        }
        let issuer = Issuer::from_ca_cert_der(&cert, key)
            .map_err(|e| invalid_cert(format!("cannot sign with it: {e}")))?;
        Ok(MeshRoot {
            issuer,
            cert,
            cert_pem,
        })
    }

    /// Signs `params` for the holder of `public_key`: the discovery server's certificate now,
    /// workload certificates later.
    pub fn issue(
        &self,
        params: &CertificateParams,
        public_key: &impl PublicKeyData,
    ) -> Result<Certificate, CaError> {
        Ok(params.signed_by(public_key, &self.issuer)?)
    }

    /// The root certificate (DER), for trust stores.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// The root certificate (PEM), what proxies are given to trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The root's private key (PEM, PKCS#8), to keep the same root across restarts.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Writes the root certificate (PEM) to `path`, replacing it whole so that no reader ever
    /// sees half a file.
    pub fn write_cert(&self, path: &Path) -> Result<(), CaError> {
        let failed = |error| CaError::Write {
            path: path.to_owned(),
            error,
        };
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        fs::write(&partial, &self.cert_pem).map_err(failed)?;
        fs::rename(&partial, path).map_err(failed)
    }
}

/// Reads a PEM file as text.
fn read(path: &Path) -> Result<String, CaError> {
    fs::read_to_string(path).map_err(|error| CaError::Read {
        path: path.to_owned(),
        error,
    })
}

/// The one certificate in `pem`.
fn single_certificate(pem: &str) -> Result<CertificateDer<'static>, String> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("its PEM does not parse: {e}"))?;
    match <[_; 1]>::try_from(certs) {
        Ok([cert]) => Ok(cert),
        Err(certs) if certs.is_empty() => {
            Err("it holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned())
        }
        Err(certs) => Err(format!(
            "it holds {} certificates; give the CA certificate alone",
            certs.len()
        )),
    }
}
