//! `odradek`: the broker binary.
//!
//! `odradek serve` starts a single-node broker with no configuration at all (127.0.0.1:9092,
//! data in `./data`, one shard per core). Settings come, lowest precedence first, from Kafka's
//! defaults, a Kafka-style properties file (`--config`), environment variables, flags, and
//! `--override name=value` (Kafka's own property names).

use std::collections::BTreeMap;
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::process::ExitCode;

/// Huge reservations from hostile element counts cost address space only (see `net::alloc`).
#[global_allocator]
static ALLOCATOR: net::alloc::NoReserveAlloc = net::alloc::NoReserveAlloc;

use clap::{Parser, Subcommand};
use engine::shard::{ShardSetConfig, TopicPartition};
use net::{Broker, BrokerConfig};
use replication::{Node, NodeConfig, NodeId, ShardRequest};

#[derive(Parser)]
#[command(name = "odradek", version, about = "A Kafka-compatible event streaming platform")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a broker.
    Serve(ServeArgs),
    #[command(flatten)]
    Client(odradek::cli::Command),
    /// Load generator for any Kafka-compatible broker: produce, consume or end to end.
    #[command(subcommand)]
    Bench(odradek::bench::BenchCommand),
}

#[derive(Parser)]
struct ServeArgs {
    /// Kafka-style properties file (`listeners`, `log.dirs`, `num.partitions`, ...).
    #[arg(long, short = 'c', env = "ODRADEK_CONFIG")]
    config: Option<PathBuf>,
    /// `listeners`, e.g. PLAINTEXT://127.0.0.1:9092 or 0.0.0.0:9092.
    #[arg(long, env = "ODRADEK_LISTENERS")]
    listeners: Option<String>,
    /// `advertised.listeners`: what clients are told to connect to.
    #[arg(long, env = "ODRADEK_ADVERTISED_LISTENERS")]
    advertised_listeners: Option<String>,
    /// `log.dirs`: the data directory.
    #[arg(long, env = "ODRADEK_DATA_DIR")]
    data_dir: Option<String>,
    /// Shards (cores) to run; default one per core.
    #[arg(long, env = "ODRADEK_SHARDS")]
    shards: Option<usize>,
    /// `num.partitions` for auto-created topics.
    #[arg(long, env = "ODRADEK_NUM_PARTITIONS")]
    num_partitions: Option<String>,
    /// `log.segment.bytes`.
    #[arg(long, env = "ODRADEK_LOG_SEGMENT_BYTES")]
    log_segment_bytes: Option<String>,
    /// `log.retention.ms`.
    #[arg(long, env = "ODRADEK_LOG_RETENTION_MS")]
    log_retention_ms: Option<String>,
    /// `message.max.bytes`.
    #[arg(long, env = "ODRADEK_MESSAGE_MAX_BYTES")]
    message_max_bytes: Option<String>,
    /// `auto.create.topics.enable`.
    #[arg(long, env = "ODRADEK_AUTO_CREATE_TOPICS_ENABLE")]
    auto_create_topics_enable: Option<String>,
    /// Any Kafka broker property, `name=value` (repeatable); wins over everything else.
    #[arg(long = "override", value_name = "NAME=VALUE")]
    overrides: Vec<String>,
}

