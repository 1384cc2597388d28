//! The records inside a v2 batch: zig-zag varints, the five codecs, an iterator for readers
//! that need individual records (timestamp lookup, compaction, tests), and a builder that
//! writes batches the way Kafka's clients do.
//!
//! The append path never comes here: batches are stored as the producer sent them.

use std::io::{Read, Write};

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

use crate::batch::{self, BatchView, Compression, HEADER_BYTES, MAGIC_V2};

/// Decompressed records of one batch may not exceed this, whatever the batch claims: a small
/// compressed batch must not be able to make a reader allocate without bound.
pub const DECOMPRESSED_BYTES_MAX: usize = 64 << 20;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RecordError {
    #[error("record data truncated")]
    Truncated,
    #[error("malformed varint")]
    BadVarint,
    #[error("negative or oversized length {0}")]
    BadLength(i64),
    #[error("batch says {expected} records, found {found}")]
    CountMismatch { expected: i32, found: usize },
    #[error("record length {declared} does not match its content ({actual} bytes)")]
    RecordLengthMismatch { declared: i64, actual: usize },
    #[error("{codec:?} decompression failed: {reason}")]
    Decompress { codec: Compression, reason: String },
    #[error("decompressed records exceed {DECOMPRESSED_BYTES_MAX} bytes")]
    DecompressedTooLarge,
    #[error("record offset {base_offset} + {offset_delta} overflows")]
    OffsetOverflow { base_offset: i64, offset_delta: i32 },
}

/// One record as a reader sees it: offsets and timestamps are absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Record {
    pub fn new(key: Option<Vec<u8>>, value: Option<Vec<u8>>) -> Self {
        Self { offset: 0, timestamp: 0, key, value, headers: Vec::new() }
    }
    pub fn with_timestamp(mut self, ts: i64) -> Self {
        self.timestamp = ts;
        self
    }
    pub fn with_header(mut self, key: &str, value: Option<Vec<u8>>) -> Self {
        self.headers.push((key.to_owned(), value));
        self
    }
}

// ---- varints ---------------------------------------------------------------------------------

/// Reads an unsigned LEB128 varint of at most `max_bytes` bytes.
fn read_uvarint(buf: &mut &[u8], max_bytes: usize) -> Result<u64, RecordError> {
    let mut value: u64 = 0;
    for i in 0..max_bytes {
        let (&b, rest) = buf.split_first().ok_or(RecordError::Truncated)?;
        *buf = rest;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(RecordError::BadVarint)
}

/// Kafka's zig-zag `varint` (32-bit).
pub fn read_varint(buf: &mut &[u8]) -> Result<i32, RecordError> {
    let u = read_uvarint(buf, 5)?;
    if u > u64::from(u32::MAX) {
        return Err(RecordError::BadVarint);
    }
    let u = u as u32;
    Ok(((u >> 1) as i32) ^ -((u & 1) as i32))
}

/// Kafka's zig-zag `varlong` (64-bit).
pub fn read_varlong(buf: &mut &[u8]) -> Result<i64, RecordError> {
    let u = read_uvarint(buf, 10)?;
    Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
}

pub fn write_varint(out: &mut BytesMut, v: i32) {
    write_uvarint(out, ((v << 1) ^ (v >> 31)) as u32 as u64);
}
pub fn write_varlong(out: &mut BytesMut, v: i64) {
    write_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}
fn write_uvarint(out: &mut BytesMut, mut u: u64) {
    while u >= 0x80 {
        out.put_u8((u as u8) | 0x80);
        u >>= 7;
    }
    out.put_u8(u as u8);
}
fn varint_len(v: i32) -> usize {
    let mut u = ((v << 1) ^ (v >> 31)) as u32;
    let mut n = 1;
    while u >= 0x80 {
        u >>= 7;
        n += 1;
    }
    n
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], RecordError> {
    if buf.len() < n {
        return Err(RecordError::Truncated);
    }
    let (a, b) = buf.split_at(n);
    *buf = b;
    Ok(a)
}

fn read_nullable(buf: &mut &[u8]) -> Result<Option<Vec<u8>>, RecordError> {
    Ok(read_nullable_slice(buf)?.map(<[u8]>::to_vec))
}

fn read_nullable_slice<'a>(buf: &mut &'a [u8]) -> Result<Option<&'a [u8]>, RecordError> {
    let len = read_varint(buf)?;
    if len < 0 {
        return if len == -1 { Ok(None) } else { Err(RecordError::BadLength(len.into())) };
    }
    Ok(Some(take(buf, len as usize)?))
}

