//! `odradek produce`: one record per input line.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::util::{acks, compression, key_value, partition_for_key};
use super::{print_json, Global, Output};
use crate::client::{Client, Compression, Error, ProduceOptions, Record, Result};

#[derive(Args, Debug)]
pub struct ProduceArgs {
    /// The topic to produce to.
    pub topic: String,
    /// Read lines from this file instead of stdin.
    #[arg(long, short = 'f')]
    pub file: Option<PathBuf>,
    /// Split each line at the first SEP into key and value (a line without SEP is an error).
    /// Without it, lines are values with no key.
    #[arg(long, short = 'K', value_name = "SEP")]
    pub key_separator: Option<String>,
    /// A header for every record, key=value (repeatable).
    #[arg(long = "header", short = 'H', value_name = "KEY=VALUE", value_parser = key_value)]
    pub headers: Vec<(String, String)>,
    /// Acknowledgements: 0, 1, -1/all.
    #[arg(long, default_value = "all", value_parser = acks, allow_hyphen_values = true)]
    pub acks: i16,
    /// Compression: none, gzip, snappy, lz4, zstd.
    #[arg(long, short = 'z', default_value = "none", value_parser = compression)]
    pub compression: Compression,
    /// Produce every record to this partition. Without it, keyed records go where Kafka's
    /// default partitioner puts them (murmur2 of the key) and unkeyed batches rotate.
    #[arg(long, short = 'p')]
    pub partition: Option<i32>,
    /// Record timestamp in ms since the epoch (default: now).
    #[arg(long, value_name = "MS")]
    pub timestamp: Option<i64>,
    /// Records per produce request and partition.
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    #[command(flatten)]
    pub global: Global,
}

#[derive(Default)]
struct Sent {
    records: u64,
    first_offset: Option<i64>,
    last_offset: Option<i64>,
}

pub fn run(args: ProduceArgs, stdin: &mut dyn BufRead, out: &mut dyn Write) -> Result<()> {
    let mut file_reader;
    let input: &mut dyn BufRead = match &args.file {
        Some(path) => {
            let f = std::fs::File::open(path)
                .map_err(|e| Error::Invalid(format!("cannot read {}: {e}", path.display())))?;
            file_reader = std::io::BufReader::new(f);
            &mut file_reader
        }
        None => stdin,
    };
    if args.batch_size == 0 {
        return Err(Error::Invalid("--batch-size must be at least 1".into()));
    }
    // Typed lines are sent as they are entered, not at the end of the input.
    let batch_size =
        if args.file.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdin()) { 1 } else { args.batch_size };
    let mut c = args.global.connect()?;
    let partitions = c.topic(&args.topic)?.partitions.len() as i32;
    if let Some(p) = args.partition {
        if p < 0 || p >= partitions {
            return Err(Error::Kafka {
                code: 3,
                name: "UNKNOWN_TOPIC_OR_PARTITION".into(),
                context: format!("topic {:?} has {partitions} partition(s), no partition {p}", args.topic),
                message: None,
            });
        }
    }
    let opts = ProduceOptions { acks: args.acks, compression: args.compression, ..ProduceOptions::default() };
    let mut pending: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
    let mut sent: BTreeMap<i32, Sent> = BTreeMap::new();
    let mut next_unkeyed = 0i32;
    let mut line = Vec::new();
    let mut line_no = 0u64;
    loop {
        line.clear();
        let n = input.read_until(b'\n', &mut line).map_err(|e| Error::Invalid(format!("reading input: {e}")))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        let (key, value) = match &args.key_separator {
            None => (None, line.clone()),
            Some(sep) => {
                let sep = sep.as_bytes();
                let at = find(&line, sep).ok_or_else(|| {
                    Error::Invalid(format!("line {line_no} has no key separator {:?}", String::from_utf8_lossy(sep)))
                })?;
                (Some(line[..at].to_vec()), line[at + sep.len()..].to_vec())
            }
        };
        let partition = match (args.partition, &key) {
            (Some(p), _) => p,
            (None, Some(k)) => partition_for_key(k, partitions),
            (None, None) => next_unkeyed,
        };
        let mut r = Record::new(key, Some(value)).with_timestamp(args.timestamp.unwrap_or_else(engine::now_ms));
        for (k, v) in &args.headers {
            r = r.with_header(k, Some(v.as_bytes().to_vec()));
        }
        let batch = pending.entry(partition).or_default();
        batch.push(r);
        if batch.len() >= batch_size {
            let records = std::mem::take(batch);
            send(&mut c, &args.topic, partition, &records, &opts, &mut sent)?;
            if args.partition.is_none() {
                next_unkeyed = (next_unkeyed + 1) % partitions.max(1);
            }
        }
    }
    for (partition, records) in pending {
        send(&mut c, &args.topic, partition, &records, &opts, &mut sent)?;
    }
    report(&args, &sent, out)
}

/// What was produced, per partition: offsets (none under acks=0), as JSON or text.
fn report(args: &ProduceArgs, sent: &BTreeMap<i32, Sent>, out: &mut dyn Write) -> Result<()> {
    let total: u64 = sent.values().map(|s| s.records).sum();
    match args.global.output {
        Output::Json => print_json(
            out,
            &json!({
                "topic": args.topic,
                "records": total,
                "partitions": sent.iter().map(|(p, s)| json!({
                    "partition": p,
                    "records": s.records,
                    "first_offset": s.first_offset,
                    "last_offset": s.last_offset,
                })).collect::<Vec<_>>(),
            }),
        ),
        Output::Table => {
            let o = super::out_err;
            writeln!(out, "produced {total} record(s) to {}", args.topic).map_err(o)?;
            for (p, s) in sent {
                match (s.first_offset, s.last_offset) {
                    (Some(a), Some(b)) => writeln!(out, "  partition {p}: offsets {a}..{b}").map_err(o)?,
                    _ => writeln!(out, "  partition {p}: {} record(s), acks=0", s.records).map_err(o)?,
                }
            }
            Ok(())
        }
    }
}

fn send(
    c: &mut Client,
    topic: &str,
    partition: i32,
    records: &[Record],
    opts: &ProduceOptions,
    sent: &mut BTreeMap<i32, Sent>,
) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let base = c.produce(topic, partition, records, opts)?;
    let s = sent.entry(partition).or_default();
    s.records += records.len() as u64;
    if let Some(b) = base {
        s.first_offset.get_or_insert(b);
        s.last_offset = Some(b + records.len() as i64 - 1);
    }
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}
