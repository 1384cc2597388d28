//! `odradek consume`: fetch records and print them with a kcat-like template or as JSON lines.
//!
//! With `--group G` the consumer is a *standalone* member of the group, as a Kafka consumer
//! using `assign()` is: it starts from the group's committed offsets (the start flags apply
//! to partitions without one) and commits the position after every batch of records it
//! prints (OffsetCommit with generation -1). It does not join the group, so partitions are
//! not shared between several `odradek consume` processes. A group with active members (e.g.
//! running Kafka consumers) is refused up front: Kafka refuses standalone commits to it.

use std::collections::BTreeMap;
use std::io::Write;

use clap::Args;

use super::util::{datetime_ms, text};
use super::{out_err, Global, Output};
use crate::client::{Client, Error, FetchOptions, FetchSpec, OffsetSpec, Record, Result};

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    /// The topic to consume.
    pub topic: String,
    /// Consume only this partition (repeatable; default: all).
    #[arg(long = "partition", short = 'p')]
    pub partitions: Vec<i32>,
    /// Where to start: `beginning`, `end`, an offset N, or -N (N records before the end).
    #[arg(long, short = 'o', allow_hyphen_values = true, conflicts_with_all = ["from_beginning", "timestamp"])]
    pub offset: Option<String>,
    /// Start at the log start (the default, unless --follow alone: then the end).
    #[arg(long, conflicts_with = "timestamp")]
    pub from_beginning: bool,
    /// Start at the first record at or after this time (ms since the epoch or
    /// 2024-05-01T12:00:00Z).
    #[arg(long, value_name = "MS|DATETIME")]
    pub timestamp: Option<String>,
    /// Start from the group's committed offsets and commit what is consumed.
    #[arg(long, short = 'g')]
    pub group: Option<String>,
    /// Output template: %t topic, %p partition, %o offset, %k key, %v value, %h headers
    /// (k=v,...), %T timestamp (ms), %K key length, %S value length, %% a percent sign;
    /// \n \t \r \\ escapes. Ignored with --output json (one JSON object per record).
    #[arg(long, short = 'F', default_value = "%v\\n")]
    pub format: String,
    /// Stop after this many records.
    #[arg(long = "count", short = 'n')]
    pub count: Option<u64>,
    /// Keep waiting for new records instead of stopping at the end of the log.
    #[arg(long)]
    pub follow: bool,
    #[command(flatten)]
    pub global: Global,
}

/// A piece of a parsed `--format` template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(Vec<u8>),
    Topic,
    Partition,
    Offset,
    Key,
    Value,
    Headers,
    Timestamp,
    KeyLen,
    ValueLen,
}

fn parse_template(t: &str) -> Result<Vec<Piece>> {
    let mut out = Vec::new();
    let mut lit = Vec::new();
    let mut chars = t.chars();
    while let Some(ch) = chars.next() {
        let piece = match ch {
            '%' => match chars.next() {
                Some('t') => Piece::Topic,
                Some('p') => Piece::Partition,
                Some('o') => Piece::Offset,
                Some('k') => Piece::Key,
                Some('v') | Some('s') => Piece::Value,
                Some('h') => Piece::Headers,
                Some('T') => Piece::Timestamp,
                Some('K') => Piece::KeyLen,
                Some('S') => Piece::ValueLen,
                Some('%') => {
                    lit.push(b'%');
                    continue;
                }
                other => {
                    return Err(Error::Invalid(format!(
                        "--format: unknown placeholder %{} (use %t %p %o %k %v %h %T %K %S or %%)",
                        other.map(String::from).unwrap_or_default()
                    )))
                }
            },
            '\\' => {
                let c = match chars.next() {
                    Some('n') => '\n',
                    Some('t') => '\t',
                    Some('r') => '\r',
                    Some('\\') => '\\',
                    Some(other) => {
                        lit.push(b'\\');
                        other
                    }
                    None => '\\',
                };
                let mut buf = [0u8; 4];
                lit.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                continue;
            }
            c => {
                let mut buf = [0u8; 4];
                lit.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                continue;
            }
        };
        if !lit.is_empty() {
            out.push(Piece::Text(std::mem::take(&mut lit)));
        }
        out.push(piece);
    }
    if !lit.is_empty() {
        out.push(Piece::Text(lit));
    }
    Ok(out)
}

