//! Shards: one executor per core, pinned; each owns a registry of partition logs; other cores
//! reach them only through typed, bounded request/reply messages.
//!
//! - [`Shard`] lives on its own core for the life of the process (`!Send`: it holds `Rc`s).
//! - [`ShardRequest`] crosses cores. It carries a batch of work for one owner (all the partitions
//!   of a Produce or Fetch request that this shard owns), because a cross-core wake-up costs
//!   ~16 µs here: one message per request per owner, never one per record.
//! - [`ShardSet`] starts the executors (glommio) and hands out a `Send + Sync` [`ShardHandle`].
//!
//! The shard logic is generic over [`Storage`] and takes a spawner, so it runs the same under
//! glommio and under a test executor with the in-memory store.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use thiserror::Error;

use crate::batch::ValidatedBatches;
use crate::budget::MemoryBudget;
use crate::commit::{CommitWait, Committer};
use crate::io::Storage;
use crate::log::{AppendInfo, Durability, LogConfig, LogError, PartitionLog, ReadResult};

/// Messages a shard's inbox holds before senders wait (backpressure across cores).
pub const SHARD_QUEUE_DEPTH: usize = 1024;
/// Partitions of one request a shard appends to or reads from at the same time. A request may
/// name tens of thousands; each in-flight one can hold I/O (a roll, a disk read), and one task
/// must never wait on an unbounded number of I/O operations (see [`crate::sync::join_windowed`]).
pub const REQUEST_PARTITIONS_IN_FLIGHT_MAX: usize = 32;

/// A topic partition, cheap to clone and `Send`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: Arc<str>,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: &str, partition: i32) -> Self {
        Self { topic: Arc::from(topic), partition }
    }
    /// Directory name, as Kafka spells it: `topic-partition`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }
    /// Parses a directory name; the partition is after the last `-` (topics may contain `-`).
    pub fn from_dir_name(name: &str) -> Option<Self> {
        let (topic, p) = name.rsplit_once('-')?;
        let partition: i32 = p.parse().ok()?;
        if topic.is_empty() || partition < 0 {
            return None;
        }
        Some(Self::new(topic, partition))
    }
}

/// Which shard owns a partition: consecutive partitions of a topic land on consecutive shards,
/// starting from a hash of the topic, so one topic spreads over every core.
pub fn shard_for(tp: &TopicPartition, shard_count: usize) -> usize {
    assert!(shard_count > 0);
    // FNV-1a: stable across runs and platforms (placement must not change on restart).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in tp.topic.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    ((h % shard_count as u64) as usize + tp.partition as usize) % shard_count
}

#[derive(Debug, Error)]
pub enum PartitionError {
    #[error("unknown partition {0:?}")]
    UnknownPartition(TopicPartition),
    #[error("partition {0:?} already exists")]
    AlreadyExists(TopicPartition),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("shard {0} is gone")]
    ShardGone(usize),
}

/// A reply channel: one value back to the asking core.
pub type Reply<T> = flume::Sender<T>;

pub struct AppendItem {
    pub tp: TopicPartition,
    pub batches: ValidatedBatches,
    pub leader_epoch: i32,
    /// Also wait for the data to be synced (acks=all on a log with `Durability::Always`).
    /// Without it the reply still waits until the data is written to the device (acks=0/1).
    pub durable: bool,
}

pub struct ReadItem {
    pub tp: TopicPartition,
    pub offset: i64,
    pub bytes_max: usize,
    /// Read up to this offset (exclusive); `None` for the high watermark.
    pub end_offset: Option<i64>,
}

/// Offsets of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub log_end_offset: i64,
}

