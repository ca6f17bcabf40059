//! A folder of manifests as a source: every `.yaml`, `.yml` and `.json` file under it (hidden
//! ones aside) read into a store, re-read when their content changes (polled every 250 ms, or
//! on demand; only files whose content changed are parsed again). Several folders may be
//! layered: a later folder's object replaces an earlier one's with the same kind, namespace and
//! name (the lab layers the cluster state it writes, e.g. Services with their ClusterIPs, over
//! the user's manifests). Services that still have no cluster IP get one, as the lab would give
//! it; workloads are kept as the pods they would make. Used by the lab and by
//! `mesh analyze -f DIR`.

mod cluster_ips;
mod manifest;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::Duration,
};

pub use manifest::{ParsedManifests, parse_manifests};

use crate::{
    store::{Kind, ObjectRef, Store},
    translate::{Problem, WorkloadTemplate},
};

/// How often `Folder::watch` looks at the files: reading a few small files is cheap, and an
/// edit should reach the proxies well within a second or two.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// A folder that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    /// A directory or file could not be read.
    #[error("cannot read {path}: {source}; check that it exists and is readable")]
    Read {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What a folder holds: its objects in a store, the problems met reading them, and where each
/// object came from.
#[derive(Debug, Default, Clone)]
pub struct Loaded {
    /// The objects.
    pub store: Store,
    /// Problems with files, documents and fields.
    pub problems: Vec<Problem>,
    /// The file and document of each object.
    pub sources: HashMap<ObjectRef, String>,
    /// The pod templates of the folder's workloads, which the store does not hold.
    pub templates: Vec<WorkloadTemplate>,
}

impl Loaded {
    /// Makes `store` hold exactly the folder's objects (a re-list of every kind); returns
    /// whether it changed.
    pub fn apply_to(&self, store: &mut Store) -> bool {
        let mut changed = false;
        for kind in Kind::ALL {
            let objects = self.store.objects(kind);
            changed |= store.replace_all(kind, objects).unwrap_or(false);
        }
        changed
    }

    /// Adds each problem's source file when the problem is about one of the folder's objects.
    pub fn locate(&self, problems: &mut [Problem]) {
        for problem in problems {
            if problem.source.is_none()
                && let Some(object) = &problem.object
            {
                problem.source = self.sources.get(object).cloned();
            }
        }
    }
}

/// The files of a folder with their content, by path.
type Contents = Vec<(PathBuf, Vec<u8>)>;

/// A watched folder of manifests, or several layered ones.
#[derive(Debug)]
pub struct Folder {
    dirs: Vec<PathBuf>,
    last: Option<Vec<Contents>>,
    parsed: ParseCache,
}

/// What each file's last content parsed into, by path and a hash of the content.
type ParseCache = HashMap<PathBuf, (u64, ParsedManifests)>;

impl Folder {
    /// The folder at `dir`; nothing is read yet.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Folder::layered(vec![dir.into()])
    }

    /// Folders read in order, a later folder's object replacing an earlier one's.
    pub fn layered(dirs: Vec<PathBuf>) -> Self {
        Folder {
            dirs,
            last: None,
            parsed: ParseCache::new(),
        }
    }

    /// Reads the folders now.
    pub fn load(&self) -> Result<Loaded, FolderError> {
        Ok(load_layers(
            &read_layers(&self.dirs)?,
            &mut ParseCache::new(),
        ))
    }

    /// Reads the folders and returns their objects if any file changed since the last poll
    /// (the first poll always returns them).
    pub fn poll(&mut self) -> Result<Option<Loaded>, FolderError> {
        let contents = read_layers(&self.dirs)?;
        Ok(self.take_if_changed(contents))
    }

    /// Polls every `every` (see `POLL_INTERVAL`) and calls `on_change` with the folder's
    /// objects whenever they changed, forever. A folder that cannot be read is logged and
    /// tried again at the next tick; the last good objects stay in place meanwhile.
    /// Reading and parsing run on the blocking pool, off the runtime's workers.
    pub async fn watch(mut self, every: Duration, mut on_change: impl FnMut(Loaded)) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let polled = tokio::task::spawn_blocking(move || {
                let loaded = self.poll();
                (self, loaded)
            })
            .await;
            let loaded;
            (self, loaded) = match polled {
                Ok(polled) => polled,
                Err(e) => {
                    tracing::error!("manifest folder: reading stopped: {e}");
                    return;
                }
            };
            match loaded {
                Ok(Some(loaded)) => on_change(loaded),
                Ok(None) => {}
                Err(e) => tracing::warn!("manifest folder: {e}"),
            }
        }
    }

    fn take_if_changed(&mut self, contents: Vec<Contents>) -> Option<Loaded> {
        if self.last.as_ref() == Some(&contents) {
            return None;
        }
        let loaded = load_layers(&contents, &mut self.parsed);
        self.last = Some(contents);
        Some(loaded)
    }
}

