//! The blocking [`Client`]: bootstrap, metadata cache, per-node connections, typed operations.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};

use super::conn::Connection;
use super::error::{Error, Result};
use super::records::{build_batch, decode_fetched};
use engine::records::Record;
use engine::Compression;

/// Attempts after the first for retriable errors of produce and fetch.
const RETRIES: u64 = 3;

/// Retriable broker errors worth a metadata refresh and another try; an unknown topic is not
/// (the metadata was just refreshed to find its leader).
fn retry_on(e: &Error) -> bool {
    e.is_retriable() && e.kafka_code() != Some(3)
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}
fn topic_name(v: &str) -> TopicName {
    TopicName(s(v))
}
fn group_id(v: &str) -> GroupId {
    GroupId(s(v))
}

/// How a client connects.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port` of brokers to try, in order, for the first connection.
    pub bootstrap: Vec<String>,
    /// The `client.id` sent with every request.
    pub client_id: String,
    /// Time-out of a TCP connect and of every request's response.
    pub timeout: Duration,
}

impl ClientConfig {
    /// A config from a comma-separated bootstrap list (`host:port,host:port`).
    pub fn new(bootstrap: &str) -> Self {
        Self {
            bootstrap: bootstrap.split(',').map(str::trim).filter(|b| !b.is_empty()).map(str::to_string).collect(),
            client_id: "odradek-cli".to_string(),
            timeout: Duration::from_secs(30),
        }
    }
}

/// A broker of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

/// A partition as the metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    /// The leader's node id, -1 when there is none.
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Kafka error code of the partition (0 = none).
    pub error_code: i16,
}

/// A topic as the metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub id: uuid::Uuid,
    pub internal: bool,
    /// Sorted by partition index.
    pub partitions: Vec<PartitionInfo>,
}

/// The cluster as last seen by [`Client::refresh_metadata`].
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub brokers: BTreeMap<i32, BrokerInfo>,
    pub topics: BTreeMap<String, TopicInfo>,
}

/// A topic to create.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    /// -1: the broker's `num.partitions`.
    pub partitions: i32,
    /// -1: the broker's `default.replication.factor`.
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
}

/// A config resource: a topic or a broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigResource {
    Topic(String),
    Broker(i32),
}

impl ConfigResource {
    fn kind(&self) -> i8 {
        match self {
            ConfigResource::Topic(_) => 2,
            ConfigResource::Broker(_) => 4,
        }
    }
    fn name(&self) -> String {
        match self {
            ConfigResource::Topic(t) => t.clone(),
            ConfigResource::Broker(b) => b.to_string(),
        }
    }
}

impl std::fmt::Display for ConfigResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigResource::Topic(t) => write!(f, "topic {t:?}"),
            ConfigResource::Broker(b) => write!(f, "broker {b}"),
        }
    }
}

/// One config entry as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub read_only: bool,
    pub sensitive: bool,
    /// Kafka's config source: `DYNAMIC_TOPIC_CONFIG`, `STATIC_BROKER_CONFIG`, `DEFAULT_CONFIG`, ...
    pub source: &'static str,
}

fn config_source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "CLIENT_METRICS_CONFIG",
        8 => "GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

/// An IncrementalAlterConfigs operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterOp {
    Set(String),
    Delete,
    Append(String),
    Subtract(String),
}

/// Which offset ListOffsets looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (high watermark).
    Latest,
    /// The first offset whose timestamp is at or after this many ms since the epoch.
    Timestamp(i64),
}

impl OffsetSpec {
    fn wire(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(t) => t,
        }
    }
}

/// Produce settings.
#[derive(Debug, Clone, Copy)]
pub struct ProduceOptions {
    /// 0 (no response), 1 (leader) or -1 (all in-sync replicas).
    pub acks: i16,
    pub compression: Compression,
    /// The broker's wait for acknowledgements, in ms.
    pub timeout_ms: i32,
}

impl Default for ProduceOptions {
    fn default() -> Self {
        Self { acks: -1, compression: Compression::None, timeout_ms: 30_000 }
    }
}

/// One partition to fetch from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchSpec {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// Fetch settings.
#[derive(Debug, Clone, Copy)]
pub struct FetchOptions {
    /// How long the broker may wait for `min_bytes`.
    pub max_wait_ms: i32,
    pub min_bytes: i32,
    pub max_bytes: i32,
    pub partition_max_bytes: i32,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self { max_wait_ms: 500, min_bytes: 1, max_bytes: 50 << 20, partition_max_bytes: 1 << 20 }
    }
}

