//! Committed offsets persisted in `__consumer_offsets`, and rebuilt from it at start-up.
//!
//! Lives on: the coordinator shard of the groups concerned (a group's records go to its own
//! partition, [`crate::coordinator::group::coordinator_partition`], which that shard owns).
//!
//! ## Record format (Odradek's own; not Kafka's binary schema)
//!
//! Key and value are JSON, so the topic is readable with any consumer:
//! - committed offset: key `{"type":"offset","group":G,"topic":T,"partition":P}`, value
//!   `{"offset":O,"leader_epoch":E,"metadata":M}`; a null value (tombstone) deletes it.
//! - membership: key `{"type":"group","group":G}`, value `{"classic":{...}}` (generation,
//!   protocol, leader, members with their metadata and assignment; written when the group
//!   becomes Stable or Empty) or `{"consumer":{...}}` (a KIP-848 group: epoch, assignor,
//!   members with subscriptions, epochs and assignments, the target assignment); a tombstone
//!   when the group is gone.
//! - group deleted: every offset of the group and its membership get a tombstone.
//!
//! The latest record per key wins, which is what compaction keeps (`cleanup.policy=compact`).
//!
//! Offsets are written before a commit is answered. Membership is written behind, by one task
//! per shard ([`persist_loop`]) that batches the groups changed since its last write and skips
//! those whose record would not change; after a restart, members that keep heartbeating carry
//! on in their generation (classic) or epoch (KIP-848) without a rebalance. A crash in the
//! moment between a change and its write costs a rebalance, never an offset.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use crate::server::Request;
use engine::batch::parse_all;
use engine::records::{decode_records, BatchBuilder, Record};
use engine::shard::TopicPartition;
use engine::{Compression, ValidatedBatches};
use replication::{AppendItem, Offset, PartitionError, ReadItem};
use serde::{Deserialize, Serialize};

use crate::caps::Admin;
use crate::coordinator::consumer_group::{ConsumerGroup, Snapshot};
use crate::coordinator::group::{
    ClassicSnapshot, Committed, Coordinator, SharedCoordinator, OFFSETS_TOPIC, OFFSETS_TOPIC_PARTITIONS,
};
use crate::errors::code;
use crate::handlers::admin;
use crate::server::ShardCtx;

/// Bytes read per step while loading a partition.
const LOAD_READ_BYTES_MAX: usize = 1 << 20;
/// Largest batch of offset records one commit writes.
const COMMIT_BATCH_BYTES_MAX: usize = 16 << 20;

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Key {
    Offset { group: String, topic: String, partition: i32 },
    Group { group: String },
}

/// A group's membership record.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Membership {
    Classic(ClassicSnapshot),
    Consumer(Snapshot),
}

/// Pause after a failed membership write before the next try.
const PERSIST_RETRY: Duration = Duration::from_millis(200);

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

/// The membership record value a group needs now: `Some(None)` a tombstone, `None` nothing
/// (a classic group in the middle of a rebalance keeps its last record).
fn membership_value(c: &Coordinator, id: &str) -> Option<Option<Vec<u8>>> {
    let value = if let Some(cg) = c.consumer_groups.get(id) {
        Some(Membership::Consumer(cg.snapshot()))
    } else if let Some(g) = c.groups.get(id) {
        Some(Membership::Classic(g.snapshot()?))
    } else {
        None
    };
    Some(value.and_then(|v| serde_json::to_vec(&v).ok()))
}

fn hash_of(value: &Option<Vec<u8>>) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// The membership record of a group.
pub fn membership_record(group: &str, value: Option<Vec<u8>>) -> Record {
    let key = Key::Group { group: group.to_owned() };
    Record::new(serde_json::to_vec(&key).ok(), value)
}

