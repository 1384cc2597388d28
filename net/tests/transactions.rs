//! The partition side of transactions over a plain socket: transactional batches hold back the
//! last stable offset until the coordinator's marker (WriteTxnMarkers) ends them;
//! read_committed fetches stop there and name the aborted transactions; ListOffsets honours
//! the isolation level; markers from an older coordinator are fenced; and all of it comes back
//! after a restart, from the producer-state snapshot or from the log alone.
//!
//! The transactional batches are written without a coordinator, so the broker runs with
//! `transaction.partition.verification.enable=false` (the coordinator's side is tested in
//! `txn_coordinator.rs`).

mod common;

use bytes::Bytes;
use common::{name, start_configured, Client};
use engine::batch::Compression;
use engine::records::{BatchBuilder, Record};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

#[global_allocator]
static ALLOCATOR: net::alloc::NoReserveAlloc = net::alloc::NoReserveAlloc;

const TOPIC: &str = "txn";

fn start_unverified(dir: &std::path::Path) -> (replication::Node<net::server::Call>, std::net::SocketAddr) {
    start_configured(dir, replication::DoorLimits::default(), |c| c.transaction_partition_verification = false)
}
const INVALID_TXN_STATE: i16 = 48;
const TRANSACTION_COORDINATOR_FENCED: i16 = 52;
const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
const INVALID_RECORD: i16 = 87;

fn create_topic(c: &mut Client) {
    let create = c.call(7, &common::create_topic(TOPIC, 1));
    assert_eq!(create.topics[0].error_code, 0);
}

fn batch(pid: i64, seq: i32, transactional: bool, value: &str) -> Bytes {
    let now = engine::now_ms();
    let mut b = BatchBuilder::new(Compression::None, now).producer(pid, 0, seq);
    if transactional {
        b = b.transactional();
    }
    b.push(Record::new(None, Some(value.as_bytes().to_vec())).with_timestamp(now));
    b.build().freeze()
}

/// `(error, base offset)`; `txn_id` as the request's transactional id.
fn produce(c: &mut Client, txn_id: Option<&str>, records: Bytes) -> (i16, i64) {
    let r = c.call(
        9,
        &ProduceRequest::default()
            .with_transactional_id(txn_id.map(|t| TransactionalId(StrBytes::from_string(t.into()))))
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(name(TOPIC))
                .with_partition_data(vec![produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(records))])]),
    );
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn marker(c: &mut Client, pid: i64, commit: bool, coordinator_epoch: i32) -> i16 {
    let r = c.call(
        1,
        &WriteTxnMarkersRequest::default().with_markers(vec![write_txn_markers_request::WritableTxnMarker::default()
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(0)
            .with_transaction_result(commit)
            .with_coordinator_epoch(coordinator_epoch)
            .with_topics(vec![write_txn_markers_request::WritableTxnMarkerTopic::default()
                .with_name(name(TOPIC))
                .with_partition_indexes(vec![0])])]),
    );
    assert_eq!(r.markers[0].producer_id.0, pid);
    r.markers[0].topics[0].partitions[0].error_code
}

fn latest(c: &mut Client, read_committed: bool) -> i64 {
    let r = c.call(
        7,
        &ListOffsetsRequest::default().with_isolation_level(i8::from(read_committed)).with_topics(vec![
            list_offsets_request::ListOffsetsTopic::default().with_name(name(TOPIC)).with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-1),
            ]),
        ]),
    );
    let p = &r.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    p.offset
}

/// A read_committed (or not) fetch from 0: what an application would see (a consumer drops
/// control batches and, when read_committed, the batches of aborted transactions), the last
/// stable offset, and the aborted transactions the broker named.
fn fetch(c: &mut Client, read_committed: bool) -> (Vec<String>, i64, Vec<(i64, i64)>) {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_isolation_level(i8::from(read_committed))
        .with_topics(vec![fetch_request::FetchTopic::default().with_topic(name(TOPIC)).with_partitions(vec![
            fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20),
        ])]);
    let r = c.call(11, &req);
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let aborted: Vec<(i64, i64)> =
        p.aborted_transactions.iter().flatten().map(|a| (a.producer_id.0, a.first_offset)).collect();
    assert_eq!(p.aborted_transactions.is_some(), read_committed);
    let bytes = p.records.clone().unwrap_or_default();
    let mut values = Vec::new();
    let mut skipping: Vec<i64> = Vec::new();
    for view in engine::batch::parse_all(&bytes, usize::MAX).expect("batches") {
        let pid = view.producer_id();
        if read_committed && aborted.iter().any(|&(a, first)| a == pid && first <= view.base_offset()) {
            skipping.push(pid);
        }
        if view.is_control() {
            skipping.retain(|&s| s != pid);
            continue;
        }
        if read_committed && skipping.contains(&pid) {
            continue;
        }
        for rec in engine::records::decode_records(&view).expect("records") {
            values.push(String::from_utf8(rec.value.expect("value")).expect("utf-8"));
        }
    }
    (values, p.last_stable_offset, aborted)
}

