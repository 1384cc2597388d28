//! Produce: batches are validated on the connection's core (framing, CRC-32C, size, timestamps),
//! recompressed if the topic's `compression.type` names another codec, then sent to their
//! owners, one message per owner shard, and stored as they arrive there.

use crate::server::Request;
use bytes::BytesMut;
use engine::shard::TopicPartition;
use engine::sync::Turn;
use engine::ValidatedBatches;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use replication::ShardId;
use replication::{AppendItem, AppendResults, PartitionError};

use crate::caps::Produce;
use crate::errors::{batch_error, code, partition_error};

fn partition_result(index: i32, error_code: i16, message: Option<String>) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(error_code)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(message.map(StrBytes::from_string))
}

/// Checks the timestamps of CreateTime batches against the topic's allowed skew.
fn check_timestamps(
    batches: &ValidatedBatches,
    now_ms: i64,
    after_max_ms: i64,
    before_max_ms: i64,
) -> Result<(), String> {
    for meta in batches.batches() {
        if meta.attributes & engine::batch::ATTR_LOG_APPEND_TIME != 0 {
            continue;
        }
        let bytes = &batches.bytes()[meta.position..meta.position + meta.size];
        let base = engine::batch::header(bytes).map(|h| h.base_timestamp.get()).unwrap_or(meta.max_timestamp);
        if meta.max_timestamp > now_ms.saturating_add(after_max_ms) {
            return Err(format!("timestamp {} is more than {after_max_ms} ms in the future", meta.max_timestamp));
        }
        if base >= 0 && base < now_ms.saturating_sub(before_max_ms) {
            return Err(format!("timestamp {base} is more than {before_max_ms} ms in the past"));
        }
    }
    Ok(())
}

/// What a client may not send: control batches (markers are the coordinator's, through
/// WriteTxnMarkers), and transactional batches outside a transactional request (Kafka answers
/// those as an unauthorized transactional id).
/// Compacted topics keep the latest record per key: a record without a key has no place in
/// them and is refused, as Kafka does.
fn check_keys(batches: &ValidatedBatches) -> Result<(), (i16, String)> {
    for b in
        engine::batch::parse_all(batches.bytes(), usize::MAX).map_err(|e| (code::CORRUPT_MESSAGE, e.to_string()))?
    {
        let records = engine::records::decode_records(&b).map_err(|e| (code::CORRUPT_MESSAGE, e.to_string()))?;
        if records.iter().any(|r| r.key.is_none()) {
            return Err((code::INVALID_RECORD, "Compacted topic cannot accept message without key".into()));
        }
    }
    Ok(())
}

fn check_producer_batches(batches: &ValidatedBatches, transactional_id: bool) -> Result<(), (i16, String)> {
    for meta in batches.batches() {
        if meta.attributes & engine::batch::ATTR_CONTROL != 0 {
            return Err((code::INVALID_RECORD, "clients may not write control batches".into()));
        }
        if meta.producer_id >= 0 && meta.base_sequence < 0 {
            return Err((code::INVALID_RECORD, "a batch with a producer id needs a sequence number".into()));
        }
        if meta.attributes & engine::batch::ATTR_TRANSACTIONAL != 0 && !transactional_id {
            return Err((
                code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                "a transactional batch needs a transactional id".into(),
            ));
        }
    }
    Ok(())
}

/// Stamps every batch with the broker's time (`message.timestamp.type=LogAppendTime`) and
/// validates the result again (the CRC changed).
fn stamp_append_time(
    batches: ValidatedBatches,
    now_ms: i64,
    max_bytes: usize,
) -> Result<ValidatedBatches, engine::BatchError> {
    let (mut bytes, metas) = batches.into_parts();
    for m in &metas {
        engine::batch::stamp_log_append_time(&mut bytes[m.position..m.position + m.size], now_ms);
    }
    ValidatedBatches::new(bytes, max_bytes)
}

