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
//!
//! Transactions: a producer's first transactional batch opens its transaction in the partition
//! (its first offset holds back the last stable offset); a non-transactional batch while one is
//! open is refused (INVALID_TXN_STATE); the coordinator's COMMIT or ABORT marker closes it, and
//! an aborted one is remembered (producer, first and last offset) for read_committed fetches
//! until the log start passes it. Markers from an older coordinator epoch are refused
//! (TRANSACTION_COORDINATOR_FENCED), from an older producer epoch too (INVALID_PRODUCER_EPOCH).

use std::collections::{BTreeSet, HashMap, VecDeque};

use engine::batch::{BatchMeta, ATTR_CONTROL, ATTR_TRANSACTIONAL};

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
    /// The epoch of the transaction coordinator that last wrote a marker for it (-1: none).
    pub coordinator_epoch: i32,
    /// The first offset of its open transaction in this partition.
    pub txn_first_offset: Option<i64>,
}

impl ProducerEntry {
    fn new(epoch: i16, now_ms: i64) -> Self {
        Self { epoch, batches: VecDeque::new(), last_append_ms: now_ms, coordinator_epoch: -1, txn_first_offset: None }
    }
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
    /// A non-transactional batch while the producer's transaction is open: INVALID_TXN_STATE.
    #[error("producer {pid} has a transaction open at offset {txn_first_offset}: expected a transactional batch")]
    TransactionOpen { pid: i64, txn_first_offset: i64 },
    /// A marker from an older coordinator epoch: TRANSACTION_COORDINATOR_FENCED.
    #[error("marker for producer {pid} from coordinator epoch {coordinator_epoch}, older than {current}")]
    CoordinatorFenced { pid: i64, coordinator_epoch: i32, current: i32 },
}

