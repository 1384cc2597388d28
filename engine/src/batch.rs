//! Kafka v2 record batches: a zero-copy view of the 61-byte header, validation, and the two
//! in-place rewrites the append path is allowed (base offset + leader epoch, and the
//! log-append-time stamp).
//!
//! Layout of the header (all big-endian, Kafka's `RecordBatch` v2):
//!
//! | pos | size | field                  | covered by CRC |
//! |-----|------|------------------------|----------------|
//! | 0   | 8    | base offset            | no             |
//! | 8   | 4    | batch length (from 12) | no             |
//! | 12  | 4    | partition leader epoch | no             |
//! | 16  | 1    | magic (= 2)            | no             |
//! | 17  | 4    | CRC-32C                | no             |
//! | 21  | 2    | attributes             | yes            |
//! | 23  | 4    | last offset delta      | yes            |
//! | 27  | 8    | base timestamp         | yes            |
//! | 35  | 8    | max timestamp          | yes            |
//! | 43  | 8    | producer id            | yes            |
//! | 51  | 2    | producer epoch         | yes            |
//! | 53  | 4    | base sequence          | yes            |
//! | 57  | 4    | record count           | yes            |
//!
//! Because the CRC starts at byte 21, assigning offsets (bytes 0..8) and the leader epoch
//! (12..16) never touches the checksum, and a compressed batch is stored exactly as sent.

use thiserror::Error;
use zerocopy::byteorder::big_endian::{I16, I32, I64, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Size of the v2 batch header in bytes.
pub const HEADER_BYTES: usize = 61;
/// Bytes before `batch length` counts from: base offset (8) + batch length (4).
pub const LOG_OVERHEAD: usize = 12;
/// Where the CRC-covered region starts.
pub const CRC_START: usize = 21;
/// The only magic this engine stores.
pub const MAGIC_V2: i8 = 2;
/// Hard upper bound on one batch, whatever a topic's `max.message.bytes` says: keeps a
/// corrupt length from turning into a huge allocation.
pub const BATCH_BYTES_LIMIT: usize = 256 << 20;

/// The fixed header of a v2 record batch, as it lies in memory and on disk.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Debug, Clone, Copy)]
#[repr(C)]
pub struct BatchHeader {
    pub base_offset: I64,
    pub batch_length: I32,
    pub partition_leader_epoch: I32,
    pub magic: i8,
    pub crc: U32,
    pub attributes: I16,
    pub last_offset_delta: I32,
    pub base_timestamp: I64,
    pub max_timestamp: I64,
    pub producer_id: I64,
    pub producer_epoch: I16,
    pub base_sequence: I32,
    pub record_count: I32,
}

const _: () = assert!(std::mem::size_of::<BatchHeader>() == HEADER_BYTES);

/// Compression codec, from attribute bits 0..3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub fn from_attributes(attributes: i16) -> Result<Self, BatchError> {
        match attributes & 0x07 {
            0 => Ok(Self::None),
            1 => Ok(Self::Gzip),
            2 => Ok(Self::Snappy),
            3 => Ok(Self::Lz4),
            4 => Ok(Self::Zstd),
            other => Err(BatchError::UnknownCompression(other as u8)),
        }
    }

    pub fn attribute_bits(self) -> i16 {
        match self {
            Self::None => 0,
            Self::Gzip => 1,
            Self::Snappy => 2,
            Self::Lz4 => 3,
            Self::Zstd => 4,
        }
    }
}

/// Attribute bit 3: the timestamps are the broker's (LogAppendTime) rather than the producer's.
pub const ATTR_LOG_APPEND_TIME: i16 = 0x08;
/// Attribute bit 4: the batch belongs to a transaction.
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
/// Attribute bit 5: a control batch (transaction markers).
pub const ATTR_CONTROL: i16 = 0x20;
/// Attribute bit 6 (KIP-534): the base timestamp holds the batch's delete horizon, the time
/// after which the cleaner may remove its tombstones (or, for a control batch, the marker).
/// Record timestamps stay exact: their deltas are relative to whatever the base holds.
pub const ATTR_DELETE_HORIZON: i16 = 0x40;

