//! The fake's cluster state: objects under one global, increasing resourceVersion, the history
//! of changes watches replay from, the open watches, and list snapshots behind continue tokens.

use super::resources::{Collection, ObjectPath, ResourceType, by_kind};
use super::selectors::Selector;
use super::wire::{self, ApiError};
use bytes::Bytes;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// How the server answers a watch that starts before the compacted history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoneForm {
    /// HTTP 200 with one `ERROR` event carrying a 410 `Status`, as the real watch cache does.
    ErrorEvent,
    /// An HTTP 410 response with a `Status` body.
    HttpStatus,
}

/// (group, plural, namespace, name): objects sort by namespace then name within a type.
type Key = (&'static str, &'static str, String, String);

struct Change {
    resource: &'static ResourceType,
    resource_version: u64,
    event_type: &'static str,
    object: Value,
}

struct Watch {
    collection: Collection,
    selector: Selector,
    bookmarks: bool,
    /// Partitioned: still open, but hears nothing until it is closed or expired.
    deaf: bool,
    sender: UnboundedSender<Bytes>,
}

impl Watch {
    fn wants(&self, resource: &ResourceType, object: &Value) -> bool {
        self.collection.resource == resource
            && in_namespace(&self.collection, object)
            && self.selector.matches(object)
    }
}

struct Snapshot {
    resource: &'static ResourceType,
    resource_version: u64,
    items: Vec<Value>,
}

/// A started watch: lines to send first, then the live feed (none once an error ended it).
pub struct WatchStart {
    /// Replayed history (or synthetic ADDED events), or the ERROR event that ends the watch.
    pub initial: Vec<Bytes>,
    /// Live events; `None` when the watch ends after `initial`.
    pub live: Option<UnboundedReceiver<Bytes>>,
}

/// Everything the fake knows.
pub struct Cluster {
    resource_version: u64,
    compacted_at: u64,
    objects: BTreeMap<Key, Value>,
    history: Vec<Change>,
    watches: Vec<Watch>,
    snapshots: HashMap<u64, Snapshot>,
    next_snapshot: u64,
    gone_form: GoneForm,
    /// Requests still to fail, with the status to fail them with, by path.
    failures: HashMap<String, (usize, u16)>,
}

impl Cluster {
    /// An empty cluster at resourceVersion 1.
    pub fn new() -> Self {
        Self {
            resource_version: 1,
            compacted_at: 0,
            objects: BTreeMap::new(),
            history: Vec::new(),
            watches: Vec::new(),
            snapshots: HashMap::new(),
            next_snapshot: 0,
            gone_form: GoneForm::ErrorEvent,
            failures: HashMap::new(),
        }
    }

    /// Creates or replaces an object (any JSON with apiVersion, kind and metadata.name).
    pub fn apply(&mut self, mut object: Value) -> u64 {
        let resource = by_kind(
            object["apiVersion"].as_str().unwrap_or_default(),
            object["kind"].as_str().unwrap_or_default(),
        )
        .unwrap_or_else(|| panic!("the fake does not serve {object}"));
        let name = object["metadata"]["name"]
            .as_str()
            .expect("metadata.name")
            .to_string();
        let namespace = if resource.namespaced {
            let namespace = object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default");
            let namespace = namespace.to_string();
            object["metadata"]["namespace"] = Value::String(namespace.clone());
            namespace
        } else {
            String::new()
        };
        self.resource_version += 1;
        let metadata = &mut object["metadata"];
        metadata["resourceVersion"] = Value::String(self.resource_version.to_string());
        if metadata["uid"].is_null() {
            metadata["uid"] = Value::String(format!("uid-{}", self.resource_version));
        }
        let key = (resource.group, resource.plural, namespace, name);
        let event_type = match self.objects.insert(key, object.clone()) {
            Some(_) => "MODIFIED",
            None => "ADDED",
        };
        self.record(resource, event_type, object);
        self.resource_version
    }

