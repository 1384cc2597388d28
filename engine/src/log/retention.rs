//! Cutting a log at either end: truncating its tail (a follower that diverged from its leader),
//! deleting before an offset (DeleteRecords, retention), the offset retention would delete
//! before, and the files these touch (segments, the stored log start offset).
//!
//! Invariants: after a cut `log_start_offset <= high_watermark <= log_end_offset` still holds,
//! the tail cache is a suffix of the log again and the epoch cache has no entry outside the
//! log. Truncation writes everything buffered first so segments can be cut in place, and leaves
//! `flushed_offset` and `durable_offset` at the new end. Deletion before an offset stores the
//! new log start before it deletes the segments wholly below it, never deletes the active
//! segment (it rolls first when everything is below the start), and never passes the high
//! watermark.

use std::io;
use std::rc::Rc;

use super::{LogError, PartitionLog, LOG_START_FILE};
use crate::io::{SegmentFile, Storage};
use crate::segment::{self, Segment};

/// Bytes a removed segment's file gives back per step (see `PartitionLog::release_space`).
const RELEASE_STEP_BYTES: u64 = 4 << 20;
/// Milliseconds between two steps: at most 800 MB/s of space released per log.
const RELEASE_PAUSE_MS: u64 = 5;

impl<S: Storage> PartitionLog<S> {
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
        self.inner.borrow_mut().mark_written(base, up_to, self.config.get().tail_cache_bytes_max);
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
            self.persist_covered_end(b).await?;
        } else {
            match Segment::create(
                &self.storage,
                &self.dir,
                offset,
                self.config.get().index_interval_bytes,
                self.config.get().write_chunk_bytes,
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

    /// A cleaned segment's covered end moves to the cut (see `Segment::truncate_to`).
    async fn persist_covered_end(&self, base: i64) -> Result<(), LogError> {
        let end = self.inner.borrow().active().next_offset;
        let path = segment::covered_end_path(&self.dir, base);
        match self.storage.write_small(&path, end.to_string().as_bytes()).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.poison("writing a segment's covered end", &e)),
        }
    }

    pub(super) async fn persist_log_start(&self, offset: i64) -> Result<(), LogError> {
        match self.storage.write_small(&self.dir.join(LOG_START_FILE), offset.to_string().as_bytes()).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.poison("writing the log start offset", &e)),
        }
    }

    async fn delete_segment_files(&self, base: i64) -> io::Result<()> {
        segment::remove_files(&self.storage, &self.dir, base).await
    }

    /// Gives the blocks of segments whose files are already removed back to the file system a
    /// step at a time: truncating each open file by [`RELEASE_STEP_BYTES`], pausing
    /// [`RELEASE_PAUSE_MS`] between steps, spreads the freeing of its extents (and, on a file
    /// system mounted with `discard`, the device discards a journal commit waits for) over many
    /// commits, so a produce's fdatasync never waits behind a whole segment's release. Measured
    /// (`benches/cleaner_vs_produce.sh` with `CLEANER_IO=30000000`, ext4 mounted `discard`): the
    /// swap that freed a 1 GiB backlog at once held produce p99.9 at 6x the idle run's.
    ///
    /// Only files nothing else holds: a read in flight keeps its own handle, and a truncation
    /// would cut it short; such a file is released whole when that read drops it. `files` come
    /// with their size as the log knows it (a removed file's size cannot be asked by path: the
    /// path is gone, or names the segment that replaced it). Best effort: the names are gone
    /// already, so a failed step only means the rest is freed at close.
    pub(super) async fn release_space(&self, files: Vec<(Rc<S::File>, u64)>) {
        for (file, mut size) in files {
            if Rc::strong_count(&file) != 1 {
                continue;
            }
            while size > RELEASE_STEP_BYTES {
                size -= RELEASE_STEP_BYTES;
                if file.truncate(size).await.is_err() {
                    break;
                }
                self.storage.pause(RELEASE_PAUSE_MS).await;
            }
        }
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
        let mut released = Vec::new();
        for b in doomed {
            released.extend(self.inner.borrow_mut().segments.remove(&b).map(|s| (s.file, s.size)));
            if let Err(e) = self.delete_segment_files(b).await {
                return Err(self.poison("deleting a segment", &e));
            }
        }
        drop(_io);
        self.release_space(released).await;
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
}
