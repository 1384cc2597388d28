//! The transaction coordinator: one per shard, for the transactional ids whose
//! `__transaction_state` partition that shard owns ([`txn_partition`]), as groups are spread.
//!
//! Lives on: one core, behind `Rc<RefCell<_>>`; no borrow is held across an await. Every
//! request for a transactional id reaches its coordinator shard as one `Call::Txn` through
//! that shard's door. The operations on one id run one at a time (a fair lock per id), so a
//! transition and its write to the log are never interleaved with another.
//!
//! ## States (Kafka's `TransactionState`)
//!
//! Empty → Ongoing (AddPartitionsToTxn / AddOffsetsToTxn) → PrepareCommit | PrepareAbort
//! (EndTxn, the timeout, a new InitProducerId) → CompleteCommit | CompleteAbort once every
//! partition of the transaction has its marker → Ongoing again at the next transaction.
//!
//! Every transition is written to `__transaction_state` (durably) before it is acted on or
//! answered, so a restart resumes from the log: a transaction found prepared has its markers
//! written again (a second marker for an ended transaction changes nothing in a partition),
//! an ongoing one keeps running until it ends or times out.
//!
//! EndTxn is answered once the markers are written and the completion is logged, not at the
//! prepare as in Kafka: the next transaction of the producer then never meets
//! CONCURRENT_TRANSACTIONS, and a consumer reading after the commit returned sees it. When a
//! marker cannot be written yet (a partition's storage failing), the answer still goes out
//! after the prepare is durable, and the sweep retries the markers.
//!
//! ## Fencing
//!
//! InitProducerId bumps the producer epoch (a new producer id when the epoch is used up); an
//! open transaction of the previous instance is first aborted with an epoch bumped past it, so
//! its batches and markers are refused everywhere (INVALID_PRODUCER_EPOCH / PRODUCER_FENCED). A
//! transaction open longer than its timeout is aborted the same way by the sweep
//! (`transaction.abort.timed.out.transaction.cleanup.interval.ms`).
//!
//! ## Verification (KIP-890 part 1)
//!
//! Before a transactional batch is written (Produce, TxnOffsetCommit), the partition's
//! membership in the producer's ongoing transaction is checked here ([`verify`]), so a batch
//! arriving after its transaction ended (a late retry, a zombie) is refused instead of opening a
//! transaction nobody will end.
//!
//! ## Record format (Odradek's own, JSON like the groups' records)
//!
//! Key `{"type":"txn","id":T}`, value the [`TxnMeta`]; a tombstone when the id expires
//! (`transactional.id.expiration.ms` after its last transaction).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use engine::records::Record;
use engine::shard::TopicPartition;
use engine::sync::LocalMutex;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTransaction;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState as Described};
use kafka_protocol::messages::list_transactions_response::TransactionState as Listed;
use kafka_protocol::messages::{
    EndTxnRequest, EndTxnResponse, InitProducerIdRequest, InitProducerIdResponse, ListTransactionsRequest, ProducerId,
    TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use replication::{Marker, MarkerItem, PartitionError};
use serde::{Deserialize, Serialize};

use crate::caps::Admin;
use crate::coordinator::store;
use crate::errors::code;
use crate::handlers::admin;
use crate::server::ShardCtx;

/// The internal topic holding the coordinators' state.
pub const TXN_TOPIC: &str = "__transaction_state";
/// Kafka's default `transaction.state.log.num.partitions`.
pub const TXN_TOPIC_PARTITIONS: i32 = 50;
/// Tries at writing a transaction's markers before it is left to the sweep.
const MARKER_ATTEMPTS: usize = 3;
const MARKER_RETRY: Duration = Duration::from_millis(100);
/// How long a request waits for its coordinator to finish loading.
const LOAD_WAIT: Duration = Duration::from_secs(2);

/// The `__transaction_state` partition of a transactional id (Kafka's placement).
pub fn txn_partition(id: &str) -> i32 {
    crate::coordinator::group::key_partition(id, TXN_TOPIC_PARTITIONS)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

/// Kafka's state names, including the two this coordinator never shows (a filter naming them
/// is valid and matches nothing).
const KNOWN_STATE_NAMES: &[&str] = &[
    "Empty",
    "Ongoing",
    "PrepareCommit",
    "PrepareAbort",
    "CompleteCommit",
    "CompleteAbort",
    "Dead",
    "PrepareEpochFence",
];

impl TxnState {
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }
    fn prepared(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// One transactional id's state, as logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnMeta {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last InitProducerId (-1: none), so a retried InitProducerId that
    /// names it gets the current epoch back instead of being fenced.
    pub last_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// The transaction's partitions (those of its offsets included: the group's
    /// `__consumer_offsets` partition).
    pub partitions: BTreeSet<(String, i32)>,
    /// When the current (or last) transaction started (broker clock, ms; -1: never).
    pub start_ms: i64,
    pub update_ms: i64,
}

/// See the module docs.
#[derive(Default)]
pub struct TxnCoordinator {
    pub txns: HashMap<String, TxnMeta>,
    locks: HashMap<String, Rc<LocalMutex>>,
    /// Set once the shard's `__transaction_state` partitions are read back.
    pub loaded: bool,
}

pub type SharedTxns = Rc<RefCell<TxnCoordinator>>;

/// A request for the transaction coordinator of one shard (`Call::Txn`).
pub enum TxnCall {
    Init {
        version: i16,
        req: InitProducerIdRequest,
        reply: flume::Sender<InitProducerIdResponse>,
    },
    /// AddPartitionsToTxn (one transaction of it) and AddOffsetsToTxn (its group's partition).
    Add {
        version: i16,
        txn: AddPartitionsToTxnTransaction,
        reply: flume::Sender<Vec<AddPartitionsToTxnTopicResult>>,
    },
    End {
        version: i16,
        req: EndTxnRequest,
        reply: flume::Sender<EndTxnResponse>,
    },
    Describe {
        ids: Vec<TransactionalId>,
        reply: flume::Sender<Vec<Described>>,
    },
    List {
        req: ListTransactionsRequest,
        reply: flume::Sender<Result<Vec<Listed>, i16>>,
    },
    /// Whether each partition is in the producer's ongoing transaction (KIP-890).
    Verify {
        id: String,
        producer_id: i64,
        producer_epoch: i16,
        tps: Vec<(String, i32)>,
        reply: flume::Sender<Vec<i16>>,
    },
}

/// The coordinator settings of the broker's configuration.
#[derive(Debug, Clone, Copy)]
pub struct TxnSettings {
    /// `transaction.max.timeout.ms`.
    pub timeout_ms_max: i32,
    /// `transactional.id.expiration.ms`.
    pub id_expiration_ms: i64,
}

impl TxnSettings {
    pub fn from_config(c: &crate::config::BrokerConfig) -> Self {
        Self { timeout_ms_max: c.transaction_max_timeout_ms, id_expiration_ms: c.transactional_id_expiration_ms }
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

/// The fencing error a request version understands (KIP-588 added PRODUCER_FENCED).
fn fenced(fenced_supported: bool) -> i16 {
    if fenced_supported {
        code::PRODUCER_FENCED
    } else {
        code::INVALID_PRODUCER_EPOCH
    }
}

/// Creates `__transaction_state` (compacted) on first use.
pub async fn ensure_topic(ctx: Admin<'_>) -> Result<(), i16> {
    admin::ensure_internal_topic(ctx, TXN_TOPIC, TXN_TOPIC_PARTITIONS).await
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Key {
    Txn { id: String },
}

/// Logs an id's new state (`None`: a tombstone) and waits until it is durable.
async fn persist(ctx: &ShardCtx, id: &str, meta: Option<&TxnMeta>) -> Result<(), i16> {
    ensure_topic(ctx.admin()).await?;
    let key = serde_json::to_vec(&Key::Txn { id: id.to_owned() }).ok();
    let value = meta.and_then(|m| serde_json::to_vec(m).ok());
    let tp = TopicPartition::new(TXN_TOPIC, txn_partition(id));
    store::append_batch(ctx, tp, &store::batch_of(vec![Record::new(key, value)], None)).await
}

/// The epoch markers of this coordinator carry: the leader epoch of the id's
/// `__transaction_state` partition, which grows with every start of the broker.
fn coordinator_epoch(ctx: &ShardCtx, id: &str) -> i32 {
    let tp = TopicPartition::new(TXN_TOPIC, txn_partition(id));
    ctx.shard.partition(&tp).map_or(0, |p| p.leader_epoch().get())
}

/// Runs `f` holding the id's lock (fair: callers go in arrival order).
async fn locked<T, F: Future<Output = T>>(txns: &SharedTxns, id: &str, f: impl FnOnce() -> F) -> T {
    let lock = txns.borrow_mut().locks.entry(id.to_owned()).or_default().clone();
    let out = {
        let _guard = lock.lock().await;
        f().await
    };
    // The map's handle and ours: nobody else waits.
    if Rc::strong_count(&lock) == 2 {
        txns.borrow_mut().locks.remove(id);
    }
    out
}

/// Waits for the shard's state to be read back; `false` after [`LOAD_WAIT`].
async fn wait_loaded(txns: &SharedTxns) -> bool {
    let waited = std::time::Instant::now();
    while !txns.borrow().loaded {
        if waited.elapsed() >= LOAD_WAIT {
            return false;
        }
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    true
}

fn get(txns: &SharedTxns, id: &str) -> Option<TxnMeta> {
    txns.borrow().txns.get(id).cloned()
}

/// Logs `meta` and makes it the id's state.
async fn commit_state(ctx: &ShardCtx, txns: &SharedTxns, id: &str, meta: TxnMeta) -> Result<(), i16> {
    persist(ctx, id, Some(&meta)).await?;
    txns.borrow_mut().txns.insert(id.to_owned(), meta);
    Ok(())
}

/// Ends the id's ongoing transaction: prepare (logged), markers, completion. Errors only if
/// the prepare could not be logged; markers that could not be written are left to the sweep.
async fn end(ctx: &ShardCtx, txns: &SharedTxns, id: &str, mut meta: TxnMeta, commit: bool) -> Result<(), i16> {
    meta.state = if commit { TxnState::PrepareCommit } else { TxnState::PrepareAbort };
    meta.update_ms = engine::now_ms();
    commit_state(ctx, txns, id, meta.clone()).await?;
    complete(ctx, txns, id, meta).await;
    Ok(())
}

/// Writes the markers of a prepared transaction and logs its completion; `false` if some
/// partition could not take its marker yet (the state stays prepared).
async fn complete(ctx: &ShardCtx, txns: &SharedTxns, id: &str, mut meta: TxnMeta) -> bool {
    let commit = meta.state == TxnState::PrepareCommit;
    let marker = Marker {
        producer_id: meta.producer_id,
        producer_epoch: meta.producer_epoch,
        coordinator_epoch: coordinator_epoch(ctx, id),
        commit,
    };
    let mut left: Vec<(String, i32)> = meta.partitions.iter().cloned().collect();
    for attempt in 0..MARKER_ATTEMPTS {
        if attempt > 0 {
            glommio::timer::sleep(MARKER_RETRY).await;
        }
        let items: Vec<MarkerItem> =
            left.iter().map(|(t, p)| MarkerItem { tp: TopicPartition::new(t, *p), marker }).collect();
        let results = crate::handlers::write_txn_markers::write(&ctx.router, items).await;
        let mut retry = Vec::new();
        for (tp, r) in left.into_iter().zip(results) {
            match r {
                // A deleted partition needs no marker; a newer epoch already wrote past this
                // transaction there (a coordinator of a later start ended it).
                Ok(_) | Err(PartitionError::UnknownPartition(_) | PartitionError::Producer(_)) => {}
                Err(e) => {
                    eprintln!("transaction {id}: marker for {}-{} not written yet: {e}", tp.0, tp.1);
                    retry.push(tp);
                }
            }
        }
        left = retry;
        if left.is_empty() {
            break;
        }
    }
    if !left.is_empty() {
        return false;
    }
    meta.state = if commit { TxnState::CompleteCommit } else { TxnState::CompleteAbort };
    meta.partitions.clear();
    meta.update_ms = engine::now_ms();
    // Completed in memory even if the log write fails: a restart would find the transaction
    // prepared and write its markers again, which changes nothing.
    if let Err(e) = persist(ctx, id, Some(&meta)).await {
        eprintln!("transaction {id}: completion not logged (error {e}); a restart writes its markers again");
    }
    txns.borrow_mut().txns.insert(id.to_owned(), meta);
    true
}

/// Ends whatever the previous instance left open: a prepared transaction is completed, an
/// ongoing one aborted with the epoch bumped past the instance (fencing it).
async fn resolve_open(ctx: &ShardCtx, txns: &SharedTxns, id: &str, mut meta: TxnMeta) -> Result<TxnMeta, i16> {
    match meta.state {
        TxnState::Ongoing => {
            meta.producer_epoch = meta.producer_epoch.saturating_add(1);
            end(ctx, txns, id, meta, false).await?;
        }
        s if s.prepared() => {
            if !complete(ctx, txns, id, meta).await {
                return Err(code::CONCURRENT_TRANSACTIONS);
            }
        }
        _ => return Ok(meta),
    }
    match get(txns, id) {
        Some(m) if !m.state.prepared() => Ok(m),
        _ => Err(code::CONCURRENT_TRANSACTIONS),
    }
}

fn init_error(error: i16) -> InitProducerIdResponse {
    InitProducerIdResponse::default().with_error_code(error).with_producer_id(ProducerId(-1)).with_producer_epoch(-1)
}

/// InitProducerId with a transactional id.
pub async fn init(
    ctx: &ShardCtx,
    txns: &SharedTxns,
    version: i16,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let id = req.transactional_id.as_deref().map(|s| s.to_string()).unwrap_or_default();
    let settings = TxnSettings::from_config(ctx.config());
    if id.is_empty() {
        return init_error(code::INVALID_REQUEST);
    }
    if req.transaction_timeout_ms <= 0 || req.transaction_timeout_ms > settings.timeout_ms_max {
        return init_error(code::INVALID_TRANSACTION_TIMEOUT);
    }
    if let Err(e) = ensure_topic(ctx.admin()).await {
        return init_error(e);
    }
    if !wait_loaded(txns).await {
        return init_error(code::COORDINATOR_LOAD_IN_PROGRESS);
    }
    let result: Result<(i64, i16), i16> = locked(txns, &id, || async {
        let now = engine::now_ms();
        let current = match get(txns, &id) {
            None => None,
            Some(m) => {
                // KIP-360: a producer that names its id and epoch must be the current instance
                // (or retrying the InitProducerId that made it current).
                if req.producer_id.0 >= 0 {
                    let is_current = req.producer_id.0 == m.producer_id;
                    if is_current
                        && req.producer_epoch == m.last_epoch
                        && !m.state.prepared()
                        && m.state != TxnState::Ongoing
                    {
                        return Ok((m.producer_id, m.producer_epoch));
                    }
                    if !is_current || req.producer_epoch != m.producer_epoch {
                        return Err(fenced(version >= 4));
                    }
                }
                Some(resolve_open(ctx, txns, &id, m).await?)
            }
        };
        // Only a bump the producer asked for (KIP-360) may be retried by naming the old epoch:
        // a new instance's InitProducerId must leave the previous instance fenced.
        let bumped_by_producer = req.producer_id.0 >= 0;
        let next = match current {
            Some(m) if m.producer_epoch < i16::MAX - 1 => TxnMeta {
                producer_epoch: m.producer_epoch + 1,
                last_epoch: if bumped_by_producer { m.producer_epoch } else { -1 },
                timeout_ms: req.transaction_timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                update_ms: now,
                ..m
            },
            // New, or its epochs used up: a new producer id.
            _ => {
                let pid = ctx.broker.producer_ids.next().await.ok_or(code::COORDINATOR_LOAD_IN_PROGRESS)?;
                TxnMeta {
                    producer_id: pid,
                    producer_epoch: 0,
                    last_epoch: -1,
                    timeout_ms: req.transaction_timeout_ms,
                    state: TxnState::Empty,
                    partitions: BTreeSet::new(),
                    start_ms: -1,
                    update_ms: now,
                }
            }
        };
        let answer = (next.producer_id, next.producer_epoch);
        commit_state(ctx, txns, &id, next).await?;
        Ok(answer)
    })
    .await;
    match result {
        Ok((pid, epoch)) => {
            InitProducerIdResponse::default().with_producer_id(ProducerId(pid)).with_producer_epoch(epoch)
        }
        Err(e) => init_error(e),
    }
}

/// Checks a request's producer id and epoch against the id's state.
fn check_producer(meta: Option<&TxnMeta>, producer_id: i64, epoch: i16, fenced_supported: bool) -> Result<(), i16> {
    match meta {
        None => Err(code::INVALID_PRODUCER_ID_MAPPING),
        Some(m) if m.producer_id != producer_id => Err(code::INVALID_PRODUCER_ID_MAPPING),
        Some(m) if m.producer_epoch != epoch => Err(fenced(fenced_supported)),
        Some(_) => Ok(()),
    }
}

fn topic_results(
    topics: &[(TopicName, Vec<i32>)],
    code_of: impl Fn(&str, i32) -> i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    topics
        .iter()
        .map(|(name, parts)| {
            let results = parts
                .iter()
                .map(|p| {
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(*p)
                        .with_partition_error_code(code_of(name.as_str(), *p))
                })
                .collect();
            AddPartitionsToTxnTopicResult::default().with_name(name.clone()).with_results_by_partition(results)
        })
        .collect()
}

/// AddPartitionsToTxn for one transaction (and AddOffsetsToTxn, with its group's partition);
/// with `verify_only`, only whether each partition is already in it.
pub async fn add_partitions(
    ctx: &ShardCtx,
    txns: &SharedTxns,
    version: i16,
    txn: AddPartitionsToTxnTransaction,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let topics: Vec<(TopicName, Vec<i32>)> = txn.topics.into_iter().map(|t| (t.name, t.partitions)).collect();
    let all = |e: i16| topic_results(&topics, |_, _| e);
    let id = txn.transactional_id.to_string();
    if !wait_loaded(txns).await {
        return all(code::COORDINATOR_LOAD_IN_PROGRESS);
    }
    let (pid, epoch) = (txn.producer_id.0, txn.producer_epoch);
    if txn.verify_only {
        let meta = get(txns, &id);
        return topic_results(&topics, |t, p| verify_one(meta.as_ref(), pid, epoch, t, p));
    }
    locked(txns, &id, || async {
        let meta = get(txns, &id);
        if let Err(e) = check_producer(meta.as_ref(), pid, epoch, version >= 2) {
            return all(e);
        }
        let Some(mut meta) = meta else { return all(code::INVALID_PRODUCER_ID_MAPPING) };
        if meta.state.prepared() {
            return all(code::CONCURRENT_TRANSACTIONS);
        }
        // AddOffsetsToTxn may come before any lookup of the group created the offsets topic.
        if topics.iter().any(|(t, _)| t.as_str() == crate::coordinator::group::OFFSETS_TOPIC) {
            if let Err(e) = store::ensure_topic(ctx.admin()).await {
                return all(e);
            }
        }
        // Unknown partitions fail the whole request: the others are not attempted.
        let known = |t: &str, p: i32| ctx.view.meta(t).is_some_and(|m| p >= 0 && p < m.partitions);
        if topics.iter().any(|(t, ps)| ps.iter().any(|p| !known(t.as_str(), *p))) {
            return topic_results(&topics, |t, p| {
                if known(t, p) {
                    code::OPERATION_NOT_ATTEMPTED
                } else {
                    code::UNKNOWN_TOPIC_OR_PARTITION
                }
            });
        }
        let now = engine::now_ms();
        let before = meta.partitions.len();
        for (t, ps) in &topics {
            for p in ps {
                meta.partitions.insert((t.to_string(), *p));
            }
        }
        if meta.state == TxnState::Ongoing && meta.partitions.len() == before {
            return all(code::NONE);
        }
        if meta.state != TxnState::Ongoing {
            meta.state = TxnState::Ongoing;
            meta.start_ms = now;
        }
        meta.update_ms = now;
        match commit_state(ctx, txns, &id, meta).await {
            Ok(()) => all(code::NONE),
            Err(e) => all(e),
        }
    })
    .await
}

fn verify_one(meta: Option<&TxnMeta>, pid: i64, epoch: i16, topic: &str, partition: i32) -> i16 {
    match meta {
        None => code::INVALID_PRODUCER_ID_MAPPING,
        Some(m) if m.producer_id != pid => code::INVALID_PRODUCER_ID_MAPPING,
        Some(m) if m.producer_epoch != epoch => code::INVALID_PRODUCER_EPOCH,
        Some(m) if m.state != TxnState::Ongoing => code::INVALID_TXN_STATE,
        Some(m) if !m.partitions.contains(&(topic.to_owned(), partition)) => code::INVALID_TXN_STATE,
        Some(_) => code::NONE,
    }
}

/// Whether each partition is in the producer's ongoing transaction (NONE) or why not.
pub async fn verify(txns: &SharedTxns, id: &str, pid: i64, epoch: i16, tps: &[(String, i32)]) -> Vec<i16> {
    if !wait_loaded(txns).await {
        return vec![code::COORDINATOR_LOAD_IN_PROGRESS; tps.len()];
    }
    let meta = get(txns, id);
    tps.iter().map(|(t, p)| verify_one(meta.as_ref(), pid, epoch, t, *p)).collect()
}

/// EndTxn.
pub async fn end_txn(ctx: &ShardCtx, txns: &SharedTxns, version: i16, req: EndTxnRequest) -> EndTxnResponse {
    let id = req.transactional_id.to_string();
    let answer = |e: i16| EndTxnResponse::default().with_error_code(e);
    if !wait_loaded(txns).await {
        return answer(code::COORDINATOR_LOAD_IN_PROGRESS);
    }
    let commit = req.committed;
    let result: Result<(), i16> = locked(txns, &id, || async {
        let meta = get(txns, &id);
        check_producer(meta.as_ref(), req.producer_id.0, req.producer_epoch, version >= 2)?;
        let Some(meta) = meta else { return Err(code::INVALID_PRODUCER_ID_MAPPING) };
        match meta.state {
            TxnState::Ongoing => end(ctx, txns, &id, meta, commit).await,
            // A retry of the EndTxn that ended it.
            TxnState::CompleteCommit if commit => Ok(()),
            TxnState::CompleteAbort if !commit => Ok(()),
            TxnState::PrepareCommit if commit => {
                complete(ctx, txns, &id, meta).await;
                Ok(())
            }
            TxnState::PrepareAbort if !commit => {
                complete(ctx, txns, &id, meta).await;
                Ok(())
            }
            _ => Err(code::INVALID_TXN_STATE),
        }
    })
    .await;
    answer(result.err().unwrap_or(code::NONE))
}

/// DescribeTransactions for the ids this shard coordinates.
pub fn describe(txns: &SharedTxns, ids: Vec<TransactionalId>) -> Vec<Described> {
    let c = txns.borrow();
    ids.into_iter()
        .map(|id| match c.txns.get(id.as_str()) {
            None => Described::default().with_transactional_id(id).with_error_code(code::TRANSACTIONAL_ID_NOT_FOUND),
            Some(m) => {
                let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
                for (t, p) in &m.partitions {
                    topics.entry(t).or_default().push(*p);
                }
                let topics = topics
                    .into_iter()
                    .map(|(t, ps)| TopicData::default().with_topic(TopicName(s(t))).with_partitions(ps))
                    .collect();
                Described::default()
                    .with_transactional_id(id)
                    .with_transaction_state(s(m.state.name()))
                    .with_transaction_timeout_ms(m.timeout_ms)
                    .with_transaction_start_time_ms(if m.state == TxnState::Empty { -1 } else { m.start_ms })
                    .with_producer_id(ProducerId(m.producer_id))
                    .with_producer_epoch(m.producer_epoch)
                    .with_topics(topics)
            }
        })
        .collect()
}

/// The state filters of a ListTransactions request Kafka does not know.
pub fn unknown_state_filters(req: &ListTransactionsRequest) -> Vec<StrBytes> {
    req.state_filters.iter().filter(|f| !KNOWN_STATE_NAMES.contains(&f.as_str())).cloned().collect()
}

/// ListTransactions over the ids this shard coordinates.
pub fn list(txns: &SharedTxns, req: &ListTransactionsRequest) -> Vec<Listed> {
    let now = engine::now_ms();
    let c = txns.borrow();
    let mut out: Vec<Listed> = c
        .txns
        .iter()
        .filter(|(_, m)| req.state_filters.is_empty() || req.state_filters.iter().any(|f| f.as_str() == m.state.name()))
        .filter(|(_, m)| {
            req.producer_id_filters.is_empty() || req.producer_id_filters.contains(&ProducerId(m.producer_id))
        })
        // KIP-994: only transactions running longer than the duration.
        .filter(|(_, m)| req.duration_filter < 0 || (m.start_ms >= 0 && now - m.start_ms >= req.duration_filter))
        .map(|(id, m)| {
            Listed::default()
                .with_transactional_id(TransactionalId(s(id)))
                .with_producer_id(ProducerId(m.producer_id))
                .with_transaction_state(s(m.state.name()))
        })
        .collect();
    out.sort_by(|a, b| a.transactional_id.as_str().cmp(b.transactional_id.as_str()));
    out
}

/// Aborts transactions past their timeout (fencing their producer), retries markers of
/// prepared ones, and forgets ids idle past `transactional.id.expiration.ms`.
pub async fn sweep(ctx: &ShardCtx, txns: &SharedTxns) {
    if !txns.borrow().loaded {
        return;
    }
    let settings = TxnSettings::from_config(ctx.config());
    let now = engine::now_ms();
    let timed_out = |m: &TxnMeta| m.state == TxnState::Ongoing && now - m.start_ms > i64::from(m.timeout_ms);
    let idle = |m: &TxnMeta| {
        matches!(m.state, TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort)
            && now - m.update_ms > settings.id_expiration_ms
    };
    let due: Vec<String> = txns
        .borrow()
        .txns
        .iter()
        .filter(|(_, m)| timed_out(m) || m.state.prepared() || idle(m))
        .map(|(id, _)| id.clone())
        .collect();
    for id in due {
        locked(txns, &id, || async {
            let Some(mut meta) = get(txns, &id) else { return };
            if timed_out(&meta) {
                eprintln!(
                    "transaction {id} (producer {} epoch {}) ran past its timeout of {} ms: aborting it",
                    meta.producer_id, meta.producer_epoch, meta.timeout_ms
                );
                meta.producer_epoch = meta.producer_epoch.saturating_add(1);
                meta.last_epoch = -1;
                if let Err(e) = end(ctx, txns, &id, meta, false).await {
                    eprintln!("transaction {id}: abort not logged (error {e}); retried at the next sweep");
                }
            } else if meta.state.prepared() {
                complete(ctx, txns, &id, meta).await;
            } else if idle(&meta) && persist(ctx, &id, None).await.is_ok() {
                txns.borrow_mut().txns.remove(&id);
            }
        })
        .await;
    }
}

/// Rebuilds this shard's transactional ids from the `__transaction_state` partitions it owns
/// (the latest record per id wins), marks the coordinator loaded, and completes the
/// transactions found prepared.
pub async fn load(ctx: &ShardCtx, txns: &SharedTxns) {
    if ctx.broker.topics.get(TXN_TOPIC).is_some() {
        for p in 0..TXN_TOPIC_PARTITIONS {
            let tp = TopicPartition::new(TXN_TOPIC, p);
            if ctx.router.owner(&tp) != ctx.shard.id() {
                continue;
            }
            let result = store::scan(ctx, tp.clone(), |batch| {
                if batch.is_control() {
                    return;
                }
                let Ok(records) = engine::records::decode_records(batch) else { return };
                let mut c = txns.borrow_mut();
                for r in records {
                    let Some(Ok(Key::Txn { id })) = r.key.as_deref().map(serde_json::from_slice::<Key>) else {
                        continue;
                    };
                    match r.value.as_deref().map(serde_json::from_slice::<TxnMeta>) {
                        Some(Ok(meta)) => {
                            c.txns.insert(id, meta);
                        }
                        None => {
                            c.txns.remove(&id);
                        }
                        Some(Err(_)) => {}
                    }
                }
            })
            .await;
            if let Err(e) = result {
                eprintln!("loading {}: {e}", tp.dir_name());
            }
        }
    }
    txns.borrow_mut().loaded = true;
    sweep(ctx, txns).await;
}

/// Serves one call on the coordinator shard.
pub async fn serve(ctx: &ShardCtx, txns: &SharedTxns, call: TxnCall) {
    match call {
        TxnCall::Init { version, req, reply } => {
            let _ = reply.send(init(ctx, txns, version, req).await);
        }
        TxnCall::Add { version, txn, reply } => {
            let _ = reply.send(add_partitions(ctx, txns, version, txn).await);
        }
        TxnCall::End { version, req, reply } => {
            let _ = reply.send(end_txn(ctx, txns, version, req).await);
        }
        // Answered from the state read back at start-up: until it is, a live transaction
        // would look unknown, so the admin client is told to retry instead.
        TxnCall::Describe { ids, reply } if !wait_loaded(txns).await => {
            let e = code::COORDINATOR_LOAD_IN_PROGRESS;
            let _ = reply.send(
                ids.into_iter().map(|id| Described::default().with_transactional_id(id).with_error_code(e)).collect(),
            );
        }
        TxnCall::Describe { ids, reply } => {
            let _ = reply.send(describe(txns, ids));
        }
        TxnCall::List { reply, .. } if !wait_loaded(txns).await => {
            let _ = reply.send(Err(code::COORDINATOR_LOAD_IN_PROGRESS));
        }
        TxnCall::List { req, reply } => {
            let _ = reply.send(Ok(list(txns, &req)));
        }
        TxnCall::Verify { id, producer_id, producer_epoch, tps, reply } => {
            let _ = reply.send(verify(txns, &id, producer_id, producer_epoch, &tps).await);
        }
    }
}

/// Answers a call the shard's door cannot admit now with a retriable error.
pub fn refuse(call: TxnCall) {
    let e = code::COORDINATOR_LOAD_IN_PROGRESS;
    match call {
        TxnCall::Init { reply, .. } => {
            let _ = reply.send(init_error(e));
        }
        TxnCall::Add { txn, reply, .. } => {
            let topics: Vec<_> = txn.topics.into_iter().map(|t| (t.name, t.partitions)).collect();
            let _ = reply.send(topic_results(&topics, |_, _| e));
        }
        TxnCall::End { reply, .. } => {
            let _ = reply.send(EndTxnResponse::default().with_error_code(e));
        }
        TxnCall::Describe { ids, reply } => {
            let _ = reply.send(
                ids.into_iter().map(|id| Described::default().with_transactional_id(id).with_error_code(e)).collect(),
            );
        }
        TxnCall::List { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        TxnCall::Verify { tps, reply, .. } => {
            let _ = reply.send(vec![e; tps.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_is_kafkas() {
        // Kafka: Utils.abs("my-txn".hashCode()) % 50.
        let h = crate::coordinator::group::java_string_hash("my-txn");
        assert_eq!(txn_partition("my-txn"), h.abs() % 50);
        assert!((0..TXN_TOPIC_PARTITIONS).contains(&txn_partition("")));
    }

    #[test]
    fn meta_round_trips_as_json() {
        let m = TxnMeta {
            producer_id: 7,
            producer_epoch: 3,
            last_epoch: 2,
            timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions: BTreeSet::from([("t".to_owned(), 1), ("__consumer_offsets".to_owned(), 4)]),
            start_ms: 10,
            update_ms: 11,
        };
        let bytes = serde_json::to_vec(&m).expect("encode");
        assert_eq!(serde_json::from_slice::<TxnMeta>(&bytes).expect("decode"), m);
    }

    #[test]
    fn verification_needs_the_partition_in_the_ongoing_transaction() {
        let mut m = TxnMeta {
            producer_id: 7,
            producer_epoch: 3,
            last_epoch: -1,
            timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions: BTreeSet::from([("t".to_owned(), 1)]),
            start_ms: 10,
            update_ms: 11,
        };
        assert_eq!(verify_one(Some(&m), 7, 3, "t", 1), code::NONE);
        assert_eq!(verify_one(Some(&m), 7, 3, "t", 2), code::INVALID_TXN_STATE);
        assert_eq!(verify_one(Some(&m), 7, 2, "t", 1), code::INVALID_PRODUCER_EPOCH);
        assert_eq!(verify_one(Some(&m), 8, 3, "t", 1), code::INVALID_PRODUCER_ID_MAPPING);
        assert_eq!(verify_one(None, 7, 3, "t", 1), code::INVALID_PRODUCER_ID_MAPPING);
        m.state = TxnState::CompleteCommit;
        assert_eq!(verify_one(Some(&m), 7, 3, "t", 1), code::INVALID_TXN_STATE);
    }
}
