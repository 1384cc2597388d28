//! Model-based property test: random sequences of append / read / roll / truncate /
//! delete-before / clean restart / crash against a plain in-memory model of the log.
//!
//! Shrunk failures are kept in `proptest-regressions/model.txt` (replayed first on every run)
//! and, once understood, as named tests at the bottom of this file.

use std::path::Path;
use std::rc::Rc;

use engine::batch::BatchView;
use engine::io::mem::MemStorage;
use engine::records::{decode_records, BatchBuilder, Record};
use engine::{Compression, Durability, LogConfig, PartitionLog, ValidatedBatches};
use futures_lite::future::block_on;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append { records: u8, value_bytes: u16, codec: u8 },
    Read { at: u16, bytes_max: u16 },
    Roll,
    Truncate { at: u16 },
    DeleteBefore { at: u16 },
    Restart,
    Crash { torn_percent: u8 },
    WriteBehind,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1u8..6, 0u16..700, 0u8..5).prop_map(|(records, value_bytes, codec)| Op::Append { records, value_bytes, codec }),
        4 => (any::<u16>(), 1u16..5000).prop_map(|(at, bytes_max)| Op::Read { at, bytes_max }),
        1 => Just(Op::Roll),
        1 => any::<u16>().prop_map(|at| Op::Truncate { at }),
        1 => any::<u16>().prop_map(|at| Op::DeleteBefore { at }),
        1 => Just(Op::Restart),
        2 => Just(Op::WriteBehind),
        1 => (0u8..=100).prop_map(|torn_percent| Op::Crash { torn_percent }),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct ModelBatch {
    base: i64,
    values: Vec<Vec<u8>>,
}
impl ModelBatch {
    fn last(&self) -> i64 {
        self.base + self.values.len() as i64 - 1
    }
}

#[derive(Default)]
struct Model {
    batches: Vec<ModelBatch>,
    log_start: i64,
    end: i64,
}

fn codec(c: u8) -> Compression {
    [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd][c as usize % 5]
}

fn config(durability: Durability) -> LogConfig {
    LogConfig {
        segment_bytes: 6000,
        index_interval_bytes: 700,
        durability,
        tail_cache_bytes_max: 3000,
        write_chunk_bytes: 8192,
        write_behind_bytes: 5000,
        write_buffer_bytes_max: 12_000,
        ..LogConfig::default()
    }
}

const DIR: &str = "/data/model-0";

fn open(storage: &MemStorage, durability: Durability) -> Rc<PartitionLog<MemStorage>> {
    block_on(PartitionLog::open(storage.clone(), Path::new(DIR), config(durability), 0)).expect("open").0
}