// ---- codecs ----------------------------------------------------------------------------------

/// The magic that starts a snappy-java ("xerial") framed stream, which the Java client writes.
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];

fn bounded_read(mut r: impl Read, codec: Compression) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::new();
    let n = (&mut r)
        .take(DECOMPRESSED_BYTES_MAX as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| RecordError::Decompress { codec, reason: e.to_string() })?;
    if n > DECOMPRESSED_BYTES_MAX {
        return Err(RecordError::DecompressedTooLarge);
    }
    Ok(out)
}

fn snappy_raw(input: &[u8], out: &mut Vec<u8>) -> Result<(), RecordError> {
    let err = |e: snap::Error| RecordError::Decompress { codec: Compression::Snappy, reason: e.to_string() };
    let len = snap::raw::decompress_len(input).map_err(err)?;
    if out.len() + len > DECOMPRESSED_BYTES_MAX {
        return Err(RecordError::DecompressedTooLarge);
    }
    let start = out.len();
    out.resize(start + len, 0);
    snap::raw::Decoder::new().decompress(input, &mut out[start..]).map_err(err)?;
    Ok(())
}

/// Decompresses a batch's records region.
pub fn decompress(codec: Compression, input: &[u8]) -> Result<Vec<u8>, RecordError> {
    match codec {
        Compression::None => Ok(input.to_vec()),
        Compression::Gzip => bounded_read(flate2::read::GzDecoder::new(input), codec),
        Compression::Lz4 => bounded_read(lz4_flex::frame::FrameDecoder::new(input), codec),
        Compression::Zstd => {
            let d = zstd::stream::read::Decoder::new(input)
                .map_err(|e| RecordError::Decompress { codec, reason: e.to_string() })?;
            bounded_read(d, codec)
        }
        Compression::Snappy => {
            let mut out = Vec::new();
            if input.len() >= 16 && input[..8] == XERIAL_MAGIC {
                // xerial framing: 8-byte magic, 4-byte version, 4-byte compatible version, then
                // blocks of [u32 big-endian length][raw snappy].
                let mut rest = &input[16..];
                while !rest.is_empty() {
                    let len_bytes = take(&mut rest, 4)?;
                    let len = u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
                    let block = take(&mut rest, len as usize)?;
                    snappy_raw(block, &mut out)?;
                }
            } else {
                // librdkafka writes one raw snappy block.
                snappy_raw(input, &mut out)?;
            }
            Ok(out)
        }
    }
}

/// Compresses a records region the way Kafka's Java client does for each codec.
pub fn compress(codec: Compression, input: &[u8]) -> Vec<u8> {
    compress_with_level(codec, input, None)
}

/// [`compress`] at a codec level (`compression.gzip.level`, `compression.zstd.level`,
/// `compression.lz4.level`; `None`: the codec's default as Kafka's client uses it). lz4 at its
/// default is the fast encoder (as Kafka's default level 9 is); another level uses liblz4's
/// high-compression encoder at that level (levels above liblz4's maximum of 12 compress as
/// 12), with independent 64 KiB blocks as Kafka writes them.
pub fn compress_with_level(codec: Compression, input: &[u8], level: Option<i32>) -> Vec<u8> {
    fn io<T>(r: std::io::Result<T>) -> T {
        // Writing into a Vec cannot fail.
        match r {
            Ok(v) => v,
            Err(e) => panic!("in-memory compression failed: {e}"),
        }
    }
    match codec {
        Compression::None => input.to_vec(),
        Compression::Gzip => {
            let level = level
                .and_then(|l| u32::try_from(l).ok())
                .map_or(flate2::Compression::fast(), |l| flate2::Compression::new(l.min(9)));
            let mut e = flate2::write::GzEncoder::new(Vec::new(), level);
            io(e.write_all(input));
            io(e.finish())
        }
        Compression::Lz4 => match level {
            Some(level) => lz4_at_level(input, level),
            None => {
                let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
                io(e.write_all(input));
                match e.finish() {
                    Ok(v) => v,
                    Err(err) => panic!("in-memory lz4 failed: {err}"),
                }
            }
        },
        Compression::Zstd => io(zstd::stream::encode_all(input, level.unwrap_or(3))),
        Compression::Snappy => {
            let mut out = Vec::with_capacity(input.len() / 2 + 32);
            out.extend_from_slice(&XERIAL_MAGIC);
            out.extend_from_slice(&1u32.to_be_bytes());
            out.extend_from_slice(&1u32.to_be_bytes());
            let mut enc = snap::raw::Encoder::new();
            for chunk in input.chunks(32 * 1024) {
                let c = match enc.compress_vec(chunk) {
                    Ok(c) => c,
                    Err(e) => panic!("in-memory snappy failed: {e}"),
                };
                out.extend_from_slice(&(c.len() as u32).to_be_bytes());
                out.extend_from_slice(&c);
            }
            out
        }
    }
}

