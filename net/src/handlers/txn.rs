//! The transaction APIs: each request travels to the coordinator shard of its transactional id
//! (the owner of the id's `__transaction_state` partition, [`coordinator_shard`]) as one
//! `Call::Txn`, and is served there by [`crate::coordinator::txn`]. TxnOffsetCommit belongs to
//! the group's coordinator and goes with the group APIs (`handlers::groups`).

use std::collections::BTreeMap;

use engine::shard::TopicPartition;
use kafka_protocol::messages::add_partitions_to_txn_request::{AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction};
use kafka_protocol::messages::add_partitions_to_txn_response::AddPartitionsToTxnResult;
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest, AddPartitionsToTxnResponse,
    DescribeTransactionsRequest, DescribeTransactionsResponse, EndTxnRequest, EndTxnResponse, InitProducerIdRequest,
    InitProducerIdResponse, ListTransactionsRequest, ListTransactionsResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use replication::ShardId;

use crate::caps::ProducerInit;
use crate::coordinator::group::{coordinator_partition, OFFSETS_TOPIC};
use crate::coordinator::txn::{txn_partition, TxnCall, TXN_TOPIC};
use crate::errors::code;
use crate::server::Router;
use crate::server::{Call, Request};

/// The shard that coordinates a transactional id.
pub fn coordinator_shard(router: &Router, id: &str) -> ShardId {
    router.owner(&TopicPartition::new(TXN_TOPIC, txn_partition(id)))
}

/// Sends one call to the id's coordinator shard and waits for its answer (`None`: the shard is
/// gone, the broker is stopping).
async fn call<T>(router: &Router, id: &str, make: impl FnOnce(flume::Sender<T>) -> TxnCall) -> Option<T> {
    let (tx, rx) = flume::bounded(1);
    let call = make(tx);
    let shard = coordinator_shard(router, id);
    router.send(shard, Request::Coordinator(Call::Txn(Box::new(call)))).await.ok()?;
    rx.recv_async().await.ok()
}

/// InitProducerId: idempotent producers get an id here; a transactional id goes to its
/// coordinator.
pub async fn init_producer_id(
    ctx: ProducerInit<'_>,
    version: i16,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let Some(id) = req.transactional_id.as_deref().map(|s| s.to_string()) else {
        return crate::handlers::init_producer_id::handle(ctx.ids, version, req).await;
    };
    call(ctx.router, &id, |reply| TxnCall::Init { version, req, reply }).await.unwrap_or_else(|| {
        InitProducerIdResponse::default()
            .with_error_code(code::COORDINATOR_NOT_AVAILABLE)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    })
}

