//! Topic configs on a running broker: what each changes on the data path, on open logs and
//! without a restart (durability from `flush.*`, recompression from `compression.type`), and
//! Kafka's answers on the edges (a Produce never creates a topic; DescribeConfigs' sources).

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

mod common;
use common::{name, produce_to, start, start_configured, Client};

#[global_allocator]
static ALLOCATOR: net::alloc::NoReserveAlloc = net::alloc::NoReserveAlloc;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn create_with(c: &mut Client, topic: &str, configs: &[(&str, &str)]) -> create_topics_response::CreatableTopicResult {
    let configs = configs
        .iter()
        .map(|(k, v)| create_topics_request::CreatableTopicConfig::default().with_name(s(k)).with_value(Some(s(v))))
        .collect();
    let req = CreateTopicsRequest::default().with_topics(vec![create_topics_request::CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(1)
        .with_replication_factor(1)
        .with_configs(configs)]);
    c.call(7, &req).topics.remove(0)
}

/// IncrementalAlterConfigs SET of `pairs` on `topic`: the error code.
fn set_configs(c: &mut Client, topic: &str, pairs: &[(&str, &str)]) -> (i16, Option<String>) {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let configs = pairs
        .iter()
        .map(|(k, v)| AlterableConfig::default().with_name(s(k)).with_config_operation(0).with_value(Some(s(v))))
        .collect();
    let r = c.call(
        1,
        &IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(topic))
            .with_configs(configs)]),
    );
    (r.responses[0].error_code, r.responses[0].error_message.as_ref().map(|m| m.to_string()))
}

/// Fetch v12 of partition 0 from `offset`: (error, high watermark, records).
fn fetch(c: &mut Client, topic: &str, offset: i64) -> (i16, i64, Option<bytes::Bytes>) {
    let req = FetchRequest::default().with_max_wait_ms(0).with_min_bytes(0).with_max_bytes(1 << 20).with_topics(vec![
        fetch_request::FetchTopic::default().with_topic(name(topic)).with_partitions(vec![
            fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20),
        ]),
    ]);
    let r = c.call(12, &req);
    let p = &r.responses[0].partitions[0];
    (p.error_code, p.high_watermark, p.records.clone())
}

fn produce(c: &mut Client, topic: &str, acks: i16, batch: &bytes::Bytes) -> (i16, i64) {
    let r = c.call(9, &produce_to(topic, acks, [0], batch));
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// The high watermark once the broker had `ms` to move it.
fn hw_after(c: &mut Client, topic: &str, ms: u64) -> i64 {
    std::thread::sleep(std::time::Duration::from_millis(ms));
    fetch(c, topic, 0).1
}

/// `flush.ms` / `flush.messages` change the open log's durability policy, seen through the high
/// watermark: under a syncing policy consumers see only synced records.
#[test]
fn flush_configs_switch_an_open_logs_durability() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (set, addr) = start(dir.path());
    let mut c = Client::connect(addr);
    assert_eq!(create_with(&mut c, "flushy", &[]).error_code, 0);
    let batch = engine::records::simple_batch(2, 10, engine::now_ms());
    // Default, Always: an acks=1 write is synced by the committer's turn and readable.
    assert_eq!(produce(&mut c, "flushy", 1, &batch), (0, 0));
    assert_eq!(hw_after(&mut c, "flushy", 200), 2);
    // flush.ms=1h: the interval policy acknowledges unsynced writes, which stay unreadable.
    assert_eq!(set_configs(&mut c, "flushy", &[("flush.ms", "3600000")]).0, 0);
    assert_eq!(produce(&mut c, "flushy", -1, &batch), (0, 2));
    assert_eq!(hw_after(&mut c, "flushy", 300), 2, "not synced, not readable");
    // flush.messages=1: Always again; the next write syncs everything before it.
    assert_eq!(set_configs(&mut c, "flushy", &[("flush.messages", "1")]).0, 0);
    assert_eq!(produce(&mut c, "flushy", -1, &batch), (0, 4));
    assert_eq!(hw_after(&mut c, "flushy", 0), 6);
    // Both Long.MAX: Never. The log end is readable at once.
    let max = i64::MAX.to_string();
    assert_eq!(set_configs(&mut c, "flushy", &[("flush.messages", &max), ("flush.ms", &max)]).0, 0);
    assert_eq!(produce(&mut c, "flushy", 1, &batch), (0, 6));
    assert_eq!(hw_after(&mut c, "flushy", 100), 8);
    // flush.messages=5: records are readable once written (the count only decides when the
    // log syncs; the engine's tests count the syncs).
    assert_eq!(set_configs(&mut c, "flushy", &[("flush.messages", "5")]).0, 0);
    assert_eq!(produce(&mut c, "flushy", -1, &batch), (0, 8));
    assert_eq!(hw_after(&mut c, "flushy", 0), 10);
    // A count below 1 is refused, naming the config.
    let (code, msg) = set_configs(&mut c, "flushy", &[("flush.messages", "0")]);
    assert_eq!(code, 40);
    assert!(msg.unwrap_or_default().contains("flush.messages"));
    drop(c);
    set.shutdown();
}