/// A transaction of one producer that ended in ABORT: read_committed consumers skip its
/// batches between `first_offset` and its marker at `last_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// A transaction marker (a control batch's one record): how the coordinator ends a producer's
/// transaction in a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
    pub commit: bool,
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
    /// Open transactions: `(first offset, producer id)`, so the first unstable offset is the
    /// least.
    open: BTreeSet<(i64, i64)>,
    /// Aborted transactions, in the order of their markers (so by `last_offset`).
    aborted: Vec<AbortedTxn>,
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

    /// The first offset of the oldest open transaction: the last stable offset cannot pass it.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.open.first().map(|(o, _)| *o)
    }

    /// Aborted transactions that overlap the offsets `[from, to)`: what a read_committed fetch
    /// of that range is told, so the client drops their batches.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        self.aborted[start..].iter().filter(|a| a.first_offset < to).copied().collect()
    }

    /// Forgets the aborted transactions ended by these markers (producer id, marker offset):
    /// the cleaner removed all their data. Returns whether any was known.
    pub fn forget_aborted(&mut self, markers: &[(i64, i64)]) -> bool {
        let before = self.aborted.len();
        self.aborted.retain(|a| !markers.contains(&(a.producer_id, a.last_offset)));
        self.aborted.len() != before
    }

    /// Forgets aborted transactions wholly below the log start (their batches are gone).
    pub fn prune_aborted(&mut self, log_start_offset: i64) {
        let cut = self.aborted.partition_point(|a| a.last_offset < log_start_offset);
        self.aborted.drain(..cut);
    }

    /// Sets `pid`'s open transaction (or none), keeping the open set in step.
    fn set_txn(open: &mut BTreeSet<(i64, i64)>, pid: i64, entry: &mut ProducerEntry, first: Option<i64>) {
        if let Some(old) = entry.txn_first_offset {
            open.remove(&(old, pid));
        }
        if let Some(new) = first {
            open.insert((new, pid));
        }
        entry.txn_first_offset = first;
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
        for b in batches.iter().filter(|b| b.producer_id >= 0 && b.base_sequence >= 0) {
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
            let transactional = b.attributes & ATTR_TRANSACTIONAL != 0;
            if b.base_sequence < 0 {
                // Written by a coordinator (transactional offset commits): no sequence, so only
                // the epoch is judged, and the batch opens the producer's transaction here.
                let mut entry = current.cloned().unwrap_or_else(|| ProducerEntry::new(b.producer_epoch, now_ms));
                if b.producer_epoch < entry.epoch {
                    return Err(ProducerError::InvalidEpoch {
                        pid: b.producer_id,
                        epoch: b.producer_epoch,
                        current: entry.epoch,
                    });
                }
                if b.producer_epoch > entry.epoch {
                    entry.epoch = b.producer_epoch;
                    entry.batches.clear();
                }
                entry.last_append_ms = entry.last_append_ms.max(now_ms);
                if transactional && entry.txn_first_offset.is_none() {
                    entry.txn_first_offset = Some(first);
                }
                staged.insert(b.producer_id, entry);
                continue;
            }
            check(current, b.producer_id, b.producer_epoch, b.base_sequence)?;
            if let Some(open) = current.and_then(|e| e.txn_first_offset).filter(|_| !transactional) {
                return Err(ProducerError::TransactionOpen { pid: b.producer_id, txn_first_offset: open });
            }
            let mut entry = current.cloned().unwrap_or_else(|| ProducerEntry::new(b.producer_epoch, now_ms));
            let range = BatchRange {
                first_seq: b.base_sequence,
                last_seq: last_sequence(b.base_sequence, b.last_offset_delta),
                first_offset: first,
                last_offset,
            };
            entry.push(b.producer_epoch, range, now_ms);
            if transactional && entry.txn_first_offset.is_none() {
                // Staged apart from the open set, which changes only when all batches pass.
                entry.txn_first_offset = Some(first);
            }
            staged.insert(b.producer_id, entry);
        }
        for (pid, mut entry) in staged {
            let before = self.producers.get(&pid).and_then(|e| e.txn_first_offset);
            let after = entry.txn_first_offset;
            entry.txn_first_offset = before;
            Self::set_txn(&mut self.open, pid, &mut entry, after);
            self.producers.insert(pid, entry);
        }
        Ok(Verdict::Append)
    }

    /// Judges a transaction marker about to be written at `offset` and, if it passes, ends the
    /// producer's open transaction with it.
    pub fn record_marker(&mut self, m: Marker, offset: i64, now_ms: i64) -> Result<(), ProducerError> {
        if let Some(e) = self.producers.get(&m.producer_id) {
            if m.producer_epoch < e.epoch {
                return Err(ProducerError::InvalidEpoch {
                    pid: m.producer_id,
                    epoch: m.producer_epoch,
                    current: e.epoch,
                });
            }
            if m.coordinator_epoch < e.coordinator_epoch {
                return Err(ProducerError::CoordinatorFenced {
                    pid: m.producer_id,
                    coordinator_epoch: m.coordinator_epoch,
                    current: e.coordinator_epoch,
                });
            }
        }
        self.apply_marker(m, offset, now_ms);
        Ok(())
    }

    fn apply_marker(&mut self, m: Marker, offset: i64, now_ms: i64) {
        let entry = self.producers.entry(m.producer_id).or_insert_with(|| ProducerEntry::new(m.producer_epoch, now_ms));
        if let Some(first) = entry.txn_first_offset {
            if !m.commit {
                self.aborted.push(AbortedTxn { producer_id: m.producer_id, first_offset: first, last_offset: offset });
            }
        }
        Self::set_txn(&mut self.open, m.producer_id, entry, None);
        entry.coordinator_epoch = m.coordinator_epoch;
        if m.producer_epoch > entry.epoch {
            entry.epoch = m.producer_epoch;
            entry.batches.clear();
        }
        entry.last_append_ms = entry.last_append_ms.max(now_ms);
    }

    /// Records a batch read back from the log (recovery), without judging it: everything in the
    /// log was accepted when it was written.
    /// A data batch: `attributes` tell whether it is transactional. A control batch goes
    /// through [`replay_marker`](Self::replay_marker).
    pub fn replay(&mut self, pid: i64, epoch: i16, attributes: i16, range: BatchRange, now_ms: i64) {
        if pid < 0 || attributes & ATTR_CONTROL != 0 {
            return;
        }
        let entry = self.producers.entry(pid).or_insert_with(|| ProducerEntry::new(epoch, now_ms));
        if range.first_seq < 0 {
            // A coordinator's batch (no sequence): only its epoch and transaction count.
            if epoch > entry.epoch {
                entry.epoch = epoch;
                entry.batches.clear();
            }
            entry.last_append_ms = entry.last_append_ms.max(now_ms);
        } else {
            entry.push(epoch, range, now_ms);
        }
        if attributes & ATTR_TRANSACTIONAL != 0 && entry.txn_first_offset.is_none() {
            Self::set_txn(&mut self.open, pid, entry, Some(range.first_offset));
        }
    }

    /// A marker read back from the log at `offset`.
    pub fn replay_marker(&mut self, m: Marker, offset: i64, now_ms: i64) {
        self.apply_marker(m, offset, now_ms);
    }

    /// Forgets producers that stored nothing for `expiration_ms` (`producer.id.expiration.ms`),
    /// except those with a transaction open. Returns how many went.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, e| e.txn_first_offset.is_some() || now_ms.saturating_sub(e.last_append_ms) < expiration_ms);
        before - self.producers.len()
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
const SNAPSHOT_MAGIC: &[u8; 4] = b"OPS2";
const SNAPSHOT_HEADER_BYTES: usize = 4 + 4 + 8 + 4;
const ENTRY_HEADER_BYTES: usize = 8 + 2 + 8 + 4 + 8 + 1;
const ABORTED_BYTES: usize = 8 + 8 + 8;
const RANGE_BYTES: usize = 4 + 4 + 8 + 8;

