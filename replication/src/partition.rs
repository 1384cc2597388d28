//! A partition as the rest of the broker sees it: its log plus what replication and
//! exactly-once keep beside it.
//!
//! Lives on: its owning shard (`!Send`). Handlers never reach the log; they send a
//! [`crate::ShardRequest`] to the owner, whose [`crate::PartitionShard`] calls these methods.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use bytes::BytesMut;
use engine::batch::{BatchMeta, BatchView, Compression, ValidatedBatches};
use engine::io::Storage;
use engine::log::{AppendInfo, LogConfig, LogError, PartitionLog, ReadResult};
use engine::records::{BatchBuilder, Record};
use engine::shard::TopicPartition;
use engine::sync::{LocalMutex, Notify, Turn, Turns};

use crate::ids::{LeaderEpoch, NodeId, Offset};
use crate::producer::{self, BatchRange, Marker, ProducerState, Verdict};
use crate::shard::PartitionError;

/// Bytes read at a time when rebuilding producer state from the log.
const PRODUCER_SCAN_BYTES: usize = 1 << 20;
/// A partition whose producers changed writes a snapshot of them once its log has grown by this
/// much since the last one (or rolled a segment), so a restart after a crash rereads at most
/// about this much of the log to rebuild them.
pub const PRODUCER_SNAPSHOT_BYTES: u64 = 64 << 20;
/// Snapshot files kept: the newest and one before it, in case the newest lies beyond what a
/// crash left of the log.
const PRODUCER_SNAPSHOTS_KEPT: usize = 2;

/// What this node is for the partition. A single node leads every partition it has; followers
/// come with partition replication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
}

/// Offsets of one partition, and the epoch of its leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    pub log_start_offset: Offset,
    pub high_watermark: Offset,
    pub log_end_offset: Offset,
    pub leader_epoch: LeaderEpoch,
}

/// ListOffsets' special timestamps (Kafka's `ListOffsetsRequest` constants).
pub mod spec {
    pub const LATEST: i64 = -1;
    pub const EARLIEST: i64 = -2;
    pub const MAX_TIMESTAMP: i64 = -3;
    pub const EARLIEST_LOCAL: i64 = -4;
    pub const LATEST_TIERED: i64 = -5;
    pub const EARLIEST_PENDING_UPLOAD: i64 = -6;
}

/// One ListOffsets answer: the offset, the record's timestamp (-1 where none applies) and the
/// epoch it was written in (-1 where unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    pub offset: Offset,
    pub timestamp: i64,
    pub leader_epoch: i32,
}

/// Why a request naming a leader epoch is refused (Kafka's fencing, KIP-320).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EpochError {
    /// The client's epoch is older than the leader's: it must refresh its metadata.
    #[error("leader epoch {client} is older than the leader's {leader}")]
    Fenced { client: i32, leader: i32 },
    /// The client knows a newer epoch than this broker (this broker is behind).
    #[error("leader epoch {client} is newer than the leader's {leader}")]
    Unknown { client: i32, leader: i32 },
}

/// See the module docs.
pub struct Partition<S: Storage> {
    tp: TopicPartition,
    log: Rc<PartitionLog<S>>,
    role: Cell<Role>,
    leader_epoch: Cell<LeaderEpoch>,
    replicas: Vec<NodeId>,
    producers: Producers,
}

/// The partition's idempotent producers (see [`crate::producer`]) and their snapshots.
struct Producers {
    state: RefCell<ProducerState>,
    /// Loading the state and writing snapshots, one at a time.
    io: LocalMutex,
    /// Appends pass the gate in the order they arrived at the shard's door: each takes its
    /// turn there, before any await. Without it, two requests in flight to this partition
    /// could overtake each other while waiting for room (or for a window slot of their
    /// request): an idempotent producer's later batch was refused as out of order and
    /// retried, and a plain producer's records were stored out of the order it sent them.
    order: Turns,
    /// The state reflects the whole log. A recovered partition loads it at its first
    /// idempotent append (so start-up reads nothing for partitions nobody writes to).
    loaded: Cell<bool>,
    /// The state changed since the last snapshot.
    dirty: Cell<bool>,
    /// The offset of the newest snapshot file, and the log's size and active segment when it
    /// was written (or found).
    snapshot_offset: Cell<Option<i64>>,
    snapshot_size: Cell<u64>,
    snapshot_segment: Cell<i64>,
}

