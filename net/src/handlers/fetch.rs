//! Fetch: reads go to the owners, one message per owner shard; a long poll (min_bytes not
//! reached) waits on the owners' append notifications, never on a timer loop, until data
//! arrives or max_wait_ms passes.
//!
//! Fetch sessions (KIP-227): this broker keeps no session cache (like a Kafka broker with
//! `max.incremental.fetch.session.cache.slots=0`): every response carries session id 0, so
//! clients keep sending full fetch requests. An incremental request naming a session gets
//! FETCH_SESSION_ID_NOT_FOUND, after which clients fall back to a full request.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use engine::log::LogError;
use engine::shard::{PartitionError, ReadItem, ShardRequest, TopicPartition};
use engine::ReadResult;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::errors::{code, partition_error};
use crate::server::{NetRequest, ShardCtx};

/// Sessionless fetches: Kafka's `FetchMetadata.INVALID_SESSION_ID` with epochs INITIAL / FINAL.
const SESSIONLESS_ID: i32 = 0;
const EPOCH_INITIAL: i32 = 0;
const EPOCH_FINAL: i32 = -1;
const READ_COMMITTED: i8 = 1;

struct Slot {
    topic: usize,
    part: usize,
    tp: Option<TopicPartition>,
    fetch_offset: i64,
    bytes_max: usize,
    error: i16,
}

pub async fn handle(ctx: &Rc<ShardCtx>, version: i16, req: FetchRequest) -> FetchResponse {
    if req.session_id != SESSIONLESS_ID || !(req.session_epoch == EPOCH_INITIAL || req.session_epoch == EPOCH_FINAL) {
        return FetchResponse::default().with_error_code(code::FETCH_SESSION_ID_NOT_FOUND).with_session_id(0);
    }
    let by_id = version >= 13;
    let request_bytes_max = usize::try_from(req.max_bytes).unwrap_or(0).min(ctx.config().fetch_bytes_max);
    let mut topics_out: Vec<FetchableTopicResponse> = Vec::with_capacity(req.topics.len());
    let mut slots: Vec<Slot> = Vec::new();
    for (ti, t) in req.topics.into_iter().enumerate() {
        let name = if by_id { ctx.broker.topics.name_for_id(&t.topic_id) } else { Some(t.topic.to_string()) };
        let meta = name.as_deref().and_then(|n| ctx.broker.topics.get(n));
        let unknown = if by_id { code::UNKNOWN_TOPIC_ID } else { code::UNKNOWN_TOPIC_OR_PARTITION };
        topics_out.push(
            FetchableTopicResponse::default()
                .with_topic(name.map(|n| TopicName(StrBytes::from_string(n))).unwrap_or(t.topic))
                .with_topic_id(t.topic_id),
        );
        for p in t.partitions {
            let (tp, error) = match &meta {
                Some(m) if p.partition >= 0 && p.partition < m.partitions => {
                    (Some(TopicPartition::new(&m.name, p.partition)), code::NONE)
                }
                Some(_) => (None, code::UNKNOWN_TOPIC_OR_PARTITION),
                None => (None, unknown),
            };
            let bytes_max = usize::try_from(p.partition_max_bytes).unwrap_or(0);
            let part = topics_out[ti].partitions.len();
            topics_out[ti].partitions.push(PartitionData::default().with_partition_index(p.partition));
            slots.push(Slot { topic: ti, part, tp, fetch_offset: p.fetch_offset, bytes_max, error });
        }
    }
    let wait = Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0).min(ctx.config().fetch_wait_ms_max));
    let deadline = Instant::now() + wait;
    let min_bytes = usize::try_from(req.min_bytes).unwrap_or(0);
    let reads = loop {
        let reads = read_all(ctx, &slots).await;
        let bytes: usize =
            reads.iter().map(|r| r.as_ref().map_or(0, |r| r.as_ref().map_or(0, ReadResult::bytes))).sum();
        let errors = slots.iter().any(|s| s.error != code::NONE) || reads.iter().any(|r| matches!(r, Some(Err(_))));
        let now = Instant::now();
        if bytes >= min_bytes.max(1) || errors || now >= deadline || slots.is_empty() {
            break reads;
        }
        wait_for_data(ctx, &slots, &reads, deadline - now).await;
        if Instant::now() >= deadline {
            break read_all(ctx, &slots).await;
        }
    };
    let mut total = 0usize;
    for (slot, read) in slots.iter().zip(reads) {
        let pd = &mut topics_out[slot.topic].partitions[slot.part];
        pd.records = Some(Bytes::new());
        pd.high_watermark = -1;
        pd.last_stable_offset = -1;
        pd.log_start_offset = -1;
        if slot.error != code::NONE {
            pd.error_code = slot.error;
            continue;
        }
        match read {
            None => {}
            Some(Ok(r)) => {
                pd.high_watermark = r.high_watermark;
                pd.last_stable_offset = r.high_watermark;
                pd.log_start_offset = r.log_start_offset;
                if req.isolation_level == READ_COMMITTED {
                    pd.aborted_transactions = Some(Vec::new());
                }
                let n = r.bytes();
                // The first data always goes out whole (a batch larger than max_bytes must
                // still make progress, as in Kafka); later partitions only within max_bytes.
                if n > 0 && (total == 0 || total + n <= request_bytes_max) {
                    total += n;
                    pd.records = Some(r.concat());
                }
            }
            Some(Err(e)) => {
                pd.error_code = partition_error(&e);
                if let PartitionError::Log(LogError::OffsetOutOfRange { log_start_offset, log_end_offset, .. }) = e {
                    pd.high_watermark = log_end_offset;
                    pd.last_stable_offset = log_end_offset;
                    pd.log_start_offset = log_start_offset;
                }
            }
        }
    }
    FetchResponse::default().with_error_code(code::NONE).with_session_id(SESSIONLESS_ID).with_responses(topics_out)
}