/// Parses a Kafka properties file: `name=value` or `name: value`, `#`/`!` comments.
fn parse_properties(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let split = line.find(['=', ':']).map(|i| (&line[..i], &line[i + 1..]));
        if let Some((k, v)) = split {
            out.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    out
}

/// `PLAINTEXT://host:port[,...]` or `host:port`: the first listener's host and port.
fn parse_listener(s: &str) -> Result<(String, u16), String> {
    let first = s.split(',').next().unwrap_or("").trim();
    let addr = first.rsplit_once("://").map_or(first, |(_, a)| a);
    let (host, port) = addr.rsplit_once(':').ok_or_else(|| format!("listener {s:?} has no port"))?;
    let port: u16 = port.parse().map_err(|_| format!("listener {s:?}: bad port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((if host.is_empty() { "0.0.0.0".to_string() } else { host.to_string() }, port))
}

fn parse<T: std::str::FromStr>(props: &BTreeMap<String, String>, name: &str, into: &mut T) -> Result<(), String> {
    if let Some(v) = props.get(name) {
        *into = v.parse().map_err(|_| format!("{name}: invalid value {v:?}"))?;
    }
    Ok(())
}

fn broker_config(args: &ServeArgs) -> Result<BrokerConfig, String> {
    let mut props = match &args.config {
        Some(path) => {
            parse_properties(&std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?)
        }
        None => BTreeMap::new(),
    };
    let flags = [
        ("listeners", &args.listeners),
        ("advertised.listeners", &args.advertised_listeners),
        ("log.dirs", &args.data_dir),
        ("num.partitions", &args.num_partitions),
        ("log.segment.bytes", &args.log_segment_bytes),
        ("log.retention.ms", &args.log_retention_ms),
        ("message.max.bytes", &args.message_max_bytes),
        ("auto.create.topics.enable", &args.auto_create_topics_enable),
    ];
    for (name, value) in flags {
        if let Some(v) = value {
            props.insert(name.to_string(), v.clone());
        }
    }
    for o in &args.overrides {
        let (k, v) = o.split_once('=').ok_or_else(|| format!("--override {o:?}: expected name=value"))?;
        props.insert(k.trim().to_string(), v.trim().to_string());
    }

    let mut c = BrokerConfig::default();
    if let Some(l) = props.get("listeners") {
        let (host, port) = parse_listener(l)?;
        c.listen = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| format!("listeners {l:?}: {e}"))?
            .next()
            .ok_or_else(|| format!("listeners {l:?}: no address"))?;
    }
    let (adv_host, adv_port) = match props.get("advertised.listeners") {
        Some(a) => parse_listener(a)?,
        None => {
            let host = if c.listen.ip().is_unspecified() { "127.0.0.1".to_string() } else { c.listen.ip().to_string() };
            (host, c.listen.port())
        }
    };
    c.advertised_host = adv_host;
    c.advertised_port = i32::from(adv_port);
    if let Some(d) = props.get("log.dirs").or_else(|| props.get("log.dir")) {
        // One directory per node for now: the first of the list.
        c.data_dir = PathBuf::from(d.split(',').next().unwrap_or(d).trim());
    }
    parse(&props, "node.id", &mut c.node_id)?;
    parse(&props, "num.partitions", &mut c.num_partitions)?;
    parse(&props, "auto.create.topics.enable", &mut c.auto_create_topics)?;
    parse(&props, "message.max.bytes", &mut c.message_max_bytes)?;
    parse(&props, "log.segment.bytes", &mut c.segment_bytes)?;
    parse(&props, "log.retention.ms", &mut c.retention_ms)?;
    if let Some(h) = props.get("log.retention.hours").filter(|_| !props.contains_key("log.retention.ms")) {
        let h: i64 = h.parse().map_err(|_| format!("log.retention.hours: invalid value {h:?}"))?;
        c.retention_ms = h.saturating_mul(3_600_000);
    }
    parse(&props, "log.retention.bytes", &mut c.retention_bytes)?;
    parse(&props, "socket.request.max.bytes", &mut c.request_bytes_max)?;
    parse(&props, "max.connections", &mut c.connections_max)?;
    parse(&props, "queued.max.request.bytes", &mut c.request_bytes_in_flight_max)?;
    parse(&props, "connections.max.idle.ms", &mut c.connections_idle_ms_max)?;
    parse(&props, "queued.max.requests.per.connection", &mut c.requests_in_flight_max)?;
    parse(&props, "fetch.max.bytes", &mut c.fetch_bytes_max)?;
    if let Some(v) = props.get("odradek.log.memory.bytes") {
        let n: usize = v.parse().map_err(|_| format!("odradek.log.memory.bytes: invalid value {v:?}"))?;
        c.log_memory_bytes = Some(n);
    }
    parse(&props, "group.min.session.timeout.ms", &mut c.group_session_timeout_ms_min)?;
    parse(&props, "group.max.session.timeout.ms", &mut c.group_session_timeout_ms_max)?;
    parse(&props, "group.consumer.session.timeout.ms", &mut c.group_consumer_session_timeout_ms)?;
    parse(&props, "group.consumer.heartbeat.interval.ms", &mut c.group_consumer_heartbeat_interval_ms)?;
    parse(&props, "producer.id.expiration.ms", &mut c.producer_id_expiration_ms)?;
    if c.producer_id_expiration_ms < 1 {
        return Err("producer.id.expiration.ms must be at least 1".into());
    }
    transaction_config(&props, &mut c)?;
    cleaner_config(&props, &mut c)?;
    log_flush_config(&props, &mut c)?;
    if let Some(id) = props.get("cluster.id") {
        c.cluster_id = id.clone();
    }
    if c.num_partitions < 1 {
        return Err("num.partitions must be at least 1".into());
    }
    // Topic config defaults from the broker's own names for them (log.cleaner.*, log.roll.*, ...).
    let (topic_defaults, used) = net::handlers::config_defs::broker_topic_defaults(&props, KNOWN_PROPERTIES)?;
    c.topic_defaults = topic_defaults;
    c.static_props = understood(props, &used);
    Ok(c)
}

/// What DescribeConfigs shows as STATIC_BROKER_CONFIG: the settings given and understood
/// (`used`: those read as topic defaults). The rest are reported, not fatal, as Kafka does:
/// a server.properties written for Kafka must start Odradek too.
fn understood(props: BTreeMap<String, String>, used: &[String]) -> BTreeMap<String, String> {
    let known = |k: &str| KNOWN_PROPERTIES.contains(&k) || used.iter().any(|u| u == k);
    let unknown: Vec<&str> = props.keys().map(String::as_str).filter(|k| !known(k)).collect();
    if !unknown.is_empty() {
        eprintln!("warning: ignoring broker properties Odradek does not support: {}", unknown.join(", "));
    }
    props.into_iter().filter(|(k, _)| known(k)).collect()
}

/// The durability settings (`log.flush.interval.*`: unset, every log syncs before it
/// acknowledges; see `net::handlers::admin::durability_of`) and the retention sweep's interval.
fn log_flush_config(props: &BTreeMap<String, String>, c: &mut BrokerConfig) -> Result<(), String> {
    let long = |name: &str| -> Result<Option<i64>, String> {
        props.get(name).map(|v| v.trim().parse::<i64>().map_err(|_| format!("{name}: invalid value {v:?}"))).transpose()
    };
    c.flush_interval_messages = long("log.flush.interval.messages")?;
    c.flush_interval_ms = long("log.flush.interval.ms")?;
    if c.flush_interval_messages.is_some_and(|n| n < 1) {
        return Err("log.flush.interval.messages must be at least 1".into());
    }
    if c.flush_interval_ms.is_some_and(|ms| ms < 0) {
        return Err("log.flush.interval.ms must be at least 0".into());
    }
    parse(props, "log.retention.check.interval.ms", &mut c.retention_check_interval_ms)?;
    if c.retention_check_interval_ms < 1 {
        return Err("log.retention.check.interval.ms must be at least 1".into());
    }
    Ok(())
}

/// The transaction coordinator's settings.
fn transaction_config(props: &BTreeMap<String, String>, c: &mut BrokerConfig) -> Result<(), String> {
    parse(props, "transaction.max.timeout.ms", &mut c.transaction_max_timeout_ms)?;
    parse(props, "transactional.id.expiration.ms", &mut c.transactional_id_expiration_ms)?;
    let interval = "transaction.abort.timed.out.transaction.cleanup.interval.ms";
    parse(props, interval, &mut c.transaction_cleanup_interval_ms)?;
    parse(props, "transaction.partition.verification.enable", &mut c.transaction_partition_verification)?;
    if c.transaction_max_timeout_ms < 1 || c.transactional_id_expiration_ms < 1 || c.transaction_cleanup_interval_ms < 1
    {
        return Err(format!(
            "transaction.max.timeout.ms, transactional.id.expiration.ms and {interval} must be at least 1"
        ));
    }
    Ok(())
}

/// The log cleaner's settings.
fn cleaner_config(props: &BTreeMap<String, String>, c: &mut BrokerConfig) -> Result<(), String> {
    parse(props, "log.cleaner.enable", &mut c.log_cleaner_enable)?;
    parse(props, "log.cleaner.threads", &mut c.log_cleaner_threads)?;
    parse(props, "log.cleaner.backoff.ms", &mut c.log_cleaner_backoff_ms)?;
    parse(props, "log.cleaner.dedupe.buffer.size", &mut c.log_cleaner_dedupe_buffer_bytes)?;
    parse(props, "log.cleaner.io.max.bytes.per.second", &mut c.log_cleaner_io_bytes_per_second)?;
    if c.log_cleaner_threads < 1 || c.log_cleaner_backoff_ms < 1 {
        return Err("log.cleaner.threads and log.cleaner.backoff.ms must be at least 1".into());
    }
    // As Kafka: the key map needs room for at least one entry per thread.
    if c.log_cleaner_dedupe_buffer_bytes < 1024 * 1024 * c.log_cleaner_threads {
        return Err("log.cleaner.dedupe.buffer.size must be at least 1 MiB per log.cleaner.threads".into());
    }
    if c.log_cleaner_io_bytes_per_second.is_nan() || c.log_cleaner_io_bytes_per_second <= 0.0 {
        return Err("log.cleaner.io.max.bytes.per.second must be positive".into());
    }
    Ok(())
}

/// Every broker property `serve` understands (see `broker_config`).
const KNOWN_PROPERTIES: &[&str] = &[
    "advertised.listeners",
    "auto.create.topics.enable",
    "cluster.id",
    "connections.max.idle.ms",
    "fetch.max.bytes",
    "group.consumer.heartbeat.interval.ms",
    "group.consumer.session.timeout.ms",
    "group.max.session.timeout.ms",
    "group.min.session.timeout.ms",
    "listeners",
    "log.cleaner.backoff.ms",
    "log.cleaner.dedupe.buffer.size",
    "log.cleaner.enable",
    "log.cleaner.io.max.bytes.per.second",
    "log.cleaner.threads",
    "log.dir",
    "log.dirs",
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "log.retention.bytes",
    "log.retention.check.interval.ms",
    "log.retention.hours",
    "log.retention.ms",
    "log.segment.bytes",
    "max.connections",
    "message.max.bytes",
    "node.id",
    "num.partitions",
    "odradek.log.memory.bytes",
    "producer.id.expiration.ms",
    "queued.max.request.bytes",
    "queued.max.requests.per.connection",
    "socket.request.max.bytes",
    "transaction.abort.timed.out.transaction.cleanup.interval.ms",
    "transaction.max.timeout.ms",
    "transaction.partition.verification.enable",
    "transactional.id.expiration.ms",
];

fn serve(args: ServeArgs) -> Result<(), String> {
    let config = broker_config(&args)?;
    let mut shard_config = ShardSetConfig::new(&config.data_dir);
    if let Some(n) = args.shards {
        shard_config.shard_count = n.max(1);
    }
    shard_config.log.segment_bytes =
        u64::try_from(config.segment_bytes).map_err(|_| "log.segment.bytes must be positive")?;
    shard_config.log.durability =
        net::handlers::admin::durability_of(config.flush_interval_messages, config.flush_interval_ms);
    if let Some(total) = config.log_memory_bytes {
        shard_config.memory_bytes_per_shard = total / shard_config.shard_count.max(1);
    } else {
        shard_config.memory_bytes_per_shard = engine::budget::default_shard_memory_bytes(shard_config.shard_count);
    }
    // Every shard binds with SO_REUSEPORT, which would let a second broker of the same user
    // share the port silently and split the clients between two data directories.
    if broker_answers(config.listen) {
        return Err(format!("cannot listen on {}: a Kafka broker already answers there", config.listen));
    }
    let broker = Broker::new(config.clone()).map_err(|e| format!("loading topics: {e}"))?;
    let signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT])
        .map_err(|e| format!("installing signal handlers: {e}"))?;
    // Logs of existing topics reopen with their topic's settings (segment.bytes, segment.ms).
    let registry = broker.clone();
    shard_config.log_config_for = Some(engine::shard::LogConfigFor(std::sync::Arc::new(move |tp: &TopicPartition| {
        registry.topics.get(&tp.topic).map(|t| net::handlers::admin::log_config_of(&registry.config, &t.configs))
    })));
    let node_config = NodeConfig { node_id: NodeId(config.node_id), ..NodeConfig::new(shard_config) };
    let node = Node::start(node_config, Some(broker.service())).map_err(|e| format!("starting shards: {e}"))?;
    reconcile(&broker, &node.router())?;
    eprintln!(
        "odradek serving on {} (advertised {}:{}), data in {}, {} shard(s)",
        config.listen,
        config.advertised_host,
        config.advertised_port,
        config.data_dir.display(),
        node.router().shard_count()
    );
    let mut signals = signals;
    if let Some(sig) = signals.forever().next() {
        eprintln!("signal {sig}: shutting down");
    }
    broker.stop_listening();
    node.shutdown();
    eprintln!("stopped");
    Ok(())
}

