//! The transaction coordinator over a plain socket, against a broker in-process: producer ids
//! and epochs for a transactional id, whole transactions seen by a read_committed fetch,
//! KIP-890 verification of transactional writes, fencing of an older instance, the timeout
//! sweep, a restart mid-transaction, transactional offset commits, and ListTransactions'
//! filters. Every answer is checked to the value (codes, ids, epochs, offsets, states).
//!
//! The partitions' side alone (markers written by hand, no coordinator) is `transactions.rs`.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{name, start, start_configured, Client};
use engine::batch::Compression;
use engine::records::{BatchBuilder, Record};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

#[global_allocator]
static ALLOCATOR: net::alloc::NoReserveAlloc = net::alloc::NoReserveAlloc;

const TOPIC: &str = "orders";
const GROUP: &str = "billing";
const TIMEOUT_MS: i32 = 60_000;

const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
const UNSTABLE_OFFSET_COMMIT: i16 = 88;
const PRODUCER_FENCED: i16 = 90;

/// Control record types (the key's second i16).
const ABORT: i16 = 0;
const COMMIT: i16 = 1;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

fn tid(id: &str) -> TransactionalId {
    TransactionalId(s(id))
}

/// A broker whose coordinator sweeps every 200 ms (when `fast_sweep`), else the defaults.
fn broker(dir: &std::path::Path, fast_sweep: bool) -> (replication::Node<net::server::Call>, SocketAddr) {
    if fast_sweep {
        start_configured(dir, replication::DoorLimits::default(), |c| c.transaction_cleanup_interval_ms = 200)
    } else {
        start(dir)
    }
}

fn create_topic(c: &mut Client, partitions: i32) {
    let create = c.call(7, &common::create_topic(TOPIC, partitions));
    assert_eq!(create.topics[0].error_code, 0);
}

