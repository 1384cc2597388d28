//! The `odradek` CLI end to end against the real broker binary.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Broker, BIN};
use serde_json::Value;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn odradek(bootstrap: &str, args: &[&str], stdin: &[u8]) -> Out {
    let mut child = Command::new(BIN)
        .args(args)
        .env("ODRADEK_BOOTSTRAP_SERVER", bootstrap)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run odradek");
    child.stdin.take().expect("stdin").write_all(stdin).expect("write stdin");
    let o = child.wait_with_output().expect("wait");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Runs and asserts success; returns stdout.
fn ok(b: &Broker, args: &[&str]) -> String {
    ok_in(b, args, b"")
}

fn ok_in(b: &Broker, args: &[&str], stdin: &[u8]) -> String {
    let o = odradek(&b.bootstrap, args, stdin);
    assert_eq!(o.code, 0, "odradek {args:?} failed: {}{}", o.stdout, o.stderr);
    o.stdout
}

fn json(b: &Broker, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["--output", "json"]);
    let out = ok(b, &a);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
}

fn fails(b: &Broker, args: &[&str], stdin: &[u8]) -> Out {
    let o = odradek(&b.bootstrap, args, stdin);
    assert_ne!(o.code, 0, "odradek {args:?} should fail: {}", o.stdout);
    o
}

#[test]
fn topic_lifecycle() {
    let b = Broker::start();
    assert_eq!(
        ok(&b, &["topic", "create", "orders", "-p", "2", "-r", "1", "--config", "retention.ms=123456"]),
        "created topic orders with 2 partition(s)\n"
    );
    let o = fails(&b, &["topic", "create", "orders", "-p", "2"], b"");
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("TOPIC_ALREADY_EXISTS"), "{}", o.stderr);
    ok(&b, &["topic", "create", "orders", "--if-not-exists"]);
    ok(&b, &["topic", "create", "audit", "--partitions", "1"]);

    assert_eq!(ok(&b, &["topic", "list"]), "NAME    PARTITIONS\naudit   1\norders  2\n");
    let list = json(&b, &["topic", "list"]);
    let names: Vec<(&str, u64)> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|t| (t["name"].as_str().expect("name"), t["partitions"].as_u64().expect("count")))
        .collect();
    assert_eq!(names, vec![("audit", 1), ("orders", 2)]);

    ok_in(&b, &["produce", "orders", "--partition", "1"], b"a\nb\nc\n");
    let d = json(&b, &["topic", "describe", "orders"]);
    assert_eq!(d["name"], "orders");
    let parts: Vec<(i64, i64, i64, i64)> = d["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| {
            let n = |k: &str| p[k].as_i64().expect(k);
            (n("partition"), n("leader"), n("log_start_offset"), n("log_end_offset"))
        })
        .collect();
    assert_eq!(parts, vec![(0, 0, 0, 0), (1, 0, 0, 3)]);
    let retention = d["configs"].as_array().expect("configs").iter().find(|c| c["name"] == "retention.ms").cloned();
    assert_eq!(retention.expect("retention.ms")["value"], "123456");
    let table = ok(&b, &["topic", "describe", "orders"]);
    assert!(table.contains("PARTITION  LEADER  REPLICAS  ISR  LOG-START-OFFSET  LOG-END-OFFSET\n"), "{table}");
    assert!(table.contains("\n1          0       0         0    0                 3\n"), "{table}");
    assert!(table.contains("retention.ms  123456  DYNAMIC_TOPIC_CONFIG"), "{table}");

    assert_eq!(
        ok(&b, &["topic", "alter", "orders", "--partitions", "4", "--config", "retention.ms=5000"]),
        "altered topic orders\n"
    );
    let d = json(&b, &["topic", "describe", "orders"]);
    assert_eq!(d["partitions"].as_array().expect("partitions").len(), 4);
    let value = |d: &Value, name: &str| {
        d["configs"].as_array().expect("configs").iter().find(|c| c["name"] == name).map(|c| c["value"].clone())
    };
    assert_eq!(value(&d, "retention.ms"), Some(Value::from("5000")));
    let o = fails(&b, &["topic", "alter", "orders", "--partitions", "2"], b"");
    assert!(o.stderr.contains("INVALID_PARTITIONS"), "{}", o.stderr);
    ok(&b, &["topic", "alter", "orders", "--delete-config", "retention.ms"]);
    let d = json(&b, &["topic", "describe", "orders"]);
    let source = d["configs"].as_array().expect("configs").iter().find(|c| c["name"] == "retention.ms").cloned();
    assert_ne!(source.expect("retention.ms")["source"], "DYNAMIC_TOPIC_CONFIG");

    assert_eq!(ok(&b, &["topic", "delete", "orders", "audit"]), "deleted topic orders\ndeleted topic audit\n");
    assert_eq!(ok(&b, &["topic", "list"]), "NAME  PARTITIONS\n");
    let o = fails(&b, &["topic", "delete", "orders"], b"");
    assert!(o.stderr.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{}", o.stderr);
    ok(&b, &["topic", "delete", "orders", "--if-exists"]);
}

