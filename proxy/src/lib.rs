//! mesh-proxy: the sidecar data plane.
//!
//! A captured connection goes `proxy` (accept, hand to a worker thread, original destination,
//! listener) → `detect` (protocol) → `http` (route, pick, forward over the worker's
//! `http::Pools`) or `tcp` (opaque copy). `config` holds the current `Snapshot`, swapped
//! atomically on reload; `balance` picks endpoints; `admin` serves config dumps, health and
//! `metrics`.

pub mod addr;
pub mod admin;
pub mod app_probe;
pub mod authz;
pub mod balance;
pub mod config;
pub mod detect;
pub mod duration;
pub mod fast_hash;
pub mod http;
pub mod identity;
pub mod metrics;
pub mod orig_dst;
pub mod proxy;
pub mod route;
pub mod tcp;
pub mod tls;
pub mod tls_probe;
pub mod xds;
