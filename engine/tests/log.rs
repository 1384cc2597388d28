//! Partition log behaviour on the in-memory store: offsets, reads, roll, recovery, truncation,
//! retention, timestamps, epochs, faults.

use std::path::Path;
use std::rc::Rc;

use bytes::BytesMut;
use engine::batch::BatchView;
use engine::io::mem::MemStorage;
use engine::records::{decode_records, BatchBuilder, Record};
use engine::{Compression, Durability, LogConfig, LogError, PartitionLog, TimestampType, ValidatedBatches};
use futures_lite::future::block_on;

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 512,
        tail_cache_bytes_max: 2048,
        write_chunk_bytes: 8192,
        write_behind_bytes: 4096,
        write_buffer_bytes_max: 16 * 1024,
        ..LogConfig::default()
    }
}

fn batch(tag: u32, records: usize, ts: i64) -> ValidatedBatches {
    let mut b = BatchBuilder::new(Compression::None, ts);
    for i in 0..records {
        b.push(
            Record::new(
                Some(format!("k{tag}-{i}").into_bytes()),
                Some(format!("value {tag}/{i} {}", "x".repeat(tag as usize % 200)).into_bytes()),
            )
            .with_timestamp(ts + i as i64)
            .with_header("tag", Some(tag.to_be_bytes().to_vec())),
        );
    }
    ValidatedBatches::new(b.build(), usize::MAX).expect("valid batch")
}

/// Every record readable from `from`, in order, as (offset, key).
async fn read_all(log: &PartitionLog<MemStorage>, from: i64) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut cursor = from;
    let leo = log.log_end_offset();
    while cursor < leo {
        let r = log.read(cursor, 3000, Some(leo)).await.expect("read");
        assert!(!r.chunks.is_empty(), "no progress at {cursor}");
        for c in &r.chunks {
            let mut rest: &[u8] = c;
            while !rest.is_empty() {
                let v = BatchView::parse(rest, usize::MAX).expect("served batches are valid");
                for rec in decode_records(&v).expect("records") {
                    if rec.offset >= cursor {
                        out.push((rec.offset, rec.key.clone().unwrap_or_default()));
                    }
                }
                cursor = cursor.max(v.last_offset() + 1);
                rest = &rest[v.size()..];
            }
        }
    }
    out
}

fn open(storage: &MemStorage, config: LogConfig) -> Rc<PartitionLog<MemStorage>> {
    block_on(PartitionLog::open(storage.clone(), Path::new("/data/t-0"), config, 1_000)).expect("open").0
}

#[test]
fn offsets_are_dense_across_rolls_and_reads_return_whole_batches() {
    let storage = MemStorage::new();
    let log = open(&storage, small_config());
    block_on(async {
        let mut expected = Vec::new();
        for tag in 0..60u32 {
            let n = 1 + (tag as usize % 5);
            let info = log.append(batch(tag, n, 10_000 + i64::from(tag)), 3, 2_000).await.expect("append");
            assert_eq!(info.last_offset - info.base_offset + 1, n as i64);
            for i in 0..n {
                expected.push((info.base_offset + i as i64, format!("k{tag}-{i}").into_bytes()));
            }
        }
        assert!(log.segment_count() > 3, "small segments must roll: {}", log.segment_count());
        assert_eq!(read_all(&log, 0).await, expected);
        // A read from the middle of a batch returns that batch whole.
        let r = log.read(2, 1, None).await.expect("read");
        let v = BatchView::parse(&r.chunks[0], usize::MAX).expect("batch");
        assert_eq!((v.base_offset(), v.last_offset()), (1, 2));
        // At least one batch even when bytes_max is tiny.
        assert_eq!(r.chunks.len(), 1);
        // At the end: empty; past the end: out of range.
        let leo = log.log_end_offset();
        assert!(log.read(leo, 100, None).await.expect("read at end").chunks.is_empty());
        assert!(matches!(log.read(leo + 1, 100, None).await, Err(LogError::OffsetOutOfRange { .. })));
    });
}

