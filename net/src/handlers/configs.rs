//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs of topic configs (the names,
//! defaults and validation are [`crate::handlers::config_defs`]'s).

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest, AlterConfigsResponse,
    DescribeConfigsRequest, DescribeConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::caps::Admin;
use crate::config::BrokerConfig;
use crate::errors::code;
use crate::handlers::admin::AdminError;

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

/// Kafka's config sources.
pub const SOURCE_TOPIC: i8 = 1;
pub const SOURCE_STATIC_BROKER: i8 = 4;
pub const SOURCE_DEFAULT: i8 = 5;

use crate::handlers::config_defs::{def, Def, Kind, SynonymDefault, DEFS};
pub use crate::handlers::config_defs::{effective, effective_i64, validate, validate_set};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub fn describe(ctx: Admin<'_>, _version: i16, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let broker = ctx.config;
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let out = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let wanted =
                |name: &str| r.configuration_keys.as_ref().is_none_or(|keys| keys.iter().any(|k| k.as_str() == name));
            match r.resource_type {
                RESOURCE_TOPIC => {
                    let Some(topic) = ctx.topics.get(r.resource_name.as_str()) else {
                        return out
                            .with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION)
                            .with_error_message(Some(s("unknown topic")));
                    };
                    out.with_configs(topic_configs(broker, &topic.configs, req.include_synonyms, wanted))
                }
                RESOURCE_BROKER
                    if !r.resource_name.is_empty() && r.resource_name.as_str() != broker.node_id.to_string() =>
                {
                    // As Kafka: a broker describes its own configs (by id, or the empty name).
                    let msg = format!(
                        "Unexpected broker id, expected {} or empty string, but received {}",
                        broker.node_id,
                        r.resource_name.as_str()
                    );
                    out.with_error_code(code::INVALID_REQUEST).with_error_message(Some(s(&msg)))
                }
                RESOURCE_BROKER => out.with_configs(broker_configs(broker, wanted)),
                _ => {
                    out.with_error_code(code::INVALID_REQUEST).with_error_message(Some(s("unsupported resource type")))
                }
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// One DescribeConfigs synonym.
fn synonym(name: &str, value: &str, source: i8) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default().with_name(s(name)).with_value(Some(s(value))).with_source(source)
}

/// A topic config's synonyms in Kafka's order: the topic's override, then for each broker
/// setting it falls back to (in precedence order) its start-up value if one was given and
/// Kafka's default if it has one. (Kafka 3.8 in KRaft mode leaves some of these out: no
/// synonym at all for a default `retention.ms` or `segment.ms`, and no static entry for
/// settings it can change dynamically, such as `log.segment.bytes`; Odradek lists them all,
/// as Kafka's own design of the field, and its ZooKeeper-mode brokers, do.)
fn synonyms_of(d: &Def, broker: &BrokerConfig, overridden: Option<&String>) -> Vec<DescribeConfigsSynonym> {
    let mut out = Vec::new();
    if let Some(v) = overridden {
        out.push(synonym(d.name, v, SOURCE_TOPIC));
    }
    for (name, default) in d.synonyms {
        if let Some(v) = broker.static_props.get(*name) {
            out.push(synonym(name, v, SOURCE_STATIC_BROKER));
        }
        match default {
            SynonymDefault::Topic => out.push(synonym(name, &(d.default)(&BrokerConfig::default()), SOURCE_DEFAULT)),
            SynonymDefault::Fixed(v) => out.push(synonym(name, v, SOURCE_DEFAULT)),
            SynonymDefault::Absent => {}
        }
    }
    out
}

