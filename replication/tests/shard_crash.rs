//! Crash test through the shards, as the broker uses them: a child process runs two shards
//! owning many partitions, and writer threads append to random sets of partitions in one
//! request each, some acks=1 (written, not synced) and some acks=all (synced), printing every
//! acknowledged batch. The parent kills it with SIGKILL at random moments, many times, and after
//! each kill reopens the shards and checks that every acknowledged batch is there byte for byte,
//! in every partition, with dense offsets. A kill is a crash of the process, not of the machine:
//! acks=1 promises exactly that (Kafka's page-cache write gives the same).
//!
//! The child is this test binary itself, re-run on the ignored `shard_crash_child` test.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use engine::records::{decode_records, BatchBuilder, Record};
use engine::shard::{ShardSetConfig, TopicPartition};
use engine::{Compression, LogConfig, ValidatedBatches};
use replication::{AppendItem, Node, NodeConfig, Offset, ReadItem, Router};

/// These tests make no coordinator calls.
enum NoCall {}
type ShardRequest = replication::ShardRequest<NoCall>;
type ShardHandle = Router<NoCall>;

const CHILD_DIR_ENV: &str = "ODRADEK_SHARD_CRASH_DIR";
const CHILD_RUN_ENV: &str = "ODRADEK_SHARD_CRASH_RUN";
const TOPIC: &str = "crash";
const PARTITIONS: i32 = 300;
const WRITERS: u64 = 4;
const KILLS: u64 = 12;

fn mix(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

fn shard_config(dir: &Path) -> ShardSetConfig {
    ShardSetConfig {
        shard_count: 2,
        pin: false,
        io_memory_bytes: 8 << 20,
        // Small segments and a small budget, so kills land during rolls and cache trimming.
        log: LogConfig { segment_bytes: 128 * 1024, write_chunk_bytes: 64 * 1024, ..LogConfig::default() },
        memory_bytes_per_shard: 16 << 20,
        ..ShardSetConfig::new(dir)
    }
}

/// The records of the batch `run`/`writer` sends as its `seq`-th append to `partition`.
fn expected_batch(run: u64, writer: u64, seq: u64, partition: i32) -> Vec<Record> {
    let h = mix((run << 40) ^ (writer << 32) ^ (seq << 10) ^ partition as u64 ^ 0x5bd1_e995);
    let count = 1 + (h % 5) as usize;
    (0..count)
        .map(|i| {
            let len = ((h >> 8) % 1500) as usize + i;
            let fill = ((h >> 24) as u8).wrapping_add(i as u8);
            Record::new(Some(format!("r{run}-w{writer}-s{seq}-p{partition}-i{i}").into_bytes()), Some(vec![fill; len]))
                .with_timestamp(1_700_000_000_000 + seq as i64)
                .with_header("w", Some(writer.to_be_bytes().to_vec()))
        })
        .collect()
}

fn parse_key(key: &str) -> (u64, u64, u64, i32) {
    let mut parts = key.split('-');
    let mut next = |p: char| -> u64 {
        parts.next().and_then(|x| x.strip_prefix(p)).and_then(|x| x.parse().ok()).expect("key part")
    };
    let (r, w, s, p) = (next('r'), next('w'), next('s'), next('p'));
    (r, w, s, p as i32)
}

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new(TOPIC, p)
}

/// Runs only in the child process: appends until killed.
#[test]
#[ignore = "runs as the shard crash test's child process"]
fn shard_crash_child() {
    let (Ok(dir), Ok(run)) = (std::env::var(CHILD_DIR_ENV), std::env::var(CHILD_RUN_ENV)) else { return };
    let run: u64 = run.parse().expect("run");
    let set = Node::<NoCall>::start(NodeConfig::new(shard_config(Path::new(&dir))), None).expect("start");
    let h = set.router();
    for p in 0..PARTITIONS {
        let owner = h.owner(&tp(p));
        let config = shard_config(Path::new(&dir)).log;
        match h.call_blocking(owner, |reply| ShardRequest::CreatePartition { tp: tp(p), config, reply }) {
            Ok(Ok(())) | Ok(Err(replication::PartitionError::AlreadyExists(_))) => {}
            other => panic!("create: {other:?}"),
        }
    }
    println!("READY");
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let h = h.clone();
            std::thread::spawn(move || write_forever(&h, run, w))
        })
        .collect();
    for w in writers {
        let _ = w.join();
    }
}

fn write_forever(h: &ShardHandle, run: u64, writer: u64) {
    let mut rng = mix(run * 7919 + writer + 1);
    // Writer 2 asks for acks=all; the others for acks=1.
    let durable = writer == 2;
    for seq in 0.. {
        rng = mix(rng);
        // One to 120 partitions per request, spread over both shards.
        let n = 1 + (rng % 120) as i32;
        let first = (rng >> 20) as i32 % PARTITIONS;
        let parts: Vec<i32> = (0..n).map(|i| (first + i * 7) % PARTITIONS).collect();
        let mut parts = parts;
        parts.sort_unstable();
        parts.dedup();
        for owner in h.shards() {
            let mine: Vec<i32> = parts.iter().copied().filter(|&p| h.owner(&tp(p)) == owner).collect();
            if mine.is_empty() {
                continue;
            }
            let items: Vec<AppendItem> = mine
                .iter()
                .map(|&p| {
                    let mut b = BatchBuilder::new(
                        [Compression::None, Compression::Lz4][p as usize % 2],
                        1_700_000_000_000 + seq as i64,
                    );
                    for r in expected_batch(run, writer, seq, p) {
                        b.push(r);
                    }
                    AppendItem {
                        tp: tp(p),
                        batches: ValidatedBatches::new(b.build(), usize::MAX).expect("valid"),
                        durable,
                    }
                })
                .collect();
            let results = h.call_blocking(owner, |reply| ShardRequest::Append { items, reply }).expect("call");
            let mut out = String::new();
            for (p, r) in mine.iter().zip(results) {
                let info = r.expect("append");
                out.push_str(&format!("ACK {run} {writer} {seq} {p} {} {}\n", info.base_offset, info.last_offset));
            }
            print!("{out}");
        }
    }
}