fn render(out: &mut Vec<u8>, pieces: &[Piece], topic: &str, partition: i32, r: &Record) {
    for p in pieces {
        match p {
            Piece::Text(t) => out.extend_from_slice(t),
            Piece::Topic => out.extend_from_slice(topic.as_bytes()),
            Piece::Partition => out.extend_from_slice(partition.to_string().as_bytes()),
            Piece::Offset => out.extend_from_slice(r.offset.to_string().as_bytes()),
            Piece::Key => out.extend_from_slice(r.key.as_deref().unwrap_or_default()),
            Piece::Value => out.extend_from_slice(r.value.as_deref().unwrap_or_default()),
            Piece::Timestamp => out.extend_from_slice(r.timestamp.to_string().as_bytes()),
            Piece::KeyLen => {
                out.extend_from_slice(r.key.as_ref().map_or(-1, |k| k.len() as i64).to_string().as_bytes())
            }
            Piece::ValueLen => {
                out.extend_from_slice(r.value.as_ref().map_or(-1, |v| v.len() as i64).to_string().as_bytes())
            }
            Piece::Headers => {
                for (i, (k, v)) in r.headers.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(k.as_bytes());
                    out.push(b'=');
                    out.extend_from_slice(v.as_deref().unwrap_or_default());
                }
            }
        }
    }
}

/// One record as a JSON object (keys in a fixed order), written straight into `out`.
fn record_json(out: &mut Vec<u8>, topic: &str, partition: i32, r: &Record) {
    fn string(out: &mut Vec<u8>, v: Option<&[u8]>) {
        match v {
            None => out.extend_from_slice(b"null"),
            // Serializing a str cannot fail.
            Some(b) => out.extend_from_slice(serde_json::to_string(&text(b)).unwrap_or_default().as_bytes()),
        }
    }
    out.extend_from_slice(b"{\"topic\":");
    string(out, Some(topic.as_bytes()));
    out.extend_from_slice(
        format!(",\"partition\":{partition},\"offset\":{},\"timestamp\":{}", r.offset, r.timestamp).as_bytes(),
    );
    out.extend_from_slice(b",\"key\":");
    string(out, r.key.as_deref());
    out.extend_from_slice(b",\"value\":");
    string(out, r.value.as_deref());
    out.extend_from_slice(b",\"headers\":[");
    for (i, (k, v)) in r.headers.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'[');
        string(out, Some(k.as_bytes()));
        out.push(b',');
        string(out, v.as_deref());
        out.push(b']');
    }
    out.extend_from_slice(b"]}\n");
}

/// Where each partition starts.
fn start_offsets(c: &mut Client, a: &ConsumeArgs, partitions: &[i32]) -> Result<BTreeMap<i32, i64>> {
    let earliest = c.list_offsets(&a.topic, partitions, OffsetSpec::Earliest)?;
    let latest = c.list_offsets(&a.topic, partitions, OffsetSpec::Latest)?;
    let bounds = |p: i32| (earliest.get(&p).copied().unwrap_or(0), latest.get(&p).copied().unwrap_or(0));
    let mut start = BTreeMap::new();
    if let Some(ts) = &a.timestamp {
        let ms = datetime_ms(ts)?;
        let found = c.list_offsets(&a.topic, partitions, OffsetSpec::Timestamp(ms))?;
        for &p in partitions {
            let o = found.get(&p).copied().unwrap_or(-1);
            start.insert(p, if o < 0 { bounds(p).1 } else { o });
        }
    } else {
        let spec = match (&a.offset, a.from_beginning, a.follow) {
            (Some(o), ..) => o.clone(),
            (None, true, _) | (None, false, false) => "beginning".to_string(),
            (None, false, true) => "end".to_string(),
        };
        for &p in partitions {
            let (lo, hi) = bounds(p);
            let o = match spec.as_str() {
                "beginning" | "earliest" => lo,
                "end" | "latest" => hi,
                n => {
                    let n: i64 = n
                        .parse()
                        .map_err(|_| Error::Invalid(format!("--offset must be beginning, end, N or -N, got {n:?}")))?;
                    if n < 0 {
                        (hi + n).max(lo)
                    } else {
                        n.clamp(lo, hi)
                    }
                }
            };
            start.insert(p, o);
        }
    }
    if let Some(g) = &a.group {
        let committed = c.offset_fetch(g, Some(&[&a.topic]))?;
        for &p in partitions {
            if let Some(&o) = committed.get(&(a.topic.clone(), p)) {
                let (lo, hi) = bounds(p);
                start.insert(p, o.clamp(lo, hi));
            }
        }
    }
    Ok(start)
}