pub fn snapshot_name(offset: i64) -> String {
    format!("{offset:020}{SNAPSHOT_SUFFIX}")
}

/// The offset a snapshot file's name says, if it is one.
pub fn snapshot_offset(name: &str) -> Option<i64> {
    name.strip_suffix(SNAPSHOT_SUFFIX)?.parse().ok().filter(|o: &i64| *o >= 0)
}

/// Layout (big-endian): magic `OPS2`, CRC-32C of everything after it, the offset, the entry
/// count; per entry the producer id, epoch, last append time, coordinator epoch, open
/// transaction's first offset (-1: none), batch count, then per batch its first and last
/// sequence and first and last offset; then the aborted transactions' count and, for each, its
/// producer id, first and last offset.
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
        body.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
        body.extend_from_slice(&e.txn_first_offset.unwrap_or(-1).to_be_bytes());
        body.push(e.batches.len() as u8);
        for b in &e.batches {
            body.extend_from_slice(&b.first_seq.to_be_bytes());
            body.extend_from_slice(&b.last_seq.to_be_bytes());
            body.extend_from_slice(&b.first_offset.to_be_bytes());
            body.extend_from_slice(&b.last_offset.to_be_bytes());
        }
    }
    body.extend_from_slice(&(state.aborted.len() as u32).to_be_bytes());
    for a in &state.aborted {
        body.extend_from_slice(&a.producer_id.to_be_bytes());
        body.extend_from_slice(&a.first_offset.to_be_bytes());
        body.extend_from_slice(&a.last_offset.to_be_bytes());
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
    let mut open = BTreeSet::new();
    for _ in 0..count {
        let pid = i64::from_be_bytes(c.take()?);
        let epoch = i16::from_be_bytes(c.take()?);
        let last_append_ms = i64::from_be_bytes(c.take()?);
        let coordinator_epoch = i32::from_be_bytes(c.take()?);
        let txn = i64::from_be_bytes(c.take()?);
        let txn_first_offset = (txn >= 0).then_some(txn);
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
        if let Some(first) = txn_first_offset {
            open.insert((first, pid));
        }
        producers.insert(pid, ProducerEntry { epoch, batches, last_append_ms, coordinator_epoch, txn_first_offset });
    }
    let aborted_count = u32::from_be_bytes(c.take()?) as usize;
    if aborted_count != c.0.len() / ABORTED_BYTES || c.0.len() % ABORTED_BYTES != 0 {
        return None;
    }
    let mut aborted = Vec::with_capacity(aborted_count);
    for _ in 0..aborted_count {
        aborted.push(AbortedTxn {
            producer_id: i64::from_be_bytes(c.take()?),
            first_offset: i64::from_be_bytes(c.take()?),
            last_offset: i64::from_be_bytes(c.take()?),
        });
    }
    Some((ProducerState { producers, open, aborted }, offset))
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
    }

    fn txn(pid: i64, epoch: i16, seq: i32, records: i32) -> BatchMeta {
        BatchMeta { attributes: ATTR_TRANSACTIONAL, ..meta(pid, epoch, seq, records) }
    }

    fn marker(pid: i64, epoch: i16, coordinator_epoch: i32, commit: bool) -> Marker {
        Marker { producer_id: pid, producer_epoch: epoch, coordinator_epoch, commit }
    }

    #[test]
    fn transactions_hold_back_the_stable_offset_until_their_marker() {
        let mut s = ProducerState::default();
        s.check_and_record(&[meta(9, 0, 0, 2)], 0, 1).expect("plain");
        s.check_and_record(&[txn(1, 0, 0, 2)], 2, 1).expect("txn 1");
        s.check_and_record(&[txn(2, 0, 0, 1)], 4, 1).expect("txn 2");
        s.check_and_record(&[txn(1, 0, 2, 1)], 5, 1).expect("txn 1 again");
        assert_eq!(s.first_unstable_offset(), Some(2));
        assert_eq!(
            s.check_and_record(&[meta(1, 0, 3, 1)], 6, 1),
            Err(ProducerError::TransactionOpen { pid: 1, txn_first_offset: 2 })
        );
        s.record_marker(marker(1, 0, 0, false), 6, 1).expect("abort 1");
        assert_eq!(s.first_unstable_offset(), Some(4));
        s.record_marker(marker(2, 0, 0, true), 7, 1).expect("commit 2");
        assert_eq!(s.first_unstable_offset(), None);
        let aborted = AbortedTxn { producer_id: 1, first_offset: 2, last_offset: 6 };
        assert_eq!(s.aborted_between(0, 8), [aborted]);
        assert_eq!(s.aborted_between(6, 8), [aborted]);
        assert_eq!(s.aborted_between(7, 8), []);
        assert_eq!(s.aborted_between(0, 2), []);
        // Fencing of markers: an older coordinator, an older producer epoch.
        s.record_marker(marker(2, 1, 3, false), 8, 1).expect("a new epoch's marker");
        assert_eq!(
            s.record_marker(marker(2, 1, 2, true), 9, 1),
            Err(ProducerError::CoordinatorFenced { pid: 2, coordinator_epoch: 2, current: 3 })
        );
        assert_eq!(
            s.record_marker(marker(2, 0, 3, true), 9, 1),
            Err(ProducerError::InvalidEpoch { pid: 2, epoch: 0, current: 1 })
        );
        let bytes = encode_snapshot(&s, 9);
        assert_eq!(decode_snapshot(&bytes), Some((s.clone(), 9)));
        // The cleaner removed the data of pid 1's aborted transaction (its marker at 6).
        let mut forgotten = s.clone();
        assert!(!forgotten.forget_aborted(&[(1, 5), (2, 6)]), "neither ended one");
        assert!(forgotten.forget_aborted(&[(1, 6)]));
        assert_eq!(forgotten.aborted_between(0, 100), []);
        s.prune_aborted(7);
        assert_eq!(s.aborted_between(0, 100), []);
    }

    #[test]
    fn replay_rebuilds_open_and_aborted_transactions() {
        let mut live = ProducerState::default();
        let mut replayed = ProducerState::default();
        let steps: [(BatchMeta, i64); 3] = [(txn(1, 0, 0, 2), 0), (txn(2, 0, 0, 1), 2), (meta(3, 0, 0, 1), 3)];
        for (m, offset) in steps {
            live.check_and_record(&[m], offset, 1).expect("append");
            let range = BatchRange {
                first_seq: m.base_sequence,
                last_seq: last_sequence(m.base_sequence, m.last_offset_delta),
                first_offset: offset,
                last_offset: offset + i64::from(m.last_offset_delta),
            };
            replayed.replay(m.producer_id, m.producer_epoch, m.attributes, range, 1);
        }
        live.record_marker(marker(1, 0, 5, false), 4, 1).expect("abort");
        replayed.replay_marker(marker(1, 0, 5, false), 4, 1);
        assert_eq!(live, replayed);
        assert_eq!(live.first_unstable_offset(), Some(2));
    }
}
