//! The write path: append, roll, writing out and syncing (group write, group commit), the
//! shard committer's hooks, write-behind and the interval-durability tick.
//!
//! Invariants: only the holder of the log's I/O lock writes, syncs or rolls, and the log's
//! state is changed in borrows never held across an await. Appends assign offsets in order
//! from the log end offset and put every batch in the tail cache. The write path moves
//! `flushed_offset` and `durable_offset` only up, and only to what was written and synced; a
//! failed write or sync poisons the log, which refuses work until reopened. A roll finishes the
//! old segment (written, trimmed to its last batch, synced, epochs checkpointed, indexes
//! written) before the next one exists, and appends wait for it (`rolling`). Write buffers count
//! against the shard's budget (`recount_buffers`; writes in flight are counted apart).

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;

use super::cache::CachedBatch;
use super::{AppendInfo, Durability, HwRule, Inner, LogError, PartitionLog, TimestampType, EPOCH_FILE};
use crate::batch::{self, BatchMeta, ValidatedBatches};
use crate::io::{IoBuf, SegmentFile, Storage};
use crate::segment::{self, PendingWrites, ScannedBatch, Segment};
use crate::sync::Notify;

impl<S: Storage> PartitionLog<S> {
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
        if self.sync_due(info.last_offset + 1) {
            self.sync_to(info.last_offset + 1).await?;
        }
        Ok(info)
    }

    /// Whether an append that ended at `end` must be synced under the log's policy: always
    /// under `Always`; under `EveryMessages` once `end` is that many offsets past what is synced
    /// or already asked to be.
    pub fn sync_due(&self, end: i64) -> bool {
        match self.config.get().durability {
            Durability::Always => true,
            Durability::EveryMessages { messages, .. } => {
                let synced = self.inner.borrow().durable_offset.max(self.commit_want.get().sync_to);
                end.saturating_sub(synced) >= i64::try_from(messages).unwrap_or(i64::MAX)
            }
            Durability::IntervalMs(_) | Durability::Never => false,
        }
    }

    /// Like [`append`](Self::append) but never waits for a sync, whatever the durability
    /// policy (acks=0/1 paths; a later `sync_to` can still make it durable).
    pub async fn append_buffered(
        &self,
        batches: ValidatedBatches,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let gate = |_: i64, _: &[BatchMeta]| Ok::<(), std::convert::Infallible>(());
        match self.append_buffered_gated(batches, leader_epoch, now_ms, gate).await? {
            Ok(info) => Ok(info),
            Err(never) => match never {},
        }
    }

    /// [`append_buffered`](Self::append_buffered), with `gate` deciding at the moment offsets
    /// are assigned: it is called with the offset the first batch will get and the batches'
    /// metadata, after every wait for room and with no await between its answer and the
    /// append, so what it checks and records (a producer's sequence numbers) is atomic with the
    /// offsets. `Ok(Err(e))`: the gate refused and nothing was appended.
    pub async fn append_buffered_gated<E>(
        &self,
        batches: ValidatedBatches,
        leader_epoch: i32,
        now_ms: i64,
        gate: impl FnOnce(i64, &[BatchMeta]) -> Result<(), E>,
    ) -> Result<Result<AppendInfo, E>, LogError> {
        let size = batches.len_bytes() as u64;
        if size > self.config.get().segment_bytes {
            return Err(LogError::BatchLargerThanSegment { size, segment_bytes: self.config.get().segment_bytes });
        }
        self.make_room(&batches, size, now_ms).await?;
        let first_offset = self.inner.borrow().log_end_offset();
        if let Err(e) = gate(first_offset, batches.batches()) {
            return Ok(Err(e));
        }
        let info = {
            let mut inner = self.inner.borrow_mut();
            let (mut bytes, metas) = batches.into_parts();
            let log_append = self.config.get().timestamp_type == TimestampType::LogAppendTime;
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
            inner.evict(self.config.get().tail_cache_bytes_max);
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
        if self.inner.borrow().active().unwritten_bytes() >= self.config.get().write_behind_bytes {
            self.write_behind.notify_all();
        }
        Ok(Ok(info))
    }

    /// Waits until an append of `batches` (`size` bytes) may go ahead: the budget admits it,
    /// this log's write buffer has room for it, and so has the active segment (rolled if not).
    async fn make_room(&self, batches: &ValidatedBatches, size: u64, now_ms: i64) -> Result<(), LogError> {
        // Backpressure: the shard's write buffers have a share of its budget, and this log's
        // buffer has its own limit.
        self.budget.admit(size as usize).await;
        loop {
            let (check, unwritten) = {
                let inner = self.inner.borrow();
                (inner.check(), inner.active().unwritten_bytes())
            };
            check?;
            if unwritten + size <= self.config.get().write_buffer_bytes_max {
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
        Ok(())
    }

    fn needs_roll(&self, inner: &Inner<S::File>, incoming: u64, span: i64, now_ms: i64) -> bool {
        let a = inner.active();
        if a.size == 0 {
            return false;
        }
        let c = self.config.get();
        let too_big = a.size + incoming > c.segment_bytes;
        let roll_ms = c.segment_ms.saturating_sub(self.roll_jitter_ms(a.base_offset));
        let too_old = a.first_append_ms.is_some_and(|t| now_ms - t >= roll_ms);
        // As Kafka's fixed-size index files: full at `segment.index.bytes` / entry size entries.
        let full = |entries: usize, entry_bytes: usize| entries as u64 >= c.segment_index_bytes / entry_bytes as u64;
        let index_full = full(a.index.offsets.len(), crate::index::OFFSET_ENTRY_BYTES)
            || full(a.index.times.len(), crate::index::TIME_ENTRY_BYTES);
        // Relative offsets are u32 in the index.
        let overflow = a.next_offset + span - a.base_offset > i64::from(u32::MAX);
        too_big || too_old || index_full || overflow
    }

    /// How much earlier than `segment.ms` the segment at `base` rolls: below
    /// `min(segment.jitter.ms, segment.ms)`, the same for a segment whenever asked, different
    /// across partitions and segments (a hash of the directory and base offset, where Kafka
    /// draws a random number when the segment is created).
    fn roll_jitter_ms(&self, base: i64) -> i64 {
        let c = self.config.get();
        let bound = c.segment_jitter_ms.min(c.segment_ms);
        if bound <= 0 {
            return 0;
        }
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (self.dir.as_path(), base).hash(&mut h);
        (h.finish() % bound as u64) as i64
    }

    pub(super) async fn persist_epochs(&self) -> Result<(), LogError> {
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
    pub(super) async fn roll(&self, base: i64, now_ms: i64) -> Result<(), LogError> {
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
    pub(super) async fn write_active_pending(&self) -> Result<(Rc<S::File>, i64, u64), LogError> {
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
            inner.mark_written(old_base, up_to, self.config.get().tail_cache_bytes_max);
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
            self.config.get().index_interval_bytes,
            self.config.get().write_chunk_bytes,
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
        inner.evict(self.config.get().tail_cache_bytes_max);
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
        crate::sync::try_join_windowed(futs, self.config.get().writes_in_flight_max.max(1)).await
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
            inner.mark_written(base, up_to, self.config.get().tail_cache_bytes_max);
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
        let window = self.config.get().writes_in_flight_max.max(1);
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
                self.inner.borrow_mut().mark_written(base, end, self.config.get().tail_cache_bytes_max);
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
            if unwritten >= self.config.get().write_behind_bytes && !self.io.is_locked() {
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
        if let Some(ms) = self.config.get().durability.interval_ms() {
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
}
