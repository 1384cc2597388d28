//! Sparse indexes of one segment, kept in memory and written to disk when the segment is sealed
//! (rolled) or the log is closed cleanly. Both are rebuildable from the data file, so a missing
//! or damaged index file only costs a scan.
//!
//! On disk (big-endian, no header; see `engine/FORMAT.md`):
//! - `.index`: entries of 8 bytes, `relative offset: u32, position: u32`.
//! - `.timeindex`: entries of 12 bytes, `timestamp: i64, relative offset: u32`.

/// One offset-index entry: the batch whose base offset is `segment base + rel_offset` starts at
/// byte `position` of the data file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub rel_offset: u32,
    pub position: u32,
}

/// One time-index entry: up to and including the batch at `rel_offset`, the largest timestamp in
/// the segment is `timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub rel_offset: u32,
}

pub const OFFSET_ENTRY_BYTES: usize = 8;
pub const TIME_ENTRY_BYTES: usize = 12;

#[derive(Debug, Default, Clone)]
pub struct SegmentIndex {
    pub offsets: Vec<OffsetEntry>,
    pub times: Vec<TimeEntry>,
}

impl SegmentIndex {
    /// Position to start scanning from to find `rel_offset`: the last entry at or before it.
    pub fn lookup(&self, rel_offset: u32) -> OffsetEntry {
        let i = self.offsets.partition_point(|e| e.rel_offset <= rel_offset);
        if i == 0 {
            OffsetEntry { rel_offset: 0, position: 0 }
        } else {
            self.offsets[i - 1]
        }
    }

    /// Offset to start scanning from to find the first record with timestamp >= `ts`: every
    /// batch before the returned relative offset has a max timestamp below `ts`.
    pub fn lookup_time(&self, ts: i64) -> u32 {
        let i = self.times.partition_point(|e| e.timestamp < ts);
        if i == 0 {
            0
        } else {
            self.times[i - 1].rel_offset
        }
    }

    pub fn push_offset(&mut self, e: OffsetEntry) {
        if let Some(last) = self.offsets.last() {
            assert!(e.rel_offset > last.rel_offset && e.position > last.position, "offset index must grow");
        }
        self.offsets.push(e);
    }

    pub fn push_time(&mut self, e: TimeEntry) {
        match self.times.last() {
            Some(last) if e.timestamp <= last.timestamp => {}
            _ => self.times.push(e),
        }
    }

    /// Drops entries for batches at or after `position` / `rel_offset` (truncation).
    pub fn truncate(&mut self, rel_offset: u32) {
        self.offsets.retain(|e| e.rel_offset < rel_offset);
        self.times.retain(|e| e.rel_offset < rel_offset);
    }

    pub fn encode_offsets(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.offsets.len() * OFFSET_ENTRY_BYTES);
        for e in &self.offsets {
            out.extend_from_slice(&e.rel_offset.to_be_bytes());
            out.extend_from_slice(&e.position.to_be_bytes());
        }
        out
    }

    pub fn encode_times(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.times.len() * TIME_ENTRY_BYTES);
        for e in &self.times {
            out.extend_from_slice(&e.timestamp.to_be_bytes());
            out.extend_from_slice(&e.rel_offset.to_be_bytes());
        }
        out
    }

    /// Decodes both files and checks them against the data file's size. `None` means "not
    /// trustworthy: rebuild by scanning".
    pub fn decode(offsets: &[u8], times: &[u8], data_bytes: u64) -> Option<Self> {
        if offsets.len() % OFFSET_ENTRY_BYTES != 0 || times.len() % TIME_ENTRY_BYTES != 0 {
            return None;
        }
        let mut idx = SegmentIndex::default();
        for c in offsets.chunks_exact(OFFSET_ENTRY_BYTES) {
            let e = OffsetEntry {
                rel_offset: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                position: u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
            };
            if u64::from(e.position) >= data_bytes {
                return None;
            }
            if let Some(last) = idx.offsets.last() {
                if e.rel_offset <= last.rel_offset || e.position <= last.position {
                    return None;
                }
            }
            idx.offsets.push(e);
        }
        let max_rel = idx.offsets.last().map(|e| e.rel_offset);
        for c in times.chunks_exact(TIME_ENTRY_BYTES) {
            let e = TimeEntry {
                timestamp: i64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
                rel_offset: u32::from_be_bytes([c[8], c[9], c[10], c[11]]),
            };
            if let Some(last) = idx.times.last() {
                if e.timestamp <= last.timestamp || e.rel_offset <= last.rel_offset {
                    return None;
                }
            }
            // Time entries are only made where offset entries are.
            if max_rel.is_none_or(|m| e.rel_offset > m) {
                return None;
            }
            idx.times.push(e);
        }
        Some(idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SegmentIndex {
        let mut i = SegmentIndex::default();
        for k in 1..=5u32 {
            i.push_offset(OffsetEntry { rel_offset: k * 10, position: k * 4096 });
            i.push_time(TimeEntry { timestamp: 1000 + i64::from(k) * 100, rel_offset: k * 10 });
        }
        i
    }

    #[test]
    fn lookups_find_the_entry_at_or_before() {
        let i = sample();
        assert_eq!(i.lookup(0), OffsetEntry { rel_offset: 0, position: 0 });
        assert_eq!(i.lookup(9).position, 0);
        assert_eq!(i.lookup(10).position, 4096);
        assert_eq!(i.lookup(35).position, 3 * 4096);
        assert_eq!(i.lookup(u32::MAX).position, 5 * 4096);
        assert_eq!(i.lookup_time(0), 0);
        assert_eq!(i.lookup_time(1100), 0);
        assert_eq!(i.lookup_time(1101), 10);
        assert_eq!(i.lookup_time(99_999), 50);
    }

    #[test]
    fn encode_decode_round_trip_and_rejects_damage() {
        let i = sample();
        let (o, t) = (i.encode_offsets(), i.encode_times());
        let d = SegmentIndex::decode(&o, &t, 1 << 20).expect("valid");
        assert_eq!(d.offsets, i.offsets);
        assert_eq!(d.times, i.times);
        // Entry pointing past the data file.
        assert!(SegmentIndex::decode(&o, &t, 4096 * 3).is_none());
        // Torn entry.
        assert!(SegmentIndex::decode(&o[..o.len() - 3], &t, 1 << 20).is_none());
        // Non-monotonic entries.
        let mut bad = o.clone();
        bad[8..12].copy_from_slice(&0u32.to_be_bytes());
        assert!(SegmentIndex::decode(&bad, &t, 1 << 20).is_none());
    }
}
