//! The mutating admission webhook: AdmissionReview handling ([`review`]) and its HTTPS server
//! ([`server`]), hosted by the control plane on 15017.

pub mod review;
pub mod server;

pub use review::{Verdict, answer};
pub use server::{NamespaceLookup, Webhook, serve};