/// Writes the membership of groups marked dirty, batched per `__consumer_offsets` partition,
/// for as long as the shard runs.
pub async fn persist_loop(ctx: &ShardCtx, co: &SharedCoordinator) {
    loop {
        let notify = co.borrow().persist.clone();
        let changed = notify.listen();
        let dirty = std::mem::take(&mut co.borrow_mut().dirty);
        if dirty.is_empty() {
            changed.await;
            continue;
        }
        let mut by_partition: BTreeMap<i32, Vec<(String, u64, Record)>> = BTreeMap::new();
        {
            let c = co.borrow();
            for id in dirty {
                let Some(value) = membership_value(&c, &id) else { continue };
                let hash = hash_of(&value);
                let last = c.written.get(&id).copied();
                // A group never written needs no tombstone.
                if last == Some(hash) || (last.is_none() && value.is_none()) {
                    continue;
                }
                let record = membership_record(&id, value);
                by_partition
                    .entry(crate::coordinator::group::coordinator_partition(&id))
                    .or_default()
                    .push((id, hash, record));
            }
        }
        for (partition, entries) in by_partition {
            let (meta, records): (Vec<(String, u64)>, Vec<Record>) =
                entries.into_iter().map(|(id, hash, r)| ((id, hash), r)).unzip();
            let written = append(ctx, partition, records).await;
            {
                let mut c = co.borrow_mut();
                for (id, hash) in meta {
                    match written {
                        Ok(()) => {
                            c.written.insert(id, hash);
                        }
                        Err(_) => c.mark_dirty(&id),
                    }
                }
            }
            if written.is_err() {
                glommio::timer::sleep(PERSIST_RETRY).await;
            }
        }
    }
}

/// Creates `__consumer_offsets` (compacted) on first use.
pub async fn ensure_topic(ctx: Admin<'_>) -> Result<(), i16> {
    admin::ensure_internal_topic(ctx, OFFSETS_TOPIC, OFFSETS_TOPIC_PARTITIONS).await
}

/// Appends `records` to the group's partition and waits until they are durable.
pub async fn append(ctx: &ShardCtx, partition: i32, records: Vec<Record>) -> Result<(), i16> {
    if records.is_empty() {
        return Ok(());
    }
    ensure_topic(ctx.admin()).await?;
    append_batch(ctx, TopicPartition::new(OFFSETS_TOPIC, partition), &batch_of(records, None)).await
}

/// One batch of `records`, stamped now; `producer`: a transactional batch of that producer id
/// and epoch, without a sequence (a coordinator's write: Kafka's `NO_SEQUENCE`).
pub fn batch_of(records: Vec<Record>, producer: Option<(i64, i16)>) -> BatchBuilder {
    let now_ms = engine::now_ms();
    let mut builder = BatchBuilder::new(Compression::None, now_ms);
    if let Some((id, epoch)) = producer {
        builder = builder.producer(id, epoch, -1).transactional();
    }
    for r in records {
        builder.push(r.with_timestamp(now_ms));
    }
    builder
}

