//! `odradek txn list|describe|abort` end to end against the real broker binary. The
//! transactions are opened over a plain connection (InitProducerId, AddPartitionsToTxn and a
//! transactional Produce), as a producer would, then looked at and aborted with the CLI.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use common::{Broker, BIN};
use engine::batch::Compression;
use engine::records::{BatchBuilder, Record};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use odradek::client::Connection;
use serde_json::{json, Value};

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn odradek(b: &Broker, args: &[&str]) -> Out {
    let mut child = Command::new(BIN)
        .args(args)
        .env("ODRADEK_BOOTSTRAP_SERVER", &b.bootstrap)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run odradek");
    child.stdin.take().expect("stdin").write_all(b"").expect("write stdin");
    let o = child.wait_with_output().expect("wait");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn ok(b: &Broker, args: &[&str]) -> String {
    let o = odradek(b, args);
    assert_eq!(o.code, 0, "odradek {args:?} failed: {}{}", o.stdout, o.stderr);
    o.stdout
}

fn json_of(b: &Broker, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["--output", "json"]);
    let out = ok(b, &a);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
}

/// Runs a command that must fail with `code`; returns its stderr.
fn fails(b: &Broker, args: &[&str], code: i32) -> String {
    let o = odradek(b, args);
    assert_eq!(o.code, code, "odradek {args:?}: {}{}", o.stdout, o.stderr);
    assert_eq!(o.stdout, "", "{args:?}");
    o.stderr
}

/// The CLI's table layout: columns two spaces apart, the last not padded.
fn table(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows[0].len()).map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let last = row.len() - 1;
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                out.push_str(&" ".repeat(widths[i] - cell.len() + 2));
            }
        }
        out.push('\n');
    }
    out
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn tid(id: &str) -> TransactionalId {
    TransactionalId(s(id))
}

/// A producer speaking the transaction protocol over one connection.
struct Producer {
    conn: Connection,
}

impl Producer {
    fn connect(b: &Broker) -> Self {
        Producer { conn: Connection::connect(&b.bootstrap, "txn-test", Duration::from_secs(20)).expect("connect") }
    }

    /// InitProducerId for `id`: (producer id, epoch).
    fn init(&mut self, id: &str) -> (i64, i16) {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(Some(tid(id)))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let r = self.conn.send_version(4, &req).expect("InitProducerId");
        assert_eq!(r.error_code, 0, "InitProducerId {id}");
        (r.producer_id.0, r.producer_epoch)
    }

    fn add_partitions(&mut self, id: &str, producer: (i64, i16), topic: &str, partitions: &[i32]) {
        let req = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(tid(id))
            .with_v3_and_below_producer_id(ProducerId(producer.0))
            .with_v3_and_below_producer_epoch(producer.1)
            .with_v3_and_below_topics(vec![add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(partitions.to_vec())]);
        let r = self.conn.send_version(3, &req).expect("AddPartitionsToTxn");
        let codes: Vec<(i32, i16)> = r.results_by_topic_v3_and_below[0]
            .results_by_partition
            .iter()
            .map(|p| (p.partition_index, p.partition_error_code))
            .collect();
        assert_eq!(codes, partitions.iter().map(|p| (*p, 0)).collect::<Vec<_>>());
    }

    /// A transactional batch of one record to `topic`-`partition`: its base offset.
    fn produce(&mut self, id: &str, producer: (i64, i16), topic: &str, partition: i32, value: &str) -> i64 {
        let now = engine::now_ms();
        let mut b = BatchBuilder::new(Compression::None, now).producer(producer.0, producer.1, 0).transactional();
        b.push(Record::new(None, Some(value.as_bytes().to_vec())).with_timestamp(now));
        let records: Bytes = b.build().freeze();
        let req = ProduceRequest::default()
            .with_transactional_id(Some(tid(id)))
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(TopicName(s(topic)))
                .with_partition_data(vec![produce_request::PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(records))])]);
        let r = self.conn.send_version(9, &req).expect("Produce");
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "Produce to {topic}-{partition}");
        p.base_offset
    }

    /// The read_committed end of a partition: its last stable offset.
    fn last_stable_offset(&mut self, topic: &str, partition: i32) -> i64 {
        let req = ListOffsetsRequest::default().with_isolation_level(1).with_topics(vec![
            list_offsets_request::ListOffsetsTopic::default().with_name(TopicName(s(topic))).with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_timestamp(-1),
            ]),
        ]);
        let r = self.conn.send_version(7, &req).expect("ListOffsets");
        let p = &r.topics[0].partitions[0];
        assert_eq!(p.error_code, 0);
        p.offset
    }
}

