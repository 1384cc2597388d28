//! The broker in-process on real shards, spoken to with kafka-protocol's client encoders over a
//! plain socket: the newest versions (topic ids in Fetch v13+, flexible Produce and Metadata)
//! that the Python clients in tests/interop do not use.

use std::time::Duration;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

mod common;
use common::{create_topic, name, produce_to, start, start_with, Client};

#[global_allocator]
static ALLOCATOR: net::alloc::NoReserveAlloc = net::alloc::NoReserveAlloc;

#[test]
fn newest_versions_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (set, addr) = start(dir.path());
    let mut c = Client::connect(addr);

    let versions = c.call(4, &ApiVersionsRequest::default());
    assert_eq!(versions.error_code, 0);
    let produce = versions.api_keys.iter().find(|k| k.api_key == ApiKey::Produce as i16).expect("produce");
    assert_eq!(produce.min_version, 0, "Produce is advertised from v0 (librdkafka)");

    let create = c.call(7, &create_topic("orders", 2));
    assert_eq!(create.topics[0].error_code, 0);
    let topic_id = create.topics[0].topic_id;

    let md = c.call(
        12,
        &MetadataRequest::default()
            .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(name("orders")))])),
    );
    assert_eq!(md.topics[0].topic_id, topic_id);
    assert_eq!(md.topics[0].partitions.len(), 2);
    assert_eq!(md.brokers[0].port, i32::from(addr.port()));

    let now = engine::now_ms();
    let batch = engine::records::simple_batch(5, 10, now);
    let produced = c.call(11, &produce_to("orders", -1, 0..2, &batch));
    for p in &produced.responses[0].partition_responses {
        assert_eq!((p.error_code, p.base_offset), (0, 0));
    }

    // Fetch v17: topics by id only.
    let fetch = |c: &mut Client, offset: i64| {
        c.call(
            17,
            &FetchRequest::default().with_max_wait_ms(100).with_min_bytes(1).with_max_bytes(1 << 20).with_topics(vec![
                fetch_request::FetchTopic::default().with_topic_id(topic_id).with_partitions(vec![
                    fetch_request::FetchPartition::default()
                        .with_partition(1)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20),
                ]),
            ]),
        )
    };
    let fetched = fetch(&mut c, 0);
    let p = &fetched.responses[0].partitions[0];
    assert_eq!(fetched.responses[0].topic_id, topic_id);
    assert_eq!((p.error_code, p.high_watermark), (0, 5));
    let records = p.records.clone().expect("records");
    // Stored exactly as sent but for the base offset and partition leader epoch (not in the CRC).
    assert_eq!(&records[16..], &batch[16..]);
    assert_eq!(fetch(&mut c, 6).responses[0].partitions[0].error_code, 1, "OFFSET_OUT_OF_RANGE");

    let offsets = c.call(
        9,
        &ListOffsetsRequest::default().with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
            .with_name(name("orders"))
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-1),
                list_offsets_request::ListOffsetsPartition::default().with_partition_index(1).with_timestamp(now),
                list_offsets_request::ListOffsetsPartition::default().with_partition_index(1).with_timestamp(-3),
            ])]),
    );
    let o: Vec<i64> = offsets.topics[0].partitions.iter().map(|p| p.offset).collect();
    assert_eq!(o, vec![5, 0, 0]);

    let epochs = c.call(
        4,
        &OffsetForLeaderEpochRequest::default().with_topics(vec![
            offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                .with_topic(name("orders"))
                .with_partitions(vec![offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                    .with_partition(0)
                    .with_current_leader_epoch(0)
                    .with_leader_epoch(0)]),
        ]),
    );
    let e = &epochs.topics[0].partitions[0];
    assert_eq!((e.error_code, e.leader_epoch, e.end_offset), (0, 0, 5));

    let described = c.call(
        0,
        &DescribeTopicPartitionsRequest::default()
            .with_topics(vec![describe_topic_partitions_request::TopicRequest::default().with_name(name("orders"))])
            .with_response_partition_limit(1),
    );
    assert_eq!(described.topics[0].partitions.len(), 1);
    assert_eq!(described.next_cursor.as_ref().map(|c| c.partition_index), Some(1));

    let dirs = c.call(4, &DescribeLogDirsRequest::default().with_topics(None));
    let r = &dirs.results[0];
    assert!(r.total_bytes > 0 && r.usable_bytes > 0 && r.usable_bytes <= r.total_bytes);
    let sizes: Vec<i64> = r.topics[0].partitions.iter().map(|p| p.partition_size).collect();
    assert_eq!(sizes.len(), 2);

    let deleted = c.call(
        6,
        &DeleteTopicsRequest::default()
            .with_topics(vec![delete_topics_request::DeleteTopicState::default().with_topic_id(topic_id)]),
    );
    assert_eq!(deleted.responses[0].error_code, 0);
    assert_eq!(fetch(&mut c, 0).responses[0].partitions[0].error_code, 100, "UNKNOWN_TOPIC_ID");
    drop(c);
    set.shutdown();
}

