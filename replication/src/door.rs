//! Each shard's one door: the pump that takes [`ShardRequest`]s from the shard's inbox and
//! admits them against named limits before spawning any work.
//!
//! Lives on: one shard; runs on glommio (its timers and tasks). Admission, per class:
//!
//! - **partition work** (appends, reads, offsets, admin): at most
//!   [`DoorLimits::data_in_flight_max`] at once. The pump takes a slot *before* it receives the
//!   next message, so a full shard stops reading its inbox, the bounded inbox
//!   ([`SHARD_QUEUE_DEPTH`]) fills, and senders wait in `send_async`: backpressure to the
//!   connections, which hold their request bytes meanwhile. Partition work never waits on
//!   another door, so a full door always drains.
//! - **long polls**: at most [`DoorLimits::long_polls_max`] waiting; past that a poll is
//!   answered `false` at once, and the fetch waits out its time on its own timer (no wake-up on
//!   data from this owner) instead of polling the owner again.
//! - **coordinator calls**: at most [`DoorLimits::coordinator_in_flight_max`]; past that the
//!   service refuses the call with its retriable error. They never hold the pump: a coordinator
//!   appends to its own shard's partitions through this same door.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use engine::io::Storage;
use engine::shard::TopicPartition;
use engine::sync::Notify;

use crate::ids::Offset;
use crate::shard::{PartitionShard, ShardRequest};

/// Messages a shard's inbox holds before senders wait (backpressure across cores).
pub const SHARD_QUEUE_DEPTH: usize = 1024;

/// The door's limits (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct DoorLimits {
    pub data_in_flight_max: usize,
    pub long_polls_max: usize,
    pub coordinator_in_flight_max: usize,
}

impl Default for DoorLimits {
    fn default() -> Self {
        Self { data_in_flight_max: 256, long_polls_max: 4096, coordinator_in_flight_max: 256 }
    }
}

/// What the door has admitted so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DoorStats {
    /// Partition requests admitted so far.
    pub data_admitted: u64,
    pub data_in_flight: usize,
    pub data_in_flight_peak: usize,
    pub long_polls: usize,
    pub long_polls_peak: usize,
    /// Long polls answered at once because the shard had `long_polls_max` waiting.
    pub long_polls_cut_short: u64,
    pub coordinator_in_flight: usize,
    pub coordinator_refused: u64,
}

/// A higher layer's coordinators on one shard (consumer groups, later transactions).
pub trait CoordinatorService<X> {
    /// Serves one call to completion.
    fn serve(&self, call: X) -> Pin<Box<dyn Future<Output = ()>>>;
    /// Answers a call the door cannot admit, with a retriable error.
    fn refuse(&self, call: X);
}

#[derive(Default)]
struct Counters {
    stats: Cell<DoorStats>,
}

impl Counters {
    fn update(&self, f: impl FnOnce(&mut DoorStats)) {
        let mut s = self.stats.get();
        f(&mut s);
        self.stats.set(s);
    }
}

/// Runs the door until a `Shutdown` request (or until every sender is gone). Partition work in
/// flight when shutdown arrives finishes first.
pub async fn run<S: Storage, X: 'static>(
    shard: Rc<PartitionShard<S>>,
    inbox: flume::Receiver<ShardRequest<X>>,
    limits: DoorLimits,
    coordinator: Option<Rc<dyn CoordinatorService<X>>>,
) {
    let slots = Rc::new(glommio::sync::Semaphore::new(limits.data_in_flight_max.max(1) as u64));
    let counters = Rc::new(Counters::default());
    loop {
        // A slot before the message: a full shard leaves the rest in its bounded inbox.
        let Ok(slot) = slots.acquire_static_permit(1).await else { return };
        let Ok(req) = inbox.recv_async().await else { return };
        match req {
            ShardRequest::Shutdown { reply } => {
                drop(slot);
                // Let admitted partition work finish before the logs close.
                let all = limits.data_in_flight_max.max(1) as u64;
                let _ = slots.acquire(all).await;
                shard.close().await;
                let _ = reply.send(());
                return;
            }
            ShardRequest::DoorStats { reply } => {
                drop(slot);
                let _ = reply.send(counters.stats.get());
            }
            ShardRequest::WaitForData { items, timeout, reply } => {
                drop(slot);
                if counters.stats.get().long_polls >= limits.long_polls_max {
                    counters.update(|s| s.long_polls_cut_short += 1);
                    let _ = reply.send(false);
                    continue;
                }
                counters.update(|s| {
                    s.long_polls += 1;
                    s.long_polls_peak = s.long_polls_peak.max(s.long_polls);
                });
                let (shard, counters) = (shard.clone(), counters.clone());
                glommio::spawn_local(async move {
                    wait_for_data(&shard, &items, timeout).await;
                    let _ = reply.send(true);
                    counters.update(|s| s.long_polls -= 1);
                })
                .detach();
            }
            ShardRequest::Coordinator(call) => {
                drop(slot);
                let Some(service) = coordinator.clone() else { continue };
                if counters.stats.get().coordinator_in_flight >= limits.coordinator_in_flight_max {
                    counters.update(|s| s.coordinator_refused += 1);
                    service.refuse(call);
                    continue;
                }
                counters.update(|s| s.coordinator_in_flight += 1);
                let counters = counters.clone();
                glommio::spawn_local(async move {
                    service.serve(call).await;
                    counters.update(|s| s.coordinator_in_flight -= 1);
                })
                .detach();
            }
            req => {
                counters.update(|s| {
                    s.data_admitted += 1;
                    s.data_in_flight += 1;
                    s.data_in_flight_peak = s.data_in_flight_peak.max(s.data_in_flight);
                });
                // Called here, not in the task: appends take their turn in inbox order.
                let work = shard.serve(req);
                let counters = counters.clone();
                glommio::spawn_local(async move {
                    work.await;
                    counters.update(|s| s.data_in_flight -= 1);
                    drop(slot);
                })
                .detach();
            }
        }
    }
}