#[test]
fn reopen_after_clean_close_and_after_crash_keeps_durable_data() {
    let storage = MemStorage::new();
    let log = open(&storage, small_config());
    let expected = block_on(async {
        for tag in 0..40u32 {
            log.append(batch(tag, 3, 5_000), 0, 2_000).await.expect("append");
        }
        log.close().await.expect("close");
        read_all_after_reopen(&storage).await
    });
    assert_eq!(expected.len(), 120);

    // Crash with torn unsynced writes: durability `Never` means only what was synced survives,
    // but what survives is a clean prefix.
    let storage2 = MemStorage::new();
    let cfg = LogConfig { durability: Durability::Never, ..small_config() };
    let log = open(&storage2, cfg);
    let durable = block_on(async {
        for tag in 0..40u32 {
            log.append(batch(tag, 3, 5_000), 0, 2_000).await.expect("append");
        }
        log.durable_offset()
    });
    drop(log);
    storage2.crash(|_, extra| extra / 2);
    let log = open(&storage2, cfg);
    assert!(log.log_end_offset() >= durable, "lost durable data: {} < {durable}", log.log_end_offset());
    let got = block_on(read_all(&log, 0));
    assert_eq!(got, expected[..got.len()].to_vec(), "recovered log must be a prefix");
}

async fn read_all_after_reopen(storage: &MemStorage) -> Vec<(i64, Vec<u8>)> {
    let (log, report) =
        PartitionLog::open(storage.clone(), Path::new("/data/t-0"), small_config(), 3_000).await.expect("reopen");
    assert_eq!(report.truncated_segment, None);
    read_all(&log, 0).await
}

#[test]
fn truncate_removes_the_batch_containing_the_offset_and_later() {
    let storage = MemStorage::new();
    let log = open(&storage, small_config());
    block_on(async {
        for tag in 0..50u32 {
            log.append(batch(tag, 2, 1_000), i32::try_from(tag / 10).expect("epoch"), 2_000).await.expect("append");
        }
        assert_eq!(log.end_offset_for_epoch(2), (2, 60));
        log.truncate_to(45, 2_000).await.expect("truncate");
        // Offsets come in pairs: 44-45 is one batch, so the log ends at 44.
        assert_eq!(log.log_end_offset(), 44);
        assert_eq!(log.latest_epoch(), Some(2));
        let got = read_all(&log, 0).await;
        assert_eq!(got.len(), 44);
        assert_eq!(got.last().map(|r| r.0), Some(43));
        // Appending continues densely.
        let info = log.append(batch(99, 1, 1_000), 7, 2_000).await.expect("append");
        assert_eq!(info.base_offset, 44);
        assert_eq!(log.end_offset_for_epoch(2), (2, 44));
        // Truncating everything leaves an empty log at that offset.
        log.truncate_to(0, 2_000).await.expect("truncate all");
        assert_eq!(log.log_end_offset(), 0);
        assert_eq!(log.latest_epoch(), None);
    });
    drop(log);
    let log = open(&storage, small_config());
    assert_eq!(log.log_end_offset(), 0);
}