/// InitProducerId (v4) for `id` as a new instance: `(error, producer id, epoch)`.
fn init(c: &mut Client, id: &str, timeout_ms: i32) -> (i16, i64, i16) {
    let r = c.call(
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(tid(id)))
            .with_transaction_timeout_ms(timeout_ms)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

/// InitProducerId that must succeed: `(producer id, epoch)`.
fn init_ok(c: &mut Client, id: &str) -> (i64, i16) {
    let (error, pid, epoch) = init(c, id, TIMEOUT_MS);
    assert_eq!(error, 0, "InitProducerId {id}");
    (pid, epoch)
}

/// AddPartitionsToTxn (v0–v3, one transaction) of `partitions` of [`TOPIC`]: every
/// `(partition, error)` in answer order.
fn add_partitions(c: &mut Client, version: i16, id: &str, producer: (i64, i16), partitions: &[i32]) -> Vec<(i32, i16)> {
    let r = c.call(
        version,
        &AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(tid(id))
            .with_v3_and_below_producer_id(ProducerId(producer.0))
            .with_v3_and_below_producer_epoch(producer.1)
            .with_v3_and_below_topics(vec![add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(name(TOPIC))
                .with_partitions(partitions.to_vec())]),
    );
    assert_eq!(r.results_by_topic_v3_and_below.len(), 1);
    let topic = &r.results_by_topic_v3_and_below[0];
    assert_eq!(topic.name.as_str(), TOPIC);
    topic.results_by_partition.iter().map(|p| (p.partition_index, p.partition_error_code)).collect()
}

/// AddPartitionsToTxn v3 that must succeed.
fn add_ok(c: &mut Client, id: &str, producer: (i64, i16), partitions: &[i32]) {
    let expected: Vec<(i32, i16)> = partitions.iter().map(|p| (*p, 0)).collect();
    assert_eq!(add_partitions(c, 3, id, producer, partitions), expected, "AddPartitionsToTxn {id}");
}

fn end_txn(c: &mut Client, version: i16, id: &str, producer: (i64, i16), commit: bool) -> i16 {
    let r = c.call(
        version,
        &EndTxnRequest::default()
            .with_transactional_id(tid(id))
            .with_producer_id(ProducerId(producer.0))
            .with_producer_epoch(producer.1)
            .with_committed(commit),
    );
    r.error_code
}

/// A transactional batch of `values` from `producer` starting at sequence `seq`.
fn txn_batch(producer: (i64, i16), seq: i32, values: &[&str]) -> Bytes {
    let now = engine::now_ms();
    let mut b = BatchBuilder::new(Compression::None, now).producer(producer.0, producer.1, seq).transactional();
    for v in values {
        b.push(Record::new(None, Some(v.as_bytes().to_vec())).with_timestamp(now));
    }
    b.build().freeze()
}

/// Produce (v9, acks=all) of `records` to one partition of [`TOPIC`] with `id` as the
/// request's transactional id: `(error, base offset)`.
fn produce(c: &mut Client, id: &str, partition: i32, records: Bytes) -> (i16, i64) {
    let req = common::produce_to(TOPIC, -1, [partition], &records).with_transactional_id(Some(tid(id)));
    let r = c.call(9, &req);
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// What a fetch of one partition from offset 0 returned.
#[derive(Debug, PartialEq, Eq)]
struct Fetched {
    /// Every data record: (offset, value, producer id), aborted ones included.
    records: Vec<(i64, String, i64)>,
    /// Every control batch: (offset, producer id, control type).
    controls: Vec<(i64, i64, i16)>,
    high_watermark: i64,
    last_stable_offset: i64,
    /// (producer id, first offset); `None` when the fetch was read_uncommitted.
    aborted: Option<Vec<(i64, i64)>>,
}

impl Fetched {
    /// The values a read_committed consumer hands the application: data records below the
    /// LSO, without those of the aborted transactions (from their first offset up to the
    /// producer's next control batch).
    fn committed_values(&self) -> Vec<String> {
        let aborted = self.aborted.clone().unwrap_or_default();
        let aborted_at = |offset: i64, pid: i64| {
            aborted.iter().any(|&(a, first)| {
                a == pid
                    && first <= offset
                    && !self.controls.iter().any(|&(o, cp, _)| cp == pid && o > first && o < offset)
            })
        };
        self.records
            .iter()
            .filter(|(o, _, pid)| *o < self.last_stable_offset && !aborted_at(*o, *pid))
            .map(|(_, v, _)| v.clone())
            .collect()
    }
}

fn fetch(c: &mut Client, partition: i32, read_committed: bool) -> Fetched {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_isolation_level(i8::from(read_committed))
        .with_topics(vec![fetch_request::FetchTopic::default().with_topic(name(TOPIC)).with_partitions(vec![
            fetch_request::FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20),
        ])]);
    let r = c.call(11, &req);
    let p = &r.responses[0].partitions[0];
    assert_eq!((p.partition_index, p.error_code), (partition, 0));
    let bytes = p.records.clone().unwrap_or_default();
    let (mut records, mut controls) = (Vec::new(), Vec::new());
    for view in engine::batch::parse_all(&bytes, usize::MAX).expect("batches") {
        let decoded = engine::records::decode_records(&view).expect("records");
        if view.is_control() {
            assert_eq!(decoded.len(), 1, "a control batch holds one record");
            let key = decoded[0].key.clone().expect("control key");
            controls.push((view.base_offset(), view.producer_id(), i16::from_be_bytes([key[2], key[3]])));
            continue;
        }
        for (i, rec) in decoded.into_iter().enumerate() {
            let value = String::from_utf8(rec.value.expect("value")).expect("utf-8");
            records.push((view.base_offset() + i as i64, value, view.producer_id()));
        }
    }
    let aborted =
        p.aborted_transactions.as_ref().map(|a| a.iter().map(|a| (a.producer_id.0, a.first_offset)).collect());
    Fetched { records, controls, high_watermark: p.high_watermark, last_stable_offset: p.last_stable_offset, aborted }
}

/// One id as DescribeTransactions shows it.
#[derive(Debug, PartialEq, Eq)]
struct Described {
    error: i16,
    state: String,
    producer: (i64, i16),
    timeout_ms: i32,
    /// (topic, partitions).
    topics: Vec<(String, Vec<i32>)>,
}

fn describe(c: &mut Client, ids: &[&str]) -> Vec<Described> {
    let r =
        c.call(0, &DescribeTransactionsRequest::default().with_transactional_ids(ids.iter().map(|i| tid(i)).collect()));
    assert_eq!(r.transaction_states.len(), ids.len());
    r.transaction_states
        .iter()
        .zip(ids)
        .map(|(t, id)| {
            assert_eq!(t.transactional_id.as_str(), *id);
            Described {
                error: t.error_code,
                state: t.transaction_state.to_string(),
                producer: (t.producer_id.0, t.producer_epoch),
                timeout_ms: t.transaction_timeout_ms,
                topics: t.topics.iter().map(|d| (d.topic.to_string(), d.partitions.clone())).collect(),
            }
        })
        .collect()
}

fn describe_one(c: &mut Client, id: &str) -> Described {
    describe(c, &[id]).pop().expect("one state")
}

/// ListTransactions (v1) with `states` as its filter: the `(id, producer id, state)` listed
/// (sorted by id) and the unknown filters.
fn list(c: &mut Client, states: &[&str]) -> (Vec<(String, i64, String)>, Vec<String>) {
    let r = c.call(1, &ListTransactionsRequest::default().with_state_filters(states.iter().map(|f| s(f)).collect()));
    assert_eq!(r.error_code, 0);
    let mut listed: Vec<(String, i64, String)> = r
        .transaction_states
        .iter()
        .map(|t| (t.transactional_id.to_string(), t.producer_id.0, t.transaction_state.to_string()))
        .collect();
    listed.sort();
    (listed, r.unknown_state_filters.iter().map(|f| f.to_string()).collect())
}

/// Polls DescribeTransactions until `id` is in `state` (the sweep runs in the background).
fn wait_for_state(c: &mut Client, id: &str, state: &str, within: Duration) -> Described {
    let started = Instant::now();
    loop {
        let d = describe_one(c, id);
        if d.state == state || started.elapsed() > within {
            return d;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn find_coordinator_and_init_producer_id_bump_the_epoch_of_one_producer_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (set, addr) = start(dir.path());
    let mut c = Client::connect(addr);

    let found = c.call(3, &FindCoordinatorRequest::default().with_key_type(1).with_key(s("tx-a")));
    assert_eq!(found.error_code, 0);
    assert_eq!((found.node_id.0, found.host.as_str(), found.port), (0, "127.0.0.1", i32::from(addr.port())));
    // v4+: one answer per key.
    let found = c
        .call(4, &FindCoordinatorRequest::default().with_key_type(1).with_coordinator_keys(vec![s("tx-a"), s("tx-b")]));
    let keys: Vec<_> =
        found.coordinators.iter().map(|k| (k.key.to_string(), k.error_code, k.node_id.0, k.port)).collect();
    let port = i32::from(addr.port());
    assert_eq!(keys, [("tx-a".to_string(), 0, 0, port), ("tx-b".to_string(), 0, 0, port)]);

    let (error, pid, epoch) = init(&mut c, "tx-a", TIMEOUT_MS);
    assert_eq!((error, epoch), (0, 0));
    assert!(pid >= 0, "producer id {pid}");
    assert_eq!(init(&mut c, "tx-a", TIMEOUT_MS), (0, pid, 1), "the same id: the same producer id, the next epoch");
    assert_eq!(init(&mut c, "tx-a", TIMEOUT_MS), (0, pid, 2));
    let (error, other, epoch) = init(&mut c, "tx-b", TIMEOUT_MS);
    assert_eq!((error, epoch), (0, 0));
    assert_ne!(other, pid, "another id gets another producer id");

    // transaction.max.timeout.ms defaults to 900000.
    assert_eq!(init(&mut c, "tx-a", 900_001), (INVALID_TRANSACTION_TIMEOUT, -1, -1));
    assert_eq!(init(&mut c, "tx-c", 0), (INVALID_TRANSACTION_TIMEOUT, -1, -1));
    // The refused request changed nothing.
    let d = describe_one(&mut c, "tx-a");
    assert_eq!((d.error, d.state.as_str(), d.producer, d.timeout_ms), (0, "Empty", (pid, 2), TIMEOUT_MS));
    drop(c);
    set.shutdown();
}

#[test]
fn committed_transaction_is_read_and_aborted_one_is_listed_for_read_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (set, addr) = start(dir.path());
    let mut c = Client::connect(addr);
    create_topic(&mut c, 2);
    let id = "tx-full";
    let producer = init_ok(&mut c, id);
    let pid = producer.0;
    // Nothing to end before a partition is added.
    assert_eq!(end_txn(&mut c, 3, id, producer, true), INVALID_TXN_STATE);

    add_ok(&mut c, id, producer, &[0, 1]);
    let d = describe_one(&mut c, id);
    assert_eq!((d.state.as_str(), d.topics), ("Ongoing", vec![(TOPIC.to_string(), vec![0, 1])]));
    assert_eq!(produce(&mut c, id, 0, txn_batch(producer, 0, &["a", "b"])), (0, 0));
    assert_eq!(produce(&mut c, id, 1, txn_batch(producer, 0, &["c"])), (0, 0));
    // Open: read_committed sees nothing yet, the stable offset stays at the transaction's start.
    let open = fetch(&mut c, 0, true);
    assert_eq!((open.last_stable_offset, open.high_watermark, open.committed_values().len()), (0, 2, 0));

    assert_eq!(end_txn(&mut c, 3, id, producer, true), 0);
    let p0 = fetch(&mut c, 0, true);
    let expected = Fetched {
        records: vec![(0, "a".into(), pid), (1, "b".into(), pid)],
        controls: vec![(2, pid, COMMIT)],
        high_watermark: 3,
        last_stable_offset: 3,
        aborted: Some(vec![]),
    };
    assert_eq!(p0, expected);
    assert_eq!(p0.committed_values(), ["a", "b"]);
    let p1 = fetch(&mut c, 1, true);
    assert_eq!((p1.records, p1.controls), (vec![(0, "c".into(), pid)], vec![(1, pid, COMMIT)]));
    assert_eq!((p1.high_watermark, p1.last_stable_offset, p1.aborted), (2, 2, Some(vec![])));
    let d = describe_one(&mut c, id);
    assert_eq!((d.state.as_str(), d.producer, d.topics), ("CompleteCommit", producer, vec![]));
    // A retried EndTxn of the same outcome is answered as it was; the other outcome is not.
    assert_eq!(end_txn(&mut c, 3, id, producer, true), 0);
    assert_eq!(end_txn(&mut c, 3, id, producer, false), INVALID_TXN_STATE);

    // The next transaction, aborted: the sequence goes on within the epoch.
    add_ok(&mut c, id, producer, &[0]);
    assert_eq!(produce(&mut c, id, 0, txn_batch(producer, 2, &["x", "y"])), (0, 3));
    assert_eq!(end_txn(&mut c, 3, id, producer, false), 0);
    let p0 = fetch(&mut c, 0, true);
    let expected = Fetched {
        records: vec![(0, "a".into(), pid), (1, "b".into(), pid), (3, "x".into(), pid), (4, "y".into(), pid)],
        controls: vec![(2, pid, COMMIT), (5, pid, ABORT)],
        high_watermark: 6,
        last_stable_offset: 6,
        aborted: Some(vec![(pid, 3)]),
    };
    assert_eq!(p0, expected);
    assert_eq!(p0.committed_values(), ["a", "b"]);
    // read_uncommitted names no aborted transactions.
    assert_eq!(fetch(&mut c, 0, false).aborted, None);
    // Partition 1 was not in the aborted transaction: no marker there.
    assert_eq!(fetch(&mut c, 1, true).high_watermark, 2);
    assert_eq!(describe_one(&mut c, id).state, "CompleteAbort");
    drop(c);
    set.shutdown();
}

#[test]
fn transactional_writes_outside_the_ongoing_transaction_are_refused_kip_890() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (set, addr) = start(dir.path());
    let mut c = Client::connect(addr);
    create_topic(&mut c, 2);
    let id = "tx-verify";
    let producer = init_ok(&mut c, id);

    // No transaction yet (Empty): refused.
    assert_eq!(produce(&mut c, id, 0, txn_batch(producer, 0, &["early"])), (INVALID_TXN_STATE, -1));
    add_ok(&mut c, id, producer, &[0]);
    assert_eq!(produce(&mut c, id, 1, txn_batch(producer, 0, &["stray"])), (INVALID_TXN_STATE, -1));
    assert_eq!(fetch(&mut c, 1, false).high_watermark, 0, "nothing stored in the partition not added");
    assert_eq!(produce(&mut c, id, 0, txn_batch(producer, 0, &["in"])), (0, 0));
    // Another id's transaction does not cover this producer's batch.
    let other = init_ok(&mut c, "tx-other");
    add_ok(&mut c, "tx-other", other, &[1]);
    assert_eq!(produce(&mut c, id, 1, txn_batch(producer, 0, &["stray"])), (INVALID_TXN_STATE, -1));
    assert_eq!(fetch(&mut c, 1, false).high_watermark, 0);

    assert_eq!(end_txn(&mut c, 3, id, producer, true), 0);
    let after_end = fetch(&mut c, 0, true);
    assert_eq!((after_end.high_watermark, after_end.last_stable_offset), (2, 2));
    // A late batch of the ended transaction (a retry, a zombie) does not open a new one.
    assert_eq!(produce(&mut c, id, 0, txn_batch(producer, 1, &["late"])), (INVALID_TXN_STATE, -1));
    let p0 = fetch(&mut c, 0, true);
    assert_eq!((p0.high_watermark, p0.last_stable_offset, p0.committed_values()), (2, 2, vec!["in".to_string()]));
    assert_eq!(describe_one(&mut c, id).state, "CompleteCommit");
    drop(c);
    set.shutdown();
}

#[test]
fn a_new_instance_fences_the_old_epoch_and_aborts_its_open_transaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (set, addr) = start(dir.path());
    let mut c = Client::connect(addr);
    create_topic(&mut c, 1);
    let id = "tx-fence";
    let old = init_ok(&mut c, id);
    let new = init_ok(&mut c, id);
    assert_eq!(new, (old.0, old.1 + 1));

    for version in 0..=3 {
        let expected = if version >= 2 { PRODUCER_FENCED } else { INVALID_PRODUCER_EPOCH };
        assert_eq!(add_partitions(&mut c, version, id, old, &[0]), [(0, expected)], "AddPartitionsToTxn v{version}");
        assert_eq!(end_txn(&mut c, version, id, old, true), expected, "EndTxn v{version}");
    }
    // Nothing the old instance sent started a transaction.
    assert_eq!(describe_one(&mut c, id).state, "Empty");

    // The current instance opens a transaction and writes; then a newer one starts.
    add_ok(&mut c, id, new, &[0]);
    assert_eq!(produce(&mut c, id, 0, txn_batch(new, 0, &["zombie"])), (0, 0));
    let open = fetch(&mut c, 0, true);
    assert_eq!((open.last_stable_offset, open.high_watermark), (0, 1));
    // The open transaction is aborted with the epoch bumped past `new` (new.1 + 1), and the
    // newest instance gets the epoch after that.
    let newest = init_ok(&mut c, id);
    assert_eq!(newest, (old.0, new.1 + 2));
    let p0 = fetch(&mut c, 0, true);
    let expected = Fetched {
        records: vec![(0, "zombie".into(), old.0)],
        controls: vec![(1, old.0, ABORT)],
        high_watermark: 2,
        last_stable_offset: 2,
        aborted: Some(vec![(old.0, 0)]),
    };
    assert_eq!(p0, expected);
    assert_eq!(p0.committed_values(), Vec::<String>::new());
    // The fenced instance can neither write nor end anything.
    assert_eq!(produce(&mut c, id, 0, txn_batch(new, 1, &["late"])).0, INVALID_PRODUCER_EPOCH);
    assert_eq!(end_txn(&mut c, 3, id, new, true), PRODUCER_FENCED);
    assert_eq!(add_partitions(&mut c, 3, id, new, &[0]), [(0, PRODUCER_FENCED)]);
    assert_eq!(fetch(&mut c, 0, false).high_watermark, 2);
    let d = describe_one(&mut c, id);
    assert_eq!((d.state.as_str(), d.producer), ("Empty", newest));
    drop(c);
    set.shutdown();
}

