//! Objects the source could not read. A broken object counts as absent (the sink never keeps
//! an older form of it): the report names it, its version and the reason, so the user can fix
//! it, and it stays listed until the object is fixed, deleted or gone from a re-list.

use super::lenient::BrokenBody;
use crate::store::{Kind, ObjectRef};
use std::collections::BTreeMap;
use std::fmt;

/// An object whose body does not fit its kind's schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenObject {
    /// Which object.
    pub object: ObjectRef,
    /// The version that could not be read.
    pub resource_version: String,
    /// Why it could not be read.
    pub error: String,
}

/// Every broken object the source currently knows of.
pub type BrokenObjects = BTreeMap<ObjectRef, BrokenObject>;

impl BrokenObject {
    /// The report for an object of `kind` whose body did not decode.
    pub(super) fn new(kind: Kind, body: &BrokenBody) -> Self {
        let metadata = &body.metadata;
        Self {
            object: ObjectRef::new(
                kind,
                metadata.namespace.clone().unwrap_or_default(),
                metadata.name.clone().unwrap_or_default(),
            ),
            resource_version: metadata.resource_version.clone().unwrap_or_default(),
            error: body.error.clone(),
        }
    }
}

impl fmt::Display for BrokenObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (resourceVersion {}) does not fit the {} schema: {}; \
             the mesh ignores it until it is fixed",
            self.object, self.resource_version, self.object.kind, self.error
        )
    }
}
