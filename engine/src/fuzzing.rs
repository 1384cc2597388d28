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