#[test]
fn a_transaction_past_its_timeout_is_aborted_by_the_sweep() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (set, addr) = broker(dir.path(), true);
    let mut c = Client::connect(addr);
    create_topic(&mut c, 1);
    let id = "tx-slow";
    let (error, pid, epoch) = init(&mut c, id, 500);
    assert_eq!((error, epoch), (0, 0));
    let producer = (pid, epoch);
    add_ok(&mut c, id, producer, &[0]);
    assert_eq!(produce(&mut c, id, 0, txn_batch(producer, 0, &["forgotten"])), (0, 0));
    assert_eq!(describe_one(&mut c, id).state, "Ongoing");

    std::thread::sleep(Duration::from_secs(2));
    let d = wait_for_state(&mut c, id, "CompleteAbort", Duration::from_secs(5));
    let expected =
        Described { error: 0, state: "CompleteAbort".into(), producer: (pid, 1), timeout_ms: 500, topics: vec![] };
    assert_eq!(d, expected);
    let p0 = fetch(&mut c, 0, true);
    let expected = Fetched {
        records: vec![(0, "forgotten".into(), pid)],
        controls: vec![(1, pid, ABORT)],
        high_watermark: 2,
        last_stable_offset: 2,
        aborted: Some(vec![(pid, 0)]),
    };
    assert_eq!(p0, expected);
    // The producer that let it time out is fenced.
    assert_eq!(end_txn(&mut c, 3, id, producer, true), PRODUCER_FENCED);
    assert_eq!(produce(&mut c, id, 0, txn_batch(producer, 1, &["late"])).0, INVALID_PRODUCER_EPOCH);
    drop(c);
    set.shutdown();
}

