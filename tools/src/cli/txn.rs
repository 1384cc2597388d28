//! `odradek txn list|describe|abort`: the transactions of a cluster, as `kafka-transactions.sh`
//! shows them, and its lower-level `abort` (an ABORT marker for one producer in one
//! partition) for a hanging transaction its coordinator will never end.

use std::io::Write;

use clap::{Args, Subcommand};
use serde_json::json;

use super::{out_err, print_json, print_table, Global, Output};
use crate::client::{AbortTransactionSpec, Client, Error, Result};

#[derive(Args, Debug)]
pub struct TxnArgs {
    #[command(subcommand)]
    pub command: TxnCommand,
    #[command(flatten)]
    pub global: Global,
}

#[derive(Subcommand, Debug)]
pub enum TxnCommand {
    /// List transactional ids with their coordinator, producer id and state.
    List {
        /// Only ids in this state: Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit,
        /// CompleteAbort (repeatable).
        #[arg(long = "state", value_name = "STATE")]
        states: Vec<String>,
        /// Only ids of this producer id (repeatable).
        #[arg(long = "producer-id", value_name = "ID")]
        producer_ids: Vec<i64>,
    },
    /// State, producer id and epoch, timeout, start time and partitions of transactional ids.
    Describe {
        #[arg(required = true, value_name = "TRANSACTIONAL-ID")]
        transactional_ids: Vec<String>,
    },
    /// Abort a hanging transaction in one partition (WriteTxnMarkers ABORT to its leader);
    /// the transactional id's coordinator is not told.
    Abort {
        /// The topic of the partition.
        #[arg(long, short = 't')]
        topic: String,
        /// The partition the transaction hangs in.
        #[arg(long, short = 'p')]
        partition: i32,
        /// The producer whose transaction to abort.
        #[arg(long, value_name = "ID")]
        producer_id: i64,
        /// The producer's epoch in the partition.
        #[arg(long, value_name = "EPOCH")]
        producer_epoch: i16,
        /// The epoch of the coordinator the marker stands for (the partition's last, or newer).
        #[arg(long, value_name = "EPOCH")]
        coordinator_epoch: i32,
    },
}

pub fn run(args: TxnArgs, out: &mut dyn Write) -> Result<()> {
    let g = &args.global;
    match args.command {
        TxnCommand::List { states, producer_ids } => list(&mut g.connect()?, &states, &producer_ids, g.output, out),
        TxnCommand::Describe { transactional_ids } => describe(&mut g.connect()?, &transactional_ids, g.output, out),
        TxnCommand::Abort { topic, partition, producer_id, producer_epoch, coordinator_epoch } => {
            if producer_id < 0 || producer_epoch < 0 || coordinator_epoch < 0 {
                return Err(Error::Invalid(
                    "--producer-id, --producer-epoch and --coordinator-epoch must not be negative".into(),
                ));
            }
            let spec = AbortTransactionSpec { topic, partition, producer_id, producer_epoch, coordinator_epoch };
            abort(&mut g.connect()?, &spec, g.output, out)
        }
    }
}

fn list(c: &mut Client, states: &[String], producer_ids: &[i64], output: Output, out: &mut dyn Write) -> Result<()> {
    let txns = c.list_transactions(states, producer_ids)?;
    match output {
        Output::Json => print_json(
            out,
            &json!(txns
                .iter()
                .map(|t| json!({
                    "transactional_id": t.transactional_id,
                    "coordinator": t.coordinator,
                    "producer_id": t.producer_id,
                    "state": t.state,
                }))
                .collect::<Vec<_>>()),
        ),
        Output::Table => {
            let rows: Vec<Vec<String>> = txns
                .iter()
                .map(|t| {
                    vec![
                        t.transactional_id.clone(),
                        t.coordinator.to_string(),
                        t.producer_id.to_string(),
                        t.state.clone(),
                    ]
                })
                .collect();
            print_table(out, &["TRANSACTIONAL-ID", "COORDINATOR", "PRODUCER-ID", "STATE"], &rows)
        }
    }
}

fn describe(c: &mut Client, ids: &[String], output: Output, out: &mut dyn Write) -> Result<()> {
    let txns = c.describe_transactions(ids)?;
    // -1 (no transaction yet) is shown as absent.
    let start = |ms: i64| (ms >= 0).then_some(ms);
    match output {
        Output::Json => print_json(
            out,
            &json!(txns
                .iter()
                .map(|t| json!({
                    "transactional_id": t.transactional_id,
                    "coordinator": t.coordinator,
                    "state": t.state,
                    "producer_id": t.producer_id,
                    "producer_epoch": t.producer_epoch,
                    "transaction_timeout_ms": t.timeout_ms,
                    "transaction_start_time_ms": start(t.start_time_ms),
                    "partitions": t.partitions.iter().map(|(topic, p)| json!({"topic": topic, "partition": p})).collect::<Vec<_>>(),
                }))
                .collect::<Vec<_>>()),
        ),
        Output::Table => {
            let rows: Vec<Vec<String>> = txns
                .iter()
                .map(|t| {
                    let partitions: Vec<String> = t.partitions.iter().map(|(topic, p)| format!("{topic}-{p}")).collect();
                    vec![
                        t.transactional_id.clone(),
                        t.coordinator.to_string(),
                        t.producer_id.to_string(),
                        t.producer_epoch.to_string(),
                        t.state.clone(),
                        t.timeout_ms.to_string(),
                        start(t.start_time_ms).map_or("-".into(), |ms| ms.to_string()),
                        if partitions.is_empty() { "-".into() } else { partitions.join(",") },
                    ]
                })
                .collect();
            let headers =
                ["TRANSACTIONAL-ID", "COORDINATOR", "PRODUCER-ID", "EPOCH", "STATE", "TIMEOUT-MS", "START-MS", "PARTITIONS"];
            print_table(out, &headers, &rows)
        }
    }
}

fn abort(c: &mut Client, spec: &AbortTransactionSpec, output: Output, out: &mut dyn Write) -> Result<()> {
    c.abort_transaction(spec)?;
    match output {
        Output::Json => print_json(
            out,
            &json!({
                "topic": spec.topic,
                "partition": spec.partition,
                "producer_id": spec.producer_id,
                "producer_epoch": spec.producer_epoch,
                "coordinator_epoch": spec.coordinator_epoch,
                "aborted": true,
            }),
        ),
        Output::Table => writeln!(
            out,
            "aborted the transaction of producer {} (epoch {}) in {}-{}",
            spec.producer_id, spec.producer_epoch, spec.topic, spec.partition
        )
        .map_err(out_err),
    }
}