/// Why a byte range is not a valid v2 batch. Each failure has its own variant so that callers
/// (Produce validation, recovery, the fuzzer) can tell them apart.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum BatchError {
    #[error("batch truncated: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    #[error("batch length {0} is smaller than the v2 header")]
    LengthTooSmall(i32),
    #[error("batch of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("unsupported magic {0} (only v2 record batches are stored)")]
    BadMagic(i8),
    #[error("CRC-32C mismatch: header says {stored:#010x}, bytes give {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("record count {0} is not positive")]
    BadRecordCount(i32),
    #[error("last offset delta {last_offset_delta} inconsistent with record count {record_count}")]
    OffsetDeltaMismatch { last_offset_delta: i32, record_count: i32 },
    #[error("unknown compression codec {0}")]
    UnknownCompression(u8),
    #[error("max timestamp {max} is before base timestamp {base}")]
    TimestampOrder { base: i64, max: i64 },
}

/// Reads the header at the start of `bytes` without validating anything but its presence.
pub fn header(bytes: &[u8]) -> Result<&BatchHeader, BatchError> {
    let (h, _) = BatchHeader::ref_from_prefix(bytes)
        .map_err(|_| BatchError::Truncated { needed: HEADER_BYTES, available: bytes.len() })?;
    Ok(h)
}

/// The total size of the batch starting at `bytes[0]`, from its length field, checked against
/// the header size and `limit`. Needs only the first 12 bytes.
pub fn total_size(bytes: &[u8], limit: usize) -> Result<usize, BatchError> {
    if bytes.len() < LOG_OVERHEAD {
        return Err(BatchError::Truncated { needed: LOG_OVERHEAD, available: bytes.len() });
    }
    let len = i32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if len < (HEADER_BYTES - LOG_OVERHEAD) as i32 {
        return Err(BatchError::LengthTooSmall(len));
    }
    let total = len as usize + LOG_OVERHEAD;
    if total > limit.min(BATCH_BYTES_LIMIT) {
        return Err(BatchError::TooLarge { size: total, limit: limit.min(BATCH_BYTES_LIMIT) });
    }
    Ok(total)
}

/// The CRC-32C Kafka stores: over everything from the attributes to the end of the batch.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[CRC_START..])
}

/// A validated batch: the bytes are exactly one whole v2 batch whose CRC matches.
#[derive(Debug, Clone, Copy)]
pub struct BatchView<'a> {
    bytes: &'a [u8],
}

impl<'a> BatchView<'a> {
    /// Validates the batch at the start of `bytes` (which may continue past it) and returns a
    /// view of exactly that batch. `limit` caps the batch size (e.g. `max.message.bytes`).
    pub fn parse(bytes: &'a [u8], limit: usize) -> Result<Self, BatchError> {
        let size = total_size(bytes, limit)?;
        if bytes.len() < size {
            return Err(BatchError::Truncated { needed: size, available: bytes.len() });
        }
        let bytes = &bytes[..size];
        let h = header(bytes)?;
        if h.magic != MAGIC_V2 {
            return Err(BatchError::BadMagic(h.magic));
        }
        let computed = compute_crc(bytes);
        if computed != h.crc.get() {
            return Err(BatchError::CrcMismatch { stored: h.crc.get(), computed });
        }
        Compression::from_attributes(h.attributes.get())?;
        let count = h.record_count.get();
        let delta = h.last_offset_delta.get();
        // A control or compacted batch may carry fewer records than its offset span, never more;
        // a batch straight from a producer is dense (count == delta + 1). Kafka itself only
        // insists on count >= 1 and delta >= count - 1 for stored batches.
        if count < 1 {
            return Err(BatchError::BadRecordCount(count));
        }
        if delta < 0 || delta < count - 1 {
            return Err(BatchError::OffsetDeltaMismatch { last_offset_delta: delta, record_count: count });
        }
        Ok(Self { bytes })
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    pub fn header(&self) -> &'a BatchHeader {
        // Length was checked in `parse`.
        match BatchHeader::ref_from_prefix(self.bytes) {
            Ok((h, _)) => h,
            Err(_) => unreachable!("validated batch shorter than its header"),
        }
    }
    pub fn size(&self) -> usize {
        self.bytes.len()
    }
    pub fn base_offset(&self) -> i64 {
        self.header().base_offset.get()
    }
    /// Wraps instead of overflowing: a producer's batch carries any base offset (the broker
    /// assigns the real one), so a huge one must not panic a debug build.
    pub fn last_offset(&self) -> i64 {
        self.base_offset().wrapping_add(i64::from(self.header().last_offset_delta.get()))
    }
    pub fn record_count(&self) -> i32 {
        self.header().record_count.get()
    }
    pub fn attributes(&self) -> i16 {
        self.header().attributes.get()
    }
    pub fn compression(&self) -> Compression {
        Compression::from_attributes(self.attributes()).unwrap_or(Compression::None)
    }
    pub fn max_timestamp(&self) -> i64 {
        self.header().max_timestamp.get()
    }
    pub fn base_timestamp(&self) -> i64 {
        self.header().base_timestamp.get()
    }
    pub fn producer_id(&self) -> i64 {
        self.header().producer_id.get()
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes() & ATTR_TRANSACTIONAL != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes() & ATTR_CONTROL != 0
    }
    pub fn is_log_append_time(&self) -> bool {
        self.attributes() & ATTR_LOG_APPEND_TIME != 0
    }
    /// The delete horizon a cleaning pass set (KIP-534), if any.
    pub fn delete_horizon_ms(&self) -> Option<i64> {
        (self.attributes() & ATTR_DELETE_HORIZON != 0).then(|| self.base_timestamp())
    }
    /// The records region after the header (possibly compressed).
    pub fn records_bytes(&self) -> &'a [u8] {
        &self.bytes[HEADER_BYTES..]
    }
}

