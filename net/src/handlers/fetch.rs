//! Fetch: reads go to the owners, one message per owner shard; a long poll (min_bytes not
//! reached) waits on the owners' append notifications, never on a timer loop, until data
//! arrives or max_wait_ms passes.
//!
//! Fetch sessions (KIP-227): a full request with epoch 0 opens a session on the connection's
//! shard; incremental requests then name only partitions that changed (and forgotten ones), and
//! the response carries only partitions with news (records, an error, moved watermarks). The
//! cache is per shard and bounded (`FETCH_SESSIONS_PER_SHARD_MAX`, least recently used evicted):
//! a client that reconnects to another shard gets FETCH_SESSION_ID_NOT_FOUND and starts a new
//! session, as clients do after any eviction.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::server::Request;
use bytes::Bytes;
use engine::log::LogError;
use engine::shard::TopicPartition;
use engine::ReadResult;
use kafka_protocol::messages::fetch_response::{AbortedTransaction, FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use replication::ShardId;
use replication::{Offset, PartitionError, ReadItem};

use crate::caps::Fetch;
use crate::errors::{code, partition_error};
use uuid::Uuid;

/// Sessionless fetches: Kafka's `FetchMetadata.INVALID_SESSION_ID` with epochs INITIAL / FINAL.
const SESSIONLESS_ID: i32 = 0;
const EPOCH_INITIAL: i32 = 0;
const EPOCH_FINAL: i32 = -1;
const READ_COMMITTED: i8 = 1;
/// Fetch sessions one shard keeps (Kafka's `max.incremental.fetch.session.cache.slots` is 1000
/// per broker).
pub const FETCH_SESSIONS_PER_SHARD_MAX: usize = 1000;
/// Partitions one session may track.
pub const PARTITIONS_PER_SESSION_MAX: usize = 10_000;

/// A partition as a fetch names it: by topic id (v13+) or by name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct PartKey {
    topic_id: Uuid,
    topic: TopicName,
    partition: i32,
}

#[derive(Clone)]
struct SessionPart {
    fetch_offset: i64,
    partition_max_bytes: i32,
    /// The leader epoch the client last said it fetches from (-1: unchecked).
    current_leader_epoch: i32,
    /// What the last response told the client (-2: nothing yet).
    sent_high_watermark: i64,
    sent_log_start_offset: i64,
}

struct Session {
    /// The epoch the next incremental request must carry.
    epoch: i32,
    parts: BTreeMap<PartKey, SessionPart>,
    used: Instant,
}

/// The fetch sessions of one shard. Lives on: one core.
#[derive(Default)]
pub struct FetchSessions {
    sessions: RefCell<HashMap<i32, Session>>,
    next_id: Cell<i32>,
}

impl FetchSessions {
    fn open(&self, parts: BTreeMap<PartKey, SessionPart>) -> Option<i32> {
        if parts.len() > PARTITIONS_PER_SESSION_MAX {
            return None;
        }
        let mut sessions = self.sessions.borrow_mut();
        if sessions.len() >= FETCH_SESSIONS_PER_SHARD_MAX {
            let oldest = sessions.iter().min_by_key(|(_, s)| s.used).map(|(id, _)| *id)?;
            sessions.remove(&oldest);
        }
        // Ids are positive and unique on this shard; they wrap after 2^31 sessions.
        let mut id = self.next_id.get();
        loop {
            id = if id >= i32::MAX - 1 { 1 } else { id + 1 };
            if !sessions.contains_key(&id) {
                break;
            }
        }
        self.next_id.set(id);
        sessions.insert(id, Session { epoch: 1, parts, used: Instant::now() });
        Some(id)
    }
}

/// How a request relates to the session cache.
enum Mode {
    /// No session: every partition is in the request and in the response.
    Sessionless,
    /// A new full session: answer everything, then remember the partitions.
    Open,
    /// An incremental fetch in session `id`: answer only what changed.
    Incremental(i32),
}

struct Slot {
    key: PartKey,
    tp: Option<TopicPartition>,
    fetch_offset: i64,
    bytes_max: usize,
    current_leader_epoch: i32,
    error: i16,
}

fn error_response(error: i16) -> FetchResponse {
    FetchResponse::default().with_error_code(error).with_session_id(SESSIONLESS_ID)
}

