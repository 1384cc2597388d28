//! Idempotent producers' state in one partition: for each producer id, its epoch and the
//! sequence ranges and offsets of its last [`BATCHES_KEPT`] batches.
//!
//! Lives on: the partition's owning shard, inside its [`crate::Partition`]. Checked and updated
//! by the append gate (`PartitionLog::append_buffered_gated`), so sequence numbers are judged
//! at the moment offsets are assigned; rebuilt on open from the latest snapshot file beside the
//! segments plus the batches written after it.
//!
//! The rules are Kafka's (KIP-98, with KIP-360's relaxations):
//! - a batch whose sequence range matches one of the producer's kept batches in the same epoch
//!   is a duplicate: it is not stored again, and is answered with the original offsets;
//! - an epoch older than the producer's is refused (INVALID_PRODUCER_EPOCH);
//! - a newer epoch must start at sequence 0;
//! - in the same epoch the first sequence must follow the last one (wrapping after
//!   `i32::MAX` to 0), or the batch is refused (OUT_OF_ORDER_SEQUENCE_NUMBER);
//! - a producer the partition knows nothing of (new, or expired) may start at any sequence.
//!   Kafka answered UNKNOWN_PRODUCER_ID here before KIP-360; since 2.5 it accepts, and so do we.

use std::collections::{HashMap, VecDeque};

use engine::batch::BatchMeta;

use crate::ids::ProducerId;

/// Batches kept per producer: Kafka keeps five, and clients keep at most five requests in flight
/// per connection with idempotence on (`max.in.flight.requests.per.connection` ≤ 5), so any
/// retry of an unanswered batch is among them.
pub const BATCHES_KEPT: usize = 5;

/// One stored batch of a producer: its sequence range and the offsets it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRange {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// What a partition knows of one producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    /// Oldest first, at most [`BATCHES_KEPT`].
    pub batches: VecDeque<BatchRange>,
    /// When the broker last stored a batch of this producer (its clock, ms): the producer id
    /// expires `producer.id.expiration.ms` after it. The broker's clock rather than the
    /// batch's timestamp (Kafka's choice), so a producer writing old timestamps does not expire
    /// at once.
    pub last_append_ms: i64,
}

impl ProducerEntry {
    fn last_seq(&self) -> Option<i32> {
        self.batches.back().map(|b| b.last_seq)
    }
    fn find(&self, epoch: i16, first_seq: i32, last_seq: i32) -> Option<BatchRange> {
        if epoch != self.epoch {
            return None;
        }
        self.batches.iter().find(|b| b.first_seq == first_seq && b.last_seq == last_seq).copied()
    }
    fn push(&mut self, epoch: i16, range: BatchRange, now_ms: i64) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
        if self.batches.len() == BATCHES_KEPT {
            self.batches.pop_front();
        }
        self.batches.push_back(range);
        self.last_append_ms = self.last_append_ms.max(now_ms);
    }
}

/// Why a producer's batch is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProducerError {
    /// A newer epoch of this producer id has written (the client was fenced by its own
    /// re-initialisation): INVALID_PRODUCER_EPOCH.
    #[error("producer {pid} epoch {epoch} is older than its current epoch {current}")]
    InvalidEpoch { pid: i64, epoch: i16, current: i16 },
    /// A sequence gap (or a retry older than the kept batches): OUT_OF_ORDER_SEQUENCE_NUMBER.
    #[error("producer {pid} epoch {epoch}: sequence {first_seq} does not follow {expected_after}")]
    OutOfOrder { pid: i64, epoch: i16, first_seq: i32, expected_after: i32 },
    /// A newer epoch must start at sequence 0: OUT_OF_ORDER_SEQUENCE_NUMBER.
    #[error("producer {pid}: new epoch {epoch} starts at sequence {first_seq}, not 0")]
    NewEpochNotAtZero { pid: i64, epoch: i16, first_seq: i32 },
}

/// What the gate decided for one append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Store it (the producers' state already records it).
    Append,
    /// Already stored, at these offsets (the first duplicate batch of the append; a producer
    /// sends one batch per partition per request).
    Duplicate(BatchRange),
}

/// The last sequence of a batch of `last_offset_delta + 1` records starting at `first_seq`,
/// wrapping as producers do after `i32::MAX`.
pub fn last_sequence(first_seq: i32, last_offset_delta: i32) -> i32 {
    let delta = last_offset_delta.max(0);
    if first_seq > i32::MAX - delta {
        delta - (i32::MAX - first_seq) - 1
    } else {
        first_seq + delta
    }
}

fn in_sequence(last: i32, next: i32) -> bool {
    i64::from(next) == i64::from(last) + 1 || (next == 0 && last == i32::MAX)
}

