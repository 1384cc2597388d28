//! Wire codec micro-benchmarks: Produce and Fetch requests and responses through the
//! `kafka-protocol` crate, decoded by the broker's own entry point (`net::handlers::decode_request`,
//! what every connection calls on each frame) and encoded as the handlers do.
//!
//! Shapes: 6 partitions per request (the load generator's default topic), Produce v9 (the newest
//! librdkafka 2.x sends) with one 16 KiB batch per partition, Fetch v12 (topic names, the last
//! version before topic ids) answered with 64 KiB of batches per partition. Reference in the same
//! run: `memcpy` of the request's or response's record bytes.
//!
//! `cargo bench -p odradek-benches --bench protocol -- --quick`

use std::hint::black_box;

use bytes::{BufMut, Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use engine::records::{BatchBuilder, Record};
use engine::Compression;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, ProduceRequest, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use net::handlers::{decode_request, Decoded};

const PARTITIONS: i32 = 6;
const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 12;

fn batch_bytes(records: usize) -> Bytes {
    let mut b = BatchBuilder::new(Compression::None, 1_700_000_000_000);
    for i in 0..records {
        b.push(Record::new(None, Some(vec![i as u8; 1024])).with_timestamp(1_700_000_000_000));
    }
    b.build().freeze()
}

fn topic() -> TopicName {
    TopicName(StrBytes::from_static_str("bench-topic"))
}

/// A whole request frame body (no size prefix): header, then the message.
fn encode_request<M: Encodable>(key: ApiKey, version: i16, message: &M, out: &mut BytesMut) {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(42)
        .with_client_id(Some(StrBytes::from_static_str("odradek-bench")));
    header.encode(out, key.request_header_version(version)).expect("request header encodes");
    message.encode(out, version).expect("request encodes");
}

fn produce_request(records: &Bytes) -> ProduceRequest {
    let partitions =
        (0..PARTITIONS).map(|p| PartitionProduceData::default().with_index(p).with_records(Some(records.clone())));
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default().with_name(topic()).with_partition_data(partitions.collect())])
}

fn fetch_request() -> FetchRequest {
    let partitions = (0..PARTITIONS).map(|p| {
        FetchPartition::default().with_partition(p).with_fetch_offset(1_000_000).with_partition_max_bytes(1 << 20)
    });
    FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_topics(vec![FetchTopic::default().with_topic(topic()).with_partitions(partitions.collect())])
}

fn fetch_response(records: &Bytes) -> FetchResponse {
    let partitions = (0..PARTITIONS).map(|p| {
        PartitionData::default()
            .with_partition_index(p)
            .with_high_watermark(2_000_000)
            .with_last_stable_offset(2_000_000)
            .with_records(Some(records.clone()))
    });
    FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
        .with_topic(topic())
        .with_partitions(partitions.collect())])
}

fn produce(c: &mut Criterion) {
    let records = batch_bytes(16);
    let request = produce_request(&records);
    let mut frame = BytesMut::new();
    encode_request(ApiKey::Produce, PRODUCE_VERSION, &request, &mut frame);
    let frame = frame.freeze();
    let payload = records.len() * PARTITIONS as usize;

    let mut g = c.benchmark_group("produce_v9_6x16KiB");
    g.throughput(Throughput::Bytes(payload as u64));
    let mut dst = vec![0u8; payload];
    g.bench_function("reference_memcpy_records", |b| {
        b.iter(|| {
            for chunk in dst.chunks_mut(records.len()) {
                chunk.copy_from_slice(black_box(&records));
            }
            black_box(&dst);
        })
    });
    let mut out = BytesMut::with_capacity(frame.len() + 64);
    g.bench_function("encode_request", |b| {
        b.iter(|| {
            out.clear();
            encode_request(ApiKey::Produce, PRODUCE_VERSION, black_box(&request), &mut out);
            out.len()
        })
    });
    g.bench_function("broker_decode_request", |b| {
        b.iter(|| match decode_request(black_box(frame.clone())) {
            Ok(Decoded::Request { version, .. }) => version,
            _ => panic!("produce request did not decode"),
        })
    });
    g.finish();
}

fn fetch(c: &mut Criterion) {
    let request = fetch_request();
    let mut frame = BytesMut::new();
    encode_request(ApiKey::Fetch, FETCH_VERSION, &request, &mut frame);
    let frame = frame.freeze();
    let mut g = c.benchmark_group("fetch_v12_request_6_partitions");
    g.bench_function("broker_decode_request", |b| {
        b.iter(|| match decode_request(black_box(frame.clone())) {
            Ok(Decoded::Request { version, .. }) => version,
            _ => panic!("fetch request did not decode"),
        })
    });
    g.finish();

    // The response: 64 KiB of batches per partition (4 x 16 KiB batches), referenced, not copied,
    // until the encoder writes them into the response buffer.
    let one = batch_bytes(16);
    let mut records = BytesMut::new();
    for _ in 0..4 {
        records.put_slice(&one);
    }
    let records = records.freeze();
    let response = fetch_response(&records);
    let payload = records.len() * PARTITIONS as usize;
    let header_version = ApiKey::Fetch.response_header_version(FETCH_VERSION);
    let mut encoded = BytesMut::new();
    ResponseHeader::default().with_correlation_id(42).encode(&mut encoded, header_version).expect("header encodes");
    response.encode(&mut encoded, FETCH_VERSION).expect("response encodes");
    let encoded = encoded.freeze();

    let mut g = c.benchmark_group("fetch_v12_response_6x64KiB");
    g.throughput(Throughput::Bytes(payload as u64));
    let mut dst = vec![0u8; payload];
    g.bench_function("reference_memcpy_records", |b| {
        b.iter(|| {
            for chunk in dst.chunks_mut(records.len()) {
                chunk.copy_from_slice(black_box(&records));
            }
            black_box(&dst);
        })
    });
    let mut out = BytesMut::with_capacity(encoded.len() + 64);
    g.bench_function("broker_encode_response", |b| {
        b.iter(|| {
            out.clear();
            out.put_i32(0);
            ResponseHeader::default().with_correlation_id(42).encode(&mut out, header_version).expect("header encodes");
            black_box(&response).encode(&mut out, FETCH_VERSION).expect("response encodes");
            out.len()
        })
    });
    g.bench_function("client_decode_response", |b| {
        b.iter(|| {
            let mut buf = black_box(encoded.clone());
            let header = ResponseHeader::decode(&mut buf, header_version).expect("header decodes");
            let response = FetchResponse::decode(&mut buf, FETCH_VERSION).expect("response decodes");
            (header.correlation_id, response.responses.len())
        })
    });
    g.finish();
}

criterion_group!(benches, produce, fetch);
criterion_main!(benches);