pub async fn handle(ctx: Fetch<'_>, version: i16, req: FetchRequest) -> FetchResponse {
    let by_id = version >= 13;
    let sessions = ctx.sessions;
    let mode = match session_mode(sessions, req.session_id, req.session_epoch) {
        Ok(m) => m,
        Err(code) => return error_response(code),
    };
    let mut parts = match session_parts(sessions, &mode, by_id, req.topics, &req.forgotten_topics_data) {
        Ok(p) => p,
        Err(code) => return error_response(code),
    };
    let request_bytes_max = usize::try_from(req.max_bytes).unwrap_or(0).min(ctx.bytes_max);
    let slots = resolve(ctx, &parts, by_id);
    let read_committed = req.isolation_level == READ_COMMITTED;
    let reads = read_until_ready(ctx, &slots, req.max_wait_ms, req.min_bytes, read_committed).await;
    let incremental = matches!(mode, Mode::Incremental(_));
    let topics_out = responses(&slots, reads, &mut parts, request_bytes_max, read_committed, incremental);
    let session_id = close_turn(sessions, mode, version, parts);
    FetchResponse::default().with_error_code(code::NONE).with_session_id(session_id).with_responses(topics_out)
}

/// How the request's session id and epoch relate to this shard's session cache; `Err`: the
/// error the whole fetch is answered with.
fn session_mode(sessions: &FetchSessions, session_id: i32, session_epoch: i32) -> Result<Mode, i16> {
    Ok(match (session_id, session_epoch) {
        (SESSIONLESS_ID, EPOCH_FINAL) => Mode::Sessionless,
        (SESSIONLESS_ID, EPOCH_INITIAL) => Mode::Open,
        (SESSIONLESS_ID, _) => return Err(code::INVALID_FETCH_SESSION_EPOCH),
        (id, EPOCH_FINAL) => {
            // Closing a session; this request is a full, sessionless one.
            sessions.sessions.borrow_mut().remove(&id);
            Mode::Sessionless
        }
        (id, EPOCH_INITIAL) => {
            sessions.sessions.borrow_mut().remove(&id);
            Mode::Open
        }
        (id, epoch) => match sessions.sessions.borrow().get(&id) {
            None => return Err(code::FETCH_SESSION_ID_NOT_FOUND),
            Some(s) if s.epoch != epoch => return Err(code::INVALID_FETCH_SESSION_EPOCH),
            Some(_) => Mode::Incremental(id),
        },
    })
}

type Parts = Vec<(PartKey, SessionPart)>;

/// The partitions this fetch covers, in order, with their fetch positions: the request's, or
/// for an incremental fetch the session's updated by the request.
fn session_parts(
    sessions: &FetchSessions,
    mode: &Mode,
    by_id: bool,
    topics: Vec<kafka_protocol::messages::fetch_request::FetchTopic>,
    forgotten: &[kafka_protocol::messages::fetch_request::ForgottenTopic],
) -> Result<Parts, i16> {
    let mut named: BTreeMap<PartKey, SessionPart> = BTreeMap::new();
    let mut order: Vec<PartKey> = Vec::new();
    for t in topics {
        let topic = if by_id { TopicName(StrBytes::new()) } else { t.topic };
        for p in t.partitions {
            let key = PartKey {
                topic_id: if by_id { t.topic_id } else { Uuid::nil() },
                topic: topic.clone(),
                partition: p.partition,
            };
            let part = SessionPart {
                fetch_offset: p.fetch_offset,
                partition_max_bytes: p.partition_max_bytes,
                current_leader_epoch: p.current_leader_epoch,
                sent_high_watermark: -2,
                sent_log_start_offset: -2,
            };
            if named.insert(key.clone(), part).is_none() {
                order.push(key);
            }
        }
    }
    Ok(match *mode {
        Mode::Sessionless | Mode::Open => order.into_iter().filter_map(|k| named.remove(&k).map(|p| (k, p))).collect(),
        Mode::Incremental(id) => {
            let mut cache = sessions.sessions.borrow_mut();
            let Some(session) = cache.get_mut(&id) else { return Err(code::FETCH_SESSION_ID_NOT_FOUND) };
            for t in forgotten {
                for p in &t.partitions {
                    let topic = if by_id { TopicName(StrBytes::new()) } else { t.topic.clone() };
                    let topic_id = if by_id { t.topic_id } else { Uuid::nil() };
                    session.parts.remove(&PartKey { topic_id, topic, partition: *p });
                }
            }
            for (k, p) in named {
                match session.parts.get_mut(&k) {
                    Some(known) => {
                        known.fetch_offset = p.fetch_offset;
                        known.partition_max_bytes = p.partition_max_bytes;
                        known.current_leader_epoch = p.current_leader_epoch;
                    }
                    None => {
                        session.parts.insert(k, p);
                    }
                }
            }
            if session.parts.len() > PARTITIONS_PER_SESSION_MAX {
                cache.remove(&id);
                return Err(code::INVALID_REQUEST);
            }
            session.parts.iter().map(|(k, p)| (k.clone(), p.clone())).collect()
        }
    })
}

