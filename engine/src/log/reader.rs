//! The read path: batch reads from the tail cache or the segments, and the timestamp lookups of
//! ListOffsets.
//!
//! Invariants: reads take no I/O lock; they copy what they need from the log's state in one
//! borrow and read the device after it. An offset the tail cache covers is read from it, any
//! other from its segment up to what is written (the cache holds every batch at or above
//! `flushed_offset`), so a read never needs bytes that are only in a write buffer. A read
//! returns whole batches, at least one if any is available, and none past the high watermark
//! unless told another end.

use bytes::Bytes;

use super::{LogError, PartitionLog, ReadResult};
use crate::batch::BatchView;
use crate::io::Storage;
use crate::records;
use crate::segment::{self, ReadError};

impl<S: Storage> PartitionLog<S> {
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
}
