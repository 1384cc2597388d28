//! Where a partition lives, and the way to its owner's door.
//!
//! Lives on: every core (`Send + Sync`, cheap to clone).

use std::collections::HashMap;
use std::sync::Arc;

use engine::shard::{PlacementFn, TopicPartition};

use crate::ids::ShardId;
use crate::shard::{PartitionError, Reply, ShardRequest};

/// The placement table: partition → owning shard. A partition without an entry is placed by
/// the default rule (`engine::shard::shard_for`: consecutive partitions of a topic on
/// consecutive shards from a hash of the topic, stable across restarts); entries place a
/// partition elsewhere. The storage shards recover exactly what this table gives them.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    entries: HashMap<TopicPartition, ShardId>,
}

impl Placement {
    /// Every partition where the default rule puts it.
    pub fn new() -> Self {
        Self::default()
    }

    /// Places `tp` on `shard` whatever the default rule says.
    pub fn with_entry(mut self, tp: TopicPartition, shard: ShardId) -> Self {
        self.entries.insert(tp, shard);
        self
    }

    /// The owner of `tp` among `shard_count` shards.
    pub fn owner(&self, tp: &TopicPartition, shard_count: usize) -> ShardId {
        match self.entries.get(tp) {
            Some(s) if s.index() < shard_count => *s,
            _ => ShardId(engine::shard::shard_for(tp, shard_count)),
        }
    }

    /// The same table as the engine's start-up recovery asks it.
    pub fn as_fn(self: &Arc<Self>) -> PlacementFn {
        let table = self.clone();
        Arc::new(move |tp: &TopicPartition, n: usize| table.owner(tp, n).index())
    }
}

/// Every shard's door, and the placement table that says which door a partition is behind.
pub struct Router<X> {
    inboxes: Arc<Vec<flume::Sender<ShardRequest<X>>>>,
    placement: Arc<Placement>,
}

impl<X> Clone for Router<X> {
    fn clone(&self) -> Self {
        Self { inboxes: self.inboxes.clone(), placement: self.placement.clone() }
    }
}

impl<X> Router<X> {
    pub fn new(inboxes: Vec<flume::Sender<ShardRequest<X>>>, placement: Arc<Placement>) -> Self {
        Self { inboxes: Arc::new(inboxes), placement }
    }

    pub fn shard_count(&self) -> usize {
        self.inboxes.len()
    }

    /// Every shard, in order.
    pub fn shards(&self) -> impl Iterator<Item = ShardId> {
        (0..self.inboxes.len()).map(ShardId)
    }

    pub fn owner(&self, tp: &TopicPartition) -> ShardId {
        self.placement.owner(tp, self.inboxes.len())
    }

    /// Sends a request without waiting for an answer (waits for room in the inbox).
    pub async fn send(&self, shard: ShardId, req: ShardRequest<X>) -> Result<(), PartitionError> {
        let inbox = self.inboxes.get(shard.index()).ok_or(PartitionError::ShardGone(shard))?;
        inbox.send_async(req).await.map_err(|_| PartitionError::ShardGone(shard))
    }

    /// Sends a request built around a fresh reply channel and waits for the answer.
    pub async fn call<T>(
        &self,
        shard: ShardId,
        make: impl FnOnce(Reply<T>) -> ShardRequest<X>,
    ) -> Result<T, PartitionError> {
        let rx = self.ask(shard, make).await?;
        rx.recv_async().await.map_err(|_| PartitionError::ShardGone(shard))
    }

    /// Sends a request built around a fresh reply channel and returns the channel: the
    /// request is in the shard's inbox (behind every request sent before it) when this returns.
    pub async fn ask<T>(
        &self,
        shard: ShardId,
        make: impl FnOnce(Reply<T>) -> ShardRequest<X>,
    ) -> Result<flume::Receiver<T>, PartitionError> {
        let (tx, rx) = flume::bounded(1);
        self.send(shard, make(tx)).await?;
        Ok(rx)
    }

    /// Blocking variant for threads outside any executor (start-up, tests, tools).
    pub fn call_blocking<T>(
        &self,
        shard: ShardId,
        make: impl FnOnce(Reply<T>) -> ShardRequest<X>,
    ) -> Result<T, PartitionError> {
        futures_lite::future::block_on(self.call(shard, make))
    }
}
