//! Committed offsets persisted in `__consumer_offsets`, and rebuilt from it at start-up.
//!
//! Lives on: the coordinator shard of the groups concerned (a group's records go to its own
//! partition, [`crate::group::coordinator_partition`], which that shard owns).
//!
//! ## Record format (Odradek's own; not Kafka's binary schema)
//!
//! Key and value are JSON, so the topic is readable with any consumer:
//! - committed offset: key `{"type":"offset","group":G,"topic":T,"partition":P}`, value
//!   `{"offset":O,"leader_epoch":E,"metadata":M}`; a null value (tombstone) deletes it.
//! - group deleted: every offset of the group gets a tombstone.
//!
//! The latest record per key wins, which is what compaction keeps (`cleanup.policy=compact`).
//! Group membership is not persisted: after a restart a group is Empty with its offsets, and
//! its consumers rejoin (their heartbeats get UNKNOWN_MEMBER_ID), as dynamic members would
//! after a coordinator move in Kafka.

use std::collections::BTreeMap;
use std::time::Duration;

use engine::batch::parse_all;
use engine::records::{decode_records, BatchBuilder, Record};
use engine::shard::{AppendItem, PartitionError, ReadItem, ShardRequest, TopicPartition};
use engine::{Compression, ValidatedBatches};
use serde::{Deserialize, Serialize};

use crate::errors::code;
use crate::group::{Committed, SharedCoordinator, OFFSETS_TOPIC, OFFSETS_TOPIC_PARTITIONS};
use crate::handlers::admin;
use crate::handlers::metadata::LEADER_EPOCH;
use crate::server::ShardCtx;

/// Bytes read per step while loading a partition.
const LOAD_READ_BYTES_MAX: usize = 1 << 20;
/// Largest batch of offset records one commit writes.
const COMMIT_BATCH_BYTES_MAX: usize = 16 << 20;

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Key {
    Offset { group: String, topic: String, partition: i32 },
}

#[derive(Debug, Serialize, Deserialize)]
struct OffsetValue {
    offset: i64,
    leader_epoch: i32,
    metadata: String,
}

/// One record to write: an offset, or its tombstone.
pub fn offset_record(group: &str, topic: &str, partition: i32, value: Option<&Committed>) -> Record {
    let key = Key::Offset { group: group.to_owned(), topic: topic.to_owned(), partition };
    let value =
        value.map(|c| OffsetValue { offset: c.offset, leader_epoch: c.leader_epoch, metadata: c.metadata.clone() });
    Record::new(serde_json::to_vec(&key).ok(), value.and_then(|v| serde_json::to_vec(&v).ok()))
}

/// Creates `__consumer_offsets` (compacted) on first use.
async fn ensure_topic(ctx: &ShardCtx) -> Result<(), i16> {
    if ctx.broker.topics.get(OFFSETS_TOPIC).is_some() {
        return Ok(());
    }
    let configs = BTreeMap::from([("cleanup.policy".to_owned(), "compact".to_owned())]);
    match admin::create_topic(ctx, OFFSETS_TOPIC, OFFSETS_TOPIC_PARTITIONS, configs, false).await {
        Ok(_) => Ok(()),
        Err((c, _)) if c == code::TOPIC_ALREADY_EXISTS => Ok(()),
        Err((_, msg)) => {
            eprintln!("cannot create {OFFSETS_TOPIC}: {msg}");
            Err(code::COORDINATOR_NOT_AVAILABLE)
        }
    }
}

/// Appends `records` to the group's partition and waits until they are durable.
pub async fn append(ctx: &ShardCtx, partition: i32, records: Vec<Record>) -> Result<(), i16> {
    if records.is_empty() {
        return Ok(());
    }
    ensure_topic(ctx).await?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let mut builder = BatchBuilder::new(Compression::None, now_ms);
    for r in records {
        builder.push(r.with_timestamp(now_ms));
    }
    let tp = TopicPartition::new(OFFSETS_TOPIC, partition);
    let owner = ctx.handle.owner(&tp);
    // Another shard may have registered the topic and still be creating its partitions.
    for attempt in 0..50 {
        let batches =
            ValidatedBatches::new(builder.build(), COMMIT_BATCH_BYTES_MAX).map_err(|_| code::MESSAGE_TOO_LARGE)?;
        let item = AppendItem { tp: tp.clone(), batches, leader_epoch: LEADER_EPOCH, durable: true };
        let r = ctx.handle.call(owner, |reply| ShardRequest::Append { items: vec![item], reply }).await;
        match r.map(|v| v.into_iter().next()) {
            Ok(Some(Ok(_))) => return Ok(()),
            Ok(Some(Err(PartitionError::UnknownPartition(_)))) if attempt < 49 => {
                glommio::timer::sleep(Duration::from_millis(20)).await;
            }
            Ok(Some(Err(e))) => return Err(crate::errors::partition_error(&e)),
            _ => return Err(code::COORDINATOR_NOT_AVAILABLE),
        }
    }
    Err(code::COORDINATOR_NOT_AVAILABLE)
}

