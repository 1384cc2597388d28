//! Wakers of one shard's tasks, woken and dropped on another thread while the owner finishes
//! and forgets those tasks.
//!
//! Odradek's shards hand each other work and replies through channels, so a task's waker often
//! sits in a channel that another core wakes or drops. Stock glommio 0.9 let a foreign thread
//! take the reference count of a task to zero and back to one (`drop_waker`'s foreign branch,
//! and `wake`, which is a clone plus that drop); an owner that dropped the task's `JoinHandle`
//! inside that gap freed the task, and the foreign thread then queued a waker to the freed
//! memory: a double free that aborted the broker under load. The patched copy in
//! `vendor/glommio` hands a foreign reference to the owner instead of counting it down.
//!
//! Each round, a task on the owner parks its waker in a slot and completes on a local wake; a
//! plain thread takes the waker and wakes or drops it at the moment the owner drops the
//! `JoinHandle`. Against stock glommio a million rounds (about 2 s) tripped its reference count
//! assertion about twenty times (a count already at zero), each one a task freed with a waker
//! still queued to it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use glommio::{LocalExecutorBuilder, Placement};

/// Panics anywhere in the process. glommio catches a panic inside a waker and only logs it, so
/// a broken reference count would otherwise go unseen.
static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Rounds to run; `FOREIGN_WAKER_ROUNDS` raises it for a longer hunt.
fn rounds() -> u64 {
    std::env::var("FOREIGN_WAKER_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000)
}

/// What the owner and the foreign thread share for one round.
struct Slot {
    waker: Mutex<Option<Waker>>,
    /// Round number the owner has published a waker for.
    published: AtomicU64,
    /// Round number whose task has completed.
    finished: AtomicU64,
    /// Round number the foreign thread has finished with.
    done: AtomicU64,
}

/// One task: park a clone of the waker for the foreign thread, wake itself locally, and finish
/// on its second poll. The foreign clone is then the task's last reference but the handle's.
async fn parked_task(slot: Arc<Slot>, round: u64) -> u64 {
    let mut polls = 0u32;
    std::future::poll_fn(|cx| {
        polls += 1;
        if polls == 1 {
            if let Ok(mut w) = slot.waker.lock() {
                *w = Some(cx.waker().clone());
            }
            slot.published.store(round, Ordering::Release);
            cx.waker().wake_by_ref();
            Poll::Pending
        } else {
            slot.finished.store(round, Ordering::Release);
            Poll::Ready(round)
        }
    })
    .await
}

#[test]
fn foreign_wakes_and_drops_race_owner_handle_drops() {
    let slot = Arc::new(Slot {
        waker: Mutex::new(None),
        published: AtomicU64::new(0),
        finished: AtomicU64::new(0),
        done: AtomicU64::new(0),
    });
    let woken = Arc::new(AtomicUsize::new(0));

    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::Relaxed);
        default_hook(info);
    }));
    let rounds = rounds();
    let foreign = {
        let (slot, woken) = (slot.clone(), woken.clone());
        std::thread::spawn(move || {
            let mut seed = 0x9e37_79b9_7f4a_7c15u64;
            for round in 1..=rounds {
                while slot.published.load(Ordering::Acquire) < round {
                    std::hint::spin_loop();
                }
                let waker = slot.waker.lock().ok().and_then(|mut w| w.take());
                while slot.finished.load(Ordering::Acquire) < round {
                    std::hint::spin_loop();
                }
                // A varying delay sweeps the foreign drop across the owner's handle drop.
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                for _ in 0..seed % 64 {
                    std::hint::spin_loop();
                }
                if let Some(waker) = waker {
                    // Alternate the two foreign paths: wake by value, and a plain drop.
                    if round % 2 == 0 {
                        waker.wake();
                        woken.fetch_add(1, Ordering::Relaxed);
                    } else {
                        drop(waker);
                    }
                }
                slot.done.store(round, Ordering::Release);
            }
        })
    };

    let owner_slot = slot.clone();
    let owner = LocalExecutorBuilder::new(Placement::Unbound)
        .spawn(move || async move {
            let mut sum = 0u64;
            for round in 1..=rounds {
                let handle = glommio::spawn_local(parked_task(owner_slot.clone(), round));
                // Drop the handle once the task has finished, while the foreign thread may be
                // busy with the waker.
                while owner_slot.finished.load(Ordering::Acquire) < round {
                    glommio::executor().yield_task_queue_now().await;
                }
                // And a varying delay on this side, so the two meet in every order.
                for _ in 0..(round.wrapping_mul(0x9e37_79b9) >> 7) % 48 {
                    std::hint::spin_loop();
                }
                drop(handle);
                sum += round;
                // Let the foreign thread finish the round before the next task reuses memory.
                while owner_slot.done.load(Ordering::Acquire) < round {
                    glommio::executor().yield_task_queue_now().await;
                }
            }
            sum
        })
        .expect("owner executor starts");

    let sum = owner.join().expect("owner executor runs to the end");
    foreign.join().expect("foreign thread runs to the end");
    assert_eq!(PANICS.load(Ordering::Relaxed), 0, "a waker panicked: see the log above");
    assert_eq!(sum, rounds * (rounds + 1) / 2);
    assert_eq!(woken.load(Ordering::Relaxed) as u64, rounds / 2);
}
