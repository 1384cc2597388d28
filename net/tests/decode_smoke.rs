//! Request decoding on random and mutated frames, in every CI run: it returns (a request or an
//! error), never panics, never aborts on an absurd element count. These call the decoder
//! without the broker's panic guard (`decode_request_unguarded`), so a decoder panic fails
//! them; one test checks that the guarded path gives the same answers. The fuzz target (`net/fuzz`) runs the same
//! function for longer.

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiVersionsRequest, CreateTopicsRequest, FetchRequest, MetadataRequest, ProduceRequest,
};
use kafka_protocol::protocol::Request;
use net::handlers::{decode_request, decode_request_unguarded as decode, Decoded, RequestError};
use proptest::prelude::*;

mod common;
use common::name;

#[global_allocator]
static ALLOCATOR: net::alloc::NoReserveAlloc = net::alloc::NoReserveAlloc;

fn encode<R: Request>(version: i16, req: &R) -> Bytes {
    common::encode(version, 7, "smoke", req, false).freeze()
}

fn valid_requests() -> Vec<Bytes> {
    let topic = kafka_protocol::messages::metadata_request::MetadataRequestTopic::default().with_name(Some(name("t")));
    let produce_part = kafka_protocol::messages::produce_request::PartitionProduceData::default()
        .with_index(0)
        .with_records(Some(Bytes::from_static(&[0u8; 70])));
    let produce_topic = kafka_protocol::messages::produce_request::TopicProduceData::default()
        .with_name(name("t"))
        .with_partition_data(vec![produce_part]);
    let fetch_topic = kafka_protocol::messages::fetch_request::FetchTopic::default()
        .with_topic(name("t"))
        .with_partitions(vec![kafka_protocol::messages::fetch_request::FetchPartition::default()]);
    let create = kafka_protocol::messages::create_topics_request::CreatableTopic::default()
        .with_name(name("t"))
        .with_num_partitions(3);
    vec![
        encode(3, &ApiVersionsRequest::default()),
        encode(0, &ApiVersionsRequest::default()),
        encode(1, &MetadataRequest::default().with_topics(Some(vec![topic.clone()]))),
        encode(12, &MetadataRequest::default().with_topics(Some(vec![topic]))),
        encode(3, &ProduceRequest::default().with_acks(1).with_topic_data(vec![produce_topic.clone()])),
        encode(9, &ProduceRequest::default().with_acks(-1).with_topic_data(vec![produce_topic])),
        encode(4, &FetchRequest::default().with_topics(vec![fetch_topic.clone()])),
        encode(12, &FetchRequest::default().with_topics(vec![fetch_topic])),
        encode(7, &CreateTopicsRequest::default().with_topics(vec![create])),
    ]
}

#[test]
fn valid_requests_decode() {
    for r in valid_requests() {
        match decode(r) {
            Ok(Decoded::Request { header, .. }) => assert_eq!(header.correlation_id, 7),
            Ok(Decoded::ApiVersionsUnsupported { .. }) => panic!("supported version refused"),
            Err(e) => panic!("valid request refused: {e}"),
        }
    }
}

#[test]
fn absurd_counts_are_refused_without_aborting() {
    for r in valid_requests() {
        for at in 8..r.len().saturating_sub(4) {
            let mut m = r.to_vec();
            m[at..at + 4].copy_from_slice(&0x7fff_fff0i32.to_be_bytes());
            let _ = decode(Bytes::from(m.clone()));
            // A varint of 2^32 - 1 (compact arrays and strings in flexible versions).
            m[at..at + 4].copy_from_slice(&[0xff, 0xff, 0xff, 0xff]);
            m.insert(at + 4, 0x0f);
            let _ = decode(Bytes::from(m));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(Bytes::from(bytes));
    }

    #[test]
    fn mutated_requests_never_panic(
        which in 0usize..9,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let valid = valid_requests();
        let mut m = valid[which % valid.len()].to_vec();
        for (at, byte) in flips {
            let i = at % m.len();
            m[i] = byte;
        }
        m.truncate(cut % (m.len() + 1));
        let _ = decode(Bytes::from(m));
    }
}

/// The guard the broker runs decoders under turns a panic into a refused request. The guarded
/// and unguarded paths agree on every valid request.
#[test]
fn guarded_and_unguarded_agree() {
    for r in valid_requests() {
        let a = decode_request(r.clone()).map(|d| matches!(d, Decoded::Request { .. }));
        let b = decode(r).map(|d| matches!(d, Decoded::Request { .. }));
        assert!(matches!((a, b), (Ok(true), Ok(true))));
    }
    match decode_request(Bytes::from_static(&[0, 3])) {
        Err(RequestError::Malformed { key: -1, .. }) => {}
        other => panic!("a short header must be malformed: {:?}", other.err()),
    }
}
