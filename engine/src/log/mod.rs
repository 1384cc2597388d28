//! A partition's log: segments, offsets, the tail cache, durability, recovery.
//!
//! Lives on: the shard that owns the partition. `PartitionLog` is `!Send`; concurrent tasks of
//! that shard share it through `Rc` and take turns on its state (a `RefCell` never held across
//! an await) and on its I/O (one [`LocalMutex`] serialises flush, roll, truncate and close).
//!
//! Offsets: `log_start_offset <= high_watermark <= log_end_offset`. `flushed_offset` and
//! `durable_offset` say which offsets are on the device and which are synced; the tail cache
//! holds at least every batch at or above `flushed_offset`, so reads never need bytes that are
//! only in a write buffer.
//!
//! The high watermark (what consumers may read) is the log's own on a single node, by
//! [`HwRule`]: under a durability policy that syncs (`Always`, `IntervalMs`) it covers only
//! synced offsets, so no consumer reads a record a power loss could take back; under `Never`
//! it follows the log end, as Kafka's does on one broker. Replication takes it over
//! ([`PartitionLog::set_high_watermark`]).
//!
//! Here: the public types, the log's state (`Inner`) and its small accessors, the epoch
//! queries, close and delete. The rest, each an `impl` block of its own: `cache` (the tail
//! cache), `recovery` (open), `writer` (append, roll, write-out and sync, write-behind),
//! `reader` (reads and timestamp lookups), `retention` (truncation and deletion).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use thiserror::Error;

use crate::budget::MemoryBudget;
use crate::epoch::EpochCache;
use crate::io::{SegmentFile, Storage};
use crate::segment::{self, ReadError, Segment};
use crate::sync::{LocalMutex, Notify};

use cache::TailCache;
pub use cleaner::{CleanStats, CleanerConfig};

mod cache;
mod cleaner;
mod reader;
mod recovery;
mod retention;
mod writer;
/// When an append counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// After fdatasync; concurrent appends share one (group commit).
    Always,
    /// Synced in the background at most this many milliseconds after being appended.
    IntervalMs(u64),
    /// `flush.messages=N` (N > 1): synced once `messages` offsets are unsynced, by the append
    /// that reaches the count, whose durable (acks=all) answer waits for that sync, as Kafka
    /// flushes inside such an append; with `interval_ms`, also at most that long after being
    /// appended. Readable once written, as under `Never`.
    EveryMessages { messages: u64, interval_ms: Option<u64> },
    /// Written behind, synced only at segment roll and close (Kafka's default).
    Never,
}

impl Durability {
    /// Who moves the high watermark under this policy: syncs, or appends (policies that may
    /// leave records unsynced for an unbounded time make them readable once written).
    fn hw_rule(self) -> HwRule {
        match self {
            Durability::Always | Durability::IntervalMs(_) => HwRule::Durable,
            Durability::EveryMessages { .. } | Durability::Never => HwRule::LogEnd,
        }
    }

    /// The background sync interval, if the policy has one (the owner's tick serves it).
    pub fn interval_ms(self) -> Option<u64> {
        match self {
            Durability::IntervalMs(ms) => Some(ms),
            Durability::EveryMessages { interval_ms, .. } => interval_ms,
            Durability::Always | Durability::Never => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// Per-log settings. Every buffer and cache has its limit here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would grow past this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's first append is older than this.
    pub segment_ms: i64,
    /// `segment.jitter.ms`: each segment rolls up to this much before `segment.ms`, by an
    /// amount fixed per segment (as Kafka's random jitter), so partitions created together do
    /// not all roll in the same instant.
    pub segment_jitter_ms: i64,
    /// `segment.index.bytes`: roll when the active segment's offset or time index would grow
    /// past this many bytes (as Kafka's indexes fill).
    pub segment_index_bytes: u64,
    /// `index.interval.bytes`: bytes of data between sparse index entries.
    pub index_interval_bytes: u64,
    pub durability: Durability,
    pub timestamp_type: TimestampType,
    /// Tail cache limit; it may exceed this only by batches not yet on the device.
    pub tail_cache_bytes_max: usize,
    /// Size of one aligned write buffer (and of the largest single write).
    pub write_chunk_bytes: usize,
    /// Buffered bytes that wake the write-behind task.
    pub write_behind_bytes: u64,
    /// Buffered bytes at which an append writes them itself before going on (backpressure).
    pub write_buffer_bytes_max: u64,
    /// Direct writes one flush keeps in flight.
    pub writes_in_flight_max: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            segment_jitter_ms: 0,
            segment_index_bytes: 10 << 20,
            index_interval_bytes: 4096,
            durability: Durability::Always,
            timestamp_type: TimestampType::CreateTime,
            tail_cache_bytes_max: 16 << 20,
            write_chunk_bytes: 1 << 20,
            write_behind_bytes: 4 << 20,
            write_buffer_bytes_max: 16 << 20,
            writes_in_flight_max: 4,
        }
    }
}