/// KIP-890 part 1: a transactional batch is written only to a partition its coordinator has
/// in the producer's ongoing transaction, so a batch arriving after its transaction ended (a
/// late retry, a zombie) cannot open a transaction nobody will end. Refused items leave
/// `per_owner` with their error in `topics_out`.
async fn verify_transactional(
    ctx: Produce<'_>,
    transactional_id: Option<&StrBytes>,
    per_owner: &mut [Vec<(usize, usize, AppendItem)>],
    topics_out: &mut [TopicProduceResponse],
) {
    let Some(transactional_id) = transactional_id.filter(|_| ctx.verify_transactions).map(|s| s.as_str()) else {
        return;
    };
    // (producer id, epoch) → the partitions its transactional batches go to.
    let mut asks: std::collections::BTreeMap<(i64, i16), Vec<(String, i32)>> = Default::default();
    for (_, _, item) in per_owner.iter().flatten() {
        for m in item.batches.batches() {
            if m.attributes & engine::batch::ATTR_TRANSACTIONAL != 0 && m.producer_id >= 0 {
                let tp = (item.tp.topic.to_string(), item.tp.partition);
                let list = asks.entry((m.producer_id, m.producer_epoch)).or_default();
                if !list.contains(&tp) {
                    list.push(tp);
                }
            }
        }
    }
    let mut refused: std::collections::HashMap<(String, i32), i16> = Default::default();
    for ((pid, epoch), tps) in asks {
        let codes = crate::handlers::txn::verify(ctx.router, transactional_id, pid, epoch, tps.clone()).await;
        for (tp, c) in tps.into_iter().zip(codes) {
            let c = match c {
                code::NONE => continue,
                // The coordinator is loading or gone: a retriable error producers know.
                code::COORDINATOR_NOT_AVAILABLE | code::COORDINATOR_LOAD_IN_PROGRESS => code::NOT_ENOUGH_REPLICAS,
                code::INVALID_PRODUCER_ID_MAPPING => code::INVALID_TXN_STATE,
                other => other,
            };
            refused.insert(tp, c);
        }
    }
    if refused.is_empty() {
        return;
    }
    for items in per_owner.iter_mut() {
        items.retain(|(t, p, item)| {
            let Some(c) = refused.get(&(item.tp.topic.to_string(), item.tp.partition)) else { return true };
            let out = &mut topics_out[*t].partition_responses[*p];
            out.error_code = *c;
            out.error_message =
                Some(StrBytes::from_static_str("the partition is not in the producer's ongoing transaction"));
            false
        });
    }
}

/// A partition's validated batches under its topic's rules, in Kafka's order: what producers
/// may send, then `compression.type` (recompressing batches in another codec), then the
/// timestamps (`LogAppendTime` stamps them, `CreateTime` checks their skew).
fn apply_topic_rules(
    batches: ValidatedBatches,
    cfg: &crate::view::TopicConfig,
    now_ms: i64,
    transactional_id: bool,
) -> Result<ValidatedBatches, (i16, String)> {
    if cfg.compact {
        check_keys(&batches)?;
    }
    check_producer_batches(&batches, transactional_id)?;
    let max_bytes = cfg.max_message_bytes;
    let batches = match cfg.compression {
        Some(codec) => crate::handlers::recompress::recompress(batches, codec, cfg.compression_level, max_bytes)?,
        None => batches,
    };
    if cfg.log_append_time {
        return stamp_append_time(batches, now_ms, max_bytes).map_err(|e| (batch_error(&e), e.to_string()));
    }
    let (after, before) = (cfg.timestamp_after_max_ms, cfg.timestamp_before_max_ms);
    check_timestamps(&batches, now_ms, after, before).map_err(|msg| (code::INVALID_TIMESTAMP, msg))?;
    Ok(batches)
}