/// See the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerState {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerState {
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
    pub fn len(&self) -> usize {
        self.producers.len()
    }
    pub fn get(&self, pid: ProducerId) -> Option<&ProducerEntry> {
        self.producers.get(&pid.0)
    }
    /// Every producer, by id.
    pub fn iter(&self) -> impl Iterator<Item = (ProducerId, &ProducerEntry)> {
        self.producers.iter().map(|(p, e)| (ProducerId(*p), e))
    }

    /// Judges the batches of one append whose first batch gets `first_offset`, and records them
    /// when they are to be stored. All batches pass or nothing is recorded. Batches without a
    /// producer id (-1) are not checked.
    pub fn check_and_record(
        &mut self,
        batches: &[BatchMeta],
        first_offset: i64,
        now_ms: i64,
    ) -> Result<Verdict, ProducerError> {
        if batches.iter().all(|b| b.producer_id < 0) {
            return Ok(Verdict::Append);
        }
        for b in batches.iter().filter(|b| b.producer_id >= 0) {
            let last = last_sequence(b.base_sequence, b.last_offset_delta);
            if let Some(dup) =
                self.producers.get(&b.producer_id).and_then(|e| e.find(b.producer_epoch, b.base_sequence, last))
            {
                return Ok(Verdict::Duplicate(dup));
            }
        }
        // Staged entries of the producers this append changes, so batches of one producer in
        // one append are judged against each other.
        let mut staged: HashMap<i64, ProducerEntry> = HashMap::new();
        let mut offset = first_offset;
        for b in batches {
            let (first, last_offset) = (offset, offset + i64::from(b.last_offset_delta));
            offset = last_offset + 1;
            if b.producer_id < 0 {
                continue;
            }
            let current = staged.get(&b.producer_id).or_else(|| self.producers.get(&b.producer_id));
            check(current, b.producer_id, b.producer_epoch, b.base_sequence)?;
            let mut entry = current.cloned().unwrap_or(ProducerEntry {
                epoch: b.producer_epoch,
                batches: VecDeque::new(),
                last_append_ms: now_ms,
            });
            let range = BatchRange {
                first_seq: b.base_sequence,
                last_seq: last_sequence(b.base_sequence, b.last_offset_delta),
                first_offset: first,
                last_offset,
            };
            entry.push(b.producer_epoch, range, now_ms);
            staged.insert(b.producer_id, entry);
        }
        self.producers.extend(staged);
        Ok(Verdict::Append)
    }

    /// Records a batch read back from the log (recovery), without judging it: everything in the
    /// log was accepted when it was written.
    pub fn replay(&mut self, pid: i64, epoch: i16, range: BatchRange, now_ms: i64) {
        if pid < 0 {
            return;
        }
        self.producers
            .entry(pid)
            .or_insert_with(|| ProducerEntry { epoch, batches: VecDeque::new(), last_append_ms: now_ms })
            .push(epoch, range, now_ms);
    }

    /// Forgets producers that stored nothing for `expiration_ms` (`producer.id.expiration.ms`).
    /// Returns how many went.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| now_ms.saturating_sub(e.last_append_ms) < expiration_ms);
        before - self.producers.len()
    }

    /// Forgets what was recorded at or after `offset` (the log was truncated there): batches
    /// from `offset` on go, and producers left with no batch go.
    pub fn truncate_from(&mut self, offset: i64) {
        self.producers.retain(|_, e| {
            e.batches.retain(|b| b.last_offset < offset);
            !e.batches.is_empty()
        });
    }
}

/// Kafka's checks of one batch against what the partition knows of its producer.
fn check(current: Option<&ProducerEntry>, pid: i64, epoch: i16, first_seq: i32) -> Result<(), ProducerError> {
    let Some(e) = current else { return Ok(()) };
    if epoch < e.epoch {
        return Err(ProducerError::InvalidEpoch { pid, epoch, current: e.epoch });
    }
    if epoch > e.epoch {
        return if first_seq == 0 { Ok(()) } else { Err(ProducerError::NewEpochNotAtZero { pid, epoch, first_seq }) };
    }
    match e.last_seq() {
        Some(last) if !in_sequence(last, first_seq) => {
            Err(ProducerError::OutOfOrder { pid, epoch, first_seq, expected_after: last })
        }
        _ => Ok(()),
    }
}

// ---- snapshots ---------------------------------------------------------------------------------