/// liblz4's highest compression level; Kafka's `compression.lz4.level` goes up to 17.
const LZ4_LEVEL_MAX: i32 = 12;

/// An lz4 frame from liblz4 at `level` (see [`compress_with_level`]).
fn lz4_at_level(input: &[u8], level: i32) -> Vec<u8> {
    let level = level.clamp(1, LZ4_LEVEL_MAX) as u32;
    let built = lz4::EncoderBuilder::new()
        .level(level)
        .block_size(lz4::BlockSize::Max64KB)
        .block_mode(lz4::BlockMode::Independent)
        .build(Vec::with_capacity(input.len() / 2 + 64));
    let mut e = match built {
        Ok(e) => e,
        Err(err) => panic!("cannot start an lz4 encoder: {err}"),
    };
    if let Err(err) = e.write_all(input) {
        panic!("in-memory lz4 failed: {err}");
    }
    match e.finish() {
        (out, Ok(())) => out,
        (_, Err(err)) => panic!("in-memory lz4 failed: {err}"),
    }
}

// ---- reading ---------------------------------------------------------------------------------

/// One record as it sits in a batch's (decompressed) payload, borrowed.
struct RawRecord<'a> {
    offset: i64,
    ts_delta: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    /// The header count and headers, unparsed; `len` is the record's declared length.
    rest: &'a [u8],
    len: i32,
}

/// Walks the records of a validated batch (decompressing if needed), checking their framing,
/// offsets and count, and hands each to `f` borrowed.
fn walk_records(
    batch: &BatchView<'_>,
    mut f: impl FnMut(RawRecord<'_>) -> Result<(), RecordError>,
) -> Result<(), RecordError> {
    let h = batch.header();
    let raw;
    let mut buf: &[u8] = match batch.compression() {
        Compression::None => batch.records_bytes(),
        codec => {
            raw = decompress(codec, batch.records_bytes())?;
            &raw
        }
    };
    let base_offset = h.base_offset.get();
    let expected = h.record_count.get();
    let mut found = 0usize;
    while !buf.is_empty() && found <= expected.max(0) as usize {
        let len = read_varint(&mut buf)?;
        if len < 0 {
            return Err(RecordError::BadLength(len.into()));
        }
        let mut body = take(&mut buf, len as usize)?;
        let _attributes = take(&mut body, 1)?;
        let ts_delta = read_varlong(&mut body)?;
        let offset_delta = read_varint(&mut body)?;
        let key = read_nullable_slice(&mut body)?;
        let value = read_nullable_slice(&mut body)?;
        let offset = base_offset
            .checked_add(i64::from(offset_delta))
            .ok_or(RecordError::OffsetOverflow { base_offset, offset_delta })?;
        f(RawRecord { offset, ts_delta, key, value, rest: body, len })?;
        found += 1;
    }
    if found != expected as usize {
        return Err(RecordError::CountMismatch { expected, found });
    }
    Ok(())
}

/// Decodes every record of a validated batch (decompressing if needed). For a LogAppendTime
/// batch every record takes the batch's max timestamp, as Kafka specifies.
pub fn decode_records(batch: &BatchView<'_>) -> Result<Vec<Record>, RecordError> {
    let h = batch.header();
    let base_ts = h.base_timestamp.get();
    let log_append = batch.is_log_append_time();
    let mut out = Vec::with_capacity((h.record_count.get().max(0) as usize).min(4096));
    walk_records(batch, |r| {
        let mut body = r.rest;
        let header_count = read_varint(&mut body)?;
        if header_count < 0 || header_count as usize > body.len() {
            return Err(RecordError::BadLength(header_count.into()));
        }
        let mut headers = Vec::with_capacity(header_count as usize);
        for _ in 0..header_count {
            let klen = read_varint(&mut body)?;
            if klen < 0 {
                return Err(RecordError::BadLength(klen.into()));
            }
            let k = take(&mut body, klen as usize)?;
            let v = read_nullable(&mut body)?;
            headers.push((String::from_utf8_lossy(k).into_owned(), v));
        }
        if !body.is_empty() {
            return Err(RecordError::RecordLengthMismatch {
                declared: r.len.into(),
                actual: r.len as usize - body.len(),
            });
        }
        out.push(Record {
            offset: r.offset,
            timestamp: if log_append { h.max_timestamp.get() } else { base_ts.wrapping_add(r.ts_delta) },
            key: r.key.map(<[u8]>::to_vec),
            value: r.value.map(<[u8]>::to_vec),
            headers,
        });
        Ok(())
    })?;
    Ok(out)
}

/// Calls `f(offset, key, value is null)` for every record of a validated batch, in order,
/// without copying keys or values (the log cleaner decides on these alone). Checks the records'
/// framing and count as [`decode_records`] does; headers are skipped unread.
pub fn for_each_key(batch: &BatchView<'_>, mut f: impl FnMut(i64, Option<&[u8]>, bool)) -> Result<(), RecordError> {
    walk_records(batch, |r| {
        f(r.offset, r.key, r.value.is_none());
        Ok(())
    })
}

// ---- writing ---------------------------------------------------------------------------------

/// Builds one v2 batch from records, as a producer would (base offset 0, dense offset deltas).
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    compression: Compression,
    base_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    attributes_extra: i16,
    records: Vec<Record>,
}

