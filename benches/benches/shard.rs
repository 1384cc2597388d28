//! Cross-shard message round trip: a task on shard 0 calls shard 1 through `Router::call`
//! (a typed request with a reply channel, as the broker does for every partition a connection's
//! core does not own, through shard 1's door) and waits for the answer, one call at a time,
//! then 16 calls at once.
//!
//! Also a plain thread calling a shard (`call_blocking`).
//!
//! Reference in the same run: a plain flume ping-pong between two OS threads (blocking receive),
//! the cost of a cross-core wake-up without any executor.
//!
//! `cargo bench -p odradek-benches --bench shard -- --quick`

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use engine::shard::ShardSetConfig;
use replication::{Node, NodeConfig, Router, ServiceFactory, ShardId, ShardRequest, ShardServices};

/// No coordinator calls in this benchmark.
enum NoCall {}

/// A command to the driver task on shard 0: make `calls` round trips, `parallel` at a time, and
/// answer with the elapsed time.
struct Run {
    calls: u64,
    parallel: usize,
    reply: flume::Sender<Duration>,
}

async fn round_trips(handle: &Router<NoCall>, calls: u64) {
    for _ in 0..calls {
        let r = handle.call(ShardId(1), |reply| ShardRequest::List { reply }).await;
        assert!(r.is_ok(), "shard 1 answers");
    }
}

fn start_shards() -> (Node<NoCall>, flume::Sender<Run>, std::path::PathBuf) {
    let (tx, rx) = flume::unbounded::<Run>();
    let rx = Arc::new(Mutex::new(Some(rx)));
    let service: ServiceFactory<NoCall> = Arc::new(move |shard, handle: Router<NoCall>| {
        let rx = if shard.id() == ShardId(0) { rx.lock().expect("not poisoned").take() } else { None };
        let main = Box::pin(async move {
            let Some(rx) = rx else { return };
            while let Ok(run) = rx.recv_async().await {
                let start = Instant::now();
                let per_task = run.calls / run.parallel as u64;
                let tasks: Vec<_> = (0..run.parallel)
                    .map(|_| {
                        let handle = handle.clone();
                        glommio::spawn_local(async move { round_trips(&handle, per_task).await })
                    })
                    .collect();
                for t in tasks {
                    t.await;
                }
                let _ = run.reply.send(start.elapsed());
            }
        });
        ShardServices { coordinator: None, main }
    });
    let dir = std::env::temp_dir().join(format!("odradek-bench-shard-{}", std::process::id()));
    let mut config = ShardSetConfig::new(&dir);
    config.shard_count = 2;
    config.io_memory_bytes = 4 << 20;
    let set = Node::start(NodeConfig::new(config), Some(service)).expect("shards start");
    (set, tx, dir)
}

fn run(driver: &flume::Sender<Run>, calls: u64, parallel: usize) -> Duration {
    let (reply, done) = flume::bounded(1);
    driver.send(Run { calls, parallel, reply }).expect("driver running");
    done.recv().expect("driver answers")
}

fn cross_shard(c: &mut Criterion) {
    let (set, driver, dir) = start_shards();
    let mut g = c.benchmark_group("cross_shard_round_trip");
    g.bench_function("reference_thread_ping_pong", |b| {
        b.iter_custom(|iters| {
            let (ping_tx, ping_rx) = flume::bounded::<u64>(1);
            let (pong_tx, pong_rx) = flume::bounded::<u64>(1);
            let echo = std::thread::spawn(move || {
                while let Ok(v) = ping_rx.recv() {
                    if pong_tx.send(v).is_err() {
                        break;
                    }
                }
            });
            let start = Instant::now();
            for i in 0..iters {
                ping_tx.send(i).expect("echo thread alive");
                pong_rx.recv().expect("echo thread answers");
            }
            let elapsed = start.elapsed();
            drop(ping_tx);
            echo.join().expect("echo thread ends");
            elapsed
        })
    });
    // A thread outside any executor (start-up, tools) asking a shard: one wake-up into glommio.
    let handle = set.router();
    g.bench_function("call_blocking_from_thread", |b| {
        b.iter(|| handle.call_blocking(ShardId(1), |reply| ShardRequest::List { reply }).map(|l| l.len()))
    });
    g.bench_function("call_one_at_a_time", |b| b.iter_custom(|iters| run(&driver, iters, 1)));
    // Per call, with 16 calls in flight from 16 tasks: what batching the wake-ups buys.
    g.bench_function("call_16_in_flight", |b| {
        b.iter_custom(|iters| {
            let calls = iters.div_ceil(16) * 16;
            run(&driver, calls, 16).mul_f64(iters as f64 / calls as f64)
        })
    });
    g.finish();
    drop(driver);
    set.shutdown();
    let _ = std::fs::remove_dir_all(dir);
}

criterion_group!(benches, cross_shard);
criterion_main!(benches);
