//! CreateTopics, with configs and validate_only. A single node takes replication factor 1
//! (or -1, the broker default) only.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::caps::Admin;
use crate::errors::code;
use crate::handlers::{admin, configs};

pub async fn handle(ctx: Admin<'_>, version: i16, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let mut result = CreatableTopicResult::default().with_name(t.name.clone());
        let partitions = if t.num_partitions == -1 { ctx.config.num_partitions } else { t.num_partitions };
        let outcome = if t.replication_factor != -1 && t.replication_factor != 1 {
            Err((
                code::INVALID_REPLICATION_FACTOR,
                format!("replication factor {} is larger than the 1 available broker", t.replication_factor),
            ))
        } else if !t.assignments.is_empty() {
            Err((code::INVALID_REPLICA_ASSIGNMENT, "manual replica assignment is not supported".into()))
        } else {
            let mut overrides = BTreeMap::new();
            for c in &t.configs {
                if let Some(v) = &c.value {
                    overrides.insert(c.name.to_string(), v.to_string());
                }
            }
            admin::create_topic(ctx, t.name.as_str(), partitions, overrides, req.validate_only).await
        };
        match outcome {
            Ok(meta) => {
                result = result.with_topic_id(meta.id).with_num_partitions(meta.partitions).with_replication_factor(1);
                if version >= 5 {
                    let described = configs::describe(
                        ctx,
                        version,
                        kafka_protocol::messages::DescribeConfigsRequest::default().with_resources(vec![
                            kafka_protocol::messages::describe_configs_request::DescribeConfigsResource::default()
                                .with_resource_type(configs::RESOURCE_TOPIC)
                                .with_resource_name(StrBytes::from_string(meta.name.clone())),
                        ]),
                    );
                    // validate_only: the topic is not registered; describe the defaults.
                    let list = described.results.into_iter().next().map(|r| r.configs).unwrap_or_default();
                    let list = list
                        .into_iter()
                        .map(|c| {
                            let value =
                                meta.configs.get(c.name.as_str()).map(|v| StrBytes::from_string(v.clone())).or(c.value);
                            let source = if meta.configs.contains_key(c.name.as_str()) {
                                configs::SOURCE_TOPIC
                            } else {
                                c.config_source
                            };
                            CreatableTopicConfigs::default()
                                .with_name(c.name)
                                .with_value(value)
                                .with_read_only(c.read_only)
                                .with_config_source(source)
                                .with_is_sensitive(false)
                        })
                        .collect();
                    result = result.with_configs(Some(list));
                }
            }
            Err((c, msg)) => {
                result = result
                    .with_error_code(c)
                    .with_error_message(Some(StrBytes::from_string(msg)))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1);
            }
        }
        results.push(result);
    }
    CreateTopicsResponse::default().with_topics(results)
}
