//! The `odradek` command-line tools for topics, records, groups, transactions and configs, in
//! the spirit of Kafka's scripts, kcat and rpk. They speak plain Kafka protocol through
//! [`crate::client`], so they work against any Kafka broker.
//!
//! Every subcommand takes `--bootstrap-server` (env `ODRADEK_BOOTSTRAP_SERVER`, default
//! `127.0.0.1:9092`) and `--output table|json`. Errors go to stderr with Kafka's error name and
//! a hint, and the exit code is 1 (2 for bad arguments, as clap does).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use crate::client::{Client, ClientConfig, Error, Result};

pub mod admin;
pub mod consume;
pub mod group;
pub mod produce;
pub mod topic;
pub mod txn;
pub mod util;

/// The client subcommands, flattened into the binary's subcommand list beside `serve`.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create, list, describe, alter and delete topics.
    Topic(topic::TopicArgs),
    /// Produce lines from stdin (or a file) as records.
    Produce(produce::ProduceArgs),
    /// Consume records and print them.
    Consume(consume::ConsumeArgs),
    /// List, describe, reset the offsets of, and delete consumer groups.
    Group(group::GroupArgs),
    /// List and describe transactions, and abort a hanging one.
    Txn(txn::TxnArgs),
    /// Cluster id, controller and brokers.
    Cluster(admin::ClusterArgs),
    /// Describe and alter topic and broker configs.
    Config(admin::ConfigArgs),
}

/// How results are printed.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Output {
    /// Human-readable tables.
    #[default]
    Table,
    /// JSON (one document, or one object per line for `consume`), for scripts.
    Json,
}

/// Flags every client subcommand takes.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Broker(s) to bootstrap from: host:port[,host:port...].
    #[arg(
        long,
        short = 'b',
        global = true,
        env = "ODRADEK_BOOTSTRAP_SERVER",
        default_value = "127.0.0.1:9092",
        value_name = "HOST:PORT"
    )]
    pub bootstrap_server: String,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Seconds to wait for a connection or a response.
    #[arg(long, global = true, default_value_t = 10.0, value_name = "SECONDS")]
    pub timeout: f64,
}

impl Global {
    /// Connects to the cluster.
    pub fn connect(&self) -> Result<Client> {
        let mut config = ClientConfig::new(&self.bootstrap_server);
        if !(self.timeout.is_finite() && self.timeout > 0.0) {
            return Err(Error::Invalid(format!("--timeout must be positive, got {}", self.timeout)));
        }
        config.timeout = Duration::from_secs_f64(self.timeout);
        Client::connect(config)
    }
}

/// Runs a client subcommand and turns its result into an exit code, printing errors.
pub fn run(command: Command) -> ExitCode {
    // Block-buffered (stdout alone flushes every line); `consume` flushes after each fetch.
    let mut out = std::io::BufWriter::with_capacity(64 << 10, std::io::stdout().lock());
    let r = match command {
        Command::Topic(a) => topic::run(a, &mut out),
        Command::Produce(a) => produce::run(a, &mut std::io::stdin().lock(), &mut out),
        Command::Consume(a) => consume::run(a, &mut out),
        Command::Group(a) => group::run(a, &mut out),
        Command::Txn(a) => txn::run(a, &mut out),
        Command::Cluster(a) => admin::cluster(a, &mut out),
        Command::Config(a) => admin::config(a, &mut out),
    };
    let r = r.and_then(|()| out.flush().map_err(out_err));
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("odradek: error: {e}");
            if let Some(h) = e.hint() {
                eprintln!("hint: {h}");
            }
            ExitCode::FAILURE
        }
    }
}

/// `odradek consume | head` closes stdout early: not an error.
fn is_broken_pipe(e: &Error) -> bool {
    matches!(e, Error::Io { addr, source } if addr == "stdout" && source.kind() == std::io::ErrorKind::BrokenPipe)
}

/// An I/O error writing the output.
pub fn out_err(source: std::io::Error) -> Error {
    Error::Io { addr: "stdout".into(), source }
}

/// Prints a JSON value followed by a newline.
pub fn print_json(out: &mut dyn Write, v: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(|e| Error::Invalid(e.to_string()))?;
    writeln!(out, "{text}").map_err(out_err)
}

/// Prints rows under headers, columns aligned (the last column is not padded).
pub fn print_table(out: &mut dyn Write, headers: &[&str], rows: &[Vec<String>]) -> Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                let pad = widths.get(i).copied().unwrap_or(0).saturating_sub(c.chars().count()) + 2;
                s.push_str(c);
                s.extend(std::iter::repeat_n(' ', pad));
            }
        }
        s.trim_end().to_string()
    };
    writeln!(out, "{}", line(headers.to_vec())).map_err(out_err)?;
    for row in rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect())).map_err(out_err)?;
    }
    Ok(())
}