#[test]
fn an_open_transaction_survives_a_restart_and_commits_after_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (set, addr) = start(dir.path());
    let mut c = Client::connect(addr);
    create_topic(&mut c, 2);
    let id = "tx-restart";
    let producer = init_ok(&mut c, id);
    add_ok(&mut c, id, producer, &[0, 1]);
    assert_eq!(produce(&mut c, id, 0, txn_batch(producer, 0, &["before", "stop"])), (0, 0));
    assert_eq!(produce(&mut c, id, 1, txn_batch(producer, 0, &["other"])), (0, 0));
    drop(c);
    set.shutdown();

    let (set, addr) = start(dir.path());
    let mut c = Client::connect(addr);
    let open = fetch(&mut c, 0, true);
    assert_eq!((open.last_stable_offset, open.high_watermark), (0, 2));
    // Still verified after the restart: partition 0 is in the transaction. (Verification waits
    // for the coordinator to load; DescribeTransactions does not, see
    // `describe_and_list_wait_for_the_coordinator_to_load_after_a_restart`.)
    assert_eq!(produce(&mut c, id, 0, txn_batch(producer, 2, &["after"])), (0, 2));
    let expected = Described {
        error: 0,
        state: "Ongoing".into(),
        producer,
        timeout_ms: TIMEOUT_MS,
        topics: vec![(TOPIC.to_string(), vec![0, 1])],
    };
    assert_eq!(describe_one(&mut c, id), expected);

    assert_eq!(end_txn(&mut c, 3, id, producer, true), 0);
    let p0 = fetch(&mut c, 0, true);
    let pid = producer.0;
    let expected = Fetched {
        records: vec![(0, "before".into(), pid), (1, "stop".into(), pid), (2, "after".into(), pid)],
        controls: vec![(3, pid, COMMIT)],
        high_watermark: 4,
        last_stable_offset: 4,
        aborted: Some(vec![]),
    };
    assert_eq!(p0, expected);
    assert_eq!(fetch(&mut c, 1, true).committed_values(), ["other"]);
    assert_eq!(describe_one(&mut c, id).state, "CompleteCommit");
    // The restarted coordinator still knows the id: the next instance gets the next epoch.
    assert_eq!(init_ok(&mut c, id), (pid, producer.1 + 1));
    drop(c);
    set.shutdown();
}