/// Whether a Kafka broker answers an ApiVersions request at `addr`. A plain bind cannot tell
/// (the previous run's connections in TIME_WAIT make it fail), nor can a bare connect: for a
/// moment after a broker exits, its io_uring teardown keeps the listening sockets alive, and
/// they complete handshakes without ever answering.
fn broker_answers(addr: std::net::SocketAddr) -> bool {
    use std::io::{Read, Write};
    use std::time::Duration;
    let addr =
        if addr.ip().is_unspecified() { std::net::SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr };
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else { return false };
    // ApiVersions v0: size, api key 18, version 0, correlation id 1, null client id.
    let request = [0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 1, 0xff, 0xff];
    if s.set_read_timeout(Some(Duration::from_secs(1))).is_err() || s.write_all(&request).is_err() {
        return false;
    }
    let mut size = [0u8; 4];
    s.read_exact(&mut size).is_ok()
}

/// Creates any partition the registry lists but the data directory lacks (a crash between
/// registering a topic and creating its last partition).
fn reconcile(broker: &Broker, router: &net::server::Router) -> Result<(), String> {
    let mut present = std::collections::BTreeSet::new();
    for shard in router.shards() {
        let list = router.call_blocking(shard, |reply| ShardRequest::List { reply }).map_err(|e| e.to_string())?;
        present.extend(list);
    }
    for topic in broker.topics.list() {
        for p in 0..topic.partitions {
            let tp = TopicPartition::new(&topic.name, p);
            if present.contains(&tp) {
                continue;
            }
            let owner = router.owner(&tp);
            let config = engine::LogConfig {
                segment_bytes: u64::try_from(broker.config.segment_bytes).unwrap_or(1 << 30),
                ..engine::LogConfig::default()
            };
            let created = router
                .call_blocking(owner, |reply| ShardRequest::CreatePartition { tp, config, reply })
                .map_err(|e| e.to_string())?;
            // Clients are already served: a topic created meanwhile has its partitions.
            match created {
                Ok(()) | Err(replication::PartitionError::AlreadyExists(_)) => {}
                Err(e) => return Err(format!("recreating a partition of {}: {e}", topic.name)),
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Client(command) => return odradek::cli::run(command),
        Command::Bench(command) => odradek::bench::run(command),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("odradek: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn properties_and_listeners_parse() {
        let p = parse_properties("# c\nlisteners=PLAINTEXT://0.0.0.0:9093\nlog.dirs : /tmp/x\n\n");
        assert_eq!(p.get("listeners").map(String::as_str), Some("PLAINTEXT://0.0.0.0:9093"));
        assert_eq!(p.get("log.dirs").map(String::as_str), Some("/tmp/x"));
        assert_eq!(parse_listener("PLAINTEXT://:9092").expect("listener"), ("0.0.0.0".to_string(), 9092));
        assert_eq!(parse_listener("localhost:1").expect("listener"), ("localhost".to_string(), 1));
        assert!(parse_listener("nope").is_err());
    }

    #[test]
    fn defaults_need_no_config() {
        let args = ServeArgs::parse_from(["serve"]);
        let c = broker_config(&args).expect("config");
        assert_eq!(c.listen, SocketAddr::from(([127, 0, 0, 1], 9092)));
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        let args = ServeArgs::parse_from(["serve", "--override", "num.partitions=3", "--listeners", "127.0.0.1:19092"]);
        let c = broker_config(&args).expect("config");
        assert_eq!((c.num_partitions, c.advertised_port), (3, 19092));
    }

    #[test]
    fn log_flush_and_retention_check_settings_parse() {
        let c = broker_config(&ServeArgs::parse_from(["serve"])).expect("config");
        assert_eq!((c.flush_interval_messages, c.flush_interval_ms, c.retention_check_interval_ms), (None, None, 5000));
        assert!(c.static_props.is_empty());
        let args = ServeArgs::parse_from([
            "serve",
            "--override",
            "log.flush.interval.ms=250",
            "--override",
            "log.retention.check.interval.ms=100",
            "--override",
            "no.such.setting=1",
        ]);
        let c = broker_config(&args).expect("config");
        assert_eq!((c.flush_interval_ms, c.retention_check_interval_ms), (Some(250), 100));
        let given: Vec<&str> = c.static_props.keys().map(String::as_str).collect();
        assert_eq!(given, ["log.flush.interval.ms", "log.retention.check.interval.ms"], "unknown ones are not static");
        let args = ServeArgs::parse_from(["serve", "--override", "log.flush.interval.messages=10"]);
        assert_eq!(broker_config(&args).expect("a sync every 10 records").flush_interval_messages, Some(10));
        for bad in ["log.flush.interval.messages=0", "log.retention.check.interval.ms=0", "log.flush.interval.ms=-1"] {
            let args = ServeArgs::parse_from(["serve", "--override", bad]);
            assert!(broker_config(&args).is_err(), "{bad}");
        }
    }

    #[test]
    fn broker_names_of_topic_configs_set_their_defaults() {
        let args = ServeArgs::parse_from([
            "serve",
            "--override",
            "log.cleaner.delete.retention.ms=1234",
            "--override",
            "log.cleaner.min.cleanable.ratio=0.2",
            "--override",
            "log.roll.hours=2",
            "--override",
            "log.cleanup.policy=compact",
            "--override",
            "compression.type=zstd",
        ]);
        let c = broker_config(&args).expect("config");
        let none = std::collections::BTreeMap::new();
        let topic = net::view::TopicConfig::of(&c, &none);
        assert_eq!(topic.cleaner.delete_retention_ms, 1234);
        assert!((topic.cleaner.min_cleanable_dirty_ratio - 0.2).abs() < 1e-9);
        assert!(topic.compact && !topic.retention_deletes);
        assert_eq!(net::handlers::admin::log_config_of(&c, &none).segment_ms, 7_200_000);
        let given: Vec<&str> = c.static_props.keys().map(String::as_str).collect();
        assert_eq!(
            given,
            [
                "compression.type",
                "log.cleaner.delete.retention.ms",
                "log.cleaner.min.cleanable.ratio",
                "log.cleanup.policy",
                "log.roll.hours"
            ]
        );
        // A topic's own setting still wins.
        let own = std::collections::BTreeMap::from([("delete.retention.ms".to_string(), "5".to_string())]);
        assert_eq!(net::view::TopicConfig::of(&c, &own).cleaner.delete_retention_ms, 5);
        for bad in ["log.cleaner.min.cleanable.ratio=7", "log.cleanup.policy=shred", "log.roll.hours=x"] {
            let args = ServeArgs::parse_from(["serve", "--override", bad]);
            assert!(broker_config(&args).is_err(), "{bad}");
        }
    }
}
