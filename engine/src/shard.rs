//! Shards: one executor per core, pinned; each owns the storage of the partition logs placed
//! on it: opening and recovering them, their group commit and their memory budget.
//!
//! - [`Shard`] lives on its own core for the life of the process (`!Send`: it holds `Rc`s). It
//!   is storage only: who may call it, and what a partition is beyond its log (role, epochs,
//!   watermarks, producer state), is the partition layer's (`replication`), which also owns
//!   each shard's one door (its typed request enum and pump).
//! - [`ShardSet`] starts the executors (glommio), recovers each shard's logs, and runs the
//!   higher layer's main future on every shard until it returns.
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

use crate::budget::MemoryBudget;
use crate::commit::Committer;
use crate::io::Storage;
use crate::log::{LogConfig, LogError, PartitionLog};

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

/// Which shard owns a partition, as the placement table says (see `replication::Placement`);
/// the shard recovers only the logs it owns.
pub type PlacementFn = Arc<dyn Fn(&TopicPartition, usize) -> usize + Send + Sync>;

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
    /// Open logs whose policy has a sync interval (the tick's only sync work).
    interval_logs: Cell<usize>,
}

fn is_interval<S: Storage>(log: &PartitionLog<S>) -> bool {
    log.config().durability.interval_ms().is_some()
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

    /// Opens (recovering) every partition under the data directory that `owner` places on this
    /// shard; returns them in name order.
    pub async fn load(self: &Rc<Self>, owner: &PlacementFn) -> Result<Vec<TopicPartition>, LogError> {
        self.storage.create_dir_all(&self.data_dir).await?;
        let mut names = self.storage.list(&self.data_dir).await?;
        names.sort();
        let mut loaded = Vec::new();
        for name in names {
            let Some(tp) = TopicPartition::from_dir_name(&name) else { continue };
            if owner(&tp, self.shard_count) != self.id {
                continue;
            }
            let config = self.config_for.as_ref().and_then(|f| (f.0)(&tp)).unwrap_or_else(|| self.default_config);
            self.open_log(tp.clone(), config).await?;
            loaded.push(tp);
        }
        Ok(loaded)
    }

    /// Creates (or, if its directory exists, recovers) the log of a partition new to this
    /// shard. `Ok(None)`: the shard already has it.
    pub async fn create_log(
        self: &Rc<Self>,
        tp: TopicPartition,
        config: LogConfig,
    ) -> Result<Option<Rc<PartitionLog<S>>>, LogError> {
        if self.log(&tp).is_some() {
            return Ok(None);
        }
        self.open_log(tp, config).await.map(Some)
    }

    /// Takes a log out of the registry (the caller deletes or closes it).
    pub fn remove_log(&self, tp: &TopicPartition) -> Option<Rc<PartitionLog<S>>> {
        let log = self.logs.borrow_mut().remove(tp);
        if log.as_deref().is_some_and(is_interval) {
            self.interval_logs.set(self.interval_logs.get() - 1);
        }
        log
    }

    /// Applies a topic's new settings to an open log (see [`PartitionLog::apply_topic_config`]),
    /// keeping the count of interval-durability logs the tick walks. `false`: no such log.
    pub fn apply_topic_config(&self, tp: &TopicPartition, topic: &LogConfig) -> bool {
        let Some(log) = self.log(tp) else { return false };
        let was = is_interval(&log);
        log.apply_topic_config(topic);
        match (was, is_interval(&log)) {
            (false, true) => self.interval_logs.set(self.interval_logs.get() + 1),
            (true, false) => self.interval_logs.set(self.interval_logs.get() - 1),
            _ => {}
        }
        true
    }

    /// Closes every log cleanly (writes, syncs, indexes) and empties the registry.
    pub async fn close_all(&self) {
        let logs: Vec<_> = self.logs.borrow_mut().drain().map(|(_, l)| l).collect();
        self.interval_logs.set(0);
        for log in logs {
            // A failed close poisons the log; recovery at the next start handles the rest.
            let _ = log.close().await;
        }
    }

    /// The shard's group write and group commit, shared by all its logs.
    pub fn committer(&self) -> &Rc<Committer<S>> {
        &self.committer
    }

    /// The shard's clock (milliseconds since the Unix epoch).
    pub fn now_ms(&self) -> i64 {
        (self.clock)()
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
}

/// Settings for starting the shards.
#[derive(Clone)]
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
    /// Which shard recovers which partition found on disk.
    pub placement: PlacementFn,
}

impl std::fmt::Debug for ShardSetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardSetConfig")
            .field("shard_count", &self.shard_count)
            .field("data_dir", &self.data_dir)
            .field("pin", &self.pin)
            .field("io_memory_bytes", &self.io_memory_bytes)
            .field("tick_ms", &self.tick_ms)
            .field("memory_bytes_per_shard", &self.memory_bytes_per_shard)
            .finish_non_exhaustive()
    }
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
            placement: Arc::new(shard_for),
        }
    }
}

/// Running shards: one glommio executor thread each.
pub struct ShardSet {
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// What a higher layer runs on every shard once its logs are recovered: given the shard and the
/// partitions it recovered, a future that returns when the shard is to stop. The executor
/// thread ends when it does.
pub type ShardMain = Arc<
    dyn Fn(Rc<Shard<crate::io::dma::DmaStorage>>, Vec<TopicPartition>) -> Pin<Box<dyn Future<Output = ()>>>
        + Send
        + Sync,
>;

impl ShardSet {
    /// Starts the shards, each recovering the partitions it owns before it runs `main`.
    /// Returns once every shard has recovered (or with the first failure).
    pub fn start(config: ShardSetConfig, main: ShardMain) -> std::io::Result<Self> {
        use glommio::{LocalExecutorBuilder, Placement};
        let n = config.shard_count.max(1);
        let (ready_tx, ready_rx) = flume::bounded::<Result<usize, String>>(n);
        let mut threads = Vec::with_capacity(n);
        for id in 0..n {
            let placement = if config.pin { Placement::Fixed(id % num_cpus()) } else { Placement::Unbound };
            let cfg = config.clone();
            let ready = ready_tx.clone();
            let main = main.clone();
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
                    let shard = Shard::new(id, n, storage, &cfg.data_dir, cfg.log, spawner, crate::now_ms, budget)
                        .with_config_for(cfg.log_config_for.clone());
                    let loaded = match shard.load(&cfg.placement).await {
                        Ok(loaded) => loaded,
                        Err(e) => {
                            let _ = ready.send(Err(format!("shard {id} recovering its partitions: {e}")));
                            return;
                        }
                    };
                    let _ = ready.send(Ok(loaded.len()));
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
                    main(shard, loaded).await;
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
        Ok(Self { threads })
    }

    /// Waits for every shard's main future to return (the higher layer told them to stop).
    pub fn join(self) {
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
