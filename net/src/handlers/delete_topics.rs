//! DeleteTopics, by name (all versions) or by id (v6+).

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::caps::Admin;
use crate::errors::code;
use crate::handlers::admin;

pub async fn handle(ctx: Admin<'_>, version: i16, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let targets: Vec<(Option<TopicName>, uuid::Uuid)> = if version >= 6 {
        req.topics.into_iter().map(|t| (t.name, t.topic_id)).collect()
    } else {
        req.topic_names.into_iter().map(|n| (Some(n), uuid::Uuid::nil())).collect()
    };
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let resolved = match &name {
            Some(n) => Some(n.to_string()),
            None => ctx.topics.name_for_id(&id),
        };
        let mut r = DeletableTopicResult::default().with_name(name.clone()).with_topic_id(id);
        match resolved {
            None => r = r.with_error_code(code::UNKNOWN_TOPIC_ID),
            Some(n) => match admin::delete_topic(ctx, &n).await {
                Ok(meta) => {
                    r = r.with_name(Some(TopicName(StrBytes::from_string(meta.name.clone())))).with_topic_id(meta.id);
                }
                Err((c, msg)) => r = r.with_error_code(c).with_error_message(Some(StrBytes::from_string(msg))),
            },
        }
        responses.push(r);
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