/// A deleted segment's space goes back in steps with pauses between (a whole segment freed
/// at once held produce fsyncs behind its discards), and what stays reads as before.
#[test]
fn deleted_segments_give_their_space_back_in_paced_steps() {
    let storage = MemStorage::new();
    let cfg = LogConfig { segment_bytes: 10 << 20, write_buffer_bytes_max: 32 << 20, ..LogConfig::default() };
    let log = open(&storage, cfg);
    block_on(async {
        let value = vec![7u8; 64 << 10];
        let mut n = 0;
        while log.segment_count() < 3 {
            let mut b = BatchBuilder::new(Compression::None, 1);
            b.push(Record::new(Some(format!("k{n}").into_bytes()), Some(value.clone())));
            let batch = ValidatedBatches::new(b.build(), usize::MAX).expect("valid");
            log.append(batch, 0, 2_000).await.expect("append");
            n += 1;
        }
        let bases = log.segment_bases();
        let before = storage.pauses();
        // The first segment holds about 10 MiB: released in steps of 4 MiB, a pause after each.
        log.delete_before(bases[1], 2_000).await.expect("delete");
        assert_eq!(storage.pauses() - before, 2);
        assert_eq!(log.segment_bases(), bases[1..].to_vec());
        let got = read_all(&log, bases[1]).await;
        assert_eq!(got.len() as i64, log.log_end_offset() - bases[1]);
        assert_eq!(got.first().map(|(o, _)| *o), Some(bases[1]));
    });
}

#[test]
fn delete_before_moves_the_start_and_drops_whole_segments() {
    let storage = MemStorage::new();
    let log = open(&storage, small_config());
    block_on(async {
        for tag in 0..80u32 {
            log.append(batch(tag, 2, 1_000), 0, 2_000).await.expect("append");
        }
        let before = log.segment_count();
        let start = log.delete_before(100, 2_000).await.expect("delete");
        assert_eq!(start, 100);
        assert_eq!(log.log_start_offset(), 100);
        assert!(log.segment_count() < before);
        // The first segment left is the one holding offset 100; every one before it is gone.
        let bases = log.segment_bases();
        assert!(bases[0] <= 100 && bases.get(1).is_none_or(|&b| b > 100), "{bases:?}");
        assert!(matches!(log.read(99, 100, None).await, Err(LogError::OffsetOutOfRange { .. })));
        assert_eq!(read_all(&log, 100).await.first().map(|r| r.0), Some(100));
        assert!(matches!(log.delete_before(10_000, 2_000).await, Err(LogError::OffsetOutOfRange { .. })));
    });
    drop(log);
    let log = open(&storage, small_config());
    assert_eq!(log.log_start_offset(), 100, "log start offset persists");
    // Deleting up to the end empties the log but keeps its end offset.
    block_on(async {
        let leo = log.log_end_offset();
        log.delete_before(leo, 2_000).await.expect("delete all");
        assert_eq!(log.log_start_offset(), leo);
        assert_eq!(log.segment_count(), 1);
        let info = log.append(batch(1, 1, 1_000), 0, 2_000).await.expect("append");
        assert_eq!(info.base_offset, leo);
    });
}

#[test]
fn retention_offsets_by_time_and_size() {
    let storage = MemStorage::new();
    let log = open(&storage, small_config());
    block_on(async {
        for tag in 0..60u32 {
            log.append(batch(tag, 2, 1_000 + i64::from(tag) * 1_000), 0, 2_000).await.expect("append");
        }
    });
    assert_eq!(log.retention_offset(10_000, Some(i64::MAX), None), None);
    let by_time = log.retention_offset(1_000_000, Some(1), None).expect("everything sealed is old");
    assert_eq!(by_time, *log.segment_bases().last().expect("active"));
    // Kafka deletes a segment only if the log stays at or above retention.bytes without it.
    assert_eq!(log.retention_offset(0, None, Some(log.size_bytes() - 1)), None);
    assert_eq!(log.retention_offset(0, None, Some(log.size_bytes())), None);
    let by_size = log.retention_offset(0, None, Some(1)).expect("all sealed segments over");
    assert_eq!(by_size, *log.segment_bases().last().expect("active"));
}