/// A broker started with `log.flush.interval.ms` relaxes every topic that does not override
/// it, and DescribeConfigs says the value is the broker's start-up setting.
#[test]
fn the_broker_flush_interval_is_a_static_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (set, addr) = start_configured(dir.path(), replication::DoorLimits::default(), |b| {
        b.flush_interval_ms = Some(3_600_000);
        b.static_props.insert("log.flush.interval.ms".into(), "3600000".into());
    });
    let mut c = Client::connect(addr);
    assert_eq!(create_with(&mut c, "relaxed", &[]).error_code, 0);
    assert_eq!(create_with(&mut c, "strict", &[("flush.messages", "1")]).error_code, 0);
    let batch = engine::records::simple_batch(1, 10, engine::now_ms());
    assert_eq!(produce(&mut c, "relaxed", -1, &batch), (0, 0));
    assert_eq!(produce(&mut c, "strict", -1, &batch), (0, 0));
    assert_eq!(hw_after(&mut c, "relaxed", 200), 0, "interval sync an hour away");
    assert_eq!(hw_after(&mut c, "strict", 0), 1);
    let described = c.call(
        4,
        &DescribeConfigsRequest::default().with_include_synonyms(true).with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("relaxed"))
                .with_configuration_keys(Some(vec![s("flush.ms")])),
        ]),
    );
    let e = &described.results[0].configs[0];
    assert_eq!((e.value.as_deref(), e.config_source), (Some("3600000"), 4), "STATIC_BROKER_CONFIG");
    let synonyms: Vec<(String, i8)> = e.synonyms.iter().map(|y| (y.name.to_string(), y.source)).collect();
    assert_eq!(
        synonyms,
        vec![("log.flush.interval.ms".to_string(), 4), ("log.flush.scheduler.interval.ms".to_string(), 5)]
    );
    drop(c);
    set.shutdown();
}

/// `compression.type=lz4`: a gzip batch is stored (and served) as lz4 with the same records,
/// offsets and producer fields.
#[test]
fn batches_are_stored_in_the_topics_codec() {
    use engine::batch::{BatchView, Compression};
    use engine::records::{decode_records, BatchBuilder, Record};
    let dir = tempfile::tempdir().expect("tempdir");
    let (set, addr) = start(dir.path());
    let mut c = Client::connect(addr);
    assert_eq!(create_with(&mut c, "squeezed", &[("compression.type", "lz4")]).error_code, 0);
    let now = engine::now_ms();
    let mut b = BatchBuilder::new(Compression::Gzip, now);
    for i in 0..10 {
        b.push(Record::new(Some(format!("k{i}").into_bytes()), Some(vec![b'x'; 200])).with_timestamp(now + i));
    }
    let sent = b.build().freeze();
    let want = decode_records(&BatchView::parse(&sent, usize::MAX).expect("batch")).expect("records");
    assert_eq!(produce(&mut c, "squeezed", -1, &sent), (0, 0));
    let (code, hw, records) = fetch(&mut c, "squeezed", 0);
    assert_eq!((code, hw), (0, 10));
    let records = records.expect("records");
    let stored = BatchView::parse(&records, usize::MAX).expect("stored batch is valid");
    assert_eq!(stored.compression(), Compression::Lz4);
    assert_eq!((stored.base_offset(), stored.last_offset(), stored.max_timestamp()), (0, 9, now + 9));
    assert_eq!(decode_records(&stored).expect("records"), want);
    // uncompressed: stored without a codec.
    assert_eq!(set_configs(&mut c, "squeezed", &[("compression.type", "uncompressed")]).0, 0);
    assert_eq!(produce(&mut c, "squeezed", -1, &sent), (0, 10));
    let records = fetch(&mut c, "squeezed", 10).2.expect("records");
    assert_eq!(BatchView::parse(&records, usize::MAX).expect("batch").compression(), Compression::None);
    drop(c);
    set.shutdown();
}

/// Produce to a topic that does not exist: UNKNOWN_TOPIC_OR_PARTITION, and it still does not
/// exist (only Metadata auto-creates, as in Kafka), though auto-creation is on.
#[test]
fn produce_never_creates_a_topic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (set, addr) = start(dir.path());
    let mut c = Client::connect(addr);
    let batch = engine::records::simple_batch(1, 10, engine::now_ms());
    assert_eq!(produce(&mut c, "nobody", -1, &batch).0, 3);
    assert_eq!(produce(&mut c, "nobody", 1, &batch).0, 3);
    let md = c.call(
        9,
        &MetadataRequest::default()
            .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(name("nobody")))]))
            .with_allow_auto_topic_creation(false),
    );
    assert_eq!(md.topics[0].error_code, 3, "not created");
    drop(c);
    set.shutdown();
}

/// Invalid values are refused by CreateTopics and IncrementalAlterConfigs with INVALID_CONFIG
/// and Kafka's message, and the cross-config check sees the topic's existing overrides.
#[test]
fn invalid_configs_are_refused_at_create_and_alter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (set, addr) = start(dir.path());
    let mut c = Client::connect(addr);
    let r = create_with(&mut c, "dirty", &[("min.cleanable.dirty.ratio", "7")]);
    assert_eq!(r.error_code, 40);
    assert_eq!(
        r.error_message.as_deref(),
        Some("Invalid value 7.0 for configuration min.cleanable.dirty.ratio: Value must be no more than 1")
    );
    assert_eq!(create_with(&mut c, "lags", &[("min.compaction.lag.ms", "10")]).error_code, 0);
    let (code, msg) = set_configs(&mut c, "lags", &[("max.compaction.lag.ms", "5")]);
    assert_eq!(code, 40);
    assert_eq!(
        msg.as_deref(),
        Some("conflict topic config setting min.compaction.lag.ms (10) > max.compaction.lag.ms (5)")
    );
    assert_eq!(set_configs(&mut c, "lags", &[("segment.bytes", "13")]).0, 40);
    assert_eq!(set_configs(&mut c, "lags", &[("remote.storage.enable", "true")]).0, 40);
    assert_eq!(set_configs(&mut c, "lags", &[("segment.bytes", "14")]).0, 0, "the boundary is valid");
    drop(c);
    set.shutdown();
}
