//! One shard's partitions, and the one typed request enum every caller uses to reach them.
//!
//! Lives on: one shard (`!Send`); [`ShardRequest`] crosses cores.
//!
//! [`PartitionShard`] is the partition registry of one core, over the engine's storage shard
//! (which keeps the logs, their group commit and memory budget). Everything asked of a shard,
//! by its own connections or another core, is a [`ShardRequest`] through its door
//! ([`crate::door`]), which admits work against named limits before spawning it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use engine::batch::ValidatedBatches;
use engine::commit::CommitWait;
use engine::io::Storage;
use engine::log::{AppendInfo, LogConfig, LogError, ReadResult};
use engine::shard::{Shard, TopicPartition};
use engine::sync::Turn;
use thiserror::Error;

use crate::ids::{LeaderEpoch, NodeId, Offset, ShardId};
use crate::partition::{EpochError, ListedOffset, Partition, PartitionOffsets};

/// Partitions of one request a shard appends to or reads from at the same time. A request may
/// name tens of thousands; each in-flight one can hold I/O (a roll, a disk read), and one task
/// must never wait on an unbounded number of I/O operations (see `engine::sync::join_windowed`).
pub const REQUEST_PARTITIONS_IN_FLIGHT_MAX: usize = 32;

#[derive(Debug, Error)]
pub enum PartitionError {
    #[error("unknown partition {0:?}")]
    UnknownPartition(TopicPartition),
    #[error("partition {0:?} already exists")]
    AlreadyExists(TopicPartition),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("shard {0} is gone")]
    ShardGone(ShardId),
    #[error(transparent)]
    Epoch(#[from] EpochError),
    #[error(transparent)]
    Producer(#[from] crate::producer::ProducerError),
    #[error(transparent)]
    Batch(#[from] engine::batch::BatchError),
}

/// A reply channel: one value back to the asking core.
pub type Reply<T> = flume::Sender<T>;

pub struct AppendItem {
    pub tp: TopicPartition,
    pub batches: ValidatedBatches,
    /// Also wait for the data to be synced (acks=all on a log with `Durability::Always`).
    /// Without it the reply still waits until the data is written to the device (acks=0/1).
    pub durable: bool,
}

pub struct ReadItem {
    pub tp: TopicPartition,
    pub offset: Offset,
    pub bytes_max: usize,
    /// Read up to this offset (exclusive); `None` for the high watermark.
    pub end_offset: Option<Offset>,
    /// The leader epoch the client believes current (-1: unchecked); see
    /// [`Partition::check_epoch`].
    pub current_leader_epoch: i32,
    /// Not past the last stable offset, with the aborted transactions (READ_COMMITTED).
    pub read_committed: bool,
}

/// One transaction marker to write (WriteTxnMarkers), durably before the reply.
pub struct MarkerItem {
    pub tp: TopicPartition,
    pub marker: crate::producer::Marker,
}

/// One partition of an OffsetForLeaderEpoch request.
pub struct EpochQuery {
    pub tp: TopicPartition,
    /// The client's view of the current leader epoch (-1: unchecked).
    pub current_leader_epoch: i32,
    /// The epoch whose end offset is asked.
    pub leader_epoch: LeaderEpoch,
}

/// Everything one core can ask of the core that owns the partitions named in it: one message
/// per owner per client request, never one per record. `X` is the higher layer's coordinator
/// call (consumer groups live on the shard that owns their `__consumer_offsets` partition).
pub enum ShardRequest<X> {
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
        reply: Reply<AppendResults>,
    },
    /// Writes transaction markers and replies once each is synced (or failed).
    WriteMarkers {
        items: Vec<MarkerItem>,
        reply: Reply<AppendResults>,
    },
    Read {
        items: Vec<ReadItem>,
        reply: Reply<Vec<Result<ReadResult, PartitionError>>>,
    },
    Offsets {
        tps: Vec<TopicPartition>,
        reply: Reply<Vec<Result<PartitionOffsets, PartitionError>>>,
    },
    /// ListOffsets for one partition (see [`Partition::list_offset`]), fenced by
    /// `current_leader_epoch` (-1: unchecked).
    ListOffset {
        tp: TopicPartition,
        timestamp: i64,
        current_leader_epoch: i32,
        /// LATEST is the last stable offset (READ_COMMITTED) rather than the high watermark.
        read_committed: bool,
        reply: Reply<Result<Option<ListedOffset>, PartitionError>>,
    },
    /// OffsetForLeaderEpoch: `(epoch, end offset)` per item, each fenced by its
    /// `current_leader_epoch`.
    EndOffsetForEpoch {
        items: Vec<EpochQuery>,
        reply: Reply<Vec<Result<(LeaderEpoch, Offset), PartitionError>>>,
    },
    /// The idempotent producers each partition knows (DescribeProducers).
    Producers {
        tps: Vec<TopicPartition>,
        reply: Reply<Vec<Result<crate::producer::ProducerState, PartitionError>>>,
    },
    DeleteBefore {
        tp: TopicPartition,
        offset: Offset,
        reply: Reply<Result<Offset, PartitionError>>,
    },
    TruncateTo {
        tp: TopicPartition,
        offset: Offset,
        reply: Reply<Result<(), PartitionError>>,
    },
    /// Partitions this shard owns.
    List {
        reply: Reply<Vec<TopicPartition>>,
    },
    /// Partitions this shard owns with their size in bytes.
    LogSizes {
        reply: Reply<Vec<(TopicPartition, u64)>>,
    },
    /// Reply `true` once any listed partition's high watermark passes the given offset, or
    /// after `timeout` (a long poll); `false` at once when the shard has too many long polls
    /// waiting (the caller then waits out its time without the owner's wake-up).
    WaitForData {
        items: Vec<(TopicPartition, Offset)>,
        timeout: Duration,
        reply: Reply<bool>,
    },
    /// What the door has admitted (tests and operators).
    DoorStats {
        reply: Reply<crate::door::DoorStats>,
    },
    /// A call to a coordinator on this shard.
    Coordinator(X),
    /// Close every log cleanly and stop the shard.
    Shutdown {
        reply: Reply<()>,
    },
}

/// A partition looked up by name, or why not.
/// One outcome per appended item, in the request's order.
pub type AppendResults = Vec<Result<AppendInfo, PartitionError>>;

type Lookup<S> = Result<Rc<Partition<S>>, PartitionError>;

/// See the module docs.
pub struct PartitionShard<S: Storage> {
    id: ShardId,
    node: NodeId,
    /// This node's start count: the least leader epoch of every partition it leads now.
    generation: LeaderEpoch,
    store: Rc<Shard<S>>,
    partitions: RefCell<HashMap<TopicPartition, Rc<Partition<S>>>>,
}

impl<S: Storage> PartitionShard<S> {
    /// Leads every partition `store` recovered (`loaded`), in a new epoch of at least
    /// `generation` (see [`Partition::lead`]).
    pub fn new(store: Rc<Shard<S>>, loaded: Vec<TopicPartition>, node: NodeId, generation: LeaderEpoch) -> Rc<Self> {
        let mut partitions = HashMap::with_capacity(loaded.len());
        for tp in loaded {
            if let Some(log) = store.log(&tp) {
                partitions.insert(tp.clone(), Rc::new(Partition::lead(tp, log, node, generation)));
            }
        }
        Rc::new(Self { id: ShardId(store.id), node, generation, store, partitions: RefCell::new(partitions) })
    }

    pub fn id(&self) -> ShardId {
        self.id
    }
    pub fn node(&self) -> NodeId {
        self.node
    }
    pub fn now_ms(&self) -> i64 {
        self.store.now_ms()
    }

    pub fn partition(&self, tp: &TopicPartition) -> Option<Rc<Partition<S>>> {
        self.partitions.borrow().get(tp).cloned()
    }

    /// A topic config change on a partition's open log (see
    /// `engine::shard::Shard::apply_topic_config`). `false`: no such partition here.
    pub fn apply_topic_config(&self, tp: &TopicPartition, topic: &LogConfig) -> bool {
        self.store.apply_topic_config(tp, topic)
    }

    /// The partitions this shard owns, sorted.
    pub fn partitions(&self) -> Vec<TopicPartition> {
        let mut v: Vec<_> = self.partitions.borrow().keys().cloned().collect();
        v.sort();
        v
    }

    fn get(&self, tp: &TopicPartition) -> Result<Rc<Partition<S>>, PartitionError> {
        self.partition(tp).ok_or_else(|| PartitionError::UnknownPartition(tp.clone()))
    }

    pub async fn create(&self, tp: TopicPartition, config: LogConfig) -> Result<(), PartitionError> {
        if self.partition(&tp).is_some() {
            return Err(PartitionError::AlreadyExists(tp));
        }
        match self.store.create_log(tp.clone(), config).await? {
            None => Err(PartitionError::AlreadyExists(tp)),
            Some(log) => {
                let partition = Partition::lead_new(tp.clone(), log, self.node, self.generation);
                self.partitions.borrow_mut().insert(tp, Rc::new(partition));
                Ok(())
            }
        }
    }

    pub async fn delete(&self, tp: TopicPartition) -> Result<(), PartitionError> {
        self.partitions.borrow_mut().remove(&tp);
        match self.store.remove_log(&tp) {
            None => Err(PartitionError::UnknownPartition(tp)),
            Some(log) => log.delete().await.map_err(Into::into),
        }
    }

    /// Each item's append turn on its partition (see [`Partition::append`]): taken when the
    /// request arrives, before any await, so appends to a partition keep the order of the
    /// requests that carry them, whatever each waits for later.
    fn append_turns(&self, items: &[AppendItem]) -> Vec<Option<Turn>> {
        items.iter().map(|item| self.partition(&item.tp).map(|p| p.append_turn())).collect()
    }

    /// Appends to the partitions of one request and returns once each append is written to the
    /// device (and synced where `durable` asks it of a `Durability::Always` log). The
    /// partitions progress together, at most [`REQUEST_PARTITIONS_IN_FLIGHT_MAX`] at a time,
    /// and all wait on one group write/commit of the shard. Appends keep the order in which
    /// this is called (the turns are taken before the future is first polled).
    pub fn append(&self, items: Vec<AppendItem>) -> impl std::future::Future<Output = AppendResults> + '_ {
        let turns = self.append_turns(&items);
        self.append_in_turn(items, turns)
    }

    async fn append_in_turn(&self, items: Vec<AppendItem>, turns: Vec<Option<Turn>>) -> AppendResults {
        let now = self.store.now_ms();
        let appends = items.into_iter().zip(turns).map(|(item, turn)| {
            let (lookup, partition) = (self.get(&item.tp), self.get(&item.tp));
            let durable = item.durable;
            let append = async move {
                let partition = partition?;
                // Gone between the turn and now, or created since: judged as unknown.
                let turn = turn.ok_or(PartitionError::UnknownPartition(item.tp))?;
                partition.append(item.batches, now, turn).await
            };
            (lookup, durable, append)
        });
        self.commit_all(appends.collect()).await
    }

    /// Writes transaction markers, each synced before its result (as acks=all).
    pub async fn write_markers(&self, items: Vec<MarkerItem>) -> Vec<Result<AppendInfo, PartitionError>> {
        let now = self.store.now_ms();
        let appends = items.into_iter().map(|item| {
            let partition = self.get(&item.tp);
            let write = async move { partition?.write_marker(item.marker, now).await };
            (self.get(&item.tp), true, write)
        });
        self.commit_all(appends.collect()).await
    }

    /// Runs appends (`(partition, durable, append)`), at most
    /// [`REQUEST_PARTITIONS_IN_FLIGHT_MAX`] at a time, and waits for one group write/commit of
    /// the shard to cover them: written to the device, and synced where `durable` asks it of a
    /// `Durability::Always` log.
    async fn commit_all<F>(&self, appends: Vec<(Lookup<S>, bool, F)>) -> Vec<Result<AppendInfo, PartitionError>>
    where
        F: std::future::Future<Output = Result<AppendInfo, PartitionError>>,
    {
        let committer = self.store.committer();
        let futs: Vec<_> = appends
            .into_iter()
            .map(|(partition, durable, append)| {
                let committer = &committer;
                async move {
                    let partition = partition?;
                    let info = append.await?;
                    let log = partition.log().clone();
                    // `Always`, or the append that completes an `EveryMessages` count.
                    let due = log.sync_due(info.last_offset + 1);
                    // Asked at once, not after the whole request: the shard's write buffers
                    // drain only through the committer, and later items may wait for room.
                    // A due sync is asked whatever the acks: under `Always` the high watermark
                    // covers only synced offsets, so consumers see acks=1 data after it.
                    committer.request(&log, info.last_offset + 1, due);
                    let sync = durable && due;
                    Ok::<_, PartitionError>((info, CommitWait { log, offset: info.last_offset + 1, sync }))
                }
            })
            .collect();
        let mut results = Vec::with_capacity(futs.len());
        let mut waits = Vec::with_capacity(futs.len());
        for r in engine::sync::join_windowed(futs, REQUEST_PARTITIONS_IN_FLIGHT_MAX).await {
            results.push(r.map(|(info, wait)| {
                waits.push(wait);
                info
            }));
        }
        // One outcome per appended item, in order: a failed write or sync replaces its info.
        let mut committed = committer.wait(&waits).await.into_iter();
        for r in results.iter_mut().filter(|r| r.is_ok()) {
            if let Some(Err(e)) = committed.next() {
                *r = Err(e.into());
            }
        }
        results
    }

    /// Reads from the partitions of one request, at most [`REQUEST_PARTITIONS_IN_FLIGHT_MAX`]
    /// at a time.
    pub async fn read(&self, items: Vec<ReadItem>) -> Vec<Result<ReadResult, PartitionError>> {
        let now = self.store.now_ms();
        let futs: Vec<_> = items
            .into_iter()
            .map(|item| {
                let partition = self.get(&item.tp);
                async move {
                    let partition = partition?;
                    partition.check_epoch(item.current_leader_epoch)?;
                    let read = partition.read(item.offset, item.bytes_max, item.end_offset, item.read_committed, now);
                    Ok(read.await?)
                }
            })
            .collect();
        engine::sync::join_windowed(futs, REQUEST_PARTITIONS_IN_FLIGHT_MAX).await
    }

    /// Serves a partition request. Long polls, coordinator calls, door statistics and shutdown
    /// are the door's ([`crate::door`]); given one, this answers as if the shard had nothing.
    ///
    /// Work that must keep its arrival order (appends) takes its place when this is called,
    /// not when the returned future is first polled: a door that spawns a task per request
    /// calls it before spawning.
    pub fn serve<X: 'static>(self: &Rc<Self>, req: ShardRequest<X>) -> impl std::future::Future<Output = ()> + 'static {
        let turns = match &req {
            ShardRequest::Append { items, .. } => self.append_turns(items),
            _ => Vec::new(),
        };
        let this = self.clone();
        async move { this.serve_in_turn(req, turns).await }
    }

    async fn serve_in_turn<X>(&self, req: ShardRequest<X>, turns: Vec<Option<Turn>>) {
        let now = self.store.now_ms();
        match req {
            ShardRequest::CreatePartition { tp, config, reply } => {
                let _ = reply.send(self.create(tp, config).await);
            }
            ShardRequest::DeletePartition { tp, reply } => {
                let _ = reply.send(self.delete(tp).await);
            }
            ShardRequest::Append { items, reply } => {
                let _ = reply.send(self.append_in_turn(items, turns).await);
            }
            ShardRequest::WriteMarkers { items, reply } => {
                let _ = reply.send(self.write_markers(items).await);
            }
            ShardRequest::Read { items, reply } => {
                let _ = reply.send(self.read(items).await);
            }
            ShardRequest::Offsets { tps, reply } => {
                let _ = reply.send(tps.iter().map(|tp| self.get(tp).map(|p| p.offsets())).collect());
            }
            ShardRequest::ListOffset { tp, timestamp, current_leader_epoch, read_committed, reply } => {
                let r = async {
                    let p = self.get(&tp)?;
                    p.check_epoch(current_leader_epoch)?;
                    Ok(p.list_offset(timestamp, read_committed, now).await?)
                };
                let _ = reply.send(r.await);
            }
            ShardRequest::EndOffsetForEpoch { items, reply } => {
                let out = items.into_iter().map(|q| {
                    let p = self.get(&q.tp)?;
                    p.check_epoch(q.current_leader_epoch)?;
                    Ok(p.end_offset_for_epoch(q.leader_epoch))
                });
                let _ = reply.send(out.collect());
            }
            ShardRequest::Producers { tps, reply } => {
                let mut out = Vec::with_capacity(tps.len());
                for tp in &tps {
                    out.push(match self.get(tp) {
                        Ok(p) => p.producer_state(now).await.map_err(Into::into),
                        Err(e) => Err(e),
                    });
                }
                let _ = reply.send(out);
            }
            ShardRequest::DeleteBefore { tp, offset, reply } => {
                let r = match self.get(&tp) {
                    Ok(p) => p.delete_before(offset, now).await.map_err(Into::into),
                    Err(e) => Err(e),
                };
                let _ = reply.send(r);
            }
            ShardRequest::TruncateTo { tp, offset, reply } => {
                let r = match self.get(&tp) {
                    Ok(p) => p.truncate_to(offset, now).await.map_err(Into::into),
                    Err(e) => Err(e),
                };
                let _ = reply.send(r);
            }
            ShardRequest::List { reply } => {
                let _ = reply.send(self.partitions());
            }
            ShardRequest::LogSizes { reply } => {
                let out =
                    self.partitions().into_iter().filter_map(|tp| self.partition(&tp).map(|p| (tp, p.size_bytes())));
                let _ = reply.send(out.collect());
            }
            ShardRequest::WaitForData { reply, .. } => {
                let _ = reply.send(true);
            }
            ShardRequest::DoorStats { reply } => {
                let _ = reply.send(Default::default());
            }
            ShardRequest::Coordinator(_) => {}
            ShardRequest::Shutdown { reply } => {
                self.close().await;
                let _ = reply.send(());
            }
        }
    }

    /// Closes every log cleanly; the shard serves nothing after this.
    pub async fn close(&self) {
        let partitions: Vec<_> = self.partitions.borrow_mut().drain().map(|(_, p)| p).collect();
        self.store.close_all().await;
        // After the logs closed, nothing appends: each snapshot is the state at the final end.
        let snapshots = partitions.iter().map(|p| async move {
            if let Err(e) = p.snapshot_producers().await {
                eprintln!("{:?}: writing the producer-state snapshot: {e}", p.topic_partition());
            }
        });
        engine::sync::join_windowed(snapshots.collect(), REQUEST_PARTITIONS_IN_FLIGHT_MAX).await;
    }

    /// Expires idle producer ids and writes the producer-state snapshots due (see
    /// [`Partition::maintain_producers`]), a partition at a time.
    pub async fn maintain_producers(&self, now_ms: i64, expiration_ms: i64) {
        for tp in self.partitions() {
            let Some(p) = self.partition(&tp) else { continue };
            if let Err(e) = p.maintain_producers(now_ms, expiration_ms).await {
                eprintln!("{tp:?}: producer-state maintenance: {e}");
            }
            engine::sync::yield_now().await;
        }
    }
}