#[test]
fn timestamp_lookup_finds_the_first_record_at_or_after() {
    let storage = MemStorage::new();
    let log = open(&storage, small_config());
    block_on(async {
        // Batch i has records at 100*i, 100*i+1, 100*i+2.
        for i in 0..40i64 {
            log.append(batch(i as u32, 3, 100 * i), 0, 2_000).await.expect("append");
        }
        assert_eq!(log.offset_for_timestamp(0).await.expect("lookup"), Some((0, 0)));
        assert_eq!(log.offset_for_timestamp(1).await.expect("lookup"), Some((1, 1)));
        assert_eq!(log.offset_for_timestamp(2_502).await.expect("lookup"), Some((77, 2_502)));
        assert_eq!(log.offset_for_timestamp(2_503).await.expect("lookup"), Some((78, 2_600)));
        assert_eq!(log.offset_for_timestamp(1_000_000).await.expect("lookup"), None);
        assert_eq!(log.max_timestamp().await.expect("max"), Some((119, 3_902)));
    });
}

#[test]
fn log_append_time_stamps_batches_without_touching_records() {
    let storage = MemStorage::new();
    let cfg = LogConfig { timestamp_type: TimestampType::LogAppendTime, ..small_config() };
    let log = open(&storage, cfg);
    block_on(async {
        let mut b = BatchBuilder::new(Compression::Zstd, 5);
        b.push(Record::new(None, Some(b"compressed".to_vec())).with_timestamp(5));
        let original = b.build();
        let records_region = original[61..].to_vec();
        let info =
            log.append(ValidatedBatches::new(original, usize::MAX).expect("valid"), 0, 777).await.expect("append");
        assert_eq!(info.log_append_time_ms, 777);
        let r = log.read(0, 1000, None).await.expect("read");
        let v = BatchView::parse(&r.chunks[0], usize::MAX).expect("valid after stamping");
        assert_eq!(v.records_bytes(), &records_region[..], "compressed records stored as sent");
        assert_eq!(decode_records(&v).expect("records")[0].timestamp, 777);
    });
}

#[test]
fn a_failed_write_poisons_the_log_until_reopened() {
    let storage = MemStorage::new();
    let log = open(&storage, small_config());
    block_on(async {
        log.append(batch(1, 1, 1), 0, 2_000).await.expect("append");
        storage.fail_after_writes(0);
        assert!(log.append(batch(2, 1, 1), 0, 2_000).await.is_err());
        assert!(matches!(log.append(batch(3, 1, 1), 0, 2_000).await, Err(LogError::Poisoned(_))));
    });
    storage.heal();
    drop(log);
    let log = open(&storage, small_config());
    assert_eq!(log.log_end_offset(), 1, "only the acknowledged batch is there");
}

#[test]
fn group_commit_shares_syncs_between_concurrent_appends() {
    let storage = MemStorage::new();
    let log = open(&storage, small_config());
    block_on(async {
        let futs: Vec<_> = (0..20u32).map(|t| log.append(batch(t, 1, 1), 0, 2_000)).collect();
        let infos = engine::sync::join_all(futs).await;
        let mut offsets: Vec<i64> = infos.into_iter().map(|r| r.expect("append").base_offset).collect();
        offsets.sort_unstable();
        assert_eq!(offsets, (0..20).collect::<Vec<_>>());
        assert_eq!(log.durable_offset(), 20);
        let st = log.stats();
        assert!(st.syncs <= 3, "20 concurrent appends should share a few syncs: {st:?}");
        // Again, in waves: every task appends several times.
        let futs: Vec<_> = (0..16u32)
            .map(|t| {
                let log = log.clone();
                async move {
                    for i in 0..10u32 {
                        log.append(batch(t * 100 + i, 1, 1), 0, 2_000).await.expect("append");
                    }
                }
            })
            .collect();
        engine::sync::join_all(futs).await;
        assert_eq!(log.durable_offset(), 180);
        let st2 = log.stats();
        assert!(st2.syncs - st.syncs <= 40, "160 appends from 16 tasks: {st2:?}");
    });
}

