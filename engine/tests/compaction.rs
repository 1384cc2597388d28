//! The log cleaner: what survives a pass (latest value per key, tombstones and transaction
//! markers until `delete.retention.ms` after the first pass past them, offsets unchanged), the conditions that start one, a crash at every
//! step of a pass, and a model-based property test against a plain model of compaction.

use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

use engine::io::mem::MemStorage;
use engine::log::CleanerConfig;
use engine::records::{decode_records, BatchBuilder, Record};
use engine::{batch, Compression, Durability, LogConfig, PartitionLog, ValidatedBatches};
use futures_lite::future::block_on;
use proptest::prelude::*;

const DIR: &str = "/data/compact-0";
type Log = Rc<PartitionLog<MemStorage>>;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4000,
        index_interval_bytes: 300,
        durability: Durability::Always,
        tail_cache_bytes_max: 2000,
        write_chunk_bytes: 8192,
        ..LogConfig::default()
    }
}

fn open(storage: &MemStorage) -> Log {
    block_on(PartitionLog::open(storage.clone(), Path::new(DIR), config(), 0)).expect("open").0
}

/// What a consumer reading the whole log sees: (offset, key, value).
type Seen = Vec<(i64, Option<Vec<u8>>, Option<Vec<u8>>)>;

fn read_all(log: &PartitionLog<MemStorage>) -> Seen {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let r = block_on(log.read(offset, 1 << 16, Some(end))).expect("read");
        if r.chunks.is_empty() {
            break;
        }
        for v in batch::parse_all(&r.concat(), usize::MAX).expect("whole valid batches") {
            for rec in decode_records(&v).expect("records") {
                if rec.offset >= offset {
                    out.push((rec.offset, rec.key, rec.value));
                }
            }
            offset = offset.max(v.last_offset() + 1);
        }
    }
    out
}

/// Appends one batch of `(key, value)` records at `ts`; returns its base offset.
fn append(log: &PartitionLog<MemStorage>, records: &[(&str, Option<&str>)], ts: i64, codec: Compression) -> i64 {
    let mut b = BatchBuilder::new(codec, ts);
    for (k, v) in records {
        b.push(Record::new(Some(k.as_bytes().to_vec()), v.map(|v| v.as_bytes().to_vec())).with_timestamp(ts));
    }
    let vb = ValidatedBatches::new(b.build(), usize::MAX).expect("valid");
    block_on(log.append(vb, 0, ts)).expect("append").base_offset
}

fn clean(log: &PartitionLog<MemStorage>, now: i64, cfg: &CleanerConfig) -> Option<engine::log::CleanStats> {
    block_on(log.clean(now, cfg, i64::MAX, &[], |_| async {})).expect("clean")
}

fn eager() -> CleanerConfig {
    CleanerConfig { min_cleanable_dirty_ratio: 0.0, delete_retention_ms: 1000, ..CleanerConfig::default() }
}

fn s(v: &str) -> Option<Vec<u8>> {
    Some(v.as_bytes().to_vec())
}

/// Ten keys updated five times each, one batch per update round, a roll after each round.
fn updated_log(storage: &MemStorage) -> Log {
    let log = open(storage);
    for round in 0..5 {
        let values: Vec<String> = (0..10).map(|k| format!("v{round}-{k}")).collect();
        let recs: Vec<(String, Option<&str>)> = (0..10).map(|k| (format!("k{k}"), Some(values[k].as_str()))).collect();
        let recs: Vec<(&str, Option<&str>)> = recs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        append(&log, &recs, 100 + round, Compression::None);
        block_on(log.roll_now(100 + round)).expect("roll");
    }
    log
}