impl BatchBuilder {
    pub fn new(compression: Compression, base_timestamp: i64) -> Self {
        Self {
            compression,
            base_timestamp,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            attributes_extra: 0,
            records: Vec::new(),
        }
    }
    pub fn producer(mut self, id: i64, epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = id;
        self.producer_epoch = epoch;
        self.base_sequence = base_sequence;
        self
    }
    pub fn transactional(mut self) -> Self {
        self.attributes_extra |= batch::ATTR_TRANSACTIONAL;
        self
    }
    pub fn control(mut self) -> Self {
        self.attributes_extra |= batch::ATTR_CONTROL;
        self
    }
    /// Adds a record; its `timestamp` is absolute, its `offset` is ignored (offsets are dense).
    pub fn push(&mut self, r: Record) {
        self.records.push(r);
    }
    pub fn len(&self) -> usize {
        self.records.len()
    }
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn build(&self) -> BytesMut {
        assert!(!self.records.is_empty(), "a batch holds at least one record");
        let mut body = BytesMut::new();
        let mut max_ts = self.base_timestamp;
        for (i, r) in self.records.iter().enumerate() {
            max_ts = max_ts.max(r.timestamp);
            encode_record(&mut body, r, i as i32, r.timestamp - self.base_timestamp);
        }
        let payload = match self.compression {
            Compression::None => body.to_vec(),
            c => compress(c, &body),
        };
        let mut out = BytesMut::with_capacity(HEADER_BYTES + payload.len());
        out.put_i64(0);
        out.put_i32((HEADER_BYTES - batch::LOG_OVERHEAD + payload.len()) as i32);
        out.put_i32(-1);
        out.put_i8(MAGIC_V2);
        out.put_u32(0);
        out.put_i16(self.compression.attribute_bits() | self.attributes_extra);
        out.put_i32(self.records.len() as i32 - 1);
        out.put_i64(self.base_timestamp);
        out.put_i64(max_ts);
        out.put_i64(self.producer_id);
        out.put_i16(self.producer_epoch);
        out.put_i32(self.base_sequence);
        out.put_i32(self.records.len() as i32);
        out.put_slice(&payload);
        let crc = batch::compute_crc(&out);
        out[17..21].copy_from_slice(&crc.to_be_bytes());
        out
    }
}

/// Appends one record (length-prefixed) to a batch body.
fn encode_record(body: &mut BytesMut, r: &Record, offset_delta: i32, timestamp_delta: i64) {
    let mut rec = BytesMut::new();
    rec.put_i8(0);
    write_varlong(&mut rec, timestamp_delta);
    write_varint(&mut rec, offset_delta);
    put_nullable(&mut rec, r.key.as_deref());
    put_nullable(&mut rec, r.value.as_deref());
    write_varint(&mut rec, r.headers.len() as i32);
    for (k, v) in &r.headers {
        write_varint(&mut rec, k.len() as i32);
        rec.put_slice(k.as_bytes());
        put_nullable(&mut rec, v.as_deref());
    }
    write_varint(body, rec.len() as i32);
    body.put_slice(&rec);
}

