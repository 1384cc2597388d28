//! Each shard's one door under load: admission against its limits, backpressure instead of
//! unbounded queues, long polls and coordinator calls past their limits answered at once, and
//! the placement table deciding which shard owns (and recovers) a partition.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::records::simple_batch;
use engine::shard::{ShardSetConfig, TopicPartition};
use engine::LogConfig;
use replication::{
    CoordinatorService, DoorLimits, Node, NodeConfig, Offset, Placement, Router, ServiceFactory, ShardId, ShardServices,
};

mod common;

/// A coordinator call of these tests: held until `gate` closes, then answered "served".
struct Call {
    reply: flume::Sender<&'static str>,
    gate: flume::Receiver<()>,
}
type ShardRequest = replication::ShardRequest<Call>;

struct Held;

impl CoordinatorService<Call> for Held {
    fn serve(&self, call: Call) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
        Box::pin(async move {
            let _ = call.gate.recv_async().await;
            let _ = call.reply.send("served");
        })
    }
    fn refuse(&self, call: Call) {
        let _ = call.reply.send("refused");
    }
}

fn temp_dir(name: &str) -> PathBuf {
    common::temp_dir("door", name)
}

fn node(dir: &std::path::Path, door: DoorLimits, placement: Placement) -> Node<Call> {
    let shards = ShardSetConfig { shard_count: 2, pin: false, io_memory_bytes: 8 << 20, ..ShardSetConfig::new(dir) };
    let services: ServiceFactory<Call> = Arc::new(|_, _| {
        let coordinator: std::rc::Rc<dyn CoordinatorService<Call>> = std::rc::Rc::new(Held);
        ShardServices { coordinator: Some(coordinator), main: Box::pin(async {}) }
    });
    Node::start(NodeConfig { door, placement, ..NodeConfig::new(shards) }, Some(services)).expect("start")
}

fn create(r: &Router<Call>, tp: &TopicPartition) {
    let config = LogConfig { segment_bytes: 1 << 20, ..LogConfig::default() };
    r.call_blocking(r.owner(tp), |reply| ShardRequest::CreatePartition { tp: tp.clone(), config, reply })
        .expect("call")
        .expect("create");
}

fn stats(r: &Router<Call>, s: ShardId) -> replication::DoorStats {
    r.call_blocking(s, |reply| ShardRequest::DoorStats { reply }).expect("stats")
}

