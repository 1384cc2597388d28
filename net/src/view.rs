//! A shard's own view of the topics: names, ids, partition counts and typed configs, read on
//! the produce and fetch paths without a lock and without parsing a config string.
//!
//! Lives on: one shard (`!Send`). The registry ([`crate::topics::Topics`]) stays the truth and
//! the place admin requests change; after every change the changing shard sends the topic's
//! new state to every shard's door ([`publish`]) and answers its client only once all applied
//! it, so a client that created a topic or changed a config sees it on every connection.
//! States carry the registry's revision: one older than what a view holds is ignored.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;

use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::handlers::configs;
use crate::topics::TopicMeta;

/// The configs the data path reads, parsed once per change.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    /// `max.message.bytes`: the largest record batch accepted.
    pub max_message_bytes: usize,
    /// `message.timestamp.after.max.ms`.
    pub timestamp_after_max_ms: i64,
    /// `message.timestamp.before.max.ms`.
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.type=LogAppendTime`.
    pub log_append_time: bool,
    /// `compression.type`: the codec every stored batch has (`None`: `producer`, stored as
    /// sent), and the level to compress at (`compression.gzip.level`, `.zstd.level`).
    pub compression: Option<engine::batch::Compression>,
    pub compression_level: Option<i32>,
    /// `cleanup.policy` includes `delete`.
    pub retention_deletes: bool,
    /// `retention.ms` (`None`: unlimited).
    pub retention_ms: Option<i64>,
    /// `retention.bytes` (`None`: unlimited).
    pub retention_bytes: Option<u64>,
    /// `cleanup.policy` includes `compact`: the log cleaner keeps the latest record per key,
    /// and records without a key are refused.
    pub compact: bool,
    /// `delete.retention.ms`, `min.compaction.lag.ms`, `max.compaction.lag.ms`,
    /// `min.cleanable.dirty.ratio`, and this shard's share of the cleaner's key-map memory.
    pub cleaner: engine::log::CleanerConfig,
}

impl TopicConfig {
    /// The effective configs of a topic with these overrides (broker defaults for the rest).
    pub fn of(broker: &BrokerConfig, overrides: &BTreeMap<String, String>) -> Self {
        let long = |name: &str| configs::effective_i64(broker, overrides, name);
        let policy = configs::effective(broker, overrides, "cleanup.policy").unwrap_or_default();
        // KIP-937: the deprecated `message.timestamp.difference.max.ms`, when a topic sets it,
        // stands for whichever of the two newer configs the topic does not set.
        let difference = overrides.get("message.timestamp.difference.max.ms").and_then(|v| v.trim().parse().ok());
        let skew = |name: &str| match (overrides.contains_key(name), difference) {
            (false, Some(d)) => d,
            _ => long(name).unwrap_or(i64::MAX),
        };
        Self {
            max_message_bytes: long("max.message.bytes")
                .map_or(usize::MAX, |v| usize::try_from(v.max(0)).unwrap_or(usize::MAX)),
            timestamp_after_max_ms: skew("message.timestamp.after.max.ms"),
            timestamp_before_max_ms: skew("message.timestamp.before.max.ms"),
            log_append_time: configs::effective(broker, overrides, "message.timestamp.type").as_deref()
                == Some("LogAppendTime"),
            compression: crate::handlers::recompress::codec_of(
                &configs::effective(broker, overrides, "compression.type").unwrap_or_default(),
            ),
            compression_level: crate::handlers::recompress::level_of(broker, overrides),
            retention_deletes: policy.split(',').any(|p| p.trim() == "delete"),
            retention_ms: long("retention.ms").filter(|&v| v >= 0),
            retention_bytes: long("retention.bytes").filter(|&v| v >= 0).and_then(|v| u64::try_from(v).ok()),
            compact: policy.split(',').any(|p| p.trim() == "compact"),
            cleaner: engine::log::CleanerConfig {
                delete_retention_ms: long("delete.retention.ms").unwrap_or(86_400_000).max(0),
                min_compaction_lag_ms: long("min.compaction.lag.ms").unwrap_or(0).max(0),
                max_compaction_lag_ms: long("max.compaction.lag.ms").unwrap_or(i64::MAX).max(1),
                min_cleanable_dirty_ratio: configs::effective(broker, overrides, "min.cleanable.dirty.ratio")
                    .and_then(|v| v.parse::<f64>().ok())
                    .filter(|r| (0.0..=1.0).contains(r))
                    .unwrap_or(0.5),
                dedupe_buffer_bytes: broker.log_cleaner_dedupe_buffer_bytes / broker.log_cleaner_threads.max(1),
            },
        }
    }
}

/// One topic as a shard sees it.
#[derive(Debug)]
pub struct TopicView {
    pub meta: Arc<TopicMeta>,
    pub config: TopicConfig,
}

impl TopicView {
    pub fn name(&self) -> &str {
        &self.meta.name
    }
    pub fn partitions(&self) -> i32 {
        self.meta.partitions
    }
}

#[derive(Default)]
struct Inner {
    by_name: HashMap<String, Rc<TopicView>>,
    by_id: HashMap<Uuid, Rc<TopicView>>,
    /// The newest revision applied per name, deleted topics included (so a late creation
    /// message cannot bring a deleted topic back).
    revisions: HashMap<String, u64>,
    /// The revision of the full snapshot the view started from.
    base_revision: u64,
}

/// See the module docs.
pub struct MetadataView {
    broker: Arc<crate::server::Broker>,
    inner: RefCell<Inner>,
}

/// A topic's new state, on its way to every shard's view.
pub struct TopicChange {
    pub name: String,
    pub revision: u64,
    pub meta: Option<Arc<TopicMeta>>,
    pub reply: flume::Sender<()>,
}

impl MetadataView {
    /// A view of every topic in the registry now.
    pub fn load(broker: Arc<crate::server::Broker>) -> Self {
        let (revision, topics) = broker.topics.snapshot_all();
        let view = Self { broker, inner: RefCell::new(Inner { base_revision: revision, ..Inner::default() }) };
        for meta in topics {
            view.insert(meta);
        }
        view
    }

    fn insert(&self, meta: Arc<TopicMeta>) -> Rc<TopicView> {
        let config = TopicConfig::of(&self.broker.config, &meta.configs);
        let t = Rc::new(TopicView { meta, config });
        let mut inner = self.inner.borrow_mut();
        if let Some(old) = inner.by_name.insert(t.meta.name.clone(), t.clone()) {
            if old.meta.id != t.meta.id {
                inner.by_id.remove(&old.meta.id);
            }
        }
        inner.by_id.insert(t.meta.id, t.clone());
        t
    }

    pub fn get(&self, name: &str) -> Option<Rc<TopicView>> {
        self.inner.borrow().by_name.get(name).cloned()
    }

    pub fn by_id(&self, id: &Uuid) -> Option<Rc<TopicView>> {
        self.inner.borrow().by_id.get(id).cloned()
    }

    /// The registry entry a topic had when this view last heard of it.
    pub fn meta(&self, name: &str) -> Option<Arc<TopicMeta>> {
        self.get(name).map(|t| t.meta.clone())
    }

    pub fn meta_by_id(&self, id: &Uuid) -> Option<Arc<TopicMeta>> {
        self.by_id(id).map(|t| t.meta.clone())
    }

    /// Every topic's registry entry, by name.
    pub fn metas(&self) -> Vec<Arc<TopicMeta>> {
        self.list().into_iter().map(|t| t.meta.clone()).collect()
    }

    /// Every topic, by name.
    pub fn list(&self) -> Vec<Rc<TopicView>> {
        let mut v: Vec<_> = self.inner.borrow().by_name.values().cloned().collect();
        v.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
        v
    }

    /// Applies a topic's state of registry revision `revision` unless the view holds a newer one.
    pub fn apply(&self, name: &str, revision: u64, meta: Option<Arc<TopicMeta>>) -> Option<Rc<TopicView>> {
        {
            let mut inner = self.inner.borrow_mut();
            let held = inner.revisions.get(name).copied().unwrap_or(inner.base_revision);
            if revision < held {
                return inner.by_name.get(name).cloned();
            }
            inner.revisions.insert(name.to_string(), revision);
            if meta.is_none() {
                if let Some(old) = inner.by_name.remove(name) {
                    inner.by_id.remove(&old.meta.id);
                }
                return None;
            }
        }
        meta.map(|m| self.insert(m))
    }

    /// The topic from the registry itself, applied to this view: for a topic a change on another
    /// shard has made and not yet delivered here (auto-creation racing a produce).
    pub fn refresh(&self, name: &str) -> Option<Rc<TopicView>> {
        let (revision, meta) = self.broker.topics.snapshot(name);
        self.apply(name, revision, meta)
    }
}

/// Sends the registry's current state of `name` to every shard's view and returns once all
/// applied it.
pub async fn publish(ctx: crate::caps::Admin<'_>, name: &str) {
    let (revision, meta) = ctx.topics.snapshot(name);
    let calls = ctx.router.shards().map(|shard| {
        let meta = meta.clone();
        let name = name.to_string();
        async move {
            // A shard that is gone has no view to update.
            let _ = ctx
                .router
                .call(shard, |reply| {
                    crate::server::Request::Coordinator(crate::server::Call::Topic(TopicChange {
                        name,
                        revision,
                        meta,
                        reply,
                    }))
                })
                .await;
        }
    });
    engine::sync::join_all(calls.collect()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_of(pairs: &[(&str, &str)]) -> TopicConfig {
        let overrides = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        TopicConfig::of(&BrokerConfig::default(), &overrides)
    }

    #[test]
    fn the_deprecated_timestamp_difference_fills_in_for_unset_bounds() {
        let c = config_of(&[("message.timestamp.difference.max.ms", "10")]);
        assert_eq!((c.timestamp_before_max_ms, c.timestamp_after_max_ms), (10, 10));
        let c = config_of(&[("message.timestamp.difference.max.ms", "10"), ("message.timestamp.after.max.ms", "20")]);
        assert_eq!((c.timestamp_before_max_ms, c.timestamp_after_max_ms), (10, 20));
        let c = config_of(&[]);
        assert_eq!((c.timestamp_before_max_ms, c.timestamp_after_max_ms), (i64::MAX, 3_600_000));
    }

    #[test]
    fn compression_type_reaches_the_produce_path() {
        assert_eq!(config_of(&[]).compression, None);
        let c = config_of(&[("compression.type", "lz4")]);
        assert_eq!(c.compression, Some(engine::batch::Compression::Lz4));
    }
}