fn run(ops: Vec<Op>, durability: Durability) {
    let storage = MemStorage::new();
    let mut log = open(&storage, durability);
    let mut m = Model::default();
    let mut counter = 0u64;
    for op in ops {
        match op {
            Op::Append { records, value_bytes, codec: c } => {
                let mut b = BatchBuilder::new(codec(c), counter as i64);
                let mut values = Vec::new();
                for _ in 0..records {
                    counter += 1;
                    let mut v = counter.to_be_bytes().to_vec();
                    v.resize(8 + value_bytes as usize, (counter % 251) as u8);
                    values.push(v.clone());
                    b.push(Record::new(None, Some(v)).with_timestamp(counter as i64));
                }
                let vb = ValidatedBatches::new(b.build(), usize::MAX).expect("valid");
                let info = block_on(log.append(vb, 0, 0)).expect("append");
                assert_eq!(info.base_offset, m.end, "offsets are dense");
                m.batches.push(ModelBatch { base: m.end, values });
                m.end += i64::from(records);
            }
            Op::Read { at, bytes_max } => {
                let span = (m.end - m.log_start + 1).max(1);
                let offset = m.log_start + i64::from(at) % span;
                let r = block_on(log.read(offset, bytes_max.into(), None)).expect("read");
                assert_eq!((r.log_start_offset, r.log_end_offset), (m.log_start, m.end));
                let all = r.concat();
                let views = engine::batch::parse_all(&all, usize::MAX).expect("whole valid batches");
                if offset == m.end {
                    assert!(views.is_empty());
                    continue;
                }
                assert!(!views.is_empty(), "at least one batch at {offset}");
                let first = m.batches.iter().position(|b| b.last() >= offset).expect("model batch");
                assert!(views.len() == 1 || all.len() <= bytes_max as usize, "over bytes_max with several batches");
                for (i, v) in views.iter().enumerate() {
                    let mb = &m.batches[first + i];
                    assert_eq!((v.base_offset(), v.last_offset()), (mb.base, mb.last()));
                    let recs = decode_records(v).expect("records");
                    let got: Vec<Vec<u8>> = recs.into_iter().map(|r| r.value.unwrap_or_default()).collect();
                    assert_eq!(&got, &mb.values);
                }
            }
            Op::Roll => block_on(log.roll_now(0)).expect("roll"),
            Op::WriteBehind => block_on(log.write_behind_once()).expect("write behind"),
            Op::Truncate { at } => {
                let offset = i64::from(at) % (m.end + 1);
                block_on(log.truncate_to(offset, 0)).expect("truncate");
                if offset < m.log_start {
                    // Below the log start nothing is left to keep: the log restarts at `offset`.
                    m.batches.clear();
                    m.end = offset;
                    m.log_start = offset;
                } else if offset < m.end {
                    // The batch containing `offset` goes whole.
                    let first_removed = m.batches.iter().find(|b| b.last() >= offset).map(|b| b.base);
                    m.batches.retain(|b| b.last() < offset);
                    m.end = first_removed.unwrap_or(offset);
                }
                m.log_start = m.log_start.min(m.end);
                assert_eq!(log.log_end_offset(), m.end);
            }
            Op::DeleteBefore { at } => {
                let offset = i64::from(at) % (m.end + 1);
                let start = block_on(log.delete_before(offset, 0)).expect("delete before");
                m.log_start = m.log_start.max(offset);
                assert_eq!(start, m.log_start);
            }
            Op::Restart => {
                block_on(log.close()).expect("close");
                drop(log);
                log = open(&storage, durability);
                assert_eq!(log.log_end_offset(), m.end);
                assert_eq!(log.log_start_offset(), m.log_start);
            }
            Op::Crash { torn_percent } => {
                let durable = log.durable_offset();
                drop(log);
                storage.crash(|_, extra| extra * torn_percent as usize / 100);
                log = open(&storage, durability);
                let leo = log.log_end_offset();
                assert!(leo >= durable, "lost durable data: end {leo} < durable {durable}");
                if durability == Durability::Always {
                    assert_eq!(leo, m.end, "with Always every append is durable");
                }
                assert!(leo <= m.end);
                // What survived is whole batches of the model.
                m.batches.retain(|b| b.last() < leo);
                assert_eq!(m.batches.last().map_or(leo, |b| b.last() + 1).max(m.log_start.min(leo)), leo);
                m.end = leo;
                m.log_start = m.log_start.min(leo);
                assert_eq!(log.log_start_offset(), m.log_start);
            }
        }
    }
    // Finally, everything readable matches the model.
    let mut cursor = m.log_start;
    while cursor < m.end {
        let r = block_on(log.read(cursor, 1 << 16, None)).expect("read");
        let all = r.concat();
        for v in engine::batch::parse_all(&all, usize::MAX).expect("batches") {
            let mb = m.batches.iter().find(|b| b.base == v.base_offset()).expect("batch in model");
            assert_eq!(v.last_offset(), mb.last());
            cursor = v.last_offset() + 1;
        }
    }
    let _ = BatchView::parse;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model_always(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops, Durability::Always);
    }

    #[test]
    fn log_matches_model_never(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops, Durability::Never);
    }
}

// ---- shrunk failures, kept by name -------------------------------------------------------------

fn append(records: u8) -> Op {
    Op::Append { records, value_bytes: 0, codec: 0 }
}

/// Truncating below the log start moved the start down in memory but not in its file, so a
/// restart resurrected the old start.
#[test]
fn regression_truncate_below_start_then_restart() {
    run(
        vec![
            append(1),
            append(2),
            Op::DeleteBefore { at: 25697 },
            append(2),
            append(2),
            Op::Truncate { at: 12384 },
            append(1),
            Op::Restart,
        ],
        Durability::Always,
    );
}

/// Truncating to an offset inside a batch removes that whole batch (model bug, kept as a spec).
#[test]
fn regression_truncate_inside_a_batch() {
    run(vec![append(3), Op::Truncate { at: 29405 }], Durability::Always);
}

/// Truncating below the log start after delete-before had removed the segments: the log must
/// restart exactly at the offset.
#[test]
fn regression_truncate_below_start_after_segments_deleted() {
    run(
        vec![
            append(3),
            append(4),
            append(1),
            append(2),
            append(5),
            append(5),
            append(3),
            append(4),
            append(1),
            Op::Truncate { at: 38622 },
            append(3),
            append(1),
            Op::Roll,
            append(2),
            append(5),
            Op::DeleteBefore { at: 22532 },
            Op::Truncate { at: 4589 },
        ],
        Durability::Never,
    );
}

/// A crash lost the tail the stored log start pointed into; recovery clamped the start but did
/// not persist it, so the next restart went back to the stale one.
#[test]
fn regression_crash_clamps_start_durably() {
    run(
        vec![
            append(3),
            Op::DeleteBefore { at: 9889 },
            Op::Crash { torn_percent: 0 },
            append(1),
            append(1),
            Op::Restart,
        ],
        Durability::Never,
    );
}
