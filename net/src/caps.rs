//! What each handler may reach. [`ShardCtx`] owns everything a shard serves with; a handler
//! receives one of these borrows of it instead, and the API table ([`crate::api`]) names which
//! one each handler gets. A handler that is not given the topic registry cannot change it, and
//! one that is not given the router cannot reach a partition.
//!
//! Lives on: one shard (they borrow its [`ShardCtx`] for one request).
//!
//! | capability      | handlers                                                            |
//! |-----------------|---------------------------------------------------------------------|
//! | [`Data`]        | ListOffsets, DeleteRecords, OffsetForLeaderEpoch                    |
//! | [`Produce`]     | Produce                                                             |
//! | [`Fetch`]       | Fetch                                                               |
//! | [`LogDirs`]     | DescribeLogDirs                                                     |
//! | [`Cluster`]     | Metadata, DescribeTopicPartitions, DescribeCluster, FindCoordinator |
//! | [`Admin`]       | CreateTopics, DeleteTopics, CreatePartitions, the config APIs       |
//! | [`Router`]      | the group and transaction APIs (it reaches their coordinator shard) |
//! | [`ProducerInit`]| InitProducerId (ids for idempotence, or the transaction coordinator)|
//! | `()`            | ApiVersions                                                         |
//!
//! The shard's own services are not handlers and keep the whole context: the group
//! coordinator the door serves (`handlers::groups::serve`, `coordinator::store`) and the
//! retention sweep.

use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use crate::config::BrokerConfig;
use crate::handlers::admin;
use crate::handlers::fetch::FetchSessions;
use crate::handlers::init_producer_id::ProducerIds;
use crate::server::{Router, ShardCtx};
use crate::topics::Topics;
use crate::view::{MetadataView, TopicView};

/// Partitions: their owners through the router, their topics through this shard's view.
#[derive(Clone, Copy)]
pub struct Data<'a> {
    pub router: &'a Router,
    pub view: &'a MetadataView,
}

/// Produce: partitions, and a missing topic auto-created with the broker's defaults.
#[derive(Clone, Copy)]
pub struct Produce<'a> {
    pub router: &'a Router,
    pub view: &'a MetadataView,
    pub auto_create: AutoCreate<'a>,
    /// `transaction.partition.verification.enable`: transactional batches are checked with
    /// their coordinator first (through `router`).
    pub verify_transactions: bool,
}

/// Fetch: partitions, this shard's fetch sessions and the broker's fetch limits.
#[derive(Clone, Copy)]
pub struct Fetch<'a> {
    pub router: &'a Router,
    pub view: &'a MetadataView,
    pub sessions: &'a FetchSessions,
    /// `fetch_bytes_max`: the most one response carries, whatever the client asks.
    pub bytes_max: usize,
    /// `fetch_wait_ms_max`: the longest long poll, whatever the client asks.
    pub wait_ms_max: u64,
}

/// DescribeLogDirs: partitions (their sizes, from their owners) and the data directory.
#[derive(Clone, Copy)]
pub struct LogDirs<'a> {
    pub router: &'a Router,
    pub view: &'a MetadataView,
    pub data_dir: &'a Path,
}

/// What describes the cluster to a client: the broker's identity and settings, the topics as
/// this shard sees them, their owners (for leader epochs), and auto-creation of a missing
/// topic (Metadata's `allow_auto_topic_creation`, FindCoordinator's `__consumer_offsets`).
#[derive(Clone, Copy)]
pub struct Cluster<'a> {
    pub config: &'a BrokerConfig,
    pub router: &'a Router,
    pub view: &'a MetadataView,
    pub auto_create: AutoCreate<'a>,
}

/// InitProducerId: producer ids for idempotent producers, and the router to the transaction
/// coordinator of a transactional id.
#[derive(Clone, Copy)]
pub struct ProducerInit<'a> {
    pub ids: &'a ProducerIds,
    pub router: &'a Router,
}

/// Topic administration: the registry (the truth the views follow), the partitions' owners,
/// this shard's view, and the broker's settings (default configs).
#[derive(Clone, Copy)]
pub struct Admin<'a> {
    pub config: &'a BrokerConfig,
    pub topics: &'a Arc<Topics>,
    pub router: &'a Router,
    pub view: &'a MetadataView,
}

/// The one admin operation the data path may trigger: creating a missing topic with the
/// broker's defaults. Nothing else of [`Admin`] is reachable through it.
#[derive(Clone, Copy)]
pub struct AutoCreate<'a> {
    admin: Admin<'a>,
}

impl AutoCreate<'_> {
    /// The topic as this shard's view has it, auto-created if `allow` and the broker's
    /// `auto_create_topics` say so (see [`admin::get_or_auto_create`]).
    pub async fn topic(self, name: &str, allow: bool) -> Result<Rc<TopicView>, i16> {
        admin::get_or_auto_create(self.admin, name, allow).await
    }

    /// Creates `__consumer_offsets` on first use (see [`crate::coordinator::store::ensure_topic`]).
    pub async fn offsets_topic(self) -> Result<(), i16> {
        crate::coordinator::store::ensure_topic(self.admin).await
    }

    /// Creates `__transaction_state` on first use (see [`crate::coordinator::txn::ensure_topic`]).
    pub async fn txn_topic(self) -> Result<(), i16> {
        crate::coordinator::txn::ensure_topic(self.admin).await
    }
}

impl ShardCtx {
    pub fn data(&self) -> Data<'_> {
        Data { router: &self.router, view: &self.view }
    }
    pub fn produce(&self) -> Produce<'_> {
        Produce {
            router: &self.router,
            view: &self.view,
            auto_create: self.auto_create(),
            verify_transactions: self.config().transaction_partition_verification,
        }
    }
    pub fn fetch(&self) -> Fetch<'_> {
        let config = self.config();
        Fetch {
            router: &self.router,
            view: &self.view,
            sessions: &self.fetch_sessions,
            bytes_max: config.fetch_bytes_max,
            wait_ms_max: config.fetch_wait_ms_max,
        }
    }
    pub fn log_dirs(&self) -> LogDirs<'_> {
        LogDirs { router: &self.router, view: &self.view, data_dir: &self.config().data_dir }
    }
    pub fn cluster(&self) -> Cluster<'_> {
        Cluster { config: self.config(), router: &self.router, view: &self.view, auto_create: self.auto_create() }
    }
    pub fn admin(&self) -> Admin<'_> {
        Admin { config: self.config(), topics: &self.broker.topics, router: &self.router, view: &self.view }
    }
    pub fn auto_create(&self) -> AutoCreate<'_> {
        AutoCreate { admin: self.admin() }
    }
    /// The group and transaction APIs reach their coordinator shard through the router, and
    /// nothing else.
    pub fn group_router(&self) -> &Router {
        &self.router
    }
    pub fn producer_init(&self) -> ProducerInit<'_> {
        ProducerInit { ids: &self.broker.producer_ids, router: &self.router }
    }
    /// For the handlers that need nothing of the shard (ApiVersions).
    pub fn nothing(&self) {}
}