/// Work one core asks of the core that owns the partitions named in it.
pub enum ShardRequest {
    CreatePartition {
        tp: TopicPartition,
        config: LogConfig,
        reply: Reply<Result<(), PartitionError>>,
    },
    DeletePartition {
        tp: TopicPartition,
        reply: Reply<Result<(), PartitionError>>,
    },
    Append {
        items: Vec<AppendItem>,
        reply: Reply<Vec<Result<AppendInfo, PartitionError>>>,
    },
    Read {
        items: Vec<ReadItem>,
        reply: Reply<Vec<Result<ReadResult, PartitionError>>>,
    },
    Offsets {
        tps: Vec<TopicPartition>,
        reply: Reply<Vec<Result<PartitionOffsets, PartitionError>>>,
    },
    /// First record with timestamp >= the given one: `(offset, timestamp)`.
    OffsetForTimestamp {
        tp: TopicPartition,
        timestamp: i64,
        reply: Reply<Result<Option<(i64, i64)>, PartitionError>>,
    },
    DeleteBefore {
        tp: TopicPartition,
        offset: i64,
        reply: Reply<Result<i64, PartitionError>>,
    },
    TruncateTo {
        tp: TopicPartition,
        offset: i64,
        reply: Reply<Result<(), PartitionError>>,
    },
    /// Partitions this shard owns.
    List {
        reply: Reply<Vec<TopicPartition>>,
    },
    /// Close every log cleanly and stop the shard.
    Shutdown {
        reply: Reply<()>,
    },
}

pub type Spawner = Rc<dyn Fn(Pin<Box<dyn Future<Output = ()>>>)>;

/// The log settings of a partition found on disk at start-up (per-topic `segment.bytes`,
/// `segment.ms`, ...), from whoever keeps topic configs; `None` means the shard default.
#[derive(Clone)]
pub struct LogConfigFor(pub Arc<LogConfigFn>);

/// See [`LogConfigFor`].
pub type LogConfigFn = dyn Fn(&TopicPartition) -> Option<LogConfig> + Send + Sync;

impl std::fmt::Debug for LogConfigFor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogConfigFor(..)")
    }
}

/// The state one core owns.
///
/// Lives on: its own core, for the life of the process.
pub struct Shard<S: Storage> {
    pub id: usize,
    pub shard_count: usize,
    storage: S,
    data_dir: PathBuf,
    default_config: LogConfig,
    config_for: Option<LogConfigFor>,
    logs: RefCell<HashMap<TopicPartition, Rc<PartitionLog<S>>>>,
    clock: fn() -> i64,
    budget: Rc<MemoryBudget>,
    committer: Rc<Committer<S>>,
    /// Where the next budget trim pass starts, so every log gives its share in turn.
    trim_from: Cell<usize>,
    /// Open logs with `Durability::IntervalMs` (the tick's only sync work).
    interval_logs: Cell<usize>,
}

fn is_interval<S: Storage>(log: &PartitionLog<S>) -> bool {
    matches!(log.config().durability, Durability::IntervalMs(_))
}

