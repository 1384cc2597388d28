//! DescribeProducers: the idempotent producers each partition knows, from its owner (what
//! `kafka-transactions.sh describe-producers` shows).

use engine::shard::TopicPartition;
use kafka_protocol::messages::describe_producers_response::{PartitionResponse, ProducerState, TopicResponse};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};
use kafka_protocol::protocol::StrBytes;

use crate::caps::Data;
use crate::errors::{code, partition_error};
use crate::server::Request;

fn describe(state: &replication::ProducerState) -> Vec<ProducerState> {
    let mut out: Vec<ProducerState> = state
        .iter()
        .map(|(id, e)| {
            ProducerState::default()
                .with_producer_id(ProducerId(id.0))
                .with_producer_epoch(i32::from(e.epoch))
                .with_last_sequence(e.batches.back().map_or(-1, |b| b.last_seq))
                .with_last_timestamp(e.last_append_ms)
                .with_coordinator_epoch(e.coordinator_epoch)
                .with_current_txn_start_offset(e.txn_first_offset.unwrap_or(-1))
        })
        .collect();
    out.sort_by_key(|p| p.producer_id.0);
    out
}

pub async fn handle(ctx: Data<'_>, _version: i16, req: DescribeProducersRequest) -> DescribeProducersResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let meta = ctx.view.meta(t.name.as_str());
        let futs: Vec<_> = t
            .partition_indexes
            .iter()
            .map(|&index| {
                let meta = meta.clone();
                async move {
                    let out = PartitionResponse::default().with_partition_index(index);
                    let Some(meta) = meta.filter(|m| index >= 0 && index < m.partitions) else {
                        return out.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION);
                    };
                    let tp = TopicPartition::new(&meta.name, index);
                    let owner = ctx.router.owner(&tp);
                    let answer = ctx.router.call(owner, |reply| Request::Producers { tps: vec![tp], reply }).await;
                    match answer.map(|mut v| v.pop()) {
                        Ok(Some(Ok(state))) => out.with_active_producers(describe(&state)),
                        Ok(Some(Err(e))) | Err(e) => out
                            .with_error_code(partition_error(&e))
                            .with_error_message(Some(StrBytes::from_string(e.to_string()))),
                        Ok(None) => out.with_error_code(code::UNKNOWN_SERVER_ERROR),
                    }
                }
            })
            .collect();
        let partitions = engine::sync::join_windowed(futs, replication::shard::REQUEST_PARTITIONS_IN_FLIGHT_MAX).await;
        topics.push(TopicResponse::default().with_name(t.name).with_partitions(partitions));
    }
    DescribeProducersResponse::default().with_topics(topics)
}
