//! Bytes on the hot path, without per-record allocation: records written straight into a
//! batch's buffer, batches sealed in place (header, CRC) with `engine`'s varints, codecs and CRC,
//! fetched batches walked record by record without decoding them into owned records, response
//! frames cut out of one read buffer, and Kafka's default partitioner.

use bytes::{Buf, Bytes, BytesMut};
use engine::batch::{self, BatchView, HEADER_BYTES, LOG_OVERHEAD};
use engine::records::{compress, decompress, read_varint, read_varlong, write_varint, write_varlong};
use engine::Compression;
use futures_lite::{AsyncRead, AsyncReadExt};

/// Bytes of a value that carry the record's intended send time (ns since the Unix epoch,
/// big-endian) for end-to-end latency.
pub const TIMESTAMP_BYTES: usize = 8;

/// Worst-case bytes a record adds to a batch besides its key and value: length, attributes,
/// timestamp delta, offset delta, key and value lengths, header count.
pub const RECORD_OVERHEAD_MAX: usize = 5 + 1 + 10 + 5 + 5 + 5 + 5;

/// One open batch: a reserved header, then records appended in place.
pub struct OpenBatch {
    buf: BytesMut,
    pub count: i32,
    base_timestamp_ms: i64,
    max_timestamp_ms: i64,
}

impl OpenBatch {
    pub fn new(capacity: usize) -> Self {
        let mut buf = BytesMut::with_capacity(HEADER_BYTES + capacity);
        buf.resize(HEADER_BYTES, 0);
        Self { buf, count: 0, base_timestamp_ms: 0, max_timestamp_ms: 0 }
    }

    /// Bytes of the batch so far, header included.
    pub fn bytes_len(&self) -> usize {
        self.buf.len()
    }

    /// Appends one record; `value_tail` follows the 8-byte intended time in the value.
    pub fn push(&mut self, key: Option<&[u8]>, intended_ns: u64, value_tail: &[u8], timestamp_ms: i64) {
        if self.count == 0 {
            self.base_timestamp_ms = timestamp_ms;
        }
        self.max_timestamp_ms = self.max_timestamp_ms.max(timestamp_ms);
        let ts_delta = timestamp_ms - self.base_timestamp_ms;
        let value_len = TIMESTAMP_BYTES + value_tail.len();
        let key_len = key.map_or(0, <[u8]>::len);
        let body_len = 1
            + varlong_len(ts_delta)
            + varint_len(self.count)
            + varint_len(key.map_or(-1, |k| k.len() as i32))
            + key_len
            + varint_len(value_len as i32)
            + value_len
            + 1;
        let b = &mut self.buf;
        write_varint(b, body_len as i32);
        b.extend_from_slice(&[0]);
        write_varlong(b, ts_delta);
        write_varint(b, self.count);
        match key {
            None => write_varint(b, -1),
            Some(k) => {
                write_varint(b, k.len() as i32);
                b.extend_from_slice(k);
            }
        }
        write_varint(b, value_len as i32);
        b.extend_from_slice(&intended_ns.to_be_bytes());
        b.extend_from_slice(value_tail);
        write_varint(b, 0);
        self.count += 1;
    }

    /// Finishes the batch: compresses the records if asked, fills the header and the CRC.
    pub fn seal(self, compression: Compression) -> Bytes {
        assert!(self.count > 0, "an empty batch is never sealed");
        let mut buf = match compression {
            Compression::None => self.buf,
            codec => {
                let packed = compress(codec, &self.buf[HEADER_BYTES..]);
                let mut out = BytesMut::with_capacity(HEADER_BYTES + packed.len());
                out.resize(HEADER_BYTES, 0);
                out.extend_from_slice(&packed);
                out
            }
        };
        let length = (buf.len() - LOG_OVERHEAD) as i32;
        let h = &mut buf[..HEADER_BYTES];
        h[0..8].copy_from_slice(&0i64.to_be_bytes()); // base offset: the broker assigns it
        h[8..12].copy_from_slice(&length.to_be_bytes());
        h[12..16].copy_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
        h[16] = batch::MAGIC_V2 as u8;
        h[21..23].copy_from_slice(&compression.attribute_bits().to_be_bytes());
        h[23..27].copy_from_slice(&(self.count - 1).to_be_bytes()); // last offset delta
        h[27..35].copy_from_slice(&self.base_timestamp_ms.to_be_bytes());
        h[35..43].copy_from_slice(&self.max_timestamp_ms.to_be_bytes());
        h[43..51].copy_from_slice(&(-1i64).to_be_bytes()); // producer id: not idempotent
        h[51..53].copy_from_slice(&(-1i16).to_be_bytes()); // producer epoch
        h[53..57].copy_from_slice(&(-1i32).to_be_bytes()); // base sequence
        h[57..61].copy_from_slice(&self.count.to_be_bytes());
        let crc = batch::compute_crc(&buf);
        buf[17..21].copy_from_slice(&crc.to_be_bytes());
        buf.freeze()
    }
}

fn varint_len(v: i32) -> usize {
    varlong_len(i64::from(v))
}