#[test]
fn a_flood_of_appends_stays_within_the_door_limit_and_all_succeed() {
    let dir = temp_dir("flood");
    let limits = DoorLimits { data_in_flight_max: 4, ..DoorLimits::default() };
    let n = node(&dir, limits, Placement::new());
    let r = n.router();
    let tp = TopicPartition::new("flood", 0);
    create(&r, &tp);
    let owner = r.owner(&tp);
    // 32 threads x 50 requests, all at once, far more than the door admits.
    let threads: Vec<_> = (0..32)
        .map(|t| {
            let (r, tp) = (r.clone(), tp.clone());
            std::thread::spawn(move || {
                for i in 0..50 {
                    let b = simple_batch(3, 64, 1_000 + t * 100 + i);
                    let items = vec![common::append_item(&tp, &b, i % 2 == 0)];
                    let out = r.call_blocking(owner, |reply| ShardRequest::Append { items, reply }).expect("call");
                    assert_eq!(out.len(), 1);
                    let info = out.into_iter().next().expect("one").expect("append");
                    assert_eq!(info.last_offset - info.base_offset, 2);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer");
    }
    let s = stats(&r, owner);
    assert!(s.data_in_flight_peak >= 1 && s.data_in_flight_peak <= 4, "{s:?}");
    assert_eq!(s.data_in_flight, 0, "{s:?}");
    let offsets = r
        .call_blocking(owner, |reply| ShardRequest::Offsets { tps: vec![tp.clone()], reply })
        .expect("call")
        .pop()
        .expect("one")
        .expect("offsets");
    assert_eq!(offsets.log_end_offset, Offset(32 * 50 * 3));
    n.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn long_polls_past_the_limit_are_answered_at_once_and_the_rest_wake_on_data() {
    let dir = temp_dir("polls");
    let limits = DoorLimits { long_polls_max: 3, ..DoorLimits::default() };
    let n = node(&dir, limits, Placement::new());
    let r = n.router();
    let tp = TopicPartition::new("polls", 0);
    create(&r, &tp);
    let owner = r.owner(&tp);
    let (tx, rx) = flume::unbounded::<bool>();
    let started = Instant::now();
    for _ in 0..5 {
        let req = ShardRequest::WaitForData {
            items: vec![(tp.clone(), Offset(0))],
            timeout: Duration::from_secs(60),
            reply: tx.clone(),
        };
        futures_lite::future::block_on(r.send(owner, req)).expect("send");
    }
    // Two answered at once (not admitted), three waiting.
    for _ in 0..2 {
        assert!(!rx.recv_timeout(Duration::from_secs(10)).expect("cut short"));
    }
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err(), "only two polls past the limit");
    let s = stats(&r, owner);
    assert_eq!((s.long_polls, s.long_polls_cut_short), (3, 2), "{s:?}");
    // Data wakes the three.
    let items = vec![common::append_item(&tp, &simple_batch(1, 10, 5), false)];
    r.call_blocking(owner, |reply| ShardRequest::Append { items, reply })
        .expect("call")
        .pop()
        .expect("one")
        .expect("ok");
    for _ in 0..3 {
        assert!(rx.recv_timeout(Duration::from_secs(10)).expect("woken by the append"));
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(stats(&r, owner).long_polls, 0);
    n.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn coordinator_calls_past_the_limit_are_refused_and_admitted_ones_served() {
    let dir = temp_dir("coord");
    let limits = DoorLimits { coordinator_in_flight_max: 2, ..DoorLimits::default() };
    let n = node(&dir, limits, Placement::new());
    let r = n.router();
    let (gate_tx, gate) = flume::bounded::<()>(1);
    let (tx, rx) = flume::unbounded();
    for _ in 0..5 {
        let call = Call { reply: tx.clone(), gate: gate.clone() };
        futures_lite::future::block_on(r.send(ShardId(1), ShardRequest::Coordinator(call))).expect("send");
    }
    let mut answers: Vec<_> = (0..3).map(|_| rx.recv_timeout(Duration::from_secs(10)).expect("refused")).collect();
    assert_eq!(answers, vec!["refused"; 3]);
    // Partition work still passes while coordinator calls are held.
    let tp = TopicPartition::new("beside", 0);
    create(&r, &tp);
    let listed = r.call_blocking(r.owner(&tp), |reply| ShardRequest::List { reply }).expect("list");
    assert_eq!(listed, vec![tp]);
    assert_eq!(stats(&r, ShardId(1)).coordinator_in_flight, 2);
    drop(gate_tx);
    answers = (0..2).map(|_| rx.recv_timeout(Duration::from_secs(10)).expect("served")).collect();
    assert_eq!(answers, vec!["served"; 2]);
    n.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_placement_table_decides_the_owner_and_recovery_follows_it() {
    let dir = temp_dir("placement");
    let tp = TopicPartition::new("placed", 0);
    let default_owner = ShardId(engine::shard::shard_for(&tp, 2));
    let other = ShardId(1 - default_owner.index());
    let placement = Placement::new().with_entry(tp.clone(), other);
    for round in 0..2 {
        let n = node(&dir, DoorLimits::default(), placement.clone());
        let r = n.router();
        assert_eq!(r.owner(&tp), other);
        if round == 0 {
            create(&r, &tp);
        }
        let list = |s| r.call_blocking(s, |reply| ShardRequest::List { reply }).expect("list");
        assert_eq!(list(other), vec![tp.clone()], "round {round}");
        assert!(list(default_owner).is_empty(), "round {round}");
        n.shutdown();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Under a policy that syncs, an append notifies long polls before its sync moves the high
/// watermark. A poll answered then would send its fetch to read nothing and poll again: the
/// door answers only once the high watermark has passed the offset waited on.
#[test]
fn a_long_poll_wakes_when_the_high_watermark_passes_its_offset_not_at_the_append() {
    let dir = temp_dir("hw-wake");
    let n = node(&dir, DoorLimits::default(), Placement::new());
    let r = n.router();
    let tp = TopicPartition::new("hw-wake", 0);
    // Synced (and the high watermark moved) only by the shard's interval sync, well after the
    // append has been written and acknowledged.
    let interval_ms = 1_500;
    let config = LogConfig {
        segment_bytes: 1 << 20,
        durability: engine::log::Durability::IntervalMs(interval_ms),
        ..LogConfig::default()
    };
    r.call_blocking(r.owner(&tp), |reply| ShardRequest::CreatePartition { tp: tp.clone(), config, reply })
        .expect("call")
        .expect("create");
    let owner = r.owner(&tp);
    let high_watermark = || {
        r.call_blocking(owner, |reply| ShardRequest::Offsets { tps: vec![tp.clone()], reply })
            .expect("call")
            .pop()
            .expect("one")
            .expect("offsets")
            .high_watermark
    };
    let (tx, rx) = flume::unbounded::<bool>();
    let poll = ShardRequest::WaitForData {
        items: vec![(tp.clone(), Offset(0))],
        timeout: Duration::from_secs(60),
        reply: tx.clone(),
    };
    futures_lite::future::block_on(r.send(owner, poll)).expect("send");
    let items = vec![common::append_item(&tp, &simple_batch(1, 10, 5), false)];
    let appended = Instant::now();
    r.call_blocking(owner, |reply| ShardRequest::Append { items, reply })
        .expect("call")
        .pop()
        .expect("one")
        .expect("ok");
    assert!(rx.recv_timeout(Duration::from_secs(30)).expect("woken by the sync"));
    let waited = appended.elapsed();
    assert!(high_watermark() > Offset(0), "answered after {waited:?} with the high watermark still at 0");
    assert!(waited < Duration::from_secs(30));
    n.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