#[test]
fn many_batches_in_one_append_and_multi_batch_reads() {
    let storage = MemStorage::new();
    let log = open(&storage, small_config());
    block_on(async {
        let mut buf = BytesMut::new();
        for t in 0..3u32 {
            buf.extend_from_slice(batch(t, 2, 1).bytes());
        }
        let info = log.append(ValidatedBatches::new(buf, usize::MAX).expect("valid"), 0, 2_000).await.expect("append");
        assert_eq!((info.base_offset, info.last_offset), (0, 5));
        let r = log.read(0, 1 << 20, None).await.expect("read");
        let all = r.concat();
        let views = engine::batch::parse_all(&all, usize::MAX).expect("batches");
        assert_eq!(views.iter().map(|v| v.base_offset()).collect::<Vec<_>>(), vec![0, 2, 4]);
    });
}

#[test]
fn interval_durability_syncs_on_tick_once_due() {
    let storage = MemStorage::new();
    let cfg = LogConfig { durability: Durability::IntervalMs(100), ..small_config() };
    let log = open(&storage, cfg);
    block_on(async {
        log.append(batch(1, 2, 1), 0, 2_000).await.expect("append");
        assert_eq!(log.durable_offset(), 0, "interval durability acknowledges before syncing");
        // `open` happened at 1_000 ms: 50 ms after the last sync nothing is due yet.
        log.tick(1_050).await.expect("tick");
        assert_eq!(log.durable_offset(), 0);
        log.tick(1_100).await.expect("tick");
        assert_eq!(log.durable_offset(), 2);
        let syncs = log.stats().syncs;
        log.tick(5_000).await.expect("tick");
        assert_eq!(log.stats().syncs, syncs, "nothing new, no sync");
    });
}

/// `flush.messages=5`: appends are readable at once; the append that brings the unsynced
/// count to 5 syncs (and `append`, the acks=all path, returns after that sync); fewer wait.
#[test]
fn count_durability_syncs_the_append_that_reaches_the_count() {
    let storage = MemStorage::new();
    let cfg = LogConfig { durability: Durability::EveryMessages { messages: 5, interval_ms: None }, ..small_config() };
    let log = open(&storage, cfg);
    block_on(async {
        log.append(batch(1, 2, 1), 0, 2_000).await.expect("append");
        log.append(batch(2, 2, 1), 0, 2_001).await.expect("append");
        assert_eq!((log.high_watermark(), log.durable_offset()), (4, 0), "4 unsynced: readable, not synced");
        assert!(!log.sync_due(4) && log.sync_due(5));
        let syncs = log.stats().syncs;
        log.append(batch(3, 1, 1), 0, 2_002).await.expect("append");
        assert_eq!((log.high_watermark(), log.durable_offset()), (5, 5), "the fifth record synced all five");
        assert_eq!(log.stats().syncs, syncs + 1);
        // One batch bigger than the count syncs at once, and the count starts again after it.
        log.append(batch(4, 7, 1), 0, 2_003).await.expect("append");
        assert_eq!(log.durable_offset(), 12);
        log.append(batch(5, 4, 1), 0, 2_004).await.expect("append");
        assert_eq!((log.high_watermark(), log.durable_offset()), (16, 12));
        // No interval: the tick never syncs the rest.
        log.tick(1_000_000).await.expect("tick");
        assert_eq!(log.durable_offset(), 12);
        assert_eq!(log.stats().syncs, syncs + 2);
    });
}

/// `flush.messages` with `flush.ms` too: whichever comes first syncs.
#[test]
fn count_durability_with_an_interval_also_syncs_on_tick() {
    let storage = MemStorage::new();
    let cfg =
        LogConfig { durability: Durability::EveryMessages { messages: 100, interval_ms: Some(50) }, ..small_config() };
    let log = open(&storage, cfg);
    block_on(async {
        log.append(batch(1, 3, 1), 0, 2_000).await.expect("append");
        assert_eq!((log.high_watermark(), log.durable_offset()), (3, 0));
        log.tick(1_049).await.expect("tick");
        assert_eq!(log.durable_offset(), 0);
        log.tick(1_050).await.expect("tick");
        assert_eq!(log.durable_offset(), 3);
    });
}

