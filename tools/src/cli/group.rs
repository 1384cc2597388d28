//! `odradek group list|describe|reset-offsets|delete`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use clap::{ArgGroup, Args, Subcommand};
use serde_json::json;

use super::util::datetime_ms;
use super::{out_err, print_json, print_table, Global, Output};
use crate::client::{Client, Error, GroupDescription, OffsetSpec, Result};

#[derive(Args, Debug)]
pub struct GroupArgs {
    #[command(subcommand)]
    pub command: GroupCommand,
    #[command(flatten)]
    pub global: Global,
}

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// List groups.
    List,
    /// Members, and per partition the committed offset, log end offset and lag.
    Describe { group: String },
    /// Move a group's committed offsets (the group must have no active member).
    #[command(group(ArgGroup::new("to").required(true).args(["to_earliest", "to_latest", "to_offset", "to_datetime", "shift_by"])))]
    ResetOffsets {
        group: String,
        /// TOPIC or TOPIC:P,P,... (repeatable).
        #[arg(long = "topic", short = 't', value_name = "TOPIC[:PARTITIONS]")]
        topics: Vec<String>,
        /// Every topic the group has committed offsets for.
        #[arg(long, conflicts_with = "topics")]
        all_topics: bool,
        /// To the log start offset.
        #[arg(long)]
        to_earliest: bool,
        /// To the log end offset.
        #[arg(long)]
        to_latest: bool,
        /// To this offset (kept within the log).
        #[arg(long, value_name = "N")]
        to_offset: Option<i64>,
        /// To the first record at or after this time (2024-05-01T12:00:00Z or ms).
        #[arg(long, value_name = "DATETIME")]
        to_datetime: Option<String>,
        /// Move the committed offsets by N (negative: back), kept within the log.
        #[arg(long, value_name = "N", allow_hyphen_values = true)]
        shift_by: Option<i64>,
        /// Only show the new offsets (the default).
        #[arg(long, conflicts_with = "execute")]
        dry_run: bool,
        /// Commit the new offsets.
        #[arg(long)]
        execute: bool,
    },
    /// Delete groups, or with --topic only their committed offsets of that topic.
    Delete {
        #[arg(required = true)]
        groups: Vec<String>,
        /// Delete only the group's offsets of this topic.
        #[arg(long)]
        topic: Option<String>,
    },
}

pub fn run(args: GroupArgs, out: &mut dyn Write) -> Result<()> {
    let g = &args.global;
    let mut c = g.connect()?;
    match args.command {
        GroupCommand::List => {
            let groups = c.list_groups()?;
            match g.output {
                Output::Json => print_json(
                    out,
                    &json!(groups
                        .iter()
                        .map(|l| json!({"group": l.group_id, "state": l.state, "protocol_type": l.protocol_type}))
                        .collect::<Vec<_>>()),
                ),
                Output::Table => {
                    let rows: Vec<Vec<String>> = groups
                        .iter()
                        .map(|l| vec![l.group_id.clone(), l.state.clone(), l.protocol_type.clone()])
                        .collect();
                    print_table(out, &["GROUP", "STATE", "TYPE"], &rows)
                }
            }
        }
        GroupCommand::Describe { group } => describe(&mut c, &group, g.output, out),
        GroupCommand::ResetOffsets {
            group,
            topics,
            all_topics,
            to_earliest,
            to_latest,
            to_offset,
            to_datetime,
            shift_by,
            dry_run: _,
            execute,
        } => {
            let to = if to_earliest {
                To::Earliest
            } else if to_latest {
                To::Latest
            } else if let Some(n) = to_offset {
                To::Offset(n)
            } else if let Some(d) = to_datetime {
                To::Time(datetime_ms(&d)?)
            } else {
                To::Shift(shift_by.unwrap_or(0))
            };
            reset(&mut c, &group, &topics, all_topics, to, execute, g.output, out)
        }
        GroupCommand::Delete { groups, topic } => {
            for group in &groups {
                match &topic {
                    Some(t) => {
                        let parts: Vec<i32> = c.topic(t)?.partitions.iter().map(|p| p.partition).collect();
                        c.offset_delete(group, t, &parts)?;
                    }
                    None => c.delete_groups(&[group])?,
                }
            }
            match g.output {
                Output::Json => print_json(out, &json!({"deleted": groups, "topic": topic})),
                Output::Table => {
                    for group in &groups {
                        match &topic {
                            Some(t) => writeln!(out, "deleted the offsets of group {group} for topic {t}"),
                            None => writeln!(out, "deleted group {group}"),
                        }
                        .map_err(out_err)?;
                    }
                    Ok(())
                }
            }
        }
    }
}