/// What a fetch returned for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedPartition {
    pub topic: String,
    pub partition: i32,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// Records at or after the requested offset, control records left out.
    pub records: Vec<Record>,
    /// Where the next fetch of this partition starts.
    pub next_offset: i64,
}

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    /// Empty when the broker's ListGroups version has no state.
    pub state: String,
}

/// A member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub member_id: String,
    pub client_id: String,
    pub host: String,
    /// For `consumer` groups: the partitions assigned, by topic.
    pub assignment: Vec<(String, Vec<i32>)>,
}

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    /// `Empty`, `Stable`, `PreparingRebalance`, `CompletingRebalance`, `Dead`.
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<GroupMember>,
}

/// A Kafka client over blocking connections, for tools: each operation is one or a few
/// request/response round trips. Not thread-safe (`&mut self`); open one per thread.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    bootstrap: Connection,
    nodes: BTreeMap<i32, Connection>,
    metadata: Metadata,
    /// Coordinator node per (FindCoordinator key type, key): groups and transactional ids
    /// apart, as a group and a transactional id may share a name.
    coordinators: BTreeMap<(i8, String), i32>,
}

/// FindCoordinator key types.
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

impl Client {
    /// Connects to the first reachable bootstrap broker and loads the cluster's metadata.
    pub fn connect(config: ClientConfig) -> Result<Self> {
        if config.bootstrap.is_empty() {
            return Err(Error::Invalid("no bootstrap server given".into()));
        }
        let mut errors = Vec::new();
        let mut bootstrap = None;
        for addr in &config.bootstrap {
            match Connection::connect(addr, &config.client_id, config.timeout) {
                Ok(c) => {
                    bootstrap = Some(c);
                    break;
                }
                Err(e @ (Error::Connect { .. } | Error::Io { .. })) => errors.push(e),
                Err(e) => return Err(e),
            }
        }
        let bootstrap = match bootstrap {
            Some(b) => b,
            None if errors.len() == 1 => return Err(errors.remove(0)),
            None => {
                return Err(Error::Connect {
                    addr: config.bootstrap.join(","),
                    reason: errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
                })
            }
        };
        let mut client = Client {
            config,
            bootstrap,
            nodes: BTreeMap::new(),
            metadata: Metadata::default(),
            coordinators: BTreeMap::new(),
        };
        client.refresh_metadata(None)?;
        Ok(client)
    }

    /// The connection to the bootstrap broker (any broker can answer metadata and admin requests).
    pub fn bootstrap(&mut self) -> &mut Connection {
        &mut self.bootstrap
    }