/// Appends one batch to a partition of an internal topic and waits until it is durable.
pub async fn append_batch(ctx: &ShardCtx, tp: TopicPartition, builder: &BatchBuilder) -> Result<(), i16> {
    let owner = ctx.router.owner(&tp);
    // Another shard may have registered the topic and still be creating its partitions.
    for attempt in 0..50 {
        let batches =
            ValidatedBatches::new(builder.build(), COMMIT_BATCH_BYTES_MAX).map_err(|_| code::MESSAGE_TOO_LARGE)?;
        let item = AppendItem { tp: tp.clone(), batches, durable: true };
        let r = ctx.router.call(owner, |reply| Request::Append { items: vec![item], reply }).await;
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

/// Reads a partition of an internal topic this shard owns from its start to its high
/// watermark, handing each batch to `f`. A partition that does not exist is empty.
pub async fn scan(
    ctx: &ShardCtx,
    tp: TopicPartition,
    mut f: impl FnMut(&engine::batch::BatchView<'_>),
) -> Result<(), String> {
    let mut offset = 0i64;
    loop {
        let item = ReadItem {
            tp: tp.clone(),
            offset: Offset(offset),
            bytes_max: LOAD_READ_BYTES_MAX,
            end_offset: None,
            current_leader_epoch: -1,
            read_committed: false,
        };
        let results = ctx
            .router
            .call(ctx.shard.id(), |reply| Request::Read { items: vec![item], reply })
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
                f(&batch);
            }
            glommio::yield_if_needed().await;
        }
        if !progressed || offset >= result.high_watermark {
            return Ok(());
        }
    }
}

/// Rebuilds this shard's groups from the `__consumer_offsets` partitions it owns, then marks
/// the coordinator loaded (requests wait for that).
pub async fn load(ctx: &ShardCtx, co: &SharedCoordinator) {
    if ctx.broker.topics.get(OFFSETS_TOPIC).is_some() {
        for p in 0..OFFSETS_TOPIC_PARTITIONS {
            let tp = TopicPartition::new(OFFSETS_TOPIC, p);
            if ctx.router.owner(&tp) != ctx.shard.id() {
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
    let partition = tp.partition;
    let mut failed = None;
    scan(ctx, tp, |batch| {
        if batch.is_control() {
            // A transaction's end: its offsets become committed, or are dropped.
            if let Some(commit) = marker_kind(batch) {
                co.borrow_mut().end_txn_offsets(batch.producer_id(), partition, commit);
            }
            return;
        }
        let records = match decode_records(batch) {
            Ok(r) => r,
            Err(e) => {
                failed = Some(e.to_string());
                return;
            }
        };
        let txn = (batch.is_transactional() && batch.producer_id() >= 0).then(|| batch.producer_id());
        for r in &records {
            apply(co, r, txn);
        }
    })
    .await?;
    failed.map_or(Ok(()), Err)
}

/// A control batch's marker: `Some(true)` COMMIT, `Some(false)` ABORT, `None` another kind.
pub fn marker_kind(batch: &engine::batch::BatchView<'_>) -> Option<bool> {
    let records = decode_records(batch).ok()?;
    let key = records.first()?.key.as_deref()?;
    match i16::from_be_bytes(key.get(2..4)?.try_into().ok()?) {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

/// One record read back; `txn`: it belongs to that producer's transaction, and counts only
/// once its COMMIT marker is read.
fn apply(co: &SharedCoordinator, r: &Record, txn: Option<i64>) {
    let Some(Ok(key)) = r.key.as_deref().map(serde_json::from_slice::<Key>) else {
        return;
    };
    let (group, topic, partition) = match key {
        Key::Offset { group, topic, partition } => (group, topic, partition),
        Key::Group { group } => return apply_membership(co, group, r),
    };
    let mut c = co.borrow_mut();
    let value = r.value.as_deref().map(serde_json::from_slice::<OffsetValue>);
    if let (Some(pid), Some(Ok(v))) = (txn, &value) {
        let committed = Committed { offset: v.offset, leader_epoch: v.leader_epoch, metadata: v.metadata.clone() };
        c.txn_offsets.entry(pid).or_default().insert((group, topic, partition), committed);
        return;
    }
    match value {
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

fn apply_membership(co: &SharedCoordinator, group: String, r: &Record) {
    let mut c = co.borrow_mut();
    let now = Instant::now();
    let value = r.value.as_ref().map(|v| v.to_vec());
    let hash = hash_of(&value);
    match value.as_deref().map(serde_json::from_slice::<Membership>) {
        Some(Ok(Membership::Classic(snap))) => {
            c.consumer_groups.remove(&group);
            if let Some(g) = c.group_or_create(&group) {
                g.restore(snap, now);
            }
        }
        Some(Ok(Membership::Consumer(snap))) => {
            let settings = c.settings.consumer;
            c.consumer_groups.insert(group.clone(), ConsumerGroup::restore(snap, now, settings));
        }
        None => {
            c.consumer_groups.remove(&group);
            if let Some(g) = c.groups.get_mut(&group) {
                g.restore(ClassicSnapshot::empty(), now);
            }
            c.drop_if_unused(&group);
        }
        Some(Err(_)) => return,
    }
    c.written.insert(group, hash);
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
