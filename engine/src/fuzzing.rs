//! Entry points for fuzzing the decoders of untrusted bytes: record batches (from clients and
//! from disk), records inside them, index files and the epoch checkpoint. Used by the cargo-fuzz
//! target in `engine/fuzz/` and by a property test that runs in every CI build.
//!
//! Each function must return normally for any input: no panic, no unbounded allocation.

use crate::batch::{self, BatchView, ValidatedBatches};
use crate::epoch::EpochCache;
use crate::index::SegmentIndex;
use crate::records;

/// Feeds `data` to every decoder of the engine and checks the invariants of what they accept.
pub fn decode_everything(data: &[u8]) {
    let limit = 1 << 20;
    if let Ok(views) = batch::parse_all(data, limit) {
        let total: usize = views.iter().map(BatchView::size).sum();
        assert_eq!(total, data.len(), "parse_all accounts for every byte");
    }
    let mut rest = data;
    while let Ok(view) = BatchView::parse(rest, limit) {
        assert!(view.size() >= batch::HEADER_BYTES && view.size() <= rest.len());
        assert!(view.last_offset() >= view.base_offset() || view.base_offset() > i64::MAX - i64::from(i32::MAX));
        assert!(view.record_count() >= 1);
        if let Ok(recs) = records::decode_records(&view) {
            assert_eq!(recs.len(), view.record_count() as usize);
        }
        rest = &rest[view.size()..];
    }
    if let Ok(v) = ValidatedBatches::new(bytes::BytesMut::from(data), limit) {
        assert_eq!(v.len_bytes(), data.len());
        assert!(v.offset_span() >= v.batches().len() as i64);
    }
    // Most random inputs fail the CRC; a copy with the CRC fixed up (and the length field set
    // to the input's) reaches the record decoders and codecs too.
    if data.len() >= batch::HEADER_BYTES {
        let mut fixed = data.to_vec();
        let len = (fixed.len() - batch::LOG_OVERHEAD) as i32;
        fixed[8..12].copy_from_slice(&len.to_be_bytes());
        fixed[16] = batch::MAGIC_V2 as u8;
        let crc = batch::compute_crc(&fixed);
        fixed[17..21].copy_from_slice(&crc.to_be_bytes());
        if let Ok(view) = BatchView::parse(&fixed, limit) {
            assert_eq!(view.size(), fixed.len());
            if let Ok(recs) = records::decode_records(&view) {
                assert_eq!(recs.len(), view.record_count() as usize);
            }
        }
    }
    let half = data.len() / 2;
    if let Some(idx) = SegmentIndex::decode(&data[..half], &data[half..], data.len() as u64) {
        for w in idx.offsets.windows(2) {
            assert!(w[0].rel_offset < w[1].rel_offset && w[0].position < w[1].position);
        }
    }
    if let Some(c) = EpochCache::decode(data) {
        assert_eq!(EpochCache::decode(&c.encode()), Some(c));
    }
}
