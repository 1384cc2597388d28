//! Newtypes for the numbers that cross module boundaries, so a shard index is never passed
//! where a node id or a leader epoch is expected.

use std::fmt;

/// A shard (core) of this node: an index into the router's inboxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(pub usize);

impl ShardId {
    pub fn index(self) -> usize {
        self.0
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A broker of the cluster (Kafka's `node.id` / `broker.id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub i32);

/// A partition's leader epoch: bumped each time its leadership changes; stamped on every batch
/// the leader appends and kept in the log's epoch checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaderEpoch(pub i32);

impl LeaderEpoch {
    pub fn get(self) -> i32 {
        self.0
    }
}

/// A producer id (idempotent and transactional producers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProducerId(pub i64);
