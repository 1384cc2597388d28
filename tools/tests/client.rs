//! The client core against the real broker binary.

mod common;

use common::Broker;
use odradek::client::*;

fn record(key: &str, value: &str, ts: i64) -> Record {
    Record::new(Some(key.as_bytes().to_vec()), Some(value.as_bytes().to_vec())).with_timestamp(ts)
}

#[test]
fn client_operations_against_the_broker() {
    let broker = Broker::start();
    let mut c = Client::connect(ClientConfig::new(&broker.bootstrap)).expect("connect");
    assert_eq!(c.metadata().brokers.len(), 1);

    c.create_topics(
        &[NewTopic {
            name: "orders".into(),
            partitions: 2,
            replication_factor: 1,
            configs: vec![("retention.ms".into(), "123456".into())],
        }],
        false,
    )
    .expect("create");
    let t = c.topic("orders").expect("topic");
    assert_eq!(t.partitions.iter().map(|p| p.partition).collect::<Vec<_>>(), vec![0, 1]);
    let e = c
        .create_topics(
            &[NewTopic { name: "orders".into(), partitions: 1, replication_factor: 1, configs: vec![] }],
            false,
        )
        .expect_err("exists");
    assert_eq!(e.kafka_name(), Some("TOPIC_ALREADY_EXISTS"));

    let records = vec![
        record("a", "1", 1_000).with_header("h1", Some(b"x".to_vec())).with_header("h2", None),
        record("b", "2", 2_000),
        record("c", "3", 3_000),
    ];
    for compression in [Compression::None, Compression::Zstd] {
        let opts = ProduceOptions { compression, ..ProduceOptions::default() };
        c.produce("orders", 1, &records, &opts).expect("produce");
    }
    let fetched = c
        .fetch(&[FetchSpec { topic: "orders".into(), partition: 1, offset: 1 }], &FetchOptions::default())
        .expect("fetch");
    let p = &fetched[0];
    assert_eq!((p.high_watermark, p.next_offset), (6, 6));
    let got: Vec<(i64, Vec<u8>, i64)> =
        p.records.iter().map(|r| (r.offset, r.value.clone().unwrap_or_default(), r.timestamp)).collect();
    assert_eq!(
        got,
        vec![
            (1, b"2".to_vec(), 2_000),
            (2, b"3".to_vec(), 3_000),
            (3, b"1".to_vec(), 1_000),
            (4, b"2".to_vec(), 2_000),
            (5, b"3".to_vec(), 3_000)
        ]
    );
    assert_eq!(p.records[2].headers, vec![("h1".to_string(), Some(b"x".to_vec())), ("h2".to_string(), None)]);

    let latest = c.list_offsets("orders", &[0, 1], OffsetSpec::Latest).expect("latest");
    assert_eq!(latest.into_iter().collect::<Vec<_>>(), vec![(0, 0), (1, 6)]);
    let by_time = c.list_offsets("orders", &[1], OffsetSpec::Timestamp(2_500)).expect("ts");
    assert_eq!(by_time[&1], 2);

    c.offset_commit("g1", &[("orders".into(), 1, 4)]).expect("commit");
    let committed = c.offset_fetch("g1", None).expect("offset fetch");
    assert_eq!(committed.into_iter().collect::<Vec<_>>(), vec![(("orders".to_string(), 1), 4)]);
    assert!(c.list_groups().expect("groups").iter().any(|g| g.group_id == "g1"));

    let res = ConfigResource::Topic("orders".into());
    c.alter_configs(&res, &[("retention.ms".into(), AlterOp::Set("999".into()))]).expect("alter");
    let configs = c.describe_configs(&res, None).expect("describe");
    let retention = configs.iter().find(|e| e.name == "retention.ms").expect("retention.ms");
    assert_eq!((retention.value.as_deref(), retention.source), (Some("999"), "DYNAMIC_TOPIC_CONFIG"));

    c.create_partitions("orders", 3).expect("grow");
    assert_eq!(c.topic("orders").expect("topic").partitions.len(), 3);
    c.delete_topics(&["orders"]).expect("delete");
    let e = c.topic("orders").expect_err("gone");
    assert_eq!(e.kafka_name(), Some("UNKNOWN_TOPIC_OR_PARTITION"));
    assert!(e.hint().is_some_and(|h| h.contains("odradek topic create")));
    let e = c.produce("nope", 0, &[record("k", "v", 1)], &ProduceOptions::default()).expect_err("unknown topic");
    assert_eq!(e.kafka_name(), Some("UNKNOWN_TOPIC_OR_PARTITION"));
}