#[derive(Debug, Error)]
pub enum LogError {
    #[error("offset {offset} out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange { offset: i64, log_start_offset: i64, log_end_offset: i64 },
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// A write or sync failed earlier: the log's state on disk is unknown, so it refuses work
    /// until reopened (it is never retried as if nothing happened).
    #[error("log poisoned by an earlier I/O failure: {0}")]
    Poisoned(String),
    #[error("log is closed")]
    Closed,
    #[error("batch of {size} bytes does not fit in segment.bytes {segment_bytes}")]
    BatchLargerThanSegment { size: u64, segment_bytes: u64 },
    #[error("offset overflow: segment {base} cannot index offset {offset}")]
    OffsetOverflow { base: i64, offset: i64 },
}

/// The outcome of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The broker's timestamp for LogAppendTime logs, -1 otherwise (Kafka's Produce response).
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
}

#[derive(Debug, Clone, Default)]
pub struct ReadResult {
    /// Whole batches in offset order, each chunk a run of one or more batches.
    pub chunks: Vec<Bytes>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    /// Filled by the partition layer, which knows the transactions: the offset read_committed
    /// consumers may read up to, and for a read_committed read the aborted transactions
    /// (producer id, first offset) overlapping the batches read. The log leaves them at
    /// their defaults.
    pub last_stable_offset: i64,
    pub aborted_transactions: Vec<(i64, i64)>,
}

impl ReadResult {
    pub fn bytes(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum()
    }
    /// The chunks as one buffer (copies unless there is a single chunk).
    pub fn concat(&self) -> Bytes {
        match self.chunks.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => {
                let mut v = Vec::with_capacity(self.bytes());
                for c in many {
                    v.extend_from_slice(c);
                }
                Bytes::from(v)
            }
        }
    }
}

/// Who moves a log's high watermark (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HwRule {
    /// Follows the log end offset (`Durability::Never`).
    LogEnd,
    /// Follows the synced offset.
    Durable,
    /// Set from outside (replication).
    External,
}

struct Inner<F: SegmentFile> {
    /// By base offset; the last one is the active segment. Never empty.
    segments: BTreeMap<i64, Segment<F>>,
    log_start_offset: i64,
    high_watermark: i64,
    hw_rule: HwRule,
    flushed_offset: i64,
    durable_offset: i64,
    cache: TailCache,
    epochs: EpochCache,
    epochs_dirty: bool,
    /// What the shard's budget holds for this log's write buffers (see `recount_buffers`).
    buffers_counted: usize,
    last_sync_ms: i64,
    rolling: bool,
    closed: bool,
    poisoned: Option<String>,
}

impl<F: SegmentFile> Inner<F> {
    fn active(&self) -> &Segment<F> {
        match self.segments.values().next_back() {
            Some(s) => s,
            None => unreachable!("a log always has an active segment"),
        }
    }
    fn active_mut(&mut self) -> &mut Segment<F> {
        match self.segments.values_mut().next_back() {
            Some(s) => s,
            None => unreachable!("a log always has an active segment"),
        }
    }
    fn log_end_offset(&self) -> i64 {
        self.active().next_offset
    }
    /// Offsets below `offset` are synced; under [`HwRule::Durable`] the high watermark moves
    /// with them. Returns true if it moved (long polls must be woken).
    fn mark_durable(&mut self, offset: i64) -> bool {
        self.durable_offset = self.durable_offset.max(offset);
        if self.hw_rule != HwRule::Durable {
            return false;
        }
        let hw = self.durable_offset.min(self.log_end_offset());
        let moved = hw > self.high_watermark;
        self.high_watermark = self.high_watermark.max(hw);
        moved
    }
    fn check(&self) -> Result<(), LogError> {
        if let Some(p) = &self.poisoned {
            return Err(LogError::Poisoned(p.clone()));
        }
        if self.closed {
            return Err(LogError::Closed);
        }
        Ok(())
    }
    /// Records that segment `base` is on the device up to `up_to`, moving `flushed_offset`,
    /// returning the written bytes to the budget and evicting what the cache may now let go.
    fn mark_written(&mut self, base: i64, up_to: u64, cache_bytes_max: usize) {
        let Some(seg) = self.segments.get_mut(&base) else { return };
        let flushed = seg.mark_written(up_to);
        if let Some(f) = flushed {
            self.flushed_offset = self.flushed_offset.max(f);
        }
        self.recount_buffers();
        self.evict(cache_bytes_max);
    }
    /// Brings the budget's count of this log's write buffers up to date with the active
    /// segment's (sealed segments hold none; buffers of writes in flight are counted apart).
    fn recount_buffers(&mut self) {
        let now = self.active().buffer_bytes();
        let budget = &self.cache.budget;
        if now > self.buffers_counted {
            budget.buffer_added(now - self.buffers_counted);
        } else {
            budget.buffer_removed(self.buffers_counted - now);
        }
        self.buffers_counted = now;
    }
    fn evict(&mut self, cache_bytes_max: usize) {
        let flushed = self.flushed_offset;
        if !self.cache.evict(cache_bytes_max, flushed) {
            self.cache.budget.request_trim();
        }
    }
}