/// The batch `original` with only `kept` of its records (a subset, in offset order), as the log
/// cleaner writes it: the header keeps everything but the record count, the length and the CRC
/// (base offset, last offset delta, timestamps, producer id, epoch, sequence, attributes and
/// leader epoch), so offsets and the producer's sequence range stay what they were, and the
/// records keep their offset and timestamp deltas. Compressed with the original codec.
pub fn rebuild_batch(original: &BatchView<'_>, kept: &[Record]) -> BytesMut {
    rebuild_batch_with(original, kept, None)
}

/// As [`rebuild_batch`]; with `delete_horizon_ms`, the batch also carries that delete horizon
/// (KIP-534: attribute bit 6, the horizon in the base timestamp, record timestamp deltas
/// relative to it so every record keeps its timestamp).
pub fn rebuild_batch_with(original: &BatchView<'_>, kept: &[Record], delete_horizon_ms: Option<i64>) -> BytesMut {
    let h = original.header();
    let base_offset = h.base_offset.get();
    let base_ts = delete_horizon_ms.unwrap_or(h.base_timestamp.get());
    let mut body = BytesMut::new();
    for r in kept {
        let delta = i32::try_from(r.offset - base_offset).unwrap_or(i32::MAX);
        encode_record(&mut body, r, delta, r.timestamp.wrapping_sub(base_ts));
    }
    let payload = match original.compression() {
        Compression::None => body.to_vec(),
        c => compress(c, &body),
    };
    let mut out = BytesMut::with_capacity(HEADER_BYTES + payload.len());
    out.put_slice(&original.bytes()[..HEADER_BYTES]);
    out.put_slice(&payload);
    let length = (HEADER_BYTES - batch::LOG_OVERHEAD + payload.len()) as i32;
    out[8..12].copy_from_slice(&length.to_be_bytes());
    out[57..61].copy_from_slice(&(kept.len() as i32).to_be_bytes());
    if let Some(horizon) = delete_horizon_ms {
        let attrs = original.attributes() | batch::ATTR_DELETE_HORIZON;
        out[21..23].copy_from_slice(&attrs.to_be_bytes());
        out[27..35].copy_from_slice(&horizon.to_be_bytes());
    }
    let crc = batch::compute_crc(&out);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}

fn put_nullable(out: &mut BytesMut, v: Option<&[u8]>) {
    match v {
        None => write_varint(out, -1),
        Some(b) => {
            write_varint(out, b.len() as i32);
            out.put_slice(b);
        }
    }
}

/// Convenience for tests and tools: one uncompressed batch of `count` records with values of
/// `value_bytes` bytes each.
pub fn simple_batch(count: usize, value_bytes: usize, timestamp: i64) -> Bytes {
    let mut b = BatchBuilder::new(Compression::None, timestamp);
    for i in 0..count {
        let mut v = vec![0u8; value_bytes];
        for (j, byte) in v.iter_mut().enumerate() {
            *byte = (i + j) as u8;
        }
        b.push(Record::new(Some(format!("key-{i}").into_bytes()), Some(v)).with_timestamp(timestamp));
    }
    b.build().freeze()
}