/// Fetches that a full door does not admit as long polls still wait out their max_wait (on
/// their own timer) and answer empty, without polling the owner again and again meanwhile.
#[test]
fn fetches_past_the_long_poll_limit_wait_out_their_time_without_spinning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let door = replication::DoorLimits { long_polls_max: 1, ..replication::DoorLimits::default() };
    let (set, addr) = start_with(dir.path(), door);
    let mut c = Client::connect(addr);
    let create = c.call(7, &create_topic("quiet", 1));
    assert_eq!(create.topics[0].error_code, 0);
    let router = set.router();
    let owner = router.owner(&engine::shard::TopicPartition::new("quiet", 0));
    let stats = || router.call_blocking(owner, |reply| replication::ShardRequest::DoorStats { reply }).expect("stats");
    let before = stats();
    let fetchers: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                let req = FetchRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_max_wait_ms(800)
                    .with_min_bytes(1)
                    .with_max_bytes(1 << 20)
                    .with_session_id(0)
                    .with_session_epoch(-1)
                    .with_topics(vec![fetch_request::FetchTopic::default().with_topic(name("quiet")).with_partitions(
                        vec![fetch_request::FetchPartition::default()
                            .with_partition(0)
                            .with_current_leader_epoch(-1)
                            .with_fetch_offset(0)
                            .with_log_start_offset(-1)
                            .with_partition_max_bytes(1 << 20)],
                    )]);
                let t = std::time::Instant::now();
                let r = c.call(12, &req);
                let elapsed = t.elapsed();
                let p = &r.responses[0].partitions[0];
                assert_eq!((r.error_code, p.error_code, p.high_watermark), (0, 0, 0));
                assert!(p.records.as_ref().is_none_or(|b| b.is_empty()));
                elapsed
            })
        })
        .collect();
    for f in fetchers {
        let elapsed = f.join().expect("fetcher");
        assert!(elapsed >= Duration::from_millis(700), "a fetch answered after {elapsed:?}, not its max_wait");
    }
    let after = stats();
    assert!(after.long_polls_cut_short - before.long_polls_cut_short >= 1, "{before:?} {after:?}");
    // Each fetch reads at most twice (before waiting, after); a spin would read thousands of times.
    assert!(after.data_admitted - before.data_admitted <= 16, "{before:?} {after:?}");
    drop(c);
    set.shutdown();
}

/// acks=1 records become readable only once synced (the high watermark covers synced offsets
/// under the default durability); the committer syncs them without anyone asking, and the sync
/// wakes a long poll that waits for them.
#[test]
fn acks_1_records_reach_a_waiting_long_poll_once_synced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (set, addr) = start(dir.path());
    let mut c = Client::connect(addr);
    let create = c.call(7, &create_topic("acks1", 1));
    assert_eq!(create.topics[0].error_code, 0);
    let fetcher = std::thread::spawn(move || {
        let mut c = Client::connect(addr);
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(15_000)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(vec![fetch_request::FetchTopic::default().with_topic(name("acks1")).with_partitions(vec![
                fetch_request::FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20),
            ])]);
        let t = std::time::Instant::now();
        (c.call(11, &req), t.elapsed())
    });
    // Let the fetch start waiting first.
    std::thread::sleep(Duration::from_millis(300));
    let batch = engine::records::simple_batch(3, 64, engine::now_ms());
    let produced = c.call(9, &produce_to("acks1", 1, [0], &batch));
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
    let (fetched, waited) = fetcher.join().expect("fetcher");
    assert!(waited < Duration::from_secs(10), "the sync did not wake the long poll: it waited {waited:?}");
    let p = &fetched.responses[0].partitions[0];
    assert_eq!((p.error_code, p.high_watermark), (0, 3));
    let records = p.records.clone().expect("records");
    assert_eq!(&records[16..], &batch[16..], "the long poll got the batch, not an empty answer at max_wait");
    let offsets = c.call(
        7,
        &ListOffsetsRequest::default().with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
            .with_name(name("acks1"))
            .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)])]),
    );
    assert_eq!(offsets.topics[0].partitions[0].offset, 3);
    drop(c);
    set.shutdown();
}

