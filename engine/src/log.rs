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

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;

use bytes::Bytes;
use thiserror::Error;

use crate::batch::{self, BatchView, ValidatedBatches};
use crate::budget::MemoryBudget;
use crate::epoch::EpochCache;
use crate::io::{IoBuf, SegmentFile, Storage};
use crate::records;
use crate::segment::{self, PendingWrites, ReadError, ScannedBatch, Segment};
use crate::sync::{LocalMutex, Notify};

/// When an append counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// After fdatasync; concurrent appends share one (group commit).
    Always,
    /// Synced in the background at most this many milliseconds after being appended.
    IntervalMs(u64),
    /// Written behind, synced only at segment roll and close (Kafka's default).
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// Per-log settings. Every buffer and cache has its limit here.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would grow past this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's first append is older than this.
    pub segment_ms: i64,
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

struct CachedBatch {
    base_offset: i64,
    last_offset: i64,
    bytes: Bytes,
}

/// The newest batches of a log, in memory. Its bytes count against the shard's budget.
struct TailCache {
    batches: VecDeque<CachedBatch>,
    bytes: usize,
    budget: Rc<MemoryBudget>,
}

impl TailCache {
    fn new(budget: Rc<MemoryBudget>) -> Self {
        Self { batches: VecDeque::new(), bytes: 0, budget }
    }
    fn covers(&self, offset: i64) -> bool {
        self.batches.front().is_some_and(|b| b.base_offset <= offset)
    }
    fn push(&mut self, b: CachedBatch) {
        self.bytes += b.bytes.len();
        self.budget.cache_added(b.bytes.len());
        self.batches.push_back(b);
    }
    /// Evicts the oldest batches already on the device while the log's own limit or the shard's
    /// budget is exceeded. Returns false if the budget is still exceeded (nothing left to give).
    fn evict(&mut self, bytes_max: usize, flushed_offset: i64) -> bool {
        while self.bytes > bytes_max || self.budget.over() {
            match self.batches.front() {
                Some(b) if b.last_offset < flushed_offset => {
                    let n = b.bytes.len();
                    self.bytes -= n;
                    self.budget.cache_removed(n);
                    self.batches.pop_front();
                }
                _ => break,
            }
        }
        !self.budget.over()
    }
    fn truncate(&mut self, offset: i64) {
        while self.batches.back().is_some_and(|b| b.last_offset >= offset) {
            if let Some(b) = self.batches.pop_back() {
                self.bytes -= b.bytes.len();
                self.budget.cache_removed(b.bytes.len());
            }
        }
    }
    fn clear(&mut self) {
        self.batches.clear();
        self.budget.cache_removed(self.bytes);
        self.bytes = 0;
    }
    fn read(&self, offset: i64, bytes_max: usize, end_offset: i64) -> Vec<Bytes> {
        let start = self.batches.partition_point(|b| b.last_offset < offset);
        let mut out = Vec::new();
        let mut total = 0;
        for b in self.batches.iter().skip(start) {
            if b.base_offset >= end_offset {
                break;
            }
            if !out.is_empty() && total + b.bytes.len() > bytes_max {
                break;
            }
            total += b.bytes.len();
            out.push(b.bytes.clone());
        }
        out
    }
}

