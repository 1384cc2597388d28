//! Shards on real glommio executors with direct I/O: create partitions on their owners, append
//! and read through cross-shard messages, shut down cleanly, restart and recover.

use std::path::PathBuf;

use engine::records::simple_batch;
use engine::shard::{ShardSetConfig, TopicPartition};
use replication::{AppendItem, Node, NodeConfig, Router};

/// These tests make no coordinator calls.
enum NoCall {}
type ShardRequest = replication::ShardRequest<NoCall>;
use engine::LogConfig;

mod common;

fn temp_dir(name: &str) -> PathBuf {
    common::temp_dir("shards", name)
}

fn config(dir: &std::path::Path) -> ShardSetConfig {
    ShardSetConfig {
        shard_count: 2,
        pin: false,
        io_memory_bytes: 8 << 20,
        log: LogConfig { segment_bytes: 64 * 1024, ..LogConfig::default() },
        ..ShardSetConfig::new(dir)
    }
}

#[test]
fn append_and_read_across_shards_then_recover() {
    let dir = temp_dir("shards");
    let set = Node::<NoCall>::start(NodeConfig::new(config(&dir)), None).expect("start");
    let h = set.router();
    let tps: Vec<TopicPartition> = (0..4).map(|p| TopicPartition::new("orders-eu", p)).collect();
    for tp in &tps {
        let owner = h.owner(tp);
        let r = h.call_blocking(owner, |reply| ShardRequest::CreatePartition {
            tp: tp.clone(),
            config: LogConfig { segment_bytes: 64 * 1024, ..LogConfig::default() },
            reply,
        });
        r.expect("call").expect("create");
    }
    // Several appends per partition, batched per owner, durable.
    let mut sent = Vec::new();
    for round in 0..20 {
        for owner in h.shards() {
            let items: Vec<AppendItem> = tps
                .iter()
                .filter(|tp| h.owner(tp) == owner)
                .map(|tp| {
                    let b = simple_batch(10, 100 + round, 1_000 + round as i64);
                    sent.push((tp.clone(), b.clone()));
                    common::append_item(tp, &b, true)
                })
                .collect();
            if items.is_empty() {
                continue;
            }
            let infos = h.call_blocking(owner, |reply| ShardRequest::Append { items, reply }).expect("call");
            for info in infos {
                let info = info.expect("append");
                assert_eq!(info.last_offset - info.base_offset, 9);
                assert_eq!(info.base_offset % 10, 0);
            }
        }
    }
    let check = |h: &Router<NoCall>| {
        for tp in &tps {
            let owner = h.owner(tp);
            let mut got = Vec::new();
            let mut offset = 0;
            loop {
                let items = vec![common::read_item(tp, offset, 8192)];
                let r = h.call_blocking(owner, |reply| ShardRequest::Read { items, reply }).expect("call");
                let r = r.into_iter().next().expect("one result").expect("read");
                if r.chunks.is_empty() {
                    break;
                }
                let all = r.concat();
                for v in engine::batch::parse_all(&all, usize::MAX).expect("batches") {
                    got.push(v.bytes()[12..].to_vec());
                    offset = v.last_offset() + 1;
                }
            }
            let want: Vec<Vec<u8>> = sent.iter().filter(|(t, _)| t == tp).map(|(_, b)| b[12..].to_vec()).collect();
            // Bytes after base offset + length are stored exactly as sent, except the leader
            // epoch (bytes 12..16), which was -1 and is now 0.
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(&g[4..], &w[4..]);
            }
        }
    };
    check(&h);
    set.shutdown();

    let set = Node::<NoCall>::start(NodeConfig::new(config(&dir)), None).expect("restart");
    let h = set.router();
    let mut owned = Vec::new();
    for s in h.shards() {
        owned.extend(h.call_blocking(s, |reply| ShardRequest::List { reply }).expect("list"));
    }
    owned.sort();
    assert_eq!(owned, tps);
    check(&h);
    set.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
