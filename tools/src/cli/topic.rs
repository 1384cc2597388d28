//! `odradek topic create|list|describe|alter|delete`.

use std::io::Write;

use clap::{Args, Subcommand};
use serde_json::json;

use super::util::key_value;
use super::{print_json, print_table, Global, Output};
use crate::client::{AlterOp, Client, ConfigResource, Error, NewTopic, OffsetSpec, Result, TopicInfo};

#[derive(Args, Debug)]
pub struct TopicArgs {
    #[command(subcommand)]
    pub command: TopicCommand,
    #[command(flatten)]
    pub global: Global,
}

#[derive(Subcommand, Debug)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        name: String,
        /// Partitions (default: the broker's num.partitions).
        #[arg(long, short = 'p')]
        partitions: Option<i32>,
        /// Replication factor (default: the broker's default.replication.factor).
        #[arg(long, short = 'r')]
        replication_factor: Option<i16>,
        /// A topic config, name=value (repeatable).
        #[arg(long = "config", short = 'c', value_name = "NAME=VALUE", value_parser = key_value)]
        configs: Vec<(String, String)>,
        /// Succeed if the topic exists already.
        #[arg(long)]
        if_not_exists: bool,
    },
    /// List topics.
    List {
        /// Include internal topics (__consumer_offsets, ...).
        #[arg(long)]
        internal: bool,
    },
    /// Partitions, leaders, replicas, log start/end offsets and configs of topics.
    Describe {
        #[arg(required = true)]
        names: Vec<String>,
        /// Show every config, not only those set on the topic.
        #[arg(long)]
        all_configs: bool,
    },
    /// Grow the partition count and set or delete configs.
    Alter {
        name: String,
        /// The new partition count (partitions can only be added).
        #[arg(long, short = 'p')]
        partitions: Option<i32>,
        /// Set a config, name=value (repeatable).
        #[arg(long = "config", short = 'c', value_name = "NAME=VALUE", value_parser = key_value)]
        configs: Vec<(String, String)>,
        /// Remove a config override, back to the broker's default (repeatable).
        #[arg(long = "delete-config", value_name = "NAME")]
        delete_configs: Vec<String>,
    },
    /// Delete topics.
    Delete {
        #[arg(required = true)]
        names: Vec<String>,
        /// Succeed if a topic does not exist.
        #[arg(long)]
        if_exists: bool,
    },
}

pub fn run(args: TopicArgs, out: &mut dyn Write) -> Result<()> {
    let g = &args.global;
    let mut c = g.connect()?;
    match args.command {
        TopicCommand::Create { name, partitions, replication_factor, configs, if_not_exists } => {
            let topic = NewTopic {
                name: name.clone(),
                partitions: partitions.unwrap_or(-1),
                replication_factor: replication_factor.unwrap_or(-1),
                configs,
            };
            match c.create_topics(&[topic], false) {
                Err(e) if if_not_exists && e.kafka_code() == Some(36) => {}
                r => r?,
            }
            let info = c.wait_for_topic(&name, std::time::Duration::from_secs_f64(g.timeout))?;
            match g.output {
                Output::Json => print_json(out, &json!({"name": name, "partitions": info.partitions.len()})),
                Output::Table => writeln!(out, "created topic {name} with {} partition(s)", info.partitions.len())
                    .map_err(super::out_err),
            }
        }
        TopicCommand::List { internal } => list(&mut c, g, internal, out),
        TopicCommand::Describe { names, all_configs } => describe_all(&mut c, g, &names, all_configs, out),
        TopicCommand::Alter { name, partitions, configs, delete_configs } => {
            if partitions.is_none() && configs.is_empty() && delete_configs.is_empty() {
                return Err(Error::Invalid("nothing to alter: give --partitions, --config or --delete-config".into()));
            }
            let info = c.topic(&name)?;
            if let Some(p) = partitions {
                if p as usize != info.partitions.len() {
                    c.create_partitions(&name, p)?;
                }
            }
            let ops: Vec<(String, AlterOp)> = configs
                .into_iter()
                .map(|(k, v)| (k, AlterOp::Set(v)))
                .chain(delete_configs.into_iter().map(|k| (k, AlterOp::Delete)))
                .collect();
            if !ops.is_empty() {
                c.alter_configs(&ConfigResource::Topic(name.clone()), &ops)?;
            }
            match g.output {
                Output::Json => print_json(out, &json!({"name": name, "altered": true})),
                Output::Table => writeln!(out, "altered topic {name}").map_err(super::out_err),
            }
        }
        TopicCommand::Delete { names, if_exists } => {
            for name in &names {
                match c.delete_topics(&[name]) {
                    Err(e) if if_exists && e.kafka_code() == Some(3) => {}
                    r => r?,
                }
            }
            match g.output {
                Output::Json => print_json(out, &json!({"deleted": names})),
                Output::Table => {
                    for n in &names {
                        writeln!(out, "deleted topic {n}").map_err(super::out_err)?;
                    }
                    Ok(())
                }
            }
        }
    }
}

