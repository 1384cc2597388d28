//! Topic configs: every name Kafka 3.8 accepts, its type, its default and broker synonyms, and
//! validation as Kafka's does it (types, ranges, enums, and the one cross-config check), with
//! Kafka's wording so a message reads the same from either broker.
//!
//! Every config here either takes effect on Odradek or is refused when set to a value Odradek
//! cannot honour; those accepted without an effect are accepted because the effect cannot
//! arise on a single node (the README's configs section says which, and why).
//!
//! Accepted without an effect, and why:
//! - `min.insync.replicas`: Kafka 3.8 enforces `min(min.insync.replicas, replicas)` (checked on
//!   the JVM broker: acks=all to a replication-factor-1 topic with `min.insync.replicas=2`
//!   succeeds), and every Odradek partition has one replica, which is always in sync: there is
//!   nothing to refuse until replication lands. Validated now (at least 1).
//! - `unclean.leader.election.enable`: one replica, so never an out-of-sync one to elect.
//! - `follower/leader.replication.throttled.replicas`: no replication traffic to throttle.
//! - `preallocate`: Kafka's answer to slow file growth on Windows; Odradek's segments grow by
//!   aligned direct writes.
//! - `file.delete.delay.ms`: Kafka delays deleting a segment so readers with it open finish;
//!   an Odradek reader holds the segment's open file, so deletion never cuts a read short.
//! - `message.format.version`, `message.downconversion.enable`: Odradek stores only v2
//!   batches and serves Fetch v4 and later, which never need down-conversion.
//! - `local.retention.*`, `remote.storage.enable=false`: tiered storage only (`true` is refused).
//!
//! Validation is pure: CreateTopics, AlterConfigs and IncrementalAlterConfigs all call
//! [`validate_set`] on the topic's whole new set of overrides before anything changes.

use std::collections::BTreeMap;

use crate::config::BrokerConfig;
use crate::errors::code;
use crate::handlers::admin::AdminError;

/// Kafka's config types (the numbering of DescribeConfigs v3's `config_type`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// What a value must satisfy beyond its type.
#[derive(Clone, Copy, Debug)]
pub enum Check {
    None,
    /// Inclusive bounds of an Int or Long (`None`: unbounded on that side).
    Range(Option<i64>, Option<i64>),
    /// A Double in `[min, max]`.
    RatioRange(f64, f64),
    /// `compression.gzip.level`: 1..=9 or -1 (the codec's default).
    GzipLevel,
    /// A String that must be one of these (case-sensitive, as Kafka's `ValidString`).
    OneOf(&'static [&'static str]),
    /// A List whose every entry must be one of these (`ValidList`).
    ListOf(&'static [&'static str]),
    /// `*` or `partition:broker,...` (the replication throttle lists).
    ThrottledReplicas,
    /// A message format version Kafka knows (`message.format.version`, deprecated).
    FormatVersion,
    /// `remote.storage.enable`: only `false` (Odradek has no tiered storage).
    NoTieredStorage,
}

/// Where a synonym's default comes from, for DescribeConfigs' DEFAULT_CONFIG entries.
#[derive(Clone, Copy, Debug)]
pub enum SynonymDefault {
    /// The topic config's own default on a broker started with no settings.
    Topic,
    /// Kafka has no default for it (a null default is never listed).
    Absent,
    /// Kafka's default for it, in its own unit (`log.retention.hours=168`).
    Fixed(&'static str),
}

/// A topic config: its name, type, check, default, and the broker settings it falls back to
/// in Kafka's order of precedence (DescribeConfigs lists them as synonyms in this order).
pub struct Def {
    pub name: &'static str,
    pub kind: Kind,
    pub check: Check,
    pub synonyms: &'static [(&'static str, SynonymDefault)],
    pub default: fn(&BrokerConfig) -> String,
}

pub const LONG_MAX: &str = "9223372036854775807";

use Check::{Range, RatioRange};
use SynonymDefault::{Absent, Fixed, Topic};

const POLICIES: &[&str] = &["compact", "delete"];
const CODECS: &[&str] = &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];
const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];

macro_rules! def {
    ($name:literal, $kind:ident, $check:expr, [$(($syn:literal, $sd:expr)),*], $default:expr) => {
        Def { name: $name, kind: Kind::$kind, check: $check, synonyms: &[$(($syn, $sd)),*], default: $default }
    };
}