fn varlong_len(v: i64) -> usize {
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    let mut n = 1;
    while u >= 0x80 {
        u >>= 7;
        n += 1;
    }
    n
}

/// What a fetched partition's bytes held from `from_offset` on.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FetchedCount {
    pub records: u64,
    /// Key + value bytes.
    pub bytes: u64,
    /// The offset to fetch next.
    pub next_offset: i64,
}

/// Walks the batches of a Fetch response's records from `from_offset`: checks every whole batch
/// (CRC included), counts its records at or after `from_offset` and their key + value bytes, and
/// calls `on_value` with each record's value's first 8 bytes (when present) and its key + value
/// bytes. A trailing partial batch (the
/// broker cuts at its size limit) is left for the next fetch. Control batches are skipped.
pub fn walk_fetched(
    mut bytes: &[u8],
    from_offset: i64,
    mut on_value: impl FnMut(Option<[u8; TIMESTAMP_BYTES]>, u64),
) -> Result<FetchedCount, String> {
    let mut out = FetchedCount { next_offset: from_offset, ..FetchedCount::default() };
    while bytes.len() >= LOG_OVERHEAD {
        let size = batch::total_size(bytes, usize::MAX).map_err(|e| format!("bad batch in a fetch response: {e}"))?;
        if bytes.len() < size {
            break;
        }
        let view = BatchView::parse(bytes, usize::MAX).map_err(|e| format!("bad batch in a fetch response: {e}"))?;
        bytes = &bytes[size..];
        if view.last_offset() < from_offset {
            continue;
        }
        out.next_offset = out.next_offset.max(view.last_offset() + 1);
        if view.is_control() {
            continue;
        }
        let raw;
        let records: &[u8] = match view.compression() {
            Compression::None => view.records_bytes(),
            codec => {
                raw = decompress(codec, view.records_bytes()).map_err(|e| format!("fetched batch: {e}"))?;
                &raw
            }
        };
        let n = walk_records(records, view.base_offset(), from_offset, &mut out.bytes, &mut on_value)
            .map_err(|e| format!("fetched batch at offset {}: {e}", view.base_offset()))?;
        if n != view.record_count() as u64 && view.base_offset() >= from_offset {
            return Err(format!(
                "fetched batch at offset {} declares {} records but holds {n}",
                view.base_offset(),
                view.record_count()
            ));
        }
        out.records += n;
    }
    Ok(out)
}

fn walk_records(
    mut buf: &[u8],
    base_offset: i64,
    from_offset: i64,
    bytes: &mut u64,
    on_value: &mut impl FnMut(Option<[u8; TIMESTAMP_BYTES]>, u64),
) -> Result<u64, String> {
    let mut n = 0;
    while !buf.is_empty() {
        let len = read_varint(&mut buf).map_err(|e| e.to_string())?;
        let len = usize::try_from(len).map_err(|_| format!("negative record length {len}"))?;
        if len > buf.len() {
            return Err("truncated record".into());
        }
        let mut body = &buf[..len];
        buf = &buf[len..];
        if body.is_empty() {
            return Err("empty record".into());
        }
        body.advance(1); // attributes
        read_varlong(&mut body).map_err(|e| e.to_string())?;
        let offset_delta = read_varint(&mut body).map_err(|e| e.to_string())?;
        let key_len = skip_nullable(&mut body)?;
        let value_len = read_varint(&mut body).map_err(|e| e.to_string())?;
        let value = if value_len < 0 {
            None
        } else {
            let l = value_len as usize;
            if l > body.len() {
                return Err("truncated value".into());
            }
            let v = &body[..l];
            Some(v)
        };
        if base_offset + i64::from(offset_delta) < from_offset {
            continue;
        }
        n += 1;
        let kv_bytes = (key_len + value.map_or(0, <[u8]>::len)) as u64;
        *bytes += kv_bytes;
        on_value(value.and_then(|v| v.get(..TIMESTAMP_BYTES)).and_then(|t| t.try_into().ok()), kv_bytes);
    }
    Ok(n)
}

/// Skips a varint-length nullable field, returning its length (0 for null).
fn skip_nullable(body: &mut &[u8]) -> Result<usize, String> {
    let len = read_varint(body).map_err(|e| e.to_string())?;
    if len < 0 {
        return Ok(0);
    }
    let l = len as usize;
    if l > body.len() {
        return Err("truncated key".into());
    }
    body.advance(l);
    Ok(l)
}

/// Reads response frames from one connection through one growing buffer; each frame's body is
/// split off it without copying.
pub struct FrameReader {
    buf: BytesMut,
    frame_bytes_max: usize,
}

/// Bytes asked of the socket per read when no frame size says more.
const READ_CHUNK_BYTES: usize = 256 << 10;

impl FrameReader {
    pub fn new(frame_bytes_max: usize) -> Self {
        Self { buf: BytesMut::with_capacity(READ_CHUNK_BYTES), frame_bytes_max }
    }