/// `topic list`: the topics (internal ones only if asked), as JSON or a table.
fn list(c: &mut Client, g: &Global, internal: bool, out: &mut dyn Write) -> Result<()> {
    let md = c.refresh_metadata(None)?;
    let topics: Vec<&TopicInfo> = md.topics.values().filter(|t| internal || !t.internal).collect();
    match g.output {
        Output::Json => print_json(
            out,
            &json!(topics
                .iter()
                .map(|t| json!({
                    "name": t.name,
                    "id": t.id.to_string(),
                    "partitions": t.partitions.len(),
                    "internal": t.internal,
                }))
                .collect::<Vec<_>>()),
        ),
        Output::Table => {
            let rows: Vec<Vec<String>> =
                topics.iter().map(|t| vec![t.name.clone(), t.partitions.len().to_string()]).collect();
            print_table(out, &["NAME", "PARTITIONS"], &rows)
        }
    }
}

/// `topic describe`: one JSON document (an array for several topics) or one table each.
fn describe_all(c: &mut Client, g: &Global, names: &[String], all_configs: bool, out: &mut dyn Write) -> Result<()> {
    let mut docs = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let d = describe(c, name)?;
        match g.output {
            Output::Json => docs.push(d),
            Output::Table => {
                if i > 0 {
                    writeln!(out).map_err(super::out_err)?;
                }
                print_description(out, &d, all_configs)?;
            }
        }
    }
    if g.output == Output::Json {
        let v = if docs.len() == 1 { docs.remove(0) } else { json!(docs) };
        print_json(out, &v)?;
    }
    Ok(())
}

/// A topic's description as JSON: the table printer reads the same document.
fn describe(c: &mut Client, name: &str) -> Result<serde_json::Value> {
    let info = c.topic(name)?;
    let ids: Vec<i32> = info.partitions.iter().map(|p| p.partition).collect();
    let start = c.list_offsets(name, &ids, OffsetSpec::Earliest)?;
    let end = c.list_offsets(name, &ids, OffsetSpec::Latest)?;
    let configs = c.describe_configs(&ConfigResource::Topic(name.to_string()), None)?;
    Ok(json!({
        "name": info.name,
        "id": info.id.to_string(),
        "internal": info.internal,
        "partitions": info.partitions.iter().map(|p| json!({
            "partition": p.partition,
            "leader": p.leader,
            "leader_epoch": p.leader_epoch,
            "replicas": p.replicas,
            "isr": p.isr,
            "log_start_offset": start.get(&p.partition),
            "log_end_offset": end.get(&p.partition),
        })).collect::<Vec<_>>(),
        "configs": configs.iter().map(|e| json!({
            "name": e.name,
            "value": if e.sensitive { None } else { e.value.clone() },
            "source": e.source,
            "read_only": e.read_only,
            "sensitive": e.sensitive,
        })).collect::<Vec<_>>(),
    }))
}

fn print_description(out: &mut dyn Write, d: &serde_json::Value, all_configs: bool) -> Result<()> {
    let o = super::out_err;
    let parts = d["partitions"].as_array().cloned().unwrap_or_default();
    writeln!(out, "Topic: {}  Id: {}  Partitions: {}", str_of(&d["name"]), str_of(&d["id"]), parts.len()).map_err(o)?;
    let list = |v: &serde_json::Value| {
        v.as_array().map(|a| a.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",")).unwrap_or_default()
    };
    let rows: Vec<Vec<String>> = parts
        .iter()
        .map(|p| {
            vec![
                p["partition"].to_string(),
                p["leader"].to_string(),
                list(&p["replicas"]),
                list(&p["isr"]),
                p["log_start_offset"].to_string(),
                p["log_end_offset"].to_string(),
            ]
        })
        .collect();
    print_table(out, &["PARTITION", "LEADER", "REPLICAS", "ISR", "LOG-START-OFFSET", "LOG-END-OFFSET"], &rows)?;
    let configs = d["configs"].as_array().cloned().unwrap_or_default();
    let shown: Vec<Vec<String>> = configs
        .iter()
        .filter(|e| all_configs || e["source"] == "DYNAMIC_TOPIC_CONFIG")
        .map(|e| vec![str_of(&e["name"]), e["value"].as_str().unwrap_or("").to_string(), str_of(&e["source"])])
        .collect();
    writeln!(out).map_err(o)?;
    if shown.is_empty() {
        writeln!(out, "Configs: none set on the topic (--all-configs shows the defaults)").map_err(o)?;
        return Ok(());
    }
    writeln!(out, "Configs:").map_err(o)?;
    print_table(out, &["NAME", "VALUE", "SOURCE"], &shown)
}

fn str_of(v: &serde_json::Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}