impl<S: Storage> Shard<S> {
    /// A shard whose logs share `budget`. Spawns its committer task with `spawner`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: usize,
        shard_count: usize,
        storage: S,
        data_dir: &Path,
        default_config: LogConfig,
        spawner: Spawner,
        clock: fn() -> i64,
        budget: Rc<MemoryBudget>,
    ) -> Rc<Self> {
        let committer = Committer::new(clock);
        spawner(Box::pin(committer.clone().run()));
        Rc::new(Self {
            id,
            shard_count,
            storage,
            data_dir: data_dir.to_path_buf(),
            default_config,
            config_for: None,
            logs: RefCell::new(HashMap::new()),
            clock,
            budget,
            committer,
            trim_from: Cell::new(0),
            interval_logs: Cell::new(0),
        })
    }

    /// Opens (recovering) every partition under the data directory that this shard owns.
    pub async fn load(self: &Rc<Self>) -> Result<usize, LogError> {
        self.storage.create_dir_all(&self.data_dir).await?;
        let mut names = self.storage.list(&self.data_dir).await?;
        names.sort();
        let mut n = 0;
        for name in names {
            let Some(tp) = TopicPartition::from_dir_name(&name) else { continue };
            if shard_for(&tp, self.shard_count) != self.id {
                continue;
            }
            let config =
                self.config_for.as_ref().and_then(|f| (f.0)(&tp)).unwrap_or_else(|| self.default_config.clone());
            self.open_log(tp, config).await?;
            n += 1;
        }
        Ok(n)
    }

    async fn open_log(self: &Rc<Self>, tp: TopicPartition, config: LogConfig) -> Result<Rc<PartitionLog<S>>, LogError> {
        let dir = self.data_dir.join(tp.dir_name());
        let (log, _report) =
            PartitionLog::open_with_budget(self.storage.clone(), &dir, config, (self.clock)(), self.budget.clone())
                .await?;
        // No write-behind task per log: the shard's committer writes every log's appends.
        if is_interval(&log) {
            self.interval_logs.set(self.interval_logs.get() + 1);
        }
        self.logs.borrow_mut().insert(tp, log.clone());
        Ok(log)
    }

    /// Where per-partition settings come from at start-up (see [`LogConfigFor`]).
    pub fn with_config_for(self: Rc<Self>, config_for: Option<LogConfigFor>) -> Rc<Self> {
        match Rc::try_unwrap(self) {
            Ok(mut shard) => {
                shard.config_for = config_for;
                Rc::new(shard)
            }
            Err(rc) => rc,
        }
    }

    pub fn log(&self, tp: &TopicPartition) -> Option<Rc<PartitionLog<S>>> {
        self.logs.borrow().get(tp).cloned()
    }

    pub fn partitions(&self) -> Vec<TopicPartition> {
        let mut v: Vec<_> = self.logs.borrow().keys().cloned().collect();
        v.sort();
        v
    }

    fn get(&self, tp: &TopicPartition) -> Result<Rc<PartitionLog<S>>, PartitionError> {
        self.log(tp).ok_or_else(|| PartitionError::UnknownPartition(tp.clone()))
    }

    /// Appends to the partitions of one request and returns once each append is written to the
    /// device (and synced where `durable` asks it of a `Durability::Always` log). The
    /// partitions progress together, at most [`REQUEST_PARTITIONS_IN_FLIGHT_MAX`] at a time,
    /// and all wait on one group write/commit of the shard.
    pub async fn append(&self, items: Vec<AppendItem>) -> Vec<Result<AppendInfo, PartitionError>> {
        let now = (self.clock)();
        let futs: Vec<_> = items
            .into_iter()
            .map(|item| {
                let log = self.get(&item.tp);
                async move {
                    let log = log?;
                    let info = log.append_buffered(item.batches, item.leader_epoch, now).await?;
                    let sync = item.durable && log.config().durability == Durability::Always;
                    // Asked at once, not after the whole request: the shard's write buffers
                    // drain only through the committer, and later items may wait for room.
                    self.committer.request(&log, info.last_offset + 1, sync);
                    Ok::<_, PartitionError>((info, CommitWait { log, offset: info.last_offset + 1, sync }))
                }
            })
            .collect();
        let mut results = Vec::with_capacity(futs.len());
        let mut waits = Vec::with_capacity(futs.len());
        for r in crate::sync::join_windowed(futs, REQUEST_PARTITIONS_IN_FLIGHT_MAX).await {
            results.push(r.map(|(info, wait)| {
                waits.push(wait);
                info
            }));
        }
        // One outcome per appended item, in order: a failed write or sync replaces its info.
        let mut committed = self.committer.wait(&waits).await.into_iter();
        for r in results.iter_mut().filter(|r| r.is_ok()) {
            if let Some(Err(e)) = committed.next() {
                *r = Err(e.into());
            }
        }
        results
    }

    /// Periodic work: interval syncs, and trimming tail caches when the budget is exceeded.
    /// The runtime calls it every few milliseconds.
    pub async fn tick(&self) {
        if self.budget.needs_trim() {
            self.trim_caches();
        }
        // Production logs sync per acks=all request; only interval-durability logs need the
        // tick, and with none of them a tick must not walk 10,000 logs every few ms.
        if self.interval_logs.get() == 0 {
            return;
        }
        let logs: Vec<_> = self.logs.borrow().values().filter(|l| is_interval(l)).cloned().collect();
        let now = (self.clock)();
        for log in logs {
            // A failed sync poisons the log, which reports it to its next caller.
            let _ = log.tick(now).await;
        }
    }

    /// Evicts cached batches from the logs in turn until the shard is within its budget.
    fn trim_caches(&self) {
        let logs: Vec<_> = self.logs.borrow().values().cloned().collect();
        if logs.is_empty() {
            self.budget.trimmed();
            return;
        }
        let start = self.trim_from.get() % logs.len();
        for i in 0..logs.len() {
            if !self.budget.over() {
                break;
            }
            logs[(start + i) % logs.len()].trim_cache();
        }
        self.trim_from.set(start + 1);
        // Still over: what remains is not yet written; the committer's progress frees it.
        self.budget.trimmed();
    }

    /// Handles one request. Returns `false` once the shard was told to shut down.
    pub async fn handle(self: &Rc<Self>, req: ShardRequest) -> bool {
        let now = (self.clock)();
        match req {
            ShardRequest::CreatePartition { tp, config, reply } => {
                let r = if self.log(&tp).is_some() {
                    Err(PartitionError::AlreadyExists(tp))
                } else {
                    self.open_log(tp, config).await.map(|_| ()).map_err(Into::into)
                };
                let _ = reply.send(r);
            }
            ShardRequest::DeletePartition { tp, reply } => {
                let log = self.logs.borrow_mut().remove(&tp);
                if log.as_deref().is_some_and(is_interval) {
                    self.interval_logs.set(self.interval_logs.get() - 1);
                }
                let r = match log {
                    None => Err(PartitionError::UnknownPartition(tp)),
                    Some(log) => log.delete().await.map_err(Into::into),
                };
                let _ = reply.send(r);
            }
            ShardRequest::Append { items, reply } => {
                let _ = reply.send(self.append(items).await);
            }
            ShardRequest::Read { items, reply } => {
                let futs: Vec<_> = items
                    .into_iter()
                    .map(|item| {
                        let log = self.get(&item.tp);
                        async move { Ok(log?.read(item.offset, item.bytes_max, item.end_offset).await?) }
                    })
                    .collect();
                let _ = reply.send(crate::sync::join_windowed(futs, REQUEST_PARTITIONS_IN_FLIGHT_MAX).await);
            }
            ShardRequest::Offsets { tps, reply } => {
                let out = tps
                    .iter()
                    .map(|tp| {
                        self.get(tp).map(|l| PartitionOffsets {
                            log_start_offset: l.log_start_offset(),
                            high_watermark: l.high_watermark(),
                            log_end_offset: l.log_end_offset(),
                        })
                    })
                    .collect();
                let _ = reply.send(out);
            }
            ShardRequest::OffsetForTimestamp { tp, timestamp, reply } => {
                let r = match self.get(&tp) {
                    Ok(l) => l.offset_for_timestamp(timestamp).await.map_err(Into::into),
                    Err(e) => Err(e),
                };
                let _ = reply.send(r);
            }
            ShardRequest::DeleteBefore { tp, offset, reply } => {
                let r = match self.get(&tp) {
                    Ok(l) => l.delete_before(offset, now).await.map_err(Into::into),
                    Err(e) => Err(e),
                };
                let _ = reply.send(r);
            }
            ShardRequest::TruncateTo { tp, offset, reply } => {
                let r = match self.get(&tp) {
                    Ok(l) => l.truncate_to(offset, now).await.map_err(Into::into),
                    Err(e) => Err(e),
                };
                let _ = reply.send(r);
            }
            ShardRequest::List { reply } => {
                let _ = reply.send(self.partitions());
            }
            ShardRequest::Shutdown { reply } => {
                let logs: Vec<_> = self.logs.borrow_mut().drain().map(|(_, l)| l).collect();
                for log in logs {
                    let _ = log.close().await;
                }
                let _ = reply.send(());
                return false;
            }
        }
        true
    }
}