/// A topic's configs as DescribeConfigs lists them: every known one `wanted`, its override,
/// the broker's start-up setting (STATIC_BROKER_CONFIG) or the default, with their synonyms if
/// asked.
fn topic_configs(
    broker: &BrokerConfig,
    overrides: &BTreeMap<String, String>,
    include_synonyms: bool,
    wanted: impl Fn(&str) -> bool,
) -> Vec<DescribeConfigsResourceResult> {
    DEFS.iter()
        .filter(|d| wanted(d.name))
        .map(|d| {
            let overridden = overrides.get(d.name);
            let source = if overridden.is_some() {
                SOURCE_TOPIC
            } else if d.synonyms.iter().any(|(n, _)| broker.static_props.contains_key(*n)) {
                SOURCE_STATIC_BROKER
            } else {
                SOURCE_DEFAULT
            };
            let synonyms = if include_synonyms { synonyms_of(d, broker, overridden) } else { Vec::new() };
            let value =
                overridden.cloned().or_else(|| super::config_defs::default_of(broker, d.name)).unwrap_or_default();
            DescribeConfigsResourceResult::default()
                .with_name(s(d.name))
                .with_value(Some(s(&value)))
                .with_read_only(false)
                .with_config_source(source)
                .with_is_sensitive(false)
                .with_synonyms(synonyms)
                .with_config_type(d.kind as i8)
        })
        .collect()
}

/// The broker's own (static, read-only) configs DescribeConfigs lists, those `wanted`.
fn broker_configs(broker: &BrokerConfig, wanted: impl Fn(&str) -> bool) -> Vec<DescribeConfigsResourceResult> {
    let entries: Vec<(&str, String, Kind)> = vec![
        ("broker.id", broker.node_id.to_string(), Kind::Int),
        ("node.id", broker.node_id.to_string(), Kind::Int),
        ("num.partitions", broker.num_partitions.to_string(), Kind::Int),
        ("auto.create.topics.enable", broker.auto_create_topics.to_string(), Kind::Boolean),
        ("message.max.bytes", broker.message_max_bytes.to_string(), Kind::Int),
        ("log.segment.bytes", broker.segment_bytes.to_string(), Kind::Int),
        ("log.retention.ms", broker.retention_ms.to_string(), Kind::Long),
        ("log.retention.bytes", broker.retention_bytes.to_string(), Kind::Long),
        ("log.dirs", broker.data_dir.display().to_string(), Kind::String),
        ("socket.request.max.bytes", broker.request_bytes_max.to_string(), Kind::Int),
        ("max.connections", broker.connections_max.to_string(), Kind::Int),
    ];
    entries
        .into_iter()
        .filter(|(n, _, _)| wanted(n))
        .map(|(n, v, k)| {
            DescribeConfigsResourceResult::default()
                .with_name(s(n))
                .with_value(Some(s(&v)))
                .with_read_only(true)
                .with_config_source(SOURCE_STATIC_BROKER)
                .with_config_type(k as i8)
        })
        .collect()
}

/// Applies a new set of overrides to a topic (after validating every one) and persists the
/// registry.
async fn apply(
    ctx: Admin<'_>,
    resource_type: i8,
    name: &str,
    validate_only: bool,
    change: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), AdminError>,
) -> Result<(), AdminError> {
    if resource_type != RESOURCE_TOPIC {
        return Err((code::INVALID_REQUEST, "only topic configs can be altered".into()));
    }
    let topic =
        ctx.topics.get(name).ok_or((code::UNKNOWN_TOPIC_OR_PARTITION, format!("topic '{name}' does not exist")))?;
    let mut configs = topic.configs.clone();
    change(&mut configs)?;
    validate_set(ctx.config, &mut configs)?;
    if validate_only {
        return Ok(());
    }
    ctx.topics.update(name, |t| t.configs = configs);
    // Takes effect on every shard before the client hears it did.
    crate::view::publish(ctx, name).await;
    crate::handlers::admin::persist(ctx).await
}

