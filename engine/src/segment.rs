//! One segment: a data file of raw v2 batches written with direct I/O, its sparse indexes, and
//! the aligned write buffer that carries the partial last block across appends.
//!
//! Lives on: the shard that owns the partition.
//!
//! Write path invariant: the bytes `[0, size)` are the segment's content; `[0, written)` are on
//! the device (maybe not synced); `[chunk_pos, size)` are in `chunk` (and full chunks waiting in
//! `sealed`). `chunk_pos` is aligned, so the next write rewrites the partial last block whole,
//! padded with zeros that recovery reads as the end of the log.

use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use thiserror::Error;

use crate::batch::{self, BatchView, LOG_OVERHEAD};
use crate::index::{OffsetEntry, SegmentIndex, TimeEntry};
use crate::io::{align_down, align_up, IoBuf, SegmentFile, Storage, ALIGN};

/// How much a recovery scan or a disk read asks for at once.
const SCAN_READ_BYTES: usize = 1 << 20;

#[derive(Debug, Error)]
pub enum ReadError {
    #[error("I/O error reading segment {base_offset}: {source}")]
    Io { base_offset: i64, source: io::Error },
    #[error("corrupt batch in segment {base_offset} at position {position}: {reason}")]
    Corrupt { base_offset: i64, position: u64, reason: String },
}

pub fn data_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}
pub fn index_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.index"))
}
pub fn time_index_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.timeindex"))
}

/// A cleaned segment's end: the offset after the last offset it covers, which is past its last
/// batch when the cleaner removed the records at its end. Recovery reads it to tell a range
/// the cleaner emptied from a segment that went missing.
pub fn covered_end_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.cleaned"))
}

/// Removes the segment at `base`: its data file, both indexes and its covered end. Recovery (a
/// damaged tail), retention (segments before the log start) and the cleaner (replaced
/// segments) delete segments this one way.
pub async fn remove_files<S: Storage>(storage: &S, dir: &Path, base: i64) -> io::Result<()> {
    for p in [data_path(dir, base), index_path(dir, base), time_index_path(dir, base), covered_end_path(dir, base)] {
        storage.remove(&p).await?;
    }
    Ok(())
}

/// Summary of one batch met while scanning.
#[derive(Debug, Clone, Copy)]
pub struct ScannedBatch {
    pub position: u64,
    pub size: u64,
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    /// The partition leader epoch in the batch header.
    pub leader_epoch: i32,
}

pub struct Segment<F: SegmentFile> {
    pub base_offset: i64,
    pub file: Rc<F>,
    pub index: SegmentIndex,
    /// Logical size: end of the last whole batch.
    pub size: u64,
    /// Bytes known to be on the device.
    pub written: u64,
    /// Offset after the last batch (== base_offset when empty).
    pub next_offset: i64,
    /// Largest batch max timestamp in the segment (-1 when empty).
    pub max_timestamp: i64,
    /// When the first batch was appended (for `segment.ms`); `None` while empty.
    pub first_append_ms: Option<i64>,
    bytes_since_index: u64,
    index_interval_bytes: u64,
    chunk_bytes: usize,
    chunk: Option<F::Buf>,
    chunk_pos: u64,
    sealed: std::collections::VecDeque<(F::Buf, u64)>,
    /// End position and next offset of each batch not yet wholly on the device, oldest first:
    /// turns "bytes written up to P" into "offsets on the device up to O".
    unwritten_batches: std::collections::VecDeque<(u64, i64)>,
    /// `(epoch, first offset)` of each leader epoch the recovery scan met, in order: the log
    /// rebuilds its epoch checkpoint from them (it is written at roll and close, not per append).
    pub scanned_epochs: Vec<(i32, i64)>,
    /// Opening it cut the file and synced it (so everything it holds is synced).
    pub synced_at_open: bool,
}

/// Writes taken from a segment, to be issued in order and then recorded with `mark_written`.
pub struct PendingWrites<B> {
    pub writes: Vec<(B, u64)>,
    /// The logical size these writes make durable once done.
    pub up_to: u64,
    /// Memory the taken buffers hold until their writes complete.
    pub buffer_bytes: usize,
}

