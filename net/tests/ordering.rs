//! A connection's pipelined Produce requests are stored in the order they were sent, as on
//! Kafka (which serves a connection one request at a time): a producer without idempotence
//! that keeps several requests in flight (librdkafka's default) relies on it.
//!
//! The pressure that used to reorder them: a small shard memory budget, and large batches
//! alternating with small ones. A large batch waits for room in the write buffers while a
//! small one sent after it still fits.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use common::{name, Client};
use engine::batch::Compression;
use engine::records::{BatchBuilder, Record};
use engine::shard::ShardSetConfig;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, HeaderVersion};
use net::{Broker, BrokerConfig};
use replication::{Node, NodeConfig};

#[global_allocator]
static ALLOCATOR: net::alloc::NoReserveAlloc = net::alloc::NoReserveAlloc;

const TOPIC: &str = "ordered";
const REQUESTS: usize = 96;

/// A broker on two shards whose budget is the smallest a shard takes (16 MiB, a quarter of it
/// for write buffers).
fn start_small(dir: &std::path::Path) -> (Node<net::server::Call>, std::net::SocketAddr) {
    let port = common::free_port();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let config = BrokerConfig {
        listen: addr,
        advertised_port: i32::from(port),
        data_dir: dir.to_path_buf(),
        ..BrokerConfig::default()
    };
    let shards = ShardSetConfig {
        shard_count: 2,
        pin: false,
        io_memory_bytes: 8 << 20,
        memory_bytes_per_shard: engine::budget::SHARD_MEMORY_BYTES_MIN,
        ..ShardSetConfig::new(dir)
    };
    let broker = Broker::new(config).expect("broker");
    let set = Node::start(NodeConfig::new(shards), Some(broker.service())).expect("shards");
    for _ in 0..200 {
        if TcpStream::connect(addr).is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok()) {
            return (set, addr);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("broker did not listen");
}

/// Request `i`'s batch: one record whose value starts with `i`; every third one is large.
fn batch(i: usize) -> Bytes {
    let now = engine::now_ms();
    let size = if i % 3 == 0 { 900_000 } else { 100 };
    let mut value = format!("{i:05}:").into_bytes();
    value.resize(size, b'.');
    let mut b = BatchBuilder::new(Compression::None, now);
    b.push(Record::new(Some(b"k".to_vec()), Some(value)).with_timestamp(now));
    b.build().freeze()
}

/// Every record's request number, in offset order, read from `from` to the high watermark.
fn stored_order(c: &mut Client) -> Vec<(i64, usize)> {
    let mut out: Vec<(i64, usize)> = Vec::new();
    loop {
        let next = out.last().map_or(0, |(o, _)| o + 1);
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_max_bytes(4 << 20)
            .with_topics(vec![fetch_request::FetchTopic::default().with_topic(name(TOPIC)).with_partitions(vec![
                fetch_request::FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(next)
                    .with_partition_max_bytes(4 << 20),
            ])]);
        let r = c.call(11, &req);
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, 0);
        let bytes = p.records.clone().unwrap_or_default();
        let before = out.len();
        for view in engine::batch::parse_all(&bytes, usize::MAX).expect("batches") {
            for (k, rec) in engine::records::decode_records(&view).expect("records").into_iter().enumerate() {
                let value = rec.value.expect("value");
                let n = std::str::from_utf8(&value[..5]).expect("utf-8").parse().expect("request number");
                out.push((view.base_offset() + k as i64, n));
            }
        }
        if out.len() == before || out.last().is_some_and(|(o, _)| o + 1 >= p.high_watermark) {
            return out;
        }
    }
}

#[test]
fn pipelined_produce_requests_are_stored_in_the_order_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (set, addr) = start_small(dir.path());
    let mut admin = Client::connect(addr);
    assert_eq!(admin.call(7, &common::create_topic(TOPIC, 1)).topics[0].error_code, 0);

    // All requests written at once from one thread, the answers read from another.
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut reader = stream.try_clone().expect("clone");
    let frames: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let req = common::produce_to(TOPIC, 1, [0], &batch(i));
            common::encode(9, i as i32, "ordering-test", &req, true)
        })
        .collect();
    let writer = std::thread::spawn(move || {
        for f in frames {
            stream.write_all(&f).expect("send");
        }
        stream
    });
    let mut answers = Vec::with_capacity(REQUESTS);
    for i in 0..REQUESTS {
        let mut size = [0u8; 4];
        reader.read_exact(&mut size).expect("response size");
        let mut body = vec![0u8; usize::try_from(i32::from_be_bytes(size)).expect("size")];
        reader.read_exact(&mut body).expect("response body");
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, ProduceResponse::header_version(9)).expect("header");
        assert_eq!(header.correlation_id, i as i32, "responses in request order");
        let r = ProduceResponse::decode(&mut body, 9).expect("response");
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "request {i}");
        answers.push(p.base_offset);
    }
    let _stream = writer.join().expect("writer");

    // Request i got offset i, and the log holds the requests' records in the order sent.
    let expected: Vec<i64> = (0..REQUESTS as i64).collect();
    assert_eq!(answers, expected, "offsets given to the requests, in the order sent");
    let stored = stored_order(&mut admin);
    let expected: Vec<(i64, usize)> = (0..REQUESTS).map(|i| (i as i64, i)).collect();
    assert_eq!(stored, expected, "records in offset order");
    set.shutdown();
}