#[test]
fn list_describe_and_abort_transactions() {
    let b = Broker::start();
    ok(&b, &["topic", "create", "orders", "-p", "2"]);
    let mut p = Producer::connect(&b);
    let open = p.init("tx-open");
    let idle = p.init("tx-idle");
    let before_add = engine::now_ms();
    p.add_partitions("tx-open", open, "orders", &[0, 1]);
    assert_eq!(p.produce("tx-open", open, "orders", 0, "pending"), 0);
    assert_eq!(p.last_stable_offset("orders", 0), 0, "the open transaction holds read_committed back");
    let (open_pid, idle_pid) = (open.0.to_string(), idle.0.to_string());

    // list: every id, then filtered by state and by producer id.
    let header = row(&["TRANSACTIONAL-ID", "COORDINATOR", "PRODUCER-ID", "STATE"]);
    let idle_row = row(&["tx-idle", "0", &idle_pid, "Empty"]);
    let open_row = row(&["tx-open", "0", &open_pid, "Ongoing"]);
    assert_eq!(ok(&b, &["txn", "list"]), table(&[header.clone(), idle_row.clone(), open_row.clone()]));
    assert_eq!(ok(&b, &["txn", "list", "--state", "Ongoing"]), table(&[header.clone(), open_row]));
    assert_eq!(ok(&b, &["txn", "list", "--producer-id", &idle_pid]), table(&[header.clone(), idle_row]));
    assert_eq!(ok(&b, &["txn", "list", "--state", "PrepareAbort"]), table(&[header]));
    assert_eq!(
        json_of(&b, &["txn", "list"]),
        json!([
            {"transactional_id": "tx-idle", "coordinator": 0, "producer_id": idle.0, "state": "Empty"},
            {"transactional_id": "tx-open", "coordinator": 0, "producer_id": open.0, "state": "Ongoing"},
        ])
    );
    let e = fails(&b, &["txn", "list", "--state", "Sleeping"], 1);
    assert_eq!(
        e,
        "odradek: error: unknown transaction state Sleeping: expected Empty, Ongoing, PrepareCommit, PrepareAbort, \
         CompleteCommit, CompleteAbort, PrepareEpochFence or Dead\n"
    );

    // describe: JSON first (it carries the start time the table shows too).
    let d = json_of(&b, &["txn", "describe", "tx-open", "tx-idle"]);
    let started = d[0]["transaction_start_time_ms"].as_i64().expect("start time");
    assert!((before_add..=engine::now_ms()).contains(&started), "started at {started}, added at {before_add}");
    assert_eq!(
        d,
        json!([
            {
                "transactional_id": "tx-open", "coordinator": 0, "state": "Ongoing",
                "producer_id": open.0, "producer_epoch": 0, "transaction_timeout_ms": 60_000,
                "transaction_start_time_ms": started,
                "partitions": [{"topic": "orders", "partition": 0}, {"topic": "orders", "partition": 1}],
            },
            {
                "transactional_id": "tx-idle", "coordinator": 0, "state": "Empty",
                "producer_id": idle.0, "producer_epoch": 0, "transaction_timeout_ms": 60_000,
                "transaction_start_time_ms": null, "partitions": [],
            },
        ])
    );
    let describe_header = row(&[
        "TRANSACTIONAL-ID",
        "COORDINATOR",
        "PRODUCER-ID",
        "EPOCH",
        "STATE",
        "TIMEOUT-MS",
        "START-MS",
        "PARTITIONS",
    ]);
    let started = started.to_string();
    let open_described = row(&["tx-open", "0", &open_pid, "0", "Ongoing", "60000", &started, "orders-0,orders-1"]);
    let idle_described = row(&["tx-idle", "0", &idle_pid, "0", "Empty", "60000", "-", "-"]);
    assert_eq!(
        ok(&b, &["txn", "describe", "tx-open", "tx-idle"]),
        table(&[describe_header, open_described, idle_described])
    );
    let e = fails(&b, &["txn", "describe", "tx-open", "tx-missing"], 1);
    assert_eq!(
        e,
        "odradek: error: describing transaction \"tx-missing\": TRANSACTIONAL_ID_NOT_FOUND\n\
         hint: list transactions with `odradek txn list`\n"
    );
    assert_eq!(
        fails(&b, &["txn", "describe"], 2).lines().next(),
        Some("error: the following required arguments were not provided:")
    );

    // abort: an ABORT marker ends the transaction in orders-0 (the marker at offset 1).
    let abort = |partition: &str, coordinator_epoch: &str| {
        vec![
            "txn",
            "abort",
            "--topic",
            "orders",
            "--partition",
            partition,
            "--producer-id",
            open_pid.as_str(),
            "--producer-epoch",
            "0",
            "--coordinator-epoch",
            coordinator_epoch,
        ]
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<String>>()
    };
    assert_eq!(
        ok(&b, &strs(&abort("0", "3"))),
        format!("aborted the transaction of producer {open_pid} (epoch 0) in orders-0\n")
    );
    assert_eq!(p.last_stable_offset("orders", 0), 2);
    assert_eq!(
        json_of(&b, &strs(&abort("1", "3"))),
        json!({
            "topic": "orders", "partition": 1, "producer_id": open.0, "producer_epoch": 0,
            "coordinator_epoch": 3, "aborted": true,
        })
    );
    assert_eq!(p.last_stable_offset("orders", 1), 1, "a marker even where the producer wrote nothing");
    // A marker of an older coordinator epoch than the partition's last is refused.
    let e = fails(&b, &strs(&abort("0", "2")), 1);
    assert_eq!(
        e.lines().next(),
        Some(
            format!(
                "odradek: error: aborting the transaction of producer {open_pid} (epoch 0) in orders-0: \
                 TRANSACTION_COORDINATOR_FENCED"
            )
            .as_str()
        )
    );
    assert!(e.contains("hint: the partition has a marker of a newer coordinator epoch"), "{e}");
    assert_eq!(p.last_stable_offset("orders", 0), 2, "nothing written");
    let e = fails(&b, &strs(&abort("9", "3")), 1);
    assert!(e.starts_with("odradek: error: topic \"orders\" has no partition 9: UNKNOWN_TOPIC_OR_PARTITION\n"), "{e}");
    let mut negative = abort("0", "3");
    negative[6] = "--producer-id=-1".into();
    negative.remove(7);
    assert_eq!(
        fails(&b, &strs(&negative), 1),
        "odradek: error: --producer-id, --producer-epoch and --coordinator-epoch must not be negative\n"
    );
    let e = fails(&b, &["txn", "abort", "--topic", "orders", "--partition", "0"], 2);
    assert!(e.contains("--producer-id <ID>"), "{e}");

    // The coordinator was not told: it still has the transaction open.
    assert_eq!(json_of(&b, &["txn", "describe", "tx-open"])[0]["state"], "Ongoing");
}
