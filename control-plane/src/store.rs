//! The store: every object the control plane knows, typed and keyed by kind, namespace and name.
//!
//! Sources (kube-rs reflectors, a folder of manifests) feed it with `apply`, `delete` and
//! `replace_all` (a re-list); translation reads a snapshot and never knows where an object came
//! from. Each kind's table is shared copy-on-write, so cloning a store is a cheap snapshot: a
//! change after the clone copies only the changed kind's table.

mod kind;
mod object;

use std::sync::Arc;

pub use kind::Kind;
pub use object::{Object, ObjectRef, Objects, Stored};

use object::Tables;

/// Every object the control plane knows.
#[derive(Debug, Clone, Default)]
pub struct Store {
    tables: Tables,
    revision: u64,
}

/// A store change that cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A re-list of one kind contained an object of another.
    #[error("a re-list of {expected} objects contains {found}; nothing was replaced")]
    KindMismatch {
        /// The kind being replaced.
        expected: Kind,
        /// The object of another kind.
        found: ObjectRef,
    },
}

impl Store {
    /// An empty store.
    pub fn new() -> Self {
        Store::default()
    }

    /// Adds or updates an object; returns whether the store changed.
    pub fn apply(&mut self, object: impl Into<Object>) -> bool {
        let changed = self.tables.insert(object.into());
        self.bump(changed)
    }

    /// Removes an object; returns whether it was there.
    pub fn delete(&mut self, kind: Kind, namespace: &str, name: &str) -> bool {
        let key = (namespace.to_owned(), name.to_owned());
        let changed = self.tables.remove(kind, &key);
        self.bump(changed)
    }

    /// Replaces every object of `kind` with `objects` (a re-list); returns whether the store
    /// changed. An object of another kind fails the whole call and changes nothing.
    pub fn replace_all(
        &mut self,
        kind: Kind,
        objects: impl IntoIterator<Item = Object>,
    ) -> Result<bool, StoreError> {
        let changed = self
            .tables
            .replace(kind, objects.into_iter().collect())
            .map_err(|found| StoreError::KindMismatch {
                expected: kind,
                found,
            })?;
        Ok(self.bump(changed))
    }

    /// Replaces every object of `T`'s kind (a typed re-list); returns whether the store changed.
    pub fn replace<T: Stored>(&mut self, objects: impl IntoIterator<Item = T>) -> bool
    where
        Object: From<T>,
    {
        let objects = objects.into_iter().map(Object::from).collect();
        let changed = self.tables.replace(T::KIND, objects).is_ok_and(|c| c);
        self.bump(changed)
    }

    /// One object by namespace (empty for cluster-scoped kinds) and name.
    pub fn get<T: Stored>(&self, namespace: &str, name: &str) -> Option<&Arc<T>> {
        T::table(&self.tables).get(&(namespace.to_owned(), name.to_owned()))
    }

    /// Every object of `T`'s kind, ordered by namespace and name.
    pub fn list<T: Stored>(&self) -> impl Iterator<Item = &Arc<T>> {
        T::table(&self.tables).values()
    }

    /// Every object of `T`'s kind in one namespace, ordered by name.
    pub fn list_in<'a, T: Stored>(
        &'a self,
        namespace: &'a str,
    ) -> impl Iterator<Item = &'a Arc<T>> {
        T::table(&self.tables)
            .range((namespace.to_owned(), String::new())..)
            .take_while(move |((ns, _), _)| ns == namespace)
            .map(|(_, object)| object)
    }

    /// The object `reference` names, if stored.
    pub fn object(&self, reference: &ObjectRef) -> Option<Object> {
        let key = (reference.namespace.clone(), reference.name.clone());
        self.tables.object(reference.kind, &key)
    }

    /// Every object of `kind`, by namespace and name.
    pub fn objects(&self, kind: Kind) -> Vec<Object> {
        self.tables.objects_of(kind)
    }

    /// Number of objects of `kind`.
    pub fn count(&self, kind: Kind) -> usize {
        self.tables.len_of(kind)
    }

    /// Number of objects of every kind.
    pub fn len(&self) -> usize {
        Kind::ALL.into_iter().map(|k| self.count(k)).sum()
    }

    /// Whether the store holds no object at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A counter that increases with every change, so a snapshot can tell it is stale.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    fn bump(&mut self, changed: bool) -> bool {
        if changed {
            self.revision += 1;
        }
        changed
    }
}

#[cfg(test)]
mod tests;
