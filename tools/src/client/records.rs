//! Record batches for the client, on top of `engine::records` (the broker's own builder and
//! codecs): one batch from records for Produce, records from a Fetch response's bytes.

use bytes::Bytes;
use engine::batch::{self, BatchView};
use engine::records::{decode_records, BatchBuilder, Record};
use engine::Compression;

/// One v2 batch holding `records` (their `timestamp`s absolute, `offset`s ignored), compressed
/// with `compression`. `records` must not be empty.
pub fn build_batch(records: &[Record], compression: Compression) -> Bytes {
    let base = records.iter().map(|r| r.timestamp).min().unwrap_or(0);
    let mut b = BatchBuilder::new(compression, base);
    for r in records {
        b.push(r.clone());
    }
    b.build().freeze()
}

/// Decodes the batches of a Fetch response's `records` for a fetch at `from_offset`: returns
/// the records at or after it (control batches skipped) and the offset to fetch next. A
/// trailing partial batch (the broker cuts at the size limit) is ignored.
pub fn decode_fetched(mut bytes: &[u8], from_offset: i64) -> Result<(Vec<Record>, i64), String> {
    let mut out = Vec::new();
    let mut next = from_offset;
    while bytes.len() >= batch::LOG_OVERHEAD {
        let size = batch::total_size(bytes, usize::MAX).map_err(|e| e.to_string())?;
        if bytes.len() < size {
            break;
        }
        let view = BatchView::parse(bytes, usize::MAX).map_err(|e| e.to_string())?;
        bytes = &bytes[size..];
        next = next.max(view.last_offset() + 1);
        if view.is_control() {
            continue;
        }
        let records = decode_records(&view).map_err(|e| e.to_string())?;
        out.extend(records.into_iter().filter(|r| r.offset >= from_offset));
    }
    Ok((out, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip_and_partial_tails_are_ignored() {
        let records: Vec<Record> = (0..3)
            .map(|i| {
                Record::new(Some(format!("k{i}").into_bytes()), Some(format!("v{i}").into_bytes()))
                    .with_timestamp(1000 + i)
                    .with_header("h", Some(vec![i as u8]))
            })
            .collect();
        for codec in [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            let mut first = bytes::BytesMut::from(&build_batch(&records, codec)[..]);
            batch::assign_offset(&mut first, 10, 0);
            let mut all = first.to_vec();
            all.extend_from_slice(&first[..first.len() - 3]);
            let (got, next) = decode_fetched(&all, 11).expect("decode");
            assert_eq!(next, 13);
            let got: Vec<_> = got.into_iter().map(|r| (r.offset, r.timestamp, r.key, r.value)).collect();
            assert_eq!(
                got,
                vec![
                    (11, 1001, Some(b"k1".to_vec()), Some(b"v1".to_vec())),
                    (12, 1002, Some(b"k2".to_vec()), Some(b"v2".to_vec()))
                ],
                "{codec:?}"
            );
        }
        let mut bad = build_batch(&records, Compression::None).to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(decode_fetched(&bad, 0).expect_err("crc").contains("CRC"));
        assert_eq!(decode_fetched(&[], 5).expect("empty"), (Vec::new(), 5));
    }
}