/// What the shard's committer was asked to do for a log (see [`crate::commit`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CommitWant {
    /// Offsets below this must be on the device.
    pub write_to: i64,
    /// Offsets below this must be synced.
    pub sync_to: i64,
    /// The log is in the committer's queue.
    pub queued: bool,
}

/// Names of files in a partition directory besides segments.
const LOG_START_FILE: &str = "log-start-offset";
const EPOCH_FILE: &str = "leader-epoch-checkpoint";

pub struct PartitionLog<S: Storage> {
    storage: S,
    dir: PathBuf,
    /// Fixed at open but for what [`PartitionLog::set_roll_limits`] and
    /// [`PartitionLog::apply_topic_config`] change.
    config: Cell<LogConfig>,
    inner: RefCell<Inner<S::File>>,
    io: LocalMutex,
    /// Woken on every append (long-poll fetches wait on it).
    appended: Rc<Notify>,
    /// Woken when the write buffer passes `write_behind_bytes` or a sync is due.
    write_behind: Notify,
    roll_done: Notify,
    stats: Cell<LogStats>,
    budget: Rc<MemoryBudget>,
    commit_want: Cell<CommitWant>,
    cleaner: Cell<cleaner::CleanerState>,
}

/// Counters of the I/O a log did, for benchmarks and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    pub appends: u64,
    pub rolls: u64,
    pub syncs: u64,
    pub writes: u64,
    pub bytes_written: u64,
}

/// What recovery found, for logging and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments: usize,
    /// A torn or corrupt tail was cut (in the named segment).
    pub truncated_segment: Option<i64>,
    /// Segments after a corrupt one, deleted because the log cannot continue past a hole.
    pub deleted_segments: Vec<i64>,
}

impl<S: Storage> PartitionLog<S> {
    /// The storage the log's files live on (the partition layer keeps its own small files,
    /// such as producer-state snapshots, beside the segments).
    pub fn storage(&self) -> &S {
        &self.storage
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn config(&self) -> LogConfig {
        self.config.get()
    }

    /// Applies a topic's new `segment.bytes` and `segment.ms` to the open log: its next
    /// appends roll by them. (Buffer and cache sizes stay as opened.)
    pub fn set_roll_limits(&self, segment_bytes: u64, segment_ms: i64) {
        let mut c = self.config.get();
        c.segment_bytes = segment_bytes;
        c.segment_ms = segment_ms;
        self.config.set(c);
    }

    /// Applies a topic's new settings to the open log: roll limits, index settings (for the
    /// segments it creates from now on) and the durability policy. The high watermark follows
    /// the new policy unless replication owns it: to `Never` it jumps to the log end (what is
    /// appended is readable at once), to a syncing policy it stays where it is and moves on
    /// with the syncs (what was readable stays readable). Buffer and cache sizes stay as
    /// opened.
    pub fn apply_topic_config(&self, topic: &LogConfig) {
        let mut c = self.config.get();
        c.segment_bytes = topic.segment_bytes;
        c.segment_ms = topic.segment_ms;
        c.segment_jitter_ms = topic.segment_jitter_ms;
        c.segment_index_bytes = topic.segment_index_bytes;
        c.index_interval_bytes = topic.index_interval_bytes;
        c.durability = topic.durability;
        self.config.set(c);
        let moved = {
            let mut inner = self.inner.borrow_mut();
            if inner.hw_rule == HwRule::External {
                return;
            }
            inner.hw_rule = c.durability.hw_rule();
            let target = if inner.hw_rule == HwRule::LogEnd {
                inner.log_end_offset()
            } else {
                inner.durable_offset.min(inner.log_end_offset())
            };
            let moved = target > inner.high_watermark;
            inner.high_watermark = inner.high_watermark.max(target);
            moved
        };
        if moved {
            self.appended.notify_all();
        }
    }

    pub fn log_start_offset(&self) -> i64 {
        self.inner.borrow().log_start_offset
    }
    pub fn log_end_offset(&self) -> i64 {
        self.inner.borrow().log_end_offset()
    }
    pub fn high_watermark(&self) -> i64 {
        self.inner.borrow().high_watermark
    }
    /// Offsets below this are synced to the device.
    pub fn durable_offset(&self) -> i64 {
        self.inner.borrow().durable_offset
    }

    pub fn segment_count(&self) -> usize {
        self.inner.borrow().segments.len()
    }
    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.inner.borrow().segments.values().map(|s| s.size).sum()
    }
    /// The base offset of the active (newest) segment: it moves at every roll.
    pub fn active_base_offset(&self) -> i64 {
        self.inner.borrow().active().base_offset
    }
    pub fn segment_bases(&self) -> Vec<i64> {
        self.inner.borrow().segments.keys().copied().collect()
    }
    /// Notified on every append; long polls wait on it.
    pub fn append_notify(&self) -> Rc<Notify> {
        self.appended.clone()
    }
    pub fn stats(&self) -> LogStats {
        self.stats.get()
    }
    pub fn tail_cache_bytes(&self) -> usize {
        self.inner.borrow().cache.bytes
    }