#[test]
fn a_pass_keeps_the_latest_value_of_every_key_at_its_offset() {
    let storage = MemStorage::new();
    let log = updated_log(&storage);
    let before = log.segment_count();
    let leo = log.log_end_offset();
    let stats = clean(&log, 1000, &eager()).expect("a pass was due");
    assert_eq!(stats.records_removed, 40);
    assert_eq!(stats.cleaned_to, leo);
    assert!(stats.segments_after < before, "{stats:?}");
    let want: Seen = (0..10).map(|k| (40 + k, s(&format!("k{k}")), s(&format!("v4-{k}")))).collect();
    assert_eq!(read_all(&log), want);
    assert_eq!(log.log_end_offset(), leo, "offsets never change");
    // Nothing new: the next pass has nothing dirty.
    assert_eq!(clean(&log, 1000, &eager()), None);
    // Survives a restart, and appends go on at the same offset.
    block_on(log.close()).expect("close");
    drop(log);
    let log = open(&storage);
    assert_eq!(read_all(&log), want);
    assert_eq!(log.log_end_offset(), leo);
    assert_eq!(append(&log, &[("k0", Some("new"))], 200, Compression::None), leo);
}

#[test]
fn superseded_records_inside_compressed_batches_go_and_the_rest_keep_their_deltas() {
    let storage = MemStorage::new();
    let log = open(&storage);
    append(&log, &[("a", Some("1")), ("b", Some("1")), ("c", Some("1"))], 10, Compression::Zstd);
    append(&log, &[("b", Some("2"))], 11, Compression::Lz4);
    block_on(log.roll_now(12)).expect("roll");
    append(&log, &[("z", Some("active"))], 13, Compression::None);
    clean(&log, 1000, &eager()).expect("pass");
    let got = read_all(&log);
    assert_eq!(got, vec![(0, s("a"), s("1")), (2, s("c"), s("1")), (3, s("b"), s("2")), (4, s("z"), s("active"))]);
    // The rebuilt batch keeps its codec and its offset span.
    let r = block_on(log.read(0, 1 << 16, None)).expect("read");
    let all = r.concat();
    let first = batch::parse_all(&all, usize::MAX).expect("batches")[0];
    assert_eq!((first.base_offset(), first.last_offset(), first.record_count()), (0, 2, 2));
    assert_eq!(first.compression(), Compression::Zstd);
}

/// The segments a pass replaces give their space back in paced steps (a replaced backlog freed
/// at once held produce fsyncs behind its discards), and the cleaned log reads as it should.
#[test]
fn replaced_segments_give_their_space_back_in_paced_steps() {
    let storage = MemStorage::new();
    let cfg = LogConfig { segment_bytes: 12 << 20, write_buffer_bytes_max: 32 << 20, ..config() };
    let log = block_on(PartitionLog::open(storage.clone(), Path::new(DIR), cfg, 0)).expect("open").0;
    let value = "x".repeat(64 << 10);
    // Two sealed segments of about 9 MiB each: 140 updates of two keys.
    for i in 0..280 {
        append(&log, &[(if i % 2 == 0 { "a" } else { "b" }, Some(value.as_str()))], 100 + i, Compression::None);
        if i == 139 || i == 279 {
            block_on(log.roll_now(100 + i)).expect("roll");
        }
    }
    let before = storage.pauses();
    let stats = clean(&log, 10_000, &eager()).expect("a pass was due");
    assert_eq!(stats.records_removed, 278);
    // Each replaced segment: about 9 MiB, released 4 MiB at a time, a pause after each step.
    assert_eq!(storage.pauses() - before, 4, "{stats:?}");
    let seen = read_all(&log);
    assert_eq!(seen.iter().map(|(o, k, _)| (*o, k.clone())).collect::<Vec<_>>(), vec![(278, s("a")), (279, s("b"))]);
}

#[test]
fn tombstones_stay_for_delete_retention_after_the_first_pass_then_go() {
    let storage = MemStorage::new();
    let log = open(&storage);
    append(&log, &[("a", Some("1")), ("b", Some("1"))], 100, Compression::None);
    // Written with a timestamp long past delete.retention.ms: it still stays that long after
    // the pass that first cleans past it (KIP-534), not after its own timestamp.
    append(&log, &[("a", None)], 200, Compression::None);
    block_on(log.roll_now(200)).expect("roll");
    append(&log, &[("c", Some("active"))], 300, Compression::None);
    let cfg = eager(); // delete.retention.ms = 1000
    clean(&log, 5000, &cfg).expect("pass");
    assert_eq!(read_all(&log), vec![(1, s("b"), s("1")), (2, s("a"), None), (3, s("c"), s("active"))]);
    let stamped = first_batch_at(&log, 2);
    assert_eq!(stamped.0, Some(6000), "the tombstone's batch carries its delete horizon");
    assert_eq!(stamped.1, vec![200], "and its record keeps its timestamp");
    // Nothing dirty, but the horizon passes at 6000: a pass is due then, not before.
    assert_eq!(clean(&log, 5999, &cfg), None);
    let stats = clean(&log, 6000, &cfg).expect("the expired tombstone makes a pass due");
    assert_eq!(stats.tombstones_removed, 1);
    assert_eq!(read_all(&log), vec![(1, s("b"), s("1")), (3, s("c"), s("active"))]);
}

