//! Topic lifecycle shared by CreateTopics, auto-creation, CreatePartitions and DeleteTopics:
//! the registry entry and the partition logs on their owning shards.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use crate::server::Request;
use engine::shard::TopicPartition;
use engine::{Durability, LogConfig};
use uuid::Uuid;

use crate::caps::Admin;
use crate::errors::{code, partition_error};
use crate::handlers::configs;
use crate::topics::{valid_topic_name, TopicMeta, PARTITIONS_PER_TOPIC_MAX};
use crate::view::TopicView;

/// A failed admin operation: Kafka error code and message.
pub type AdminError = (i16, String);

/// The engine settings of a topic's partitions, from its effective configs.
pub fn log_config(ctx: Admin<'_>, configs: &BTreeMap<String, String>) -> LogConfig {
    log_config_of(ctx.config, configs)
}

/// [`log_config`] without a shard: also used at start-up, when the shards reopen the logs of
/// existing topics with their own settings, and when a config change reaches the open logs.
pub fn log_config_of(broker: &crate::config::BrokerConfig, configs: &BTreeMap<String, String>) -> LogConfig {
    let mut c = LogConfig::default();
    let long = |name: &str| configs::effective_i64(broker, configs, name);
    if let Some(b) = long("segment.bytes").and_then(|v| u64::try_from(v).ok()) {
        c.segment_bytes = b;
    }
    if let Some(ms) = long("segment.ms") {
        c.segment_ms = ms;
    }
    // As Kafka: a compacted topic's active segment also rolls once it is max.compaction.lag.ms
    // old, so no record waits longer than that to become cleanable (the active segment never is).
    let policy = configs::effective(broker, configs, "cleanup.policy").unwrap_or_default();
    if policy.split(',').any(|p| p.trim() == "compact") {
        if let Some(lag) = long("max.compaction.lag.ms").filter(|&l| l > 0) {
            c.segment_ms = c.segment_ms.min(lag);
        }
    }
    if let Some(ms) = long("segment.jitter.ms") {
        c.segment_jitter_ms = ms;
    }
    if let Some(b) = long("segment.index.bytes").and_then(|v| u64::try_from(v).ok()) {
        c.segment_index_bytes = b;
    }
    if let Some(b) = long("index.interval.bytes").and_then(|v| u64::try_from(v).ok()) {
        // 0 in Kafka: an entry for every batch (the segment's minimum of 1 byte does that).
        c.index_interval_bytes = b;
    }
    let set = |topic: &str, broker_value: Option<i64>| {
        configs.get(topic).and_then(|v| v.trim().parse::<i64>().ok()).or(broker_value)
    };
    c.durability =
        durability_of(set("flush.messages", broker.flush_interval_messages), set("flush.ms", broker.flush_interval_ms));
    // message.timestamp.type is applied by the produce handler, not by the log, so that it
    // follows config changes and restarts (the engine reopens logs with the default config).
    c
}

/// The durability policy `flush.messages` and `flush.ms` select, each the topic's override or
/// else the broker's `log.flush.interval.*`, `None` where neither is set.
///
/// Odradek is durable by default: with neither set anywhere, every append is synced before it
/// is acknowledged and before consumers see it (`Always`), where Kafka leaves syncing to the
/// OS. Setting them relaxes that, as in Kafka: `flush.messages=1` or `flush.ms=0` is `Always`;
/// `flush.messages=N` syncs once N records are unsynced (`EveryMessages`, with `flush.ms` as
/// its interval if that is set too); `flush.ms=N` alone syncs in the background at most N ms
/// after an append (`IntervalMs`); Kafka's default of `Long.MAX_VALUE` for both, set
/// explicitly, syncs only at roll and close (`Never`).
pub fn durability_of(flush_messages: Option<i64>, flush_ms: Option<i64>) -> Durability {
    let interval = flush_ms.filter(|&ms| ms > 0 && ms < i64::MAX).map(|ms| ms as u64);
    match (flush_messages, flush_ms) {
        (None, None) | (Some(1), _) | (_, Some(0)) => Durability::Always,
        (Some(n), _) if n > 1 && n < i64::MAX => {
            Durability::EveryMessages { messages: n as u64, interval_ms: interval }
        }
        _ => match interval {
            Some(ms) => Durability::IntervalMs(ms),
            None => Durability::Never,
        },
    }
}