    /// Creates an object posted to `collection` (a `POST`), naming it from `generateName` when
    /// it has no name; an existing name is refused with 409 AlreadyExists.
    pub fn create(
        &mut self,
        collection: &Collection,
        mut object: Value,
    ) -> Result<Value, ApiError> {
        let resource = collection.resource;
        if !object.is_object() {
            return Err(ApiError::bad_request("the body is not a JSON object"));
        }
        object["apiVersion"] = Value::String(resource.api_version());
        object["kind"] = Value::String(resource.kind.to_string());
        if let Some(namespace) = &collection.namespace {
            object["metadata"]["namespace"] = Value::String(namespace.clone());
        }
        if object["metadata"]["name"]
            .as_str()
            .is_none_or(str::is_empty)
        {
            let prefix = object["metadata"]["generateName"]
                .as_str()
                .unwrap_or_default();
            if prefix.is_empty() {
                return Err(ApiError::bad_request("metadata.name: Required value"));
            }
            let name = format!("{prefix}{:05x}", self.resource_version + 1);
            object["metadata"]["name"] = Value::String(name);
        }
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let namespace = collection.namespace.clone().unwrap_or_default();
        if self
            .objects
            .contains_key(&(resource.group, resource.plural, namespace, name.clone()))
        {
            return Err(ApiError::conflict(
                "AlreadyExists",
                format!("{} {name:?} already exists", resource.plural),
            ));
        }
        self.apply(object.clone());
        Ok(self
            .get(resource, &collection.namespace, &name)
            .expect("just created"))
    }