/// The delete horizon and record timestamps of the batch holding `offset`.
fn first_batch_at(log: &PartitionLog<MemStorage>, offset: i64) -> (Option<i64>, Vec<i64>) {
    let r = block_on(log.read(offset, 1 << 16, None)).expect("read");
    let all = r.concat();
    let v = batch::parse_all(&all, usize::MAX)
        .expect("batches")
        .into_iter()
        .find(|v| v.last_offset() >= offset)
        .expect("a batch");
    (v.delete_horizon_ms(), decode_records(&v).expect("records").iter().map(|r| r.timestamp).collect())
}

/// A transaction marker of producer `pid`, as the partition layer writes one.
fn append_marker(log: &PartitionLog<MemStorage>, pid: i64, commit: bool, ts: i64) -> i64 {
    let key = [0, 0, 0, u8::from(commit)].to_vec();
    let mut b = BatchBuilder::new(Compression::None, ts).producer(pid, 0, -1).transactional().control();
    b.push(Record::new(Some(key), Some(vec![0; 6])).with_timestamp(ts));
    let vb = ValidatedBatches::new(b.build(), usize::MAX).expect("valid");
    block_on(log.append(vb, 0, ts)).expect("append").base_offset
}

fn append_txn(log: &PartitionLog<MemStorage>, pid: i64, key: &str, value: &str, ts: i64) -> i64 {
    let mut b = BatchBuilder::new(Compression::None, ts).producer(pid, 0, 0).transactional();
    b.push(Record::new(s(key), s(value)).with_timestamp(ts));
    let vb = ValidatedBatches::new(b.build(), usize::MAX).expect("valid");
    block_on(log.append(vb, 0, ts)).expect("append").base_offset
}

/// Offsets of the control batches left in the log.
fn markers(log: &PartitionLog<MemStorage>) -> Vec<i64> {
    let r = block_on(log.read(log.log_start_offset(), 1 << 20, None)).expect("read");
    let all = r.concat();
    batch::parse_all(&all, usize::MAX)
        .expect("batches")
        .iter()
        .filter(|v| v.is_control())
        .map(|v| v.base_offset())
        .collect()
}

