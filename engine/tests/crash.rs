//! Crash test: a child process appends with durability `Always` from several concurrent tasks
//! (so group commit is exercised) and prints every acknowledged batch; the parent kills it with
//! SIGKILL at random moments, many times over, and after each kill reopens the log and checks
//! that every acknowledged batch is there byte for byte, offsets are dense, and nothing corrupt
//! is served. The child is this test binary itself, re-run on the ignored `crash_child` test.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use engine::io::dma::DmaStorage;
use engine::records::{decode_records, BatchBuilder, Record};
use engine::{Compression, Durability, LogConfig, PartitionLog, ValidatedBatches};

const CHILD_ENV: &str = "ODRADEK_CRASH_CHILD_DIR";
const WRITERS: u32 = 4;
const KILLS: u32 = 30;

fn config() -> LogConfig {
    LogConfig {
        durability: Durability::Always,
        // Small segments so kills also land during rolls.
        segment_bytes: 256 * 1024,
        write_chunk_bytes: 64 * 1024,
        ..LogConfig::default()
    }
}

/// A cheap deterministic generator (xorshift) so the parent can rebuild what the child wrote.
fn mix(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// The batch writer `writer` sends as its `seq`-th append: its content is a function of both.
fn expected_batch(writer: u32, seq: u64) -> Vec<Record> {
    let h = mix(u64::from(writer) * 1_000_003 + seq + 1);
    let count = 1 + (h % 8) as usize;
    (0..count)
        .map(|i| {
            let len = ((h >> 8) % 3000) as usize + i;
            let fill = ((h >> 20) as u8).wrapping_add(i as u8);
            Record::new(Some(format!("w{writer}-s{seq}-r{i}").into_bytes()), Some(vec![fill; len]))
                .with_timestamp(1_700_000_000_000 + seq as i64)
                .with_header("writer", Some(writer.to_be_bytes().to_vec()))
        })
        .collect()
}

fn codec_for(writer: u32) -> Compression {
    [Compression::None, Compression::Lz4, Compression::Zstd, Compression::None][writer as usize % 4]
}

/// Runs only in the child process: appends forever until killed.
#[test]
#[ignore = "runs as the crash test's child process"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let dir = PathBuf::from(dir);
    glommio::LocalExecutorBuilder::default()
        .spawn(move || async move {
            DmaStorage::guard_iopoll_probe(&dir).await.expect("probe guard");
            let (log, _) =
                PartitionLog::open(DmaStorage, &dir.join("crash-0"), config(), engine::now_ms()).await.expect("open");
            glommio::spawn_local(log.clone().run_write_behind()).detach();
            // Each writer resumes after the last sequence number it finds in the log.
            let mut next_seq: HashMap<u32, u64> = HashMap::new();
            let mut offset = log.log_start_offset();
            while offset < log.log_end_offset() {
                let r = log.read(offset, 1 << 20, None).await.expect("read");
                for v in engine::batch::parse_all(&r.concat(), usize::MAX).expect("valid") {
                    let recs = decode_records(&v).expect("records");
                    let key = String::from_utf8(recs[0].key.clone().expect("key")).expect("utf8");
                    let (w, s) = parse_key(&key);
                    next_seq.insert(w, s + 1);
                    offset = v.last_offset() + 1;
                }
            }
            let tasks: Vec<_> = (0..WRITERS)
                .map(|w| {
                    let log = log.clone();
                    let mut seq = next_seq.get(&w).copied().unwrap_or(0);
                    glommio::spawn_local(async move {
                        loop {
                            let mut b = BatchBuilder::new(codec_for(w), 1_700_000_000_000 + seq as i64);
                            for r in expected_batch(w, seq) {
                                b.push(r);
                            }
                            let vb = ValidatedBatches::new(b.build(), usize::MAX).expect("valid");
                            let info = log.append(vb, 0, engine::now_ms()).await.expect("append");
                            println!("ACK {w} {seq} {} {}", info.base_offset, info.last_offset);
                            seq += 1;
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await;
            }
        })
        .expect("executor")
        .join()
        .expect("join");
}

fn parse_key(key: &str) -> (u32, u64) {
    // "w{writer}-s{seq}-r{i}"
    let mut parts = key.split('-');
    let w = parts.next().and_then(|p| p.strip_prefix('w')).and_then(|p| p.parse().ok()).expect("writer");
    let s = parts.next().and_then(|p| p.strip_prefix('s')).and_then(|p| p.parse().ok()).expect("seq");
    (w, s)
}

/// Acknowledged batches: (writer, seq) -> (base, last).
type Acks = HashMap<(u32, u64), (i64, i64)>;

fn run_child_and_kill(dir: &Path, after: Duration, acks: &mut Acks) {
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args(["crash_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("ACK ") {
                let v: Vec<i64> = rest.split(' ').filter_map(|x| x.parse().ok()).collect();
                if v.len() == 4 {
                    got.push(((v[0] as u32, v[1] as u64), (v[2], v[3])));
                }
            }
        }
        got
    });
    std::thread::sleep(after);
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    for (k, v) in reader.join().expect("reader") {
        acks.insert(k, v);
    }
}

fn verify(dir: &Path, acks: &Acks) -> i64 {
    let dir = dir.to_path_buf();
    let acks = acks.clone();
    glommio::LocalExecutorBuilder::default()
        .spawn(move || async move {
            DmaStorage::guard_iopoll_probe(&dir).await.expect("probe guard");
            let (log, _report) =
                PartitionLog::open(DmaStorage, &dir.join("crash-0"), config(), engine::now_ms()).await.expect("reopen");
            let leo = log.log_end_offset();
            let mut by_base: HashMap<i64, (u32, u64, i64)> = HashMap::new();
            let mut offset = 0;
            while offset < leo {
                let r = log.read(offset, 1 << 20, None).await.expect("no corrupt batch is served");
                assert!(!r.chunks.is_empty(), "hole at offset {offset}");
                for v in engine::batch::parse_all(&r.concat(), usize::MAX).expect("whole valid batches") {
                    assert_eq!(v.base_offset(), offset, "offsets are dense");
                    let recs = decode_records(&v).expect("records decode");
                    let key = String::from_utf8(recs[0].key.clone().expect("key")).expect("utf8");
                    let (w, s) = parse_key(&key);
                    // Every batch present, acknowledged or not, is exactly what its writer sent.
                    let want = expected_batch(w, s);
                    assert_eq!(recs.len(), want.len());
                    for (got, want) in recs.iter().zip(&want) {
                        assert_eq!(
                            (&got.key, &got.value, &got.headers, got.timestamp),
                            (&want.key, &want.value, &want.headers, want.timestamp)
                        );
                    }
                    by_base.insert(v.base_offset(), (w, s, v.last_offset()));
                    offset = v.last_offset() + 1;
                }
            }
            for ((w, s), (base, last)) in &acks {
                let found = by_base.get(base);
                assert_eq!(found, Some(&(*w, *s, *last)), "acknowledged batch w{w} s{s} at {base} lost");
            }
            log.close().await.expect("close");
            leo
        })
        .expect("executor")
        .join()
        .expect("join")
}

#[test]
fn acknowledged_batches_survive_sigkill() {
    let dir = std::env::temp_dir().join(format!("odradek-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let mut acks = Acks::new();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let started = Instant::now();
    let mut last_leo = 0;
    for _ in 0..KILLS {
        rng = mix(rng);
        let after = Duration::from_millis(30 + rng % 250);
        run_child_and_kill(&dir, after, &mut acks);
        let leo = verify(&dir, &acks);
        assert!(leo >= last_leo, "log shrank from {last_leo} to {leo}: acknowledged data lost");
        last_leo = leo;
    }
    assert!(acks.len() > KILLS as usize, "the child acknowledged too little to test anything: {}", acks.len());
    eprintln!("{} acknowledged batches over {KILLS} kills, {last_leo} offsets, {:?}", acks.len(), started.elapsed());
    let _ = std::fs::remove_dir_all(&dir);
}