/// Each part's topic and partition from this shard's view, or the error it is answered with.
fn resolve(ctx: Fetch<'_>, parts: &Parts, by_id: bool) -> Vec<Slot> {
    parts
        .iter()
        .map(|(key, p)| {
            let topic = if by_id { ctx.view.by_id(&key.topic_id) } else { ctx.view.get(key.topic.as_str()) };
            let (tp, error) = match &topic {
                Some(t) if key.partition >= 0 && key.partition < t.partitions() => {
                    (Some(TopicPartition::new(t.name(), key.partition)), code::NONE)
                }
                Some(_) => (None, code::UNKNOWN_TOPIC_OR_PARTITION),
                None if by_id => (None, code::UNKNOWN_TOPIC_ID),
                None => (None, code::UNKNOWN_TOPIC_OR_PARTITION),
            };
            let bytes_max = usize::try_from(p.partition_max_bytes).unwrap_or(0);
            let current_leader_epoch = p.current_leader_epoch;
            Slot { key: key.clone(), tp, fetch_offset: p.fetch_offset, bytes_max, current_leader_epoch, error }
        })
        .collect()
}

type Reads = Vec<Option<Result<ReadResult, PartitionError>>>;

/// Reads the slots, and while less than `min_bytes` came back and no error, waits for data
/// (a long poll on the owners) until `max_wait_ms` runs out.
async fn read_until_ready(
    ctx: Fetch<'_>,
    slots: &[Slot],
    max_wait_ms: i32,
    min_bytes: i32,
    read_committed: bool,
) -> Reads {
    let wait = Duration::from_millis(u64::try_from(max_wait_ms).unwrap_or(0).min(ctx.wait_ms_max));
    let deadline = Instant::now() + wait;
    // min_bytes 0 (or less) answers at once, data or not, as Kafka does.
    let min_bytes = usize::try_from(min_bytes).unwrap_or(0);
    loop {
        let reads = read_all(ctx, slots, read_committed).await;
        let bytes: usize =
            reads.iter().map(|r| r.as_ref().map_or(0, |r| r.as_ref().map_or(0, ReadResult::bytes))).sum();
        let errors = slots.iter().any(|s| s.error != code::NONE) || reads.iter().any(|r| matches!(r, Some(Err(_))));
        let now = Instant::now();
        if bytes >= min_bytes || errors || now >= deadline || slots.is_empty() {
            return reads;
        }
        wait_for_data(ctx, slots, &reads, deadline - now).await;
        if Instant::now() >= deadline {
            return read_all(ctx, slots, read_committed).await;
        }
    }
}