/// Kafka 3.8's topic configs, by name.
pub const DEFS: &[Def] = &[
    def!("cleanup.policy", List, Check::ListOf(POLICIES), [("log.cleanup.policy", Topic)], |_| "delete".into()),
    def!("compression.gzip.level", Int, Check::GzipLevel, [("compression.gzip.level", Topic)], |_| "-1".into()),
    def!("compression.lz4.level", Int, Range(Some(1), Some(17)), [("compression.lz4.level", Topic)], |_| "9".into()),
    def!("compression.type", String, Check::OneOf(CODECS), [("compression.type", Topic)], |_| "producer".into()),
    def!("compression.zstd.level", Int, Range(Some(-131_072), Some(22)), [("compression.zstd.level", Topic)], |_| "3"
        .into()),
    def!("delete.retention.ms", Long, Range(Some(0), None), [("log.cleaner.delete.retention.ms", Topic)], |_| {
        "86400000".into()
    }),
    def!("file.delete.delay.ms", Long, Range(Some(0), None), [("log.segment.delete.delay.ms", Topic)], |_| {
        "60000".into()
    }),
    def!("flush.messages", Long, Range(Some(1), None), [("log.flush.interval.messages", Topic)], |b| {
        b.flush_interval_messages.map_or(LONG_MAX.into(), |v| v.to_string())
    }),
    def!(
        "flush.ms",
        Long,
        Range(Some(0), None),
        [("log.flush.interval.ms", Absent), ("log.flush.scheduler.interval.ms", Fixed(LONG_MAX))],
        |b| b.flush_interval_ms.map_or(LONG_MAX.into(), |v| v.to_string())
    ),
    def!("follower.replication.throttled.replicas", List, Check::ThrottledReplicas, [], |_| String::new()),
    def!("index.interval.bytes", Int, Range(Some(0), None), [("log.index.interval.bytes", Topic)], |_| {
        "4096".into()
    }),
    def!("leader.replication.throttled.replicas", List, Check::ThrottledReplicas, [], |_| String::new()),
    def!("local.retention.bytes", Long, Range(Some(-2), None), [("log.local.retention.bytes", Topic)], |_| {
        "-2".into()
    }),
    def!("local.retention.ms", Long, Range(Some(-2), None), [("log.local.retention.ms", Topic)], |_| "-2".into()),
    def!("max.compaction.lag.ms", Long, Range(Some(1), None), [("log.cleaner.max.compaction.lag.ms", Topic)], |_| {
        LONG_MAX.into()
    }),
    def!("max.message.bytes", Int, Range(Some(0), None), [("message.max.bytes", Topic)], |b| {
        b.message_max_bytes.to_string()
    }),
    def!("message.downconversion.enable", Boolean, Check::None, [("log.message.downconversion.enable", Topic)], |_| {
        "true".into()
    }),
    def!("message.format.version", String, Check::FormatVersion, [("log.message.format.version", Topic)], |_| {
        "3.0-IV1".into()
    }),
    def!(
        "message.timestamp.after.max.ms",
        Long,
        Range(Some(0), None),
        [("log.message.timestamp.after.max.ms", Topic)],
        |_| "3600000".into()
    ),
    def!(
        "message.timestamp.before.max.ms",
        Long,
        Range(Some(0), None),
        [("log.message.timestamp.before.max.ms", Topic)],
        |_| LONG_MAX.into()
    ),
    def!(
        "message.timestamp.difference.max.ms",
        Long,
        Range(Some(0), None),
        [("log.message.timestamp.difference.max.ms", Topic)],
        |_| LONG_MAX.into()
    ),
    def!(
        "message.timestamp.type",
        String,
        Check::OneOf(TIMESTAMP_TYPES),
        [("log.message.timestamp.type", Topic)],
        |_| "CreateTime".into()
    ),
    def!(
        "min.cleanable.dirty.ratio",
        Double,
        RatioRange(0.0, 1.0),
        [("log.cleaner.min.cleanable.ratio", Topic)],
        |_| "0.5".into()
    ),
    def!("min.compaction.lag.ms", Long, Range(Some(0), None), [("log.cleaner.min.compaction.lag.ms", Topic)], |_| "0"
        .into()),
    def!("min.insync.replicas", Int, Range(Some(1), None), [("min.insync.replicas", Topic)], |_| "1".into()),
    def!("preallocate", Boolean, Check::None, [("log.preallocate", Topic)], |_| "false".into()),
    def!("remote.storage.enable", Boolean, Check::NoTieredStorage, [], |_| "false".into()),
    def!("retention.bytes", Long, Check::None, [("log.retention.bytes", Topic)], |b| b.retention_bytes.to_string()),
    def!(
        "retention.ms",
        Long,
        Range(Some(-1), None),
        [("log.retention.ms", Absent), ("log.retention.minutes", Absent), ("log.retention.hours", Fixed("168"))],
        |b| b.retention_ms.to_string()
    ),
    def!("segment.bytes", Int, Range(Some(14), None), [("log.segment.bytes", Topic)], |b| b.segment_bytes.to_string()),
    def!("segment.index.bytes", Int, Range(Some(4), None), [("log.index.size.max.bytes", Topic)], |_| {
        "10485760".into()
    }),
    def!(
        "segment.jitter.ms",
        Long,
        Range(Some(0), None),
        [("log.roll.jitter.ms", Absent), ("log.roll.jitter.hours", Fixed("0"))],
        |_| "0".into()
    ),
    def!("segment.ms", Long, Range(Some(1), None), [("log.roll.ms", Absent), ("log.roll.hours", Fixed("168"))], |_| {
        "604800000".into()
    }),
    def!("unclean.leader.election.enable", Boolean, Check::None, [("unclean.leader.election.enable", Topic)], |_| {
        "false".into()
    }),
];