#[test]
fn segments_roll_by_age() {
    let storage = MemStorage::new();
    let cfg = LogConfig { segment_ms: 1_000, segment_bytes: 1 << 20, ..small_config() };
    let log = open(&storage, cfg);
    block_on(async {
        log.append(batch(1, 1, 1), 0, 10_000).await.expect("append");
        log.append(batch(2, 1, 1), 0, 10_999).await.expect("append");
        assert_eq!(log.segment_count(), 1);
        log.append(batch(3, 1, 1), 0, 11_000).await.expect("append");
        assert_eq!(log.segment_bases(), vec![0, 2], "a segment older than segment.ms rolls");
    });
}

#[test]
fn leader_epochs_survive_a_crash_without_their_checkpoint() {
    // The checkpoint is written at roll and close, not per append: after a crash the recovery
    // scan of the active segment finds the epochs again from the batch headers.
    let storage = MemStorage::new();
    let config = LogConfig { segment_bytes: 1 << 20, ..small_config() };
    let log = open(&storage, config);
    block_on(async {
        for (tag, epoch) in [(1u32, 0), (2, 0), (3, 3), (4, 3), (5, 5)] {
            log.append(batch(tag, 2, 1_000), epoch, 2_000).await.expect("append");
        }
    });
    assert_eq!(log.segment_count(), 1);
    drop(log);
    storage.crash(|_, _| 0);
    let log = open(&storage, config);
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(log.latest_epoch(), Some(5));
    assert_eq!(log.end_offset_for_epoch(0), (0, 4));
    assert_eq!(log.end_offset_for_epoch(3), (3, 8));
    assert_eq!(log.end_offset_for_epoch(4), (3, 8));
    // Written at a clean close, so a later crash cannot lose epochs of a sealed segment.
    block_on(log.close()).expect("close");
    drop(log);
    let log = open(&storage, config);
    assert_eq!(log.end_offset_for_epoch(3), (3, 8));
}

#[test]
fn logs_sharing_a_budget_stay_within_it_and_give_everything_back_when_dropped() {
    use engine::budget::{MemoryBudget, SHARD_MEMORY_BYTES_MIN};
    let storage = MemStorage::new();
    let budget = MemoryBudget::new(SHARD_MEMORY_BYTES_MIN);
    let config = LogConfig { segment_bytes: 8 << 20, tail_cache_bytes_max: 16 << 20, ..LogConfig::default() };
    let logs: Vec<_> = (0..4)
        .map(|i| {
            let dir = format!("/data/b-{i}");
            block_on(PartitionLog::open_with_budget(storage.clone(), Path::new(&dir), config, 1_000, budget.clone()))
                .expect("open")
                .0
        })
        .collect();
    block_on(async {
        // 4 logs x 40 appends of ~100 KiB: 16 MiB, more than the budget.
        for tag in 0..40u32 {
            for log in &logs {
                let mut b = BatchBuilder::new(Compression::None, 1_000);
                b.push(Record::new(Some(format!("k{tag}").into_bytes()), Some(vec![tag as u8; 100 << 10])));
                log.append(ValidatedBatches::new(b.build(), usize::MAX).expect("valid"), 0, 2_000)
                    .await
                    .expect("append");
                // Synced appends leave nothing in write buffers; caches gave way to the budget.
                assert_eq!(budget.buffer_bytes(), 0);
                assert!(budget.used_bytes() <= budget.bytes_max(), "{budget:?}");
            }
        }
        assert!(budget.cache_bytes() > budget.bytes_max() / 2, "caches use the budget: {budget:?}");
        // Every record is still readable (from the device once evicted).
        let got = read_all(&logs[0], 0).await;
        assert_eq!(got.len(), 40);
    });
    drop(logs);
    assert_eq!(budget.used_bytes(), 0, "{budget:?}");
}