pub async fn alter(ctx: Admin<'_>, _version: i16, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        {
            let result = apply(ctx, r.resource_type, r.resource_name.as_str(), req.validate_only, |configs| {
                // AlterConfigs replaces the whole set of overrides.
                configs.clear();
                for c in &r.configs {
                    validate(c.name.as_str(), c.value.as_ref().map(|v| v.as_str()))?;
                    if let Some(v) = &c.value {
                        configs.insert(c.name.to_string(), v.to_string());
                    }
                }
                Ok(())
            })
            .await;
            let (error_code, msg) = match result {
                Ok(()) => (code::NONE, None),
                Err((c, m)) => (c, Some(s(&m))),
            };
            responses.push(
                alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_error_code(error_code)
                    .with_error_message(msg)
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name),
            );
        }
    }
    AlterConfigsResponse::default().with_responses(responses)
}

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

pub async fn incremental_alter(
    ctx: Admin<'_>,
    _version: i16,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let broker = ctx.config.clone();
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        {
            let result = apply(ctx, r.resource_type, r.resource_name.as_str(), req.validate_only, |configs| {
                for c in &r.configs {
                    let name = c.name.to_string();
                    let value = c.value.as_ref().map(|v| v.to_string());
                    validate(&name, None)?;
                    match c.config_operation {
                        OP_SET => {
                            let v = value.ok_or((code::INVALID_REQUEST, format!("no value to set for {name}")))?;
                            configs.insert(name, v);
                        }
                        OP_DELETE => {
                            configs.remove(&name);
                        }
                        OP_APPEND | OP_SUBTRACT => {
                            let list_kind = def(&name).is_some_and(|d| d.kind == Kind::List);
                            if !list_kind {
                                let op = if c.config_operation == OP_APPEND { "APPEND" } else { "SUBTRACT" };
                                return Err((
                                    code::INVALID_CONFIG,
                                    format!("Can't {op} to key {name} because its type is not LIST."),
                                ));
                            }
                            let current = effective(&broker, configs, &name).unwrap_or_default();
                            let mut items: Vec<String> =
                                current.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
                            for v in value.unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty()) {
                                if c.config_operation == OP_APPEND {
                                    if !items.iter().any(|i| i == v) {
                                        items.push(v.to_string());
                                    }
                                } else {
                                    items.retain(|i| i != v);
                                }
                            }
                            configs.insert(name, items.join(","));
                        }
                        other => return Err((code::INVALID_REQUEST, format!("unknown config operation {other}"))),
                    }
                }
                Ok(())
            })
            .await;
            let (error_code, msg) = match result {
                Ok(()) => (code::NONE, None),
                Err((c, m)) => (c, Some(s(&m))),
            };
            responses.push(
                incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_error_code(error_code)
                    .with_error_message(msg)
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name),
            );
        }
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_by_type() {
        assert!(validate("retention.ms", Some("1000")).is_ok());
        assert!(validate("retention.ms", Some("soon")).is_err());
        assert!(validate("max.message.bytes", Some("99999999999")).is_err(), "INT overflow");
        assert!(validate("cleanup.policy", Some("compact,delete")).is_ok());
        assert!(validate("cleanup.policy", Some("shred")).is_err());
        assert!(validate("message.timestamp.type", Some("LogAppendTime")).is_ok());
        assert!(validate("no.such.config", Some("1")).map_err(|e| e.0) == Err(code::INVALID_CONFIG));
        assert!(validate("retention.ms", None).is_ok(), "deleting an override");
    }

    #[test]
    fn defaults_follow_the_broker() {
        let broker = BrokerConfig { retention_ms: 42, message_max_bytes: 7, ..BrokerConfig::default() };
        let mut overrides = BTreeMap::new();
        assert_eq!(effective_i64(&broker, &overrides, "retention.ms"), Some(42));
        assert_eq!(effective_i64(&broker, &overrides, "max.message.bytes"), Some(7));
        overrides.insert("retention.ms".to_string(), "5".to_string());
        assert_eq!(effective_i64(&broker, &overrides, "retention.ms"), Some(5));
        assert_eq!(effective(&broker, &overrides, "nope"), None);
    }
}
