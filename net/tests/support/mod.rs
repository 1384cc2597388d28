//! What the socket tests share: a broker in-process on real shards, and a blocking client that
//! speaks kafka-protocol's encoders.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use engine::shard::ShardSetConfig;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use net::{Broker, BrokerConfig};
use replication::{Node, NodeConfig};

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
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("idempotence-test")))
            .encode(&mut buf, R::header_version(version))
            .expect("header");
        req.encode(&mut buf, version).expect("body");
        let size = i32::try_from(buf.len() - 4).expect("size");
        buf[..4].copy_from_slice(&size.to_be_bytes());
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
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let config = BrokerConfig {
        listen: addr,
        advertised_port: i32::from(port),
        data_dir: dir.to_path_buf(),
        ..BrokerConfig::default()
    };
    let shards = ShardSetConfig { shard_count: 2, pin: false, io_memory_bytes: 8 << 20, ..ShardSetConfig::new(dir) };
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

pub fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}