#[test]
fn high_watermark_covers_only_synced_offsets_under_always() {
    let storage = MemStorage::new();
    let log = open(&storage, small_config());
    block_on(async {
        log.append(batch(1, 2, 1), 0, 2_000).await.expect("append");
        assert_eq!((log.high_watermark(), log.log_end_offset()), (2, 2), "a synced append is readable");
        // acks=1: buffered and written, but not synced.
        log.append_buffered(batch(2, 3, 1), 0, 2_001).await.expect("append");
        log.write_out().await.expect("write");
        assert_eq!((log.high_watermark(), log.log_end_offset()), (2, 5));
        let r = log.read(2, 10_000, None).await.expect("read");
        assert!(r.chunks.is_empty(), "nothing past the high watermark is served");
        assert_eq!(r.high_watermark, 2);
    });
    // A power loss now takes back offsets 2..5, which no consumer could have read.
    drop(log);
    storage.crash(|_, _| 0);
    let log = open(&storage, small_config());
    assert_eq!(log.log_end_offset(), 2);
    block_on(async {
        log.append_buffered(batch(3, 3, 1), 0, 2_002).await.expect("append");
        let notify = log.append_notify();
        let ticket = notify.ticket();
        log.sync().await.expect("sync");
        assert_eq!(log.high_watermark(), 5, "the sync moves the high watermark");
        assert!(notify.ticket() > ticket, "and wakes long polls");
        let keys: Vec<(i64, String)> =
            read_all(&log, 0).await.into_iter().map(|(o, k)| (o, String::from_utf8_lossy(&k).into_owned())).collect();
        let want: Vec<(i64, String)> =
            [(0, "k1-0"), (1, "k1-1"), (2, "k3-0"), (3, "k3-1"), (4, "k3-2")].map(|(o, k)| (o, k.to_string())).into();
        assert_eq!(keys, want);
    });
}

#[test]
fn high_watermark_follows_the_log_end_without_syncs_under_never() {
    let storage = MemStorage::new();
    let log = open(&storage, LogConfig { durability: Durability::Never, ..small_config() });
    block_on(async {
        log.append_buffered(batch(1, 4, 1), 0, 2_000).await.expect("append");
        assert_eq!((log.high_watermark(), log.durable_offset()), (4, 0));
    });
}

#[test]
fn interval_durability_moves_the_high_watermark_at_its_sync() {
    let storage = MemStorage::new();
    let log = open(&storage, LogConfig { durability: Durability::IntervalMs(100), ..small_config() });
    block_on(async {
        log.append(batch(1, 2, 1), 0, 2_000).await.expect("append");
        assert_eq!(log.high_watermark(), 0);
        log.tick(1_100).await.expect("tick");
        assert_eq!(log.high_watermark(), 2);
    });
}

/// One batch of one record, exactly `size` bytes long.
fn batch_of_size(size: usize) -> ValidatedBatches {
    let build = |value_len: usize| {
        let mut b = BatchBuilder::new(Compression::None, 1);
        b.push(Record::new(Some(b"aligned".to_vec()), Some(vec![7u8; value_len])));
        b.build()
    };
    let mut value_len = size - 100;
    loop {
        let bytes = build(value_len);
        match bytes.len().cmp(&size) {
            std::cmp::Ordering::Equal => return ValidatedBatches::new(bytes, usize::MAX).expect("valid"),
            std::cmp::Ordering::Less => value_len += 1,
            std::cmp::Ordering::Greater => value_len -= 1,
        }
    }
}