impl Producers {
    fn new(loaded: bool) -> Self {
        Self {
            state: RefCell::new(ProducerState::default()),
            io: LocalMutex::default(),
            order: Turns::default(),
            loaded: Cell::new(loaded),
            dirty: Cell::new(false),
            snapshot_offset: Cell::new(None),
            snapshot_size: Cell::new(0),
            snapshot_segment: Cell::new(0),
        }
    }
}

fn has_producer(metas: &[BatchMeta]) -> bool {
    metas.iter().any(|m| m.producer_id >= 0)
}

/// A control record's key: version 0, then the marker type (0: ABORT, 1: COMMIT); its value:
/// version 0, then the coordinator epoch (Kafka's `EndTransactionMarker`).
fn marker_batch(m: Marker, now_ms: i64) -> BytesMut {
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&i16::from(m.commit).to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&m.coordinator_epoch.to_be_bytes());
    let mut b = BatchBuilder::new(Compression::None, now_ms)
        .producer(m.producer_id, m.producer_epoch, -1)
        .transactional()
        .control();
    b.push(Record::new(Some(key), Some(value)).with_timestamp(now_ms));
    b.build()
}

/// The marker a control batch read back from the log holds; `None` if it holds none (Kafka
/// ignores control records of unknown types).
fn parse_marker(view: &BatchView<'_>) -> Option<Marker> {
    let records = engine::records::decode_records(view).ok()?;
    let r = records.first()?;
    let key = r.key.as_deref()?;
    let value = r.value.as_deref()?;
    let kind = i16::from_be_bytes(key.get(2..4)?.try_into().ok()?);
    let coordinator_epoch = i32::from_be_bytes(value.get(2..6)?.try_into().ok()?);
    let commit = match kind {
        0 => false,
        1 => true,
        _ => return None,
    };
    Some(Marker {
        producer_id: view.producer_id(),
        producer_epoch: view.header().producer_epoch.get(),
        coordinator_epoch,
        commit,
    })
}

/// The offset after the last batch of `chunks` (runs of whole batches).
fn end_of(chunks: &[bytes::Bytes]) -> Option<i64> {
    let mut end = None;
    for c in chunks {
        let mut rest = &c[..];
        while let Ok(h) = engine::batch::header(rest) {
            let size = usize::try_from(h.batch_length.get()).ok()? + engine::batch::LOG_OVERHEAD;
            end = Some(h.base_offset.get() + i64::from(h.last_offset_delta.get()) + 1);
            rest = rest.get(size..)?;
        }
    }
    end
}

impl<S: Storage> Partition<S> {
    /// This node becomes the leader of `tp` over `log`, in a new epoch: `generation` (this
    /// node's start count, so every restart is a leadership change, as with Kafka) or one past
    /// the log's latest epoch, whichever is higher, so a partition's epochs only grow. The new
    /// epoch starts at the log end.
    /// A partition recovered from disk loads its producers' state from its snapshot and log at
    /// its first idempotent append; a new one (`fresh`) has none.
    pub fn lead(tp: TopicPartition, log: Rc<PartitionLog<S>>, node: NodeId, generation: LeaderEpoch) -> Self {
        Self::lead_with(tp, log, node, generation, false)
    }

    /// [`lead`](Self::lead) for a partition just created, whose log is empty.
    pub fn lead_new(tp: TopicPartition, log: Rc<PartitionLog<S>>, node: NodeId, generation: LeaderEpoch) -> Self {
        Self::lead_with(tp, log, node, generation, true)
    }

    fn lead_with(
        tp: TopicPartition,
        log: Rc<PartitionLog<S>>,
        node: NodeId,
        generation: LeaderEpoch,
        fresh: bool,
    ) -> Self {
        let next = log.latest_epoch().map_or(0, |e| e.saturating_add(1));
        let epoch = LeaderEpoch(generation.get().max(next).max(0));
        log.begin_epoch(epoch.get());
        Self {
            tp,
            log,
            role: Cell::new(Role::Leader),
            leader_epoch: Cell::new(epoch),
            replicas: vec![node],
            producers: Producers::new(fresh),
        }
    }