/// Reads a folder of manifests once.
pub fn load_dir(dir: &Path) -> Result<Loaded, FolderError> {
    Folder::new(dir).load()
}

/// Every layer's files.
fn read_layers(dirs: &[PathBuf]) -> Result<Vec<Contents>, FolderError> {
    dirs.iter().map(|dir| read_contents(dir)).collect()
}

/// Every manifest file under `dir`, sorted by path. `dir` may also be a single file.
fn read_contents(dir: &Path) -> Result<Contents, FolderError> {
    let read_error = |path: &Path| {
        let path = path.to_owned();
        move |source| FolderError::Read { path, source }
    };
    let mut files = Vec::new();
    if dir.is_file() {
        files.push(dir.to_owned());
    } else {
        let mut pending = vec![dir.to_owned()];
        while let Some(current) = pending.pop() {
            for entry in std::fs::read_dir(&current).map_err(read_error(&current))? {
                let entry = entry.map_err(read_error(&current))?;
                let path = entry.path();
                let hidden = entry.file_name().to_string_lossy().starts_with('.');
                if hidden {
                    continue;
                }
                if path.is_dir() {
                    pending.push(path);
                } else if path
                    .extension()
                    .is_some_and(|e| matches!(e.to_str(), Some("yaml" | "yml" | "json")))
                {
                    files.push(path);
                }
            }
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let content = std::fs::read(&path).map_err(read_error(&path))?;
            Ok((path, content))
        })
        .collect()
}

/// The layers' objects, a later layer's replacing an earlier one's without a warning, and then
/// Services without a cluster IP given one. Files whose content `cache` holds are not parsed
/// again; the cache keeps only these files after.
fn load_layers(layers: &[Contents], cache: &mut ParseCache) -> Loaded {
    let mut merged = Loaded::default();
    let mut next_cache = ParseCache::new();
    for layer in layers {
        let loaded = load_contents(layer, cache, &mut next_cache);
        merged.problems.extend(loaded.problems);
        merged.sources.extend(loaded.sources);
        merged.templates.extend(loaded.templates);
        for kind in Kind::ALL {
            for object in loaded.store.objects(kind) {
                merged.store.apply(object);
            }
        }
    }
    *cache = next_cache;
    cluster_ips::assign(&mut merged);
    merged
}

fn load_contents(
    contents: &Contents,
    cache: &mut ParseCache,
    next_cache: &mut ParseCache,
) -> Loaded {
    let mut loaded = Loaded::default();
    for (path, content) in contents {
        let hash = xxhash_rust::xxh64::xxh64(content, 0);
        let parsed = match cache.remove(path) {
            Some((cached, parsed)) if cached == hash => parsed,
            _ => {
                let text = String::from_utf8_lossy(content);
                parse_manifests(&text, &path.display().to_string())
            }
        };
        loaded.problems.extend(parsed.problems.iter().cloned());
        loaded.templates.extend(parsed.templates.iter().cloned());
        for (object, at) in parsed.objects.iter().cloned() {
            let object_ref = object.object_ref();
            if let Some(first) = loaded.sources.get(&object_ref) {
                loaded.problems.push(Problem {
                    severity: crate::translate::Severity::Warning,
                    object: Some(object_ref.clone()),
                    source: Some(at.clone()),
                    field: String::new(),
                    message: format!(
                        "the object is defined twice; this definition replaces the one in {first}"
                    ),
                    hint: "keep one definition".to_owned(),
                    reason: None,
                });
            }
            loaded.sources.insert(object_ref, at);
            loaded.store.apply(object);
        }
        next_cache.insert(path.clone(), (hash, parsed));
    }
    loaded
}

#[cfg(test)]
mod tests;
