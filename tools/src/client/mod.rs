//! # A Kafka client core
//!
//! Plain Kafka protocol (the `kafka-protocol` crate's generated messages), so it works against
//! any Kafka broker, not only Odradek. Record batches are built and parsed with the broker's
//! own `engine::records` (builder, the five codecs, CRC checks).
//!
//! Three layers, usable separately:
//!
//! - [`codec`] is sans-IO, for any I/O loop (e.g. a pipelined load generator that keeps many
//!   requests in flight on one socket and matches responses by correlation id):
//!   - [`codec::encode_request`]`(version, correlation_id, client_id, &req) -> Bytes`: a whole
//!     frame (size prefix, request header v1/v2 as the API and version require, body);
//!   - [`codec::read_frame`]`(&mut impl Read, bytes_max)`: one response frame's body;
//!   - [`codec::response_correlation_id`]`(&frame)`: peek the id to find the request;
//!   - [`codec::decode_response`]`::<R>(version, frame) -> (correlation_id, R)`, `R` a
//!     response type such as `ProduceResponse` (its header version is derived from `R`);
//!   - [`codec::Versions::negotiate`]`(&ApiVersionsResponse)`: per API key, `min(our max,
//!     broker max)`; [`codec::Versions::get`] gives it or [`Error::Unsupported`].
//!     [`codec::CLIENT_VERSIONS`] lists the ranges this client speaks.
//! - [`records`]: [`records::build_batch`]`(&[Record], Compression) -> Bytes` (one v2 batch
//!   for a Produce request) and [`records::decode_fetched`]`(bytes, from_offset)` (records of a
//!   Fetch response, partial tail batch ignored).
//! - [`Connection`]: one blocking TCP connection (std, connect/read/write time-outs) that
//!   negotiates versions on connect; `send(&req)` uses the negotiated version, `send_only`
//!   writes without reading (Produce `acks=0`), `send_version` forces one.
//! - [`Client`]: a bootstrap list, a [`Metadata`] cache (brokers, topics, partitions,
//!   leaders), connections per node opened on demand, group coordinators found with
//!   FindCoordinator, and typed operations: [`Client::refresh_metadata`], [`Client::topic`],
//!   [`Client::create_topics`], [`Client::delete_topics`], [`Client::create_partitions`],
//!   [`Client::describe_configs`], [`Client::alter_configs`] (IncrementalAlterConfigs),
//!   [`Client::produce`] / [`Client::produce_batch`] (acks, compression, headers in
//!   [`Record`]), [`Client::fetch`], [`Client::list_offsets`] (earliest/latest/timestamp),
//!   [`Client::list_groups`], [`Client::describe_group`], [`Client::delete_groups`],
//!   [`Client::offset_fetch`], [`Client::offset_commit`] (standalone: generation -1),
//!   [`Client::offset_delete`]; transactions: [`Client::list_transactions`],
//!   [`Client::describe_transactions`] (each id's coordinator found with FindCoordinator),
//!   [`Client::abort_transaction`] (an ABORT marker straight to the partition's leader).
//!
//! Every failure is one [`Error`]: broker errors carry Kafka's error name
//! (`UNKNOWN_TOPIC_OR_PARTITION`, see [`error::error_name`]) and [`Error::hint`] says what
//! to do about it.
//!
//! ```no_run
//! use odradek::client::{Client, ClientConfig, ProduceOptions, Record};
//! let mut c = Client::connect(ClientConfig::new("127.0.0.1:9092"))?;
//! let r = Record::new(Some(b"k".to_vec()), Some(b"v".to_vec())).with_timestamp(engine::now_ms());
//! let offset = c.produce("orders", 0, &[r], &ProduceOptions::default())?;
//! # Ok::<(), odradek::client::Error>(())
//! ```
//!
//! For a pipelined loop: connect a [`Connection`] (it negotiates versions), take its socket
//! and versions with [`Connection::into_parts`] (or negotiate from an ApiVersions exchange of
//! your own), then write `encode_request` frames back to back and read with `read_frame` +
//! `response_correlation_id` + `decode_response`. Produce with `acks=0` gets no response.

#[allow(clippy::module_inception)]
mod client;
pub mod codec;
mod conn;
pub mod error;
pub mod partitioner;
pub mod records;
mod txn;

pub use client::{
    AlterOp, BrokerInfo, Client, ClientConfig, ConfigEntry, ConfigResource, FetchOptions, FetchSpec, FetchedPartition,
    GroupDescription, GroupListing, GroupMember, Metadata, NewTopic, OffsetSpec, PartitionInfo, ProduceOptions,
    TopicInfo,
};
pub use conn::Connection;
pub use engine::records::Record;
pub use engine::Compression;
pub use error::{Error, Result};
pub use txn::{AbortTransactionSpec, TransactionDescription, TransactionListing};
