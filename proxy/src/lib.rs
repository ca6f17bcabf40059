//! mesh-proxy: the sidecar data plane.
//!
//! A captured connection goes `proxy` (accept, hand to a worker thread, original destination,
//! listener) → `detect` (protocol; on the inbound side a mesh ClientHello is terminated with
//! `tls` and checked against PeerAuthentication) → `http` (authorize with `authz`, route, pick,
//! forward over the worker's `http::Pools`, in mesh TLS to meshed endpoints) or `tcp` (opaque
//! copy). `identity` keeps the workload certificate from the CA current; `config` holds the
//! current `Snapshot`, swapped atomically on reload; `balance` picks endpoints; `admin` serves
//! config dumps, certificates, health, the app's probes (`app_probe`), `tls_probe` and
//! `metrics`. `wait_ready` is the sidecar's `postStart` hook, which waits for all of that.

pub mod access_log;
pub mod addr;
pub mod admin;
pub mod app_probe;
pub mod authz;
pub mod balance;
pub mod config;
pub mod detect;
pub mod dns;
pub mod duration;
pub mod fast_hash;
pub mod http;
pub mod identity;
pub mod istio_metrics;
pub mod limits;
pub mod metrics;
pub mod orig_dst;
pub mod proxy;
pub mod route;
pub mod tcp;
pub mod telemetry;
pub mod tls;
pub mod tls_probe;
pub mod trace;
pub mod wait_ready;
pub mod workload;
pub mod xds;