/// A batch's identity: (run, writer, seq, partition).
type BatchId = (u64, u64, u64, i32);
/// Acknowledged batches: id -> (base, last).
type Acks = HashMap<BatchId, (i64, i64)>;

fn run_child_and_kill(dir: &Path, run: u64, after: Duration, acks: &mut Acks) {
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args(["shard_crash_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_RUN_ENV, run.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line == "READY" {
                let _ = ready_tx.send(());
            }
            if let Some(rest) = line.strip_prefix("ACK ") {
                let v: Vec<i64> = rest.split(' ').filter_map(|x| x.parse().ok()).collect();
                if v.len() == 6 {
                    got.push(((v[0] as u64, v[1] as u64, v[2] as u64, v[3] as i32), (v[4], v[5])));
                }
            }
        }
        got
    });
    // Kill while writing, not while the child is still starting.
    let _ = ready_rx.recv_timeout(Duration::from_secs(60));
    std::thread::sleep(after);
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    for (k, v) in reader.join().expect("reader") {
        acks.insert(k, v);
    }
}

/// Reopens the shards and checks every partition; returns the total number of offsets.
fn verify(dir: &Path, acks: &Acks) -> i64 {
    let set = Node::<NoCall>::start(NodeConfig::new(shard_config(dir)), None).expect("restart");
    let h = set.router();
    let mut total = 0;
    let mut by_partition: HashMap<i32, HashMap<i64, (BatchId, i64)>> = HashMap::new();
    for p in 0..PARTITIONS {
        let owner = h.owner(&tp(p));
        let mut offset = 0;
        let found = by_partition.entry(p).or_default();
        loop {
            let items = vec![ReadItem {
                tp: tp(p),
                offset: Offset(offset),
                bytes_max: 1 << 20,
                end_offset: None,
                current_leader_epoch: -1,
                read_committed: false,
            }];
            let r = h.call_blocking(owner, |reply| ShardRequest::Read { items, reply }).expect("call");
            let r = match r.into_iter().next().expect("one result") {
                Ok(r) => r,
                // Never created (the first child was killed before creating it).
                Err(replication::PartitionError::UnknownPartition(_)) => break,
                Err(e) => panic!("partition {p}: no corrupt batch is served: {e}"),
            };
            if r.chunks.is_empty() {
                assert_eq!(offset, r.log_end_offset, "partition {p}: hole at offset {offset}");
                break;
            }
            for v in engine::batch::parse_all(&r.concat(), usize::MAX).expect("whole valid batches") {
                assert_eq!(v.base_offset(), offset, "partition {p}: offsets are dense");
                let recs = decode_records(&v).expect("records decode");
                let key = String::from_utf8(recs[0].key.clone().expect("key")).expect("utf8");
                let id = parse_key(&key);
                assert_eq!(id.3, p, "batch of partition {} found in partition {p}", id.3);
                // Every batch present, acknowledged or not, is exactly what its writer sent.
                let want = expected_batch(id.0, id.1, id.2, id.3);
                assert_eq!(recs.len(), want.len());
                for (got, want) in recs.iter().zip(&want) {
                    assert_eq!(
                        (&got.key, &got.value, &got.headers, got.timestamp),
                        (&want.key, &want.value, &want.headers, want.timestamp)
                    );
                }
                found.insert(v.base_offset(), (id, v.last_offset()));
                offset = v.last_offset() + 1;
            }
        }
        total += offset;
    }
    for (id, (base, last)) in acks {
        let found = by_partition.get(&id.3).and_then(|m| m.get(base));
        assert_eq!(found, Some(&(*id, *last)), "acknowledged batch {id:?} at offset {base} lost");
    }
    set.shutdown();
    total
}

#[test]
fn acknowledged_appends_to_many_partitions_survive_sigkill() {
    let dir: PathBuf = std::env::temp_dir().join(format!("odradek-shard-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let mut acks = Acks::new();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let started = Instant::now();
    let mut last_total = 0;
    for run in 0..KILLS {
        rng = mix(rng);
        let after = Duration::from_millis(50 + rng % 400);
        run_child_and_kill(&dir, run, after, &mut acks);
        let total = verify(&dir, &acks);
        assert!(total >= last_total, "the logs shrank from {last_total} to {total} offsets");
        last_total = total;
    }
    let acks_1 = acks.keys().filter(|k| k.1 != 2).count();
    let acks_all = acks.len() - acks_1;
    assert!(acks_1 > 1000 && acks_all > 100, "too little acknowledged to test anything: {acks_1} / {acks_all}");
    eprintln!(
        "{acks_1} acks=1 and {acks_all} acks=all batches over {KILLS} kills, {last_total} offsets, {:?}",
        started.elapsed()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
