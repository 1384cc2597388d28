//! Produce-path micro-benchmarks of the storage engine: batch validation (CRC-32C included),
//! offset assignment and sparse-index lookups.
//!
//! References measured in the same run: `memcpy` of the same bytes (what one extra copy of the
//! payload costs) next to the CRC and the validation, so the figures read as "validation costs
//! x memcpys".
//!
//! `cargo bench -p odradek-benches --bench batch -- --quick`

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use engine::batch::{self, BatchView, BATCH_BYTES_LIMIT};
use engine::index::{OffsetEntry, SegmentIndex, TimeEntry};
use engine::records::{BatchBuilder, Record};
use engine::{Compression, ValidatedBatches};

/// One uncompressed batch of `count` records of `value_bytes` each, keyed, as a producer sends.
fn batch_of(count: usize, value_bytes: usize) -> BytesMut {
    let mut b = BatchBuilder::new(Compression::None, 1_700_000_000_000);
    for i in 0..count {
        let value: Vec<u8> = (0..value_bytes).map(|j| (i * 31 + j) as u8).collect();
        b.push(Record::new(Some(format!("key-{i:08}").into_bytes()), Some(value)).with_timestamp(1_700_000_000_000));
    }
    b.build()
}

/// A Produce `records` field: `batches` batches of 16 x 1 KiB records back to back.
fn request_records(batches: usize) -> BytesMut {
    let one = batch_of(16, 1024);
    let mut out = BytesMut::with_capacity(one.len() * batches);
    for _ in 0..batches {
        out.extend_from_slice(&one);
    }
    out
}

fn crc_and_validation(c: &mut Criterion) {
    // 16 KiB is the producers' default batch.size; 1 MiB is what a busy producer packs.
    for (name, records) in [("16KiB", 16usize), ("1MiB", 1024usize)] {
        let bytes = batch_of(records, 1024);
        let mut g = c.benchmark_group(format!("batch_{name}"));
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        let mut dst = vec![0u8; bytes.len()];
        g.bench_function("reference_memcpy", |b| {
            b.iter(|| {
                dst.copy_from_slice(black_box(&bytes));
                black_box(&dst);
            })
        });
        g.bench_function("crc32c", |b| b.iter(|| batch::compute_crc(black_box(&bytes))));
        g.bench_function("BatchView::parse", |b| {
            b.iter(|| BatchView::parse(black_box(&bytes), BATCH_BYTES_LIMIT).map(|v| v.record_count()))
        });
        g.finish();
    }

    // What the Produce handler does per partition: the bytes arrive as one buffer of whole
    // batches; ValidatedBatches::new parses and checks each and records its metadata. The same
    // buffer goes round (into_parts hands it back), so the figure is validation alone, not
    // allocation or page faults of a fresh 1 MiB buffer.
    let mut records = Some(request_records(64));
    let len = records.as_ref().map_or(0, |r| r.len());
    let mut g = c.benchmark_group("ValidatedBatches::new");
    g.throughput(Throughput::Bytes(len as u64));
    g.bench_function("64x16KiB", |b| {
        b.iter(|| {
            let bytes = records.take().expect("buffer returned by the previous iteration");
            let validated = ValidatedBatches::new(bytes, BATCH_BYTES_LIMIT).expect("valid batches");
            let count = validated.record_count();
            records = Some(validated.into_parts().0);
            count
        })
    });
    g.finish();
}

fn offset_assignment(c: &mut Criterion) {
    // The owner's part of an append: rewrite base offset and leader epoch of every batch of a
    // request (the CRC does not cover them, so nothing else changes).
    let validated = ValidatedBatches::new(request_records(64), BATCH_BYTES_LIMIT).expect("valid batches");
    let (mut bytes, metas) = validated.into_parts();
    let mut g = c.benchmark_group("offset_assignment");
    g.throughput(Throughput::Elements(metas.len() as u64));
    let mut next = 0i64;
    g.bench_function("64_batches", |b| {
        b.iter(|| {
            for m in &metas {
                batch::assign_offset(&mut bytes[m.position..m.position + m.size], next, 7);
                next += i64::from(m.last_offset_delta) + 1;
            }
            black_box(&bytes);
        })
    });
    g.finish();
}

fn index_lookup(c: &mut Criterion) {
    // A full 1 GiB segment of 16 KiB batches of 16 records, one index entry per 4 KiB of data
    // (Kafka's log.index.interval.bytes default): 65536 entries per index.
    let batches = (1u32 << 30) / (16 << 10);
    let mut index = SegmentIndex::default();
    for i in 0..batches {
        index.push_offset(OffsetEntry { rel_offset: i * 16, position: i * (16 << 10) });
        index.push_time(TimeEntry { timestamp: 1_700_000_000_000 + i64::from(i), rel_offset: i * 16 });
    }
    // Pseudo-random targets (xorshift), precomputed so the timed loop is only the lookups.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let targets: Vec<u32> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % u64::from(batches * 16)) as u32
        })
        .collect();
    let mut g = c.benchmark_group("index_lookup_65536_entries");
    g.throughput(Throughput::Elements(targets.len() as u64));
    g.bench_function("offset", |b| {
        b.iter(|| {
            let mut sum = 0u64;
            for &t in &targets {
                sum += u64::from(index.lookup(black_box(t)).position);
            }
            sum
        })
    });
    g.bench_function("time", |b| {
        b.iter(|| {
            let mut sum = 0u64;
            for &t in &targets {
                sum += u64::from(index.lookup_time(black_box(1_700_000_000_000 + i64::from(t / 16))));
            }
            sum
        })
    });
    g.finish();
}

criterion_group!(benches, crc_and_validation, offset_assignment, index_lookup);
criterion_main!(benches);