    /// The next frame's body (size prefix removed). EOF is an error: the caller expects more.
    pub async fn next<R: AsyncRead + Unpin>(&mut self, reader: &mut R) -> std::io::Result<Bytes> {
        loop {
            let mut want = READ_CHUNK_BYTES;
            if self.buf.len() >= 4 {
                let size = i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
                let size = usize::try_from(size).ok().filter(|s| *s <= self.frame_bytes_max).ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad response frame size {size}"))
                })?;
                if self.buf.len() >= 4 + size {
                    self.buf.advance(4);
                    return Ok(self.buf.split_to(size).freeze());
                }
                want = want.max(4 + size - self.buf.len());
            }
            let old = self.buf.len();
            self.buf.resize(old + want, 0);
            let n = reader.read(&mut self.buf[old..]).await;
            let n = match n {
                Ok(n) => n,
                Err(e) => {
                    self.buf.truncate(old);
                    return Err(e);
                }
            };
            self.buf.truncate(old + n);
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
}

/// Kafka's default partitioner for keyed records: `toPositive(murmur2(key)) % partitions`, so
/// keys land where the Java client and librdkafka's `murmur2_random` would put them.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    (crate::client::partitioner::murmur2(key) & 0x7fff_ffff) % partitions
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::records::decode_records;

    #[test]
    fn sealed_batches_decode_with_the_engine_for_every_codec() {
        for codec in [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            let mut b = OpenBatch::new(1024);
            b.push(None, 11, b"first", 1_000);
            b.push(Some(b"key-2"), 22, b"", 1_003);
            b.push(Some(b""), u64::MAX, &[7u8; 300], 1_001);
            let sealed = b.seal(codec);
            let view = BatchView::parse(&sealed, usize::MAX).expect("valid batch");
            assert_eq!((view.record_count(), view.base_timestamp(), view.max_timestamp()), (3, 1_000, 1_003));
            assert_eq!(view.compression(), codec);
            let records = decode_records(&view).expect("records decode");
            let got: Vec<_> = records.iter().map(|r| (r.offset, r.timestamp, r.key.clone(), r.value.clone())).collect();
            let mut v1 = 11u64.to_be_bytes().to_vec();
            v1.extend_from_slice(b"first");
            let mut v3 = u64::MAX.to_be_bytes().to_vec();
            v3.extend_from_slice(&[7u8; 300]);
            assert_eq!(
                got,
                vec![
                    (0, 1_000, None, Some(v1)),
                    (1, 1_003, Some(b"key-2".to_vec()), Some(22u64.to_be_bytes().to_vec())),
                    (2, 1_001, Some(Vec::new()), Some(v3)),
                ],
                "{codec:?}"
            );
        }
    }

    #[test]
    fn walking_fetched_batches_counts_exactly_from_the_fetch_offset() {
        let mut all = Vec::new();
        for (base, codec) in [(10i64, Compression::None), (13, Compression::Lz4)] {
            let mut b = OpenBatch::new(256);
            for i in 0..3u64 {
                b.push(Some(b"kk"), base as u64 + i, b"vvvv", 5);
            }
            let mut sealed = BytesMut::from(&b.seal(codec)[..]);
            batch::assign_offset(&mut sealed, base, 0);
            all.extend_from_slice(&sealed);
        }
        let full = all.len();
        // A partial batch at the end (the broker's size cut) is ignored.
        let head = all[..20].to_vec();
        all.extend_from_slice(&head);
        let mut stamps = Vec::new();
        let got = walk_fetched(&all, 11, |t, kv| stamps.push((u64::from_be_bytes(t.expect("8-byte value")), kv)))
            .expect("walk");
        assert_eq!(got, FetchedCount { records: 5, bytes: 5 * (2 + 12), next_offset: 16 });
        assert_eq!(stamps, vec![(11, 14), (12, 14), (13, 14), (14, 14), (15, 14)]);
        assert_eq!(walk_fetched(&all, 16, |_, _| {}).expect("nothing new").records, 0);
        let mut bad = all[..full].to_vec();
        bad[full - 1] ^= 0x55;
        assert!(walk_fetched(&bad, 0, |_, _| {}).expect_err("crc").contains("CRC"), "corruption is reported");
    }

    #[test]
    fn frames_are_cut_from_one_buffer() {
        let mut wire = Vec::new();
        for body in [&b"abcd"[..], b"", b"0123456789"] {
            wire.extend_from_slice(&(body.len() as i32).to_be_bytes());
            wire.extend_from_slice(body);
        }
        let mut r = FrameReader::new(100);
        let mut src = &wire[..];
        futures_lite::future::block_on(async {
            assert_eq!(&r.next(&mut src).await.expect("1")[..], b"abcd");
            assert_eq!(&r.next(&mut src).await.expect("2")[..], b"");
            assert_eq!(&r.next(&mut src).await.expect("3")[..], b"0123456789");
            assert!(r.next(&mut src).await.is_err(), "EOF");
        });
        let mut big = &[0u8, 0, 1, 0][..];
        let e = futures_lite::future::block_on(FrameReader::new(100).next(&mut big)).expect_err("too large");
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    }
}