#[test]
fn transactions_hold_back_read_committed_until_their_markers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (set, addr) = start_unverified(dir.path());
    let mut c = Client::connect(addr);
    create_topic(&mut c);
    assert_eq!(produce(&mut c, None, batch(900, 0, false, "n0")), (0, 0));
    assert_eq!(produce(&mut c, Some("tx-a"), batch(100, 0, true, "aborted")), (0, 1));
    assert_eq!(produce(&mut c, Some("tx-b"), batch(200, 0, true, "committed")), (0, 2));
    assert_eq!(produce(&mut c, None, batch(900, 1, false, "n1")), (0, 3));

    // Two open transactions: read_committed stops at the first one.
    assert_eq!((latest(&mut c, true), latest(&mut c, false)), (1, 4));
    assert_eq!(fetch(&mut c, true), (vec!["n0".into()], 1, vec![]));
    assert_eq!(fetch(&mut c, false).0, ["n0", "aborted", "committed", "n1"]);

    assert_eq!(marker(&mut c, 100, false, 0), 0);
    assert_eq!(latest(&mut c, true), 2);
    assert_eq!(marker(&mut c, 200, true, 0), 0);
    assert_eq!((latest(&mut c, true), latest(&mut c, false)), (6, 6));
    let committed = (vec!["n0".to_string(), "committed".into(), "n1".into()], 6, vec![(100, 1)]);
    assert_eq!(fetch(&mut c, true), committed);
    assert_eq!(fetch(&mut c, false).0, ["n0", "aborted", "committed", "n1"]);

    // What a client may not do, and a coordinator fenced by a newer one.
    assert_eq!(produce(&mut c, None, batch(300, 0, true, "x")).0, TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    let control = BatchBuilder::new(Compression::None, 0).producer(300, 0, 0).transactional().control();
    let mut control = control;
    control.push(Record::new(Some(vec![0, 0, 0, 1]), Some(vec![0, 0, 0, 0, 0, 0])));
    assert_eq!(produce(&mut c, Some("tx-c"), control.build().freeze()).0, INVALID_RECORD);
    assert_eq!(marker(&mut c, 200, true, 5), 0);
    assert_eq!(marker(&mut c, 200, true, 4), TRANSACTION_COORDINATOR_FENCED);
    assert_eq!(produce(&mut c, Some("tx-c"), batch(300, 0, true, "open")), (0, 7));
    assert_eq!(produce(&mut c, None, batch(300, 1, false, "x")).0, INVALID_TXN_STATE);
    assert_eq!((latest(&mut c, true), latest(&mut c, false)), (7, 8));
    drop(c);
    set.shutdown();

    // After a clean stop (from the snapshot), then with the snapshots gone (from the log).
    let partition_dir = dir.path().join(format!("{TOPIC}-0"));
    for from_log in [false, true] {
        if from_log {
            for e in std::fs::read_dir(&partition_dir).expect("dir").flatten() {
                if e.file_name().to_string_lossy().ends_with(".snapshot") {
                    std::fs::remove_file(e.path()).expect("remove snapshot");
                }
            }
        }
        let (set, addr) = start_unverified(dir.path());
        let mut c = Client::connect(addr);
        assert_eq!((latest(&mut c, true), latest(&mut c, false)), (7, 8), "from the log: {from_log}");
        // The open transaction at 7 now bounds the stable offset.
        assert_eq!(fetch(&mut c, true), (committed.0.clone(), 7, committed.2.clone()));
        assert_eq!(marker(&mut c, 200, true, 4), TRANSACTION_COORDINATOR_FENCED);
        drop(c);
        set.shutdown();
    }
}
