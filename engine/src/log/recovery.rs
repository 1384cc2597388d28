//! Opening a log: recovery of its segments from the partition directory, as the crate docs
//! describe.
//!
//! Invariants of a recovered log: its offsets are dense (the scan stops at a segment that does
//! not start where the previous one ended, or after one whose tail was cut in the middle of the
//! log, and deletes the segments after it); the active (last) segment was rescanned whole (its
//! index files exist only after a clean close and go when it reopens) and, after a crash, its
//! tail was synced unless the policy is `Durability::Never`; the log start offset is the stored
//! one clamped to the recovered segments; leader-epoch entries past the recovered end or before
//! the start are gone from the checkpoint, and entries the scan found are written at the next
//! roll or close. It starts with `flushed_offset`, `durable_offset` and the high watermark at
//! its end offset and an empty tail cache.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

use super::{
    CommitWant, Durability, Inner, LogConfig, LogError, LogStats, PartitionLog, RecoveryReport, TailCache, EPOCH_FILE,
    LOG_START_FILE,
};
use crate::budget::MemoryBudget;
use crate::epoch::EpochCache;
use crate::io::{SegmentFile, Storage};
use crate::segment::{self, Segment};
use crate::sync::{LocalMutex, Notify};

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

/// Completes every cleaner swap a crash interrupted after its commit point (see
/// [`super::cleaner`]): the cleaned segment replaces the segments its range covers.
async fn finish_swaps<S: Storage>(storage: &S, dir: &Path) -> Result<(), LogError> {
    let names = storage.list(dir).await?;
    let bases: Vec<i64> =
        names.iter().filter_map(|n| n.strip_suffix(".log").and_then(|stem| stem.parse::<i64>().ok())).collect();
    for (base, end) in names.iter().filter_map(|n| super::cleaner::parse_swap_name(n)) {
        super::cleaner::complete_swap(storage, dir, base, end, &bases).await?;
    }
    Ok(())
}

/// Opens the segments at `bases` (sorted) in order while the log continues: the scan stops at a
/// segment that does not start where the previous one ended, or after one whose tail was cut in
/// the middle of the log, and deletes the segments from there on.
async fn scan_segments<S: Storage>(
    storage: &S,
    dir: &Path,
    bases: &[i64],
    config: &LogConfig,
    now_ms: i64,
) -> Result<(BTreeMap<i64, Segment<S::File>>, RecoveryReport), LogError> {
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
            Segment::open(storage, dir, base, config.index_interval_bytes, config.write_chunk_bytes, true, now_ms)
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
            segment::remove_files(storage, dir, base).await?;
            report.deleted_segments.push(base);
        }
    }
    Ok((segments, report))
}

/// Brings the epoch cache read from the checkpoint in line with the recovered log
/// `[log_start_offset, leo)` and with the epochs its segments' scans found. Returns whether
/// entries were cut (the checkpoint must be rewritten at once) and whether the cache now differs
/// from the checkpoint.
fn reconcile_epochs<F: SegmentFile>(
    epochs: &mut EpochCache,
    segments: &BTreeMap<i64, Segment<F>>,
    leo: i64,
    log_start_offset: i64,
) -> (bool, bool) {
    // Entries beyond the recovered log must go from the checkpoint at once; entries the scan
    // found are written at the next roll or close (the next open would find them again).
    let epochs_cut = epochs.truncate_from_end(leo) | epochs.truncate_from_start(log_start_offset);
    let mut epochs_dirty = epochs_cut;
    for seg in segments.values() {
        for &(epoch, start) in &seg.scanned_epochs {
            epochs_dirty |= epochs.assign(epoch, start);
        }
    }
    (epochs_cut, epochs_dirty)
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
        finish_swaps(&storage, dir).await?;
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

        let (mut segments, mut report) = scan_segments(&storage, dir, &bases, &config, now_ms).await?;
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
        let (epochs_cut, epochs_dirty) = reconcile_epochs(&mut epochs, &segments, leo, log_start_offset);
        if let Some(active) = segments.values().next_back() {
            reopen_active(&storage, dir, active, &names, config.durability).await?;
        }
        let inner = Inner {
            segments,
            log_start_offset,
            high_watermark: leo,
            hw_rule: config.durability.hw_rule(),
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
            config: Cell::new(config),
            inner: RefCell::new(inner),
            io: LocalMutex::default(),
            appended: Rc::new(Notify::new()),
            write_behind: Notify::new(),
            roll_done: Notify::new(),
            stats: Cell::new(LogStats::default()),
            budget,
            commit_want: Cell::new(CommitWant::default()),
            cleaner: Cell::new(Default::default()),
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
}
