//! Broker settings: every limit the server enforces, named, with Kafka's defaults where Kafka
//! has one. Built once at start-up and shared read-only by every shard.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Settings of one broker process.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Where every shard listens (all shards bind the same address with SO_REUSEPORT).
    pub listen: SocketAddr,
    /// `advertised.listeners`: the host and port clients are told to connect to.
    pub advertised_host: String,
    pub advertised_port: i32,
    pub node_id: i32,
    pub cluster_id: String,
    pub data_dir: PathBuf,
    /// `num.partitions`: partitions of an auto-created topic (and of CreateTopics with -1).
    pub num_partitions: i32,
    /// `auto.create.topics.enable`.
    pub auto_create_topics: bool,
    /// `message.max.bytes`: the largest record batch a topic accepts unless it overrides it.
    pub message_max_bytes: i32,
    /// `log.segment.bytes`.
    pub segment_bytes: i64,
    /// `log.retention.ms` (-1: forever).
    pub retention_ms: i64,
    /// `log.retention.bytes` (-1: unlimited).
    pub retention_bytes: i64,
    /// `log.flush.interval.messages` (`None`: not set; see `handlers::admin::durability_of`).
    pub flush_interval_messages: Option<i64>,
    /// `log.flush.interval.ms` (`None`: not set). Unset with the above too, every log syncs
    /// before it acknowledges (`Durability::Always`): Odradek is durable unless told otherwise.
    pub flush_interval_ms: Option<i64>,
    /// `log.retention.check.interval.ms`: how often each shard applies retention. Kafka's
    /// default is 5 minutes; Odradek's 5 s, because a sweep that finds nothing to delete costs
    /// a walk over the shard's own partitions only, and a user who sets `retention.ms=1000`
    /// expects to see it act in seconds, not minutes.
    pub retention_check_interval_ms: u64,
    /// The broker properties given at start-up (Kafka's names, as written), for
    /// DescribeConfigs' STATIC_BROKER_CONFIG sources and synonyms.
    pub static_props: std::collections::BTreeMap<String, String>,
    /// Topic config defaults set by broker properties that have no setting of their own here
    /// (`log.cleaner.delete.retention.ms=...` as `delete.retention.ms`, `log.roll.hours` as
    /// `segment.ms`, ...): topic config name to value, in the topic config's unit. See
    /// `config_defs::broker_topic_defaults`.
    pub topic_defaults: std::collections::BTreeMap<String, String>,
    /// `socket.request.max.bytes`: a frame larger than this closes the connection before any
    /// allocation.
    pub request_bytes_max: usize,
    /// `queued.max.request.bytes`: request bytes one shard holds at once (read but not yet
    /// answered), over all its connections; readers wait for room before allocating a body.
    pub request_bytes_in_flight_max: usize,
    /// `max.connections`: connections beyond this (over all shards) are closed on accept.
    pub connections_max: usize,
    /// `connections.max.idle.ms`: a connection that sends no request for this long is closed.
    pub connections_idle_ms_max: u64,
    /// Requests a connection may have in flight before the server stops reading from it.
    pub requests_in_flight_max: usize,
    /// Upper bound on a Fetch long poll, whatever the client asks.
    pub fetch_wait_ms_max: u64,
    /// Upper bound on the bytes of one Fetch response (`fetch.max.bytes`).
    pub fetch_bytes_max: usize,
    /// `group.min.session.timeout.ms` / `group.max.session.timeout.ms`: the session timeouts
    /// classic members may ask for.
    pub group_session_timeout_ms_min: i32,
    pub group_session_timeout_ms_max: i32,
    /// `group.consumer.session.timeout.ms`: a KIP-848 member's session.
    pub group_consumer_session_timeout_ms: u64,
    /// `group.consumer.heartbeat.interval.ms`: what KIP-848 members are told. Kafka's default
    /// is 5 s; 1 s here, because each reconciliation step (revoke, then assign) waits for a
    /// heartbeat, so a rebalance takes a few intervals.
    pub group_consumer_heartbeat_interval_ms: i32,
    /// `odradek.log.memory.bytes`: memory for the logs' write buffers and tail caches, split
    /// evenly over the shards (`None`: an eighth of the machine's memory). Produce waits for
    /// writes rather than pass it; caches shrink to stay within it.
    pub log_memory_bytes: Option<usize>,
    /// `producer.id.expiration.ms`: a partition forgets an idempotent producer that stored
    /// nothing in it for this long (a retry after that may be stored again).
    pub producer_id_expiration_ms: i64,
    /// `transaction.max.timeout.ms`: the longest transaction timeout a producer may ask for.
    pub transaction_max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`: a transactional id with no transaction for this long
    /// is forgotten.
    pub transactional_id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how often each
    /// transaction coordinator looks for transactions past their timeout (and ids to forget).
    pub transaction_cleanup_interval_ms: u64,
    /// `transaction.partition.verification.enable` (KIP-890): a transactional batch is written
    /// only to a partition its transaction coordinator has in the producer's transaction.
    pub transaction_partition_verification: bool,
    /// `log.cleaner.enable`: compacted topics are cleaned (each shard cleans the partitions it
    /// owns, in the background).
    pub log_cleaner_enable: bool,
    /// `log.cleaner.threads`: how many shards may be cleaning at the same moment (shards own
    /// their partitions, so the cleaning is each shard's own; this bounds how many do it at once).
    pub log_cleaner_threads: usize,
    /// `log.cleaner.backoff.ms`: how long a shard's cleaner sleeps when nothing is due.
    pub log_cleaner_backoff_ms: u64,
    /// `log.cleaner.dedupe.buffer.size`: key-map memory over all cleaners (split between the
    /// `log.cleaner.threads` that may run at once).
    pub log_cleaner_dedupe_buffer_bytes: usize,
    /// `log.cleaner.io.max.bytes.per.second`: read plus write bandwidth over all cleaners.
    pub log_cleaner_io_bytes_per_second: f64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9092)),
            advertised_host: "127.0.0.1".into(),
            advertised_port: 9092,
            node_id: 0,
            cluster_id: "odradek-single-node".into(),
            data_dir: PathBuf::from("./data"),
            num_partitions: 1,
            auto_create_topics: true,
            message_max_bytes: 1_048_588,
            segment_bytes: 1 << 30,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            flush_interval_messages: None,
            flush_interval_ms: None,
            retention_check_interval_ms: 5000,
            static_props: Default::default(),
            topic_defaults: Default::default(),
            request_bytes_max: 100 * 1024 * 1024,
            request_bytes_in_flight_max: 512 * 1024 * 1024,
            connections_max: 10_000,
            connections_idle_ms_max: 600_000,
            requests_in_flight_max: 16,
            fetch_wait_ms_max: 30_000,
            fetch_bytes_max: 55 * 1024 * 1024,
            group_session_timeout_ms_min: 6000,
            group_session_timeout_ms_max: 1_800_000,
            group_consumer_session_timeout_ms: 45_000,
            group_consumer_heartbeat_interval_ms: 1000,
            log_memory_bytes: None,
            producer_id_expiration_ms: 86_400_000,
            transaction_max_timeout_ms: 900_000,
            transactional_id_expiration_ms: 604_800_000,
            transaction_cleanup_interval_ms: 10_000,
            log_cleaner_enable: true,
            log_cleaner_threads: 1,
            log_cleaner_backoff_ms: 15_000,
            log_cleaner_dedupe_buffer_bytes: 128 << 20,
            log_cleaner_io_bytes_per_second: f64::MAX,
            transaction_partition_verification: true,
        }
    }
}