/// Send + Sync access to every shard's inbox.
#[derive(Clone)]
pub struct ShardHandle {
    inboxes: Arc<Vec<flume::Sender<ShardRequest>>>,
}

impl ShardHandle {
    pub fn shard_count(&self) -> usize {
        self.inboxes.len()
    }
    pub fn owner(&self, tp: &TopicPartition) -> usize {
        shard_for(tp, self.inboxes.len())
    }

    /// Sends a request built around a fresh reply channel and waits for the answer.
    pub async fn call<T>(
        &self,
        shard: usize,
        make: impl FnOnce(Reply<T>) -> ShardRequest,
    ) -> Result<T, PartitionError> {
        let (tx, rx) = flume::bounded(1);
        let inbox = self.inboxes.get(shard).ok_or(PartitionError::ShardGone(shard))?;
        inbox.send_async(make(tx)).await.map_err(|_| PartitionError::ShardGone(shard))?;
        rx.recv_async().await.map_err(|_| PartitionError::ShardGone(shard))
    }

    /// Blocking variant for threads outside any executor (start-up, tests, tools).
    pub fn call_blocking<T>(
        &self,
        shard: usize,
        make: impl FnOnce(Reply<T>) -> ShardRequest,
    ) -> Result<T, PartitionError> {
        futures_lite::future::block_on(self.call(shard, make))
    }
}

