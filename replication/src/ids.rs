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

/// A record's logical position in its partition (Kafka's offset): the first record is 0, each
/// record takes the next. Not a byte position; the engine keeps those apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Offset(pub i64);

impl Offset {
    pub fn get(self) -> i64 {
        self.0
    }
    /// The offset right after this one.
    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