    /// Kafka's check of a request's `current_leader_epoch` (-1: the client does not say).
    pub fn check_epoch(&self, current_leader_epoch: i32) -> Result<(), EpochError> {
        let leader = self.leader_epoch.get().get();
        match current_leader_epoch {
            -1 => Ok(()),
            c if c < leader => Err(EpochError::Fenced { client: c, leader }),
            c if c > leader => Err(EpochError::Unknown { client: c, leader }),
            _ => Ok(()),
        }
    }

    pub fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }
    pub fn role(&self) -> Role {
        self.role.get()
    }
    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.leader_epoch.get()
    }
    pub fn replicas(&self) -> &[NodeId] {
        &self.replicas
    }
    pub fn config(&self) -> LogConfig {
        self.log.config()
    }
    /// A topic config change on the open log (see `PartitionLog::set_roll_limits`).
    pub fn set_roll_limits(&self, segment_bytes: u64, segment_ms: i64) {
        self.log.set_roll_limits(segment_bytes, segment_ms);
    }

    pub fn offsets(&self) -> PartitionOffsets {
        PartitionOffsets {
            log_start_offset: Offset(self.log.log_start_offset()),
            high_watermark: Offset(self.log.high_watermark()),
            log_end_offset: Offset(self.log.log_end_offset()),
            leader_epoch: self.leader_epoch.get(),
        }
    }
    pub fn high_watermark(&self) -> Offset {
        Offset(self.log.high_watermark())
    }
    pub fn size_bytes(&self) -> u64 {
        self.log.size_bytes()
    }
    /// Notified on every append; long polls wait on it.
    pub fn append_notify(&self) -> Rc<Notify> {
        self.log.append_notify()
    }

    /// Appends as the leader: offsets assigned, batches stamped with the current leader epoch,
    /// buffered for the shard's committer (the caller waits for the commit it needs).
    ///
    /// Batches of idempotent producers are judged against the partition's producer state at the
    /// moment their offsets are assigned: a resent batch is answered with the offsets it was
    /// stored at (and the caller's commit wait then waits for those), a gap or a stale epoch is
    /// refused with [`PartitionError::Producer`] and nothing is stored.
    /// This partition's next append turn (see [`Partition::append`]); take it when the append
    /// arrives, before any await.
    pub fn append_turn(&self) -> Turn {
        self.producers.order.take()
    }

    /// Appends once every append whose turn was taken before `turn` has been judged and
    /// buffered, so appends keep the order in which they arrived.
    pub async fn append(
        &self,
        batches: ValidatedBatches,
        now_ms: i64,
        turn: Turn,
    ) -> Result<AppendInfo, PartitionError> {
        let idempotent = has_producer(batches.batches());
        turn.wait().await;
        let _turn = turn;
        // Loaded at the first append of any kind, so the upkeep snapshots every written log
        // and a crash never leaves a long tail to rescan.
        self.load_producers(now_ms).await?;
        let state = &self.producers.state;
        let gate = |first_offset: i64, metas: &[BatchMeta]| {
            if !idempotent {
                return Ok(());
            }
            match state.borrow_mut().check_and_record(metas, first_offset, now_ms) {
                Ok(Verdict::Append) => Ok(()),
                Ok(Verdict::Duplicate(range)) => Err(Ok(range)),
                Err(e) => Err(Err(e)),
            }
        };
        match self.log.append_buffered_gated(batches, self.leader_epoch.get().get(), now_ms, gate).await? {
            Ok(info) => {
                if idempotent {
                    self.producers.dirty.set(true);
                }
                Ok(info)
            }
            Err(Ok(dup)) => Ok(AppendInfo {
                base_offset: dup.first_offset,
                last_offset: dup.last_offset,
                log_append_time_ms: -1,
                log_start_offset: self.log.log_start_offset(),
            }),
            Err(Err(e)) => Err(PartitionError::Producer(e)),
        }
    }

    /// Writes a transaction marker (a COMMIT or ABORT control batch) for the producer, judged
    /// against its state at the moment its offset is assigned; buffered for the committer like
    /// any append.
    pub async fn write_marker(&self, marker: Marker, now_ms: i64) -> Result<AppendInfo, PartitionError> {
        self.load_producers(now_ms).await?;
        let batches = ValidatedBatches::new(marker_batch(marker, now_ms), usize::MAX)?;
        let state = &self.producers.state;
        let gate = |first_offset: i64, _: &[BatchMeta]| state.borrow_mut().record_marker(marker, first_offset, now_ms);
        let info = self.log.append_buffered_gated(batches, self.leader_epoch.get().get(), now_ms, gate).await??;
        self.producers.dirty.set(true);
        Ok(info)
    }

    /// The offset read_committed consumers may read up to: the high watermark, held back by the
    /// oldest open transaction. Exact once the producers' state is loaded (reads load it).
    pub fn last_stable_offset(&self) -> i64 {
        let hw = self.log.high_watermark();
        self.producers.state.borrow().first_unstable_offset().map_or(hw, |f| f.min(hw))
    }

    /// The producers' state (tests and DescribeProducers), loading it if needed.
    pub async fn producer_state(&self, now_ms: i64) -> Result<ProducerState, LogError> {
        self.load_producers(now_ms).await?;
        Ok(self.producers.state.borrow().clone())
    }

    /// Rebuilds the producers' state, if not yet done: from the newest snapshot file the log
    /// still reaches (snapshots beyond its end, left by a crash that took the tail, are
    /// removed), then from the batches after it.
    async fn load_producers(&self, now_ms: i64) -> Result<(), LogError> {
        if self.producers.loaded.get() {
            return Ok(());
        }
        let _io = self.producers.io.lock().await;
        if self.producers.loaded.get() {
            return Ok(());
        }
        let (storage, dir) = (self.log.storage(), self.log.dir());
        let leo = self.log.log_end_offset();
        let mut snapshots: Vec<i64> =
            storage.list(dir).await?.iter().filter_map(|n| producer::snapshot_offset(n)).collect();
        snapshots.sort_unstable_by(|a, b| b.cmp(a));
        let mut found: Option<(ProducerState, i64)> = None;
        for offset in snapshots {
            let path = dir.join(producer::snapshot_name(offset));
            if offset > leo {
                storage.remove(&path).await?;
                continue;
            }
            if found.is_none() {
                match storage.read_small(&path).await?.as_deref().and_then(producer::decode_snapshot) {
                    Some((state, at)) if at == offset => found = Some((state, at)),
                    _ => eprintln!("{:?}: producer-state snapshot {offset} is damaged; using an older one", self.tp),
                }
            }
        }
        let start = self.log.log_start_offset();
        let found_at = found.as_ref().map(|(_, at)| *at);
        let (mut state, from) = found.map_or((ProducerState::default(), start), |(s, at)| (s, at.max(start)));
        let mut next = from;
        'scan: while next < leo {
            let read = self.log.read(next, PRODUCER_SCAN_BYTES, Some(leo)).await?;
            if read.chunks.is_empty() {
                break;
            }
            for chunk in &read.chunks {
                let mut rest = &chunk[..];
                while !rest.is_empty() {
                    let Ok(view) = BatchView::parse(rest, usize::MAX) else {
                        eprintln!("{:?}: unreadable batch at {next} while loading producer state", self.tp);
                        break 'scan;
                    };
                    rest = &rest[view.size()..];
                    if view.last_offset() < next {
                        continue;
                    }
                    let h = view.header();
                    if view.is_control() {
                        if let Some(m) = parse_marker(&view) {
                            state.replay_marker(m, view.base_offset(), now_ms);
                        }
                    } else {
                        let first_seq = h.base_sequence.get();
                        let range = BatchRange {
                            first_seq,
                            last_seq: producer::last_sequence(first_seq, h.last_offset_delta.get()),
                            first_offset: view.base_offset(),
                            last_offset: view.last_offset(),
                        };
                        state.replay(view.producer_id(), h.producer_epoch.get(), view.attributes(), range, now_ms);
                    }
                    next = view.last_offset() + 1;
                }
            }
        }
        *self.producers.state.borrow_mut() = state;
        self.producers.snapshot_offset.set(found_at);
        self.producers.snapshot_size.set(self.log.size_bytes());
        self.producers.snapshot_segment.set(self.log.active_base_offset());
        self.producers.dirty.set(next > from);
        self.producers.loaded.set(true);
        Ok(())
    }

    /// The shard's periodic upkeep of the producers' state: expires producers idle for
    /// `expiration_ms`, forgets aborted transactions below the log start, and writes a snapshot
    /// once the log rolled or grew by [`PRODUCER_SNAPSHOT_BYTES`] since the last one.
    pub async fn maintain_producers(&self, now_ms: i64, expiration_ms: i64) -> Result<(), LogError> {
        let p = &self.producers;
        if !p.loaded.get() {
            return Ok(());
        }
        {
            let mut state = p.state.borrow_mut();
            if state.expire(now_ms, expiration_ms) > 0 {
                p.dirty.set(true);
            }
            state.prune_aborted(self.log.log_start_offset());
        }
        let grown = self.log.size_bytes().saturating_sub(p.snapshot_size.get()) >= PRODUCER_SNAPSHOT_BYTES;
        let rolled = self.log.active_base_offset() != p.snapshot_segment.get();
        if grown || rolled {
            self.snapshot_producers().await?;
        }
        Ok(())
    }

    /// Writes the producers' state as of the log end to a snapshot file, unless the newest one
    /// already is that, and removes older snapshots. Also called when the shard closes.
    pub async fn snapshot_producers(&self) -> Result<(), LogError> {
        let p = &self.producers;
        let due = || p.dirty.get() || p.snapshot_offset.get() != Some(self.log.log_end_offset());
        if !p.loaded.get() || !due() {
            return Ok(());
        }
        let _io = p.io.lock().await;
        if !p.loaded.get() || !due() {
            return Ok(());
        }
        // The state and the offset it is complete up to, taken together (appends record their
        // producers when their offsets are assigned, with no await in between).
        let (offset, bytes) = {
            let leo = self.log.log_end_offset();
            (leo, producer::encode_snapshot(&p.state.borrow(), leo))
        };
        p.dirty.set(false);
        let (storage, dir) = (self.log.storage(), self.log.dir());
        if let Err(e) = storage.write_small(&dir.join(producer::snapshot_name(offset)), &bytes).await {
            p.dirty.set(true);
            return Err(e.into());
        }
        p.snapshot_offset.set(Some(offset));
        p.snapshot_size.set(self.log.size_bytes());
        p.snapshot_segment.set(self.log.active_base_offset());
        let mut older: Vec<i64> =
            storage.list(dir).await?.iter().filter_map(|n| producer::snapshot_offset(n)).collect();
        older.sort_unstable_by(|a, b| b.cmp(a));
        for old in older.into_iter().skip(PRODUCER_SNAPSHOTS_KEPT) {
            storage.remove(&dir.join(producer::snapshot_name(old))).await?;
        }
        Ok(())
    }

    /// The log, for the shard's commit wait only.
    pub(crate) fn log(&self) -> &Rc<PartitionLog<S>> {
        &self.log
    }

    /// Reads from `offset` (see `PartitionLog::read`). `read_committed`: not past the last
    /// stable offset, and with the aborted transactions overlapping what was read.
    pub async fn read(
        &self,
        offset: Offset,
        bytes_max: usize,
        end_offset: Option<Offset>,
        read_committed: bool,
        now_ms: i64,
    ) -> Result<ReadResult, LogError> {
        self.load_producers(now_ms).await?;
        let end_offset = end_offset.map(Offset::get);
        let end = if read_committed {
            Some(end_offset.unwrap_or(i64::MAX).min(self.last_stable_offset()))
        } else {
            end_offset
        };
        let offset = offset.get();
        let mut r = self.log.read(offset, bytes_max, end).await?;
        r.last_stable_offset = self.last_stable_offset().min(r.high_watermark);
        if read_committed {
            if let Some(to) = end_of(&r.chunks) {
                let state = self.producers.state.borrow();
                r.aborted_transactions =
                    state.aborted_between(offset, to).into_iter().map(|a| (a.producer_id, a.first_offset)).collect();
            }
        }
        Ok(r)
    }
    /// ListOffsets for one partition: `timestamp` is a record timestamp (the first record at or
    /// after it) or one of [`spec`]'s special values. `None`: no such record.
    pub async fn list_offset(
        &self,
        timestamp: i64,
        read_committed: bool,
        now_ms: i64,
    ) -> Result<Option<ListedOffset>, LogError> {
        self.load_producers(now_ms).await?;
        let epoch_of = |offset: i64| self.log.epoch_at(offset).unwrap_or(-1);
        let found = match timestamp {
            spec::LATEST => {
                // As Kafka: the end a consumer may read to, in the current leader epoch.
                let end = if read_committed { self.last_stable_offset() } else { self.log.high_watermark() };
                return Ok(Some(ListedOffset {
                    offset: Offset(end),
                    timestamp: -1,
                    leader_epoch: self.leader_epoch.get().get(),
                }));
            }
            spec::EARLIEST | spec::EARLIEST_LOCAL => {
                let start = self.log.log_start_offset();
                return Ok(Some(ListedOffset { offset: Offset(start), timestamp: -1, leader_epoch: epoch_of(start) }));
            }
            // Nothing is tiered.
            spec::LATEST_TIERED | spec::EARLIEST_PENDING_UPLOAD => return Ok(None),
            spec::MAX_TIMESTAMP => self.log.max_timestamp().await?,
            ts => self.log.offset_for_timestamp(ts).await?,
        };
        Ok(found.map(|(offset, timestamp)| ListedOffset {
            offset: Offset(offset),
            timestamp,
            leader_epoch: epoch_of(offset),
        }))
    }
    /// DeleteRecords: the new log start offset.
    pub async fn delete_before(&self, offset: Offset, now_ms: i64) -> Result<Offset, LogError> {
        self.log.delete_before(offset.get(), now_ms).await.map(Offset)
    }
    /// Truncates the log to `offset`; the producers' state is rebuilt from what is left.
    pub async fn truncate_to(&self, offset: Offset, now_ms: i64) -> Result<(), LogError> {
        let _io = self.producers.io.lock().await;
        self.log.truncate_to(offset.get(), now_ms).await?;
        self.producers.loaded.set(false);
        self.producers.dirty.set(false);
        *self.producers.state.borrow_mut() = ProducerState::default();
        Ok(())
    }
    /// OffsetForLeaderEpoch: `(epoch, end offset)`.
    pub fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> (LeaderEpoch, Offset) {
        let (e, end) = self.log.end_offset_for_epoch(epoch.get());
        (LeaderEpoch(e), Offset(end))
    }
    /// One log-cleaner pass over the partition if one is due (compacted topics): nothing at or
    /// past the last stable offset is cleaned, so every transaction it touches is decided, and
    /// the data of aborted ones goes; then their markers, once the transaction is forgotten
    /// here (see `CleanStats::aborts_emptied`) and their delete horizon passed. `throttle`
    /// paces the cleaner's I/O.
    pub async fn clean<T, Fut>(
        &self,
        now_ms: i64,
        cfg: &engine::log::CleanerConfig,
        throttle: T,
    ) -> Result<Option<engine::log::CleanStats>, LogError>
    where
        T: FnMut(u64) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        self.load_producers(now_ms).await?;
        let upper = self.last_stable_offset();
        let aborted: Vec<(i64, i64, i64)> = self
            .producers
            .state
            .borrow()
            .aborted_between(self.log.log_start_offset(), upper)
            .into_iter()
            .map(|a| (a.producer_id, a.first_offset, a.last_offset))
            .collect();
        let stats = self.log.clean(now_ms, cfg, upper, &aborted, throttle).await?;
        if let Some(emptied) = stats.as_ref().map(|s| &s.aborts_emptied).filter(|e| !e.is_empty()) {
            // Their data is gone: fetches stop naming them, durably before a later pass may
            // remove their markers (it does once they are no longer in `aborted`).
            if self.producers.state.borrow_mut().forget_aborted(emptied) {
                self.producers.dirty.set(true);
            }
            self.snapshot_producers().await?;
        }
        Ok(stats)
    }

    /// Applies time and size retention (the topic's `retention.ms` / `retention.bytes`).
    pub async fn apply_retention(
        &self,
        now_ms: i64,
        retention_ms: Option<i64>,
        retention_bytes: Option<u64>,
    ) -> Result<(), LogError> {
        if let Some(cut) = self.log.retention_offset(now_ms, retention_ms, retention_bytes) {
            self.log.delete_before(cut, now_ms).await?;
        }
        Ok(())
    }
}