#[test]
fn produce_then_consume_exactly() {
    let b = Broker::start();
    ok(&b, &["topic", "create", "events", "-p", "3"]);
    let input = b"user-1|login\nuser-2|view\nuser-1|logout\nuser-3|\n";
    let out = ok_in(
        &b,
        &["produce", "events", "-K", "|", "-H", "source=cli", "-H", "v=2", "--timestamp", "1000", "--output", "json"],
        input,
    );
    let summary: Value = serde_json::from_str(&out).expect("json summary");
    assert_eq!(summary["records"], 4);
    let per_partition: u64 =
        summary["partitions"].as_array().expect("partitions").iter().map(|p| p["records"].as_u64().expect("n")).sum();
    assert_eq!(per_partition, 4);

    let p = |k: &str| odradek::cli::util::partition_for_key(k.as_bytes(), 3);
    let consumed = ok(&b, &["consume", "events", "-F", "%p|%o|%k|%v|%h|%T\\n"]);
    let mut lines: Vec<&str> = consumed.lines().collect();
    lines.sort();
    let mut expected = Vec::new();
    let mut next = [0i64; 3];
    for (k, v) in [("user-1", "login"), ("user-2", "view"), ("user-1", "logout"), ("user-3", "")] {
        let part = p(k) as usize;
        expected.push(format!("{part}|{}|{k}|{v}|source=cli,v=2|1000", next[part]));
        next[part] += 1;
    }
    expected.sort();
    assert_eq!(lines, expected);

    // JSON lines carry every field.
    let one = ok(&b, &["consume", "events", "-p", &p("user-2").to_string(), "--output", "json"]);
    let v: Value = one
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json line"))
        .find(|v| v["key"] == "user-2")
        .expect("user-2's record");
    assert_eq!(v["partition"], p("user-2"));
    assert_eq!(v["key"], "user-2");
    assert_eq!(v["value"], "view");
    assert_eq!(v["topic"], "events");
    assert_eq!(v["timestamp"], 1000);
    assert_eq!(v["headers"], serde_json::json!([["source", "cli"], ["v", "2"]]));

    // One partition, every codec, offsets, counts and timestamps.
    ok(&b, &["topic", "create", "log", "-p", "1"]);
    let mut all = Vec::new();
    for (i, codec) in ["none", "gzip", "snappy", "lz4", "zstd"].iter().enumerate() {
        let ts = (1 + i as i64) * 10_000;
        let lines = format!("{codec}-a\n{codec}-b\n");
        ok_in(&b, &["produce", "log", "-z", codec, "--timestamp", &ts.to_string(), "--acks", "1"], lines.as_bytes());
        all.push(format!("{codec}-a"));
        all.push(format!("{codec}-b"));
    }
    let values = ok(&b, &["consume", "log"]);
    assert_eq!(values.lines().collect::<Vec<_>>(), all);
    let from3 = ok(&b, &["consume", "log", "--offset", "3", "-F", "%o:%v\\n"]);
    assert_eq!(from3.lines().next(), Some("3:gzip-b"));
    assert_eq!(from3.lines().count(), 7);
    assert_eq!(ok(&b, &["consume", "log", "--offset", "-2", "-F", "%o "]), "8 9 ");
    assert_eq!(ok(&b, &["consume", "log", "-n", "3", "-F", "%v,"]), "none-a,none-b,gzip-a,");
    assert_eq!(ok(&b, &["consume", "log", "--timestamp", "40000", "-F", "%o=%T "]), "6=40000 7=40000 8=50000 9=50000 ");
    assert_eq!(ok(&b, &["consume", "log", "--timestamp", "1970-01-01T00:00:45Z", "-F", "%o "]), "8 9 ");
    assert_eq!(ok(&b, &["consume", "log", "--offset", "end"]), "");
    assert_eq!(ok(&b, &["consume", "log", "--from-beginning", "-n", "1", "-F", "%K %S %k|"]), "-1 6 |");

    // --follow waits for records produced later and stops at -n.
    let bootstrap = b.bootstrap.clone();
    let follower = std::thread::spawn(move || odradek(&bootstrap, &["consume", "log", "--follow", "-n", "2"], b""));
    std::thread::sleep(Duration::from_millis(1500));
    ok_in(&b, &["produce", "log", "-f", "/dev/stdin"], b"late-1\nlate-2\n");
    let f = follower.join().expect("follower");
    assert_eq!((f.code, f.stdout.as_str()), (0, "late-1\nlate-2\n"), "{}", f.stderr);
}

