//! A flood of appends sent without waiting for their answers: the door's inbox
//! (`SHARD_QUEUE_DEPTH`) and its admission limit (`data_in_flight_max`) make the sender wait,
//! so the process holds at most that many requests' bytes, not the whole flood. Its own test
//! binary, so the resident-memory figures are this test's alone.

use std::sync::Arc;
use std::time::Duration;

use engine::records::simple_batch;
use engine::shard::{ShardSetConfig, TopicPartition};
use engine::LogConfig;
use replication::door::SHARD_QUEUE_DEPTH;
use replication::{DoorLimits, Node, NodeConfig, Offset, ServiceFactory, ShardServices};

mod common;

enum NoCall {}
type ShardRequest = replication::ShardRequest<NoCall>;

fn status_kb(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("status");
    s.lines()
        .find_map(|l| l.strip_prefix(field).and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok()))
        .expect(field)
}

#[test]
fn a_flood_sent_without_waiting_is_held_to_the_door_limits() {
    const BATCH_BYTES: usize = 64 << 10;
    const REQUESTS: usize = 10_000;
    let dir = std::env::temp_dir().join(format!("odradek-door-flood-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let shards = ShardSetConfig {
        shard_count: 2,
        pin: false,
        io_memory_bytes: 8 << 20,
        memory_bytes_per_shard: 32 << 20,
        ..ShardSetConfig::new(&dir)
    };
    let limits = DoorLimits { data_in_flight_max: 4, ..DoorLimits::default() };
    let services: ServiceFactory<NoCall> =
        Arc::new(|_, _| ShardServices { coordinator: None, main: Box::pin(async {}) });
    let n = Node::start(NodeConfig { door: limits, ..NodeConfig::new(shards) }, Some(services)).expect("start");
    let r = n.router();
    let tp = TopicPartition::new("flood", 0);
    let owner = r.owner(&tp);
    let config = LogConfig { segment_bytes: 64 << 20, ..LogConfig::default() };
    r.call_blocking(owner, |reply| ShardRequest::CreatePartition { tp: tp.clone(), config, reply })
        .expect("call")
        .expect("create");
    let template = simple_batch(1, BATCH_BYTES, 1_000);
    let rss_before = status_kb("VmRSS:");
    let (tx, rx) = flume::unbounded();
    // One sender, never waiting for an answer: only the door can hold it back.
    let sender = {
        let (r, tp) = (r.clone(), tp.clone());
        std::thread::spawn(move || {
            for _ in 0..REQUESTS {
                let items = vec![common::append_item(&tp, &template, false)];
                let req = ShardRequest::Append { items, reply: tx.clone() };
                futures_lite::future::block_on(r.send(owner, req)).expect("send");
            }
        })
    };
    let mut acked = 0;
    while acked < REQUESTS {
        let out = rx.recv_timeout(Duration::from_secs(60)).expect("an answer");
        assert!(out.into_iter().all(|r| r.is_ok()));
        acked += 1;
    }
    sender.join().expect("sender");
    let peak_growth = status_kb("VmHWM:").saturating_sub(rss_before) << 10;
    // Held at once at most: the inbox, the admitted requests, and the shards' log memory.
    let bound = (SHARD_QUEUE_DEPTH + 4) * BATCH_BYTES + 2 * (32 << 20) + (64 << 20);
    let flood = REQUESTS * BATCH_BYTES;
    assert!(bound < flood / 2, "the flood must dwarf the bound for this test to mean anything");
    assert!(
        (peak_growth as usize) < bound,
        "peak RSS grew by {} MiB with a bound of {} MiB (the flood is {} MiB)",
        peak_growth >> 20,
        bound >> 20,
        flood >> 20
    );
    eprintln!("peak RSS growth {} MiB, bound {} MiB, flood {} MiB", peak_growth >> 20, bound >> 20, flood >> 20);
    let offsets = r
        .call_blocking(owner, |reply| ShardRequest::Offsets { tps: vec![tp.clone()], reply })
        .expect("call")
        .pop()
        .expect("one")
        .expect("offsets");
    assert_eq!(offsets.log_end_offset, Offset(REQUESTS as i64));
    n.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