/// AddPartitionsToTxn: v0–3 from producers (one transaction), v4+ the batched form brokers
/// use to verify partitions (KIP-890), one coordinator call per transaction.
pub async fn add_partitions(ctx: &Router, version: i16, req: AddPartitionsToTxnRequest) -> AddPartitionsToTxnResponse {
    if version <= 3 {
        let txn = AddPartitionsToTxnTransaction::default()
            .with_transactional_id(req.v3_and_below_transactional_id)
            .with_producer_id(req.v3_and_below_producer_id)
            .with_producer_epoch(req.v3_and_below_producer_epoch)
            .with_topics(req.v3_and_below_topics);
        let results = add_one(ctx, version, txn).await;
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
    }
    let mut out = Vec::with_capacity(req.transactions.len());
    for txn in req.transactions {
        let id = txn.transactional_id.clone();
        let results = add_one(ctx, version, txn).await;
        out.push(AddPartitionsToTxnResult::default().with_transactional_id(id).with_topic_results(results));
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(out)
}

async fn add_one(
    ctx: &Router,
    version: i16,
    txn: AddPartitionsToTxnTransaction,
) -> Vec<kafka_protocol::messages::add_partitions_to_txn_response::AddPartitionsToTxnTopicResult> {
    let id = txn.transactional_id.to_string();
    let fallback: Vec<_> = txn.topics.iter().map(|t| (t.name.clone(), t.partitions.clone())).collect();
    match call(ctx, &id, |reply| TxnCall::Add { version, txn, reply }).await {
        Some(r) => r,
        None => fallback
            .into_iter()
            .map(|(name, parts)| {
                let results = parts
                    .into_iter()
                    .map(|p| {
                        kafka_protocol::messages::add_partitions_to_txn_response::AddPartitionsToTxnPartitionResult::default()
                            .with_partition_index(p)
                            .with_partition_error_code(code::COORDINATOR_NOT_AVAILABLE)
                    })
                    .collect();
                kafka_protocol::messages::add_partitions_to_txn_response::AddPartitionsToTxnTopicResult::default()
                    .with_name(name)
                    .with_results_by_partition(results)
            })
            .collect(),
    }
}

/// AddOffsetsToTxn: the group's `__consumer_offsets` partition joins the transaction.
pub async fn add_offsets(ctx: &Router, version: i16, req: AddOffsetsToTxnRequest) -> AddOffsetsToTxnResponse {
    if req.group_id.is_empty() {
        return AddOffsetsToTxnResponse::default().with_error_code(code::INVALID_GROUP_ID);
    }
    let topic = AddPartitionsToTxnTopic::default()
        .with_name(TopicName(StrBytes::from_static_str(OFFSETS_TOPIC)))
        .with_partitions(vec![coordinator_partition(req.group_id.as_str())]);
    let txn = AddPartitionsToTxnTransaction::default()
        .with_transactional_id(req.transactional_id)
        .with_producer_id(req.producer_id)
        .with_producer_epoch(req.producer_epoch)
        .with_topics(vec![topic]);
    let results = add_one(ctx, version, txn).await;
    let error = results
        .iter()
        .flat_map(|t| t.results_by_partition.iter())
        .map(|p| p.partition_error_code)
        .find(|c| *c != code::NONE)
        .unwrap_or(code::NONE);
    AddOffsetsToTxnResponse::default().with_error_code(error)
}

pub async fn end_txn(ctx: &Router, version: i16, req: EndTxnRequest) -> EndTxnResponse {
    let id = req.transactional_id.to_string();
    call(ctx, &id, |reply| TxnCall::End { version, req, reply })
        .await
        .unwrap_or_else(|| EndTxnResponse::default().with_error_code(code::COORDINATOR_NOT_AVAILABLE))
}

pub async fn describe(ctx: &Router, _version: i16, req: DescribeTransactionsRequest) -> DescribeTransactionsResponse {
    // Ids grouped per coordinator shard, answered in request order.
    let mut per_shard: BTreeMap<ShardId, Vec<(usize, kafka_protocol::messages::TransactionalId)>> = BTreeMap::new();
    for (i, id) in req.transactional_ids.into_iter().enumerate() {
        per_shard.entry(coordinator_shard(ctx, id.as_str())).or_default().push((i, id));
    }
    let mut out = Vec::new();
    for (_, entries) in per_shard {
        let (slots, ids): (Vec<usize>, Vec<_>) = entries.into_iter().unzip();
        let first = ids.first().map(|i| i.to_string()).unwrap_or_default();
        let fallback: Vec<_> = ids.clone();
        let states = call(ctx, &first, |reply| TxnCall::Describe { ids, reply }).await.unwrap_or_else(|| {
            fallback
                .into_iter()
                .map(|id| {
                    kafka_protocol::messages::describe_transactions_response::TransactionState::default()
                        .with_transactional_id(id)
                        .with_error_code(code::COORDINATOR_NOT_AVAILABLE)
                })
                .collect()
        });
        out.extend(slots.into_iter().zip(states));
    }
    out.sort_by_key(|(i, _)| *i);
    DescribeTransactionsResponse::default().with_transaction_states(out.into_iter().map(|(_, s)| s).collect())
}

pub async fn list(ctx: &Router, _version: i16, req: ListTransactionsRequest) -> ListTransactionsResponse {
    let unknown = crate::coordinator::txn::unknown_state_filters(&req);
    let mut out = Vec::new();
    for shard in ctx.shards() {
        let (tx, rx) = flume::bounded(1);
        let call = TxnCall::List { req: req.clone(), reply: tx };
        if ctx.send(shard, Request::Coordinator(Call::Txn(Box::new(call)))).await.is_err() {
            return ListTransactionsResponse::default().with_error_code(code::COORDINATOR_NOT_AVAILABLE);
        }
        match rx.recv_async().await {
            Ok(Ok(states)) => out.extend(states),
            Ok(Err(e)) => return ListTransactionsResponse::default().with_error_code(e),
            Err(_) => return ListTransactionsResponse::default().with_error_code(code::COORDINATOR_NOT_AVAILABLE),
        }
    }
    ListTransactionsResponse::default().with_unknown_state_filters(unknown).with_transaction_states(out)
}

/// KIP-890: whether each partition is in the producer's ongoing transaction, asked of its
/// coordinator; NONE or the error to answer the write with.
pub async fn verify(
    router: &Router,
    id: &str,
    producer_id: i64,
    producer_epoch: i16,
    tps: Vec<(String, i32)>,
) -> Vec<i16> {
    let n = tps.len();
    let owned = id.to_owned();
    call(router, id, |reply| TxnCall::Verify { id: owned, producer_id, producer_epoch, tps, reply })
        .await
        .unwrap_or_else(|| vec![code::COORDINATOR_NOT_AVAILABLE; n])
}