#[test]
fn groups_offsets_and_lag() {
    let b = Broker::start();
    ok(&b, &["topic", "create", "jobs", "-p", "1"]);
    ok_in(&b, &["produce", "jobs"], b"j0\nj1\nj2\nj3\nj4\n");
    assert_eq!(ok(&b, &["consume", "jobs", "-g", "workers", "-n", "3"]), "j0\nj1\nj2\n");
    let lag = |b: &Broker| -> (i64, i64, i64) {
        let d = json(b, &["group", "describe", "workers"]);
        let o = &d["offsets"][0];
        assert_eq!((o["topic"].as_str(), o["partition"].as_i64()), (Some("jobs"), Some(0)));
        (
            o["committed_offset"].as_i64().expect("committed"),
            o["log_end_offset"].as_i64().expect("end"),
            o["lag"].as_i64().expect("lag"),
        )
    };
    assert_eq!(lag(&b), (3, 5, 2));
    let table = ok(&b, &["group", "describe", "workers"]);
    assert!(table.starts_with("Group: workers  State: Empty  Members: 0\n"), "{table}");
    assert!(table.contains("\njobs   0          3               5               2    -"), "{table}");
    // The group resumes where it committed.
    assert_eq!(ok(&b, &["consume", "jobs", "-g", "workers"]), "j3\nj4\n");
    assert_eq!(lag(&b), (5, 5, 0));

    let list = json(&b, &["group", "list"]);
    assert!(list.as_array().expect("groups").iter().any(|g| g["group"] == "workers"), "{list}");

    let dry = ok(&b, &["group", "reset-offsets", "workers", "--topic", "jobs", "--to-earliest"]);
    assert_eq!(dry, "GROUP    TOPIC  PARTITION  OLD-OFFSET  NEW-OFFSET\nworkers  jobs   0          5           0\n");
    assert_eq!(lag(&b), (5, 5, 0), "a dry run commits nothing");
    ok(&b, &["group", "reset-offsets", "workers", "--topic", "jobs", "--to-earliest", "--execute"]);
    assert_eq!(lag(&b), (0, 5, 5));
    ok(&b, &["group", "reset-offsets", "workers", "--topic", "jobs:0", "--shift-by", "2", "--execute"]);
    assert_eq!(lag(&b), (2, 5, 3));
    ok(&b, &["group", "reset-offsets", "workers", "--all-topics", "--shift-by", "-1", "--execute"]);
    assert_eq!(lag(&b), (1, 5, 4));
    ok(&b, &["group", "reset-offsets", "workers", "--topic", "jobs", "--to-offset", "99", "--execute"]);
    assert_eq!(lag(&b), (5, 5, 0), "kept within the log");
    let r = json(&b, &["group", "reset-offsets", "workers", "--topic", "jobs", "--to-offset", "4", "--execute"]);
    assert_eq!(r["offsets"][0]["old_offset"], 5);
    assert_eq!(r["offsets"][0]["new_offset"], 4);
    assert_eq!(ok(&b, &["consume", "jobs", "-g", "workers"]), "j4\n");
    ok(
        &b,
        &["group", "reset-offsets", "workers", "--topic", "jobs", "--to-datetime", "2000-01-01T00:00:00Z", "--execute"],
    );
    assert_eq!(lag(&b), (0, 5, 5));
    ok(&b, &["group", "reset-offsets", "workers", "--topic", "jobs", "--to-latest", "--execute"]);
    assert_eq!(lag(&b), (5, 5, 0));
    let o = fails(&b, &["group", "reset-offsets", "workers", "--topic", "jobs"], b"");
    assert_eq!(o.code, 2, "a strategy is required: {}", o.stderr);

    assert_eq!(ok(&b, &["group", "delete", "workers"]), "deleted group workers\n");
    let o = fails(&b, &["group", "describe", "workers"], b"");
    assert!(o.stderr.contains("GROUP_ID_NOT_FOUND"), "{}", o.stderr);
}