/// Whether a group has no active member (its offsets may then be changed from outside).
pub fn is_inactive(desc: &GroupDescription) -> bool {
    desc.members.is_empty() && (desc.state.eq_ignore_ascii_case("empty") || desc.state.eq_ignore_ascii_case("dead"))
}

fn group_not_found(group: &str) -> Error {
    let code = kafka_protocol::error::ResponseError::GroupIdNotFound.code();
    Error::Kafka { code, name: "GROUP_ID_NOT_FOUND".into(), context: format!("group {group:?}"), message: None }
}

/// Topic, partition, committed offset, log end offset, index of the owning member.
type OffsetRow = (String, i32, Option<i64>, Option<i64>, Option<usize>);

/// The group, and its offsets per (topic, partition).
struct GroupView {
    desc: GroupDescription,
    rows: Vec<OffsetRow>,
}

fn view(c: &mut Client, group: &str) -> Result<GroupView> {
    let desc = c.describe_group(group)?;
    let committed = c.offset_fetch(group, None)?;
    if desc.state == "Dead" && committed.is_empty() {
        return Err(group_not_found(group));
    }
    let mut owner: BTreeMap<(String, i32), usize> = BTreeMap::new();
    for (i, m) in desc.members.iter().enumerate() {
        for (t, ps) in &m.assignment {
            for p in ps {
                owner.insert((t.clone(), *p), i);
            }
        }
    }
    let keys: BTreeSet<(String, i32)> = committed.keys().chain(owner.keys()).cloned().collect();
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (t, p) in &keys {
        by_topic.entry(t.clone()).or_default().push(*p);
    }
    let mut ends = BTreeMap::new();
    for (t, ps) in &by_topic {
        // A deleted topic keeps its committed offsets: no end offset then.
        if let Ok(e) = c.list_offsets(t, ps, OffsetSpec::Latest) {
            for (p, o) in e {
                ends.insert((t.clone(), p), o);
            }
        }
    }
    let rows = keys
        .into_iter()
        .map(|k| {
            let (cm, end, own) = (committed.get(&k).copied(), ends.get(&k).copied(), owner.get(&k).copied());
            (k.0, k.1, cm, end, own)
        })
        .collect();
    Ok(GroupView { desc, rows })
}