/// The exact encoded size of a record body (used by callers sizing batches).
pub fn record_overhead_estimate(key_len: usize, value_len: usize) -> usize {
    1 + 10 + 5 + varint_len(key_len as i32) + key_len + varint_len(value_len as i32) + value_len + 1 + 5
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the fuzz target: a record's offset delta past the end of `i64` is an error,
    /// not an overflow panic.
    #[test]
    fn offset_overflow_is_an_error() {
        let mut b = BatchBuilder::new(Compression::None, 1_000);
        b.push(Record::new(None, Some(b"a".to_vec())));
        b.push(Record::new(None, Some(b"b".to_vec())));
        let mut bytes = b.build().to_vec();
        // The base offset is outside the CRC's range: no need to recompute it.
        bytes[..8].copy_from_slice(&(i64::MAX).to_be_bytes());
        let view = crate::batch::BatchView::parse(&bytes, 1 << 20).expect("valid batch");
        assert_eq!(view.last_offset(), i64::MIN);
        match decode_records(&view) {
            Err(RecordError::OffsetOverflow { base_offset: i64::MAX, offset_delta: 1 }) => {}
            other => panic!("{other:?}"),
        }
    }

    fn records() -> Vec<Record> {
        (0..50)
            .map(|i| {
                Record::new(
                    if i % 3 == 0 { None } else { Some(format!("k{i}").into_bytes()) },
                    if i % 7 == 0 { None } else { Some(vec![i as u8; i * 13]) },
                )
                .with_timestamp(10_000 + i as i64)
                .with_header("h", Some(vec![i as u8]))
                .with_header("null", None)
            })
            .collect()
    }

    #[test]
    fn every_codec_round_trips() {
        for codec in [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            let mut b = BatchBuilder::new(codec, 10_000);
            for r in records() {
                b.push(r);
            }
            let bytes = b.build();
            let view = BatchView::parse(&bytes, usize::MAX).expect("valid batch");
            assert_eq!(view.compression(), codec);
            let got = decode_records(&view).expect("decodes");
            let mut want = records();
            for (i, r) in want.iter_mut().enumerate() {
                r.offset = i as i64;
            }
            assert_eq!(got, want, "codec {codec:?}");
            let mut keys = Vec::new();
            for_each_key(&view, |o, k, null| keys.push((o, k.map(<[u8]>::to_vec), null))).expect("keys");
            let want_keys: Vec<_> = want.iter().map(|r| (r.offset, r.key.clone(), r.value.is_none())).collect();
            assert_eq!(keys, want_keys, "codec {codec:?}");
        }
    }

    /// `compression.lz4.level` takes effect: a high level compresses compressible data smaller
    /// than the fast encoder and than a low level, and every level's output decodes to the input.
    #[test]
    fn lz4_levels_change_the_output_and_all_decode() {
        let mut input = Vec::new();
        for i in 0..20_000u32 {
            input.extend_from_slice(format!("sensor-{} reading {} status ok;", i % 97, (i * 7919) % 1000).as_bytes());
        }
        let fast = compress_with_level(Compression::Lz4, &input, None);
        let low = compress_with_level(Compression::Lz4, &input, Some(1));
        let high = compress_with_level(Compression::Lz4, &input, Some(12));
        let capped = compress_with_level(Compression::Lz4, &input, Some(17));
        assert!(high.len() < fast.len() && high.len() < low.len(), "{} {} {}", high.len(), fast.len(), low.len());
        assert_eq!(capped, high, "levels above 12 compress as 12");
        for out in [&fast, &low, &high] {
            assert_eq!(decompress(Compression::Lz4, out).expect("valid lz4 frame"), input);
        }
    }

    #[test]
    fn for_each_key_checks_the_record_count() {
        let mut b = BatchBuilder::new(Compression::None, 1_000);
        b.push(Record::new(Some(b"a".to_vec()), None));
        b.push(Record::new(Some(b"b".to_vec()), Some(b"v".to_vec())));
        let mut bytes = b.build().to_vec();
        // Claim 3 records (and a last offset delta to match); both are in the CRC's range, so
        // recompute it.
        bytes[57..61].copy_from_slice(&3i32.to_be_bytes());
        bytes[23..27].copy_from_slice(&2i32.to_be_bytes());
        let crc = crc32c::crc32c(&bytes[21..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        let view = BatchView::parse(&bytes, 1 << 20).expect("valid framing");
        assert!(matches!(for_each_key(&view, |_, _, _| {}), Err(RecordError::CountMismatch { expected: 3, found: 2 })));
    }

    #[test]
    fn raw_snappy_as_librdkafka_writes_it() {
        let input = b"hello hello hello hello".repeat(10);
        let raw = snap::raw::Encoder::new().compress_vec(&input).expect("compress");
        assert_eq!(decompress(Compression::Snappy, &raw).expect("raw snappy"), input);
    }

    #[test]
    fn varints_round_trip_at_the_edges() {
        for v in [0i32, 1, -1, 63, -64, 64, i32::MAX, i32::MIN] {
            let mut b = BytesMut::new();
            write_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v));
            let mut s: &[u8] = &b;
            assert_eq!(read_varint(&mut s), Ok(v));
        }
        for v in [0i64, -1, i64::MAX, i64::MIN] {
            let mut b = BytesMut::new();
            write_varlong(&mut b, v);
            let mut s: &[u8] = &b;
            assert_eq!(read_varlong(&mut s), Ok(v));
        }
        let mut overlong: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(read_varint(&mut overlong), Err(RecordError::BadVarint));
    }

    #[test]
    fn a_gzip_bomb_is_refused() {
        let zeros = vec![0u8; DECOMPRESSED_BYTES_MAX + 1024];
        let packed = compress(Compression::Gzip, &zeros);
        assert_eq!(decompress(Compression::Gzip, &packed), Err(RecordError::DecompressedTooLarge));
    }
}