pub fn def(name: &str) -> Option<&'static Def> {
    DEFS.iter().find(|d| d.name == name)
}

/// Kafka's message format versions (`MetadataVersion` and the 0.x names): `X.Y` or
/// `X.Y-IVn`, and for 0.x also `0.X.Y`; anything after is ignored, as Kafka does.
fn known_format_version(v: &str) -> bool {
    let mut parts = v.split(['.', '-']);
    let (major, minor) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let minor: u32 = match minor.parse() {
        Ok(m) => m,
        Err(_) => return false,
    };
    match major {
        "0" => matches!(minor, 8..=11) && parts.next().is_some_and(|p| p.parse::<u32>().is_ok()),
        "1" => minor <= 1,
        "2" => minor <= 8,
        "3" => minor <= 8,
        _ => false,
    }
}

/// Kafka's message for a value that fails its check.
fn invalid(name: &str, shown: &str, why: &str) -> AdminError {
    (code::INVALID_CONFIG, format!("Invalid value {shown} for configuration {name}: {why}"))
}

/// The entries of a List value, as Kafka splits them (`a, b` is two; empty is none).
pub fn list_items(v: &str) -> Vec<&str> {
    let v = v.trim();
    if v.is_empty() {
        return Vec::new();
    }
    v.split(',').map(str::trim).collect()
}

fn check_integer(d: &Def, raw: &str, v: &str) -> Result<(), AdminError> {
    let n = match d.kind {
        Kind::Int => v.parse::<i32>().map(i64::from).map_err(|_| invalid(d.name, raw, "Not a number of type INT"))?,
        _ => v.parse::<i64>().map_err(|_| invalid(d.name, raw, "Not a number of type LONG"))?,
    };
    match d.check {
        Range(Some(min), _) if n < min => Err(invalid(d.name, v, &format!("Value must be at least {min}"))),
        Range(_, Some(max)) if n > max => Err(invalid(d.name, v, &format!("Value must be no more than {max}"))),
        Check::GzipLevel if !(n == -1 || (1..=9).contains(&n)) => {
            Err(invalid(d.name, v, "Value must be between 1 and 9 or equal to -1"))
        }
        _ => Ok(()),
    }
}