    /// Replication takes over the high watermark (the log stops moving it to the end).
    pub fn set_high_watermark(&self, hw: i64) {
        let mut inner = self.inner.borrow_mut();
        inner.hw_rule = HwRule::External;
        let leo = inner.log_end_offset();
        inner.high_watermark = hw.clamp(inner.log_start_offset, leo);
        drop(inner);
        self.appended.notify_all();
    }

    fn poison(&self, what: &str, e: &io::Error) -> LogError {
        let msg = format!("{what}: {e}");
        self.inner.borrow_mut().poisoned = Some(msg.clone());
        LogError::Poisoned(msg)
    }

    /// Gives back cached batches while the shard's budget is exceeded (the shard's trim pass).
    pub fn trim_cache(&self) {
        let mut inner = self.inner.borrow_mut();
        let flushed = inner.flushed_offset;
        inner.cache.evict(self.config.get().tail_cache_bytes_max, flushed);
    }

    /// OffsetForLeaderEpoch: `(epoch, end offset)`.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        let inner = self.inner.borrow();
        inner.epochs.end_offset_for(epoch, inner.log_end_offset())
    }
    pub fn latest_epoch(&self) -> Option<i32> {
        self.inner.borrow().epochs.latest_epoch()
    }
    /// The epoch the record at `offset` was written in.
    pub fn epoch_at(&self, offset: i64) -> Option<i32> {
        self.inner.borrow().epochs.epoch_at(offset)
    }
    /// A new leader epoch starts at the log end (leadership changed): OffsetForLeaderEpoch
    /// answers for it before anything is appended. Kept in the checkpoint from the next roll or
    /// close; a crash before that loses only this empty epoch's entry.
    pub fn begin_epoch(&self, epoch: i32) {
        let mut inner = self.inner.borrow_mut();
        let leo = inner.log_end_offset();
        if inner.epochs.assign(epoch, leo) {
            inner.epochs_dirty = true;
        }
    }

    /// Writes and syncs everything and writes the active segment's indexes. The log refuses
    /// further work; its files close when the last `Rc` to it is dropped.
    pub async fn close(&self) -> Result<(), LogError> {
        let leo = self.log_end_offset();
        if self.inner.borrow().poisoned.is_none() {
            self.sync_to(leo).await?;
            self.persist_epochs().await?;
        }
        let _io = self.io.lock().await;
        let index = {
            let mut inner = self.inner.borrow_mut();
            if inner.closed {
                return Ok(());
            }
            inner.closed = true;
            let a = inner.active();
            (a.base_offset, a.index.encode_offsets(), a.index.encode_times(), a.file.clone(), a.size)
        };
        self.write_behind.notify_all();
        // Trim the zero padding of the last block so the file ends at the last batch.
        index.3.truncate(index.4).await?;
        index.3.sync().await?;
        self.storage.write_small(&segment::index_path(&self.dir, index.0), &index.1).await?;
        self.storage.write_small(&segment::time_index_path(&self.dir, index.0), &index.2).await?;
        Ok(())
    }

    /// Deletes the whole log (DeleteTopics): marks it closed and removes its directory.
    pub async fn delete(&self) -> Result<(), LogError> {
        let _io = self.io.lock().await;
        self.inner.borrow_mut().closed = true;
        self.write_behind.notify_all();
        self.appended.notify_all();
        self.storage.remove_dir_all(&self.dir).await?;
        Ok(())
    }
}

impl<S: Storage> Drop for PartitionLog<S> {
    fn drop(&mut self) {
        // Dropping without `close` loses nothing that was acknowledged as durable; it only
        // means the next open rescans the active segment.
        if let Ok(mut inner) = self.inner.try_borrow_mut() {
            inner.closed = true;
            self.budget.buffer_removed(inner.buffers_counted);
            inner.buffers_counted = 0;
        }
    }
}
