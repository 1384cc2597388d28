//! Kafka requests the broker's tests build, shared by the test files (each uses some of them).

#![allow(dead_code)]

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    create_topics_request, produce_request, CreateTopicsRequest, ProduceRequest, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Encodable, Request, StrBytes};

pub fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// A request's header and body as a client writes them, after a 4-byte size placeholder when
/// `sized` (a frame for a socket); without it, what the broker's decoder takes.
pub fn encode<R: Request>(
    version: i16,
    correlation_id: i32,
    client_id: &'static str,
    req: &R,
    sized: bool,
) -> BytesMut {
    let mut buf = BytesMut::new();
    if sized {
        buf.put_i32(0);
    }
    RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(client_id)))
        .encode(&mut buf, R::header_version(version))
        .expect("header");
    req.encode(&mut buf, version).expect("body");
    if sized {
        let size = i32::try_from(buf.len() - 4).expect("size");
        buf[..4].copy_from_slice(&size.to_be_bytes());
    }
    buf
}

/// CreateTopics for one topic of `partitions` partitions (replication factor 1).
pub fn create_topic(topic: &str, partitions: i32) -> CreateTopicsRequest {
    CreateTopicsRequest::default().with_topics(vec![create_topics_request::CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(1)])
}

/// Produce of `batch` to each of `partitions` of `topic`, with `acks` and a 5 s timeout.
pub fn produce_to(topic: &str, acks: i16, partitions: impl IntoIterator<Item = i32>, batch: &Bytes) -> ProduceRequest {
    let parts = partitions
        .into_iter()
        .map(|p| produce_request::PartitionProduceData::default().with_index(p).with_records(Some(batch.clone())))
        .collect();
    ProduceRequest::default().with_acks(acks).with_timeout_ms(5000).with_topic_data(vec![
        produce_request::TopicProduceData::default().with_name(name(topic)).with_partition_data(parts),
    ])
}