/// Kafka answers a DescribeTransactions or ListTransactions that reaches a coordinator still
/// loading its state with COORDINATOR_LOAD_IN_PROGRESS (14), which admin clients retry. Here
/// both answer from the empty state while `__transaction_state` is read back: the id is
/// TRANSACTIONAL_ID_NOT_FOUND (105) and the listing is empty with no error, for the first
/// ~50 ms after a restart.
#[test]
fn describe_and_list_wait_for_the_coordinator_to_load_after_a_restart() {
    const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    let dir = tempfile::tempdir().expect("tempdir");
    let (set, addr) = start(dir.path());
    let mut c = Client::connect(addr);
    create_topic(&mut c, 1);
    let id = "tx-loading";
    let producer = init_ok(&mut c, id);
    add_ok(&mut c, id, producer, &[0]);
    drop(c);
    set.shutdown();

    let (set, addr) = start(dir.path());
    let mut c = Client::connect(addr);
    let listed = c.call(1, &ListTransactionsRequest::default());
    let listed: (i16, Vec<String>) =
        (listed.error_code, listed.transaction_states.iter().map(|t| t.transactional_id.to_string()).collect());
    assert!(
        listed == (COORDINATOR_LOAD_IN_PROGRESS, vec![]) || listed == (0, vec![id.to_string()]),
        "ListTransactions right after the restart: {listed:?}"
    );
    let d = describe_one(&mut c, id);
    assert!(
        d.error == COORDINATOR_LOAD_IN_PROGRESS || (d.error, d.state.as_str()) == (0, "Ongoing"),
        "DescribeTransactions right after the restart: {d:?}"
    );
    drop(c);
    set.shutdown();
}