impl<F: SegmentFile> Segment<F> {
    /// A new, empty segment file.
    pub async fn create<S: Storage<File = F>>(
        storage: &S,
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u64,
        chunk_bytes: usize,
    ) -> io::Result<Self> {
        let file = storage.open(&data_path(dir, base_offset)).await?;
        // A file of that name can only be a leftover of a removed segment: start empty.
        file.truncate(0).await?;
        Ok(Self::from_parts(file, base_offset, index_interval_bytes, chunk_bytes))
    }

    fn from_parts(file: F, base_offset: i64, index_interval_bytes: u64, chunk_bytes: usize) -> Self {
        assert!(chunk_bytes >= ALIGN && chunk_bytes % ALIGN == 0, "chunk size must be a multiple of {ALIGN}");
        Self {
            base_offset,
            file: Rc::new(file),
            index: SegmentIndex::default(),
            size: 0,
            written: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            first_append_ms: None,
            bytes_since_index: 0,
            index_interval_bytes: index_interval_bytes.max(1),
            chunk_bytes,
            chunk: None,
            chunk_pos: 0,
            sealed: std::collections::VecDeque::new(),
            unwritten_batches: std::collections::VecDeque::new(),
            scanned_epochs: Vec::new(),
            synced_at_open: false,
        }
    }

    /// Opens an existing segment and recovers it: loads the index files if they are sane and
    /// `trust_index`, scans (verifying CRCs) from the last indexed batch, or from the start, to
    /// the end, and cuts the file at the first invalid byte. Returns the segment and whether
    /// anything but zero padding was cut (a torn or corrupt tail).
    pub async fn open<S: Storage<File = F>>(
        storage: &S,
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u64,
        chunk_bytes: usize,
        trust_index: bool,
        now_ms: i64,
    ) -> io::Result<(Self, bool)> {
        let file = storage.open(&data_path(dir, base_offset)).await?;
        let file_size = file.size().await?;
        let mut seg = Self::from_parts(file, base_offset, index_interval_bytes, chunk_bytes);

        let mut start = OffsetEntry { rel_offset: 0, position: 0 };
        if trust_index {
            let o = storage.read_small(&index_path(dir, base_offset)).await?;
            let t = storage.read_small(&time_index_path(dir, base_offset)).await?;
            if let (Some(o), Some(t)) = (o, t) {
                if let Some(idx) = SegmentIndex::decode(&o, &t, file_size) {
                    if let Some(last) = idx.offsets.last() {
                        start = *last;
                    }
                    seg.index = idx;
                }
            }
        }
        let mut scan = seg.scan(start.position.into(), base_offset + i64::from(start.rel_offset), file_size).await;
        if scan.is_err() && start.position != 0 {
            // The index pointed somewhere that does not start a batch: rebuild from scratch.
            seg.index = SegmentIndex::default();
            scan = seg.scan(0, base_offset, file_size).await;
        }
        let scan = scan.map_err(|e| io::Error::other(e.to_string()))?;
        // Rebuild state from the index and the scanned tail.
        if let Some(t) = seg.index.times.last() {
            seg.max_timestamp = t.timestamp;
        }
        let mut end = u64::from(start.position);
        for b in &scan.batches {
            seg.note_batch(b);
            end = b.position + b.size;
            if seg.scanned_epochs.last().is_none_or(|&(e, _)| b.leader_epoch > e) {
                seg.scanned_epochs.push((b.leader_epoch, b.base_offset));
            }
        }
        if scan.batches.is_empty() && start.position != 0 {
            // The index's last entry is a batch the scan must have seen; it did not.
            return Err(io::Error::other("index points past the valid data"));
        }
        seg.size = end;
        seg.written = end;
        let cut_garbage = scan.invalid_tail && file_size > end && !tail_is_zero_padding(&seg, end, file_size).await;
        if file_size != end {
            seg.file.truncate(end).await?;
            seg.file.sync().await?;
            seg.synced_at_open = true;
        }
        if seg.size > 0 {
            seg.first_append_ms = Some(now_ms);
        }
        // A cleaned segment covers offsets past its last batch (see `covered_end_path`).
        if let Some(b) = storage.read_small(&covered_end_path(dir, base_offset)).await? {
            let end = std::str::from_utf8(&b).ok().and_then(|t| t.trim().parse::<i64>().ok());
            if let Some(end) = end.filter(|&e| e > seg.next_offset && e - base_offset <= i64::from(u32::MAX)) {
                seg.next_offset = end;
            }
        }
        seg.load_partial_block().await?;
        Ok((seg, cut_garbage))
    }

