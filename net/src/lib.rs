//! # Odradek's Kafka protocol server
//!
//! Unmodified Kafka clients talk to Odradek through this crate.
//!
//! ## Threading model
//!
//! Every shard (one glommio executor per core, see `engine::shard`, started by
//! `replication::Node`) runs [`server`]'s service beside its door:
//! it binds the listener with SO_REUSEPORT, accepts connections and serves them on its own core
//! for their whole life. A request is framed and decoded on that core, validated there (record
//! batch CRCs included), and its partition work is sent to the owning shards' doors as typed
//! messages ([`server::Request`], through [`server::Router`]), one per owner per request.
//! Handlers never touch a partition's log: the owner's `replication::PartitionShard` does.
//! Responses leave in request order per connection.
//!
//! Shared, `Send + Sync`: [`server::Broker`] (settings, the topic registry, connection count).
//! Per core, `!Send`: [`server::ShardCtx`] and every connection.
//!
//! ## Layout
//!
//! - [`frame`]: size-prefixed frames, size checked before allocation.
//! - [`api`]: the table of supported APIs: versions, handler and the capability each handler
//!   receives.
//! - [`caps`]: those capabilities, narrow borrows of [`server::ShardCtx`].
//! - [`handlers`]: one module per API.
//! - [`coordinator`]: the group coordinators (classic and KIP-848) and their persistence.
//! - [`errors`]: engine errors to Kafka error codes, in one place.
//! - [`topics`]: the persisted topic registry.
//! - [`view`]: each shard's view of the topics with typed configs (changes arrive by message).
//! - [`config`]: broker settings and limits.
//! - [`alloc`]: the process allocator that keeps hostile element counts from aborting it.
//!
//! Per-shard state beyond the partition layer's: fetch sessions (KIP-227, bounded LRU cache),
//! the request-bytes budget and the group coordinator, which the shard's door serves
//! (`ShardRequest::Coordinator`). Retention by time and size runs on every shard for the
//! partitions it owns, driven by topic configs.
//!
//! ## Limits
//!
//! [`config::BrokerConfig`] names them all: `request_bytes_max` (frame size, checked before
//! allocation), `request_bytes_in_flight_max` (per shard), `connections_max`,
//! `connections_idle_ms_max`, `requests_in_flight_max` per connection, `fetch_wait_ms_max`,
//! `fetch_bytes_max`; plus the door's limits (`replication::DoorLimits`), the fetch session
//! limits in [`handlers::fetch`], [`topics::PARTITIONS_PER_TOPIC_MAX`] and the engine's.
//!
//! ## Untrusted input
//!
//! A frame that cannot be decoded closes its connection (as Kafka does), except an ApiVersions
//! request of an unknown version, answered in v0 format with UNSUPPORTED_VERSION. Decoders run
//! under `catch_unwind`; errors in one request never affect another connection.

pub mod alloc;
pub mod api;
pub mod caps;
pub mod config;
pub mod coordinator;
pub mod errors;
pub mod frame;
pub mod handlers;
pub mod server;
pub mod topics;
pub mod view;

pub use config::BrokerConfig;
pub use server::Broker;