/// OffsetFetch v7 of [`TOPIC`]-0 for [`GROUP`]: `(error, committed offset)`.
fn fetch_offset(c: &mut Client, require_stable: bool) -> (i16, i64) {
    let r = c.call(
        7,
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(s(GROUP)))
            .with_require_stable(require_stable)
            .with_topics(Some(vec![offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(name(TOPIC))
                .with_partition_indexes(vec![0])])),
    );
    assert_eq!(r.error_code, 0);
    let p = &r.topics[0].partitions[0];
    assert_eq!(p.partition_index, 0);
    (p.error_code, p.committed_offset)
}

fn txn_offset_commit(c: &mut Client, id: &str, producer: (i64, i16), offset: i64) -> i16 {
    let r = c.call(
        3,
        &TxnOffsetCommitRequest::default()
            .with_transactional_id(tid(id))
            .with_group_id(GroupId(s(GROUP)))
            .with_producer_id(ProducerId(producer.0))
            .with_producer_epoch(producer.1)
            .with_topics(vec![txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                .with_name(name(TOPIC))
                .with_partitions(vec![txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(offset)])]),
    );
    assert_eq!(r.topics.len(), 1);
    assert_eq!(r.topics[0].partitions[0].partition_index, 0);
    r.topics[0].partitions[0].error_code
}