/// Settings for starting the shards.
#[derive(Debug, Clone)]
pub struct ShardSetConfig {
    pub shard_count: usize,
    pub data_dir: PathBuf,
    pub log: LogConfig,
    /// Pin shard `i` to CPU `i` (off in tests that start many sets at once).
    pub pin: bool,
    /// glommio's I/O memory per shard (the pool aligned buffers come from), sized at start-up.
    pub io_memory_bytes: usize,
    pub tick_ms: u64,
    /// Per-partition log settings for partitions recovered at start-up.
    pub log_config_for: Option<LogConfigFor>,
    /// Each shard's memory budget for its logs' write buffers and tail caches.
    pub memory_bytes_per_shard: usize,
}

impl ShardSetConfig {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            shard_count: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            data_dir: data_dir.to_path_buf(),
            log: LogConfig::default(),
            pin: true,
            io_memory_bytes: 64 << 20,
            tick_ms: 5,
            log_config_for: None,
            memory_bytes_per_shard: crate::budget::default_shard_memory_bytes(
                std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            ),
        }
    }
}

/// Running shards: one glommio executor thread each.
pub struct ShardSet {
    handle: ShardHandle,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// Extra per-shard service a higher layer (the broker) runs on every shard's executor, given the
/// shard and the handle to all shards.
pub type ShardService =
    Arc<dyn Fn(Rc<Shard<crate::io::dma::DmaStorage>>, ShardHandle) -> Pin<Box<dyn Future<Output = ()>>> + Send + Sync>;

impl ShardSet {
    /// Starts the shards, each recovering the partitions it owns before it serves.
    pub fn start(config: ShardSetConfig, service: Option<ShardService>) -> std::io::Result<Self> {
        use glommio::{LocalExecutorBuilder, Placement};
        let n = config.shard_count.max(1);
        let mut senders = Vec::with_capacity(n);
        let mut receivers = Vec::with_capacity(n);
        for _ in 0..n {
            let (tx, rx) = flume::bounded(SHARD_QUEUE_DEPTH);
            senders.push(tx);
            receivers.push(rx);
        }
        let handle = ShardHandle { inboxes: Arc::new(senders) };
        let (ready_tx, ready_rx) = flume::bounded::<Result<usize, String>>(n);
        let mut threads = Vec::with_capacity(n);
        for (id, rx) in receivers.into_iter().enumerate() {
            let placement = if config.pin { Placement::Fixed(id % num_cpus()) } else { Placement::Unbound };
            let cfg = config.clone();
            let handle2 = handle.clone();
            let ready = ready_tx.clone();
            let service = service.clone();
            let builder =
                LocalExecutorBuilder::new(placement).name(&format!("shard-{id}")).io_memory(cfg.io_memory_bytes);
            let t = builder
                .spawn(move || async move {
                    let storage = crate::io::dma::DmaStorage;
                    if let Err(e) = crate::io::dma::DmaStorage::guard_iopoll_probe(&cfg.data_dir).await {
                        let _ = ready.send(Err(format!("shard {id}: {e}")));
                        return;
                    }
                    let spawner: Spawner = Rc::new(|f| {
                        glommio::spawn_local(f).detach();
                    });
                    let budget = MemoryBudget::new(cfg.memory_bytes_per_shard);
                    let shard =
                        Shard::new(id, n, storage, &cfg.data_dir, cfg.log.clone(), spawner, crate::now_ms, budget)
                            .with_config_for(cfg.log_config_for.clone());
                    match shard.load().await {
                        Ok(count) => {
                            let _ = ready.send(Ok(count));
                        }
                        Err(e) => {
                            let _ = ready.send(Err(format!("shard {id} recovering its partitions: {e}")));
                            return;
                        }
                    }
                    let ticker = {
                        let shard = shard.clone();
                        let tick = std::time::Duration::from_millis(cfg.tick_ms.max(1));
                        glommio::spawn_local(async move {
                            loop {
                                glommio::timer::sleep(tick).await;
                                shard.tick().await;
                            }
                        })
                    };
                    if let Some(service) = service {
                        glommio::spawn_local(service(shard.clone(), handle2.clone())).detach();
                    }
                    while let Ok(req) = rx.recv_async().await {
                        let stop = matches!(req, ShardRequest::Shutdown { .. });
                        if stop {
                            shard.handle(req).await;
                            break;
                        }
                        let shard = shard.clone();
                        glommio::spawn_local(async move {
                            shard.handle(req).await;
                        })
                        .detach();
                    }
                    drop(ticker);
                })
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            threads.push(t);
        }
        drop(ready_tx);
        for _ in 0..n {
            match ready_rx.recv() {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(std::io::Error::other(e)),
                Err(_) => return Err(std::io::Error::other("a shard died while starting")),
            }
        }
        // A shard that panics has broken an invariant of its own; the others cannot carry its
        // partitions, so the process stops with the reason instead of hanging its callers.
        let threads = threads
            .into_iter()
            .enumerate()
            .map(|(id, t)| {
                std::thread::spawn(move || {
                    if let Err(e) = t.join() {
                        eprintln!("fatal: shard {id} stopped abnormally: {e:?}");
                        std::process::abort();
                    }
                })
            })
            .collect();
        Ok(Self { handle, threads })
    }

