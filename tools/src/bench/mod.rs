//! # `odradek bench produce|consume|e2e`: a load generator for any Kafka-compatible broker
//!
//! The command line and the JSON result follow the contract with the scenario runner
//! (`perf/`); see the README's "Load generator" section.
//!
//! ## Threading model
//!
//! Thread-per-core, like the broker: `--threads` glommio executors (io_uring), pinned one per
//! core. A *link* is one TCP connection of one producer or consumer to one partition leader;
//! links are dealt round-robin to the executors and each link lives on its executor for the whole
//! run, so nothing on the hot path crosses threads: no locks, no channels, no cross-core
//! wake-ups (which cost tens of µs on these machines, see benches/README.md). Workers publish
//! only relaxed counters for the progress line; histograms stay per worker and are merged once
//! at the end. glommio rather than plain threads with blocking sockets: one thread drives any
//! number of pipelined connections (a reader and a writer per link) without a thread each, on the
//! same runtime as the broker under test.
//!
//! ## Wire
//!
//! Frames come from the client core's sans-IO codec (`crate::client::codec`: `encode_request`,
//! `decode_response`, versions negotiated by `Connection`); metadata, topic creation and start
//! offsets from its blocking `Client` before the load starts. Record batches are built in place
//! with `engine`'s varints, codecs and CRC (`wire`), and fetched batches checked with
//! `engine::batch`.
//!
//! ## Measuring
//!
//! Latency counts from each record's *intended* send time on the fixed-rate schedule
//! (coordinated-omission corrected); `--rate 0` sends as fast as the in-flight window allows and
//! counts from the time each record was generated. End-to-end latency is consume time minus the
//! intended time carried in the first 8 bytes of each value (ns since the Unix epoch,
//! big-endian). `--warmup` seconds of records are sent but left out of every figure.

mod consumer;
mod producer;
pub mod stats;
pub mod wire;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::{Args, Subcommand, ValueEnum};
use engine::Compression;
use kafka_protocol::messages::ApiKey;
use serde_json::{json, Value};

use crate::client::{Client, ClientConfig, Connection, NewTopic, OffsetSpec, TopicInfo};
use consumer::ConsumerLink;
use producer::ProducerLink;
use stats::{Counters, Measured};

/// The `client.id` of every connection the load generator opens.
pub const CLIENT_ID: &str = "odradek-bench";