#[test]
fn configs_and_cluster() {
    let b = Broker::start();
    ok(&b, &["topic", "create", "cfg", "-p", "1"]);
    assert_eq!(
        ok(&b, &["config", "alter", "--topic", "cfg", "--set", "retention.ms=777", "--set", "cleanup.policy=compact"]),
        "altered 2 config(s) of topic \"cfg\"\n"
    );
    let changed = json(&b, &["config", "describe", "--topic", "cfg", "--changed"]);
    let pairs: Vec<(&str, &str, &str)> = changed
        .as_array()
        .expect("configs")
        .iter()
        .map(|c| {
            (c["name"].as_str().expect("name"), c["value"].as_str().expect("value"), c["source"].as_str().expect("s"))
        })
        .collect();
    assert_eq!(
        pairs,
        vec![("cleanup.policy", "compact", "DYNAMIC_TOPIC_CONFIG"), ("retention.ms", "777", "DYNAMIC_TOPIC_CONFIG")]
    );
    let table = ok(&b, &["config", "describe", "--topic", "cfg"]);
    assert!(table.contains("retention.ms") && table.contains("segment.bytes"), "{table}");
    ok(&b, &["config", "alter", "--topic", "cfg", "--delete", "cleanup.policy"]);
    let changed = json(&b, &["config", "describe", "--topic", "cfg", "--changed"]);
    assert_eq!(changed.as_array().map(Vec::len), Some(1), "{changed}");
    let broker = json(&b, &["config", "describe", "--broker", "0"]);
    assert!(broker.as_array().expect("configs").iter().any(|c| c["name"] == "log.retention.ms"), "{broker}");
    let o = fails(&b, &["config", "describe", "--broker", "7"], b"");
    assert!(o.stderr.contains("BROKER_NOT_AVAILABLE") && o.stderr.contains("broker 7"), "{}", o.stderr);
    let o = fails(&b, &["config", "alter", "--topic", "cfg", "--set", "no.such.config=1"], b"");
    assert!(o.stderr.contains("INVALID_CONFIG") || o.stderr.contains("INVALID_REQUEST"), "{}", o.stderr);

    let info = json(&b, &["cluster", "info"]);
    let port: u16 = b.bootstrap.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
    assert_eq!(info["brokers"], serde_json::json!([{"node_id": 0, "host": "127.0.0.1", "port": port, "rack": null}]));
    assert_eq!(info["controller_id"], 0);
    assert!(info["cluster_id"].is_string());
    assert!(ok(&b, &["cluster", "info"]).contains(&format!("0   127.0.0.1  {port}  -     yes")));
}

#[test]
fn errors_are_clear() {
    let b = Broker::start();
    ok(&b, &["topic", "create", "t", "-p", "1"]);
    for args in [&["consume", "missing"][..], &["produce", "missing"], &["topic", "describe", "missing"]] {
        let o = fails(&b, args, b"x\n");
        assert_eq!(o.code, 1);
        assert!(o.stderr.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{args:?}: {}", o.stderr);
        assert!(o.stderr.contains("hint: "), "{args:?}: {}", o.stderr);
    }
    let o = fails(&b, &["consume", "t", "-p", "7"], b"");
    assert!(o.stderr.contains("no partition 7"), "{}", o.stderr);
    // Bad arguments: clap's exit code 2, before any connection.
    for args in [&["produce"][..], &["produce", "t", "--acks", "7"], &["consume", "t", "--output", "xml"], &["topic"]] {
        let o = fails(&b, args, b"");
        assert_eq!(o.code, 2, "{args:?}: {}", o.stderr);
    }
    let o = fails(&b, &["consume", "t", "--offset", "middle"], b"");
    assert!(o.stderr.contains("--offset must be"), "{}", o.stderr);
    let o = fails(&b, &["consume", "t", "-F", "%q"], b"");
    assert!(o.stderr.contains("unknown placeholder %q"), "{}", o.stderr);
    let o = fails(&b, &["produce", "t", "-K", ":"], b"a:1\nno-separator\n");
    assert!(o.stderr.contains("line 2 has no key separator"), "{}", o.stderr);
    let o = fails(&b, &["consume", "t", "--timestamp", "last tuesday"], b"");
    assert!(o.stderr.contains("bad date-time"), "{}", o.stderr);

    // Nothing listens: a quick, clear failure.
    let port = common::free_port();
    let started = Instant::now();
    let o = odradek(&format!("127.0.0.1:{port}"), &["topic", "list"], b"");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains(&format!("cannot connect to 127.0.0.1:{port}")), "{}", o.stderr);
    assert!(o.stderr.contains("hint: check --bootstrap-server"), "{}", o.stderr);
    let o = odradek("no-such-host.invalid:9092", &["topic", "list"], b"");
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("cannot connect to no-such-host.invalid:9092"), "{}", o.stderr);
}
