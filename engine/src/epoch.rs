//! The leader-epoch checkpoint: for each leader epoch, the first offset written in it.
//! OffsetForLeaderEpoch and follower truncation after a leader change are answered from it.
//!
//! File format (text, like Kafka's `leader-epoch-checkpoint`): a version line `0`, a count line,
//! then one `epoch start_offset` line per entry, in increasing order of both.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpochCache {
    entries: Vec<EpochEntry>,
}

/// Kafka's answer for an epoch it knows nothing about.
pub const UNDEFINED_EPOCH: i32 = -1;
pub const UNDEFINED_OFFSET: i64 = -1;

impl EpochCache {
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `offset`, if it is newer than the latest epoch. Returns
    /// whether the cache changed (and must be persisted). Epochs that started at or after
    /// `offset` held no record (a leader that appended nothing) and give way to the new one.
    pub fn assign(&mut self, epoch: i32, offset: i64) -> bool {
        if epoch < 0 {
            return false;
        }
        match self.entries.last() {
            Some(last) if epoch <= last.epoch => false,
            _ => {
                while self.entries.last().is_some_and(|e| e.start_offset >= offset) {
                    self.entries.pop();
                }
                self.entries.push(EpochEntry { epoch, start_offset: offset });
                true
            }
        }
    }

    /// The epoch the record at `offset` was written in: the latest epoch starting at or before
    /// it.
    pub fn epoch_at(&self, offset: i64) -> Option<i32> {
        self.entries.iter().rev().find(|e| e.start_offset <= offset).map(|e| e.epoch)
    }

    /// The largest epoch at or below `requested`, and the offset where the next epoch starts
    /// (or `log_end_offset` for the latest epoch): what OffsetForLeaderEpoch answers.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        match self.entries.last() {
            None => (UNDEFINED_EPOCH, UNDEFINED_OFFSET),
            Some(last) if requested == last.epoch => (last.epoch, log_end_offset),
            Some(_) => {
                let higher = self.entries.iter().find(|e| e.epoch > requested);
                let floor = self.entries.iter().rev().find(|e| e.epoch <= requested);
                match (floor, higher) {
                    (_, None) => (UNDEFINED_EPOCH, UNDEFINED_OFFSET),
                    (None, Some(h)) => (requested, h.start_offset),
                    (Some(f), Some(h)) => (f.epoch, h.start_offset),
                }
            }
        }
    }

    /// Forgets epochs that start at or after `end_offset` (the log was truncated there).
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        before != self.entries.len()
    }

    /// Moves the log start to `start_offset`: epochs wholly before it go, the one containing it
    /// now starts there.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let covering = self.entries.iter().rposition(|e| e.start_offset <= start_offset);
        match covering {
            Some(i) if i > 0 || self.entries[i].start_offset < start_offset => {
                self.entries.drain(..i);
                self.entries[0].start_offset = start_offset;
                true
            }
            _ => false,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut s = format!("0\n{}\n", self.entries.len());
        for e in &self.entries {
            s.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        s.into_bytes()
    }

    /// `None` if the file is damaged (the caller starts empty; the epochs of new appends rebuild
    /// it, and replication re-learns older ones from the leader).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut lines = text.lines();
        if lines.next()? != "0" {
            return None;
        }
        let count: usize = lines.next()?.parse().ok()?;
        let mut cache = EpochCache::default();
        for _ in 0..count {
            let mut parts = lines.next()?.split(' ');
            let epoch: i32 = parts.next()?.parse().ok()?;
            let start_offset: i64 = parts.next()?.parse().ok()?;
            if let Some(last) = cache.entries.last() {
                if epoch <= last.epoch || start_offset < last.start_offset {
                    return None;
                }
            }
            cache.entries.push(EpochEntry { epoch, start_offset });
        }
        Some(cache)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_epoch_gives_way_and_epoch_at_finds_the_writer() {
        let mut c = EpochCache::default();
        assert!(c.assign(0, 0));
        assert!(c.assign(2, 10));
        // Epoch 3 starts where 2 did: 2 held nothing.
        assert!(c.assign(3, 10));
        assert_eq!(c.entries().iter().map(|e| (e.epoch, e.start_offset)).collect::<Vec<_>>(), [(0, 0), (3, 10)]);
        assert!(c.assign(4, 15));
        assert_eq!(
            (c.epoch_at(0), c.epoch_at(9), c.epoch_at(10), c.epoch_at(14), c.epoch_at(99)),
            (Some(0), Some(0), Some(3), Some(3), Some(4))
        );
        assert_eq!(EpochCache::default().epoch_at(5), None);
        assert_eq!(EpochCache::decode(&c.encode()), Some(c));
    }

    fn cache() -> EpochCache {
        let mut c = EpochCache::default();
        assert!(c.assign(1, 0));
        assert!(!c.assign(1, 5));
        assert!(c.assign(3, 10));
        assert!(c.assign(4, 20));
        c
    }

    #[test]
    fn end_offsets_follow_kafka() {
        let c = cache();
        assert_eq!(c.end_offset_for(4, 30), (4, 30));
        assert_eq!(c.end_offset_for(3, 30), (3, 20));
        assert_eq!(c.end_offset_for(2, 30), (1, 10));
        assert_eq!(c.end_offset_for(0, 30), (0, 0));
        assert_eq!(c.end_offset_for(5, 30), (UNDEFINED_EPOCH, UNDEFINED_OFFSET));
        assert_eq!(EpochCache::default().end_offset_for(1, 0), (UNDEFINED_EPOCH, UNDEFINED_OFFSET));
    }

    #[test]
    fn truncation_both_ends() {
        let mut c = cache();
        assert!(c.truncate_from_end(20));
        assert_eq!(c.latest_epoch(), Some(3));
        assert!(c.truncate_from_start(12));
        assert_eq!(c.entries(), &[EpochEntry { epoch: 3, start_offset: 12 }]);
    }

    #[test]
    fn file_round_trip() {
        let c = cache();
        assert_eq!(EpochCache::decode(&c.encode()), Some(c));
        assert_eq!(EpochCache::decode(b"0\n2\n1 0\n"), None);
        assert_eq!(EpochCache::decode(b"garbage"), None);
    }
}