fn check_text(d: &Def, v: &str) -> Result<(), AdminError> {
    let one_of = |allowed: &[&str]| format!("String must be one of: {}", allowed.join(", "));
    match d.check {
        Check::OneOf(allowed) if !allowed.contains(&v) => Err(invalid(d.name, v, &one_of(allowed))),
        Check::ListOf(allowed) => match list_items(v).into_iter().find(|i| !allowed.contains(i)) {
            Some(bad) => Err(invalid(d.name, bad, &one_of(allowed))),
            None => Ok(()),
        },
        Check::ThrottledReplicas => {
            let pair =
                |i: &str| i.split_once(':').is_some_and(|(p, b)| p.parse::<i32>().is_ok() && b.parse::<i32>().is_ok());
            let items = list_items(v);
            let ok = items == ["*"] || items.iter().all(|i| pair(i));
            if ok {
                return Ok(());
            }
            let why = format!(
                "{} must be the literal '*' or a list of replicas in the following format: \
                 [partitionId]:[brokerId],[partitionId]:[brokerId],...",
                d.name
            );
            Err(invalid(d.name, &format!("[{}]", items.join(", ")), &why))
        }
        Check::FormatVersion if !known_format_version(v) => {
            Err(invalid(d.name, v, &format!("Version {v} is not a valid version")))
        }
        _ => Ok(()),
    }
}

/// Checks one topic config name and value (`None`: deleting the override), as Kafka's
/// `ConfigDef` parses it: values are trimmed, booleans are case-insensitive.
pub fn validate(name: &str, value: Option<&str>) -> Result<(), AdminError> {
    let d = def(name).ok_or((code::INVALID_CONFIG, format!("Unknown topic config name: {name}")))?;
    let Some(raw) = value else { return Ok(()) };
    let v = raw.trim();
    match d.kind {
        Kind::Boolean => {
            let b = match v.to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => return Err(invalid(name, raw, "Expected value to be either true or false")),
            };
            if b && matches!(d.check, Check::NoTieredStorage) {
                return Err((
                    code::INVALID_CONFIG,
                    "Tiered Storage functionality is disabled in the broker. Topic cannot be configured with \
                     remote log storage (remote.storage.enable=true: Odradek has no tiered storage)."
                        .into(),
                ));
            }
            Ok(())
        }
        Kind::Int | Kind::Long => check_integer(d, raw, v),
        Kind::Double => {
            let x: f64 = v.parse().map_err(|_| invalid(name, raw, "Not a number of type DOUBLE"))?;
            match d.check {
                // NaN passes, as in Kafka (its comparisons are false either way).
                RatioRange(min, _) if x < min => {
                    Err(invalid(name, &format!("{x:?}"), &format!("Value must be at least {min}")))
                }
                RatioRange(_, max) if x > max => {
                    Err(invalid(name, &format!("{x:?}"), &format!("Value must be no more than {max}")))
                }
                _ => Ok(()),
            }
        }
        Kind::String | Kind::List => check_text(d, v),
    }
}

/// The value as stored: what the data path parses (trimmed; booleans lower case).
pub fn normalize(name: &str, value: &str) -> String {
    let v = value.trim();
    match def(name).map(|d| d.kind) {
        Some(Kind::Boolean) => v.to_ascii_lowercase(),
        _ => v.to_string(),
    }
}

/// Validates a topic's whole set of overrides, normalizing each value in place, then Kafka's
/// cross-config check (`min.compaction.lag.ms` may not exceed `max.compaction.lag.ms`, both
/// effective values).
pub fn validate_set(broker: &BrokerConfig, overrides: &mut BTreeMap<String, String>) -> Result<(), AdminError> {
    for (k, v) in overrides.iter_mut() {
        validate(k, Some(v))?;
        *v = normalize(k, v);
    }
    let lag = |name: &str| effective(broker, overrides, name).and_then(|v| v.parse::<i64>().ok());
    if let (Some(min), Some(max)) = (lag("min.compaction.lag.ms"), lag("max.compaction.lag.ms")) {
        if min > max {
            return Err((
                code::INVALID_CONFIG,
                format!("conflict topic config setting min.compaction.lag.ms ({min}) > max.compaction.lag.ms ({max})"),
            ));
        }
    }
    Ok(())
}

/// A config's value for a topic with these overrides: the override, or the broker's default
/// for it (a start-up property), or Kafka's.
pub fn effective(broker: &BrokerConfig, overrides: &BTreeMap<String, String>, name: &str) -> Option<String> {
    overrides.get(name).cloned().or_else(|| default_of(broker, name))
}