/// Rebuilds this shard's groups from the `__consumer_offsets` partitions it owns, then marks
/// the coordinator loaded (requests wait for that).
pub async fn load(ctx: &ShardCtx, co: &SharedCoordinator) {
    if ctx.broker.topics.get(OFFSETS_TOPIC).is_some() {
        for p in 0..OFFSETS_TOPIC_PARTITIONS {
            let tp = TopicPartition::new(OFFSETS_TOPIC, p);
            if ctx.handle.owner(&tp) != ctx.shard.id {
                continue;
            }
            if let Err(e) = load_partition(ctx, co, tp.clone()).await {
                eprintln!("loading {}: {e}", tp.dir_name());
            }
        }
    }
    co.borrow_mut().loaded = true;
}

async fn load_partition(ctx: &ShardCtx, co: &SharedCoordinator, tp: TopicPartition) -> Result<(), String> {
    let mut offset = 0i64;
    loop {
        let item = ReadItem { tp: tp.clone(), offset, bytes_max: LOAD_READ_BYTES_MAX, end_offset: None };
        let results = ctx
            .handle
            .call(ctx.shard.id, |reply| ShardRequest::Read { items: vec![item], reply })
            .await
            .map_err(|e| e.to_string())?;
        let result = match results.into_iter().next() {
            Some(Ok(r)) => r,
            Some(Err(PartitionError::UnknownPartition(_))) => return Ok(()),
            Some(Err(e)) => return Err(e.to_string()),
            None => return Ok(()),
        };
        let mut progressed = false;
        for chunk in &result.chunks {
            for batch in parse_all(chunk, usize::MAX).map_err(|e| e.to_string())? {
                offset = offset.max(batch.last_offset() + 1);
                progressed = true;
                for r in decode_records(&batch).map_err(|e| e.to_string())? {
                    apply(co, &r);
                }
            }
            glommio::yield_if_needed().await;
        }
        if !progressed || offset >= result.high_watermark {
            return Ok(());
        }
    }
}

fn apply(co: &SharedCoordinator, r: &Record) {
    let Some(Ok(key)) = r.key.as_deref().map(serde_json::from_slice::<Key>) else {
        return;
    };
    let Key::Offset { group, topic, partition } = key;
    let mut c = co.borrow_mut();
    match r.value.as_deref().map(serde_json::from_slice::<OffsetValue>) {
        Some(Ok(v)) => {
            if let Some(g) = c.group_or_create(&group) {
                g.offsets.insert(
                    (topic, partition),
                    Committed { offset: v.offset, leader_epoch: v.leader_epoch, metadata: v.metadata },
                );
            }
        }
        None => {
            if let Some(g) = c.groups.get_mut(&group) {
                g.offsets.remove(&(topic, partition));
            }
            c.drop_if_unused(&group);
        }
        Some(Err(_)) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_record_round_trips() {
        let c = Committed { offset: 7, leader_epoch: 2, metadata: "m".into() };
        let r = offset_record("g", "t", 3, Some(&c));
        let key: Key = serde_json::from_slice(r.key.as_deref().expect("key")).expect("key json");
        assert_eq!(key, Key::Offset { group: "g".into(), topic: "t".into(), partition: 3 });
        let v: OffsetValue = serde_json::from_slice(r.value.as_deref().expect("value")).expect("value json");
        assert_eq!((v.offset, v.leader_epoch, v.metadata.as_str()), (7, 2, "m"));
        assert!(offset_record("g", "t", 3, None).value.is_none());
    }
}
