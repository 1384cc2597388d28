//! What the broker's socket tests share (each uses some of it): a broker in-process on real
//! shards, a blocking client speaking kafka-protocol's encoders, and the requests they build.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use engine::shard::ShardSetConfig;
use kafka_protocol::messages::{
    create_topics_request, produce_request, CreateTopicsRequest, ProduceRequest, RequestHeader, ResponseHeader,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use net::{Broker, BrokerConfig};
use replication::{Node, NodeConfig};

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

pub struct Client {
    stream: TcpStream,
    correlation_id: i32,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        Self { stream, correlation_id: 0 }
    }

    pub fn call<R: Request>(&mut self, version: i16, req: &R) -> R::Response {
        self.correlation_id += 1;
        let buf = encode(version, self.correlation_id, "broker-test", req, true);
        self.stream.write_all(&buf).expect("send");
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).expect("response size");
        let mut body = vec![0u8; usize::try_from(i32::from_be_bytes(size)).expect("size")];
        self.stream.read_exact(&mut body).expect("response body");
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, R::Response::header_version(version)).expect("response header");
        assert_eq!(header.correlation_id, self.correlation_id);
        let resp = R::Response::decode(&mut body, version).expect("response");
        assert!(!body.has_remaining(), "trailing bytes in the response");
        resp
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

pub fn start(dir: &std::path::Path) -> (Node<net::server::Call>, SocketAddr) {
    start_with(dir, replication::DoorLimits::default())
}

pub fn start_with(dir: &std::path::Path, door: replication::DoorLimits) -> (Node<net::server::Call>, SocketAddr) {
    start_configured(dir, door, |_| {})
}

/// A broker whose settings `edit` changes from the defaults.
pub fn start_configured(
    dir: &std::path::Path,
    door: replication::DoorLimits,
    edit: impl FnOnce(&mut BrokerConfig),
) -> (Node<net::server::Call>, SocketAddr) {
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut config = BrokerConfig {
        listen: addr,
        advertised_port: i32::from(port),
        data_dir: dir.to_path_buf(),
        ..BrokerConfig::default()
    };
    edit(&mut config);
    let shards = ShardSetConfig { shard_count: 2, pin: false, io_memory_bytes: 8 << 20, ..ShardSetConfig::new(dir) };
    let broker = Broker::new(config).expect("broker");
    let set = Node::start(NodeConfig { door, ..NodeConfig::new(shards) }, Some(broker.service())).expect("shards");
    for _ in 0..200 {
        // A connection to itself (the kernel chose the free port as the source) is no listener.
        if TcpStream::connect(addr).is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok()) {
            return (set, addr);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("broker did not listen");
}
