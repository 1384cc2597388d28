//! Leader epochs through the partition layer: every start of the node is a new leadership
//! term, stamped on what the leader appends, kept in the log's epoch checkpoint, answered by
//! ListOffsets and OffsetForLeaderEpoch, and enforced on requests that name an epoch
//! (FENCED / UNKNOWN leader epoch, KIP-320).

use std::path::PathBuf;

use engine::records::simple_batch;
use engine::shard::{ShardSetConfig, TopicPartition};
use replication::partition::spec;
use replication::{EpochError, EpochQuery, LeaderEpoch, Node, NodeConfig, Offset, PartitionError, ReadItem, Router};

mod common;

enum NoCall {}
type ShardRequest = replication::ShardRequest<NoCall>;

fn temp_dir(name: &str) -> PathBuf {
    common::temp_dir("epochs", name)
}

fn start(dir: &std::path::Path) -> Node<NoCall> {
    let shards = ShardSetConfig { shard_count: 2, pin: false, io_memory_bytes: 8 << 20, ..ShardSetConfig::new(dir) };
    Node::start(NodeConfig::new(shards), None).expect("start")
}

fn epoch(r: &Router<NoCall>, tp: &TopicPartition) -> i32 {
    let o = r.call_blocking(r.owner(tp), |reply| ShardRequest::Offsets { tps: vec![tp.clone()], reply });
    o.expect("call").pop().expect("one").expect("offsets").leader_epoch.get()
}

fn append(r: &Router<NoCall>, tp: &TopicPartition, records: usize) -> i64 {
    let items = vec![common::append_item(tp, &simple_batch(records, 20, 1_000), true)];
    let out = r.call_blocking(r.owner(tp), |reply| ShardRequest::Append { items, reply }).expect("call");
    out.into_iter().next().expect("one").expect("append").base_offset
}

/// The leader epoch stamped on each stored batch, in offset order.
fn stamped(r: &Router<NoCall>, tp: &TopicPartition, current_leader_epoch: i32) -> Result<Vec<i32>, PartitionError> {
    let items = vec![ReadItem {
        tp: tp.clone(),
        offset: Offset(0),
        bytes_max: 1 << 20,
        end_offset: None,
        current_leader_epoch,
        read_committed: false,
    }];
    let out = r.call_blocking(r.owner(tp), |reply| ShardRequest::Read { items, reply }).expect("call");
    let read = out.into_iter().next().expect("one")?;
    let all = read.concat();
    Ok(engine::batch::parse_all(&all, usize::MAX)
        .expect("batches")
        .iter()
        .map(|v| i32::from_be_bytes([v.bytes()[12], v.bytes()[13], v.bytes()[14], v.bytes()[15]]))
        .collect())
}

fn end_of(r: &Router<NoCall>, tp: &TopicPartition, current: i32, asked: i32) -> Result<(i32, i64), PartitionError> {
    let items = vec![EpochQuery { tp: tp.clone(), current_leader_epoch: current, leader_epoch: LeaderEpoch(asked) }];
    let out = r.call_blocking(r.owner(tp), |reply| ShardRequest::EndOffsetForEpoch { items, reply }).expect("call");
    out.into_iter().next().expect("one").map(|(e, o)| (e.get(), o.get()))
}

#[test]
fn every_start_is_a_new_epoch_stamped_on_appends_and_answered_per_epoch() {
    let dir = temp_dir("terms");
    let tp = TopicPartition::new("terms", 0);
    let n = start(&dir);
    let r = n.router();
    let config = engine::LogConfig::default();
    r.call_blocking(r.owner(&tp), |reply| ShardRequest::CreatePartition { tp: tp.clone(), config, reply })
        .expect("call")
        .expect("create");
    assert_eq!(epoch(&r, &tp), 0);
    assert_eq!(append(&r, &tp, 5), 0);
    n.shutdown();

    let n = start(&dir);
    let r = n.router();
    assert_eq!(epoch(&r, &tp), 1);
    assert_eq!(append(&r, &tp, 3), 5);
    assert_eq!(stamped(&r, &tp, -1).expect("read"), vec![0, 1]);
    // Epoch 0 ended where epoch 1 began; the current epoch ends at the log end.
    assert_eq!(end_of(&r, &tp, 1, 0).expect("epoch 0"), (0, 5));
    assert_eq!(end_of(&r, &tp, -1, 1).expect("epoch 1"), (1, 8));
    n.shutdown();

    // Two starts without appends: epoch 2 held nothing and gives way to 3.
    for expected in [2, 3] {
        let n = start(&dir);
        let r = n.router();
        assert_eq!(epoch(&r, &tp), expected);
        let latest = r.call_blocking(r.owner(&tp), |reply| ShardRequest::ListOffset {
            tp: tp.clone(),
            read_committed: false,
            timestamp: spec::LATEST,
            current_leader_epoch: expected,
            reply,
        });
        let latest = latest.expect("call").expect("list").expect("an offset");
        assert_eq!((latest.offset, latest.leader_epoch), (Offset(8), expected));
        let earliest = r.call_blocking(r.owner(&tp), |reply| ShardRequest::ListOffset {
            tp: tp.clone(),
            read_committed: false,
            timestamp: spec::EARLIEST,
            current_leader_epoch: -1,
            reply,
        });
        assert_eq!(earliest.expect("call").expect("list").expect("an offset").leader_epoch, 0);
        assert_eq!(end_of(&r, &tp, expected, 1).expect("epoch 1"), (1, 8));
        // Epoch 2 is current in the first of these starts; in the second it held nothing, so
        // the answer is the latest epoch before it and where the next one starts.
        let want = if expected == 2 { (2, 8) } else { (1, 8) };
        assert_eq!(end_of(&r, &tp, expected, 2).expect("epoch 2"), want);
        n.shutdown();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn requests_naming_another_epoch_are_fenced() {
    let dir = temp_dir("fence");
    let tp = TopicPartition::new("fence", 0);
    for _ in 0..2 {
        // The second start leads in epoch 1.
        let n = start(&dir);
        let r = n.router();
        let config = engine::LogConfig::default();
        let _ = r.call_blocking(r.owner(&tp), |reply| ShardRequest::CreatePartition { tp: tp.clone(), config, reply });
        append(&r, &tp, 1);
        n.shutdown();
    }
    let n = start(&dir);
    let r = n.router();
    assert_eq!(epoch(&r, &tp), 2);
    assert_eq!(stamped(&r, &tp, 2).expect("current epoch"), vec![0, 1]);
    assert_eq!(stamped(&r, &tp, -1).expect("unchecked"), vec![0, 1]);
    match stamped(&r, &tp, 1) {
        Err(PartitionError::Epoch(EpochError::Fenced { client: 1, leader: 2 })) => {}
        other => panic!("an older epoch is fenced: {other:?}"),
    }
    match stamped(&r, &tp, 3) {
        Err(PartitionError::Epoch(EpochError::Unknown { client: 3, leader: 2 })) => {}
        other => panic!("a newer epoch is unknown: {other:?}"),
    }
    assert!(matches!(end_of(&r, &tp, 0, 0), Err(PartitionError::Epoch(EpochError::Fenced { .. }))));
    let listed = r.call_blocking(r.owner(&tp), |reply| ShardRequest::ListOffset {
        tp: tp.clone(),
        read_committed: false,
        timestamp: spec::LATEST,
        current_leader_epoch: 5,
        reply,
    });
    assert!(matches!(listed.expect("call"), Err(PartitionError::Epoch(EpochError::Unknown { .. }))));
    n.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
