//! `mesh-init`: the pod's init container. It builds the nat-table rules that capture the pod's
//! TCP traffic into its sidecar (`MESH_INBOUND` → `MESH_IN_REDIRECT` → port 15006 for inbound,
//! `MESH_OUTPUT` → `MESH_REDIRECT` → port 15001 for outbound) and applies them atomically.
//!
//! `options` validates what to capture; `rules` turns options into a `RuleSet` per address
//! family (a pure function, golden-tested); `table` reads `iptables-save` output and works out
//! the restore input that removes exactly our part; `backend` picks legacy or nft iptables the
//! way the host already uses it; `apply` runs `iptables-restore --noflush`, one transaction
//! per family, and turns failures into errors that say what to do.
//!
//! The proxy's own traffic (uid or gid 1337) is never captured, except when it calls its own
//! pod IP over loopback, which is inbound traffic and goes through `MESH_INBOUND`. When the
//! inbound proxy delivers to the app on the pod IP, it binds 127.0.0.6 (IPv6: ::6) as source,
//! and such connections are left alone.

pub mod apply;
pub mod backend;
pub mod options;
pub mod rules;
pub mod table;

pub use apply::{ApplyError, Iptables};
pub use backend::{Backend, Detection};
pub use options::{InvalidOptions, Options, RawOptions};
pub use rules::{Family, RuleSet};
pub use table::NatTable;