    /// A segment the cleaner wrote to `file`: `batches` (positions in the file) fill `[0, size)`,
    /// all on the device and synced, and it covers offsets up to `covered_end`. Sealed: it
    /// holds no write buffer and is never appended to.
    #[allow(clippy::too_many_arguments)]
    pub fn cleaned(
        file: F,
        base_offset: i64,
        batches: &[ScannedBatch],
        size: u64,
        covered_end: i64,
        index_interval_bytes: u64,
        chunk_bytes: usize,
        now_ms: i64,
    ) -> Self {
        let mut seg = Self::from_parts(file, base_offset, index_interval_bytes, chunk_bytes);
        for b in batches {
            seg.note_batch(b);
            if seg.scanned_epochs.last().is_none_or(|&(e, _)| b.leader_epoch > e) {
                seg.scanned_epochs.push((b.leader_epoch, b.base_offset));
            }
        }
        seg.size = size;
        seg.written = size;
        seg.next_offset = seg.next_offset.max(covered_end);
        seg.first_append_ms = (size > 0).then_some(now_ms);
        seg.chunk_pos = align_down(size);
        seg
    }

    fn note_batch(&mut self, b: &ScannedBatch) {
        let rel = (b.base_offset - self.base_offset) as u32;
        if b.max_timestamp > self.max_timestamp {
            self.max_timestamp = b.max_timestamp;
        }
        let past_last = self.index.offsets.last().is_none_or(|e| e.rel_offset < rel);
        // The first batch needs no entry: a lookup below every entry starts at position 0.
        if b.position > 0 && past_last && self.bytes_since_index >= self.index_interval_bytes {
            self.index.push_offset(OffsetEntry { rel_offset: rel, position: b.position as u32 });
            // Time entries sit where offset entries do, so they stay as sparse.
            self.index.push_time(TimeEntry { timestamp: self.max_timestamp, rel_offset: rel });
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += b.size;
        self.next_offset = b.last_offset + 1;
    }

    /// Reads whole batches from `pos` to `file_size`, verifying each. Stops at the first byte that
    /// does not start a valid batch with an offset at or after `expected_next`.
    async fn scan(&self, mut pos: u64, mut expected_next: i64, file_size: u64) -> Result<Scan, ReadError> {
        let mut out = Scan { batches: Vec::new(), invalid_tail: false };
        let mut buf: Vec<u8> = Vec::new();
        let mut buf_pos = pos;
        while pos < file_size {
            let off = (pos - buf_pos) as usize;
            let avail = buf.len().saturating_sub(off);
            let need = if avail >= LOG_OVERHEAD {
                match batch::total_size(&buf[off..], batch::BATCH_BYTES_LIMIT) {
                    Ok(n) => n,
                    Err(_) => {
                        out.invalid_tail = true;
                        break;
                    }
                }
            } else {
                LOG_OVERHEAD
            };
            if avail < need {
                if pos + need as u64 > file_size {
                    out.invalid_tail = true;
                    break;
                }
                let want = need.max(SCAN_READ_BYTES).min((file_size - pos) as usize);
                buf = self
                    .file
                    .read_at(pos, want)
                    .await
                    .map_err(|source| ReadError::Io { base_offset: self.base_offset, source })?;
                buf_pos = pos;
                if buf.len() < need {
                    out.invalid_tail = true;
                    break;
                }
                continue;
            }
            let view = match BatchView::parse(&buf[off..off + need], usize::MAX) {
                Ok(v) => v,
                Err(_) => {
                    out.invalid_tail = true;
                    break;
                }
            };
            if view.base_offset() < expected_next {
                out.invalid_tail = true;
                break;
            }
            out.batches.push(ScannedBatch {
                position: pos,
                size: need as u64,
                base_offset: view.base_offset(),
                last_offset: view.last_offset(),
                max_timestamp: view.max_timestamp(),
                leader_epoch: view.header().partition_leader_epoch.get(),
            });
            expected_next = view.last_offset() + 1;
            pos += need as u64;
        }
        Ok(out)
    }

    /// After open or truncation: put the partial last block into a fresh chunk so the next write
    /// rewrites it whole.
    async fn load_partial_block(&mut self) -> io::Result<()> {
        self.sealed.clear();
        self.unwritten_batches.clear();
        self.chunk = None;
        self.chunk_pos = align_down(self.size);
        let partial = (self.size - self.chunk_pos) as usize;
        if partial > 0 {
            let bytes = self.file.read_at(self.chunk_pos, partial).await?;
            if bytes.len() != partial {
                return Err(io::Error::other("short read of the partial last block"));
            }
            let mut chunk = self.file.alloc(ALIGN);
            chunk.as_bytes_mut()[..partial].copy_from_slice(&bytes);
            self.chunk = Some(chunk);
        }
        Ok(())
    }

    /// Copies one or more whole batches (offsets already assigned) into the write buffer and
    /// updates the indexes. `batches` describe the batches inside `bytes`, positions relative
    /// to `bytes`.
    pub fn append(&mut self, bytes: &[u8], batches: &[ScannedBatch], now_ms: i64) {
        let start = self.size;
        for b in batches {
            let abs = ScannedBatch { position: start + b.position, ..*b };
            self.note_batch(&abs);
            self.unwritten_batches.push_back((abs.position + abs.size, abs.last_offset + 1));
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            let used = (self.size - self.chunk_pos) as usize;
            let cap = self.chunk.as_ref().map_or(0, |c| c.as_bytes().len());
            if used + rest.len() > cap && cap < self.chunk_bytes {
                self.grow_chunk(used, used + rest.len());
            }
            let Some(chunk) = self.chunk.as_mut() else { unreachable!("grow_chunk allocates a chunk") };
            let cap = chunk.as_bytes().len();
            let n = rest.len().min(cap - used);
            chunk.as_bytes_mut()[used..used + n].copy_from_slice(&rest[..n]);
            self.size += n as u64;
            rest = &rest[n..];
            if used + n == self.chunk_bytes {
                if let Some(full) = self.chunk.take() {
                    self.sealed.push_back((full, self.chunk_pos));
                }
                self.chunk_pos += self.chunk_bytes as u64;
            }
        }
        if self.first_append_ms.is_none() {
            self.first_append_ms = Some(now_ms);
        }
    }

    /// Replaces the partial chunk by a larger one holding at least `need` bytes (at most
    /// `chunk_bytes`), keeping its first `used` bytes. Chunks start small and grow fourfold, so
    /// a quiet partition holds one block, not a whole chunk, and a busy one reaches full chunks
    /// after a few appends (copying about a third of what it buffers once).
    fn grow_chunk(&mut self, used: usize, need: usize) {
        let cap = self.chunk.as_ref().map_or(0, |c| c.as_bytes().len());
        let want = need.next_power_of_two().max(cap.saturating_mul(4)).clamp(ALIGN, self.chunk_bytes);
        let mut bigger = self.file.alloc(want);
        if let Some(old) = &self.chunk {
            bigger.as_bytes_mut()[..used].copy_from_slice(&old.as_bytes()[..used]);
        }
        self.chunk = Some(bigger);
    }

    /// Bytes appended but not yet on the device.
    pub fn unwritten_bytes(&self) -> u64 {
        self.size - self.written
    }

    /// Memory of the write buffers holding data not yet on the device (the shard's budget counts
    /// it). A chunk whose content is all written, kept only to rewrite the partial last block,
    /// is not counted (see [`crate::budget`]).
    pub fn buffer_bytes(&self) -> usize {
        let sealed: usize = self.sealed.iter().map(|(b, _)| b.as_bytes().len()).sum();
        let partial_unwritten = self.size > self.written.max(self.chunk_pos);
        let chunk = if partial_unwritten { self.chunk.as_ref().map_or(0, |c| c.as_bytes().len()) } else { 0 };
        sealed + chunk
    }

    /// Drops the write buffers of a sealed segment (everything in them is on the device).
    pub fn release_buffers(&mut self) {
        assert_eq!(self.written, self.size, "releasing the buffers of unwritten data");
        self.chunk = None;
        self.sealed.clear();
    }

    /// Takes everything not yet on the device as aligned writes. The partial last block is
    /// written padded with zeros and stays in a new chunk for the next write.
    pub fn take_writes(&mut self) -> PendingWrites<F::Buf> {
        let mut writes: Vec<_> = std::mem::take(&mut self.sealed).into_iter().collect();
        let mut buffer_bytes: usize = writes.iter().map(|(b, _)| b.as_bytes().len()).sum();
        let used = (self.size - self.chunk_pos) as usize;
        if used > 0 && self.size > self.written {
            if let Some(mut chunk) = self.chunk.take() {
                let padded = align_up(used as u64) as usize;
                chunk.as_bytes_mut()[used..padded].fill(0);
                let partial_start = align_down(used as u64) as usize;
                let partial = used - partial_start;
                if partial > 0 {
                    let mut next = self.file.alloc(ALIGN);
                    next.as_bytes_mut()[..partial].copy_from_slice(&chunk.as_bytes()[partial_start..used]);
                    self.chunk = Some(next);
                }
                buffer_bytes += chunk.as_bytes().len();
                chunk.trim_to(padded);
                writes.push((chunk, self.chunk_pos));
                self.chunk_pos += partial_start as u64;
            }
        }
        PendingWrites { writes, up_to: self.size, buffer_bytes }
    }

    /// Records that the bytes before `up_to` are on the device; returns the offset below which
    /// every batch of this segment now is, if that moved.
    pub fn mark_written(&mut self, up_to: u64) -> Option<i64> {
        self.written = self.written.max(up_to);
        let mut flushed = None;
        while let Some(&(end, next)) = self.unwritten_batches.front() {
            if end > self.written {
                break;
            }
            flushed = Some(next);
            self.unwritten_batches.pop_front();
        }
        flushed
    }

    /// The oldest full chunk waiting to be written, with its position. Full chunks never overlap
    /// each other or a partial-block write still to come, so they can be in flight together.
    pub fn take_sealed(&mut self) -> Option<(F::Buf, u64)> {
        self.sealed.pop_front()
    }
    pub fn chunk_bytes(&self) -> usize {
        self.chunk_bytes
    }

    /// Writes the indexes to their files (segment sealed, or clean shutdown).
    pub async fn write_index_files<S: Storage<File = F>>(&self, storage: &S, dir: &Path) -> io::Result<()> {
        storage.write_small(&index_path(dir, self.base_offset), &self.index.encode_offsets()).await?;
        storage.write_small(&time_index_path(dir, self.base_offset), &self.index.encode_times()).await
    }

    /// Where to start reading for `offset`.
    pub fn position_for(&self, offset: i64) -> u64 {
        let rel = (offset - self.base_offset).clamp(0, i64::from(u32::MAX)) as u32;
        self.index.lookup(rel).position.into()
    }

    /// Cuts the segment before the first batch whose last offset is >= `offset`. Everything
    /// must already be on the device (the caller flushes first). Rebuilds the in-memory state by
    /// rescanning.
    pub async fn truncate_to(&mut self, offset: i64, now_ms: i64) -> io::Result<()> {
        assert_eq!(self.written, self.size, "truncate with unwritten data");
        let mut cut = self.size;
        let mut pos = self.position_for(offset);
        // Find the first batch to drop; the segment ends where it began (or, if none is dropped,
        // at `offset` or the end it covered, whichever is lower).
        let mut new_end = offset.min(self.next_offset);
        let scan = self.scan(pos, i64::MIN, self.size).await.map_err(|e| io::Error::other(e.to_string()))?;
        for b in &scan.batches {
            if b.last_offset >= offset {
                cut = b.position;
                new_end = b.base_offset;
                break;
            }
            pos = b.position + b.size;
        }
        let _ = pos;
        self.file.truncate(cut).await?;
        self.file.sync().await?;
        // Rebuild from scratch: indexes, max timestamp, next offset.
        let rescan = self.scan(0, self.base_offset, cut).await.map_err(|e| io::Error::other(e.to_string()))?;
        self.index = SegmentIndex::default();
        self.bytes_since_index = 0;
        self.max_timestamp = -1;
        self.next_offset = self.base_offset;
        for b in &rescan.batches {
            self.note_batch(b);
        }
        // A cleaned segment may cover offsets past its last kept batch: up to the cut it still
        // does, so no offset below the cut is handed out again.
        self.next_offset = self.next_offset.max(new_end);
        self.size = cut;
        self.written = cut;
        self.first_append_ms = if cut > 0 { self.first_append_ms.or(Some(now_ms)) } else { None };
        self.load_partial_block().await
    }
}

/// Reads batches of one segment from the device, without borrowing the segment (the log's
/// state may change while the read is in flight; the file stays open through its `Rc`).
pub struct DiskReader<'a, F: SegmentFile> {
    pub file: &'a F,
    pub base_offset: i64,
    /// Only bytes below this are read: the rest is still in write buffers (and the tail cache).
    pub written: u64,
}