/// Snapshot files are named by the offset their state is complete up to (exclusive), like
/// Kafka's: `00000000000000001234.snapshot`.
pub const SNAPSHOT_SUFFIX: &str = ".snapshot";
const SNAPSHOT_MAGIC: &[u8; 4] = b"OPS1";
const SNAPSHOT_HEADER_BYTES: usize = 4 + 4 + 8 + 4;
const ENTRY_HEADER_BYTES: usize = 8 + 2 + 8 + 1;
const RANGE_BYTES: usize = 4 + 4 + 8 + 8;

pub fn snapshot_name(offset: i64) -> String {
    format!("{offset:020}{SNAPSHOT_SUFFIX}")
}

/// The offset a snapshot file's name says, if it is one.
pub fn snapshot_offset(name: &str) -> Option<i64> {
    name.strip_suffix(SNAPSHOT_SUFFIX)?.parse().ok().filter(|o: &i64| *o >= 0)
}

/// Layout (big-endian): magic `OPS1`, CRC-32C of everything after it, the offset, the entry
/// count; per entry the producer id, epoch, last append time, batch count, then per batch its
/// first and last sequence and first and last offset.
pub fn encode_snapshot(state: &ProducerState, offset: i64) -> Vec<u8> {
    let mut body = Vec::with_capacity(12 + state.producers.len() * (ENTRY_HEADER_BYTES + RANGE_BYTES));
    body.extend_from_slice(&offset.to_be_bytes());
    body.extend_from_slice(&(state.producers.len() as u32).to_be_bytes());
    let mut ids: Vec<_> = state.producers.keys().copied().collect();
    ids.sort_unstable();
    for pid in ids {
        let e = &state.producers[&pid];
        body.extend_from_slice(&pid.to_be_bytes());
        body.extend_from_slice(&e.epoch.to_be_bytes());
        body.extend_from_slice(&e.last_append_ms.to_be_bytes());
        body.push(e.batches.len() as u8);
        for b in &e.batches {
            body.extend_from_slice(&b.first_seq.to_be_bytes());
            body.extend_from_slice(&b.last_seq.to_be_bytes());
            body.extend_from_slice(&b.first_offset.to_be_bytes());
            body.extend_from_slice(&b.last_offset.to_be_bytes());
        }
    }
    let mut out = Vec::with_capacity(8 + body.len());
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Reads bytes a disk handed back: `None` for anything damaged or not a snapshot.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_at_checked(N)?;
        self.0 = rest;
        head.try_into().ok()
    }
}