/// The response's topics: one entry per slot in order (for an incremental fetch only those
/// with news), records within `request_bytes_max` but the first, which goes out whole.
fn responses(
    slots: &[Slot],
    reads: Reads,
    parts: &mut Parts,
    request_bytes_max: usize,
    read_committed: bool,
    incremental: bool,
) -> Vec<FetchableTopicResponse> {
    let mut total = 0usize;
    let mut topics_out: Vec<FetchableTopicResponse> = Vec::new();
    for ((slot, read), (_, part)) in slots.iter().zip(reads).zip(parts.iter_mut()) {
        let mut pd = PartitionData::default()
            .with_partition_index(slot.key.partition)
            .with_records(Some(Bytes::new()))
            .with_high_watermark(-1)
            .with_last_stable_offset(-1)
            .with_log_start_offset(-1)
            .with_aborted_transactions(None);
        if slot.error != code::NONE {
            pd.error_code = slot.error;
        }
        match read {
            None => {}
            Some(Ok(r)) => {
                pd.high_watermark = r.high_watermark;
                pd.last_stable_offset = r.last_stable_offset;
                pd.log_start_offset = r.log_start_offset;
                if read_committed {
                    let aborted = r.aborted_transactions.iter().map(|&(producer_id, first_offset)| {
                        AbortedTransaction::default()
                            .with_producer_id(kafka_protocol::messages::ProducerId(producer_id))
                            .with_first_offset(first_offset)
                    });
                    pd.aborted_transactions = Some(aborted.collect());
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
        let news = pd.error_code != code::NONE
            || pd.records.as_ref().is_some_and(|r| !r.is_empty())
            || pd.high_watermark != part.sent_high_watermark
            || pd.log_start_offset != part.sent_log_start_offset;
        part.sent_high_watermark = pd.high_watermark;
        part.sent_log_start_offset = pd.log_start_offset;
        if incremental && !news {
            continue;
        }
        let same_topic =
            topics_out.last().is_some_and(|t| t.topic == slot.key.topic && t.topic_id == slot.key.topic_id);
        if !same_topic {
            topics_out.push(
                FetchableTopicResponse::default().with_topic(slot.key.topic.clone()).with_topic_id(slot.key.topic_id),
            );
        }
        if let Some(t) = topics_out.last_mut() {
            t.partitions.push(pd);
        }
    }
    topics_out
}

/// The session id to answer with, after opening or advancing the session.
fn close_turn(sessions: &FetchSessions, mode: Mode, version: i16, parts: Parts) -> i32 {
    match mode {
        Mode::Sessionless => SESSIONLESS_ID,
        // Out of room (or too many partitions): the client carries on with full fetches.
        Mode::Open if version >= 7 => sessions.open(parts.into_iter().collect()).unwrap_or(SESSIONLESS_ID),
        Mode::Open => SESSIONLESS_ID,
        Mode::Incremental(id) => {
            if let Some(s) = sessions.sessions.borrow_mut().get_mut(&id) {
                s.epoch = s.epoch.checked_add(1).filter(|e| *e > 0).unwrap_or(1);
                s.used = Instant::now();
                for (k, p) in parts {
                    if let Some(known) = s.parts.get_mut(&k) {
                        known.sent_high_watermark = p.sent_high_watermark;
                        known.sent_log_start_offset = p.sent_log_start_offset;
                    }
                }
            }
            id
        }
    }
}

/// Reads every valid slot from its owner, one message per owner; `None` for invalid slots.
async fn read_all(
    ctx: Fetch<'_>,
    slots: &[Slot],
    read_committed: bool,
) -> Vec<Option<Result<ReadResult, PartitionError>>> {
    let shard_count = ctx.router.shard_count();
    let mut per_owner: Vec<(Vec<usize>, Vec<ReadItem>)> = (0..shard_count).map(|_| (Vec::new(), Vec::new())).collect();
    for (i, s) in slots.iter().enumerate() {
        if let (Some(tp), code::NONE) = (&s.tp, s.error) {
            let owner = ctx.router.owner(tp).index();
            per_owner[owner].0.push(i);
            per_owner[owner].1.push(ReadItem {
                tp: tp.clone(),
                offset: Offset(s.fetch_offset),
                bytes_max: s.bytes_max,
                end_offset: None,
                current_leader_epoch: s.current_leader_epoch,
                read_committed,
            });
        }
    }
    let calls: Vec<_> = per_owner
        .into_iter()
        .enumerate()
        .filter(|(_, (idx, _))| !idx.is_empty())
        .map(|(owner, (idx, items))| async move {
            (idx, ctx.router.call(ShardId(owner), |reply| Request::Read { items, reply }).await)
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
                        _ => ShardId(0),
                    })));
                }
            }
        }
    }
    out
}

/// Waits until any partition's high watermark passes what the last read saw, or `timeout`.
async fn wait_for_data(
    ctx: Fetch<'_>,
    slots: &[Slot],
    reads: &[Option<Result<ReadResult, PartitionError>>],
    timeout: Duration,
) {
    let shard_count = ctx.router.shard_count();
    let mut per_owner: Vec<Vec<(TopicPartition, Offset)>> = (0..shard_count).map(|_| Vec::new()).collect();
    for (s, r) in slots.iter().zip(reads) {
        if let (Some(tp), Some(Ok(r))) = (&s.tp, r) {
            per_owner[ctx.router.owner(tp).index()].push((tp.clone(), Offset(s.fetch_offset.max(r.high_watermark))));
        }
    }
    let (tx, rx) = flume::bounded::<bool>(shard_count);
    for (owner, items) in per_owner.into_iter().enumerate() {
        if items.is_empty() {
            continue;
        }
        // The owner answers on the shared `tx`: the first answer ends the wait.
        let _ = ctx.router.send(ShardId(owner), Request::WaitForData { items, timeout, reply: tx.clone() }).await;
    }
    drop(tx);
    futures_lite::future::or(
        async {
            loop {
                match rx.recv_async().await {
                    // Woken by data, or the owner's own timeout.
                    Ok(true) => return,
                    // That owner's door was full: another owner may still wake us.
                    Ok(false) => continue,
                    // Every owner is accounted for (or gone): wait out the time, never spin
                    // between reads and refused polls.
                    Err(_) => std::future::pending::<()>().await,
                }
            }
        },
        glommio::timer::sleep(timeout),
    )
    .await;
}
