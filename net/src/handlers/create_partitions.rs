//! CreatePartitions: grows a topic; shrinking is refused as in Kafka.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::caps::Admin;
use crate::errors::code;
use crate::handlers::admin::{self, AdminError};
use crate::topics::PARTITIONS_PER_TOPIC_MAX;

async fn grow(ctx: Admin<'_>, name: &str, count: i32, validate_only: bool) -> Result<(), AdminError> {
    let meta =
        ctx.topics.get(name).ok_or((code::UNKNOWN_TOPIC_OR_PARTITION, format!("topic '{name}' does not exist")))?;
    if count <= meta.partitions {
        return Err((
            code::INVALID_PARTITIONS,
            format!(
                "topic currently has {} partitions, which is higher than or equal to the requested {count}",
                meta.partitions
            ),
        ));
    }
    if count > PARTITIONS_PER_TOPIC_MAX {
        return Err((code::INVALID_PARTITIONS, format!("at most {PARTITIONS_PER_TOPIC_MAX} partitions per topic")));
    }
    if validate_only {
        return Ok(());
    }
    let log = admin::log_config(ctx, &meta.configs);
    admin::create_partitions(ctx, name, meta.partitions..count, &log).await?;
    ctx.topics.update(name, |t| t.partitions = t.partitions.max(count));
    crate::view::publish(ctx, name).await;
    admin::persist(ctx).await
}

pub async fn handle(ctx: Admin<'_>, _version: i16, req: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let r = if t.assignments.as_ref().is_some_and(|a| !a.is_empty()) {
            Err((code::INVALID_REPLICA_ASSIGNMENT, "manual replica assignment is not supported".to_string()))
        } else {
            grow(ctx, t.name.as_str(), t.count, req.validate_only).await
        };
        let (c, msg) = match r {
            Ok(()) => (code::NONE, None),
            Err((c, m)) => (c, Some(StrBytes::from_string(m))),
        };
        results
            .push(CreatePartitionsTopicResult::default().with_name(t.name).with_error_code(c).with_error_message(msg));
    }
    CreatePartitionsResponse::default().with_results(results)
}
