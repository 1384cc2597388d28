//! One node of the simulation: two storage shards over a shared in-memory store, their
//! partition shards, and a pump per shard between the router's inboxes and
//! `PartitionShard::serve` (the door's job, without its glommio timers and limits).

use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use engine::budget::MemoryBudget;
use engine::io::mem::MemStorage;
use engine::log::LogConfig;
use engine::shard::{PlacementFn, Shard, Spawner};
use replication::{LeaderEpoch, NodeId, PartitionShard, Placement, Router};

use super::exec::{clock, Exec, Kind};

/// These simulations make no coordinator calls.
pub enum NoCall {}
pub type Req = replication::ShardRequest<NoCall>;

pub const SHARDS: usize = 2;
pub const DATA_DIR: &str = "/sim/data";
/// Each shard's budget: the engine's minimum, so trimming is possible but rare.
const SHARD_MEMORY_BYTES: usize = 16 << 20;

/// A running node: its shards and the router to them.
pub struct Life {
    pub stores: Vec<Rc<Shard<MemStorage>>>,
    pub shards: Vec<Rc<PartitionShard<MemStorage>>>,
    pub router: Router<NoCall>,
}

/// What a life is built from; the same for every life of a seed.
pub struct NodeSpec {
    pub storage: MemStorage,
    pub config: LogConfig,
    pub placement: Arc<Placement>,
    pub inbox_depth: usize,
}

impl NodeSpec {
    /// The storage shards of a new life; each spawns its committer on `exec`. Their logs are
    /// loaded by the caller (an async step), then [`NodeSpec::serve`] completes the life.
    pub fn stores(&self, exec: &Rc<Exec>) -> Vec<Rc<Shard<MemStorage>>> {
        let spawner: Spawner = exec.spawner();
        (0..SHARDS)
            .map(|id| {
                let budget = MemoryBudget::new(SHARD_MEMORY_BYTES);
                let dir = Path::new(DATA_DIR);
                Shard::new(id, SHARDS, self.storage.clone(), dir, self.config, spawner.clone(), clock, budget)
            })
            .collect()
    }

    pub fn placement_fn(&self) -> PlacementFn {
        self.placement.as_fn()
    }

    /// Leads the loaded partitions in `generation` and starts a pump per shard.
    pub fn serve(
        &self,
        exec: &Rc<Exec>,
        stores: Vec<Rc<Shard<MemStorage>>>,
        loaded: Vec<Vec<engine::shard::TopicPartition>>,
        generation: i32,
    ) -> Life {
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..SHARDS).map(|_| flume::bounded(self.inbox_depth)).unzip();
        let router = Router::new(senders, self.placement.clone());
        let mut shards = Vec::new();
        for ((store, loaded), inbox) in stores.iter().zip(loaded).zip(receivers) {
            let shard = PartitionShard::new(store.clone(), loaded, NodeId(1), LeaderEpoch(generation));
            exec.spawn(Kind::Node, pump(shard.clone(), inbox, exec.spawner()));
            shards.push(shard);
        }
        Life { stores, shards, router }
    }
}

/// A shard's pump: each request is served by a task of its own (requests interleave, as
/// behind the door); a shutdown waits for the ones in flight, closes the logs and stops.
async fn pump(shard: Rc<PartitionShard<MemStorage>>, inbox: flume::Receiver<Req>, spawn: Spawner) {
    let in_flight = Rc::new(Cell::new(0usize));
    while let Ok(req) = inbox.recv_async().await {
        if let Req::Shutdown { .. } = req {
            while in_flight.get() > 0 {
                engine::sync::yield_now().await;
            }
            shard.serve(req).await;
            return;
        }
        in_flight.set(in_flight.get() + 1);
        let (work, in_flight) = (shard.serve(req), in_flight.clone());
        spawn(Box::pin(async move {
            work.await;
            in_flight.set(in_flight.get() - 1);
        }));
    }
}
