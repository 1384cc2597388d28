//! Idempotent producers over a plain socket (kafka-protocol's encoders, batches built by hand):
//! a resent batch is answered with its original offsets and stored once, a sequence gap and a
//! stale epoch are refused, and all of it holds across restarts, whether the producer state
//! comes from its snapshot or is rebuilt from the log.

mod common;

use bytes::Bytes;
use common::{name, start, Client};
use engine::batch::Compression;
use engine::records::{BatchBuilder, Record};
use kafka_protocol::messages::*;

#[global_allocator]
static ALLOCATOR: net::alloc::NoReserveAlloc = net::alloc::NoReserveAlloc;

const TOPIC: &str = "idem";

fn create_topic(c: &mut Client) {
    let create = c.call(7, &common::create_topic(TOPIC, 1));
    assert_eq!(create.topics[0].error_code, 0);
}

/// InitProducerId: `(id, epoch)`; `prior` asks for an epoch bump of a known producer (KIP-360).
fn init_producer(c: &mut Client, prior: Option<(i64, i16)>) -> (i64, i16) {
    let (id, epoch) = prior.unwrap_or((-1, -1));
    let r = c.call(
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch),
    );
    assert_eq!(r.error_code, 0);
    (r.producer_id.0, r.producer_epoch)
}

/// A batch of `values` from producer `(id, epoch)` starting at sequence `seq`.
fn batch(id: i64, epoch: i16, seq: i32, values: &[&str]) -> Bytes {
    let now = engine::now_ms();
    let mut b = BatchBuilder::new(Compression::None, now).producer(id, epoch, seq);
    for v in values {
        b.push(Record::new(Some(b"k".to_vec()), Some(v.as_bytes().to_vec())).with_timestamp(now));
    }
    b.build().freeze()
}

/// Produces one batch with acks=all: `(error code, base offset)`.
fn produce(c: &mut Client, records: Bytes) -> (i16, i64) {
    let r = c.call(9, &common::produce_to(TOPIC, -1, [0], &records));
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// Every record value of the partition, in offset order, with its offset; and the high watermark.
fn fetch_all(c: &mut Client) -> (Vec<(i64, String)>, i64) {
    let req =
        FetchRequest::default().with_replica_id(BrokerId(-1)).with_max_wait_ms(0).with_max_bytes(1 << 20).with_topics(
            vec![fetch_request::FetchTopic::default().with_topic(name(TOPIC)).with_partitions(vec![
                fetch_request::FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20),
            ])],
        );
    let r = c.call(11, &req);
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let bytes = p.records.clone().unwrap_or_default();
    let mut out = Vec::new();
    for view in engine::batch::parse_all(&bytes, usize::MAX).expect("batches") {
        for (i, rec) in engine::records::decode_records(&view).expect("records").into_iter().enumerate() {
            let value = String::from_utf8(rec.value.expect("value")).expect("utf-8");
            out.push((view.base_offset() + i as i64, value));
        }
    }
    (out, p.high_watermark)
}

fn stored(values: &[&str]) -> Vec<(i64, String)> {
    values.iter().enumerate().map(|(i, v)| (i as i64, v.to_string())).collect()
}

const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;