#[test]
fn markers_go_once_their_transaction_left_nothing_and_their_horizon_passed() {
    let storage = MemStorage::new();
    let log = open(&storage);
    // Producer 7 commits `a`, producer 8 aborts `b`, producer 9 commits `d`; then `a` is
    // overwritten.
    assert_eq!(append_txn(&log, 7, "a", "committed", 100), 0);
    assert_eq!(append_txn(&log, 8, "b", "aborted", 100), 1);
    assert_eq!(append_txn(&log, 9, "d", "stays", 100), 2);
    assert_eq!(append_marker(&log, 7, true, 100), 3);
    assert_eq!(append_marker(&log, 8, false, 100), 4);
    assert_eq!(append_marker(&log, 9, true, 100), 5);
    append(&log, &[("a", Some("plain"))], 100, Compression::None);
    block_on(log.roll_now(100)).expect("roll");
    // The partition's aborted transactions, as it would pass them: until it forgets one, its
    // marker stays.
    let aborted = std::cell::RefCell::new(vec![(8, 1, 4)]);
    let pass = |now: i64| {
        let list = aborted.borrow().clone();
        block_on(log.clean(now, &eager(), i64::MAX, &list, |_| async {})).expect("clean")
    };
    // Pass 1 removes the superseded and the aborted records. Nothing of producer 7's and 8's
    // transactions is left, so their markers get a delete horizon of 1000 + 1000; producer 9's
    // record stays, and so does its marker, unstamped. The abort is reported emptied.
    let stats = pass(1000).expect("pass 1");
    assert_eq!((stats.markers_removed, stats.aborts_emptied.as_slice()), (0, &[(8, 4)][..]));
    let marker = |commit: bool| (Some(vec![0, 0, 0, commit as u8]), Some(vec![0; 6]));
    let row = |o: i64, (k, v): (Option<Vec<u8>>, Option<Vec<u8>>)| (o, k, v);
    assert_eq!(
        read_all(&log),
        vec![
            (2, s("d"), s("stays")),
            row(3, marker(true)),
            row(4, marker(false)),
            row(5, marker(true)),
            (6, s("a"), s("plain"))
        ]
    );
    assert_eq!(first_batch_at(&log, 3).0, Some(2000));
    assert_eq!(first_batch_at(&log, 4).0, Some(2000));
    assert_eq!(first_batch_at(&log, 5).0, None);
    assert_eq!(pass(1999).map(|s| s.markers_removed), None, "not due before the horizon");
    // At the horizon the commit marker goes; the abort marker only once the caller forgot
    // its transaction.
    let stats = pass(2000).expect("due at the horizon");
    assert_eq!((stats.markers_removed, stats.aborts_emptied.as_slice()), (1, &[(8, 4)][..]));
    assert_eq!(markers(&log), vec![4, 5]);
    aborted.borrow_mut().clear();
    let stats = pass(2001).expect("still due: the abort marker's horizon passed");
    assert_eq!((stats.markers_removed, stats.aborts_emptied.len()), (1, 0));
    assert_eq!(markers(&log), vec![5]);
    // Later passes keep the marker of the transaction whose record is still there.
    append(&log, &[("c", Some("1"))], 5000, Compression::None);
    block_on(log.roll_now(5000)).expect("roll");
    assert_eq!(pass(9000).expect("pass 3").markers_removed, 0);
    assert_eq!(
        read_all(&log),
        vec![(2, s("d"), s("stays")), row(5, marker(true)), (6, s("a"), s("plain")), (7, s("c"), s("1"))]
    );
}

#[test]
fn the_active_segment_and_young_segments_are_not_cleaned() {
    let storage = MemStorage::new();
    let log = open(&storage);
    append(&log, &[("a", Some("1"))], 100, Compression::None);
    append(&log, &[("a", Some("2"))], 100, Compression::None);
    assert_eq!(clean(&log, 1000, &eager()), None, "only the active segment");
    block_on(log.roll_now(100)).expect("roll");
    let lagged = CleanerConfig { min_compaction_lag_ms: 1000, ..eager() };
    assert_eq!(clean(&log, 1000, &lagged), None, "younger than min.compaction.lag.ms");
    let lazy = CleanerConfig { min_cleanable_dirty_ratio: 1.0, ..eager() };
    let stats = clean(&log, 1101, &lagged).expect("old enough");
    assert_eq!(stats.records_removed, 1);
    append(&log, &[("a", Some("3"))], 2000, Compression::None);
    append(&log, &[("b", Some("3"))], 2000, Compression::None);
    block_on(log.roll_now(2000)).expect("roll");
    // Dirty 2/3 of the log, under a ratio of 1.0: not due, until max.compaction.lag.ms forces it.
    assert_eq!(clean(&log, 3000, &lazy), None);
    let forced = CleanerConfig { max_compaction_lag_ms: 500, ..lazy };
    assert_eq!(clean(&log, 2400, &forced), None);
    clean(&log, 2600, &forced).expect("forced by max.compaction.lag.ms");
    assert_eq!(read_all(&log), vec![(2, s("a"), s("3")), (3, s("b"), s("3"))]);
}