impl Drop for TailCache {
    fn drop(&mut self) {
        self.budget.cache_removed(self.bytes);
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
    config: LogConfig,
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

/// Readies the recovered active segment of a log being opened: its index files go (they are
/// rewritten only at a clean close, and the segment is rescanned at every open), and after a
/// crash its tail is synced before it counts as durable and readable.
async fn reopen_active<S: Storage>(
    storage: &S,
    dir: &Path,
    active: &Segment<S::File>,
    names: &[String],
    durability: Durability,
) -> Result<(), LogError> {
    let b = active.base_offset;
    let index = segment::index_path(dir, b);
    // The index exists only after a clean close. After a crash, what the last process wrote may
    // not be synced yet, unless recovery synced it when it cut the file (a tail that ends
    // exactly at a batch needs no cut: a block-aligned one, or a roll cut short between
    // trimming the file and syncing it).
    let clean = index.file_name().is_some_and(|n| names.iter().any(|m| n == m.as_str()));
    if !clean && !active.synced_at_open && active.size > 0 && durability != Durability::Never {
        active.file.sync().await?;
    }
    storage.remove(&index).await?;
    storage.remove(&segment::time_index_path(dir, b)).await?;
    Ok(())
}

impl<S: Storage> PartitionLog<S> {
    /// Opens (creating if needed) the log in `dir`, recovering it as described in the crate docs.
    /// It has a budget of its own, without a limit (see [`open_with_budget`](Self::open_with_budget)).
    pub async fn open(
        storage: S,
        dir: &Path,
        config: LogConfig,
        now_ms: i64,
    ) -> Result<(Rc<Self>, RecoveryReport), LogError> {
        Self::open_with_budget(storage, dir, config, now_ms, MemoryBudget::unlimited()).await
    }

    /// Opens the log with its write buffer and tail cache counted against `budget` (the shard's).
    pub async fn open_with_budget(
        storage: S,
        dir: &Path,
        config: LogConfig,
        now_ms: i64,
        budget: Rc<MemoryBudget>,
    ) -> Result<(Rc<Self>, RecoveryReport), LogError> {
        storage.create_dir_all(dir).await?;
        let mut bases: Vec<i64> = Vec::new();
        let names = storage.list(dir).await?;
        for name in &names {
            if let Some(stem) = name.strip_suffix(".log") {
                if let Ok(b) = stem.parse::<i64>() {
                    bases.push(b);
                }
            } else if name.ends_with(".tmp") {
                storage.remove(&dir.join(name)).await?;
            }
        }
        bases.sort_unstable();
        let stored_start = match storage.read_small(&dir.join(LOG_START_FILE)).await? {
            Some(b) => std::str::from_utf8(&b).ok().and_then(|s| s.trim().parse::<i64>().ok()),
            None => None,
        };
        let mut epochs = match storage.read_small(&dir.join(EPOCH_FILE)).await? {
            Some(b) => EpochCache::decode(&b).unwrap_or_default(),
            None => EpochCache::default(),
        };

        let mut report = RecoveryReport::default();
        let mut segments = BTreeMap::new();
        let last = bases.len().saturating_sub(1);
        let mut expected_next: Option<i64> = None;
        let mut stop_at: Option<usize> = None;
        for (i, &base) in bases.iter().enumerate() {
            if let Some(n) = expected_next {
                if base != n {
                    // Overlap with the previous segment is damage; a gap means the previous one
                    // lost an unsynced tail after this one was created (nothing acknowledged as
                    // durable can be past it). Either way the log ends here: offsets stay dense.
                    stop_at = Some(i);
                    break;
                }
            }
            // The active segment's index files are only written at clean close; they are removed
            // when it reopens, so after a crash it is always rescanned whole.
            let (seg, cut) =
                Segment::open(&storage, dir, base, config.index_interval_bytes, config.write_chunk_bytes, true, now_ms)
                    .await?;
            expected_next = Some(seg.next_offset);
            let damaged_middle = cut && i != last;
            if cut {
                report.truncated_segment = Some(base);
            }
            segments.insert(base, seg);
            if damaged_middle {
                stop_at = Some(i + 1);
                break;
            }
        }
        if let Some(from) = stop_at {
            for &base in &bases[from..] {
                for p in
                    [segment::data_path(dir, base), segment::index_path(dir, base), segment::time_index_path(dir, base)]
                {
                    storage.remove(&p).await?;
                }
                report.deleted_segments.push(base);
            }
        }
        // Drop empty leading segments? No: an empty segment is a valid (if idle) start.
        let start_default = segments.keys().next().copied().unwrap_or(stored_start.unwrap_or(0).max(0));
        if segments.is_empty() {
            let seg =
                Segment::create(&storage, dir, start_default, config.index_interval_bytes, config.write_chunk_bytes)
                    .await?;
            storage.sync_dir(dir).await?;
            segments.insert(start_default, seg);
        }
        report.segments = segments.len();
        let (first_base, leo) = {
            let first = segments.values().next().map_or(0, |s: &Segment<S::File>| s.base_offset);
            let leo = segments.values().next_back().map_or(0, |s| s.next_offset);
            (first, leo)
        };
        let log_start_offset = stored_start.unwrap_or(first_base).max(first_base).min(leo);
        // Entries beyond the recovered log must go from the checkpoint at once; entries the scan
        // found are written at the next roll or close (the next open would find them again).
        let epochs_cut = epochs.truncate_from_end(leo) | epochs.truncate_from_start(log_start_offset);
        let mut epochs_dirty = epochs_cut;
        for seg in segments.values() {
            for &(epoch, start) in &seg.scanned_epochs {
                epochs_dirty |= epochs.assign(epoch, start);
            }
        }
        if let Some(active) = segments.values().next_back() {
            reopen_active(&storage, dir, active, &names, config.durability).await?;
        }
        let inner = Inner {
            segments,
            log_start_offset,
            high_watermark: leo,
            hw_rule: if config.durability == Durability::Never { HwRule::LogEnd } else { HwRule::Durable },
            flushed_offset: leo,
            durable_offset: leo,
            cache: TailCache::new(budget.clone()),
            epochs,
            epochs_dirty,
            buffers_counted: 0,
            last_sync_ms: now_ms,
            rolling: false,
            closed: false,
            poisoned: None,
        };
        let log = Rc::new(Self {
            storage,
            dir: dir.to_path_buf(),
            config,
            inner: RefCell::new(inner),
            io: LocalMutex::default(),
            appended: Rc::new(Notify::new()),
            write_behind: Notify::new(),
            roll_done: Notify::new(),
            stats: Cell::new(LogStats::default()),
            budget,
            commit_want: Cell::new(CommitWant::default()),
        });
        if epochs_cut {
            log.persist_epochs().await?;
        }
        if stored_start.is_some_and(|s| s != log_start_offset) {
            // Recovery lost the tail the stored start pointed into: the clamped start is the truth.
            log.persist_log_start(log_start_offset).await?;
        }
        Ok((log, report))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn config(&self) -> &LogConfig {
        &self.config
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

    /// Appends validated batches: assigns offsets (rewriting only base offset and leader epoch,
    /// and the timestamp for LogAppendTime logs), buffers them for the device, and, under
    /// `Durability::Always`, returns only once they are synced.
    pub async fn append(
        &self,
        batches: ValidatedBatches,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let info = self.append_buffered(batches, leader_epoch, now_ms).await?;
        if self.config.durability == Durability::Always {
            self.sync_to(info.last_offset + 1).await?;
        }
        Ok(info)
    }

    /// Like [`append`](Self::append) but never waits for a sync, whatever the durability
    /// policy (acks=0/1 paths; a later `sync_to` can still make it durable).
    pub async fn append_buffered(
        &self,
        batches: ValidatedBatches,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let size = batches.len_bytes() as u64;
        if size > self.config.segment_bytes {
            return Err(LogError::BatchLargerThanSegment { size, segment_bytes: self.config.segment_bytes });
        }
        // Backpressure: the shard's write buffers have a share of its budget, and this log's
        // buffer has its own limit.
        self.budget.admit(size as usize).await;
        loop {
            let (check, unwritten) = {
                let inner = self.inner.borrow();
                (inner.check(), inner.active().unwritten_bytes())
            };
            check?;
            if unwritten + size <= self.config.write_buffer_bytes_max {
                break;
            }
            let leo = self.log_end_offset();
            self.flush_to(leo, i64::MIN, now_ms).await?;
        }
        // Roll if needed; a roll in progress makes everyone wait for it.
        loop {
            let (rolling, need, base) = {
                let inner = self.inner.borrow();
                inner.check()?;
                (
                    inner.rolling,
                    self.needs_roll(&inner, size, batches.offset_span(), now_ms),
                    inner.active().base_offset,
                )
            };
            if rolling {
                let l = self.roll_done.listen();
                if self.inner.borrow().rolling {
                    l.await;
                }
                continue;
            }
            if !need {
                break;
            }
            self.roll(base, now_ms).await?;
        }
        let info = {
            let mut inner = self.inner.borrow_mut();
            let (mut bytes, metas) = batches.into_parts();
            let log_append = self.config.timestamp_type == TimestampType::LogAppendTime;
            let first_offset = inner.log_end_offset();
            let mut next = first_offset;
            let mut scanned = Vec::with_capacity(metas.len());
            for m in &metas {
                let slice = &mut bytes[m.position..m.position + m.size];
                batch::assign_offset(slice, next, leader_epoch);
                let mut max_ts = m.max_timestamp;
                if log_append {
                    batch::stamp_log_append_time(slice, now_ms);
                    max_ts = now_ms;
                }
                let last = next + i64::from(m.last_offset_delta);
                scanned.push(ScannedBatch {
                    position: m.position as u64,
                    size: m.size as u64,
                    base_offset: next,
                    last_offset: last,
                    max_timestamp: max_ts,
                    leader_epoch,
                });
                next = last + 1;
            }
            let last_offset = next - 1;
            inner.active_mut().append(&bytes, &scanned, now_ms);
            inner.recount_buffers();
            if inner.epochs.assign(leader_epoch, first_offset) {
                inner.epochs_dirty = true;
            }
            let frozen = bytes.freeze();
            for b in &scanned {
                let start = b.position as usize;
                inner.cache.push(CachedBatch {
                    base_offset: b.base_offset,
                    last_offset: b.last_offset,
                    bytes: frozen.slice(start..start + b.size as usize),
                });
            }
            if inner.hw_rule == HwRule::LogEnd {
                inner.high_watermark = next;
            }
            inner.evict(self.config.tail_cache_bytes_max);
            AppendInfo {
                base_offset: first_offset,
                last_offset,
                log_append_time_ms: if log_append { now_ms } else { -1 },
                log_start_offset: inner.log_start_offset,
            }
        };
        self.appended.notify_all();
        let mut st = self.stats.get();
        st.appends += 1;
        self.stats.set(st);
        // A new epoch's checkpoint entry is written at the next roll or close, not here (a
        // small synced file per partition per new epoch stalled the first append to thousands
        // of partitions); recovery rebuilds it from the batch headers of the active segment.
        if self.inner.borrow().active().unwritten_bytes() >= self.config.write_behind_bytes {
            self.write_behind.notify_all();
        }
        Ok(info)
    }

    fn needs_roll(&self, inner: &Inner<S::File>, incoming: u64, span: i64, now_ms: i64) -> bool {
        let a = inner.active();
        if a.size == 0 {
            return false;
        }
        let too_big = a.size + incoming > self.config.segment_bytes;
        let too_old = a.first_append_ms.is_some_and(|t| now_ms - t >= self.config.segment_ms);
        // Relative offsets are u32 in the index.
        let overflow = a.next_offset + span - a.base_offset > i64::from(u32::MAX);
        too_big || too_old || overflow
    }

    async fn persist_epochs(&self) -> Result<(), LogError> {
        let bytes = {
            let mut inner = self.inner.borrow_mut();
            if !inner.epochs_dirty {
                return Ok(());
            }
            inner.epochs_dirty = false;
            inner.epochs.encode()
        };
        if let Err(e) = self.storage.write_small(&self.dir.join(EPOCH_FILE), &bytes).await {
            return Err(self.poison("writing the leader-epoch checkpoint", &e));
        }
        Ok(())
    }

    /// Seals the active segment now (an empty one stays), e.g. for `segment.ms` checks by the
    /// owner or before deleting everything.
    pub async fn roll_now(&self, now_ms: i64) -> Result<(), LogError> {
        let base = self.inner.borrow().active().base_offset;
        self.roll(base, now_ms).await
    }

    /// Seals the active segment and starts a new one at the log end offset.
    /// Rolls the active segment if it is still the one based at `base`: tasks that queued for
    /// the lock behind a roll must not each roll again.
    async fn roll(&self, base: i64, now_ms: i64) -> Result<(), LogError> {
        let _io = self.io.lock().await;
        let next = {
            let mut inner = self.inner.borrow_mut();
            inner.check()?;
            if inner.active().size == 0 || inner.active().base_offset != base {
                return Ok(());
            }
            inner.rolling = true;
            inner.log_end_offset()
        };
        let mut st = self.stats.get();
        st.rolls += 1;
        self.stats.set(st);
        let result = self.roll_locked(next, now_ms).await;
        self.inner.borrow_mut().rolling = false;
        self.roll_done.notify_all();
        result
    }

    /// Writes everything the active segment buffers (the caller holds the I/O lock); returns its
    /// file, base offset and the logical size now on the device (not yet marked written).
    async fn write_active_pending(&self) -> Result<(Rc<S::File>, i64, u64), LogError> {
        let (pending, file, base) = {
            let mut inner = self.inner.borrow_mut();
            let seg = inner.active_mut();
            let taken = (seg.take_writes(), seg.file.clone(), seg.base_offset);
            inner.recount_buffers();
            taken
        };
        let up_to = pending.up_to;
        if let Err(e) = self.write_counted(&file, pending).await {
            return Err(self.poison("writing a segment", &e));
        }
        Ok((file, base, up_to))
    }

    async fn roll_locked(&self, next: i64, now_ms: i64) -> Result<(), LogError> {
        // First finish the old segment (write, trim, sync, indexes), and only then create the new
        // one: a crash in between must not leave a later segment whose base offset is past the
        // old segment's recovered end (a hole in the offsets). Appends wait (`rolling`) meanwhile.
        let (file, old_base, up_to) = self.write_active_pending().await?;
        // A sealed segment's file ends exactly at its last batch (no zero padding), so its size
        // is its logical size and index checks against it are exact.
        if let Err(e) = file.truncate(up_to).await {
            return Err(self.poison("trimming a sealed segment", &e));
        }
        if let Err(e) = file.sync().await {
            return Err(self.poison("syncing a segment", &e));
        }
        // Before the next segment exists: epochs first met in this one are in the checkpoint
        // from here on, and until here the recovery scan of this (last) segment finds them.
        self.persist_epochs().await?;
        let (o, t, hw_moved) = {
            let mut inner = self.inner.borrow_mut();
            inner.mark_written(old_base, up_to, self.config.tail_cache_bytes_max);
            // A sealed segment keeps no write buffer (not even its partial last block).
            inner.active_mut().release_buffers();
            inner.recount_buffers();
            inner.flushed_offset = inner.flushed_offset.max(next);
            let moved = inner.mark_durable(next);
            inner.last_sync_ms = now_ms;
            let seg = inner.active();
            (seg.index.encode_offsets(), seg.index.encode_times(), moved)
        };
        if hw_moved {
            self.appended.notify_all();
        }
        let r1 = self.storage.write_small(&segment::index_path(&self.dir, old_base), &o).await;
        let r2 = self.storage.write_small(&segment::time_index_path(&self.dir, old_base), &t).await;
        if let Err(e) = r1.and(r2) {
            return Err(self.poison("writing segment indexes", &e));
        }
        let fresh = match Segment::create(
            &self.storage,
            &self.dir,
            next,
            self.config.index_interval_bytes,
            self.config.write_chunk_bytes,
        )
        .await
        {
            Ok(s) => s,
            Err(e) => return Err(self.poison("creating a segment", &e)),
        };
        if let Err(e) = self.storage.sync_dir(&self.dir).await {
            return Err(self.poison("syncing the log directory", &e));
        }
        let mut inner = self.inner.borrow_mut();
        inner.segments.insert(next, fresh);
        inner.evict(self.config.tail_cache_bytes_max);
        Ok(())
    }

    /// Issues taken writes; their buffers count against the budget until the writes complete.
    async fn write_counted(
        &self,
        file: &Rc<S::File>,
        pending: PendingWrites<<S::File as SegmentFile>::Buf>,
    ) -> io::Result<()> {
        self.budget.buffer_added(pending.buffer_bytes);
        let r = self.write_all(file, pending.writes).await;
        self.budget.buffer_removed(pending.buffer_bytes);
        r
    }

    async fn write_all(&self, file: &Rc<S::File>, writes: Vec<(<S::File as SegmentFile>::Buf, u64)>) -> io::Result<()> {
        let mut st = self.stats.get();
        st.writes += writes.len() as u64;
        st.bytes_written += writes.iter().map(|(b, _)| b.as_bytes().len() as u64).sum::<u64>();
        self.stats.set(st);
        // A sliding window: a new write starts as soon as one finishes, so the device always has
        // `writes_in_flight_max` requests (the depth fio needs for full bandwidth here).
        let futs = writes.into_iter().map(|(buf, pos)| {
            debug_assert!(buf.as_bytes().len() % crate::io::ALIGN == 0);
            file.write_at(buf, pos)
        });
        crate::sync::try_join_windowed(futs, self.config.writes_in_flight_max.max(1)).await
    }

    /// Writes everything buffered to the device unless offsets below `write_to` already are,
    /// and fdatasyncs unless offsets below `sync_to` already are synced (`i64::MIN`: no sync).
    /// Concurrent callers share the work: whoever holds the I/O lock writes (and syncs)
    /// everything appended so far, and a waiter whose offsets that covered leaves without
    /// taking the lock (group write, group commit).
    pub(crate) async fn flush_to(&self, write_to: i64, sync_to: i64, now_ms: i64) -> Result<(), LogError> {
        let covered = || {
            let inner = self.inner.borrow();
            inner.flushed_offset >= write_to && inner.durable_offset >= sync_to
        };
        let Some(_io) = self.io.lock_unless(covered).await else {
            return Ok(());
        };
        let sync = self.inner.borrow().durable_offset < sync_to;
        if sync {
            // Appenders woken by the previous sync get one turn to add their batches to this one.
            crate::sync::yield_now().await;
        }
        let (pending, file, base, target) = {
            let mut inner = self.inner.borrow_mut();
            inner.check()?;
            if inner.flushed_offset >= write_to && inner.durable_offset >= sync_to {
                return Ok(());
            }
            let target = inner.log_end_offset();
            let seg = inner.active_mut();
            let taken = (seg.take_writes(), seg.file.clone(), seg.base_offset, target);
            inner.recount_buffers();
            taken
        };
        let up_to = pending.up_to;
        if let Err(e) = self.write_counted(&file, pending).await {
            return Err(self.poison("writing a segment", &e));
        }
        {
            let mut inner = self.inner.borrow_mut();
            inner.mark_written(base, up_to, self.config.tail_cache_bytes_max);
            inner.flushed_offset = inner.flushed_offset.max(target);
            debug_assert!(target <= inner.log_end_offset());
        }
        if self.inner.borrow().durable_offset < sync_to {
            let mut st = self.stats.get();
            st.syncs += 1;
            self.stats.set(st);
            if let Err(e) = file.sync().await {
                return Err(self.poison("fdatasync", &e));
            }
            let moved = {
                let mut inner = self.inner.borrow_mut();
                inner.last_sync_ms = now_ms;
                inner.mark_durable(target)
            };
            if moved {
                self.appended.notify_all();
            }
        }
        Ok(())
    }

    /// Returns once every offset below `offset` is synced. Concurrent callers share syncs:
    /// whoever takes the I/O lock next syncs everything buffered so far (group commit).
    pub async fn sync_to(&self, offset: i64) -> Result<(), LogError> {
        loop {
            {
                let inner = self.inner.borrow();
                inner.check()?;
                if inner.durable_offset >= offset {
                    return Ok(());
                }
            }
            let now = self.inner.borrow().last_sync_ms;
            self.flush_to(offset, offset, now).await?;
        }
    }

    /// Notes that the committer must write (and with `sync`, sync) offsets below `offset`.
    /// Returns true if the log must join the committer's queue (it was not queued yet).
    pub(crate) fn want_commit(&self, offset: i64, sync: bool) -> bool {
        let mut w = self.commit_want.get();
        w.write_to = w.write_to.max(offset);
        if sync {
            w.sync_to = w.sync_to.max(offset);
        }
        let join = !w.queued;
        w.queued = true;
        self.commit_want.set(w);
        join
    }

    /// The committer's turn on this log: writes (and syncs) what was asked so far. Whatever is
    /// asked from now on needs another turn (the log may be queued again meanwhile). With a
    /// sync to do, `written` is woken between the write and the sync, so whoever waits only for
    /// the write (acks=1) does not wait for the sync too.
    pub(crate) async fn commit_once(&self, now_ms: i64, written: &Notify) -> Result<(), LogError> {
        let mut w = self.commit_want.get();
        w.queued = false;
        self.commit_want.set(w);
        if w.sync_to > self.durable_offset() {
            self.flush_to(w.write_to, i64::MIN, now_ms).await?;
            written.notify_all();
        }
        self.flush_to(w.write_to, w.sync_to, now_ms).await
    }

    /// Whether offsets below `offset` are on the device (and with `sync`, synced): `None`
    /// while not yet, `Some(Err)` if they never will be (the log failed, closed or was cut
    /// below them).
    pub fn commit_status(&self, offset: i64, sync: bool) -> Option<Result<(), LogError>> {
        let inner = self.inner.borrow();
        let reached = if sync { inner.durable_offset } else { inner.flushed_offset };
        if reached >= offset {
            return Some(Ok(()));
        }
        if let Err(e) = inner.check() {
            return Some(Err(e));
        }
        let leo = inner.log_end_offset();
        if offset > leo {
            // Truncated below the batch meanwhile: it is gone, not acknowledged.
            return Some(Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: inner.log_start_offset,
                log_end_offset: leo,
            }));
        }
        None
    }

    /// Gives back cached batches while the shard's budget is exceeded (the shard's trim pass).
    pub fn trim_cache(&self) {
        let mut inner = self.inner.borrow_mut();
        let flushed = inner.flushed_offset;
        inner.cache.evict(self.config.tail_cache_bytes_max, flushed);
    }

    /// Writes everything appended so far to the device, without syncing it.
    pub async fn write_out(&self) -> Result<(), LogError> {
        let leo = self.log_end_offset();
        let now = self.inner.borrow().last_sync_ms;
        self.flush_to(leo, i64::MIN, now).await
    }

    /// Writes and syncs everything appended so far.
    pub async fn sync(&self) -> Result<(), LogError> {
        let leo = self.log_end_offset();
        self.sync_to(leo).await
    }

    /// Streams full chunks of the active segment to the device, keeping
    /// `writes_in_flight_max` writes in flight and taking each new chunk as soon as appends fill
    /// it, so the device never idles between batches of writes. Yields the I/O lock once nothing
    /// is left, or when another task (a sync, a roll) waits for it.
    async fn stream_sealed(&self) -> Result<(), LogError> {
        let Some(_io) = self.io.lock_unless(|| false).await else { unreachable!() };
        let (file, base) = {
            let inner = self.inner.borrow();
            inner.check()?;
            let a = inner.active();
            (a.file.clone(), a.base_offset)
        };
        let window = self.config.writes_in_flight_max.max(1);
        let mut inflight: VecDeque<(Pin<Box<_>>, u64, bool)> = VecDeque::new();
        let mut inflight_bytes = 0usize;
        let result: io::Result<()> = std::future::poll_fn(|cx| loop {
            while inflight.len() < window && !self.io.has_waiters() {
                let next = {
                    let mut inner = self.inner.borrow_mut();
                    let next = inner.segments.get_mut(&base).and_then(Segment::take_sealed);
                    inner.recount_buffers();
                    next
                };
                let Some((buf, pos)) = next else { break };
                let end = pos + buf.as_bytes().len() as u64;
                // Counted in flight until this pass ends.
                self.budget.buffer_added(buf.as_bytes().len());
                inflight_bytes += buf.as_bytes().len();
                let mut st = self.stats.get();
                st.writes += 1;
                st.bytes_written += buf.as_bytes().len() as u64;
                self.stats.set(st);
                inflight.push_back((Box::pin(file.write_at(buf, pos)), end, false));
            }
            if inflight.is_empty() {
                return Poll::Ready(Ok(()));
            }
            let mut progressed = false;
            for (f, _, done) in inflight.iter_mut() {
                if !*done {
                    match f.as_mut().poll(cx) {
                        Poll::Ready(Ok(())) => {
                            *done = true;
                            progressed = true;
                        }
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => {}
                    }
                }
            }
            let mut written_to = None;
            while inflight.front().is_some_and(|(_, _, done)| *done) {
                written_to = inflight.pop_front().map(|(_, end, _)| end);
            }
            if let Some(end) = written_to {
                self.inner.borrow_mut().mark_written(base, end, self.config.tail_cache_bytes_max);
            }
            if !progressed {
                return Poll::Pending;
            }
        })
        .await;
        drop(inflight);
        self.budget.buffer_removed(inflight_bytes);
        if let Err(e) = result {
            return Err(self.poison("writing a segment", &e));
        }
        Ok(())
    }

    /// One pass of write-behind: writes the full chunks buffered so far (tests and tools; the
    /// owner normally runs [`run_write_behind`](Self::run_write_behind)).
    pub async fn write_behind_once(&self) -> Result<(), LogError> {
        self.stream_sealed().await
    }

    /// The write-behind task: the owner spawns it once per log. It writes buffered data when
    /// `write_behind_bytes` accumulate, so appends overlap with device writes, and ends when the
    /// log closes or is poisoned.
    pub async fn run_write_behind(self: Rc<Self>) {
        loop {
            let listen = self.write_behind.listen();
            let (stop, unwritten) = {
                let inner = self.inner.borrow();
                (inner.closed || inner.poisoned.is_some(), inner.active().unwritten_bytes())
            };
            if stop {
                return;
            }
            if unwritten >= self.config.write_behind_bytes && !self.io.is_locked() {
                let before = self.stats.get().writes;
                if self.stream_sealed().await.is_err() {
                    return;
                }
                if self.stats.get().writes != before {
                    continue;
                }
                // Only a partial chunk is buffered: it waits for more data, a sync or the tick.
            }
            listen.await;
        }
    }

    /// Periodic work the owner calls (e.g. every few ms): the interval-durability sync.
    pub async fn tick(&self, now_ms: i64) -> Result<(), LogError> {
        if let Durability::IntervalMs(ms) = self.config.durability {
            let due = {
                let inner = self.inner.borrow();
                inner.durable_offset < inner.log_end_offset() && now_ms - inner.last_sync_ms >= ms as i64
            };
            if due {
                let leo = self.log_end_offset();
                self.flush_to(leo, leo, now_ms).await?;
            }
        }
        Ok(())
    }

    /// Reads whole batches from `offset` on, up to about `bytes_max` (at least one batch if any
    /// is available), not past `end_offset` (`None`: the high watermark). The batch containing
    /// `offset` is returned whole.
    pub async fn read(&self, offset: i64, bytes_max: usize, end_offset: Option<i64>) -> Result<ReadResult, LogError> {
        let mut result = ReadResult::default();
        let (seg_file, seg_base, position, written, seg_next) = {
            let inner = self.inner.borrow();
            if let Some(p) = &inner.poisoned {
                return Err(LogError::Poisoned(p.clone()));
            }
            let leo = inner.log_end_offset();
            result.high_watermark = inner.high_watermark;
            result.log_start_offset = inner.log_start_offset;
            result.log_end_offset = leo;
            if offset < inner.log_start_offset || offset > leo {
                return Err(LogError::OffsetOutOfRange {
                    offset,
                    log_start_offset: inner.log_start_offset,
                    log_end_offset: leo,
                });
            }
            let end = end_offset.unwrap_or(inner.high_watermark).min(leo);
            if offset >= end {
                return Ok(result);
            }
            if inner.cache.covers(offset) {
                result.chunks = inner.cache.read(offset, bytes_max, end);
                return Ok(result);
            }
            // The segment holding `offset`: the last with base <= offset, or the first after a gap.
            let seg = inner
                .segments
                .range(..=offset)
                .next_back()
                .map(|(_, s)| s)
                .filter(|s| s.next_offset > offset)
                .or_else(|| inner.segments.range(offset + 1..).next().map(|(_, s)| s));
            let Some(seg) = seg else {
                return Ok(result);
            };
            (
                seg.file.clone(),
                seg.base_offset,
                seg.position_for(offset.max(seg.base_offset)),
                seg.written,
                seg.next_offset,
            )
        };
        let end = end_offset.unwrap_or(result.high_watermark).min(result.log_end_offset);
        let reader = segment::DiskReader { file: seg_file.as_ref(), base_offset: seg_base, written };
        let bytes = reader.read(position, offset, bytes_max, end).await?;
        if !bytes.is_empty() {
            result.chunks.push(Bytes::from(bytes));
            return Ok(result);
        }
        // Nothing on the device past `offset` in that segment: the rest is in the next segment
        // or in the tail cache.
        if seg_next < result.log_end_offset {
            return Box::pin(self.read(seg_next.max(offset), bytes_max, end_offset)).await;
        }
        Ok(result)
    }

    /// The first record with timestamp >= `ts` at or after the log start: `(offset, timestamp)`.
    pub async fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        let start = {
            let inner = self.inner.borrow();
            let seg = inner.segments.values().find(|s| s.max_timestamp >= ts && s.next_offset > inner.log_start_offset);
            match seg {
                None => return Ok(None),
                Some(s) => {
                    let rel = s.index.lookup_time(ts);
                    (s.base_offset + i64::from(rel)).max(inner.log_start_offset)
                }
            }
        };
        self.scan_records(start, |r| r.timestamp >= ts).await
    }

    /// The record with the largest timestamp (the first of equals): ListOffsets MAX_TIMESTAMP.
    pub async fn max_timestamp(&self) -> Result<Option<(i64, i64)>, LogError> {
        let (start, max) = {
            let inner = self.inner.borrow();
            let mut best: Option<(i64, i64)> = None;
            for s in inner.segments.values() {
                if s.next_offset <= inner.log_start_offset || s.max_timestamp < 0 {
                    continue;
                }
                if best.is_none_or(|(_, m)| s.max_timestamp > m) {
                    best = Some((s.base_offset.max(inner.log_start_offset), s.max_timestamp));
                }
            }
            match best {
                None => return Ok(None),
                Some(b) => b,
            }
        };
        self.scan_records(start, |r| r.timestamp >= max).await
    }

    /// Decodes records from `from` on until `pred` holds; returns that record's offset and time.
    async fn scan_records(
        &self,
        from: i64,
        pred: impl Fn(&records::Record) -> bool,
    ) -> Result<Option<(i64, i64)>, LogError> {
        let mut cursor = from;
        let leo = self.log_end_offset();
        while cursor < leo {
            let r = self.read(cursor, 1 << 20, Some(leo)).await?;
            if r.chunks.is_empty() {
                break;
            }
            for chunk in &r.chunks {
                let mut rest: &[u8] = chunk;
                while !rest.is_empty() {
                    let view = BatchView::parse(rest, usize::MAX).map_err(|e| {
                        LogError::Read(ReadError::Corrupt { base_offset: cursor, position: 0, reason: e.to_string() })
                    })?;
                    rest = &rest[view.size()..];
                    cursor = cursor.max(view.last_offset() + 1);
                    if view.is_control() {
                        continue;
                    }
                    let recs = records::decode_records(&view).map_err(|e| {
                        LogError::Read(ReadError::Corrupt {
                            base_offset: view.base_offset(),
                            position: 0,
                            reason: e.to_string(),
                        })
                    })?;
                    if let Some(rec) = recs.iter().find(|r| r.offset >= from && pred(r)) {
                        return Ok(Some((rec.offset, rec.timestamp)));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Removes every batch whose last offset is >= `offset` (the batch containing `offset` goes
    /// whole), as a follower does when it diverged from its leader.
    pub async fn truncate_to(&self, offset: i64, now_ms: i64) -> Result<(), LogError> {
        let _io = self.io.lock().await;
        {
            let inner = self.inner.borrow();
            inner.check()?;
            if offset >= inner.log_end_offset() {
                return Ok(());
            }
        }
        // Put everything on the device first so segments can be cut in place.
        let (_, base, up_to) = self.write_active_pending().await?;
        self.inner.borrow_mut().mark_written(base, up_to, self.config.tail_cache_bytes_max);
        // Whole segments at or after the offset go.
        let doomed: Vec<i64> = {
            let inner = self.inner.borrow();
            inner.segments.range(offset..).map(|(b, _)| *b).collect()
        };
        // Below the log start there is nothing to keep: restart the log at `offset` (Kafka's
        // truncate-fully-and-start-at).
        let below_start = offset < self.inner.borrow().log_start_offset;
        let doomed: Vec<i64> =
            if below_start { self.inner.borrow().segments.keys().copied().collect() } else { doomed };
        let keep_any = !below_start && self.inner.borrow().segments.range(..offset).next().is_some();
        for b in &doomed {
            if let Err(e) = self.delete_segment_files(*b).await {
                return Err(self.poison("deleting a segment", &e));
            }
            self.inner.borrow_mut().segments.remove(b);
        }
        if keep_any {
            let mut seg = {
                let mut inner = self.inner.borrow_mut();
                let Some((&b, _)) = inner.segments.iter().next_back() else { unreachable!() };
                match inner.segments.remove(&b) {
                    Some(s) => s,
                    None => unreachable!(),
                }
            };
            let r = seg.truncate_to(offset, now_ms).await;
            {
                let mut inner = self.inner.borrow_mut();
                inner.segments.insert(seg.base_offset, seg);
                inner.recount_buffers();
            }
            if let Err(e) = r {
                return Err(self.poison("truncating a segment", &e));
            }
            // The active segment's index files are stale now.
            let b = self.inner.borrow().active().base_offset;
            let _ = self.storage.remove(&segment::index_path(&self.dir, b)).await;
            let _ = self.storage.remove(&segment::time_index_path(&self.dir, b)).await;
        } else {
            match Segment::create(
                &self.storage,
                &self.dir,
                offset,
                self.config.index_interval_bytes,
                self.config.write_chunk_bytes,
            )
            .await
            {
                Ok(s) => {
                    let mut inner = self.inner.borrow_mut();
                    inner.segments.insert(offset, s);
                    inner.recount_buffers();
                }
                Err(e) => return Err(self.poison("creating a segment", &e)),
            }
        }
        if let Err(e) = self.storage.sync_dir(&self.dir).await {
            return Err(self.poison("syncing the log directory", &e));
        }
        let mut start_moved = false;
        {
            let mut inner = self.inner.borrow_mut();
            let leo = inner.log_end_offset();
            inner.cache.truncate(leo);
            if !inner.cache.covers(leo) {
                // The cache must stay a suffix of the log; after a cut it may not be one.
                inner.cache.clear();
            }
            if inner.log_start_offset > leo || below_start {
                inner.log_start_offset = leo;
                inner.cache.clear();
                start_moved = true;
            }
            inner.high_watermark = inner.high_watermark.min(leo);
            inner.flushed_offset = leo;
            inner.durable_offset = leo;
            if inner.epochs.truncate_from_end(leo) {
                inner.epochs_dirty = true;
            }
        }
        if start_moved {
            let start = self.log_start_offset();
            self.persist_log_start(start).await?;
        }
        self.persist_epochs().await
    }

    async fn persist_log_start(&self, offset: i64) -> Result<(), LogError> {
        match self.storage.write_small(&self.dir.join(LOG_START_FILE), offset.to_string().as_bytes()).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.poison("writing the log start offset", &e)),
        }
    }

    async fn delete_segment_files(&self, base: i64) -> io::Result<()> {
        for p in [
            segment::data_path(&self.dir, base),
            segment::index_path(&self.dir, base),
            segment::time_index_path(&self.dir, base),
        ] {
            self.storage.remove(&p).await?;
        }
        Ok(())
    }

    /// Moves the log start offset up to `offset` (DeleteRecords, retention) and deletes the
    /// segments wholly before it. `offset` may not pass the high watermark.
    pub async fn delete_before(&self, offset: i64, now_ms: i64) -> Result<i64, LogError> {
        {
            let mut inner = self.inner.borrow_mut();
            inner.check()?;
            if offset > inner.high_watermark || offset < 0 {
                return Err(LogError::OffsetOutOfRange {
                    offset,
                    log_start_offset: inner.log_start_offset,
                    log_end_offset: inner.log_end_offset(),
                });
            }
            if offset <= inner.log_start_offset {
                return Ok(inner.log_start_offset);
            }
            inner.log_start_offset = offset;
            if inner.epochs.truncate_from_start(offset) {
                inner.epochs_dirty = true;
            }
        }
        self.persist_log_start(offset).await?;
        self.persist_epochs().await?;
        // If everything is before the start, roll so the active segment can go too.
        let roll = {
            let inner = self.inner.borrow();
            let a = inner.active();
            a.size > 0 && a.next_offset <= offset
        };
        if roll {
            let base = self.inner.borrow().active().base_offset;
            self.roll(base, now_ms).await?;
        }
        let _io = self.io.lock().await;
        let doomed: Vec<i64> = {
            let inner = self.inner.borrow();
            let active = inner.active().base_offset;
            inner
                .segments
                .values()
                .filter(|s| s.base_offset != active && s.next_offset <= offset)
                .map(|s| s.base_offset)
                .collect()
        };
        for b in doomed {
            self.inner.borrow_mut().segments.remove(&b);
            if let Err(e) = self.delete_segment_files(b).await {
                return Err(self.poison("deleting a segment", &e));
            }
        }
        Ok(offset)
    }

    /// The offset retention would delete before, by age (`retention_ms`, against each segment's
    /// largest timestamp) and total size (`retention_bytes`). Never touches the active segment.
    pub fn retention_offset(
        &self,
        now_ms: i64,
        retention_ms: Option<i64>,
        retention_bytes: Option<u64>,
    ) -> Option<i64> {
        let inner = self.inner.borrow();
        let total: u64 = inner.segments.values().map(|s| s.size).sum();
        let mut excess = retention_bytes.map(|r| total.saturating_sub(r)).unwrap_or(0);
        let active = inner.active().base_offset;
        let mut cutoff = None;
        for s in inner.segments.values() {
            if s.base_offset == active {
                break;
            }
            let old = retention_ms.is_some_and(|ms| ms >= 0 && s.max_timestamp >= 0 && now_ms - s.max_timestamp > ms);
            let big = retention_bytes.is_some() && excess >= s.size && s.size > 0;
            if !(old || big) {
                break;
            }
            excess = excess.saturating_sub(s.size);
            cutoff = Some(s.next_offset);
        }
        cutoff.filter(|&c| c > inner.log_start_offset)
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
