//! The log cleaner: compaction of a log's sealed segments, keeping the latest record of every
//! key (Kafka's `cleanup.policy=compact`).
//!
//! One pass: pick the cleanable range (sealed segments below the caller's upper bound — the
//! last stable offset — and old enough for `min.compaction.lag.ms`), and clean it when its
//! dirty part (what the last pass did not see) is at least `min.cleanable.dirty.ratio` of it,
//! when its oldest dirty record waited `max.compaction.lag.ms`, or when a kept tombstone's
//! `delete.retention.ms` ran out. It builds a map from each key's hash to its latest offset in
//! the dirty part (bounded by `dedupe_buffer_bytes`: the dirty part is cut short when the map is
//! full), then rewrites the segments from the log start to the map's end, group by group (as
//! many consecutive segments as fit in `segment.bytes`): a record stays if no later record of
//! its key is in the map; records of aborted transactions go.
//!
//! Tombstones and transaction markers go in two steps, as in Kafka since KIP-534: the first
//! pass that cleans past one keeps it and stamps its batch with a delete horizon (now +
//! `delete.retention.ms`, in the batch header); a pass after the horizon removes it. So a
//! consumer that read up to the log end within `delete.retention.ms` of the pass sees every
//! delete, whatever timestamps the producer wrote. A marker becomes removable only once no
//! batch of its transaction is left before it (its aborted records go, or every committed
//! record was superseded; in this pass or an earlier one: Kafka waits for the next pass, which
//! changes nothing for a reader since the marker still has its horizon to go), so a
//! read_committed consumer never meets data whose marker is gone.
//!
//! Invariants: offsets never change, so a reader's position stays valid; a rewritten batch keeps
//! its header (base offset, last offset delta, producer id, epoch and sequence) and records keep
//! their deltas; the active segment is never touched; a cleaned segment covers exactly the
//! offsets its group did (`segment::covered_end_path`), so recovery still tells a range the
//! cleaner emptied from a missing segment.
//!
//! Crash safety: a group is written to `<base>.log.cleaning.tmp` and synced; renaming it to
//! `<base>.<end>.swap` is the commit point; then the group's old files go, the covered end is
//! written and the swap file becomes `<base>.log`. Recovery deletes `.tmp` files (the old
//! segments are intact) and completes any swap it finds ([`complete_swap`]), so a kill at any
//! moment leaves either the old segments or the cleaned one, never both, never neither.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::{LogError, PartitionLog};
use crate::batch::{self, BatchView};
use crate::io::{align_up, IoBuf, SegmentFile, Storage};
use crate::records;
use crate::segment::{self, ReadError, ScannedBatch, Segment};