#[test]
fn the_upper_bound_and_aborted_transactions_are_honoured() {
    let storage = MemStorage::new();
    let log = open(&storage);
    append(&log, &[("a", Some("1"))], 100, Compression::None);
    block_on(log.roll_now(100)).expect("roll");
    // An aborted transactional write of `a` must not supersede the committed one.
    let mut b = BatchBuilder::new(Compression::None, 100).producer(7, 0, 0).transactional();
    b.push(Record::new(s("a"), s("aborted")).with_timestamp(100));
    block_on(log.append(ValidatedBatches::new(b.build(), usize::MAX).expect("valid"), 0, 100)).expect("append");
    block_on(log.roll_now(100)).expect("roll");
    append(&log, &[("a", Some("2"))], 100, Compression::None);
    block_on(log.roll_now(100)).expect("roll");
    // Below the upper bound 2 only: the aborted batch's segment is cleaned alone.
    let stats = block_on(log.clean(1000, &eager(), 2, &[(7, 1, 1)], |_| async {})).expect("clean").expect("pass");
    assert_eq!(stats.cleaned_to, 2);
    assert_eq!(read_all(&log), vec![(0, s("a"), s("1")), (2, s("a"), s("2"))]);
    block_on(log.clean(1000, &eager(), i64::MAX, &[(7, 1, 1)], |_| async {})).expect("clean").expect("pass");
    assert_eq!(read_all(&log), vec![(2, s("a"), s("2"))]);
}

#[test]
fn a_small_key_map_cleans_in_several_passes() {
    let storage = MemStorage::new();
    let log = updated_log(&storage);
    let leo = log.log_end_offset();
    // Room for about 12 keys: each pass covers at most one round of updates past the map.
    let small = CleanerConfig { dedupe_buffer_bytes: 48 * 12, ..eager() };
    let mut passes = 0;
    while let Some(stats) = clean(&log, 1000, &small) {
        passes += 1;
        assert!(stats.cleaned_to <= leo);
        assert!(passes < 20, "passes make progress");
    }
    assert!(passes >= 3, "{passes}");
    let want: Seen = (0..10).map(|k| (40 + k, s(&format!("k{k}")), s(&format!("v4-{k}")))).collect();
    assert_eq!(read_all(&log), want);
}

/// A kill at every step of a pass: the log is as before the pass or as after it, never a mix
/// (nothing lost, nothing served twice), and a later pass finishes the job.
#[test]
fn a_crash_at_any_step_of_a_pass_leaves_the_old_log_or_the_cleaned_one() {
    let before = read_all(&updated_log(&MemStorage::new()));
    let after: Seen = (0..10).map(|k| (40 + k, s(&format!("k{k}")), s(&format!("v4-{k}")))).collect();
    let mut saw_old = false;
    let mut saw_new = false;
    for fail_after in 0..40 {
        let storage = MemStorage::new();
        let log = updated_log(&storage);
        storage.fail_after_writes(fail_after);
        let r = block_on(log.clean(1000, &eager(), i64::MAX, &[], |_| async {}));
        drop(log);
        storage.heal();
        storage.crash(|_, _| 0);
        let log = open(&storage);
        let got = read_all(&log);
        let offsets: Vec<i64> = got.iter().map(|r| r.0).collect();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "offsets served once, in order: {offsets:?}");
        let latest: BTreeMap<_, _> = got.iter().map(|(_, k, v)| (k.clone(), v.clone())).collect();
        let want: BTreeMap<_, _> = after.iter().map(|(_, k, v)| (k.clone(), v.clone())).collect();
        assert_eq!(latest, want, "after failing at write {fail_after}: the latest values");
        for rec in &got {
            assert!(before.contains(rec), "a record nobody wrote: {rec:?}");
        }
        assert_eq!(log.log_end_offset(), 50);
        saw_old |= got == before;
        saw_new |= got == after;
        if r.is_ok() {
            assert_eq!(got, after, "a pass that returned is whole");
        }
        clean(&log, 1000, &eager());
        assert_eq!(read_all(&log), after, "a later pass finishes (after failing at write {fail_after})");
    }
    assert!(saw_old && saw_new, "the failures covered both sides of the commit point");
}