fn add_offsets(c: &mut Client, id: &str, producer: (i64, i16)) -> i16 {
    let r = c.call(
        3,
        &AddOffsetsToTxnRequest::default()
            .with_transactional_id(tid(id))
            .with_producer_id(ProducerId(producer.0))
            .with_producer_epoch(producer.1)
            .with_group_id(GroupId(s(GROUP))),
    );
    r.error_code
}

#[test]
fn transactional_offsets_are_unstable_until_the_transaction_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (set, addr) = start(dir.path());
    let mut c = Client::connect(addr);
    create_topic(&mut c, 1);
    let found = c.call(3, &FindCoordinatorRequest::default().with_key_type(0).with_key(s(GROUP)));
    assert_eq!(found.error_code, 0);
    // A plain commit first: the offset an aborted transaction must leave in place.
    let committed = c.call(
        8,
        &OffsetCommitRequest::default().with_group_id(GroupId(s(GROUP))).with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default().with_name(name(TOPIC)).with_partitions(vec![
                offset_commit_request::OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(5),
            ]),
        ]),
    );
    assert_eq!(committed.topics[0].partitions[0].error_code, 0);
    assert_eq!(fetch_offset(&mut c, true), (0, 5));

    let id = "tx-offsets";
    let producer = init_ok(&mut c, id);
    // Aborted: the old offset stays.
    assert_eq!(add_offsets(&mut c, id, producer), 0);
    assert_eq!(txn_offset_commit(&mut c, id, producer, 10), 0);
    assert_eq!(fetch_offset(&mut c, true), (UNSTABLE_OFFSET_COMMIT, -1));
    assert_eq!(fetch_offset(&mut c, false), (0, 5), "without require_stable: the last stable offset");
    assert_eq!(end_txn(&mut c, 3, id, producer, false), 0);
    assert_eq!(fetch_offset(&mut c, true), (0, 5));

    // Committed: the transaction's offset.
    assert_eq!(add_offsets(&mut c, id, producer), 0);
    assert_eq!(txn_offset_commit(&mut c, id, producer, 20), 0);
    assert_eq!(fetch_offset(&mut c, true), (UNSTABLE_OFFSET_COMMIT, -1));
    let d = describe_one(&mut c, id);
    let offsets_partition = d.topics.iter().find(|(t, _)| t == "__consumer_offsets").map(|(_, ps)| ps.len());
    assert_eq!((d.state.as_str(), offsets_partition), ("Ongoing", Some(1)));
    assert_eq!(end_txn(&mut c, 3, id, producer, true), 0);
    assert_eq!(fetch_offset(&mut c, true), (0, 20));

    // An offset commit outside the transaction's partitions (no AddOffsetsToTxn) is refused.
    assert_eq!(txn_offset_commit(&mut c, id, producer, 30), INVALID_TXN_STATE);
    assert_eq!(fetch_offset(&mut c, true), (0, 20));
    drop(c);
    set.shutdown();
}