/// Creates a coordinator's internal topic (`__consumer_offsets`, `__transaction_state`),
/// compacted, on first use; a failure is the coordinator's COORDINATOR_NOT_AVAILABLE.
pub async fn ensure_internal_topic(ctx: Admin<'_>, name: &str, partitions: i32) -> Result<(), i16> {
    if ctx.topics.get(name).is_some() {
        return Ok(());
    }
    let configs = BTreeMap::from([("cleanup.policy".to_owned(), "compact".to_owned())]);
    match create_topic(ctx, name, partitions, configs, false).await {
        Ok(_) => Ok(()),
        Err((c, _)) if c == code::TOPIC_ALREADY_EXISTS => Ok(()),
        Err((_, msg)) => {
            eprintln!("cannot create {name}: {msg}");
            Err(code::COORDINATOR_NOT_AVAILABLE)
        }
    }
}

/// Creates a topic and its partitions. With `validate_only`, only checks.
pub async fn create_topic(
    ctx: Admin<'_>,
    name: &str,
    partitions: i32,
    mut configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<Arc<TopicMeta>, AdminError> {
    if !valid_topic_name(name) {
        return Err((code::INVALID_TOPIC_EXCEPTION, format!("topic name {name:?} is illegal")));
    }
    if partitions <= 0 || partitions > PARTITIONS_PER_TOPIC_MAX {
        return Err((
            code::INVALID_PARTITIONS,
            format!("number of partitions must be in 1..={PARTITIONS_PER_TOPIC_MAX}"),
        ));
    }
    configs::validate_set(ctx.config, &mut configs)?;
    if ctx.topics.get(name).is_some() {
        return Err((code::TOPIC_ALREADY_EXISTS, format!("topic '{name}' already exists")));
    }
    let meta = TopicMeta { name: name.to_string(), id: Uuid::new_v4(), partitions, configs };
    if validate_only {
        return Ok(Arc::new(meta));
    }
    let log = log_config(ctx, &meta.configs);
    if !ctx.topics.insert(meta.clone()) {
        return Err((code::TOPIC_ALREADY_EXISTS, format!("topic '{name}' already exists")));
    }
    if let Err(e) = create_partitions(ctx, name, 0..partitions, &log).await {
        ctx.topics.remove(name);
        // A shard may have seen it meanwhile (`MetadataView::refresh`).
        crate::view::publish(ctx, name).await;
        delete_partitions(ctx, name, 0..partitions).await;
        return Err(e);
    }
    persist(ctx).await?;
    crate::view::publish(ctx, name).await;
    Ok(Arc::new(meta))
}

/// Partition creations or deletions one admin request keeps in flight: a topic may have tens of
/// thousands of partitions, and one task must not wait on all of them at once.
pub const ADMIN_PARTITIONS_IN_FLIGHT_MAX: usize = 64;

pub async fn create_partitions(
    ctx: Admin<'_>,
    topic: &str,
    range: std::ops::Range<i32>,
    log: &LogConfig,
) -> Result<(), AdminError> {
    let futs: Vec<_> = range
        .map(|p| {
            let tp = TopicPartition::new(topic, p);
            let owner = ctx.router.owner(&tp);
            let config = *log;
            async move { ctx.router.call(owner, |reply| Request::CreatePartition { tp, config, reply }).await }
        })
        .collect();
    for r in engine::sync::join_windowed(futs, ADMIN_PARTITIONS_IN_FLIGHT_MAX).await {
        match r.and_then(|r| r) {
            Ok(()) | Err(replication::PartitionError::AlreadyExists(_)) => {}
            Err(e) => return Err((partition_error(&e), e.to_string())),
        }
    }
    Ok(())
}

pub async fn delete_partitions(ctx: Admin<'_>, topic: &str, range: std::ops::Range<i32>) {
    let futs: Vec<_> = range
        .map(|p| {
            let tp = TopicPartition::new(topic, p);
            let owner = ctx.router.owner(&tp);
            async move { ctx.router.call(owner, |reply| Request::DeletePartition { tp, reply }).await }
        })
        .collect();
    // A partition that is already gone is what we want.
    let _ = engine::sync::join_windowed(futs, ADMIN_PARTITIONS_IN_FLIGHT_MAX).await;
}

/// Writes the topic registry, on the shard's blocking thread (never on its reactor).
pub async fn persist(ctx: Admin<'_>) -> Result<(), AdminError> {
    let topics = ctx.topics.clone();
    engine::io::dma::blocking(move || topics.persist())
        .await
        .map_err(|e| (code::KAFKA_STORAGE_ERROR, format!("persisting topics: {e}")))
}

/// The topic as this shard's view has it, auto-created with the broker's defaults if allowed
/// and enabled.
pub async fn get_or_auto_create(ctx: Admin<'_>, name: &str, allow: bool) -> Result<Rc<TopicView>, i16> {
    if let Some(t) = ctx.view.get(name) {
        return Ok(t);
    }
    // Made by another shard whose message has not arrived yet?
    if let Some(t) = ctx.view.refresh(name) {
        return Ok(t);
    }
    if !(allow && ctx.config.auto_create_topics) {
        return Err(code::UNKNOWN_TOPIC_OR_PARTITION);
    }
    if !valid_topic_name(name) {
        return Err(code::INVALID_TOPIC_EXCEPTION);
    }
    match create_topic(ctx, name, ctx.config.num_partitions, BTreeMap::new(), false).await {
        // Created here, or concurrently by another connection: use it.
        Ok(_) | Err((code::TOPIC_ALREADY_EXISTS, _)) => {
            ctx.view.get(name).or_else(|| ctx.view.refresh(name)).ok_or(code::LEADER_NOT_AVAILABLE)
        }
        Err((c, _)) => Err(c),
    }
}

pub async fn delete_topic(ctx: Admin<'_>, name: &str) -> Result<Arc<TopicMeta>, AdminError> {
    let meta =
        ctx.topics.remove(name).ok_or((code::UNKNOWN_TOPIC_OR_PARTITION, format!("topic '{name}' does not exist")))?;
    // No shard serves it from here on.
    crate::view::publish(ctx, name).await;
    persist(ctx).await?;
    delete_partitions(ctx, name, 0..meta.partitions).await;
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BrokerConfig;

    const MAX: i64 = i64::MAX;

    #[test]
    fn flush_settings_select_the_durability_policy() {
        let cases = [
            (None, None, Durability::Always),
            (Some(1), None, Durability::Always),
            (Some(1), Some(1000), Durability::Always),
            (None, Some(0), Durability::Always),
            (None, Some(1000), Durability::IntervalMs(1000)),
            (Some(MAX), Some(250), Durability::IntervalMs(250)),
            (Some(MAX), None, Durability::Never),
            (None, Some(MAX), Durability::Never),
            (Some(MAX), Some(MAX), Durability::Never),
            (Some(2), None, Durability::EveryMessages { messages: 2, interval_ms: None }),
            (Some(1000), Some(MAX), Durability::EveryMessages { messages: 1000, interval_ms: None }),
            (Some(1000), Some(250), Durability::EveryMessages { messages: 1000, interval_ms: Some(250) }),
            (Some(MAX - 1), None, Durability::EveryMessages { messages: (MAX - 1) as u64, interval_ms: None }),
            (Some(1000), Some(0), Durability::Always),
        ];
        for (messages, ms, want) in cases {
            assert_eq!(durability_of(messages, ms), want, "flush.messages={messages:?} flush.ms={ms:?}");
        }
    }

    #[test]
    fn topic_flush_overrides_win_over_the_broker() {
        let broker = BrokerConfig { flush_interval_ms: Some(500), ..BrokerConfig::default() };
        let none = BTreeMap::new();
        assert_eq!(log_config_of(&broker, &none).durability, Durability::IntervalMs(500));
        let always = BTreeMap::from([("flush.messages".to_string(), "1".to_string())]);
        assert_eq!(log_config_of(&broker, &always).durability, Durability::Always);
        let never = BTreeMap::from([("flush.ms".to_string(), MAX.to_string())]);
        assert_eq!(log_config_of(&broker, &never).durability, Durability::Never);
        assert_eq!(log_config_of(&BrokerConfig::default(), &none).durability, Durability::Always);
    }

    #[test]
    fn segment_and_index_settings_reach_the_log() {
        let overrides: BTreeMap<String, String> = [
            ("segment.jitter.ms", "300"),
            ("segment.index.bytes", "4096"),
            ("index.interval.bytes", "100"),
            ("segment.ms", "1000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let c = log_config_of(&BrokerConfig::default(), &overrides);
        assert_eq!(
            (c.segment_jitter_ms, c.segment_index_bytes, c.index_interval_bytes, c.segment_ms),
            (300, 4096, 100, 1000)
        );
    }

    #[test]
    fn a_compacted_topic_rolls_by_max_compaction_lag_too() {
        let topic = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let broker = BrokerConfig::default();
        let lag = ("max.compaction.lag.ms", "5000");
        let compacted = topic(&[("cleanup.policy", "compact"), lag, ("segment.ms", "60000")]);
        assert_eq!(log_config_of(&broker, &compacted).segment_ms, 5000);
        let both = topic(&[("cleanup.policy", "compact,delete"), lag]);
        assert_eq!(log_config_of(&broker, &both).segment_ms, 5000);
        let shorter_segment = topic(&[("cleanup.policy", "compact"), lag, ("segment.ms", "1000")]);
        assert_eq!(log_config_of(&broker, &shorter_segment).segment_ms, 1000);
        let deleting = topic(&[("cleanup.policy", "delete"), lag, ("segment.ms", "60000")]);
        assert_eq!(log_config_of(&broker, &deleting).segment_ms, 60000, "only compacted topics");
    }
}