fn describe(c: &mut Client, group: &str, output: Output, out: &mut dyn Write) -> Result<()> {
    let v = view(c, group)?;
    let lag = |cm: Option<i64>, end: Option<i64>| match (cm, end) {
        (Some(a), Some(b)) => Some((b - a).max(0)),
        _ => None,
    };
    match output {
        Output::Json => print_json(
            out,
            &json!({
                "group": group,
                "state": v.desc.state,
                "protocol_type": v.desc.protocol_type,
                "protocol": v.desc.protocol,
                "members": v.desc.members.iter().map(|m| json!({
                    "member_id": m.member_id,
                    "client_id": m.client_id,
                    "host": m.host,
                    "assignment": m.assignment.iter().map(|(t, ps)| json!({"topic": t, "partitions": ps})).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "offsets": v.rows.iter().map(|(t, p, cm, end, own)| json!({
                    "topic": t,
                    "partition": p,
                    "committed_offset": cm,
                    "log_end_offset": end,
                    "lag": lag(*cm, *end),
                    "member_id": own.map(|i| v.desc.members[i].member_id.clone()),
                })).collect::<Vec<_>>(),
            }),
        ),
        Output::Table => {
            writeln!(out, "Group: {group}  State: {}  Members: {}", v.desc.state, v.desc.members.len())
                .map_err(out_err)?;
            let dash = |x: Option<i64>| x.map_or("-".to_string(), |x| x.to_string());
            let rows: Vec<Vec<String>> = v
                .rows
                .iter()
                .map(|(t, p, cm, end, own)| {
                    let m = own.map(|i| &v.desc.members[i]);
                    vec![
                        t.clone(),
                        p.to_string(),
                        dash(*cm),
                        dash(*end),
                        dash(lag(*cm, *end)),
                        m.map_or("-".into(), |m| m.member_id.clone()),
                        m.map_or("-".into(), |m| m.host.clone()),
                        m.map_or("-".into(), |m| m.client_id.clone()),
                    ]
                })
                .collect();
            print_table(
                out,
                &["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID"],
                &rows,
            )
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum To {
    Earliest,
    Latest,
    Offset(i64),
    Time(i64),
    Shift(i64),
}

#[allow(clippy::too_many_arguments)]
fn reset(
    c: &mut Client,
    group: &str,
    topics: &[String],
    all_topics: bool,
    to: To,
    execute: bool,
    output: Output,
    out: &mut dyn Write,
) -> Result<()> {
    if topics.is_empty() && !all_topics {
        return Err(Error::Invalid("give --topic TOPIC (repeatable) or --all-topics".into()));
    }
    let desc = c.describe_group(group)?;
    if !is_inactive(&desc) {
        return Err(Error::Kafka {
            code: 68,
            name: "NON_EMPTY_GROUP".into(),
            context: format!(
                "cannot reset the offsets of group {group:?}: it is {} with {} active member(s), offsets can only be reset while it is inactive",
                desc.state,
                desc.members.len()
            ),
            message: None,
        });
    }
    let committed = c.offset_fetch(group, None)?;
    let wanted = wanted_partitions(c, group, topics, all_topics, &committed)?;
    let mut plan: Vec<(String, i32, Option<i64>, i64)> = Vec::new();
    for (t, mut parts) in wanted {
        parts.sort_unstable();
        parts.dedup();
        let lo = c.list_offsets(&t, &parts, OffsetSpec::Earliest)?;
        let hi = c.list_offsets(&t, &parts, OffsetSpec::Latest)?;
        let at = match to {
            To::Time(ms) => Some(c.list_offsets(&t, &parts, OffsetSpec::Timestamp(ms))?),
            _ => None,
        };
        for p in parts {
            let (lo, hi) = (lo.get(&p).copied().unwrap_or(0), hi.get(&p).copied().unwrap_or(0));
            let current = committed.get(&(t.clone(), p)).copied();
            let new = match to {
                To::Earliest => lo,
                To::Latest => hi,
                To::Offset(n) => n.clamp(lo, hi),
                To::Time(_) => at.as_ref().and_then(|a| a.get(&p).copied()).filter(|o| *o >= 0).unwrap_or(hi),
                To::Shift(n) => {
                    let cur = current.ok_or_else(|| {
                        Error::Invalid(format!("--shift-by: group {group:?} has no committed offset for {t}-{p}"))
                    })?;
                    cur.saturating_add(n).clamp(lo, hi)
                }
            };
            plan.push((t.clone(), p, current, new));
        }
    }
    if execute {
        let offsets: Vec<(String, i32, i64)> = plan.iter().map(|(t, p, _, n)| (t.clone(), *p, *n)).collect();
        c.offset_commit(group, &offsets)?;
    }
    match output {
        Output::Json => print_json(
            out,
            &json!({
                "group": group,
                "executed": execute,
                "offsets": plan.iter().map(|(t, p, old, new)| json!({
                    "topic": t, "partition": p, "old_offset": old, "new_offset": new,
                })).collect::<Vec<_>>(),
            }),
        ),
        Output::Table => {
            let rows: Vec<Vec<String>> = plan
                .iter()
                .map(|(t, p, old, new)| {
                    vec![
                        group.to_string(),
                        t.clone(),
                        p.to_string(),
                        old.map_or("-".into(), |o| o.to_string()),
                        new.to_string(),
                    ]
                })
                .collect();
            print_table(out, &["GROUP", "TOPIC", "PARTITION", "OLD-OFFSET", "NEW-OFFSET"], &rows)?;
            if !execute {
                eprintln!("dry run: nothing committed; add --execute to commit these offsets");
            }
            Ok(())
        }
    }
}

/// The partitions a reset covers, per topic: those named (`TOPIC` for all of its partitions,
/// `TOPIC:0,1`), and with `--all-topics` every one the group has an offset for.
fn wanted_partitions(
    c: &mut Client,
    group: &str,
    topics: &[String],
    all_topics: bool,
    committed: &BTreeMap<(String, i32), i64>,
) -> Result<BTreeMap<String, Vec<i32>>> {
    let mut wanted: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    if all_topics {
        for (t, p) in committed.keys() {
            wanted.entry(t.clone()).or_default().push(*p);
        }
        if wanted.is_empty() {
            return Err(Error::Invalid(format!("group {group:?} has no committed offsets: name topics with --topic")));
        }
    }
    for spec in topics {
        let (t, parts) = match spec.split_once(':') {
            Some((t, ps)) => {
                let parts = ps
                    .split(',')
                    .map(|p| p.trim().parse::<i32>())
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|_| Error::Invalid(format!("--topic {spec:?}: expected TOPIC or TOPIC:0,1,...")))?;
                (t.to_string(), parts)
            }
            None => (spec.clone(), c.topic(spec)?.partitions.iter().map(|p| p.partition).collect()),
        };
        wanted.entry(t).or_default().extend(parts);
    }
    Ok(wanted)
}