/// Returns once any of the partitions' high watermark passes its offset, once one of them is
/// gone from this shard (deleted or recreated: the fetch's next read answers for it), or after
/// `timeout`.
///
/// The log's notify fires on every append and again when a sync moves the high watermark.
/// Under a policy that syncs (`Durability::Always`, `IntervalMs`) the append comes first and
/// the high watermark has not moved yet, so one notification is not enough: the condition is
/// checked again after each one, and only a high watermark past the offset ends the wait.
/// Answering on the append would cost the fetch an empty read and a second long poll.
async fn wait_for_data<S: Storage>(shard: &PartitionShard<S>, items: &[(TopicPartition, Offset)], timeout: Duration) {
    let parts: Vec<_> = items.iter().filter_map(|(tp, off)| shard.partition(tp).map(|p| (tp, p, *off))).collect();
    if parts.is_empty() {
        return;
    }
    let ready = || {
        parts.iter().any(|(tp, p, off)| {
            p.high_watermark() > *off || !shard.partition(tp).is_some_and(|now| Rc::ptr_eq(&now, p))
        })
    };
    let mut timer = std::pin::pin!(glommio::timer::sleep(timeout));
    loop {
        // Take the tickets before checking, so a change in between is not missed.
        let waits: Vec<_> = parts.iter().map(|(_, p, _)| p.append_notify()).map(|n| (n.ticket(), n)).collect();
        if ready() {
            return;
        }
        let timed_out = futures_lite::future::or(
            async {
                wait_any_append(waits).await;
                false
            },
            async {
                timer.as_mut().await;
                true
            },
        )
        .await;
        if timed_out {
            return;
        }
    }
}

/// Partitions one task waits on in a long poll. Each listens with a reference to the waiting
/// task, and glommio counts a task's references in 16 bits: a fetch naming more partitions
/// waits through helper tasks of this many each.
const LONG_POLL_PARTITIONS_PER_TASK: usize = 1024;

/// Completes at the first append to any of the logs after its ticket was taken.
async fn wait_any_append(waits: Vec<(u64, Rc<Notify>)>) {
    async fn any(waits: &[(u64, Rc<Notify>)]) {
        let mut futs: Vec<_> = waits.iter().map(|(t, n)| Box::pin(n.listen_since(*t))).collect();
        std::future::poll_fn(move |cx| {
            for f in futs.iter_mut() {
                if f.as_mut().poll(cx).is_ready() {
                    return std::task::Poll::Ready(());
                }
            }
            std::task::Poll::Pending
        })
        .await
    }
    if waits.len() <= LONG_POLL_PARTITIONS_PER_TASK {
        return any(&waits).await;
    }
    let (tx, rx) = flume::bounded::<()>(1);
    // Dropping the helpers (when this future completes or is dropped) cancels them.
    let _helpers: Vec<glommio::Task<()>> = waits
        .chunks(LONG_POLL_PARTITIONS_PER_TASK)
        .map(|chunk| {
            let chunk = chunk.to_vec();
            let tx = tx.clone();
            glommio::spawn_local(async move {
                any(&chunk).await;
                let _ = tx.try_send(());
            })
        })
        .collect();
    drop(tx);
    let _ = rx.recv_async().await;
}
