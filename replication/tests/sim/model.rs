//! What the simulation knows the partitions must hold, and the invariant checks against what
//! the shards answer. Every check records the first violation instead of panicking, so the
//! driver can stop the seed and print its trace.

use std::collections::{BTreeMap, HashMap, VecDeque};

use engine::log::{LogError, ReadResult};
use engine::records::{decode_records, Record};
use replication::{PartitionError, PartitionOffsets};

/// A record's identity, carried in the first 12 bytes of its key: (produce number, batch in
/// the request, record in the batch).
pub type Id = (u64, u16, u16);

pub fn key_prefix(id: Id) -> Vec<u8> {
    let mut k = id.0.to_be_bytes().to_vec();
    k.extend_from_slice(&id.1.to_be_bytes());
    k.extend_from_slice(&id.2.to_be_bytes());
    k
}

fn id_of(key: Option<&[u8]>) -> Option<Id> {
    let k = key?;
    let seq = u64::from_be_bytes(k.get(0..8)?.try_into().ok()?);
    let batch = u16::from_be_bytes(k.get(8..10)?.try_into().ok()?);
    let rec = u16::from_be_bytes(k.get(10..12)?.try_into().ok()?);
    Some((seq, batch, rec))
}

/// What one offset of a partition is known to hold.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    pub id: Id,
    /// The leader epoch stamped on its batch, once read.
    pub epoch: Option<i32>,
    /// Acknowledged to the producer: `Some(durable)` (acks=all / acks=1).
    pub acked: Option<bool>,
    /// Returned below the high watermark by a fetch: a consumer may have seen it.
    pub served: bool,
    /// The node's life (start count) in which the model first learned it.
    pub life: u32,
}

/// Offsets observed before a request was sent: its answer may not be older.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seen {
    pub start: i64,
    pub hw: i64,
    pub leo: i64,
}

#[derive(Default)]
pub struct PartModel {
    pub slots: BTreeMap<i64, Slot>,
    pub offset_of: HashMap<Id, i64>,
    /// The most recent offsets of this life (maxima of all answers).
    pub seen: Seen,
    /// The largest log start a DeleteBefore acknowledged.
    pub acked_start: i64,
    /// The largest deletion point ever asked (DeleteBefore or retention): the log start may
    /// never pass it.
    pub allowed_start: i64,
    /// The partition's leader epoch in this life.
    pub epoch: i32,
}

pub struct Model {
    pub names: Vec<String>,
    pub parts: Vec<PartModel>,
    /// Every record ever sent: its partition and content.
    pub sent: HashMap<Id, (usize, Record)>,
    pub failure: Option<String>,
    pub trace: VecDeque<String>,
    /// Invariant 3 across crashes: a served record never vanishes (`SIM_SKIP_SERVED_DURABLE`).
    pub strict_served: bool,
    /// A hash of every trace line: two runs of a seed must agree on it.
    pub digest: u64,
    /// The node's start count (0: the first life).
    pub life: u32,
    pub trace_lines: usize,
}

/// Trace lines kept for the failure report (`SIM_TRACE_LINES` overrides).
pub const TRACE_LINES: usize = 50;

pub struct ReadAsk {
    pub offset: i64,
    pub bytes_max: usize,
    pub end_offset: Option<i64>,
}

impl Model {
    pub fn new(names: Vec<String>, strict_served: bool) -> Self {
        // Epoch -1: the first life's epoch 0 is "greater than before".
        let parts = names.iter().map(|_| PartModel { epoch: -1, ..PartModel::default() }).collect();
        let digest = 0xcbf2_9ce4_8422_2325;
        let trace_lines = std::env::var("SIM_TRACE_LINES").ok().and_then(|v| v.parse().ok()).unwrap_or(TRACE_LINES);
        Self {
            names,
            parts,
            sent: HashMap::new(),
            failure: None,
            trace: VecDeque::new(),
            strict_served,
            digest,
            life: 0,
            trace_lines,
        }
    }

