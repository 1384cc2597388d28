//! The log cleaner's schedule on a shard: passes over the compacted partitions the shard owns
//! (`cleanup.policy` with `compact`), in the background. The engine does the cleaning
//! ([`engine::log`]'s cleaner); the topic configs and the broker's cleaner settings that drive it
//! live here.
//!
//! At most `log.cleaner.threads` shards clean at the same moment (a broker-wide count; a shard
//! that finds no room waits its turn). Their I/O together stays under
//! `log.cleaner.io.max.bytes.per.second` (each running cleaner gets an equal share), and each
//! pass yields to the shard's other tasks after every chunk it reads or writes, so produce and
//! fetch on the same core are not held up behind it. A shard whose partitions had nothing due
//! sleeps `log.cleaner.backoff.ms`.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::server::ShardCtx;

/// How many shards are cleaning now (see the module docs).
#[derive(Debug, Default)]
pub struct CleanerSlots(AtomicUsize);

impl CleanerSlots {
    fn try_take(&self, max: usize) -> bool {
        self.0.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).is_ok()
    }
    fn give_back(&self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The shard's cleaner, forever.
pub async fn run(ctx: Rc<ShardCtx>) {
    let cfg = ctx.config();
    let backoff = Duration::from_millis(cfg.log_cleaner_backoff_ms.max(1));
    loop {
        glommio::timer::sleep(backoff).await;
        // Passes back to back while any partition had one due; then back off.
        while sweep(&ctx).await {}
    }
}

/// One round over the shard's compacted partitions; true if any pass ran.
pub async fn sweep(ctx: &ShardCtx) -> bool {
    let cfg = ctx.config();
    let threads = cfg.log_cleaner_threads.max(1);
    let slots = &ctx.broker.cleaner_slots;
    let mut worked = false;
    for tp in ctx.shard.partitions() {
        let Some(topic) = ctx.view.get(&tp.topic) else { continue };
        if !topic.config.compact {
            continue;
        }
        let Some(partition) = ctx.shard.partition(&tp) else { continue };
        while !slots.try_take(threads) {
            glommio::timer::sleep(Duration::from_millis(100)).await;
        }
        let rate = cfg.log_cleaner_io_bytes_per_second / threads as f64;
        let pace = Rc::new(Cell::new((Instant::now(), 0u64)));
        let throttle = move |bytes: u64| {
            let pace = pace.clone();
            async move {
                let (start, done) = pace.get();
                let done = done + bytes;
                pace.set((start, done));
                if rate.is_finite() && rate > 0.0 {
                    let due = Duration::from_secs_f64(done as f64 / rate);
                    if let Some(wait) = due.checked_sub(start.elapsed()) {
                        glommio::timer::sleep(wait).await;
                    }
                }
                glommio::yield_if_needed().await;
            }
        };
        let r = partition.clean(engine::now_ms(), &topic.config.cleaner, throttle).await;
        slots.give_back();
        match r {
            Ok(Some(stats)) => {
                worked = true;
                eprintln!(
                    "cleaned {}-{}: {} records removed ({} tombstones), {} markers removed, {} -> {} segments, {} bytes \
                     read, {} written",
                    tp.topic,
                    tp.partition,
                    stats.records_removed,
                    stats.tombstones_removed,
                    stats.markers_removed,
                    stats.segments_before,
                    stats.segments_after,
                    stats.bytes_read,
                    stats.bytes_written
                );
            }
            Ok(None) => {}
            // A failure poisons the log, which reports it to its next caller.
            Err(e) => eprintln!("cleaning {}-{} failed: {e}", tp.topic, tp.partition),
        }
        glommio::yield_if_needed().await;
    }
    worked
}