/// Topic changes reach every shard's view before the admin request is answered: a config
/// change takes effect on every connection (whichever shard accepted it) at once, without a
/// restart, and so does a new topic.
#[test]
fn topic_and_config_changes_reach_every_shard_before_the_answer() {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let dir = tempfile::tempdir().expect("tempdir");
    let (set, addr) = start(dir.path());
    let mut admin = Client::connect(addr);
    // Connections land on shards by SO_REUSEPORT's hash of their ports: 16 of them reach both
    // of the 2 shards but with odds of 2^-15.
    let mut conns: Vec<Client> = (0..16).map(|_| Client::connect(addr)).collect();
    let create = admin.call(7, &create_topic("limits", 2));
    assert_eq!(create.topics[0].error_code, 0);
    let batch = engine::records::simple_batch(1, 2000, engine::now_ms());
    let produce = |c: &mut Client| {
        let r = c.call(9, &produce_to("limits", -1, [1], &batch));
        r.responses[0].partition_responses[0].error_code
    };
    let alter = |c: &mut Client, value: Option<&str>| {
        let op = if value.is_some() { 0 } else { 1 }; // SET, DELETE
        let r = c.call(
            1,
            &IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("limits"))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(StrBytes::from_static_str("max.message.bytes"))
                    .with_config_operation(op)
                    .with_value(value.map(|v| StrBytes::from_string(v.to_string())))])]),
        );
        assert_eq!(r.responses[0].error_code, 0);
    };
    let codes = |conns: &mut Vec<Client>| conns.iter_mut().map(&produce).collect::<Vec<i16>>();
    assert_eq!(codes(&mut conns), vec![0; 16], "a topic created on one shard is known on all");
    alter(&mut admin, Some("1000"));
    assert_eq!(codes(&mut conns), vec![10; 16], "MESSAGE_TOO_LARGE on every shard, no restart");
    alter(&mut admin, None);
    assert_eq!(codes(&mut conns), vec![0; 16], "the broker default again");
    let deleted = admin.call(4, &DeleteTopicsRequest::default().with_topic_names(vec![name("limits")]));
    assert_eq!(deleted.responses[0].error_code, 0);
    let md = conns[15].call(
        9,
        &MetadataRequest::default()
            .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(name("limits")))]))
            .with_allow_auto_topic_creation(false),
    );
    assert_eq!(md.topics[0].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION after the delete");
    drop(conns);
    set.shutdown();
}

/// `segment.bytes` altered on a topic applies to its open logs at once (no restart): the next
/// appends roll at the new size.
#[test]
fn segment_bytes_change_applies_to_open_logs() {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let dir = tempfile::tempdir().expect("tempdir");
    let (set, addr) = start(dir.path());
    let mut c = Client::connect(addr);
    let create = c.call(7, &create_topic("rolling", 1));
    assert_eq!(create.topics[0].error_code, 0);
    let produce = |c: &mut Client, n: usize| {
        for _ in 0..n {
            let batch = engine::records::simple_batch(1, 3000, engine::now_ms());
            let r = c.call(9, &produce_to("rolling", -1, [0], &batch));
            assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
        }
    };
    let segments = || {
        let mut n = 0;
        for e in std::fs::read_dir(dir.path().join("rolling-0")).expect("partition dir") {
            n += usize::from(e.expect("entry").file_name().to_string_lossy().ends_with(".log"));
        }
        n
    };
    produce(&mut c, 3);
    assert_eq!(segments(), 1, "the default segment.bytes holds them all");
    let r = c.call(
        1,
        &IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("rolling"))
            .with_configs(vec![AlterableConfig::default()
                .with_name(StrBytes::from_static_str("segment.bytes"))
                .with_config_operation(0)
                .with_value(Some(StrBytes::from_static_str("4096")))])]),
    );
    assert_eq!(r.responses[0].error_code, 0);
    produce(&mut c, 4);
    // Each ~3 KB batch after the change starts a new segment once the active one holds one.
    assert_eq!(segments(), 5, "segment.bytes=4096 rolls the open log");
    set.shutdown();
}