// ---- the model --------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    /// A batch of records: (key index, tombstone?) at time `dt` after the previous one.
    Append {
        records: Vec<(u8, bool)>,
        dt: u16,
        codec: u8,
    },
    Roll,
    Clean {
        dt: u16,
        ratio: u8,
        small_map: bool,
    },
    Restart,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (proptest::collection::vec((0u8..6, proptest::bool::weighted(0.2)), 1..4), 0u16..300, 0u8..5)
            .prop_map(|(records, dt, codec)| Op::Append { records, dt, codec }),
        3 => Just(Op::Roll),
        3 => (0u16..3000, 0u8..=10, any::<bool>()).prop_map(|(dt, ratio, small_map)| Op::Clean { dt, ratio, small_map }),
        1 => Just(Op::Restart),
        1 => Just(Op::Crash),
    ]
}

/// Every record ever written, with the time of its batch; `gone` marks what a pass removed,
/// `horizon` the delete horizon the first pass to keep a tombstone gave it.
/// (offset, key, value, batch time)
type ModelRecord = (i64, Vec<u8>, Option<Vec<u8>>, i64);

#[derive(Default)]
struct Model {
    records: Vec<ModelRecord>,
    gone: std::collections::BTreeSet<i64>,
    horizon: BTreeMap<i64, i64>,
}

impl Model {
    /// What a pass that cleaned below `cleaned_to` at `now` removes.
    fn clean(&mut self, cleaned_to: i64, now: i64, retention: i64) {
        let mut latest: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
        for (o, k, _, _) in self.records.iter().filter(|r| r.0 < cleaned_to) {
            latest.insert(k.clone(), *o);
        }
        for (o, k, v, _) in &self.records {
            if *o >= cleaned_to || self.gone.contains(o) {
                continue;
            }
            if latest.get(k).is_some_and(|l| l > o) {
                self.gone.insert(*o);
            } else if v.is_none() {
                match self.horizon.get(o) {
                    Some(&h) if now >= h => {
                        self.gone.insert(*o);
                    }
                    Some(_) => {}
                    None => {
                        self.horizon.insert(*o, now + retention);
                    }
                }
            }
        }
    }
    fn visible(&self) -> Seen {
        self.records
            .iter()
            .filter(|r| !self.gone.contains(&r.0))
            .map(|(o, k, v, _)| (*o, Some(k.clone()), v.clone()))
            .collect()
    }
}

fn run(ops: Vec<Op>) {
    let storage = MemStorage::new();
    let mut log = open(&storage);
    let mut m = Model::default();
    let mut now = 1000i64;
    let mut serial = 0;
    for op in ops {
        match op {
            Op::Append { records, dt, codec } => {
                now += i64::from(dt);
                let codec =
                    [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd]
                        [codec as usize % 5];
                let recs: Vec<(String, Option<String>)> = records
                    .iter()
                    .map(|&(k, t)| {
                        serial += 1;
                        (format!("key{k}"), (!t).then(|| format!("value{serial}")))
                    })
                    .collect();
                let borrowed: Vec<(&str, Option<&str>)> =
                    recs.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
                let base = append(&log, &borrowed, now, codec);
                for (i, (k, v)) in recs.into_iter().enumerate() {
                    m.records.push((base + i as i64, k.into_bytes(), v.map(String::into_bytes), now));
                }
            }
            Op::Roll => block_on(log.roll_now(now)).expect("roll"),
            Op::Clean { dt, ratio, small_map } => {
                let at = now + i64::from(dt);
                let cfg = CleanerConfig {
                    min_cleanable_dirty_ratio: f64::from(ratio) / 10.0,
                    delete_retention_ms: 1500,
                    dedupe_buffer_bytes: if small_map { 48 * 3 } else { 1 << 20 },
                    ..CleanerConfig::default()
                };
                if let Some(stats) = block_on(log.clean(at, &cfg, i64::MAX, &[], |_| async {})).expect("clean") {
                    m.clean(stats.cleaned_to, at, cfg.delete_retention_ms);
                }
            }
            Op::Restart => {
                block_on(log.close()).expect("close");
                drop(log);
                log = open(&storage);
            }
            Op::Crash => {
                drop(log);
                storage.crash(|_, _| 0);
                log = open(&storage);
            }
        }
        let end = m.records.last().map_or(0, |r| r.0 + 1);
        assert_eq!(log.log_end_offset(), end, "the log end never moves back");
        assert_eq!(read_all(&log), m.visible());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn compaction_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops);
    }
}
