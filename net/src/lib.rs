//! # Odradek's Kafka protocol server
//!
//! Unmodified Kafka clients talk to Odradek through this crate.
//!
//! ## Threading model
//!
//! Every shard (one glommio executor per core, see `engine::shard`) runs [`server`]'s service:
//! it binds the listener with SO_REUSEPORT, accepts connections and serves them on its own core
//! for their whole life. A request is framed and decoded on that core, validated there (record
//! batch CRCs included), and its partition work is sent to the owning shards as typed messages,
//! one per owner per request. Responses leave in request order per connection.
//!
//! Shared, `Send + Sync`: [`server::Broker`] (settings, the topic registry, connection count).
//! Per core, `!Send`: [`server::ShardCtx`] and every connection.
//!
//! ## Layout
//!
//! - [`frame`]: size-prefixed frames, size checked before allocation.
//! - [`api`]: the table of supported APIs and versions that drives ApiVersions.
//! - [`handlers`]: one module per API.
//! - [`errors`]: engine errors to Kafka error codes, in one place.
//! - [`topics`]: the persisted topic registry.
//! - [`config`]: broker settings and limits.
//!
//! ## Limits
//!
//! [`config::BrokerConfig`] names them all: `request_bytes_max` (frame size),
//! `connections_max`, `requests_in_flight_max` per connection, `fetch_wait_ms_max`,
//! `fetch_bytes_max`; plus [`server::NET_QUEUE_DEPTH`] and the engine's queue depths.

pub mod alloc;
pub mod api;
pub mod config;
pub mod errors;
pub mod frame;
pub mod handlers;
pub mod server;
pub mod topics;

pub use config::BrokerConfig;
pub use server::Broker;
