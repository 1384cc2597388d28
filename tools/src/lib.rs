//! The `odradek` library half: a Kafka client core and the command-line tools built on it.

pub mod bench;
pub mod cli;
pub mod client;