    pub fn note(&mut self, line: String) {
        for b in line.bytes() {
            self.digest = (self.digest ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        if self.trace.len() >= self.trace_lines {
            self.trace.pop_front();
        }
        self.trace.push_back(line);
    }

    pub fn fail(&mut self, msg: String) {
        if self.failure.is_none() {
            self.note(format!("VIOLATION: {msg}"));
            self.failure = Some(msg);
        }
    }

    /// A check: records `msg()` as the violation unless `ok`.
    pub fn ensure(&mut self, ok: bool, msg: impl FnOnce() -> String) -> bool {
        if !ok {
            self.fail(msg());
        }
        ok
    }

    /// A deletion up to `offset` was asked: the log start may move up to it.
    pub fn allow_start(&mut self, p: usize, offset: i64) {
        let part = &mut self.parts[p];
        part.allowed_start = part.allowed_start.max(offset);
    }

    pub fn seen(&self, p: usize) -> Seen {
        self.parts[p].seen
    }

    /// An answer's offsets against what was seen before the request was sent (invariant 3,
    /// within a life: the high watermark never goes back).
    pub fn check_offsets(&mut self, p: usize, before: Seen, start: i64, hw: i64, leo: i64) {
        let n = self.names[p].clone();
        let allowed = self.parts[p].allowed_start;
        self.ensure(start <= hw && hw <= leo, || format!("{n}: start {start} <= hw {hw} <= leo {leo} broken"));
        self.ensure(hw >= before.hw, || format!("{n}: high watermark went back from {} to {hw}", before.hw));
        self.ensure(leo >= before.leo, || format!("{n}: log end went back from {} to {leo}", before.leo));
        self.ensure(start >= before.start, || format!("{n}: log start went back from {} to {start}", before.start));
        self.ensure(start <= allowed.max(0), || {
            format!("{n}: log start {start} past every deletion asked ({allowed})")
        });
        let s = &mut self.parts[p].seen;
        s.start = s.start.max(start);
        s.hw = s.hw.max(hw);
        s.leo = s.leo.max(leo);
    }

    pub fn check_partition_offsets(&mut self, p: usize, before: Seen, o: &PartitionOffsets) {
        self.check_offsets(p, before, o.log_start_offset.get(), o.high_watermark.get(), o.log_end_offset.get());
        let (want, got) = (self.parts[p].epoch, o.leader_epoch.get());
        let n = &self.names[p];
        let msg = format!("{n}: leader epoch {got}, this life's is {want}");
        self.ensure(got == want, || msg);
    }

    /// One record read or acknowledged at `offset`: it must be a record sent to this
    /// partition, with its exact content, and the offset must hold nothing else, ever.
    pub fn learn(&mut self, p: usize, offset: i64, id: Id, epoch: Option<i32>, acked: Option<bool>, served: bool) {
        let n = self.names[p].clone();
        let part = &mut self.parts[p];
        if let Some(&other) = part.offset_of.get(&id) {
            if other != offset {
                return self.fail(format!("{n}: record {id:?} at offset {offset} and at {other} (duplicated)"));
            }
        }
        match part.slots.get_mut(&offset) {
            Some(slot) if slot.id != id => {
                let was = slot.id;
                return self.fail(format!("{n}: offset {offset} held {was:?}, now {id:?} (changed)"));
            }
            Some(slot) => {
                if let (Some(a), Some(b)) = (slot.epoch, epoch) {
                    if a != b {
                        return self.fail(format!("{n}: offset {offset} was in epoch {a}, now {b}"));
                    }
                }
                slot.epoch = slot.epoch.or(epoch);
                slot.acked = acked.or(slot.acked);
                slot.served |= served;
            }
            None => {
                let life = self.life;
                part.slots.insert(offset, Slot { id, epoch, acked, served, life });
            }
        }
        part.offset_of.insert(id, offset);
    }

    /// A record as read back: decodes to what was sent, to this partition.
    fn check_record(&mut self, p: usize, rec: &Record) -> Option<Id> {
        let n = self.names[p].clone();
        let Some(id) = id_of(rec.key.as_deref()) else {
            self.fail(format!("{n}: record at {} has a key no producer sent", rec.offset));
            return None;
        };
        let Some((sent_to, want)) = self.sent.get(&id) else {
            self.fail(format!("{n}: record {id:?} at {} was never sent", rec.offset));
            return None;
        };
        let sent_to = *sent_to;
        let same = (&rec.key, &rec.value, &rec.headers, rec.timestamp)
            == (&want.key, &want.value, &want.headers, want.timestamp);
        let wrong = &self.names[sent_to];
        let msg = format!("{n}: record {id:?} sent to {wrong} read here at {}", rec.offset);
        self.ensure(sent_to == p, || msg);
        self.ensure(same, || format!("{n}: record {id:?} at {} differs from what was sent", rec.offset));
        Some(id)
    }

    /// A produce answer for one partition (invariants 2 and 1's bookkeeping).
    pub fn check_ack(&mut self, p: usize, before: Seen, ids: &[Id], durable: bool, r: Result<(i64, i64), String>) {
        let n = self.names[p].clone();
        let (base, last) = match r {
            Ok(v) => v,
            Err(e) => return self.fail(format!("{n}: append failed: {e}")),
        };
        let count = ids.len() as i64;
        self.ensure(last - base + 1 == count, || format!("{n}: {count} records acknowledged as [{base}, {last}]"));
        let msg = format!("{n}: appended at {base}, below the log end {} seen before", before.leo);
        self.ensure(base >= before.leo, || msg);
        self.note(format!("  ack {n} [{base}, {last}] durable={durable}"));
        for (i, id) in ids.iter().enumerate() {
            self.learn(p, base + i as i64, *id, None, Some(durable), false);
        }
        let s = &mut self.parts[p].seen;
        s.leo = s.leo.max(last + 1);
    }

    /// A fetch answer (invariants 2, 3 within a life, 4). Returns the record offsets read.
    pub fn check_read(
        &mut self,
        p: usize,
        before: Seen,
        ask: &ReadAsk,
        r: Result<ReadResult, PartitionError>,
    ) -> Vec<i64> {
        let n = self.names[p].clone();
        let r = match r {
            Ok(r) => r,
            Err(PartitionError::Log(LogError::OffsetOutOfRange { offset, log_start_offset, log_end_offset })) => {
                self.note(format!("  read {n} at {offset}: out of range [{log_start_offset}, {log_end_offset}]"));
                let msg = format!("{n}: read at {offset} out of range, but the log end was {} before", before.leo);
                self.ensure(offset < log_start_offset || offset > before.leo, || msg);
                let allowed = self.parts[p].allowed_start;
                let msg = format!("{n}: log start {log_start_offset} past every deletion asked ({allowed})");
                self.ensure(log_start_offset <= allowed.max(0), || msg);
                return Vec::new();
            }
            Err(e) => {
                self.fail(format!("{n}: read at {} failed: {e}", ask.offset));
                return Vec::new();
            }
        };
        self.check_offsets(p, before, r.log_start_offset, r.high_watermark, r.log_end_offset);
        let end = ask.end_offset.unwrap_or(r.high_watermark).min(r.log_end_offset);
        let bytes = r.concat();
        let views = match engine::batch::parse_all(&bytes, usize::MAX) {
            Ok(v) => v,
            Err(e) => {
                self.fail(format!("{n}: corrupt batch served reading at {}: {e}", ask.offset));
                return Vec::new();
            }
        };
        let (first, last) = (views.first().map(|v| v.base_offset()), views.last().map(|v| v.last_offset()));
        self.note(format!(
            "  read {n} at {} max {} end {end}: {} batches {first:?}..{last:?} hw {}",
            ask.offset,
            ask.bytes_max,
            views.len(),
            r.high_watermark
        ));
        let msg = format!("{n}: nothing read at {} below the end {end}", ask.offset);
        if !self.ensure(ask.offset >= end || !views.is_empty(), || msg) {
            return Vec::new();
        }
        let msg = format!("{n}: {} batches in {} bytes, over bytes_max {}", views.len(), bytes.len(), ask.bytes_max);
        self.ensure(views.len() <= 1 || bytes.len() <= ask.bytes_max, || msg);
        let mut read = Vec::new();
        let mut next = ask.offset;
        for (i, v) in views.iter().enumerate() {
            let (base, last) = (v.base_offset(), v.last_offset());
            let ok = if i == 0 { base <= next && next <= last } else { base == next };
            if !self.ensure(ok && last < end, || format!("{n}: batch [{base}, {last}] read at {next}, end {end}")) {
                return read;
            }
            next = last + 1;
            if !self.check_batch(p, v, r.high_watermark, &mut read) {
                return read;
            }
        }
        read
    }

    /// One fetched batch: its epoch, records and their offsets (invariants 2 and 4).
    fn check_batch(&mut self, p: usize, v: &engine::batch::BatchView<'_>, hw: i64, read: &mut Vec<i64>) -> bool {
        let n = self.names[p].clone();
        let (base, last) = (v.base_offset(), v.last_offset());
        let epoch = v.header().partition_leader_epoch.get();
        let current = self.parts[p].epoch;
        if !self
            .ensure((0..=current).contains(&epoch), || format!("{n}: batch at {base} in epoch {epoch}, now {current}"))
        {
            return false;
        }
        let recs = match decode_records(v) {
            Ok(r) => r,
            Err(e) => {
                self.fail(format!("{n}: batch at {base} does not decode: {e}"));
                return false;
            }
        };
        let dense =
            recs.len() as i64 == last - base + 1 && recs.iter().enumerate().all(|(i, r)| r.offset == base + i as i64);
        if !self.ensure(dense, || format!("{n}: batch [{base}, {last}] holds {} records, not dense", recs.len())) {
            return false;
        }
        for rec in &recs {
            let Some(id) = self.check_record(p, rec) else { return false };
            self.learn(p, rec.offset, id, Some(epoch), None, rec.offset < hw);
            read.push(rec.offset);
        }
        self.failure.is_none()
    }

    /// After a quiet full read of `[start, leo)`: every offset the model knows there was read,
    /// and every acknowledged record is there (invariants 1 and 2).
    pub fn check_scan(&mut self, p: usize, o: &PartitionOffsets, read: &[i64]) {
        let n = self.names[p].clone();
        let (start, hw, leo) = (o.log_start_offset.get(), o.high_watermark.get(), o.log_end_offset.get());
        let mut want = start;
        for &off in read.iter().filter(|&&off| off >= start) {
            if !self.ensure(off == want, || format!("{n}: offsets not dense: {off} read where {want} was next")) {
                return;
            }
            want += 1;
        }
        self.ensure(want == leo, || format!("{n}: read up to {want}, the log end is {leo}"));
        let slots: Vec<(i64, Slot)> = self.parts[p].slots.range(start..).map(|(o, s)| (*o, *s)).collect();
        for (off, slot) in slots {
            if !self.ensure(off < leo, || format!("{n}: {slot:?} at {off} lost: the log ends at {leo}")) {
                return;
            }
            let msg = format!("{n}: acks=all record {:?} at {off} above the high watermark {hw}", slot.id);
            self.ensure(slot.acked != Some(true) || off < hw, || msg);
        }
    }

    /// The first offsets of a new life: what the restart or crash kept (invariants 1, 3, 5).
    /// Forgets what a crash may legitimately lose.
    pub fn check_new_life(&mut self, p: usize, o: &PartitionOffsets, crashed: bool) {
        let n = self.names[p].clone();
        let (start, hw, leo) = (o.log_start_offset.get(), o.high_watermark.get(), o.log_end_offset.get());
        let epoch = o.leader_epoch.get();
        let part = &self.parts[p];
        let (old, old_seen, acked_start) = (part.epoch, part.seen, part.acked_start);
        let lost: Vec<(i64, Slot)> = part.slots.range(leo.max(start)..).map(|(o, s)| (*o, *s)).collect();
        self.note(format!("  {n} now [{start}, {hw}, {leo}] epoch {epoch} (was {old_seen:?} epoch {old})"));
        self.ensure(epoch > old, || format!("{n}: leader epoch {epoch} after a restart, {old} before"));
        self.ensure(start <= hw && hw <= leo, || format!("{n}: start {start} <= hw {hw} <= leo {leo} broken"));
        let allowed = self.parts[p].allowed_start;
        self.ensure(start <= allowed.max(0), || {
            format!("{n}: log start {start} past every deletion asked ({allowed})")
        });
        self.ensure(start >= acked_start.min(leo), || {
            format!("{n}: acknowledged log start {acked_start}, now {start}")
        });
        if !crashed {
            self.ensure(hw >= old_seen.hw, || {
                format!("{n}: high watermark {} before a clean restart, {hw} after", old_seen.hw)
            });
        }
        for (off, slot) in &lost {
            let what = if slot.acked == Some(true) {
                "acks=all record"
            } else if !crashed && slot.acked.is_some() {
                "acks=1 record (clean restart)"
            } else if slot.served && (self.strict_served || !crashed) {
                "served record (a fetch returned it below the high watermark)"
            } else {
                continue;
            };
            let how = if crashed { "crash" } else { "clean restart" };
            let acks = match slot.acked {
                Some(true) => "acks=all",
                Some(false) => "acks=1",
                None => "not acknowledged",
            };
            let since = if slot.life + 1 < self.life { ", and survived an earlier crash" } else { "" };
            self.fail(format!(
                "{n}: {what} {:?} at offset {off} ({acks}, learned in life {}{since}) lost by a {how}: the log now ends at {leo}",
                slot.id, slot.life
            ));
        }
        let part = &mut self.parts[p];
        for (off, slot) in lost {
            part.slots.remove(&off);
            part.offset_of.remove(&slot.id);
        }
        part.epoch = epoch;
        part.seen = Seen { start, hw, leo };
        part.acked_start = part.acked_start.min(leo);
    }
}