/// Reads every valid slot from its owner, one message per owner; `None` for invalid slots.
async fn read_all(ctx: &ShardCtx, slots: &[Slot]) -> Vec<Option<Result<ReadResult, PartitionError>>> {
    let shard_count = ctx.handle.shard_count();
    let mut per_owner: Vec<(Vec<usize>, Vec<ReadItem>)> = (0..shard_count).map(|_| (Vec::new(), Vec::new())).collect();
    for (i, s) in slots.iter().enumerate() {
        if let (Some(tp), code::NONE) = (&s.tp, s.error) {
            let owner = ctx.handle.owner(tp);
            per_owner[owner].0.push(i);
            per_owner[owner].1.push(ReadItem {
                tp: tp.clone(),
                offset: s.fetch_offset,
                bytes_max: s.bytes_max,
                end_offset: None,
            });
        }
    }
    let calls: Vec<_> = per_owner
        .into_iter()
        .enumerate()
        .filter(|(_, (idx, _))| !idx.is_empty())
        .map(|(owner, (idx, items))| async move {
            (idx, ctx.handle.call(owner, |reply| ShardRequest::Read { items, reply }).await)
        })
        .collect();
    let mut out: Vec<Option<Result<ReadResult, PartitionError>>> = slots.iter().map(|_| None).collect();
    for (idx, results) in engine::sync::join_all(calls).await {
        match results {
            Ok(results) => {
                for (i, r) in idx.into_iter().zip(results) {
                    out[i] = Some(r);
                }
            }
            Err(e) => {
                for i in idx {
                    out[i] = Some(Err(PartitionError::ShardGone(match &e {
                        PartitionError::ShardGone(s) => *s,
                        _ => 0,
                    })));
                }
            }
        }
    }
    out
}

/// Waits until any partition's high watermark passes what the last read saw, or `timeout`.
async fn wait_for_data(
    ctx: &ShardCtx,
    slots: &[Slot],
    reads: &[Option<Result<ReadResult, PartitionError>>],
    timeout: Duration,
) {
    let shard_count = ctx.handle.shard_count();
    let mut per_owner: Vec<Vec<(TopicPartition, i64)>> = (0..shard_count).map(|_| Vec::new()).collect();
    for (s, r) in slots.iter().zip(reads) {
        if let (Some(tp), Some(Ok(r))) = (&s.tp, r) {
            per_owner[ctx.handle.owner(tp)].push((tp.clone(), s.fetch_offset.max(r.high_watermark)));
        }
    }
    let (tx, rx) = flume::bounded::<()>(shard_count);
    for (owner, items) in per_owner.into_iter().enumerate() {
        if items.is_empty() {
            continue;
        }
        // The owner answers on the shared `tx`: the first answer ends the wait.
        let _ = ctx.net_send(owner, NetRequest::WaitForData { items, timeout, reply: tx.clone() }).await;
    }
    drop(tx);
    futures_lite::future::or(
        async {
            let _ = rx.recv_async().await;
        },
        glommio::timer::sleep(timeout),
    )
    .await;
}