#[test]
fn resent_batches_are_stored_once_gaps_and_stale_epochs_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (set, addr) = start(dir.path());
    let mut c = Client::connect(addr);
    create_topic(&mut c);
    let (pid, epoch) = init_producer(&mut c, None);
    let first = batch(pid, epoch, 0, &["a", "b", "c"]);
    assert_eq!(produce(&mut c, first.clone()), (0, 0));
    assert_eq!(produce(&mut c, batch(pid, epoch, 3, &["d", "e"])), (0, 3));
    // The first batch again (its answer was lost, say): the original offset, nothing stored.
    assert_eq!(produce(&mut c, first), (0, 0));
    assert_eq!(produce(&mut c, batch(pid, epoch, 3, &["d", "e"])), (0, 3));
    // A gap: seq 6 when 5 is next.
    assert_eq!(produce(&mut c, batch(pid, epoch, 6, &["x"])).0, OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_eq!(fetch_all(&mut c), (stored(&["a", "b", "c", "d", "e"]), 5));

    // The producer bumps its epoch: the new epoch starts at 0, the old one is fenced.
    let (pid2, epoch2) = init_producer(&mut c, Some((pid, epoch)));
    assert_eq!((pid2, epoch2), (pid, epoch + 1));
    assert_eq!(produce(&mut c, batch(pid, epoch2, 1, &["x"])).0, OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_eq!(produce(&mut c, batch(pid, epoch2, 0, &["f"])), (0, 5));
    assert_eq!(produce(&mut c, batch(pid, epoch, 5, &["x"])).0, INVALID_PRODUCER_EPOCH);
    assert_eq!(fetch_all(&mut c), (stored(&["a", "b", "c", "d", "e", "f"]), 6));

    // Non-idempotent batches are never checked.
    assert_eq!(produce(&mut c, engine::records::simple_batch(1, 4, engine::now_ms())), (0, 6));

    // DescribeProducers: the producer in its new epoch, its last sequence 0.
    let described = c.call(
        0,
        &DescribeProducersRequest::default().with_topics(vec![describe_producers_request::TopicRequest::default()
            .with_name(name(TOPIC))
            .with_partition_indexes(vec![0, 9])]),
    );
    let parts = &described.topics[0].partitions;
    assert_eq!((parts[0].partition_index, parts[0].error_code), (0, 0));
    let producers: Vec<_> =
        parts[0].active_producers.iter().map(|p| (p.producer_id.0, p.producer_epoch, p.last_sequence)).collect();
    assert_eq!(producers, [(pid, i32::from(epoch2), 0)]);
    assert_eq!((parts[1].partition_index, parts[1].error_code), (9, 3), "no partition 9: UNKNOWN_TOPIC_OR_PARTITION");
    drop(c);
    set.shutdown();
}

#[test]
fn producer_state_survives_restarts_from_its_snapshot_and_from_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (set, addr) = start(dir.path());
    let mut c = Client::connect(addr);
    create_topic(&mut c);
    let (pid, epoch) = init_producer(&mut c, None);
    let batches: Vec<Bytes> = (0..7).map(|i| batch(pid, epoch, i, &[&format!("v{i}")])).collect();
    for (i, b) in batches.iter().enumerate() {
        assert_eq!(produce(&mut c, b.clone()), (0, i as i64));
    }
    drop(c);
    set.shutdown();
    let partition_dir = dir.path().join(format!("{TOPIC}-0"));
    let snapshots = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&partition_dir)
            .expect("partition dir")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".snapshot"))
            .collect();
        v.sort();
        v
    };
    assert_eq!(snapshots(), ["00000000000000000007.snapshot"], "a clean stop snapshots the producers");
    let values: Vec<String> = (0..7).map(|i| format!("v{i}")).collect();
    let expected: Vec<(i64, String)> = values.iter().enumerate().map(|(i, v)| (i as i64, v.clone())).collect();

    // Restart from the snapshot: the last five batches are still known, the sixth-last is not.
    let (set, addr) = start(dir.path());
    let mut c = Client::connect(addr);
    for (i, b) in batches.iter().enumerate().skip(2) {
        assert_eq!(produce(&mut c, b.clone()), (0, i as i64), "batch {i} is a duplicate");
    }
    assert_eq!(produce(&mut c, batches[1].clone()).0, OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_eq!(fetch_all(&mut c), (expected.clone(), 7));
    // Producer ids are never handed out twice, across restarts too.
    let (pid2, _) = init_producer(&mut c, None);
    assert!(pid2 > pid, "{pid2} after {pid}");
    drop(c);
    set.shutdown();

    // Without any snapshot (as after a crash before the first one) the state is rebuilt from
    // the log itself.
    for s in snapshots() {
        std::fs::remove_file(partition_dir.join(s)).expect("remove snapshot");
    }
    let (set, addr) = start(dir.path());
    let mut c = Client::connect(addr);
    assert_eq!(produce(&mut c, batches[6].clone()), (0, 6));
    assert_eq!(produce(&mut c, batches[4].clone()), (0, 4));
    assert_eq!(produce(&mut c, batch(pid, epoch, 8, &["gap"])).0, OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_eq!(produce(&mut c, batch(pid, epoch, 7, &["v7"])), (0, 7));
    let mut expected = expected;
    expected.push((7, "v7".into()));
    assert_eq!(fetch_all(&mut c), (expected, 8));
    drop(c);
    set.shutdown();
}
