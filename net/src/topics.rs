//! The topic registry: names, ids, partition counts and per-topic config overrides.
//!
//! Lives on: every core (shared behind a mutex). It is control-plane state, touched by admin
//! requests and by Metadata, never per record; the data path only reads a snapshot of one topic.
//! It is persisted as one JSON file in the data directory, replaced atomically (write, fsync,
//! rename, fsync the directory) after every change, so topics survive restarts and crashes.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Name of the registry file in the data directory (no `-`, so never taken for a partition).
pub const REGISTRY_FILE: &str = "topics.json";
/// Kafka's limit on topic name length.
pub const TOPIC_NAME_BYTES_MAX: usize = 249;
/// Partitions one topic may have (bounds what a CreateTopics request can ask for).
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 10_000;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    /// Overrides of topic configs (`retention.ms`, `max.message.bytes`, ...), Kafka's names.
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct RegistryFile {
    topics: Vec<TopicMeta>,
}

#[derive(Default)]
struct Inner {
    by_name: BTreeMap<String, Arc<TopicMeta>>,
    by_id: HashMap<Uuid, String>,
    /// Bumped by every change: the shards' views ([`crate::view`]) apply a topic's state only
    /// if it is newer than what they hold, so changes delivered out of order cannot undo
    /// later ones.
    revision: u64,
}

pub struct Topics {
    path: PathBuf,
    inner: Mutex<Inner>,
    /// Held while a snapshot is taken and written, so the last write is the newest state.
    persist_lock: Mutex<()>,
}

/// Kafka's rule: 1 to 249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= TOPIC_NAME_BYTES_MAX
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

impl Topics {
    /// Loads the registry from `data_dir` (empty if the file does not exist yet).
    pub fn load(data_dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join(REGISTRY_FILE);
        let file: RegistryFile = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => RegistryFile::default(),
            Err(e) => return Err(e),
        };
        let mut inner = Inner::default();
        for t in file.topics {
            inner.by_id.insert(t.id, t.name.clone());
            inner.by_name.insert(t.name.clone(), Arc::new(t));
        }
        Ok(Self { path, inner: Mutex::new(inner), persist_lock: Mutex::new(()) })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the maps half-updated (each change is a
        // single insert or remove), so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, name: &str) -> Option<Arc<TopicMeta>> {
        self.lock().by_name.get(name).cloned()
    }

    pub fn name_for_id(&self, id: &Uuid) -> Option<String> {
        self.lock().by_id.get(id).cloned()
    }

    pub fn list(&self) -> Vec<Arc<TopicMeta>> {
        self.lock().by_name.values().cloned().collect()
    }

    /// Registers a new topic; `false` if the name is taken.
    pub fn insert(&self, meta: TopicMeta) -> bool {
        let mut inner = self.lock();
        if inner.by_name.contains_key(&meta.name) {
            return false;
        }
        inner.by_id.insert(meta.id, meta.name.clone());
        inner.by_name.insert(meta.name.clone(), Arc::new(meta));
        inner.revision += 1;
        true
    }

    pub fn remove(&self, name: &str) -> Option<Arc<TopicMeta>> {
        let mut inner = self.lock();
        let meta = inner.by_name.remove(name)?;
        inner.by_id.remove(&meta.id);
        inner.revision += 1;
        Some(meta)
    }

    /// Replaces a topic's entry (configs or partition count changed).
    pub fn update(&self, name: &str, f: impl FnOnce(&mut TopicMeta)) -> Option<Arc<TopicMeta>> {
        let mut inner = self.lock();
        let old = inner.by_name.get(name)?;
        let mut meta = TopicMeta::clone(old);
        f(&mut meta);
        let meta = Arc::new(meta);
        inner.by_name.insert(name.to_string(), meta.clone());
        inner.revision += 1;
        Some(meta)
    }

    /// A topic's entry now (`None`: no such topic) and the registry's revision it is part of.
    pub fn snapshot(&self, name: &str) -> (u64, Option<Arc<TopicMeta>>) {
        let inner = self.lock();
        (inner.revision, inner.by_name.get(name).cloned())
    }

    /// Every topic now, and the registry's revision.
    pub fn snapshot_all(&self) -> (u64, Vec<Arc<TopicMeta>>) {
        let inner = self.lock();
        (inner.revision, inner.by_name.values().cloned().collect())
    }

    /// Writes the registry atomically. Blocking file I/O: on a shard, call it through
    /// `engine::io::dma::blocking` (see `handlers::admin::persist`).
    pub fn persist(&self) -> std::io::Result<()> {
        let _guard = self.persist_lock.lock().unwrap_or_else(|e| e.into_inner());
        let file = RegistryFile { topics: self.list().iter().map(|t| TopicMeta::clone(t)).collect() };
        let bytes = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
        let tmp = self.path.with_extension("json.tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(valid_topic_name("orders.eu-1_x"));
        assert!(!valid_topic_name(""));
        assert!(!valid_topic_name("."));
        assert!(!valid_topic_name(".."));
        assert!(!valid_topic_name("a/b"));
        assert!(!valid_topic_name(&"x".repeat(250)));
    }

    #[test]
    fn registry_survives_reload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = Topics::load(dir.path()).expect("load");
        let id = Uuid::new_v4();
        let mut configs = BTreeMap::new();
        configs.insert("retention.ms".to_string(), "1000".to_string());
        assert!(t.insert(TopicMeta { name: "a".into(), id, partitions: 3, configs }));
        assert!(!t.insert(TopicMeta { name: "a".into(), id, partitions: 1, configs: BTreeMap::new() }));
        t.persist().expect("persist");
        let t2 = Topics::load(dir.path()).expect("reload");
        let a = t2.get("a").expect("topic a");
        assert_eq!(a.partitions, 3);
        assert_eq!(t2.name_for_id(&id).as_deref(), Some("a"));
    }
}