#[test]
fn unreachable_broker_fails_fast_with_a_hint() {
    let port = common::free_port();
    let mut config = ClientConfig::new(&format!("127.0.0.1:{port}"));
    config.timeout = std::time::Duration::from_secs(2);
    let started = std::time::Instant::now();
    let e = Client::connect(config).expect_err("nothing listens");
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    assert!(matches!(e, Error::Connect { .. }), "{e:?}");
    assert!(e.hint().is_some_and(|h| h.contains("--bootstrap-server")));
}

#[test]
fn pipelined_requests_with_the_sans_io_codec() {
    use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse, TopicName};
    use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse};
    use kafka_protocol::protocol::StrBytes;
    use std::io::Write;

    let broker = Broker::start();
    let mut c = Client::connect(ClientConfig::new(&broker.bootstrap)).expect("connect");
    c.create_topics(&[NewTopic { name: "p".into(), partitions: 1, replication_factor: 1, configs: vec![] }], false)
        .expect("create");
    let conn = Connection::connect(&broker.bootstrap, "pipeline", std::time::Duration::from_secs(10)).expect("conn");
    let (mut sock, versions, first_id) = conn.into_parts();
    let pv = versions.get(ApiKey::Produce as i16).expect("produce version");
    let name = TopicName(StrBytes::from_static_str("p"));
    // Ten produce requests written back to back before reading anything.
    let mut frames = Vec::new();
    for i in 0..10 {
        let batch = records::build_batch(&[record("k", &format!("v{i}"), 1)], Compression::None);
        let req = ProduceRequest::default().with_acks(1).with_timeout_ms(5000).with_topic_data(vec![
            kafka_protocol::messages::produce_request::TopicProduceData::default()
                .with_name(name.clone())
                .with_partition_data(vec![kafka_protocol::messages::produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch))]),
        ]);
        frames.extend_from_slice(&codec::encode_request(pv, first_id + i, Some("pipeline"), &req).expect("encode"));
    }
    sock.write_all(&frames).expect("write");
    for i in 0..10 {
        let frame = codec::read_frame(&mut sock, codec::FRAME_BYTES_MAX).expect("frame");
        assert_eq!(codec::response_correlation_id(&frame).expect("id"), first_id + i);
        let (id, resp) = codec::decode_response::<ProduceResponse>(pv, frame).expect("decode");
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!((id, p.error_code, p.base_offset), (first_id + i, 0, i64::from(i)));
    }
    let lv = versions.get(ApiKey::ListOffsets as i16).expect("list offsets version");
    let req = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
        kafka_protocol::messages::list_offsets_request::ListOffsetsTopic::default().with_name(name).with_partitions(
            vec![kafka_protocol::messages::list_offsets_request::ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)],
        ),
    ]);
    // The latest offset is the high watermark: acks=1 records count once the shard's group
    // commit has synced them, which it does without being asked, a moment after the acks.
    let mut latest = Vec::new();
    for attempt in 0..200 {
        sock.write_all(&codec::encode_request(lv, 99 + attempt, None, &req).expect("encode")).expect("write");
        let (id, resp) =
            codec::decode_response::<ListOffsetsResponse>(lv, codec::read_frame(&mut sock, 1 << 20).expect("frame"))
                .expect("decode");
        assert_eq!(id, 99 + attempt);
        latest.push(resp.topics[0].partitions[0].offset);
        if latest.last() == Some(&10) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(latest.last(), Some(&10), "the high watermark never reached the log end: {latest:?}");
    assert!(latest.windows(2).all(|w| w[0] <= w[1]), "the high watermark went back: {latest:?}");
}