/// What the cleaner of one log is told (the topic's configs and the shard's share of the
/// broker's cleaner settings).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleanerConfig {
    /// `delete.retention.ms`: how long a tombstone or marker stays after the first pass that
    /// kept it (its delete horizon).
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: a segment with a record younger than this is not cleaned.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a dirty record this old forces a pass whatever the ratio.
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`.
    pub min_cleanable_dirty_ratio: f64,
    /// Memory for the key map (`log.cleaner.dedupe.buffer.size`, this shard's share).
    pub dedupe_buffer_bytes: usize,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        Self {
            delete_retention_ms: 24 * 3600 * 1000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
            dedupe_buffer_bytes: 128 << 20,
        }
    }
}

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanStats {
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_removed: u64,
    pub tombstones_removed: u64,
    /// Transaction markers removed (their transaction left nothing before them).
    pub markers_removed: u64,
    /// Abort markers kept whose transaction left no data (producer id, marker offset): the
    /// caller forgets these aborted transactions and says so durably; the markers go in a pass
    /// after that (when they are no longer in its `aborted` list) and after their horizon.
    /// Until then a read_committed consumer told of the transaction still meets its end.
    pub aborts_emptied: Vec<(i64, i64)>,
    pub segments_before: usize,
    pub segments_after: usize,
    /// Offsets below this are clean now (the next pass's dirty part starts here).
    pub cleaned_to: i64,
}

/// A log's cleaning state: kept in `cleaner-offset-checkpoint` beside the segments.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct CleanerState {
    loaded: bool,
    /// Offsets below this were seen by a pass (the clean part).
    cleaned_to: i64,
    /// The earliest delete horizon of a kept tombstone or marker (a pass is due then).
    tombstone_deadline: Option<i64>,
}

const CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";
/// Bytes the key map spends per key (hash, offset and the table's overhead).
const MAP_ENTRY_BYTES: usize = 48;
/// How much the cleaner reads at once.
const READ_BYTES: usize = 1 << 20;

fn key_hash(key: &[u8]) -> u128 {
    // Two independent 64-bit hashes: a collision would drop a live key's record, so the map
    // keys are 128 bits wide (as Kafka's 16-byte digests).
    let mut a = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut a);
    let mut b = std::collections::hash_map::DefaultHasher::new();
    0x9e37_79b9_7f4a_7c15_u64.hash(&mut b);
    key.hash(&mut b);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

pub(super) fn swap_path(dir: &Path, base: i64, end: i64) -> PathBuf {
    dir.join(format!("{base:020}.{end:020}.swap"))
}

/// The `(base, end)` of a swap file's name.
pub(super) fn parse_swap_name(name: &str) -> Option<(i64, i64)> {
    let stem = name.strip_suffix(".swap")?;
    let (b, e) = stem.split_once('.')?;
    Some((b.parse().ok()?, e.parse().ok()?))
}

/// Finishes replacing the segments based in `[base, end)` (`bases`: those present) by the
/// cleaned segment in the swap file: removes them, records the covered end and renames the swap
/// file to the segment's name. Idempotent: recovery repeats it after a crash.
pub(super) async fn complete_swap<S: Storage>(
    storage: &S,
    dir: &Path,
    base: i64,
    end: i64,
    bases: &[i64],
) -> io::Result<()> {
    for &b in bases.iter().filter(|&&b| b >= base && b < end) {
        segment::remove_files(storage, dir, b).await?;
    }
    storage.write_small(&segment::covered_end_path(dir, base), end.to_string().as_bytes()).await?;
    storage.rename(&swap_path(dir, base, end), &segment::data_path(dir, base)).await?;
    storage.sync_dir(dir).await
}

/// One sealed segment as a pass sees it.
struct SegInfo<F> {
    base: i64,
    next: i64,
    size: u64,
    max_timestamp: i64,
    file: Rc<F>,
    first_position: u64,
}

impl<F> Clone for SegInfo<F> {
    fn clone(&self) -> Self {
        Self { file: self.file.clone(), ..*self }
    }
}

/// Reads a segment's batches in order from a batch boundary, a chunk of whole batches at a time
/// (callers skip the batches below the offset they start at).
struct Cursor<'a, F: SegmentFile> {
    file: &'a F,
    base: i64,
    pos: u64,
    size: u64,
}

impl<F: SegmentFile> Cursor<'_, F> {
    /// The next run of whole batches (empty at the end of the segment).
    async fn next_chunk(&mut self) -> Result<Vec<u8>, ReadError> {
        if self.pos >= self.size {
            return Ok(Vec::new());
        }
        let reader = segment::DiskReader { file: self.file, base_offset: self.base, written: self.size };
        let bytes = reader.read(self.pos, i64::MIN, READ_BYTES, i64::MAX).await?;
        self.pos = if bytes.is_empty() { self.size } else { self.pos + bytes.len() as u64 };
        Ok(bytes)
    }
}

fn corrupt(base: i64, e: impl std::fmt::Display) -> LogError {
    LogError::Read(ReadError::Corrupt { base_offset: base, position: 0, reason: e.to_string() })
}

/// Whether a transactional batch of `producer_id` at `offset` belongs to an aborted transaction
/// (`aborted`: producer id, first offset, last offset).
fn is_aborted(aborted: &[(i64, i64, i64)], producer_id: i64, offset: i64) -> bool {
    aborted.iter().any(|&(p, first, last)| p == producer_id && first <= offset && offset <= last)
}

/// What one pass carries from batch to batch, in offset order.
#[derive(Default)]
struct PassState {
    /// The earliest delete horizon among what the pass kept.
    deadline: Option<i64>,
    /// Producers with a committed transactional batch kept (some of its records stay) since
    /// their last marker: that marker must stay too. An aborted batch before the key map's end
    /// always goes in the pass that reads it, so its marker needs no such entry.
    open_committed: std::collections::HashSet<i64>,
}

impl PassState {
    fn keep_until(&mut self, horizon: i64) {
        self.deadline = Some(self.deadline.map_or(horizon, |d| d.min(horizon)));
    }
}

/// Whether a control batch holds a COMMIT (`Some(true)`) or ABORT (`Some(false)`) marker.
fn marker_kind(view: &BatchView<'_>) -> Option<bool> {
    let records = records::decode_records(view).ok()?;
    let key = records.first()?.key.as_deref()?;
    match i16::from_be_bytes(key.get(2..4)?.try_into().ok()?) {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

/// The key map of a pass: each key's latest offset in the dirty part below `end`.
struct OffsetMap {
    latest: HashMap<u128, i64>,
    end: i64,
}

/// The plan of one pass.
struct Plan<F> {
    /// Sealed segments from the log start to the cleanable end, in order.
    segments: Vec<SegInfo<F>>,
    dirty_start: i64,
}

/// An output segment being written: aligned chunks out of one buffer.
struct Output<F: SegmentFile> {
    file: F,
    buf: F::Buf,
    buf_pos: u64,
    used: usize,
    size: u64,
    batches: Vec<ScannedBatch>,
}

impl<F: SegmentFile> Output<F> {
    async fn push(&mut self, view: &BatchView<'_>) -> io::Result<()> {
        let bytes = view.bytes();
        self.batches.push(ScannedBatch {
            position: self.size,
            size: bytes.len() as u64,
            base_offset: view.base_offset(),
            last_offset: view.last_offset(),
            max_timestamp: view.max_timestamp(),
            leader_epoch: view.header().partition_leader_epoch.get(),
        });
        let mut rest = bytes;
        while !rest.is_empty() {
            let cap = self.buf.as_bytes().len();
            let n = rest.len().min(cap - self.used);
            self.buf.as_bytes_mut()[self.used..self.used + n].copy_from_slice(&rest[..n]);
            self.used += n;
            self.size += n as u64;
            rest = &rest[n..];
            if self.used == cap {
                let full = std::mem::replace(&mut self.buf, self.file.alloc(cap));
                self.file.write_at(full, self.buf_pos).await?;
                self.buf_pos += cap as u64;
                self.used = 0;
            }
        }
        Ok(())
    }

    /// Writes the rest, trims the file to its content and syncs it.
    async fn finish(mut self) -> io::Result<(F, u64, Vec<ScannedBatch>)> {
        if self.used > 0 {
            let padded = align_up(self.used as u64) as usize;
            self.buf.as_bytes_mut()[self.used..padded].fill(0);
            let mut last = std::mem::replace(&mut self.buf, self.file.alloc(crate::io::ALIGN));
            last.trim_to(padded);
            self.file.write_at(last, self.buf_pos).await?;
        }
        self.file.truncate(self.size).await?;
        self.file.sync().await?;
        Ok((self.file, self.size, self.batches))
    }
}

impl<S: Storage> PartitionLog<S> {
    async fn cleaner_state(&self) -> Result<CleanerState, LogError> {
        let st = self.cleaner.get();
        if st.loaded {
            return Ok(st);
        }
        let mut st = CleanerState { loaded: true, ..CleanerState::default() };
        if let Some(b) = self.storage.read_small(&self.dir.join(CHECKPOINT_FILE)).await? {
            let text = String::from_utf8_lossy(&b);
            let mut it = text.split_whitespace();
            st.cleaned_to = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            st.tombstone_deadline = it.next().and_then(|v| v.parse().ok()).filter(|&d: &i64| d >= 0);
        }
        self.cleaner.set(st);
        Ok(st)
    }

    async fn save_cleaner_state(&self, st: CleanerState) -> Result<(), LogError> {
        self.cleaner.set(st);
        let text = format!("{} {}", st.cleaned_to, st.tombstone_deadline.unwrap_or(-1));
        match self.storage.write_small(&self.dir.join(CHECKPOINT_FILE), text.as_bytes()).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.poison("writing the cleaner checkpoint", &e)),
        }
    }

    /// Offsets below this were seen by a cleaning pass.
    pub fn cleaned_to(&self) -> i64 {
        self.cleaner.get().cleaned_to
    }

    /// The sealed segments a pass may clean: from the log start, each below `upper` and the
    /// high watermark, and not younger than `min.compaction.lag.ms`.
    fn cleanable_segments(&self, now_ms: i64, cfg: &CleanerConfig, upper: i64) -> Vec<SegInfo<S::File>> {
        let inner = self.inner.borrow();
        let upper = upper.min(inner.high_watermark);
        let active = inner.active().base_offset;
        let start = inner.log_start_offset;
        let mut out = Vec::new();
        for s in inner.segments.values() {
            if s.base_offset == active || s.next_offset > upper {
                break;
            }
            if cfg.min_compaction_lag_ms > 0 && s.max_timestamp > now_ms.saturating_sub(cfg.min_compaction_lag_ms) {
                break;
            }
            if s.next_offset <= start {
                continue;
            }
            out.push(SegInfo {
                base: s.base_offset,
                next: s.next_offset,
                size: s.size,
                max_timestamp: s.max_timestamp,
                file: s.file.clone(),
                first_position: s.position_for(start.max(s.base_offset)),
            });
        }
        out
    }

    /// Decides whether a pass is due now and over what.
    async fn plan(&self, now_ms: i64, cfg: &CleanerConfig, upper: i64) -> Result<Option<Plan<S::File>>, LogError> {
        let st = self.cleaner_state().await?;
        let segments = self.cleanable_segments(now_ms, cfg, upper);
        let Some(last) = segments.last() else { return Ok(None) };
        let end = last.next;
        let dirty_start = st.cleaned_to.max(self.log_start_offset()).min(end);
        let total: u64 = segments.iter().map(|s| s.size).sum();
        let dirty: u64 = segments.iter().filter(|s| s.next > dirty_start).map(|s| s.size).sum();
        let ratio = if total == 0 { 0.0 } else { dirty as f64 / total as f64 };
        let tombstones_due = st.tombstone_deadline.is_some_and(|d| now_ms >= d);
        let mut due = dirty_start < end && ratio >= cfg.min_cleanable_dirty_ratio;
        if !due && dirty_start < end && cfg.max_compaction_lag_ms < i64::MAX {
            // The oldest dirty record: the first batch of the first dirty segment.
            if let Some(s) = segments.iter().find(|s| s.next > dirty_start) {
                let pos = if dirty_start > s.base { self.position_in(s.base, dirty_start) } else { 0 };
                let mut cur = Cursor { file: s.file.as_ref(), base: s.base, pos, size: s.size };
                let chunk = cur.next_chunk().await?;
                if let Ok(first) = BatchView::parse(&chunk, usize::MAX) {
                    due = now_ms.saturating_sub(first.max_timestamp()) > cfg.max_compaction_lag_ms;
                } else {
                    due = s.max_timestamp >= 0 && now_ms.saturating_sub(s.max_timestamp) > cfg.max_compaction_lag_ms;
                }
            }
        }
        if !(due || tombstones_due) {
            return Ok(None);
        }
        Ok(Some(Plan { segments, dirty_start }))
    }

    fn position_in(&self, base: i64, offset: i64) -> u64 {
        self.inner.borrow().segments.get(&base).map_or(0, |s| s.position_for(offset))
    }

    /// Builds the key map over the plan's dirty part, stopping early (at a batch boundary) when
    /// the map would pass its memory.
    async fn build_map<T, Fut>(
        &self,
        plan: &Plan<S::File>,
        cfg: &CleanerConfig,
        aborted: &[(i64, i64, i64)],
        stats: &mut CleanStats,
        throttle: &mut T,
    ) -> Result<OffsetMap, LogError>
    where
        T: FnMut(u64) -> Fut,
        Fut: Future<Output = ()>,
    {
        let capacity = (cfg.dedupe_buffer_bytes / MAP_ENTRY_BYTES).max(1);
        let mut map = OffsetMap { latest: HashMap::new(), end: plan.dirty_start };
        for s in plan.segments.iter().filter(|s| s.next > plan.dirty_start) {
            let from = plan.dirty_start.max(s.base);
            let pos = if from > s.base { self.position_in(s.base, from) } else { 0 };
            let mut cur = Cursor { file: s.file.as_ref(), base: s.base, pos, size: s.size };
            loop {
                let chunk = cur.next_chunk().await?;
                if chunk.is_empty() {
                    break;
                }
                stats.bytes_read += chunk.len() as u64;
                throttle(chunk.len() as u64).await;
                for view in batch::parse_all(&chunk, usize::MAX).map_err(|e| corrupt(s.base, e))? {
                    if view.last_offset() < from {
                        continue;
                    }
                    if map.latest.len() + view.record_count().max(0) as usize > capacity && !map.latest.is_empty() {
                        return Ok(map);
                    }
                    let skip = view.is_control()
                        || (view.is_transactional() && is_aborted(aborted, view.producer_id(), view.base_offset()));
                    if !skip {
                        records::for_each_key(&view, |offset, key, _| {
                            if let Some(k) = key {
                                map.latest.insert(key_hash(k), offset);
                            }
                        })
                        .map_err(|e| corrupt(s.base, e))?;
                    }
                    map.end = view.last_offset() + 1;
                }
            }
            map.end = map.end.max(s.next);
        }
        Ok(map)
    }

    /// Runs one cleaning pass if one is due (see the module docs). `upper`: nothing at or above
    /// it is cleaned (the last stable offset); `aborted`: the aborted transactions below it
    /// (producer id, first offset, last offset); `throttle` is called with the bytes read or
    /// written after each step, and waits as long as the cleaner's I/O budget says. Returns
    /// `None` if no pass was due, or if the log changed under it (the pass is given up; the
    /// next one starts over).
    pub async fn clean<T, Fut>(
        &self,
        now_ms: i64,
        cfg: &CleanerConfig,
        upper: i64,
        aborted: &[(i64, i64, i64)],
        mut throttle: T,
    ) -> Result<Option<CleanStats>, LogError>
    where
        T: FnMut(u64) -> Fut,
        Fut: Future<Output = ()>,
    {
        self.inner.borrow().check()?;
        let Some(plan) = self.plan(now_ms, cfg, upper).await? else { return Ok(None) };
        let mut stats = CleanStats { segments_before: self.segment_count(), ..CleanStats::default() };
        let map = self.build_map(&plan, cfg, aborted, &mut stats, &mut throttle).await?;
        // Groups: consecutive segments up to the one holding the map's end, within segment.bytes.
        let seg_bytes = self.config.get().segment_bytes;
        let mut groups: Vec<Vec<SegInfo<S::File>>> = Vec::new();
        for s in plan.segments.iter().filter(|s| s.base < map.end) {
            let fits = groups.last().is_some_and(|g| {
                let size: u64 = g.iter().map(|x| x.size).sum();
                let base = g.first().map_or(s.base, |x| x.base);
                size + s.size <= seg_bytes && s.next - base <= i64::from(u32::MAX)
            });
            match groups.last_mut() {
                Some(g) if fits => g.push(s.clone()),
                _ => groups.push(vec![s.clone()]),
            }
        }
        let mut pass = PassState::default();
        let mut released = Vec::new();
        let mut all_done = true;
        for group in &groups {
            let done = self
                .clean_group(group, &map, now_ms, cfg, aborted, &mut stats, &mut pass, &mut throttle, &mut released)
                .await?;
            if !done {
                all_done = false;
                break;
            }
        }
        // The pass's own handles on the replaced segments go first, so the files can shrink.
        let dirty_start = plan.dirty_start;
        drop((groups, plan));
        self.release_space(released).await;
        if !all_done {
            return Ok(None);
        }
        stats.cleaned_to = map.end.max(dirty_start);
        stats.segments_after = self.segment_count();
        let st = CleanerState { loaded: true, cleaned_to: stats.cleaned_to, tombstone_deadline: pass.deadline };
        self.save_cleaner_state(st).await?;
        Ok(Some(stats))
    }

    /// Rewrites one group of segments into one and swaps it in. Returns false if the log changed
    /// meanwhile (a segment of the group was deleted), and the group was left as it was.
    #[allow(clippy::too_many_arguments)]
    async fn clean_group<T, Fut>(
        &self,
        group: &[SegInfo<S::File>],
        map: &OffsetMap,
        now_ms: i64,
        cfg: &CleanerConfig,
        aborted: &[(i64, i64, i64)],
        stats: &mut CleanStats,
        pass: &mut PassState,
        throttle: &mut T,
        released: &mut Vec<(Rc<S::File>, u64)>,
    ) -> Result<bool, LogError>
    where
        T: FnMut(u64) -> Fut,
        Fut: Future<Output = ()>,
    {
        let (Some(first), Some(last)) = (group.first(), group.last()) else { return Ok(true) };
        let (base, end) = (first.base, last.next);
        let tmp = self.dir.join(format!("{base:020}.log.cleaning.tmp"));
        let file = self.storage.open(&tmp).await?;
        file.truncate(0).await?;
        let chunk = self.config.get().write_chunk_bytes;
        let buf = file.alloc(chunk);
        let mut out = Output { file, buf, buf_pos: 0, used: 0, size: 0, batches: Vec::new() };
        let log_start = self.log_start_offset();
        for s in group {
            let mut cur = Cursor { file: s.file.as_ref(), base: s.base, pos: s.first_position, size: s.size };
            loop {
                let bytes = cur.next_chunk().await?;
                if bytes.is_empty() {
                    break;
                }
                stats.bytes_read += bytes.len() as u64;
                throttle(bytes.len() as u64).await;
                for view in batch::parse_all(&bytes, usize::MAX).map_err(|e| corrupt(s.base, e))? {
                    if view.last_offset() < log_start {
                        continue;
                    }
                    self.clean_batch(&view, map, now_ms, cfg, aborted, stats, pass, &mut out).await?;
                }
            }
        }
        let written = out.size;
        let (file, size, batches) = out.finish().await?;
        stats.bytes_written += written;
        throttle(written).await;
        self.swap_in(group, base, end, file, size, &batches, &tmp, now_ms, released).await
    }

    /// Filters one batch into `out`: whole, rebuilt with the records that stay (and a delete
    /// horizon where it needs one), or not at all.
    #[allow(clippy::too_many_arguments)]
    async fn clean_batch(
        &self,
        view: &BatchView<'_>,
        map: &OffsetMap,
        now_ms: i64,
        cfg: &CleanerConfig,
        aborted: &[(i64, i64, i64)],
        stats: &mut CleanStats,
        pass: &mut PassState,
        out: &mut Output<S::File>,
    ) -> Result<(), LogError> {
        // Everything at or past the map's end stays whole, without decoding it: nothing there is
        // superseded, and its tombstones and markers were not cleaned past yet.
        if view.base_offset() >= map.end {
            return Ok(out.push(view).await?);
        }
        let new_horizon = now_ms.saturating_add(cfg.delete_retention_ms);
        if view.is_control() {
            let pid = view.producer_id();
            let removable = match marker_kind(view) {
                Some(true) => !pass.open_committed.remove(&pid),
                // Its aborted data went in this pass or earlier. While the caller still lists
                // the transaction (and tells fetches of it) the marker must stay to end it.
                Some(false) if aborted.iter().any(|&(p, _, last)| p == pid && last == view.base_offset()) => {
                    stats.aborts_emptied.push((pid, view.base_offset()));
                    let Some(h) = view.delete_horizon_ms() else {
                        pass.keep_until(new_horizon);
                        return self.push_rebuilt(view, None, Some(new_horizon), out).await;
                    };
                    pass.keep_until(h);
                    false
                }
                Some(false) => true,
                None => false,
            };
            return match (removable, view.delete_horizon_ms()) {
                (false, _) => Ok(out.push(view).await?),
                (true, Some(h)) if now_ms >= h => {
                    stats.markers_removed += 1;
                    Ok(())
                }
                (true, Some(h)) => {
                    pass.keep_until(h);
                    Ok(out.push(view).await?)
                }
                (true, None) => {
                    pass.keep_until(new_horizon);
                    self.push_rebuilt(view, None, Some(new_horizon), out).await
                }
            };
        }
        if view.is_transactional() && is_aborted(aborted, view.producer_id(), view.base_offset()) {
            stats.records_removed += view.record_count().max(0) as u64;
            return Ok(());
        }
        // Decide on keys alone; values are copied only for a batch rebuilt with some records.
        let horizon = view.delete_horizon_ms();
        // Per record in order: whether it stays.
        let mut keep = Vec::with_capacity(view.record_count().max(0) as usize);
        let mut tombstones_kept = false;
        records::for_each_key(view, |offset, key, null_value| {
            let superseded = key.is_some_and(|k| map.latest.get(&key_hash(k)).is_some_and(|&latest| latest > offset));
            let expired = key.is_some() && null_value && horizon.is_some_and(|h| now_ms >= h);
            if superseded || expired {
                stats.records_removed += 1;
                stats.tombstones_removed += u64::from(expired && !superseded);
                keep.push(false);
                return;
            }
            tombstones_kept |= key.is_some() && null_value;
            keep.push(true);
        })
        .map_err(|e| corrupt(view.base_offset(), e))?;
        let kept_count = keep.iter().filter(|&&k| k).count();
        if kept_count == 0 {
            return Ok(());
        }
        if view.is_transactional() {
            pass.open_committed.insert(view.producer_id());
        }
        // The first pass to keep a tombstone stamps its batch's horizon; later ones keep it.
        let stamp = (tombstones_kept && horizon.is_none()).then_some(new_horizon);
        if tombstones_kept {
            pass.keep_until(horizon.unwrap_or(new_horizon));
        }
        if kept_count == keep.len() && stamp.is_none() {
            return Ok(out.push(view).await?);
        }
        let all = records::decode_records(view).map_err(|e| corrupt(view.base_offset(), e))?;
        let kept: Vec<_> = all.into_iter().zip(&keep).filter_map(|(r, &k)| k.then_some(r)).collect();
        self.push_rebuilt(view, Some(&kept), stamp, out).await
    }

    /// Pushes `view` rebuilt with `kept` (all its records if `None`) and the delete horizon.
    async fn push_rebuilt(
        &self,
        view: &BatchView<'_>,
        kept: Option<&[records::Record]>,
        horizon: Option<i64>,
        out: &mut Output<S::File>,
    ) -> Result<(), LogError> {
        let all;
        let kept = match kept {
            Some(k) => k,
            None => {
                all = records::decode_records(view).map_err(|e| corrupt(view.base_offset(), e))?;
                &all
            }
        };
        let rebuilt = records::rebuild_batch_with(view, kept, horizon);
        let v = BatchView::parse(&rebuilt, usize::MAX).map_err(|e| corrupt(view.base_offset(), e))?;
        Ok(out.push(&v).await?)
    }

    /// Replaces the group's segments by the cleaned one (see the module docs), unless the log
    /// changed since the pass began.
    #[allow(clippy::too_many_arguments)]
    async fn swap_in(
        &self,
        group: &[SegInfo<S::File>],
        base: i64,
        end: i64,
        file: S::File,
        size: u64,
        batches: &[ScannedBatch],
        tmp: &Path,
        now_ms: i64,
        out: &mut Vec<(Rc<S::File>, u64)>,
    ) -> Result<bool, LogError> {
        let _io = self.io.lock().await;
        let unchanged = {
            let inner = self.inner.borrow();
            let active = inner.active().base_offset;
            inner.check().is_ok()
                && group.iter().all(|g| {
                    g.base != active
                        && inner.segments.get(&g.base).is_some_and(|s| s.size == g.size && s.next_offset == g.next)
                })
        };
        if !unchanged {
            let _ = self.storage.remove(tmp).await;
            return Ok(false);
        }
        let bases: Vec<i64> = group.iter().map(|g| g.base).collect();
        let r = async {
            self.storage.rename(tmp, &swap_path(&self.dir, base, end)).await?;
            self.storage.sync_dir(&self.dir).await?;
            complete_swap(&self.storage, &self.dir, base, end, &bases).await
        }
        .await;
        if let Err(e) = r {
            return Err(self.poison("swapping in a cleaned segment", &e));
        }
        let c = self.config.get();
        let seg = Segment::cleaned(file, base, batches, size, end, c.index_interval_bytes, c.write_chunk_bytes, now_ms);
        let (o, t) = (seg.index.encode_offsets(), seg.index.encode_times());
        let mut released = Vec::new();
        {
            let mut inner = self.inner.borrow_mut();
            for b in &bases {
                released.extend(inner.segments.remove(b).map(|s| (s.file, s.size)));
            }
            inner.segments.insert(base, seg);
            // Reads of the cleaned range must not find the old batches in the tail cache.
            inner.cache.drop_below(end);
        }
        let r1 = self.storage.write_small(&segment::index_path(&self.dir, base), &o).await;
        let r2 = self.storage.write_small(&segment::time_index_path(&self.dir, base), &t).await;
        if let Err(e) = r1.and(r2) {
            return Err(self.poison("writing segment indexes", &e));
        }
        out.extend(released);
        Ok(true)
    }
}