    /// Applies a JSON merge patch (RFC 7386) to an object, or with `status_only` to its status
    /// alone (the `/status` subresource). A `metadata.resourceVersion` in the patch is a
    /// precondition: 409 Conflict when the object has changed since.
    pub fn merge_patch(
        &mut self,
        object: &ObjectPath,
        patch: &Value,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        let resource = object.collection.resource;
        let namespace = &object.collection.namespace;
        let mut current = self.get(resource, namespace, &object.name).ok_or_else(|| {
            ApiError::not_found(format!("{} {:?} not found", resource.plural, object.name))
        })?;
        let expected = patch["metadata"]["resourceVersion"].as_str();
        if let Some(expected) = expected
            && current["metadata"]["resourceVersion"].as_str() != Some(expected)
        {
            return Err(ApiError::conflict(
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} {:?}: the object has been modified; please apply your changes to the latest version and try again",
                    resource.plural, object.name
                ),
            ));
        }
        if status_only {
            if let Some(status) = patch.get("status") {
                merge(&mut current["status"], status);
            }
        } else {
            merge(&mut current, patch);
        }
        self.apply(current);
        Ok(self
            .get(resource, namespace, &object.name)
            .expect("just patched"))
    }

    /// One object (a single-object `GET`), or 404.
    pub fn get_object(&self, object: &ObjectPath) -> Result<Value, ApiError> {
        let resource = object.collection.resource;
        self.get(resource, &object.collection.namespace, &object.name)
            .ok_or_else(|| {
                ApiError::not_found(format!("{} {:?} not found", resource.plural, object.name))
            })
    }

    fn get(
        &self,
        resource: &ResourceType,
        namespace: &Option<String>,
        name: &str,
    ) -> Option<Value> {
        let key = (
            resource.group,
            resource.plural,
            namespace.clone().unwrap_or_default(),
            name.to_string(),
        );
        self.objects.get(&key).cloned()
    }

    /// Deletes an object; the DELETED event carries its last state at the deletion's version.
    pub fn delete(&mut self, api_version: &str, kind: &str, namespace: &str, name: &str) -> u64 {
        let resource = by_kind(api_version, kind).expect("a served kind");
        let key = (
            resource.group,
            resource.plural,
            namespace.to_string(),
            name.to_string(),
        );
        let mut object = self
            .objects
            .remove(&key)
            .expect("deleting an existing object");
        self.resource_version += 1;
        object["metadata"]["resourceVersion"] = Value::String(self.resource_version.to_string());
        self.record(resource, "DELETED", object);
        self.resource_version
    }

    /// The current objects of one kind, sorted by namespace and name.
    pub fn objects(&self, api_version: &str, kind: &str) -> Vec<Value> {
        let resource = by_kind(api_version, kind).expect("a served kind");
        self.objects
            .iter()
            .filter(|((group, plural, _, _), _)| {
                (*group, *plural) == (resource.group, resource.plural)
            })
            .map(|(_, object)| object.clone())
            .collect()
    }

    /// One page of a list.
    pub fn list(
        &mut self,
        collection: &Collection,
        selector: &Selector,
        limit: Option<usize>,
        continue_token: Option<&str>,
        resource_version: Option<&str>,
    ) -> Result<Value, ApiError> {
        let resource = collection.resource;
        let (id, offset) = match continue_token {
            Some(token) => self.resume_snapshot(resource, token)?,
            None => {
                let items = self.matching(collection, selector);
                // resourceVersion=0 is served from the watch cache, which ignores `limit`.
                let limit = limit.filter(|_| resource_version != Some("0"));
                if limit.is_none_or(|limit| items.len() <= limit) {
                    return Ok(wire::list(resource, self.resource_version, None, items));
                }
                let id = self.next_snapshot;
                self.next_snapshot += 1;
                let resource_version = self.resource_version;
                self.snapshots.insert(
                    id,
                    Snapshot {
                        resource,
                        resource_version,
                        items,
                    },
                );
                (id, 0)
            }
        };
        let snapshot = &self.snapshots[&id];
        let end = limit.map_or(snapshot.items.len(), |limit| {
            (offset + limit).min(snapshot.items.len())
        });
        let page = snapshot.items[offset..end].to_vec();
        let resource_version = snapshot.resource_version;
        let next = (end < snapshot.items.len()).then(|| format!("{id}:{end}"));
        if next.is_none() {
            self.snapshots.remove(&id);
        }
        Ok(wire::list(resource, resource_version, next, page))
    }

    fn resume_snapshot(
        &mut self,
        resource: &ResourceType,
        token: &str,
    ) -> Result<(u64, usize), ApiError> {
        let parsed = token.split_once(':').and_then(|(id, offset)| {
            Some((id.parse::<u64>().ok()?, offset.parse::<usize>().ok()?))
        });
        let Some((id, offset)) = parsed else {
            return Err(ApiError::bad_request(format!(
                "invalid continue token {token:?}"
            )));
        };
        let Some(snapshot) = self.snapshots.get(&id) else {
            return Err(ApiError::expired(
                "the provided continue parameter is too old",
            ));
        };
        if snapshot.resource != resource {
            return Err(ApiError::bad_request(
                "continue token belongs to another resource",
            ));
        }
        if snapshot.resource_version < self.compacted_at {
            self.snapshots.remove(&id);
            return Err(ApiError::expired(
                "the provided continue parameter is too old",
            ));
        }
        Ok((id, offset))
    }

    fn matching(&self, collection: &Collection, selector: &Selector) -> Vec<Value> {
        let resource = collection.resource;
        self.objects
            .iter()
            .filter(|((group, plural, _, _), object)| {
                (*group, *plural) == (resource.group, resource.plural)
                    && in_namespace(collection, object)
                    && selector.matches(object)
            })
            .map(|(_, object)| as_list_item(resource, object))
            .collect()
    }

    /// Starts a watch from a resourceVersion ("" or "0": from the current state).
    pub fn watch(
        &mut self,
        collection: Collection,
        selector: Selector,
        resource_version: Option<&str>,
        bookmarks: bool,
    ) -> Result<WatchStart, ApiError> {
        let from = match resource_version.filter(|rv| !rv.is_empty() && *rv != "0") {
            None => None,
            Some(rv) => Some(rv.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("resourceVersion: Invalid value: {rv:?}"))
            })?),
        };
        let resource = collection.resource;
        let initial: Vec<Bytes> = match from {
            Some(from) if from < self.compacted_at => {
                let gone = ApiError::expired(format!(
                    "too old resource version: {from} ({})",
                    self.compacted_at
                ));
                return match self.gone_form {
                    GoneForm::HttpStatus => Err(gone),
                    GoneForm::ErrorEvent => Ok(WatchStart {
                        initial: vec![wire::error_line(&gone)],
                        live: None,
                    }),
                };
            }
            Some(from) => self
                .history
                .iter()
                .filter(|change| change.resource_version > from)
                .filter(|change| {
                    change.resource == resource
                        && in_namespace(&collection, &change.object)
                        && selector.matches(&change.object)
                })
                .map(|change| wire::event_line(change.event_type, &change.object))
                .collect(),
            None => self
                .objects
                .iter()
                .filter(|((group, plural, _, _), object)| {
                    (*group, *plural) == (resource.group, resource.plural)
                        && in_namespace(&collection, object)
                        && selector.matches(object)
                })
                .map(|(_, object)| wire::event_line("ADDED", object))
                .collect(),
        };
        let (sender, live) = unbounded_channel();
        self.watches.push(Watch {
            collection,
            selector,
            bookmarks,
            deaf: false,
            sender,
        });
        Ok(WatchStart {
            initial,
            live: Some(live),
        })
    }

    fn record(&mut self, resource: &'static ResourceType, event_type: &'static str, object: Value) {
        let line = wire::event_line(event_type, &object);
        self.watches.retain(|watch| {
            watch.deaf || !watch.wants(resource, &object) || watch.sender.send(line.clone()).is_ok()
        });
        let resource_version = self.resource_version;
        self.history.push(Change {
            resource,
            resource_version,
            event_type,
            object,
        });
    }

    /// Sends a BOOKMARK at the current resourceVersion to every listening watch that asked.
    pub fn bookmark(&mut self) {
        let resource_version = self.resource_version;
        self.watches.retain(|watch| {
            watch.deaf
                || !watch.bookmarks
                || watch
                    .sender
                    .send(wire::bookmark_line(
                        watch.collection.resource,
                        resource_version,
                    ))
                    .is_ok()
        });
    }

    /// Ends every open watch stream cleanly.
    pub fn close_watches(&mut self) {
        self.watches.clear();
    }

    /// Open watches stay open but hear nothing more: the client falls behind without knowing.
    pub fn partition(&mut self) {
        for watch in &mut self.watches {
            watch.deaf = true;
        }
    }

    /// Sends an `ERROR` 410 Expired event on every open watch, then ends it.
    pub fn expire_watches(&mut self) {
        let gone = ApiError::expired(format!(
            "too old resource version ({})",
            self.resource_version
        ));
        for watch in self.watches.drain(..) {
            // A client that already went away needs no error.
            let _ = watch.sender.send(wire::error_line(&gone));
        }
    }

    /// Forgets history up to now: watches from older versions get 410 Gone.
    pub fn compact(&mut self) {
        self.compacted_at = self.resource_version;
        self.history.clear();
    }

    /// Makes the next `count` requests to `path` fail with `status` (500 or 404).
    pub fn fail_requests(&mut self, path: &str, count: usize, status: u16) {
        self.failures.insert(path.to_string(), (count, status));
    }

    /// The error for this request to `path`, if it is one to fail (and counts it).
    pub fn take_failure(&mut self, path: &str) -> Option<ApiError> {
        let (remaining, status) = self.failures.get_mut(path).filter(|(n, _)| *n > 0)?;
        *remaining -= 1;
        Some(match status {
            404 => ApiError::not_found(format!(
                "the server could not find the requested resource {path}"
            )),
            _ => ApiError {
                code: 500,
                reason: "InternalError",
                message: "injected failure".into(),
            },
        })
    }

    /// Chooses how a watch from before the compacted history is refused.
    pub fn set_gone_form(&mut self, form: GoneForm) {
        self.gone_form = form;
    }
}

/// RFC 7386: objects merge key by key, `null` removes a key, anything else replaces.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(changes) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    let fields = target.as_object_mut().expect("made an object above");
    for (key, change) in changes {
        if change.is_null() {
            fields.remove(key);
        } else {
            merge(fields.entry(key.clone()).or_insert(Value::Null), change);
        }
    }
}

fn in_namespace(collection: &Collection, object: &Value) -> bool {
    collection
        .namespace
        .as_deref()
        .is_none_or(|namespace| object["metadata"]["namespace"].as_str() == Some(namespace))
}

/// The real server drops `apiVersion`/`kind` from typed (built-in) list items.
fn as_list_item(resource: &ResourceType, object: &Value) -> Value {
    let mut item = object.clone();
    if resource.is_builtin()
        && let Some(fields) = item.as_object_mut()
    {
        fields.remove("apiVersion");
        fields.remove("kind");
    }
    item
}