#[test]
fn reopening_after_a_crash_syncs_what_the_last_process_wrote() {
    // kill -9 after a write and before its sync: the bytes are on the device but not synced.
    // Reopened, they are readable (the high watermark is the log end), so they must be synced
    // first, or a power loss after the restart takes back what consumers read. A tail that is
    // not a whole number of blocks is synced by recovery's cut of the padding; one that is
    // (here: one batch of exactly a block) is the case the log must sync itself.
    for size in [4096, 1000] {
        let storage = MemStorage::new();
        let log = open(&storage, small_config());
        block_on(async {
            log.append_buffered(batch_of_size(size), 0, 2_000).await.expect("append");
            log.write_out().await.expect("write");
            assert_eq!((log.log_end_offset(), log.high_watermark()), (1, 0));
        });
        drop(log);
        let log = open(&storage, small_config());
        assert_eq!(log.high_watermark(), 1, "{size}");
        drop(log);
        storage.crash(|_, _| 0);
        let log = open(&storage, small_config());
        assert_eq!(log.log_end_offset(), 1, "a batch of {size} bytes read after the restart was lost");
    }
}

#[test]
fn a_topic_config_change_moves_an_open_log_between_durability_policies() {
    let storage = MemStorage::new();
    let log = open(&storage, small_config());
    block_on(async {
        // Always: an append returns synced, and the high watermark covers it.
        log.append(batch(1, 2, 1), 0, 2_000).await.expect("append");
        assert_eq!((log.durable_offset(), log.high_watermark()), (2, 2));
        // Never: appends are readable at once, unsynced.
        log.apply_topic_config(&LogConfig { durability: Durability::Never, ..small_config() });
        assert_eq!(log.config().durability, Durability::Never);
        log.append(batch(2, 3, 1), 0, 2_001).await.expect("append");
        assert_eq!((log.durable_offset(), log.high_watermark()), (2, 5));
        // Back to a syncing policy: what was readable stays readable; new appends wait for the
        // interval sync before consumers see them.
        log.apply_topic_config(&LogConfig { durability: Durability::IntervalMs(100), ..small_config() });
        assert_eq!(log.high_watermark(), 5);
        log.append(batch(3, 1, 1), 0, 2_002).await.expect("append");
        assert_eq!(log.high_watermark(), 5);
        log.tick(10_000).await.expect("tick");
        assert_eq!((log.durable_offset(), log.high_watermark()), (6, 6));
    });
}

#[test]
fn a_full_index_rolls_the_segment() {
    let storage = MemStorage::new();
    // Room for no time-index entry at all: as in Kafka, every segment holds a single batch.
    let cfg = LogConfig { segment_index_bytes: 4, segment_bytes: 1 << 20, ..small_config() };
    let log = open(&storage, cfg);
    block_on(async {
        for tag in 0..3 {
            log.append(batch(tag, 1, 1), 0, 2_000).await.expect("append");
        }
        assert_eq!(log.segment_bases(), vec![0, 1, 2]);
    });
}

#[test]
fn segment_jitter_rolls_each_partition_somewhat_early() {
    let storage = MemStorage::new();
    let cfg = LogConfig { segment_ms: 1_000, segment_jitter_ms: 1_000, segment_bytes: 1 << 20, ..small_config() };
    let mut rolled_at = Vec::new();
    for p in 0..8 {
        let dir = format!("/data/jitter-{p}");
        let log = block_on(PartitionLog::open(storage.clone(), Path::new(&dir), cfg, 1_000)).expect("open").0;
        block_on(async {
            log.append(batch(1, 1, 1), 0, 10_000).await.expect("append");
            let mut t = 10_000;
            while log.segment_count() == 1 {
                t += 10;
                log.append(batch(2, 1, 1), 0, t).await.expect("append");
            }
            rolled_at.push(t);
        });
    }
    assert!(rolled_at.iter().all(|&t| t <= 11_000), "none after segment.ms: {rolled_at:?}");
    rolled_at.sort_unstable();
    rolled_at.dedup();
    assert!(rolled_at.len() > 1, "partitions roll at different times: {rolled_at:?}");
}