#[derive(Subcommand, Debug, Clone)]
pub enum BenchCommand {
    /// Produce records at a fixed or unlimited rate; latency send -> acknowledgement.
    Produce(BenchArgs),
    /// Consume a topic's partitions, split between consumers; counts and throughput.
    Consume(BenchArgs),
    /// Producers and consumers at once on one topic; end-to-end latency.
    E2e(BenchArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyMode {
    /// Null keys; batches fill one partition at a time (sticky, as Kafka clients do).
    None,
    /// Random keys out of --key-space, placed by Kafka's murmur2 partitioner.
    Random,
    /// Keys counting up modulo --key-space, placed by murmur2.
    Sequential,
}

impl KeyMode {
    /// Bytes of each key (16 ASCII digits), 0 for null keys.
    pub fn key_bytes(self) -> usize {
        match self {
            KeyMode::None => 0,
            KeyMode::Random | KeyMode::Sequential => 16,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressionArg {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StartFrom {
    Beginning,
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Produce,
    Consume,
    E2e,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Produce => "produce",
            Kind::Consume => "consume",
            Kind::E2e => "e2e",
        }
    }
}

/// The flags of the contract (and a few more, marked).
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    #[arg(long, env = "ODRADEK_BOOTSTRAP_SERVER", default_value = "127.0.0.1:9092")]
    pub bootstrap_server: String,
    #[arg(long)]
    pub topic: String,
    /// Create the topic if it does not exist (CreateTopics).
    #[arg(long)]
    pub create_topic: bool,
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,
    /// (extra) Replication factor of a created topic; -1 = the broker's default.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub replication_factor: i16,
    /// Topic config of a created topic, K=V (repeatable).
    #[arg(long = "topic-config", value_name = "K=V")]
    pub topic_config: Vec<String>,
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    /// Worker threads (default: the number of cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Value size in bytes (at least 8: the first 8 carry the intended send time).
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,
    #[arg(long, value_enum, default_value_t = KeyMode::None)]
    pub keys: KeyMode,
    #[arg(long, default_value_t = 1_000_000)]
    pub key_space: u64,
    /// 0, 1 or all.
    #[arg(long, default_value = "all")]
    pub acks: String,
    #[arg(long, value_enum, default_value_t = CompressionArg::None)]
    pub compression: CompressionArg,
    #[arg(long, default_value_t = 16384)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// Bytes of record batches in one Produce request at most, at least one batch (Kafka's
    /// max.request.size): with thousands of partitions a request takes the partitions in turn.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_request_size: usize,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 5)]
    pub max_in_flight: usize,
    /// Total offered rate in records/s; 0 = unlimited.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Run this long (seconds) after the warmup (default 10 unless --count is given).
    #[arg(long, conflicts_with = "count")]
    pub duration: Option<f64>,
    /// Produce (or consume) exactly this many records.
    #[arg(long)]
    pub count: Option<u64>,
    /// Seconds at the start excluded from every figure.
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,
    /// Where consumers start (default: end for e2e, beginning for consume).
    #[arg(long, value_enum)]
    pub from: Option<StartFrom>,
    /// Write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// No live progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// (extra) Consumers give up after this many seconds without a new record while their
    /// target (--count, or everything produced in e2e) is not reached.
    #[arg(long, default_value_t = 30.0)]
    pub idle_timeout: f64,
}

/// Wall-clock ns since the Unix epoch, read through the monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
    base_ns: u64,
}

impl Clock {
    fn new() -> Self {
        let base_ns = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        Self { base: Instant::now(), base_ns }
    }
    pub fn ns(&self, t: Instant) -> u64 {
        self.base_ns + t.saturating_duration_since(self.base).as_nanos() as u64
    }
    pub fn now_ns(&self) -> u64 {
        self.ns(Instant::now())
    }
}

/// Everything the links share, read-only but for the counters and the stop flag.
pub struct Plan {
    pub kind: Kind,
    pub topic: String,
    pub partition_count: i32,
    pub keys: KeyMode,
    pub key_space: u64,
    pub acks: i16,
    pub compression: Compression,
    pub batch_size: usize,
    pub linger: Duration,
    pub request_bytes_max: usize,
    pub max_in_flight: usize,
    pub produce_version: i16,
    pub fetch_version: i16,
    /// The value after its 8-byte timestamp, built once.
    pub value_tail: Bytes,
    pub clock: Clock,
    pub load_start: Instant,
    /// Producers generate nothing intended at or after this (duration runs).
    pub stop_at: Option<Instant>,
    pub measured_start_ns: u64,
    /// Consume runs bounded by --count.
    pub consume_count: Option<u64>,
    pub producer_links: u64,
    pub counters: Counters,
    /// Set when the run must end early (a consumer idle past --idle-timeout, a failed link).
    pub abort: AtomicBool,
    errors: Mutex<Vec<String>>,
}

impl Plan {
    /// Keeps the first few distinct produce errors for the final report.
    pub fn note_error(&self, e: String) {
        if let Ok(mut v) = self.errors.lock() {
            if v.len() < 5 && !v.contains(&e) {
                v.push(e);
            }
        }
    }

    pub fn consumers_should_stop(&self) -> bool {
        if self.abort.load(Ordering::Relaxed) {
            return true;
        }
        let c = &self.counters;
        match self.kind {
            Kind::Produce => true,
            Kind::Consume => match (self.consume_count, self.stop_at) {
                (Some(n), _) => Counters::get(&c.consumed_records) >= n,
                (None, Some(at)) => Instant::now() >= at,
                (None, None) => false,
            },
            Kind::E2e => {
                Counters::get(&c.producers_done) >= self.producer_links
                    && Counters::get(&c.consumed_records) >= Counters::get(&c.produced_records)
            }
        }
    }
}

fn parse_acks(s: &str) -> Result<i16, String> {
    match s {
        "0" => Ok(0),
        "1" => Ok(1),
        "all" | "-1" => Ok(-1),
        other => Err(format!("--acks must be 0, 1 or all, not {other:?}")),
    }
}

fn compression(c: CompressionArg) -> Compression {
    match c {
        CompressionArg::None => Compression::None,
        CompressionArg::Gzip => Compression::Gzip,
        CompressionArg::Snappy => Compression::Snappy,
        CompressionArg::Lz4 => Compression::Lz4,
        CompressionArg::Zstd => Compression::Zstd,
    }
}

/// A value body that compresses like text, not like zeros or noise: letters from a fixed seed.
fn value_tail(record_size: usize) -> Bytes {
    let mut x = 0x243f_6a88_85a3_08d3u64;
    (0..record_size.saturating_sub(wire::TIMESTAMP_BYTES))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b'A' + (x % 26) as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

fn config_json(kind: Kind, a: &BenchArgs, threads: usize, from: StartFrom, duration: Option<f64>) -> Value {
    json!({
        "bootstrap_server": a.bootstrap_server,
        "topic": a.topic,
        "create_topic": a.create_topic,
        "partitions": a.partitions,
        "replication_factor": a.replication_factor,
        "topic_config": a.topic_config,
        "producers": if kind == Kind::Consume { Value::Null } else { json!(a.producers) },
        "consumers": if kind == Kind::Produce { Value::Null } else { json!(a.consumers) },
        "threads": threads,
        "record_size": a.record_size,
        "keys": format!("{:?}", a.keys).to_lowercase(),
        "key_space": a.key_space,
        "acks": a.acks,
        "compression": format!("{:?}", a.compression).to_lowercase(),
        "batch_size": a.batch_size,
        "linger_ms": a.linger_ms,
        "max_request_size": a.max_request_size,
        "max_in_flight": a.max_in_flight,
        "rate": a.rate,
        "duration": duration,
        "count": a.count,
        "warmup": a.warmup,
        "from": if kind == Kind::Produce { Value::Null } else { json!(format!("{from:?}").to_lowercase()) },
        "json": a.json,
        "quiet": a.quiet,
        "idle_timeout": a.idle_timeout,
    })
}

fn utc_now() -> String {
    // Civil date from days since the epoch (Howard Hinnant's algorithm), to avoid a date crate.
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Runs one bench command; the error is the one line printed before a non-zero exit.
pub fn run(cmd: BenchCommand) -> Result<(), String> {
    let (kind, args) = match cmd {
        BenchCommand::Produce(a) => (Kind::Produce, a),
        BenchCommand::Consume(a) => (Kind::Consume, a),
        BenchCommand::E2e(a) => (Kind::E2e, a),
    };
    let a = &args;
    let acks = parse_acks(&a.acks)?;
    let topic_configs = check_args(a)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = a.threads.unwrap_or(cores).max(1);
    let duration = if a.count.is_some() { a.duration } else { Some(a.duration.unwrap_or(10.0)) };
    let from = a.from.unwrap_or(if kind == Kind::E2e { StartFrom::End } else { StartFrom::Beginning });
    let setup = set_up(a, kind, from, &topic_configs)?;
    let producer_links = producer_links(a, kind, &setup);
    let consumer_links = consumer_links(a, kind, &setup);

    let clock = Clock::new();
    let load_start = Instant::now();
    let warmup = Duration::from_secs_f64(a.warmup);
    let stop_at = duration.map(|d| load_start + warmup + Duration::from_secs_f64(d));
    let plan = Arc::new(Plan {
        kind,
        topic: a.topic.clone(),
        partition_count: setup.partitions.len() as i32,
        keys: a.keys,
        key_space: a.key_space,
        acks,
        compression: compression(a.compression),
        batch_size: a.batch_size,
        linger: Duration::from_millis(a.linger_ms),
        request_bytes_max: a.max_request_size.max(1),
        max_in_flight: a.max_in_flight,
        produce_version: setup.produce_version,
        fetch_version: setup.fetch_version,
        value_tail: value_tail(a.record_size),
        clock,
        load_start,
        stop_at,
        measured_start_ns: clock.ns(load_start + warmup),
        consume_count: if kind == Kind::Consume { a.count } else { None },
        producer_links: producer_links.len() as u64,
        counters: Counters::default(),
        abort: AtomicBool::new(false),
        errors: Mutex::new(Vec::new()),
    });
    let started_at = utc_now();

    let finished = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let handles = spawn_workers(&plan, producer_links, consumer_links, threads, cores, &finished)?;
    watch(&plan, a, handles.len(), &finished);
    let finished_at = Instant::now();
    let mut total = Measured::new(plan.measured_start_ns);
    let mut failures = Vec::new();
    for h in handles {
        match h.join() {
            Ok((m, errs)) => {
                total.merge(m);
                failures.extend(errs);
            }
            Err(e) => failures.push(format!("a worker thread failed: {e}")),
        }
    }

    let measured_start = load_start + warmup;
    let duration_s = finished_at.saturating_duration_since(measured_start).as_secs_f64().max(1e-9);
    let config = config_json(kind, a, threads, from, duration);
    let result = result_json(&plan, a, &total, duration_s, config, started_at);
    if let Some(path) = &a.json {
        let text = serde_json::to_string_pretty(&result).map_err(|e| format!("encoding the result: {e}"))?;
        std::fs::write(path, text + "\n").map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    print_summary(&result);
    outcome(&plan, a, &failures)
}

/// The run's result document (`--json`, and the summary printed from it).
fn result_json(
    plan: &Plan,
    a: &BenchArgs,
    total: &Measured,
    duration_s: f64,
    config: Value,
    started_at: String,
) -> Value {
    let (kind, acks) = (plan.kind, plan.acks);
    let c = &plan.counters;
    let produced = (kind != Kind::Consume).then(|| {
        json!({
            "records": total.produced_records,
            "bytes": total.produced_bytes,
            "errors": Counters::get(&c.produce_errors),
            "records_per_s": total.produced_records as f64 / duration_s,
            "mb_per_s": total.produced_bytes as f64 / duration_s / 1e6,
            "records_total": Counters::get(&c.produced_records),
        })
    });
    let consumed = (kind != Kind::Produce).then(|| {
        json!({
            "records": total.consumed_records,
            "bytes": total.consumed_bytes,
            "records_per_s": total.consumed_records as f64 / duration_s,
            "mb_per_s": total.consumed_bytes as f64 / duration_s / 1e6,
            "records_total": Counters::get(&c.consumed_records),
        })
    });
    json!({
        "kind": kind.name(),
        "bootstrap": a.bootstrap_server,
        "topic": a.topic,
        "config": config,
        "started_at": started_at,
        "duration_s": duration_s,
        "produced": produced,
        "consumed": consumed,
        "latency": {
            "produce": if kind == Kind::Consume || acks == 0 { Value::Null } else { stats::summary(&total.produce) },
            "e2e": if kind == Kind::E2e { stats::summary(&total.e2e) } else { Value::Null },
        },
        "timeline": stats::timeline(&total.seconds),
    })
}

/// Checks the arguments that clap cannot; returns the `--topic-config` pairs.
fn check_args(a: &BenchArgs) -> Result<Vec<(String, String)>, String> {
    if a.record_size < wire::TIMESTAMP_BYTES {
        return Err(format!(
            "--record-size must be at least {} (the send time rides in the value)",
            wire::TIMESTAMP_BYTES
        ));
    }
    if a.max_in_flight == 0 || a.batch_size == 0 || a.producers == 0 || a.consumers == 0 {
        return Err("--max-in-flight, --batch-size, --producers and --consumers must be at least 1".into());
    }
    if !(a.rate >= 0.0 && a.rate.is_finite()) {
        return Err("--rate must be a number of records per second, 0 for unlimited".into());
    }
    if a.partitions < 1 {
        return Err("--partitions must be at least 1".into());
    }
    if !(a.warmup >= 0.0 && a.warmup.is_finite()) || a.duration.is_some_and(|d| !(d > 0.0 && d.is_finite())) {
        return Err("--warmup must be >= 0 and --duration > 0 seconds".into());
    }
    a.topic_config
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| format!("--topic-config wants K=V, got {kv:?}"))
        })
        .collect()
}

/// What the set-up learned through the blocking client before the load starts.
struct Setup {
    /// `(partition, leader node)`.
    partitions: Vec<(i32, i32)>,
    /// `(node, host:port)` of every leader.
    leaders: Vec<(i32, String)>,
    produce_version: i16,
    fetch_version: i16,
    /// Where consumers start, per partition (empty for produce runs).
    start_offsets: BTreeMap<i32, i64>,
}

/// Metadata, the topic (created if asked), the API versions every leader supports, and the
/// consumers' start offsets.
fn set_up(a: &BenchArgs, kind: Kind, from: StartFrom, topic_configs: &[(String, String)]) -> Result<Setup, String> {
    let mut config = ClientConfig::new(&a.bootstrap_server);
    config.client_id = CLIENT_ID.to_string();
    config.timeout = Duration::from_secs(10);
    let mut client = Client::connect(config).map_err(|e| e.to_string())?;
    let topic = find_or_create_topic(&mut client, a, topic_configs)?;
    let partitions: Vec<(i32, i32)> = topic.partitions.iter().map(|p| (p.partition, p.leader)).collect();
    if let Some((p, _)) = partitions.iter().find(|(_, leader)| *leader < 0) {
        return Err(format!("partition {}-{p} has no leader", a.topic));
    }
    let addr_of = |node: i32| -> Result<String, String> {
        client
            .metadata()
            .brokers
            .get(&node)
            .map(|b| format!("{}:{}", b.host, b.port))
            .ok_or_else(|| format!("leader {node} is not in the cluster metadata"))
    };
    let mut leaders: Vec<(i32, String)> = Vec::new();
    for &(_, leader) in &partitions {
        if !leaders.iter().any(|(n, _)| *n == leader) {
            leaders.push((leader, addr_of(leader)?));
        }
    }
    // Versions: the lowest common choice over the leaders, negotiated by the client core.
    let (mut produce_version, mut fetch_version) = (i16::MAX, i16::MAX);
    for (_, addr) in &leaders {
        let conn = Connection::connect(addr, CLIENT_ID, Duration::from_secs(10)).map_err(|e| e.to_string())?;
        produce_version = produce_version.min(conn.version(ApiKey::Produce).map_err(|e| e.to_string())?);
        fetch_version = fetch_version.min(conn.version(ApiKey::Fetch).map_err(|e| e.to_string())?);
    }
    let start_offsets = if kind == Kind::Produce {
        Default::default()
    } else {
        let ids: Vec<i32> = partitions.iter().map(|(p, _)| *p).collect();
        let spec = if from == StartFrom::End { OffsetSpec::Latest } else { OffsetSpec::Earliest };
        client.list_offsets(&a.topic, &ids, spec).map_err(|e| e.to_string())?
    };
    Ok(Setup { partitions, leaders, produce_version, fetch_version, start_offsets })
}

/// The topic's metadata; with `--create-topic`, a missing topic is created and waited for
/// until every partition has a leader.
fn find_or_create_topic(
    client: &mut Client,
    a: &BenchArgs,
    topic_configs: &[(String, String)],
) -> Result<TopicInfo, String> {
    match client.topic(&a.topic) {
        Ok(t) => Ok(t),
        Err(e) if e.kafka_name() == Some("UNKNOWN_TOPIC_OR_PARTITION") => {
            if !a.create_topic {
                return Err(format!("unknown topic {:?} (pass --create-topic to create it)", a.topic));
            }
            let new = NewTopic {
                name: a.topic.clone(),
                partitions: a.partitions,
                replication_factor: a.replication_factor,
                configs: topic_configs.to_vec(),
            };
            client.create_topics(&[new], false).map_err(|e| e.to_string())?;
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match client.topic(&a.topic) {
                    Ok(t) if !t.partitions.is_empty() && t.partitions.iter().all(|p| p.leader >= 0) => break Ok(t),
                    _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
                    Ok(_) => return Err(format!("topic {:?} was created but has no leaders yet", a.topic)),
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
        Err(e) => Err(e.to_string()),
    }
}

/// One link per producer and leader, with the rate and count split in proportion to the
/// partitions each carries. None for consume runs.
fn producer_links(a: &BenchArgs, kind: Kind, setup: &Setup) -> Vec<ProducerLink> {
    if kind == Kind::Consume {
        return Vec::new();
    }
    let mut links = Vec::new();
    for i in 0..a.producers {
        for (node, addr) in &setup.leaders {
            let ps: Vec<i32> = setup.partitions.iter().filter(|(_, l)| l == node).map(|(p, _)| *p).collect();
            links.push(ProducerLink {
                addr: addr.clone(),
                partitions: ps,
                rate: 0.0,
                count: None,
                seed: 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(i as u64 + 1),
            });
        }
    }
    let total_parts: usize = links.iter().map(|l| l.partitions.len()).sum();
    let n = links.len() as u64;
    for (i, l) in links.iter_mut().enumerate() {
        let share = l.partitions.len() as f64 / total_parts as f64;
        l.rate = a.rate * share;
        l.count = a.count.map(|c| c / n + u64::from((i as u64) < c % n));
    }
    links
}

/// One link per consumer and leader it has partitions on (partition `p` goes to consumer
/// `p % consumers`). None for produce runs.
fn consumer_links(a: &BenchArgs, kind: Kind, setup: &Setup) -> Vec<ConsumerLink> {
    if kind == Kind::Produce {
        return Vec::new();
    }
    let mut links = Vec::new();
    for c in 0..a.consumers {
        for (node, addr) in &setup.leaders {
            let ps: Vec<(i32, i64)> = setup
                .partitions
                .iter()
                .filter(|(p, l)| l == node && (*p as usize) % a.consumers == c)
                .map(|(p, _)| (*p, setup.start_offsets.get(p).copied().unwrap_or(0)))
                .collect();
            if !ps.is_empty() {
                links.push(ConsumerLink { addr: addr.clone(), partitions: ps });
            }
        }
    }
    links
}

/// What one worker thread returns: its links' merged measurements and their errors.
type WorkerResult = (Measured, Vec<String>);

/// Deals the links to `threads` worker threads (each its own glommio executor) and starts them;
/// each counts itself in `finished` when all its links are done.
fn spawn_workers(
    plan: &Arc<Plan>,
    producer_links: Vec<ProducerLink>,
    consumer_links: Vec<ConsumerLink>,
    threads: usize,
    cores: usize,
    finished: &Arc<std::sync::atomic::AtomicUsize>,
) -> Result<Vec<glommio::ExecutorJoinHandle<WorkerResult>>, String> {
    let mut per_thread: Vec<(Vec<ProducerLink>, Vec<ConsumerLink>)> =
        (0..threads).map(|_| (Vec::new(), Vec::new())).collect();
    let mut next = 0;
    // Consumers first, so in e2e runs they are dealt to other threads than the producers when
    // there are enough threads.
    for l in consumer_links {
        per_thread[next % threads].1.push(l);
        next += 1;
    }
    for l in producer_links {
        per_thread[next % threads].0.push(l);
        next += 1;
    }
    let mut handles = Vec::new();
    for (t, (prods, cons)) in per_thread.into_iter().enumerate() {
        if prods.is_empty() && cons.is_empty() {
            continue;
        }
        let plan = plan.clone();
        let finished = finished.clone();
        let builder = glommio::LocalExecutorBuilder::new(glommio::Placement::Fixed(t % cores))
            .name(&format!("bench-{t}"))
            .io_memory(2 << 20);
        let h = builder
            .spawn(move || async move {
                let mut tasks = Vec::new();
                for l in cons {
                    let plan = plan.clone();
                    tasks.push(glommio::spawn_local(consumer::run(plan, l)));
                }
                for l in prods {
                    let plan = plan.clone();
                    tasks.push(glommio::spawn_local(producer::run(plan, l)));
                }
                let mut merged = Measured::new(plan.measured_start_ns);
                let mut errors = Vec::new();
                for t in tasks {
                    match t.await {
                        Ok(m) => merged.merge(m),
                        Err(e) => {
                            // One failed link ends the run: the others stop at their next check.
                            plan.abort.store(true, Ordering::Relaxed);
                            errors.push(e);
                        }
                    }
                }
                finished.fetch_add(1, Ordering::Relaxed);
                (merged, errors)
            })
            .map_err(|e| format!("starting worker thread {t}: {e}"))?;
        handles.push(h);
    }
    Ok(handles)
}

/// Until every worker has finished: a progress line each second (unless `--quiet`), and the
/// idle watch that stops a run whose consumers stopped receiving.
fn watch(plan: &Plan, a: &BenchArgs, workers: usize, finished: &std::sync::atomic::AtomicUsize) {
    let kind = plan.kind;
    let mut last = (0u64, 0u64, 0u64, 0u64);
    let mut last_at = Instant::now();
    let mut last_progress = Instant::now();
    let mut last_consumed = 0u64;
    let idle_timeout = Duration::from_secs_f64(a.idle_timeout.max(0.1));
    while finished.load(Ordering::Relaxed) < workers {
        std::thread::sleep(Duration::from_millis(50));
        let c = &plan.counters;
        let consumed = Counters::get(&c.consumed_records);
        if consumed != last_consumed {
            last_consumed = consumed;
            last_progress = Instant::now();
        }
        let producers_finished = Counters::get(&c.producers_done) >= plan.producer_links;
        let consumers_waiting = kind != Kind::Produce && (kind == Kind::Consume || producers_finished);
        if consumers_waiting && last_progress.elapsed() > idle_timeout && !plan.abort.load(Ordering::Relaxed) {
            plan.note_error(format!("consumers idle for {:.0} s", idle_timeout.as_secs_f64()));
            plan.abort.store(true, Ordering::Relaxed);
        }
        if last_at.elapsed() >= Duration::from_secs(1) {
            let now = (
                Counters::get(&c.produced_records),
                Counters::get(&c.produced_bytes),
                Counters::get(&c.consumed_records),
                Counters::get(&c.consumed_bytes),
            );
            if !a.quiet {
                eprintln!("{}", progress_line(plan, last, now, last_at.elapsed().as_secs_f64()));
            }
            last = now;
            last_at = Instant::now();
        }
    }
}

/// One progress line: rates over the last `dt` seconds from the counters' `last` and `now`
/// (produced records and bytes, consumed records and bytes).
fn progress_line(plan: &Plan, last: (u64, u64, u64, u64), now: (u64, u64, u64, u64), dt: f64) -> String {
    let mut line = format!("{:>6.1}s", plan.load_start.elapsed().as_secs_f64());
    if plan.kind != Kind::Consume {
        line += &format!(
            "  produced {:>10.0} rec/s {:>8.1} MB/s (total {}, errors {})",
            (now.0 - last.0) as f64 / dt,
            (now.1 - last.1) as f64 / dt / 1e6,
            now.0,
            Counters::get(&plan.counters.produce_errors)
        );
    }
    if plan.kind != Kind::Produce {
        line += &format!(
            "  consumed {:>10.0} rec/s {:>8.1} MB/s (total {})",
            (now.2 - last.2) as f64 / dt,
            (now.3 - last.3) as f64 / dt / 1e6,
            now.2
        );
    }
    line
}

/// The run's exit: the first failed link, an early stop, or success (records acknowledged
/// with an error are part of the result, reported but not a failure).
fn outcome(plan: &Plan, a: &BenchArgs, failures: &[String]) -> Result<(), String> {
    let c = &plan.counters;
    if let Some(e) = failures.first() {
        return Err(e.clone());
    }
    let errors = plan.errors.lock().map(|v| v.join("; ")).unwrap_or_default();
    let produce_errors = Counters::get(&c.produce_errors);
    if plan.abort.load(Ordering::Relaxed) {
        return Err(format!(
            "stopped early ({errors}): consumed {} of {} records",
            Counters::get(&c.consumed_records),
            match plan.kind {
                Kind::E2e => Counters::get(&c.produced_records),
                _ => a.count.unwrap_or(0),
            }
        ));
    }
    if produce_errors > 0 {
        // Part of the result (produced.errors), not a failure of the run: the broker answered.
        eprintln!("odradek bench: {produce_errors} records were acknowledged with an error: {errors}");
    }
    Ok(())
}

/// The human summary on stdout. A closed stdout (`| head`) is not an error of the run.
fn print_summary(r: &Value) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let mut out = format!(
        "{} {} in {:.2} s:",
        r["kind"].as_str().unwrap_or(""),
        r["topic"],
        r["duration_s"].as_f64().unwrap_or(0.0)
    );
    for side in ["produced", "consumed"] {
        let s = &r[side];
        if !s.is_null() {
            out += &format!(
                " {side} {} records ({:.0} rec/s, {:.1} MB/s);",
                s["records"],
                s["records_per_s"].as_f64().unwrap_or(0.0),
                s["mb_per_s"].as_f64().unwrap_or(0.0)
            );
        }
    }
    let _ = writeln!(stdout, "{out}");
    for which in ["produce", "e2e"] {
        let l = &r["latency"][which];
        if !l.is_null() {
            let _ = writeln!(
                stdout,
                "  {which} latency µs: p50 {} p90 {} p99 {} p99.9 {} p99.99 {} max {} (n={})",
                l["p50"], l["p90"], l["p99"], l["p999"], l["p9999"], l["max"], l["count"]
            );
        }
    }
}