/// A topic config's value where the topic does not set it.
pub fn default_of(broker: &BrokerConfig, name: &str) -> Option<String> {
    broker.topic_defaults.get(name).cloned().or_else(|| def(name).map(|d| (d.default)(broker)))
}

/// Broker properties in another unit than their topic config: (property, factor to ms).
const UNIT_SYNONYMS: &[(&str, i64)] = &[
    ("log.retention.minutes", 60_000),
    ("log.retention.hours", 3_600_000),
    ("log.roll.hours", 3_600_000),
    ("log.roll.jitter.hours", 3_600_000),
];

/// Synonyms that are not defaults of their topic config in Kafka's sense (the flush
/// scheduler's own interval), left to the "unsupported property" warning.
const NOT_DEFAULTS: &[&str] = &["log.flush.scheduler.interval.ms"];

/// The topic config defaults that start-up properties set (`log.cleaner.delete.retention.ms`
/// for `delete.retention.ms`, ...): for each topic config, its first synonym in Kafka's order
/// of precedence that `props` sets, unless that one is among `handled` (a broker setting with
/// a field of its own, which the default already reads). Values are converted to the topic
/// config's unit and checked as the topic config is: a bad one fails the start, as in Kafka.
/// Returns the defaults and the properties they came from.
pub fn broker_topic_defaults(
    props: &BTreeMap<String, String>,
    handled: &[&str],
) -> Result<(BTreeMap<String, String>, Vec<String>), String> {
    let mut defaults = BTreeMap::new();
    let mut used = Vec::new();
    for d in DEFS {
        let Some((prop, raw)) = d
            .synonyms
            .iter()
            .filter(|(n, _)| !NOT_DEFAULTS.contains(n))
            .find_map(|(n, _)| props.get(*n).map(|v| (*n, v)))
        else {
            continue;
        };
        if handled.contains(&prop) {
            continue;
        }
        let value = match UNIT_SYNONYMS.iter().find(|(n, _)| *n == prop) {
            Some((_, factor)) => {
                let n: i64 = raw.trim().parse().map_err(|_| format!("{prop}: invalid value {raw:?}"))?;
                n.saturating_mul(*factor).to_string()
            }
            None => raw.trim().to_string(),
        };
        validate(d.name, Some(&value)).map_err(|(_, msg)| format!("{prop}={raw}: {msg}"))?;
        defaults.insert(d.name.to_string(), normalize(d.name, &value));
        used.push(prop.to_string());
    }
    Ok((defaults, used))
}

