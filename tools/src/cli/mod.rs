//! Command-line subcommands (filled in step 2).