impl<F: SegmentFile> DiskReader<'_, F> {
    /// Reads whole batches from the device covering `offset` onwards, up to about `bytes_max`
    /// (at least one batch), never past `written`. Every batch returned has a valid CRC.
    pub async fn read(
        &self,
        start_position: u64,
        offset: i64,
        bytes_max: usize,
        end_offset: i64,
    ) -> Result<Vec<u8>, ReadError> {
        let corrupt =
            |position: u64, reason: String| ReadError::Corrupt { base_offset: self.base_offset, position, reason };
        let io_err = |source| ReadError::Io { base_offset: self.base_offset, source };
        let limit = self.written;
        let mut pos = start_position;
        let mut buf: Vec<u8> = Vec::new();
        let mut buf_pos = pos;
        let mut first: Option<u64> = None;
        let mut end = pos;
        while pos < limit {
            let off = (pos - buf_pos) as usize;
            let avail = buf.len().saturating_sub(off);
            let need = if avail >= LOG_OVERHEAD {
                batch::total_size(&buf[off..], batch::BATCH_BYTES_LIMIT).map_err(|e| corrupt(pos, e.to_string()))?
            } else {
                LOG_OVERHEAD
            };
            if avail < need {
                if first.is_some() && (pos - first.unwrap_or(pos)) as usize >= bytes_max {
                    break;
                }
                let want = need.max(bytes_max.min(SCAN_READ_BYTES * 8) + ALIGN).min((limit - pos) as usize);
                // Keep what we have of the result; read on from `pos`.
                let more = self.file.read_at(pos, want).await.map_err(io_err)?;
                if more.len() < need {
                    return Err(corrupt(pos, "batch runs past the written data".into()));
                }
                if let Some(f) = first {
                    buf.truncate((pos - buf_pos) as usize);
                    buf.drain(..(f - buf_pos) as usize);
                    buf_pos = f;
                    buf.extend_from_slice(&more);
                } else {
                    buf = more;
                    buf_pos = pos;
                }
                continue;
            }
            let view = BatchView::parse(&buf[off..off + need], usize::MAX).map_err(|e| corrupt(pos, e.to_string()))?;
            if view.base_offset() >= end_offset {
                break;
            }
            if view.last_offset() >= offset {
                if first.is_none() {
                    first = Some(pos);
                } else if (pos + need as u64 - first.unwrap_or(pos)) as usize > bytes_max {
                    break;
                }
                end = pos + need as u64;
            }
            pos += need as u64;
        }
        match first {
            None => Ok(Vec::new()),
            Some(f) => {
                let s = (f - buf_pos) as usize;
                let e = (end - buf_pos) as usize;
                if s == 0 && e == buf.len() {
                    Ok(buf)
                } else {
                    Ok(buf[s..e].to_vec())
                }
            }
        }
    }
}

struct Scan {
    batches: Vec<ScannedBatch>,
    /// The scan stopped at bytes that are not a valid batch (padding, torn write or damage).
    invalid_tail: bool,
}

async fn tail_is_zero_padding<F: SegmentFile>(seg: &Segment<F>, end: u64, file_size: u64) -> bool {
    // Direct writes pad the last block with zeros and preallocation extends the file with
    // zeros; anything else past the end is damage (a torn or corrupt batch).
    let len = (file_size - end).min(ALIGN as u64 * 2) as usize;
    match seg.file.read_at(end, len).await {
        Ok(b) => b.iter().all(|&x| x == 0),
        Err(_) => false,
    }
}