    /// The metadata cache.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Reloads metadata: of every topic (`None`, replacing the cache) or of the given topics
    /// (merged into the cache; a topic the broker does not know is dropped from it).
    pub fn refresh_metadata(&mut self, topics: Option<&[&str]>) -> Result<&Metadata> {
        let version = self.bootstrap.version(ApiKey::Metadata)?;
        let mut req = MetadataRequest::default().with_topics(topics.map(|ts| {
            ts.iter()
                .map(|t| metadata_request::MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                .collect()
        }));
        if version >= 4 {
            req = req.with_allow_auto_topic_creation(false);
        }
        let resp = self.bootstrap.send_version(version, &req)?;
        self.metadata.cluster_id = resp.cluster_id.map(|c| c.to_string());
        self.metadata.controller_id = resp.controller_id.0;
        self.metadata.brokers = resp
            .brokers
            .into_iter()
            .map(|b| {
                let info = BrokerInfo {
                    node_id: b.node_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.map(|r| r.to_string()),
                };
                (info.node_id, info)
            })
            .collect();
        if topics.is_none() {
            self.metadata.topics.clear();
        }
        for t in resp.topics {
            let Some(name) = t.name.map(|n| n.0.to_string()) else { continue };
            // Unknown or invalid: gone. Other errors (LEADER_NOT_AVAILABLE while a new topic's
            // leaders are elected) keep the topic with what the broker sent.
            if matches!(t.error_code, 3 | 17 | 100) {
                self.metadata.topics.remove(&name);
                continue;
            }
            let mut partitions: Vec<PartitionInfo> = t
                .partitions
                .into_iter()
                .map(|p| PartitionInfo {
                    partition: p.partition_index,
                    leader: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes.iter().map(|n| n.0).collect(),
                    isr: p.isr_nodes.iter().map(|n| n.0).collect(),
                    error_code: p.error_code,
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            self.metadata
                .topics
                .insert(name.clone(), TopicInfo { name, id: t.topic_id, internal: t.is_internal, partitions });
        }
        Ok(&self.metadata)
    }

    /// A topic's metadata, fresh from the broker; `UNKNOWN_TOPIC_OR_PARTITION` if absent.
    pub fn topic(&mut self, name: &str) -> Result<TopicInfo> {
        self.refresh_metadata(Some(&[name]))?;
        self.metadata.topics.get(name).cloned().ok_or_else(|| unknown_topic(name))
    }

    /// Waits until a topic has partitions that all have a leader (a topic just created may
    /// not, for a moment, on a multi-broker Kafka), at most `timeout`.
    pub fn wait_for_topic(&mut self, name: &str, timeout: Duration) -> Result<TopicInfo> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let r = self.topic(name);
            let ready = matches!(&r, Ok(t) if !t.partitions.is_empty() && t.partitions.iter().all(|p| p.leader >= 0));
            if ready || std::time::Instant::now() >= deadline {
                return r;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The connection to a node of the metadata, opened on first use.
    pub fn connection(&mut self, node: i32) -> Result<&mut Connection> {
        if !self.nodes.contains_key(&node) {
            let broker = self.metadata.brokers.get(&node).ok_or_else(|| Error::Kafka {
                code: 8,
                name: "BROKER_NOT_AVAILABLE".into(),
                context: format!("node {node} is not in the cluster metadata"),
                message: None,
            })?;
            let addr = format!("{}:{}", broker.host, broker.port);
            let conn = Connection::connect(&addr, &self.config.client_id, self.config.timeout)?;
            self.nodes.insert(node, conn);
        }
        self.nodes.get_mut(&node).ok_or_else(|| Error::Invalid("connection vanished".into()))
    }

    /// The leader of a partition, from the cache (refreshed once if the partition is unknown).
    pub fn leader(&mut self, topic: &str, partition: i32) -> Result<i32> {
        let find = |m: &Metadata| {
            m.topics.get(topic).and_then(|t| t.partitions.iter().find(|p| p.partition == partition)).map(|p| p.leader)
        };
        let leader = match find(&self.metadata) {
            Some(l) if l >= 0 => l,
            _ => {
                self.refresh_metadata(Some(&[topic]))?;
                find(&self.metadata).ok_or_else(|| {
                    if self.metadata.topics.contains_key(topic) {
                        Error::Kafka {
                            code: 3,
                            name: "UNKNOWN_TOPIC_OR_PARTITION".into(),
                            context: format!("topic {topic:?} has no partition {partition}"),
                            message: None,
                        }
                    } else {
                        unknown_topic(topic)
                    }
                })?
            }
        };
        if leader < 0 {
            return Err(Error::Kafka {
                code: 5,
                name: "LEADER_NOT_AVAILABLE".into(),
                context: format!("partition {topic}-{partition}"),
                message: None,
            });
        }
        Ok(leader)
    }

    // ---- topics ------------------------------------------------------------------------------

    /// Creates topics; the first failure is returned (the others may have been created).
    pub fn create_topics(&mut self, topics: &[NewTopic], validate_only: bool) -> Result<()> {
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_validate_only(validate_only)
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        create_topics_request::CreatableTopic::default()
                            .with_name(topic_name(&t.name))
                            .with_num_partitions(t.partitions)
                            .with_replication_factor(t.replication_factor)
                            .with_configs(
                                t.configs
                                    .iter()
                                    .map(|(k, v)| {
                                        create_topics_request::CreatableTopicConfig::default()
                                            .with_name(s(k))
                                            .with_value(Some(s(v)))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let (_, resp) = self.bootstrap.send(&req)?;
        for t in &resp.topics {
            Error::check(t.error_code, t.error_message.as_deref(), || {
                format!("creating topic {:?}", t.name.0.as_str())
            })?;
        }
        Ok(())
    }

    /// Deletes topics by name.
    pub fn delete_topics(&mut self, names: &[&str]) -> Result<()> {
        let version = self.bootstrap.version(ApiKey::DeleteTopics)?;
        let mut req = DeleteTopicsRequest::default().with_timeout_ms(self.timeout_ms());
        if version >= 6 {
            req = req.with_topics(
                names
                    .iter()
                    .map(|n| delete_topics_request::DeleteTopicState::default().with_name(Some(topic_name(n))))
                    .collect(),
            );
        } else {
            req = req.with_topic_names(names.iter().map(|n| topic_name(n)).collect());
        }
        let resp = self.bootstrap.send_version(version, &req)?;
        for r in &resp.responses {
            let name = r.name.as_ref().map_or(String::new(), |n| n.0.to_string());
            Error::check(r.error_code, r.error_message.as_deref(), || format!("deleting topic {name:?}"))?;
        }
        for n in names {
            self.metadata.topics.remove(*n);
        }
        Ok(())
    }

    /// Grows a topic to `total` partitions.
    pub fn create_partitions(&mut self, topic: &str, total: i32) -> Result<()> {
        let req = CreatePartitionsRequest::default().with_timeout_ms(self.timeout_ms()).with_topics(vec![
            create_partitions_request::CreatePartitionsTopic::default().with_name(topic_name(topic)).with_count(total),
        ]);
        let (_, resp) = self.bootstrap.send(&req)?;
        for r in &resp.results {
            Error::check(r.error_code, r.error_message.as_deref(), || {
                format!("growing topic {topic:?} to {total} partitions")
            })?;
        }
        Ok(())
    }

    // ---- configs -----------------------------------------------------------------------------

    /// Broker configs are served by that broker itself (Kafka answers only for its own id);
    /// topic configs by any broker.
    fn config_connection(&mut self, resource: &ConfigResource) -> Result<&mut Connection> {
        match resource {
            ConfigResource::Broker(id) if self.metadata.brokers.contains_key(id) => self.connection(*id),
            ConfigResource::Broker(id) => Err(Error::Kafka {
                code: 8,
                name: "BROKER_NOT_AVAILABLE".into(),
                context: format!("broker {id} is not in the cluster (see `odradek cluster info`)"),
                message: None,
            }),
            ConfigResource::Topic(_) => Ok(&mut self.bootstrap),
        }
    }

    /// Every config of a resource (or only `keys`), sorted by name.
    pub fn describe_configs(&mut self, resource: &ConfigResource, keys: Option<&[&str]>) -> Result<Vec<ConfigEntry>> {
        let req = DescribeConfigsRequest::default().with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(resource.kind())
                .with_resource_name(s(&resource.name()))
                .with_configuration_keys(keys.map(|ks| ks.iter().map(|k| s(k)).collect())),
        ]);
        let (_, resp) = self.config_connection(resource)?.send(&req)?;
        let r = resp.results.into_iter().next().ok_or_else(|| Error::Protocol {
            addr: String::new(),
            reason: "DescribeConfigs response without a result".into(),
        })?;
        Error::check(r.error_code, r.error_message.as_deref(), || format!("describing configs of {resource}"))?;
        let mut out: Vec<ConfigEntry> = r
            .configs
            .into_iter()
            .map(|c| ConfigEntry {
                name: c.name.to_string(),
                value: c.value.map(|v| v.to_string()),
                read_only: c.read_only,
                sensitive: c.is_sensitive,
                source: config_source_name(c.config_source),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Alters configs of a resource incrementally (IncrementalAlterConfigs).
    pub fn alter_configs(&mut self, resource: &ConfigResource, ops: &[(String, AlterOp)]) -> Result<()> {
        let configs = ops
            .iter()
            .map(|(name, op)| {
                let (code, value) = match op {
                    AlterOp::Set(v) => (0, Some(s(v))),
                    AlterOp::Delete => (1, None),
                    AlterOp::Append(v) => (2, Some(s(v))),
                    AlterOp::Subtract(v) => (3, Some(s(v))),
                };
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(s(name))
                    .with_config_operation(code)
                    .with_value(value)
            })
            .collect();
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
            incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(resource.kind())
                .with_resource_name(s(&resource.name()))
                .with_configs(configs),
        ]);
        let (_, resp) = self.config_connection(resource)?.send(&req)?;
        for r in &resp.responses {
            Error::check(r.error_code, r.error_message.as_deref(), || format!("altering configs of {resource}"))?;
        }
        Ok(())
    }

    // ---- produce, fetch, offsets -------------------------------------------------------------

    /// Produces records to one partition as one batch (built with `engine::records`); returns
    /// the base offset the broker assigned (`None` with `acks=0`).
    pub fn produce(
        &mut self,
        topic: &str,
        partition: i32,
        records: &[Record],
        opts: &ProduceOptions,
    ) -> Result<Option<i64>> {
        if records.is_empty() {
            return Ok(None);
        }
        let batch = build_batch(records, opts.compression);
        self.produce_batch(topic, partition, batch, opts)
    }

    /// Produces a ready record batch (or several, concatenated) to one partition. Retriable
    /// broker errors (a leader moved) are retried a few times after a metadata refresh; a
    /// lost connection is not (the batch may have been appended).
    pub fn produce_batch(
        &mut self,
        topic: &str,
        partition: i32,
        batch: Bytes,
        opts: &ProduceOptions,
    ) -> Result<Option<i64>> {
        let mut attempt = 0;
        loop {
            match self.produce_once(topic, partition, batch.clone(), opts) {
                Err(e @ Error::Kafka { .. }) if retry_on(&e) && attempt < RETRIES => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(100 * attempt));
                    self.refresh_metadata(Some(&[topic]))?;
                }
                r => return r,
            }
        }
    }

    fn produce_once(
        &mut self,
        topic: &str,
        partition: i32,
        batch: Bytes,
        opts: &ProduceOptions,
    ) -> Result<Option<i64>> {
        let leader = self.leader(topic, partition)?;
        let req =
            ProduceRequest::default().with_acks(opts.acks).with_timeout_ms(opts.timeout_ms).with_topic_data(vec![
                produce_request::TopicProduceData::default().with_name(topic_name(topic)).with_partition_data(vec![
                    produce_request::PartitionProduceData::default().with_index(partition).with_records(Some(batch)),
                ]),
            ]);
        let conn = self.connection(leader)?;
        if opts.acks == 0 {
            conn.send_only(&req)?;
            return Ok(None);
        }
        let (_, resp) = conn.send(&req)?;
        let p = resp
            .responses
            .iter()
            .flat_map(|t| t.partition_responses.iter())
            .find(|p| p.index == partition)
            .ok_or_else(|| Error::Protocol {
                addr: String::new(),
                reason: format!("Produce response without partition {partition}"),
            })?;
        if p.error_code != 0 {
            self.forget_leader(topic);
        }
        Error::check(p.error_code, p.error_message.as_deref(), || format!("producing to {topic}-{partition}"))?;
        Ok(Some(p.base_offset))
    }

    fn forget_leader(&mut self, topic: &str) {
        self.metadata.topics.remove(topic);
    }

    /// Fetches from several partitions (one request per leader). Records come back decoded,
    /// those before the requested offset (inside a compressed batch) and control records left
    /// out. Any partition error fails the call, after a few retries for retriable ones.
    pub fn fetch(&mut self, specs: &[FetchSpec], opts: &FetchOptions) -> Result<Vec<FetchedPartition>> {
        let mut attempt = 0;
        loop {
            match self.fetch_once(specs, opts) {
                Err(e @ Error::Kafka { .. }) if retry_on(&e) && attempt < RETRIES => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(100 * attempt));
                    let topics: Vec<&str> = specs.iter().map(|s| s.topic.as_str()).collect();
                    self.refresh_metadata(Some(&topics))?;
                }
                r => return r,
            }
        }
    }

    fn fetch_once(&mut self, specs: &[FetchSpec], opts: &FetchOptions) -> Result<Vec<FetchedPartition>> {
        let mut by_leader: BTreeMap<i32, Vec<&FetchSpec>> = BTreeMap::new();
        for spec in specs {
            let leader = self.leader(&spec.topic, spec.partition)?;
            by_leader.entry(leader).or_default().push(spec);
        }
        let mut out = Vec::with_capacity(specs.len());
        for (leader, specs) in by_leader {
            let mut topics: Vec<fetch_request::FetchTopic> = Vec::new();
            for spec in &specs {
                let part = fetch_request::FetchPartition::default()
                    .with_partition(spec.partition)
                    .with_fetch_offset(spec.offset)
                    .with_partition_max_bytes(opts.partition_max_bytes);
                match topics.iter_mut().find(|t| t.topic.0.as_str() == spec.topic) {
                    Some(t) => t.partitions.push(part),
                    None => topics.push(
                        fetch_request::FetchTopic::default()
                            .with_topic(topic_name(&spec.topic))
                            .with_partitions(vec![part]),
                    ),
                }
            }
            let req = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(opts.max_wait_ms)
                .with_min_bytes(opts.min_bytes)
                .with_max_bytes(opts.max_bytes)
                .with_topics(topics);
            let conn = self.connection(leader)?;
            let addr = conn.addr().to_string();
            let (_, resp) = conn.send(&req)?;
            Error::check(resp.error_code, None, || "fetching".to_string())?;
            for t in resp.responses {
                let topic = t.topic.0.to_string();
                for p in t.partitions {
                    Error::check(p.error_code, None, || format!("fetching {topic}-{}", p.partition_index))?;
                    let offset = specs
                        .iter()
                        .find(|s| s.topic == topic && s.partition == p.partition_index)
                        .map_or(0, |s| s.offset);
                    let bytes = p.records.unwrap_or_default();
                    let (records, next_offset) = decode_fetched(&bytes, offset).map_err(|e| Error::Protocol {
                        addr: addr.clone(),
                        reason: format!("records of {topic}-{}: {e}", p.partition_index),
                    })?;
                    out.push(FetchedPartition {
                        topic: topic.clone(),
                        partition: p.partition_index,
                        high_watermark: p.high_watermark,
                        log_start_offset: p.log_start_offset,
                        records,
                        next_offset,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Looks up offsets of partitions of one topic (one request per leader). For a timestamp
    /// with no record at or after it, the offset is -1 (Kafka's answer).
    pub fn list_offsets(&mut self, topic: &str, partitions: &[i32], spec: OffsetSpec) -> Result<BTreeMap<i32, i64>> {
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for &p in partitions {
            by_leader.entry(self.leader(topic, p)?).or_default().push(p);
        }
        let mut out = BTreeMap::new();
        for (leader, parts) in by_leader {
            let req = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default().with_name(topic_name(topic)).with_partitions(
                    parts
                        .iter()
                        .map(|&p| {
                            list_offsets_request::ListOffsetsPartition::default()
                                .with_partition_index(p)
                                .with_timestamp(spec.wire())
                        })
                        .collect(),
                ),
            ]);
            let (_, resp) = self.connection(leader)?.send(&req)?;
            for t in resp.topics {
                for p in t.partitions {
                    Error::check(p.error_code, None, || format!("listing offsets of {topic}-{}", p.partition_index))?;
                    out.insert(p.partition_index, p.offset);
                }
            }
        }
        Ok(out)
    }

    // ---- groups ------------------------------------------------------------------------------

    /// The coordinator node of a group (cached), retrying while it is loading.
    pub fn coordinator(&mut self, group: &str) -> Result<i32> {
        self.find_coordinator(KEY_TYPE_GROUP, group, || format!("finding the coordinator of group {group:?}"))
    }

    /// The coordinator node of a transactional id (cached), retrying while it is loading.
    pub fn transaction_coordinator(&mut self, transactional_id: &str) -> Result<i32> {
        let context = || format!("finding the coordinator of transaction {transactional_id:?}");
        self.find_coordinator(KEY_TYPE_TRANSACTION, transactional_id, context)
    }

    /// Forgets a transactional id's coordinator (after NOT_COORDINATOR), so the next call
    /// asks again.
    pub fn forget_transaction_coordinator(&mut self, transactional_id: &str) {
        self.coordinators.remove(&(KEY_TYPE_TRANSACTION, transactional_id.to_string()));
    }

    fn find_coordinator(&mut self, key_type: i8, key: &str, context: impl Fn() -> String) -> Result<i32> {
        let cache_key = (key_type, key.to_string());
        if let Some(n) = self.coordinators.get(&cache_key) {
            return Ok(*n);
        }
        let version = self.bootstrap.version(ApiKey::FindCoordinator)?;
        let mut req = FindCoordinatorRequest::default().with_key_type(key_type);
        req = if version >= 4 { req.with_coordinator_keys(vec![s(key)]) } else { req.with_key(s(key)) };
        let mut attempt = 0;
        loop {
            let resp = self.bootstrap.send_version(version, &req)?;
            let (code, message, node, host, port) = match resp.coordinators.into_iter().next() {
                Some(c) if version >= 4 => (c.error_code, c.error_message, c.node_id.0, c.host, c.port),
                _ => (resp.error_code, resp.error_message, resp.node_id.0, resp.host, resp.port),
            };
            match Error::check(code, message.as_deref(), &context) {
                Err(e) if e.is_retriable() && attempt < 20 => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                Err(e) => return Err(e),
                Ok(()) => {}
            }
            self.metadata.brokers.entry(node).or_insert_with(|| BrokerInfo {
                node_id: node,
                host: host.to_string(),
                port,
                rack: None,
            });
            self.coordinators.insert(cache_key, node);
            return Ok(node);
        }
    }

    /// Every group of every broker.
    pub fn list_groups(&mut self) -> Result<Vec<GroupListing>> {
        let nodes: Vec<i32> = self.metadata.brokers.keys().copied().collect();
        let mut out = Vec::new();
        for node in nodes {
            let (_, resp) = self.connection(node)?.send(&ListGroupsRequest::default())?;
            Error::check(resp.error_code, None, || format!("listing groups of node {node}"))?;
            out.extend(resp.groups.into_iter().map(|g| GroupListing {
                group_id: g.group_id.0.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: g.group_state.to_string(),
            }));
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(out)
    }

    /// Describes a group: a KIP-848 consumer group with ConsumerGroupDescribe (where the broker
    /// serves it), any other with DescribeGroups. A group the coordinator does not know comes
    /// back in state `Dead`.
    pub fn describe_group(&mut self, group: &str) -> Result<GroupDescription> {
        let node = self.coordinator(group)?;
        if self.connection(node)?.version(ApiKey::ConsumerGroupDescribe).is_ok() {
            let req = ConsumerGroupDescribeRequest::default().with_group_ids(vec![group_id(group)]);
            let (_, resp) = self.connection(node)?.send(&req)?;
            if let Some(g) = resp.groups.into_iter().next() {
                // GROUP_ID_NOT_FOUND: unknown, or not a consumer group: ask DescribeGroups.
                if g.error_code != 69 {
                    Error::check(g.error_code, g.error_message.as_deref(), || format!("describing group {group:?}"))?;
                    return Ok(GroupDescription {
                        group_id: g.group_id.0.to_string(),
                        state: g.group_state.to_string(),
                        protocol_type: "consumer".to_string(),
                        protocol: g.assignor_name.to_string(),
                        members: g
                            .members
                            .into_iter()
                            .map(|m| GroupMember {
                                member_id: m.member_id.to_string(),
                                client_id: m.client_id.to_string(),
                                host: m.client_host.to_string(),
                                assignment: m
                                    .assignment
                                    .topic_partitions
                                    .into_iter()
                                    .map(|t| (t.topic_name.0.to_string(), t.partitions))
                                    .collect(),
                            })
                            .collect(),
                    });
                }
            }
        }
        let req = DescribeGroupsRequest::default().with_groups(vec![group_id(group)]);
        let (_, resp) = self.connection(node)?.send(&req)?;
        let g = resp.groups.into_iter().next().ok_or_else(|| Error::Protocol {
            addr: String::new(),
            reason: "DescribeGroups response without the group".into(),
        })?;
        Error::check(g.error_code, g.error_message.as_deref(), || format!("describing group {group:?}"))?;
        let consumer = g.protocol_type.as_str() == "consumer";
        Ok(GroupDescription {
            group_id: g.group_id.0.to_string(),
            state: g.group_state.to_string(),
            protocol_type: g.protocol_type.to_string(),
            protocol: g.protocol_data.to_string(),
            members: g
                .members
                .into_iter()
                .map(|m| GroupMember {
                    member_id: m.member_id.to_string(),
                    client_id: m.client_id.to_string(),
                    host: m.client_host.to_string(),
                    assignment: if consumer { decode_assignment(m.member_assignment) } else { Vec::new() },
                })
                .collect(),
        })
    }

    /// Deletes groups (they must have no active member: `NON_EMPTY_GROUP` otherwise).
    pub fn delete_groups(&mut self, groups: &[&str]) -> Result<()> {
        for g in groups {
            let node = self.coordinator(g)?;
            let req = DeleteGroupsRequest::default().with_groups_names(vec![group_id(g)]);
            let (_, resp) = self.connection(node)?.send(&req)?;
            for r in &resp.results {
                Error::check(r.error_code, None, || format!("deleting group {g:?}"))?;
            }
            self.coordinators.remove(&(KEY_TYPE_GROUP, g.to_string()));
        }
        Ok(())
    }

    /// A group's committed offsets: of every partition (`topics = None`) or of the given
    /// topics. Keys are `(topic, partition)`; partitions with no commit are left out.
    pub fn offset_fetch(&mut self, group: &str, topics: Option<&[&str]>) -> Result<BTreeMap<(String, i32), i64>> {
        let node = self.coordinator(group)?;
        let mut wanted = None;
        if let Some(ts) = topics {
            let mut list = Vec::new();
            for t in ts {
                let info = self.topic(t)?;
                list.push(
                    offset_fetch_request::OffsetFetchRequestTopic::default()
                        .with_name(topic_name(t))
                        .with_partition_indexes(info.partitions.iter().map(|p| p.partition).collect()),
                );
            }
            wanted = Some(list);
        }
        let req = OffsetFetchRequest::default().with_group_id(group_id(group)).with_topics(wanted);
        let (_, resp) = self.connection(node)?.send(&req)?;
        Error::check(resp.error_code, None, || format!("fetching offsets of group {group:?}"))?;
        let mut out = BTreeMap::new();
        for t in resp.topics {
            for p in t.partitions {
                Error::check(p.error_code, None, || {
                    format!("fetching offsets of group {group:?} for {}-{}", t.name.0.as_str(), p.partition_index)
                })?;
                if p.committed_offset >= 0 {
                    out.insert((t.name.0.to_string(), p.partition_index), p.committed_offset);
                }
            }
        }
        Ok(out)
    }

    /// Commits offsets for a group as a standalone (simple) consumer: generation -1, no member
    /// id. The coordinator refuses this for a group with active members.
    pub fn offset_commit(&mut self, group: &str, offsets: &[(String, i32, i64)]) -> Result<()> {
        let node = self.coordinator(group)?;
        let mut topics: Vec<offset_commit_request::OffsetCommitRequestTopic> = Vec::new();
        for (topic, partition, offset) in offsets {
            let part = offset_commit_request::OffsetCommitRequestPartition::default()
                .with_partition_index(*partition)
                .with_committed_offset(*offset);
            match topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
                Some(t) => t.partitions.push(part),
                None => topics.push(
                    offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(topic_name(topic))
                        .with_partitions(vec![part]),
                ),
            }
        }
        let req = OffsetCommitRequest::default()
            .with_group_id(group_id(group))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(s(""))
            .with_topics(topics);
        let (_, resp) = self.connection(node)?.send(&req)?;
        for t in &resp.topics {
            for p in &t.partitions {
                Error::check(p.error_code, None, || {
                    format!("committing offsets of group {group:?} for {}-{}", t.name.0.as_str(), p.partition_index)
                })?;
            }
        }
        Ok(())
    }

    /// Deletes a group's committed offsets of some partitions of a topic.
    pub fn offset_delete(&mut self, group: &str, topic: &str, partitions: &[i32]) -> Result<()> {
        let node = self.coordinator(group)?;
        let req = OffsetDeleteRequest::default().with_group_id(group_id(group)).with_topics(vec![
            offset_delete_request::OffsetDeleteRequestTopic::default().with_name(topic_name(topic)).with_partitions(
                partitions
                    .iter()
                    .map(|&p| offset_delete_request::OffsetDeleteRequestPartition::default().with_partition_index(p))
                    .collect(),
            ),
        ]);
        let (_, resp) = self.connection(node)?.send(&req)?;
        Error::check(resp.error_code, None, || format!("deleting offsets of group {group:?}"))?;
        for t in &resp.topics {
            for p in &t.partitions {
                Error::check(p.error_code, None, || {
                    format!("deleting offsets of group {group:?} for {topic}-{}", p.partition_index)
                })?;
            }
        }
        Ok(())
    }

    fn timeout_ms(&self) -> i32 {
        i32::try_from(self.config.timeout.as_millis()).unwrap_or(i32::MAX)
    }
}

fn unknown_topic(name: &str) -> Error {
    Error::Kafka {
        code: 3,
        name: "UNKNOWN_TOPIC_OR_PARTITION".into(),
        context: format!("topic {name:?}"),
        message: None,
    }
}

/// A consumer-protocol assignment: version, then topics and partitions. Unreadable ones are
/// shown as empty.
fn decode_assignment(mut bytes: Bytes) -> Vec<(String, Vec<i32>)> {
    if bytes.len() < 2 {
        return Vec::new();
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]);
    let mut body = bytes.split_off(2);
    match consumer_protocol_assignment::ConsumerProtocolAssignment::decode(&mut body, version.clamp(0, 3)) {
        Ok(a) => a.assigned_partitions.into_iter().map(|t| (t.topic.0.to_string(), t.partitions)).collect(),
        Err(_) => Vec::new(),
    }
}