pub fn effective_i64(broker: &BrokerConfig, overrides: &BTreeMap<String, String>, name: &str) -> Option<i64> {
    effective(broker, overrides, name).and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(name, value, Ok or the end of Kafka 3.8's message)`: every row checked against the JVM
    /// broker (CreateTopics validate_only) when written.
    const MATRIX: &[(&str, &str, Result<(), &str>)] = &[
        ("cleanup.policy", "compact,delete", Ok(())),
        ("cleanup.policy", " compact , delete", Ok(())),
        ("cleanup.policy", "", Ok(())),
        ("cleanup.policy", "delete,shred", Err("Invalid value shred for configuration cleanup.policy: String must be one of: compact, delete")),
        ("cleanup.policy", "Compact", Err("String must be one of: compact, delete")),
        ("cleanup.policy", "delete,", Err("Invalid value  for configuration cleanup.policy")),
        ("compression.type", "uncompressed", Ok(())),
        ("compression.type", "none", Err("String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer")),
        ("compression.type", "GZIP", Err("String must be one of")),
        ("compression.gzip.level", "-1", Ok(())),
        ("compression.gzip.level", "9", Ok(())),
        ("compression.gzip.level", "0", Err("Value must be between 1 and 9 or equal to -1")),
        ("compression.gzip.level", "10", Err("Value must be between 1 and 9 or equal to -1")),
        ("compression.lz4.level", "17", Ok(())),
        ("compression.lz4.level", "0", Err("Value must be at least 1")),
        ("compression.lz4.level", "18", Err("Value must be no more than 17")),
        ("compression.zstd.level", "-131072", Ok(())),
        ("compression.zstd.level", "-131073", Err("Value must be at least -131072")),
        ("compression.zstd.level", "23", Err("Value must be no more than 22")),
        ("delete.retention.ms", "0", Ok(())),
        ("delete.retention.ms", "-1", Err("Value must be at least 0")),
        ("file.delete.delay.ms", "0", Ok(())),
        ("file.delete.delay.ms", "-1", Err("Value must be at least 0")),
        ("flush.messages", "1", Ok(())),
        ("flush.messages", LONG_MAX, Ok(())),
        ("flush.messages", "0", Err("Invalid value 0 for configuration flush.messages: Value must be at least 1")),
        ("flush.messages", "1000", Ok(())),
        ("flush.ms", "0", Ok(())),
        ("flush.ms", "-1", Err("Value must be at least 0")),
        ("follower.replication.throttled.replicas", "*", Ok(())),
        ("follower.replication.throttled.replicas", "0:0,1:0", Ok(())),
        ("follower.replication.throttled.replicas", "", Ok(())),
        ("follower.replication.throttled.replicas", "bogus", Err("Invalid value [bogus] for configuration follower.replication.throttled.replicas: follower.replication.throttled.replicas must be the literal '*'")),
        ("leader.replication.throttled.replicas", "*", Ok(())),
        ("leader.replication.throttled.replicas", "x:y", Err("Invalid value [x:y]")),
        ("index.interval.bytes", "0", Ok(())),
        ("index.interval.bytes", "-1", Err("Value must be at least 0")),
        ("local.retention.bytes", "-2", Ok(())),
        ("local.retention.bytes", "-3", Err("Value must be at least -2")),
        ("local.retention.ms", "100", Ok(())),
        ("local.retention.ms", "-3", Err("Value must be at least -2")),
        ("max.compaction.lag.ms", "1", Ok(())),
        ("max.compaction.lag.ms", "0", Err("Value must be at least 1")),
        ("max.message.bytes", "0", Ok(())),
        ("max.message.bytes", "2147483647", Ok(())),
        ("max.message.bytes", "-1", Err("Value must be at least 0")),
        ("max.message.bytes", "2147483648", Err("Invalid value 2147483648 for configuration max.message.bytes: Not a number of type INT")),
        ("message.downconversion.enable", "false", Ok(())),
        ("message.downconversion.enable", "TRUE", Ok(())),
        ("message.downconversion.enable", "yes", Err("Expected value to be either true or false")),
        ("message.format.version", "0.10.0", Ok(())),
        ("message.format.version", "3.8", Ok(())),
        ("message.format.version", "2.8-IV1", Ok(())),
        ("message.format.version", "bogus", Err("Version bogus is not a valid version")),
        ("message.format.version", "3.9", Err("Version 3.9 is not a valid version")),
        ("message.format.version", "0.10", Err("Version 0.10 is not a valid version")),
        ("message.timestamp.after.max.ms", "0", Ok(())),
        ("message.timestamp.after.max.ms", "-1", Err("Value must be at least 0")),
        ("message.timestamp.before.max.ms", "0", Ok(())),
        ("message.timestamp.before.max.ms", "-1", Err("Value must be at least 0")),
        ("message.timestamp.difference.max.ms", "0", Ok(())),
        ("message.timestamp.difference.max.ms", "-1", Err("Value must be at least 0")),
        ("message.timestamp.type", "LogAppendTime", Ok(())),
        ("message.timestamp.type", "createtime", Err("String must be one of: CreateTime, LogAppendTime")),
        ("min.cleanable.dirty.ratio", "0", Ok(())),
        ("min.cleanable.dirty.ratio", "1", Ok(())),
        ("min.cleanable.dirty.ratio", "NaN", Ok(())),
        ("min.cleanable.dirty.ratio", "1.01", Err("Invalid value 1.01 for configuration min.cleanable.dirty.ratio: Value must be no more than 1")),
        ("min.cleanable.dirty.ratio", "-0.1", Err("Value must be at least 0")),
        ("min.cleanable.dirty.ratio", "7", Err("Invalid value 7.0 for configuration min.cleanable.dirty.ratio: Value must be no more than 1")),
        ("min.cleanable.dirty.ratio", "abc", Err("Not a number of type DOUBLE")),
        ("min.compaction.lag.ms", "0", Ok(())),
        ("min.compaction.lag.ms", "-1", Err("Value must be at least 0")),
        ("min.insync.replicas", "1", Ok(())),
        ("min.insync.replicas", "2", Ok(())),
        ("min.insync.replicas", "0", Err("Value must be at least 1")),
        ("preallocate", "true", Ok(())),
        ("preallocate", "1", Err("Expected value to be either true or false")),
        ("remote.storage.enable", "false", Ok(())),
        ("remote.storage.enable", "true", Err("Tiered Storage functionality is disabled in the broker")),
        ("retention.bytes", "-2", Ok(())),
        ("retention.ms", "-1", Ok(())),
        ("retention.ms", "0", Ok(())),
        ("retention.ms", " 1000", Ok(())),
        ("retention.ms", "-2", Err("Invalid value -2 for configuration retention.ms: Value must be at least -1")),
        ("retention.ms", "1e3", Err("Not a number of type LONG")),
        ("retention.ms", "9223372036854775808", Err("Not a number of type LONG")),
        ("segment.bytes", "14", Ok(())),
        ("segment.bytes", "13", Err("Invalid value 13 for configuration segment.bytes: Value must be at least 14")),
        ("segment.bytes", "1.5", Err("Not a number of type INT")),
        ("segment.index.bytes", "4", Ok(())),
        ("segment.index.bytes", "3", Err("Value must be at least 4")),
        ("segment.jitter.ms", "0", Ok(())),
        ("segment.jitter.ms", "-1", Err("Value must be at least 0")),
        ("segment.ms", "1", Ok(())),
        ("segment.ms", "0", Err("Value must be at least 1")),
        ("unclean.leader.election.enable", "true", Ok(())),
        ("unclean.leader.election.enable", "yes", Err("Expected value to be either true or false")),
        ("no.such.config", "1", Err("Unknown topic config name: no.such.config")),
    ];

    #[test]
    fn the_matrix_answers_as_kafka_does() {
        for (name, value, want) in MATRIX {
            let got = validate(name, Some(value));
            match (want, &got) {
                (Ok(()), Ok(())) => {}
                (Err(needle), Err((c, msg))) => {
                    assert_eq!(*c, code::INVALID_CONFIG, "{name}={value}");
                    assert!(msg.contains(needle), "{name}={value}: {msg:?} lacks {needle:?}");
                }
                _ => panic!("{name}={value}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn every_def_is_in_the_matrix_with_a_valid_and_an_invalid_value() {
        for d in DEFS {
            let rows: Vec<_> = MATRIX.iter().filter(|r| r.0 == d.name).collect();
            assert!(rows.iter().any(|r| r.2.is_ok()), "{}: no valid row", d.name);
            let free = matches!(d.check, Check::None) && matches!(d.kind, Kind::Long);
            assert!(free || rows.iter().any(|r| r.2.is_err()), "{}: no invalid row", d.name);
            // Every default passes its own check.
            assert!(validate(d.name, Some(&(d.default)(&BrokerConfig::default()))).is_ok(), "{}", d.name);
        }
    }

    #[test]
    fn compaction_lags_are_checked_together() {
        let broker = BrokerConfig::default();
        let set = |pairs: &[(&str, &str)]| {
            let mut m: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            validate_set(&broker, &mut m).map(|()| m)
        };
        let err = set(&[("min.compaction.lag.ms", "10"), ("max.compaction.lag.ms", "5")]).expect_err("min above max");
        assert_eq!(err.1, "conflict topic config setting min.compaction.lag.ms (10) > max.compaction.lag.ms (5)");
        assert!(set(&[("min.compaction.lag.ms", "10"), ("max.compaction.lag.ms", "10")]).is_ok());
        assert!(set(&[("min.compaction.lag.ms", "10")]).is_ok(), "against the default max");
        let normalized = set(&[("preallocate", "TRUE"), ("retention.ms", " 1000 ")]).expect("valid");
        assert_eq!(normalized["preallocate"], "true");
        assert_eq!(normalized["retention.ms"], "1000");
    }

    #[test]
    fn deleting_any_known_override_is_valid() {
        assert!(validate("retention.ms", None).is_ok());
        assert!(validate("nope", None).is_err());
    }
}