/// A producer's `sendOffsetsToTransaction` sends AddOffsetsToTxn first and looks up the
/// group's coordinator only after it succeeds (for the TxnOffsetCommit); on
/// COORDINATOR_NOT_AVAILABLE the Java producer and librdkafka look up the *transaction*
/// coordinator again and retry. Kafka's AddOffsetsToTxn adds `__consumer_offsets`-N without
/// needing the topic to exist. Here it answers COORDINATOR_NOT_AVAILABLE (15) until something
/// else (a FindCoordinator for a group) creates `__consumer_offsets`, so on a fresh broker a
/// producer whose group was never looked up retries until its transaction times out.
#[test]
fn add_offsets_to_txn_needs_no_prior_group_lookup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (set, addr) = start(dir.path());
    let mut c = Client::connect(addr);
    create_topic(&mut c, 1);
    let id = "tx-offsets-first";
    let producer = init_ok(&mut c, id);
    // What the producer does on COORDINATOR_NOT_AVAILABLE: find the transaction coordinator.
    let found = c.call(3, &FindCoordinatorRequest::default().with_key_type(1).with_key(s(id)));
    assert_eq!(found.error_code, 0);
    assert_eq!(add_offsets(&mut c, id, producer), 0, "AddOffsetsToTxn before any group lookup");
    // Then the group's coordinator, and the offsets commit in the transaction.
    let found = c.call(3, &FindCoordinatorRequest::default().with_key_type(0).with_key(s(GROUP)));
    assert_eq!(found.error_code, 0);
    assert_eq!(txn_offset_commit(&mut c, id, producer, 7), 0);
    assert_eq!(end_txn(&mut c, 3, id, producer, true), 0);
    assert_eq!(fetch_offset(&mut c, true), (0, 7));
    drop(c);
    set.shutdown();
}

#[test]
fn list_transactions_filters_by_state_and_names_unknown_filters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (set, addr) = start(dir.path());
    let mut c = Client::connect(addr);
    create_topic(&mut c, 1);
    // Ids wherever their coordinator shard is (ListTransactions asks every shard): l-a and l-b
    // ongoing, l-c empty, l-d committed.
    let mut producers = Vec::new();
    for id in ["l-a", "l-b", "l-c", "l-d"] {
        producers.push(init_ok(&mut c, id));
    }
    add_ok(&mut c, "l-a", producers[0], &[0]);
    add_ok(&mut c, "l-b", producers[1], &[0]);
    add_ok(&mut c, "l-d", producers[3], &[0]);
    assert_eq!(end_txn(&mut c, 3, "l-d", producers[3], true), 0);

    let entry = |id: &str, i: usize, state: &str| (id.to_string(), producers[i].0, state.to_string());
    let ongoing = vec![entry("l-a", 0, "Ongoing"), entry("l-b", 1, "Ongoing")];
    assert_eq!(list(&mut c, &["Ongoing"]), (ongoing.clone(), vec![]));
    assert_eq!(list(&mut c, &["Ongoing", "Sleeping"]), (ongoing, vec!["Sleeping".to_string()]));
    assert_eq!(
        list(&mut c, &["CompleteCommit", "Empty"]),
        (vec![entry("l-c", 2, "Empty"), entry("l-d", 3, "CompleteCommit")], vec![])
    );
    // A known state nobody is in, and no filter at all.
    assert_eq!(list(&mut c, &["PrepareAbort"]), (vec![], vec![]));
    let all = vec![
        entry("l-a", 0, "Ongoing"),
        entry("l-b", 1, "Ongoing"),
        entry("l-c", 2, "Empty"),
        entry("l-d", 3, "CompleteCommit"),
    ];
    assert_eq!(list(&mut c, &[]), (all, vec![]));
    drop(c);
    set.shutdown();
}
