//! Transactions as an administrator sees them (Kafka's `Admin#listTransactions`,
//! `#describeTransactions`, `#abortTransaction`): ListTransactions asked of every broker,
//! DescribeTransactions of each id's coordinator, and an ABORT marker written straight to a
//! partition's leader (WriteTxnMarkers) for a transaction its coordinator will never end.

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::client::Client;
use super::error::{Error, Result};

/// Tries of a DescribeTransactions whose coordinator is loading or moved.
const DESCRIBE_ATTEMPTS: usize = 20;
const DESCRIBE_RETRY: Duration = Duration::from_millis(100);

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// A transactional id as ListTransactions reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionListing {
    pub transactional_id: String,
    /// The node that answered: the id's coordinator.
    pub coordinator: i32,
    pub producer_id: i64,
    /// Kafka's state name: `Empty`, `Ongoing`, `PrepareCommit`, `CompleteAbort`, ...
    pub state: String,
}

/// A transactional id as its coordinator describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionDescription {
    pub transactional_id: String,
    pub coordinator: i32,
    pub state: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    /// When the current (or last) transaction started, ms since the epoch; -1 if none.
    pub start_time_ms: i64,
    /// The partitions of the ongoing transaction, `(topic, partition)`, sorted.
    pub partitions: Vec<(String, i32)>,
}

/// Which producer's transaction to abort in which partition, with the coordinator epoch the
/// marker carries (a partition refuses one older than the last it saw:
/// TRANSACTION_COORDINATOR_FENCED).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbortTransactionSpec {
    pub topic: String,
    pub partition: i32,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
}

impl Client {
    /// The transactional ids of every broker, sorted by id; only those in one of `states`
    /// and of one of `producer_ids` when these are not empty. A state the broker does not know
    /// is an error ([`Error::Invalid`]) rather than a filter that matches nothing.
    pub fn list_transactions(&mut self, states: &[String], producer_ids: &[i64]) -> Result<Vec<TransactionListing>> {
        let req = ListTransactionsRequest::default()
            .with_state_filters(states.iter().map(|f| s(f)).collect())
            .with_producer_id_filters(producer_ids.iter().map(|p| ProducerId(*p)).collect());
        let nodes: Vec<i32> = self.metadata().brokers.keys().copied().collect();
        let mut out = Vec::new();
        for node in nodes {
            let (_, resp) = self.connection(node)?.send(&req)?;
            Error::check(resp.error_code, None, || format!("listing the transactions of node {node}"))?;
            if !resp.unknown_state_filters.is_empty() {
                let unknown: Vec<&str> = resp.unknown_state_filters.iter().map(|f| f.as_str()).collect();
                return Err(Error::Invalid(format!(
                    "unknown transaction state {}: expected Empty, Ongoing, PrepareCommit, PrepareAbort, \
                     CompleteCommit, CompleteAbort, PrepareEpochFence or Dead",
                    unknown.join(", ")
                )));
            }
            out.extend(resp.transaction_states.into_iter().map(|t| TransactionListing {
                transactional_id: t.transactional_id.to_string(),
                coordinator: node,
                producer_id: t.producer_id.0,
                state: t.transaction_state.to_string(),
            }));
        }
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        Ok(out)
    }

    /// Describes transactional ids, in the order given; the first that fails is the error
    /// (TRANSACTIONAL_ID_NOT_FOUND for an id the coordinator does not know).
    pub fn describe_transactions(&mut self, ids: &[String]) -> Result<Vec<TransactionDescription>> {
        ids.iter().map(|id| self.describe_transaction(id)).collect()
    }

    fn describe_transaction(&mut self, id: &str) -> Result<TransactionDescription> {
        let req = DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(s(id))]);
        let mut attempt = 0;
        loop {
            let node = self.transaction_coordinator(id)?;
            let (_, resp) = self.connection(node)?.send(&req)?;
            let t =
                resp.transaction_states.into_iter().find(|t| t.transactional_id.as_str() == id).ok_or_else(|| {
                    Error::Protocol {
                        addr: String::new(),
                        reason: format!("DescribeTransactions response without {id:?}"),
                    }
                })?;
            match Error::check(t.error_code, None, || format!("describing transaction {id:?}")) {
                Err(e) if e.is_retriable() && attempt + 1 < DESCRIBE_ATTEMPTS => {
                    attempt += 1;
                    if ResponseError::try_from_code(t.error_code) == Some(ResponseError::NotCoordinator) {
                        self.forget_transaction_coordinator(id);
                    }
                    std::thread::sleep(DESCRIBE_RETRY);
                    continue;
                }
                Err(e) => return Err(e),
                Ok(()) => {}
            }
            let mut partitions: Vec<(String, i32)> =
                t.topics.iter().flat_map(|d| d.partitions.iter().map(|p| (d.topic.to_string(), *p))).collect();
            partitions.sort();
            return Ok(TransactionDescription {
                transactional_id: id.to_string(),
                coordinator: node,
                state: t.transaction_state.to_string(),
                producer_id: t.producer_id.0,
                producer_epoch: t.producer_epoch,
                timeout_ms: t.transaction_timeout_ms,
                start_time_ms: t.transaction_start_time_ms,
                partitions,
            });
        }
    }

    /// Writes an ABORT marker for the producer's transaction to the partition's leader, as
    /// `kafka-transactions.sh abort` does for a hanging transaction. The coordinator of the
    /// transactional id is not told.
    pub fn abort_transaction(&mut self, spec: &AbortTransactionSpec) -> Result<()> {
        let leader = self.leader(&spec.topic, spec.partition)?;
        let marker = WritableTxnMarker::default()
            .with_producer_id(ProducerId(spec.producer_id))
            .with_producer_epoch(spec.producer_epoch)
            .with_transaction_result(false)
            .with_coordinator_epoch(spec.coordinator_epoch)
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(TopicName(s(&spec.topic)))
                .with_partition_indexes(vec![spec.partition])]);
        let req = WriteTxnMarkersRequest::default().with_markers(vec![marker]);
        let (_, resp) = self.connection(leader)?.send(&req)?;
        let code = resp
            .markers
            .iter()
            .filter(|m| m.producer_id.0 == spec.producer_id)
            .flat_map(|m| m.topics.iter().filter(|t| t.name.as_str() == spec.topic))
            .flat_map(|t| t.partitions.iter().filter(|p| p.partition_index == spec.partition))
            .map(|p| p.error_code)
            .next()
            .ok_or_else(|| Error::Protocol {
                addr: String::new(),
                reason: format!("WriteTxnMarkers response without {}-{}", spec.topic, spec.partition),
            })?;
        Error::check(code, None, || {
            format!(
                "aborting the transaction of producer {} (epoch {}) in {}-{}",
                spec.producer_id, spec.producer_epoch, spec.topic, spec.partition
            )
        })
    }
}