/// Splits a buffer of concatenated batches (a Produce `records` field, a segment region) into
/// validated views. Stops with an error at the first bad batch.
pub fn parse_all(mut bytes: &[u8], limit: usize) -> Result<Vec<BatchView<'_>>, BatchError> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let v = BatchView::parse(bytes, limit)?;
        bytes = &bytes[v.size()..];
        out.push(v);
    }
    Ok(out)
}

/// Rewrites the base offset and partition leader epoch of the (already validated) batch at the
/// start of `bytes`. The CRC does not cover these fields, so it stays valid.
pub fn assign_offset(bytes: &mut [u8], base_offset: i64, leader_epoch: i32) {
    assert!(bytes.len() >= HEADER_BYTES, "assign_offset on a short buffer");
    bytes[0..8].copy_from_slice(&base_offset.to_be_bytes());
    bytes[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
}

/// Stamps a batch with the broker's append time (topic `message.timestamp.type=LogAppendTime`):
/// sets the timestamp-type attribute and the max timestamp, then recomputes the CRC. The records
/// inside (compressed or not) are untouched; readers take the batch's max timestamp for every
/// record, as Kafka specifies.
pub fn stamp_log_append_time(bytes: &mut [u8], now_ms: i64) {
    assert!(bytes.len() >= HEADER_BYTES, "stamp_log_append_time on a short buffer");
    let attrs = i16::from_be_bytes([bytes[21], bytes[22]]) | ATTR_LOG_APPEND_TIME;
    bytes[21..23].copy_from_slice(&attrs.to_be_bytes());
    bytes[35..43].copy_from_slice(&now_ms.to_be_bytes());
    let crc = compute_crc(bytes);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// What the append path needs to know of one batch, taken at validation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    /// Byte position of the batch inside the buffer.
    pub position: usize,
    pub size: usize,
    pub last_offset_delta: i32,
    pub record_count: i32,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub attributes: i16,
}

/// One or more whole v2 batches that passed [`BatchView::parse`] (CRC included). Only this type
/// can be appended to a log, so the owner of a partition never sees unchecked bytes. It is
/// `Send`: validation happens on the connection's core, the append on the owner's.
#[derive(Debug)]
pub struct ValidatedBatches {
    bytes: bytes::BytesMut,
    batches: Vec<BatchMeta>,
}

impl ValidatedBatches {
    /// Validates every batch in `bytes` (which must hold whole batches only, at least one).
    pub fn new(bytes: bytes::BytesMut, batch_bytes_max: usize) -> Result<Self, BatchError> {
        let mut batches = Vec::new();
        let mut pos = 0;
        while pos < bytes.len() {
            let v = BatchView::parse(&bytes[pos..], batch_bytes_max)?;
            let h = v.header();
            batches.push(BatchMeta {
                position: pos,
                size: v.size(),
                last_offset_delta: h.last_offset_delta.get(),
                record_count: h.record_count.get(),
                max_timestamp: h.max_timestamp.get(),
                producer_id: h.producer_id.get(),
                producer_epoch: h.producer_epoch.get(),
                base_sequence: h.base_sequence.get(),
                attributes: h.attributes.get(),
            });
            pos += v.size();
        }
        if batches.is_empty() {
            return Err(BatchError::Truncated { needed: HEADER_BYTES, available: 0 });
        }
        Ok(Self { bytes, batches })
    }
    pub fn batches(&self) -> &[BatchMeta] {
        &self.batches
    }
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    pub fn len_bytes(&self) -> usize {
        self.bytes.len()
    }
    pub fn record_count(&self) -> i64 {
        self.batches.iter().map(|b| i64::from(b.record_count)).sum()
    }
    /// Offsets the batches span once assigned.
    pub fn offset_span(&self) -> i64 {
        self.batches.iter().map(|b| i64::from(b.last_offset_delta) + 1).sum()
    }
    pub fn into_parts(self) -> (bytes::BytesMut, Vec<BatchMeta>) {
        (self.bytes, self.batches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{BatchBuilder, Record};

    fn sample() -> Vec<u8> {
        let mut b = BatchBuilder::new(Compression::None, 1_000);
        b.push(Record::new(Some(b"k".to_vec()), Some(b"v".to_vec())).with_timestamp(1_005));
        b.push(Record::new(None, Some(b"v2".to_vec())).with_timestamp(1_010));
        b.build().to_vec()
    }

    #[test]
    fn parses_a_built_batch() {
        let bytes = sample();
        let v = BatchView::parse(&bytes, usize::MAX).expect("valid");
        assert_eq!(v.record_count(), 2);
        assert_eq!(v.last_offset(), 1);
        assert_eq!(v.max_timestamp(), 1_010);
        assert_eq!(v.size(), bytes.len());
    }

    #[test]
    fn each_failure_is_distinct() {
        let good = sample();
        assert!(matches!(BatchView::parse(&good[..10], usize::MAX), Err(BatchError::Truncated { .. })));
        assert!(matches!(BatchView::parse(&good[..good.len() - 1], usize::MAX), Err(BatchError::Truncated { .. })));
        assert!(matches!(BatchView::parse(&good, 20), Err(BatchError::TooLarge { .. })));

        let mut m = good.clone();
        m[16] = 1;
        assert_eq!(BatchView::parse(&m, usize::MAX).err(), Some(BatchError::BadMagic(1)));

        let mut c = good.clone();
        let last = c.len() - 1;
        c[last] ^= 0xff;
        assert!(matches!(BatchView::parse(&c, usize::MAX), Err(BatchError::CrcMismatch { .. })));

        let mut l = good.clone();
        l[8..12].copy_from_slice(&10i32.to_be_bytes());
        assert_eq!(BatchView::parse(&l, usize::MAX).err(), Some(BatchError::LengthTooSmall(10)));

        let mut n = good.clone();
        n[57..61].copy_from_slice(&0i32.to_be_bytes());
        let crc = compute_crc(&n);
        n[17..21].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(BatchView::parse(&n, usize::MAX).err(), Some(BatchError::BadRecordCount(0)));

        let mut d = good.clone();
        d[23..27].copy_from_slice(&0i32.to_be_bytes());
        let crc = compute_crc(&d);
        d[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(BatchView::parse(&d, usize::MAX), Err(BatchError::OffsetDeltaMismatch { .. })));

        let mut z = good;
        z[22] |= 0x07;
        let crc = compute_crc(&z);
        z[17..21].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(BatchView::parse(&z, usize::MAX).err(), Some(BatchError::UnknownCompression(7)));
    }

    #[test]
    fn assigning_offsets_keeps_the_crc_valid() {
        let mut bytes = sample();
        assign_offset(&mut bytes, 42, 7);
        let v = BatchView::parse(&bytes, usize::MAX).expect("still valid");
        assert_eq!(v.base_offset(), 42);
        assert_eq!(v.last_offset(), 43);
        assert_eq!(v.header().partition_leader_epoch.get(), 7);
    }

    #[test]
    fn log_append_time_recomputes_the_crc() {
        let mut bytes = sample();
        stamp_log_append_time(&mut bytes, 99_999);
        let v = BatchView::parse(&bytes, usize::MAX).expect("still valid");
        assert!(v.is_log_append_time());
        assert_eq!(v.max_timestamp(), 99_999);
    }

    #[test]
    fn parse_all_splits_concatenated_batches() {
        let mut two = sample();
        two.extend_from_slice(&sample());
        let views = parse_all(&two, usize::MAX).expect("two batches");
        assert_eq!(views.len(), 2);
    }
}