/// `turn`: the request's place among its connection's Produce requests (see
/// [`crate::handlers::start`]); `None` serves it without one.
pub async fn handle(ctx: Produce<'_>, _version: i16, req: ProduceRequest, turn: Option<Turn>) -> ProduceResponse {
    let now = engine::now_ms();
    let reject_all = if !matches!(req.acks, -1..=1) { Some(code::INVALID_REQUIRED_ACKS) } else { None };
    let transactional_id = req.transactional_id.is_some();
    let durable = req.acks == -1;
    // Results in request order; appends grouped per owner, remembering each one's slot.
    let mut topics_out: Vec<TopicProduceResponse> = Vec::with_capacity(req.topic_data.len());
    let mut per_owner: PerOwner = (0..ctx.router.shard_count()).map(|_| Vec::new()).collect();
    // Partitions of LogAppendTime topics: their response carries the broker's timestamp.
    let mut append_time_slots: std::collections::HashSet<(usize, usize)> = std::collections::HashSet::new();
    for (ti, topic) in req.topic_data.into_iter().enumerate() {
        let mut parts = Vec::with_capacity(topic.partition_data.len());
        let meta = match reject_all {
            Some(c) => Err(c),
            // As Kafka: only Metadata auto-creates; a Produce to an unknown topic is refused.
            None => ctx.auto_create.topic(topic.name.as_str(), false).await,
        };
        for (pi, p) in topic.partition_data.into_iter().enumerate() {
            let meta = match &meta {
                Err(c) => {
                    parts.push(partition_result(p.index, *c, None));
                    continue;
                }
                Ok(m) => m,
            };
            if p.index < 0 || p.index >= meta.partitions() {
                parts.push(partition_result(p.index, code::UNKNOWN_TOPIC_OR_PARTITION, None));
                continue;
            }
            let Some(records) = p.records.filter(|r| !r.is_empty()) else {
                parts.push(partition_result(p.index, code::CORRUPT_MESSAGE, Some("no record batches".into())));
                continue;
            };
            let cfg = &meta.config;
            let max_bytes = cfg.max_message_bytes;
            let mut batches = match ValidatedBatches::new(BytesMut::from(&records[..]), max_bytes) {
                Ok(b) => b,
                Err(e) => {
                    parts.push(partition_result(p.index, batch_error(&e), Some(e.to_string())));
                    continue;
                }
            };
            batches = match apply_topic_rules(batches, cfg, now, transactional_id) {
                Ok(b) => b,
                Err((code, msg)) => {
                    parts.push(partition_result(p.index, code, Some(msg)));
                    continue;
                }
            };
            if cfg.log_append_time {
                append_time_slots.insert((ti, pi));
            }
            let tp = TopicPartition::new(meta.name(), p.index);
            let owner = ctx.router.owner(&tp).index();
            parts.push(partition_result(p.index, code::NONE, None));
            per_owner[owner].push((ti, pi, AppendItem { tp, batches, durable }));
        }
        topics_out.push(TopicProduceResponse::default().with_name(topic.name).with_partition_responses(parts));
    }
    verify_transactional(ctx, req.transactional_id.as_deref(), &mut per_owner, &mut topics_out).await;
    let appended = append_in_turn(ctx, per_owner, turn).await;
    fill_results(&mut topics_out, appended, &append_time_slots, now);
    ProduceResponse::default().with_responses(topics_out)
}

/// Appends grouped by owner shard, each with its (topic, partition) slot in the response.
type PerOwner = Vec<Vec<(usize, usize, AppendItem)>>;

/// Each owner's slots and its answer.
type Appended = Vec<(Vec<(usize, usize)>, Result<AppendResults, PartitionError>)>;

/// Hands every owner its appends once the connection's earlier Produce requests have handed
/// theirs (owners' inboxes are first in, first out, and an owner fixes each append's turn on
/// its partition as it takes it from the inbox), passes the turn on, then waits for the
/// answers. Only the hand-over is in turn: the writes and syncs of consecutive requests
/// overlap.
async fn append_in_turn(ctx: Produce<'_>, per_owner: PerOwner, turn: Option<Turn>) -> Appended {
    if let Some(t) = &turn {
        t.wait().await;
    }
    let mut asked = Vec::new();
    for (owner, items) in per_owner.into_iter().enumerate().filter(|(_, items)| !items.is_empty()) {
        let (slots, items): (Vec<_>, Vec<_>) = items.into_iter().map(|(t, p, item)| ((t, p), item)).unzip();
        let rx = ctx.router.ask(ShardId(owner), |reply| Request::Append { items, reply }).await;
        asked.push((owner, slots, rx));
    }
    drop(turn);
    let answers = asked.into_iter().map(|(owner, slots, rx)| async move {
        let answer = match rx {
            Ok(rx) => rx.recv_async().await.map_err(|_| PartitionError::ShardGone(ShardId(owner))),
            Err(e) => Err(e),
        };
        (slots, answer)
    });
    engine::sync::join_all(answers.collect()).await
}

fn fill_results(
    topics_out: &mut [TopicProduceResponse],
    appended: Appended,
    append_time_slots: &std::collections::HashSet<(usize, usize)>,
    now: i64,
) {
    for (slots, results) in appended {
        match results {
            Ok(results) => {
                for ((t, p), r) in slots.into_iter().zip(results) {
                    let out = &mut topics_out[t].partition_responses[p];
                    match r {
                        Ok(info) => {
                            out.base_offset = info.base_offset;
                            out.log_append_time_ms =
                                if append_time_slots.contains(&(t, p)) { now } else { info.log_append_time_ms };
                            out.log_start_offset = info.log_start_offset;
                        }
                        Err(e) => {
                            out.error_code = partition_error(&e);
                            out.error_message = Some(StrBytes::from_string(e.to_string()));
                        }
                    }
                }
            }
            Err(e) => {
                for (t, p) in slots {
                    topics_out[t].partition_responses[p].error_code = partition_error(&e);
                }
            }
        }
    }
}
