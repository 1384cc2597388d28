//! FindCoordinator: consumer groups and transactions come with a later issue, so every key
//! gets COORDINATOR_NOT_AVAILABLE (retriable: clients back off and retry).

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use crate::errors::code;

pub fn handle(version: i16, req: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let msg = Some(StrBytes::from_static_str("coordinators are not available on this broker yet"));
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                Coordinator::default()
                    .with_key(key)
                    .with_node_id((-1).into())
                    .with_port(-1)
                    .with_error_code(code::COORDINATOR_NOT_AVAILABLE)
                    .with_error_message(msg.clone())
            })
            .collect();
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else {
        FindCoordinatorResponse::default()
            .with_error_code(code::COORDINATOR_NOT_AVAILABLE)
            .with_error_message(msg)
            .with_node_id((-1).into())
            .with_port(-1)
    }
}