pub fn run(a: ConsumeArgs, out: &mut dyn Write) -> Result<()> {
    let pieces = parse_template(&a.format)?;
    let mut c = a.global.connect()?;
    let info = c.topic(&a.topic)?;
    let all: Vec<i32> = info.partitions.iter().map(|p| p.partition).collect();
    let partitions: Vec<i32> = if a.partitions.is_empty() { all.clone() } else { a.partitions.clone() };
    check_request(&mut c, &a, &partitions, &all)?;
    let mut position = start_offsets(&mut c, &a, &partitions)?;
    let stop = if a.follow { None } else { Some(c.list_offsets(&a.topic, &partitions, OffsetSpec::Latest)?) };
    let mut done: BTreeMap<i32, bool> = partitions
        .iter()
        .map(|p| {
            let at_end = match (&stop, position.get(p)) {
                (Some(s), Some(pos)) => s.get(p).is_none_or(|end| pos >= end),
                _ => false,
            };
            (*p, at_end)
        })
        .collect();
    let opts = FetchOptions { max_wait_ms: if a.follow { 500 } else { 100 }, ..FetchOptions::default() };
    let mut printed = 0u64;
    let mut buf = Vec::new();
    let limit = a.count.unwrap_or(u64::MAX);
    'outer: while printed < limit && done.values().any(|d| !d) {
        let specs: Vec<FetchSpec> = position
            .iter()
            .filter(|(p, _)| done.get(*p) == Some(&false))
            .map(|(p, o)| FetchSpec { topic: a.topic.clone(), partition: *p, offset: *o })
            .collect();
        let fetched = c.fetch(&specs, &opts)?;
        let mut committed_needed = false;
        for f in fetched {
            let stop_at = stop.as_ref().and_then(|s| s.get(&f.partition).copied());
            let mut hit_stop = false;
            for r in &f.records {
                if stop_at.is_some_and(|s| r.offset >= s) {
                    hit_stop = true;
                    break;
                }
                buf.clear();
                match a.global.output {
                    Output::Json => record_json(&mut buf, &a.topic, f.partition, r),
                    Output::Table => render(&mut buf, &pieces, &a.topic, f.partition, r),
                }
                out.write_all(&buf).map_err(out_err)?;
                printed += 1;
                position.insert(f.partition, r.offset + 1);
                committed_needed = true;
                if printed >= limit {
                    if let Some(g) = &a.group {
                        commit(&mut c, g, &a.topic, &position)?;
                    }
                    break 'outer;
                }
            }
            let pos = position.entry(f.partition).or_insert(f.next_offset);
            if !hit_stop {
                // Past control batches and records before the fetch offset, too.
                *pos = (*pos).max(f.next_offset);
            }
            if let Some(s) = stop_at {
                // Done at the stop offset, or when the log ends earlier (truncated meanwhile).
                if *pos >= s || (f.records.is_empty() && *pos >= f.high_watermark) {
                    done.insert(f.partition, true);
                }
            }
        }
        out.flush().map_err(out_err)?;
        if committed_needed {
            if let Some(g) = &a.group {
                commit(&mut c, g, &a.topic, &position)?;
            }
        }
    }
    out.flush().map_err(out_err)
}

/// The partitions asked exist (`all` are the topic's), and a `--group` has no active members.
fn check_request(c: &mut Client, a: &ConsumeArgs, partitions: &[i32], all: &[i32]) -> Result<()> {
    for p in partitions {
        if !all.contains(p) {
            return Err(Error::Kafka {
                code: 3,
                name: "UNKNOWN_TOPIC_OR_PARTITION".into(),
                context: format!("topic {:?} has {} partition(s), no partition {p}", a.topic, all.len()),
                message: None,
            });
        }
    }
    if let Some(g) = &a.group {
        // Kafka refuses standalone commits to a group with active members: say so up front.
        let desc = c.describe_group(g)?;
        if !super::group::is_inactive(&desc) {
            return Err(Error::Kafka {
                code: 68,
                name: "NON_EMPTY_GROUP".into(),
                context: format!(
                    "group {g:?} is {} with {} active member(s): `consume --group` commits as a standalone consumer, which only an inactive group allows",
                    desc.state,
                    desc.members.len()
                ),
                message: None,
            });
        }
    }
    Ok(())
}

fn commit(c: &mut Client, group: &str, topic: &str, position: &BTreeMap<i32, i64>) -> Result<()> {
    let offsets: Vec<(String, i32, i64)> = position.iter().map(|(p, o)| (topic.to_string(), *p, *o)).collect();
    c.offset_commit(group, &offsets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_every_field() {
        let r = Record::new(Some(b"k1".to_vec()), Some(b"v1".to_vec()))
            .with_timestamp(77)
            .with_header("a", Some(b"1".to_vec()))
            .with_header("b", None);
        let r = Record { offset: 5, ..r };
        let pieces = parse_template("%t/%p/%o %k=%v [%h] %T %K %S 100%%\\t\\n").expect("template");
        let mut out = Vec::new();
        render(&mut out, &pieces, "orders", 2, &r);
        assert_eq!(String::from_utf8(out).expect("utf8"), "orders/2/5 k1=v1 [a=1,b=] 77 2 2 100%\t\n");
        let null = Record::new(None, None);
        let mut out = Vec::new();
        render(&mut out, &parse_template("%K %S|%k|%v").expect("template"), "t", 0, &null);
        assert_eq!(out, b"-1 -1||");
        assert!(parse_template("%x").is_err());
        let mut out = Vec::new();
        record_json(&mut out, "t\"1", 3, &Record { offset: 9, ..null.with_header("h", Some(b"\n".to_vec())) });
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"topic": "t\"1", "partition": 3, "offset": 9, "timestamp": 0, "key": null,
                "value": null, "headers": [["h", "\n"]]})
        );
        assert_eq!(out.last(), Some(&b'\n'));
        assert!(parse_template("50%").is_err());
    }
}
