//! `odradek cluster info` and `odradek config describe|alter`.

use std::io::Write;

use clap::{ArgGroup, Args, Subcommand};
use serde_json::json;

use super::util::key_value;
use super::{out_err, print_json, print_table, Global, Output};
use crate::client::{AlterOp, ConfigResource, Error, Result};

#[derive(Args, Debug)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub command: ClusterCommand,
    #[command(flatten)]
    pub global: Global,
}

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Cluster id, controller and brokers.
    Info,
}

#[derive(Args, Debug)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
    #[command(flatten)]
    pub global: Global,
}

/// Which resource a config command is about.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("resource").required(true).args(["topic", "broker"])))]
pub struct Resource {
    /// A topic's configs.
    #[arg(long)]
    pub topic: Option<String>,
    /// A broker's configs, by node id.
    #[arg(long)]
    pub broker: Option<i32>,
}

impl Resource {
    fn resource(&self) -> ConfigResource {
        match (&self.topic, self.broker) {
            (Some(t), _) => ConfigResource::Topic(t.clone()),
            (None, b) => ConfigResource::Broker(b.unwrap_or(0)),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Every config of a topic or broker, with its source.
    Describe {
        #[command(flatten)]
        resource: Resource,
        /// Only configs set on the resource (not defaults).
        #[arg(long)]
        changed: bool,
    },
    /// Set or delete configs (IncrementalAlterConfigs).
    Alter {
        #[command(flatten)]
        resource: Resource,
        /// Set name=value (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE", value_parser = key_value)]
        set: Vec<(String, String)>,
        /// Delete an override, back to the default (repeatable).
        #[arg(long = "delete", value_name = "NAME")]
        delete: Vec<String>,
    },
}

pub fn cluster(args: ClusterArgs, out: &mut dyn Write) -> Result<()> {
    let c = args.global.connect()?;
    let ClusterCommand::Info = args.command;
    let md = c.metadata();
    match args.global.output {
        Output::Json => print_json(
            out,
            &json!({
                "cluster_id": md.cluster_id,
                "controller_id": md.controller_id,
                "brokers": md.brokers.values().map(|b| json!({
                    "node_id": b.node_id, "host": b.host, "port": b.port, "rack": b.rack,
                })).collect::<Vec<_>>(),
                "topics": md.topics.values().filter(|t| !t.internal).count(),
            }),
        ),
        Output::Table => {
            writeln!(out, "Cluster id: {}", md.cluster_id.as_deref().unwrap_or("-")).map_err(out_err)?;
            writeln!(out, "Controller: {}", md.controller_id).map_err(out_err)?;
            writeln!(out).map_err(out_err)?;
            let rows: Vec<Vec<String>> = md
                .brokers
                .values()
                .map(|b| {
                    vec![
                        b.node_id.to_string(),
                        b.host.clone(),
                        b.port.to_string(),
                        b.rack.clone().unwrap_or_else(|| "-".into()),
                        if b.node_id == md.controller_id { "yes".into() } else { String::new() },
                    ]
                })
                .collect();
            print_table(out, &["ID", "HOST", "PORT", "RACK", "CONTROLLER"], &rows)
        }
    }
}

pub fn config(args: ConfigArgs, out: &mut dyn Write) -> Result<()> {
    let mut c = args.global.connect()?;
    match args.command {
        ConfigCommand::Describe { resource, changed } => {
            let r = resource.resource();
            let entries: Vec<_> = c
                .describe_configs(&r, None)?
                .into_iter()
                .filter(|e| !changed || !matches!(e.source, "DEFAULT_CONFIG" | "STATIC_BROKER_CONFIG"))
                .collect();
            match args.global.output {
                Output::Json => print_json(
                    out,
                    &json!(entries
                        .iter()
                        .map(|e| json!({
                            "name": e.name,
                            "value": if e.sensitive { None } else { e.value.clone() },
                            "source": e.source,
                            "read_only": e.read_only,
                            "sensitive": e.sensitive,
                        }))
                        .collect::<Vec<_>>()),
                ),
                Output::Table => {
                    let rows: Vec<Vec<String>> = entries
                        .iter()
                        .map(|e| {
                            let value =
                                if e.sensitive { "(sensitive)".into() } else { e.value.clone().unwrap_or_default() };
                            vec![e.name.clone(), value, e.source.to_string()]
                        })
                        .collect();
                    print_table(out, &["NAME", "VALUE", "SOURCE"], &rows)
                }
            }
        }
        ConfigCommand::Alter { resource, set, delete } => {
            if set.is_empty() && delete.is_empty() {
                return Err(Error::Invalid("nothing to alter: give --set NAME=VALUE or --delete NAME".into()));
            }
            let r = resource.resource();
            let ops: Vec<(String, AlterOp)> = set
                .into_iter()
                .map(|(k, v)| (k, AlterOp::Set(v)))
                .chain(delete.into_iter().map(|k| (k, AlterOp::Delete)))
                .collect();
            c.alter_configs(&r, &ops)?;
            match args.global.output {
                Output::Json => print_json(out, &json!({"resource": r.to_string(), "altered": ops.len()})),
                Output::Table => writeln!(out, "altered {} config(s) of {r}", ops.len()).map_err(out_err),
            }
        }
    }
}