    pub fn handle(&self) -> ShardHandle {
        self.handle.clone()
    }

    /// Closes every log cleanly (syncs, writes indexes) and joins the shard threads.
    pub fn shutdown(self) {
        for i in 0..self.handle.shard_count() {
            let _ = self.handle.call_blocking(i, |reply| ShardRequest::Shutdown { reply });
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_names_round_trip_with_dashes_in_topics() {
        let tp = TopicPartition::new("my-topic-x", 12);
        assert_eq!(tp.dir_name(), "my-topic-x-12");
        assert_eq!(TopicPartition::from_dir_name("my-topic-x-12"), Some(tp));
        assert_eq!(TopicPartition::from_dir_name("nodash"), None);
        assert_eq!(TopicPartition::from_dir_name("-3"), None);
        assert_eq!(TopicPartition::from_dir_name("t--1"), Some(TopicPartition::new("t-", 1)));
        assert_eq!(TopicPartition::from_dir_name("t-x"), None);
    }

    #[test]
    fn placement_is_stable_and_spreads_a_topic() {
        let owners: Vec<usize> = (0..8).map(|p| shard_for(&TopicPartition::new("events", p), 4)).collect();
        for s in 0..4 {
            assert_eq!(owners.iter().filter(|&&o| o == s).count(), 2, "{owners:?}");
        }
        assert_eq!(shard_for(&TopicPartition::new("events", 0), 4), owners[0]);
    }
}