/// The state and offset of a snapshot file; `None` if it is damaged.
pub fn decode_snapshot(bytes: &[u8]) -> Option<(ProducerState, i64)> {
    if bytes.len() < SNAPSHOT_HEADER_BYTES || &bytes[..4] != SNAPSHOT_MAGIC {
        return None;
    }
    let crc = u32::from_be_bytes(bytes[4..8].try_into().ok()?);
    let body = &bytes[8..];
    if crc32c::crc32c(body) != crc {
        return None;
    }
    let mut c = Cursor(body);
    let offset = i64::from_be_bytes(c.take()?);
    let count = u32::from_be_bytes(c.take()?) as usize;
    // Each entry takes at least its header: a count the bytes cannot hold is damage.
    if count > c.0.len() / ENTRY_HEADER_BYTES {
        return None;
    }
    let mut producers = HashMap::with_capacity(count);
    for _ in 0..count {
        let pid = i64::from_be_bytes(c.take()?);
        let epoch = i16::from_be_bytes(c.take()?);
        let last_append_ms = i64::from_be_bytes(c.take()?);
        let [n] = c.take::<1>()?;
        if usize::from(n) > BATCHES_KEPT {
            return None;
        }
        let mut batches = VecDeque::with_capacity(usize::from(n));
        for _ in 0..n {
            batches.push_back(BatchRange {
                first_seq: i32::from_be_bytes(c.take()?),
                last_seq: i32::from_be_bytes(c.take()?),
                first_offset: i64::from_be_bytes(c.take()?),
                last_offset: i64::from_be_bytes(c.take()?),
            });
        }
        producers.insert(pid, ProducerEntry { epoch, batches, last_append_ms });
    }
    if !c.0.is_empty() {
        return None;
    }
    Some((ProducerState { producers }, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pid: i64, epoch: i16, seq: i32, records: i32) -> BatchMeta {
        BatchMeta {
            position: 0,
            size: 0,
            last_offset_delta: records - 1,
            record_count: records,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            attributes: 0,
        }
    }

    #[test]
    fn a_resent_batch_is_a_duplicate_with_its_original_offsets() {
        let mut s = ProducerState::default();
        assert_eq!(s.check_and_record(&[meta(7, 0, 0, 3)], 10, 1), Ok(Verdict::Append));
        assert_eq!(s.check_and_record(&[meta(7, 0, 3, 2)], 13, 1), Ok(Verdict::Append));
        let dup = BatchRange { first_seq: 0, last_seq: 2, first_offset: 10, last_offset: 12 };
        assert_eq!(s.check_and_record(&[meta(7, 0, 0, 3)], 15, 1), Ok(Verdict::Duplicate(dup)));
        assert_eq!(
            s.check_and_record(&[meta(7, 0, 6, 1)], 15, 1),
            Err(ProducerError::OutOfOrder { pid: 7, epoch: 0, first_seq: 6, expected_after: 4 })
        );
        assert_eq!(
            s.check_and_record(&[meta(7, 1, 5, 1)], 15, 1),
            Err(ProducerError::NewEpochNotAtZero { pid: 7, epoch: 1, first_seq: 5 })
        );
        assert_eq!(s.check_and_record(&[meta(7, 1, 0, 1)], 15, 1), Ok(Verdict::Append));
        assert_eq!(
            s.check_and_record(&[meta(7, 0, 5, 1)], 16, 1),
            Err(ProducerError::InvalidEpoch { pid: 7, epoch: 0, current: 1 })
        );
        // Unknown producers start anywhere.
        assert_eq!(s.check_and_record(&[meta(8, 3, 1000, 1)], 16, 1), Ok(Verdict::Append));
    }

    #[test]
    fn one_append_is_judged_whole() {
        let mut s = ProducerState::default();
        let r = s.check_and_record(&[meta(1, 0, 0, 2), meta(1, 0, 3, 1)], 0, 1);
        assert_eq!(r, Err(ProducerError::OutOfOrder { pid: 1, epoch: 0, first_seq: 3, expected_after: 1 }));
        assert!(s.is_empty(), "a refused append records nothing");
        assert_eq!(s.check_and_record(&[meta(1, 0, 0, 2), meta(1, 0, 2, 1)], 0, 1), Ok(Verdict::Append));
        let e = s.get(ProducerId(1)).expect("entry");
        assert_eq!(e.batches.iter().map(|b| (b.first_offset, b.last_offset)).collect::<Vec<_>>(), [(0, 1), (2, 2)]);
    }

    #[test]
    fn sequences_wrap_after_i32_max() {
        assert_eq!(last_sequence(i32::MAX, 0), i32::MAX);
        assert_eq!(last_sequence(i32::MAX, 1), 0);
        assert_eq!(last_sequence(i32::MAX - 1, 3), 1);
        let mut s = ProducerState::default();
        assert_eq!(s.check_and_record(&[meta(1, 0, i32::MAX - 1, 2)], 0, 1), Ok(Verdict::Append));
        assert_eq!(s.check_and_record(&[meta(1, 0, 0, 1)], 2, 1), Ok(Verdict::Append));
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut s = ProducerState::default();
        for i in 0..7 {
            assert_eq!(s.check_and_record(&[meta(1, 0, i, 1)], i64::from(i), 1), Ok(Verdict::Append));
        }
        assert!(matches!(s.check_and_record(&[meta(1, 0, 2, 1)], 7, 1), Ok(Verdict::Duplicate(_))));
        assert!(matches!(s.check_and_record(&[meta(1, 0, 1, 1)], 7, 1), Err(ProducerError::OutOfOrder { .. })));
    }

    #[test]
    fn snapshots_round_trip_and_damage_is_detected() {
        let mut s = ProducerState::default();
        for i in 0..7 {
            s.check_and_record(&[meta(1, 2, i, 1), meta(9, 0, i * 2, 2)], i64::from(i) * 3, 100).expect("append");
        }
        let bytes = encode_snapshot(&s, 21);
        assert_eq!(decode_snapshot(&bytes), Some((s.clone(), 21)));
        for cut in 0..bytes.len() {
            assert_eq!(decode_snapshot(&bytes[..cut]), None, "truncated at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[30] ^= 1;
        assert_eq!(decode_snapshot(&flipped), None);
        assert_eq!(snapshot_offset(&snapshot_name(21)), Some(21));
        assert_eq!(snapshot_offset("00000000000000000021.log"), None);
    }

    #[test]
    fn expiry_and_truncation_forget_producers() {
        let mut s = ProducerState::default();
        s.check_and_record(&[meta(1, 0, 0, 1)], 0, 100).expect("append");
        s.check_and_record(&[meta(2, 0, 0, 1)], 1, 200).expect("append");
        assert_eq!(s.expire(250, 100), 1);
        assert!(s.get(ProducerId(1)).is_none() && s.get(ProducerId(2)).is_some());
        s.truncate_from(1);
        assert!(s.is_empty());
    }
}
