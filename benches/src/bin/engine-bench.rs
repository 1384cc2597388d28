//! Storage engine benchmark. Measures the disk with fio and the engine on the same directory in
//! the same run, and reports every engine figure as a ratio to its fio reference:
//!
//! - append throughput, 1 MiB / 64 KiB / 16 KiB batches, durability `never` and `always`
//!   (vs fio O_DIRECT sequential write, 1 MiB blocks, 4 in flight);
//! - append latency for 16 KiB batches under `always` at a fixed offered rate, corrected for
//!   coordinated omission (latency counts from each append's scheduled start), next to fio's
//!   write + fdatasync latency at depth 1;
//! - read throughput from the tail cache and from disk (vs fio O_DIRECT sequential read);
//! - one log-cleaner pass over a compacted log (vs fio's time to read and write the same bytes).
//!
//! Usage: `cargo run --release -p odradek-benches --bin engine-bench -- [--dir DIR] [--mib N]
//! [--json FILE]`. Needs `fio` (Debian: `apt-get install fio`). The disk is shared with other
//! tenants and drifts, so each append configuration runs three times, each right after its own
//! fio reference, and the median ratio is reported.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use engine::io::dma::DmaStorage;
use engine::records::{BatchBuilder, Record};
use engine::{Compression, Durability, LogConfig, PartitionLog, ValidatedBatches};
use glommio::{LocalExecutorBuilder, Placement};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

struct Args {
    dir: PathBuf,
    mib: u64,
    json: Option<PathBuf>,
    latency_rate: u64,
    latency_secs: u64,
    appenders: usize,
}

fn parse_args() -> Args {
    let mut a = Args {
        dir: PathBuf::from("bench-data"),
        mib: 2048,
        json: None,
        latency_rate: 2000,
        latency_secs: 5,
        appenders: 16,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| die(&format!("{k} needs a value")));
        match k.as_str() {
            "--dir" => a.dir = PathBuf::from(v()),
            "--mib" => a.mib = v().parse().unwrap_or_else(|_| die("--mib takes a number")),
            "--json" => a.json = Some(PathBuf::from(v())),
            "--rate" => a.latency_rate = v().parse().unwrap_or_else(|_| die("--rate takes a number")),
            "--latency-secs" => a.latency_secs = v().parse().unwrap_or_else(|_| die("--latency-secs takes a number")),
            "--appenders" => a.appenders = v().parse().unwrap_or_else(|_| die("--appenders takes a number")),
            "-h" | "--help" => {
                println!("engine-bench [--dir DIR] [--mib N] [--json FILE] [--rate APPENDS_PER_S] [--latency-secs S] [--appenders N]");
                std::process::exit(0);
            }
            other => die(&format!("unknown argument {other}")),
        }
    }
    a
}

fn die(msg: &str) -> ! {
    eprintln!("engine-bench: {msg}");
    std::process::exit(2)
}

// ---- fio ---------------------------------------------------------------------------------------

fn fio(dir: &Path, name: &str, extra: &[&str]) -> Value {
    let file = dir.join("fio.dat");
    let out = Command::new("fio")
        .arg(format!("--name={name}"))
        .arg(format!("--filename={}", file.display()))
        .args(["--direct=1", "--output-format=json"])
        .args(extra)
        .output()
        .unwrap_or_else(|e| die(&format!("cannot run fio ({e}); install it: apt-get install fio")));
    if !out.status.success() {
        die(&format!("fio failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    // fio may print warnings before the JSON.
    let text = String::from_utf8_lossy(&out.stdout);
    let start = text.find('{').unwrap_or(0);
    serde_json::from_str(&text[start..]).unwrap_or_else(|e| die(&format!("fio output not JSON: {e}")))
}

fn fio_bw(v: &Value, dir: &str) -> f64 {
    v["jobs"][0][dir]["bw_bytes"].as_f64().unwrap_or(0.0)
}

fn fio_pct(v: &Value, path: &[&str], pct: &str) -> f64 {
    let mut x = &v["jobs"][0];
    for p in path {
        x = &x[*p];
    }
    x["percentile"][pct].as_f64().unwrap_or(f64::NAN) / 1000.0
}

// ---- engine ------------------------------------------------------------------------------------

fn make_batches(batch_bytes: usize, total_bytes: u64) -> Vec<ValidatedBatches> {
    // Records of 1 KiB, like a typical telemetry payload, packed into batches of the given size.
    let per = (batch_bytes / 1040).max(1);
    let mut b = BatchBuilder::new(Compression::None, 1_700_000_000_000);
    for i in 0..per {
        b.push(
            Record::new(Some(format!("key-{i}").into_bytes()), Some(vec![(i % 251) as u8; 1000]))
                .with_timestamp(1_700_000_000_000),
        );
    }
    let template = b.build();
    let n = (total_bytes / template.len() as u64).max(1);
    (0..n)
        .map(|_| {
            ValidatedBatches::new(BytesMut::from(&template[..]), usize::MAX).unwrap_or_else(|e| die(&e.to_string()))
        })
        .collect()
}

fn log_config(durability: Durability) -> LogConfig {
    let mut c = LogConfig { durability, segment_bytes: 1 << 30, ..LogConfig::default() };
    // Diagnostics: override the write-path limits without rebuilding.
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    if let Some(v) = env("ENGINE_BENCH_WRITE_BUFFER_MIB") {
        c.write_buffer_bytes_max = v << 20;
    }
    if let Some(v) = env("ENGINE_BENCH_WRITE_BEHIND_MIB") {
        c.write_behind_bytes = v << 20;
    }
    if let Some(v) = env("ENGINE_BENCH_SEGMENT_MIB") {
        c.segment_bytes = v << 20;
    }
    if let Some(v) = env("ENGINE_BENCH_IN_FLIGHT") {
        c.writes_in_flight_max = v as usize;
    }
    c
}

fn on_core<T: Send + 'static>(
    dir: &Path,
    f: impl FnOnce(PathBuf) -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> + Send + 'static,
) -> T {
    let dir = dir.to_path_buf();
    LocalExecutorBuilder::new(Placement::Fixed(0))
        .io_memory(64 << 20)
        .spawn(move || async move {
            DmaStorage::guard_iopoll_probe(&dir).await.unwrap_or_else(|e| die(&e.to_string()));
            f(dir).await
        })
        .unwrap_or_else(|e| die(&e.to_string()))
        .join()
        .unwrap_or_else(|e| die(&e.to_string()))
}

/// Appends all `batches` with `appenders` concurrent tasks; returns bytes/s including the final
/// sync (everything on the device at the end).
fn append_throughput(dir: &Path, durability: Durability, batches: Vec<ValidatedBatches>, appenders: usize) -> f64 {
    let total: u64 = batches.iter().map(|b| b.len_bytes() as u64).sum();
    let log_dir = dir.join("append-0");
    let _ = std::fs::remove_dir_all(&log_dir);
    let secs = on_core(dir, move |_| {
        Box::pin(async move {
            let (log, _) = PartitionLog::open(DmaStorage, &log_dir, log_config(durability), 0)
                .await
                .unwrap_or_else(|e| die(&e.to_string()));
            glommio::spawn_local(log.clone().run_write_behind()).detach();
            let queue = Rc::new(std::cell::RefCell::new(batches));
            let start = Instant::now();
            let tasks: Vec<_> = (0..appenders)
                .map(|_| {
                    let log = log.clone();
                    let queue = queue.clone();
                    glommio::spawn_local(async move {
                        loop {
                            let next = queue.borrow_mut().pop();
                            let Some(b) = next else { break };
                            log.append(b, 0, 0).await.unwrap_or_else(|e| die(&e.to_string()));
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await;
            }
            log.sync().await.unwrap_or_else(|e| die(&e.to_string()));
            let secs = start.elapsed().as_secs_f64();
            eprintln!("  {:?} in {secs:.2} s", log.stats());
            log.close().await.unwrap_or_else(|e| die(&e.to_string()));
            secs
        })
    });
    let _ = std::fs::remove_dir_all(dir.join("append-0"));
    total as f64 / secs
}

/// 16 KiB appends under `always` at a fixed rate; latency from each append's scheduled start.
fn append_latency(dir: &Path, rate: u64, secs: u64) -> Histogram<u64> {
    let batches = make_batches(16 * 1024, 16 * 1024 * rate * secs);
    let log_dir = dir.join("latency-0");
    let _ = std::fs::remove_dir_all(&log_dir);
    on_core(dir, move |_| {
        Box::pin(async move {
            let (log, _) = PartitionLog::open(DmaStorage, &log_dir, log_config(Durability::Always), 0)
                .await
                .unwrap_or_else(|e| die(&e.to_string()));
            glommio::spawn_local(log.clone().run_write_behind()).detach();
            let hist = Rc::new(std::cell::RefCell::new(
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|e| die(&e.to_string())),
            ));
            let interval = Duration::from_nanos(1_000_000_000 / rate.max(1));
            let start = Instant::now();
            let mut tasks = Vec::with_capacity(batches.len());
            for (i, b) in batches.into_iter().enumerate() {
                let scheduled = start + interval * i as u32;
                let now = Instant::now();
                if scheduled > now {
                    glommio::timer::sleep(scheduled - now).await;
                }
                let log = log.clone();
                let hist = hist.clone();
                tasks.push(glommio::spawn_local(async move {
                    log.append(b, 0, 0).await.unwrap_or_else(|e| die(&e.to_string()));
                    let us = scheduled.elapsed().as_micros() as u64;
                    let _ = hist.borrow_mut().record(us.max(1));
                }));
            }
            for t in tasks {
                t.await;
            }
            log.close().await.unwrap_or_else(|e| die(&e.to_string()));
            let h = hist.borrow().clone();
            h
        })
    })
}

/// Writes `mib` MiB, then measures reads: from the tail cache (the last batches, repeatedly), and
/// from disk after a reopen (cold: nothing cached), with 1 and 4 concurrent readers.
fn read_throughput(dir: &Path, mib: u64) -> (f64, f64, f64) {
    let log_dir = dir.join("read-0");
    let _ = std::fs::remove_dir_all(&log_dir);
    let batches = make_batches(1 << 20, mib << 20);
    let ld = log_dir.clone();
    let cache_bps = on_core(dir, move |_| {
        Box::pin(async move {
            let (log, _) = PartitionLog::open(DmaStorage, &ld, log_config(Durability::Never), 0)
                .await
                .unwrap_or_else(|e| die(&e.to_string()));
            glommio::spawn_local(log.clone().run_write_behind()).detach();
            for b in batches {
                log.append(b, 0, 0).await.unwrap_or_else(|e| die(&e.to_string()));
            }
            log.sync().await.unwrap_or_else(|e| die(&e.to_string()));
            // The tail cache holds the last ~16 MiB: read them over and over.
            let leo = log.log_end_offset();
            let tail_start = (leo - 8 * 1000).max(0);
            let start = Instant::now();
            let mut bytes = 0u64;
            let mut offset = tail_start;
            let mut sink = vec![0u8; 2 << 20];
            while start.elapsed() < Duration::from_secs(2) {
                let r = log.read(offset, 1 << 20, None).await.unwrap_or_else(|e| die(&e.to_string()));
                // Copy out, as a response going into a socket buffer would.
                let mut at = 0;
                for c in &r.chunks {
                    let n = c.len().min(sink.len() - at);
                    sink[at..at + n].copy_from_slice(&c[..n]);
                    at += n;
                }
                bytes += r.bytes() as u64;
                offset += 1000;
                if offset >= leo {
                    offset = tail_start;
                }
            }
            let bps = bytes as f64 / start.elapsed().as_secs_f64();
            log.close().await.unwrap_or_else(|e| die(&e.to_string()));
            bps
        })
    });
    let mut disk = Vec::new();
    for readers in [1usize, 4] {
        let ld = log_dir.clone();
        disk.push(on_core(dir, move |_| {
            Box::pin(async move {
                let (log, _) = PartitionLog::open(DmaStorage, &ld, log_config(Durability::Never), 0)
                    .await
                    .unwrap_or_else(|e| die(&e.to_string()));
                let leo = log.log_end_offset();
                let start = Instant::now();
                let per = leo / readers as i64;
                let tasks: Vec<_> = (0..readers)
                    .map(|r| {
                        let log = log.clone();
                        glommio::spawn_local(async move {
                            let (mut offset, end) = (per * r as i64, per * (r as i64 + 1));
                            let mut bytes = 0u64;
                            while offset < end {
                                let res = log.read(offset, 1 << 20, None).await.unwrap_or_else(|e| die(&e.to_string()));
                                bytes += res.bytes() as u64;
                                let all = res.concat();
                                let mut last = offset;
                                let mut rest: &[u8] = &all;
                                while let Ok(v) = engine::BatchView::parse(rest, usize::MAX) {
                                    last = v.last_offset();
                                    rest = &rest[v.size()..];
                                }
                                offset = last + 1;
                            }
                            bytes
                        })
                    })
                    .collect();
                let mut bytes = 0;
                for t in tasks {
                    bytes += t.await;
                }
                bytes as f64 / start.elapsed().as_secs_f64()
            })
        }));
    }
    let _ = std::fs::remove_dir_all(&log_dir);
    (cache_bps, disk[0], disk[1])
}

/// What one cleaning pass measured: seconds, log bytes before and after, bytes read and written.
struct CleanRun {
    secs: f64,
    before: u64,
    after: u64,
    read: u64,
    written: u64,
}

/// Writes `mib` of 1 KiB records over `keys` keys (each key updated about `mib << 10 / keys`
/// times, 64 KiB batches, 128 MiB segments), rolls, and times one cleaning pass over it all,
/// unthrottled, swap and syncs included.
fn cleaner_pass(dir: &Path, mib: u64, keys: u64) -> CleanRun {
    let log_dir = dir.join("clean-0");
    let _ = std::fs::remove_dir_all(&log_dir);
    let per = 63u64;
    let batches: Vec<ValidatedBatches> = (0..(mib << 20) / (per * 1040))
        .map(|n| {
            let mut b = BatchBuilder::new(Compression::None, 1_700_000_000_000);
            for i in 0..per {
                let key = format!("key-{:08}", (n * per + i) % keys).into_bytes();
                b.push(Record::new(Some(key), Some(vec![(i % 251) as u8; 1000])).with_timestamp(1_700_000_000_000));
            }
            ValidatedBatches::new(b.build(), usize::MAX).unwrap_or_else(|e| die(&e.to_string()))
        })
        .collect();
    let ld = log_dir.clone();
    let run = on_core(dir, move |_| {
        Box::pin(async move {
            let config = LogConfig { segment_bytes: 128 << 20, ..log_config(Durability::Never) };
            let (log, _) = PartitionLog::open(DmaStorage, &ld, config, 0).await.unwrap_or_else(|e| die(&e.to_string()));
            glommio::spawn_local(log.clone().run_write_behind()).detach();
            for b in batches {
                log.append(b, 0, 0).await.unwrap_or_else(|e| die(&e.to_string()));
            }
            log.sync().await.unwrap_or_else(|e| die(&e.to_string()));
            log.roll_now(1_700_000_000_000).await.unwrap_or_else(|e| die(&e.to_string()));
            let before = log.size_bytes();
            let cfg = engine::log::CleanerConfig { min_cleanable_dirty_ratio: 0.0, ..Default::default() };
            let start = Instant::now();
            let stats = log
                .clean(1_700_000_000_000, &cfg, i64::MAX, &[], |_| async {})
                .await
                .unwrap_or_else(|e| die(&e.to_string()))
                .unwrap_or_else(|| die("no pass was due"));
            let secs = start.elapsed().as_secs_f64();
            eprintln!("  {stats:?} in {secs:.2} s");
            let after = log.size_bytes();
            log.close().await.unwrap_or_else(|e| die(&e.to_string()));
            CleanRun { secs, before, after, read: stats.bytes_read, written: stats.bytes_written }
        })
    });
    let _ = std::fs::remove_dir_all(&log_dir);
    run
}

/// The cleaner against fio on the same directory: fio's time for the same bytes read and
/// written (sequential, 1 MiB blocks, 4 in flight) over the pass's time. Rows for the report.
fn cleaner_throughput(dir: &Path, mib: u64) -> Vec<(String, String, String, String)> {
    let keys = 20_000;
    eprintln!("cleaner: {mib} MiB over {keys} keys ...");
    let size = format!("--size={mib}M");
    let fio_r = fio(dir, "r1m", &["--rw=read", "--bs=1m", "--ioengine=io_uring", "--iodepth=4", &size]);
    let _ = std::fs::remove_file(dir.join("fio.dat"));
    let (r, w) = (fio_bw(&fio_r, "read"), fio_write_1m(dir, mib, "native"));
    let c = cleaner_pass(dir, mib, keys);
    let io = (c.read + c.written) as f64;
    let fio_secs = c.read as f64 / r + c.written as f64 / w;
    vec![
        (
            format!("cleaner pass, {mib} MiB of 1 KiB records over {keys} keys (log MB/s cleaned)"),
            format!("{:.0} MB/s", c.before as f64 / c.secs / 1e6),
            format!("{} -> {} MiB in {:.2} s", c.before >> 20, c.after >> 20, c.secs),
            String::new(),
        ),
        (
            "cleaner I/O (read + written) vs fio doing the same bytes".into(),
            format!("{:.0} MB/s", io / c.secs / 1e6),
            format!("fio 1 MiB QD4 read {} + write {}: {:.0} MB/s", gbs(r), gbs(w), io / fio_secs / 1e6),
            format!("{:.0}%", 100.0 * fio_secs / c.secs),
        ),
    ]
}

fn gbs(bps: f64) -> String {
    format!("{:.2} GB/s", bps / 1e9)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn fio_write_1m(dir: &Path, mib: u64, fallocate: &str) -> f64 {
    let size = format!("--size={mib}M");
    let fa = format!("--fallocate={fallocate}");
    let v =
        fio(dir, "w1m", &["--rw=write", "--bs=1m", "--ioengine=io_uring", "--iodepth=4", &size, "--end_fsync=1", &fa]);
    let _ = std::fs::remove_file(dir.join("fio.dat"));
    fio_bw(&v, "write")
}

fn main() {
    let args = parse_args();
    std::fs::create_dir_all(&args.dir).unwrap_or_else(|e| die(&format!("{}: {e}", args.dir.display())));
    if let Ok(only) = std::env::var("ENGINE_BENCH_ONLY_APPEND") {
        // Diagnostic: one append configuration, e.g. ENGINE_BENCH_ONLY_APPEND=16384,always
        let (b, d) = only.split_once(',').unwrap_or_else(|| die("ENGINE_BENCH_ONLY_APPEND=BYTES,never|always"));
        let bytes: usize = b.parse().unwrap_or_else(|_| die("bad size"));
        let d = if d == "always" { Durability::Always } else { Durability::Never };
        let bps = append_throughput(&args.dir, d, make_batches(bytes, args.mib << 20), args.appenders);
        println!("{}", gbs(bps));
        return;
    }
    if std::env::var_os("ENGINE_BENCH_ONLY_CLEANER").is_some() {
        for (a, b, c, d) in cleaner_throughput(&args.dir, args.mib.min(2048)) {
            println!("| {a} | {b} | {c} | {d} |");
        }
        return;
    }
    let rounds = 3;
    let mut report = Vec::<(String, String, String, String)>::new();
    let mut out = json!({ "mib": args.mib, "appenders": args.appenders, "rounds": rounds });

    // Append throughput: the disk is shared and drifts, so each configuration runs `rounds`
    // times, each right after its own fio reference, and the median ratio is reported.
    let mut fio_all = Vec::new();
    for (label, bytes) in [("1 MiB", 1usize << 20), ("64 KiB", 64 << 10), ("16 KiB", 16 << 10)] {
        for (dname, d) in [("never", Durability::Never), ("always", Durability::Always)] {
            let mut ratios = Vec::new();
            let mut engine_bps = Vec::new();
            let mut refs = Vec::new();
            for round in 0..rounds {
                eprintln!("append {label} {dname} round {round} ...");
                let f = fio_write_1m(&args.dir, args.mib, "native");
                let batches = make_batches(bytes, args.mib << 20);
                let e = append_throughput(&args.dir, d, batches, args.appenders);
                ratios.push(e / f);
                engine_bps.push(e);
                refs.push(f);
                fio_all.push(f);
            }
            let (e, f, r) = (median(engine_bps), median(refs), median(ratios));
            report.push((
                format!("append {label} batches, durability {dname}, {} appenders", args.appenders),
                gbs(e),
                format!("fio 1 MiB QD4 write {}", gbs(f)),
                format!("{:.0}%", 100.0 * r),
            ));
            out[format!("append_{bytes}_{dname}")] = json!({ "engine_bps": e, "fio_bps": f, "ratio": r });
        }
    }
    let f_none = fio_write_1m(&args.dir, args.mib, "none");
    let f_native = fio_write_1m(&args.dir, args.mib, "native");
    report.push((
        "(reference) fio 1 MiB QD4 write into a file it grows (fallocate=none), as a log does".into(),
        gbs(f_none),
        format!("fio preallocated {}", gbs(f_native)),
        format!("{:.0}%", 100.0 * f_none / f_native),
    ));
    out["fio_write_1m_fallocate_none"] = json!(f_none);

    eprintln!("append latency ...");
    let fio_sync = fio(
        &args.dir,
        "sync16k",
        &[
            "--rw=write",
            "--bs=16k",
            "--ioengine=psync",
            "--fdatasync=1",
            "--size=1G",
            &format!("--runtime={}", args.latency_secs),
            "--time_based",
        ],
    );
    let _ = std::fs::remove_file(args.dir.join("fio.dat"));
    let h = append_latency(&args.dir, args.latency_rate, args.latency_secs);
    let fio_w = |p: &str| fio_pct(&fio_sync, &["write", "clat_ns"], p) + fio_pct(&fio_sync, &["sync", "lat_ns"], p);
    for (name, q, fp) in [("p50", 0.5, "50.000000"), ("p99", 0.99, "99.000000"), ("p99.9", 0.999, "99.900000")] {
        let us = h.value_at_quantile(q);
        let f = fio_w(fp);
        report.push((
            format!("append latency {name}, 16 KiB, always, {} appends/s", args.latency_rate),
            format!("{us} µs"),
            format!("fio 16 KiB write+fdatasync {name} {f:.0} µs"),
            format!("{:.2}x", us as f64 / f),
        ));
        out[format!("latency_{name}_us")] = json!(us);
        out[format!("fio_sync_{name}_us")] = json!(f);
    }
    report.push(("append latency max".into(), format!("{} µs", h.max()), String::new(), String::new()));

    eprintln!("reads ...");
    let size = format!("--size={}M", args.mib);
    let fio_r1m = fio(&args.dir, "r1m", &["--rw=read", "--bs=1m", "--ioengine=io_uring", "--iodepth=4", &size]);
    let _ = std::fs::remove_file(args.dir.join("fio.dat"));
    let r1m = fio_bw(&fio_r1m, "read");
    let (cache, disk1, disk4) = read_throughput(&args.dir, args.mib.min(2048));
    report.push((
        "read from tail cache (copied out, as into a socket buffer)".into(),
        gbs(cache),
        format!("fio 1 MiB QD4 read {}", gbs(r1m)),
        format!("{:.0}%", 100.0 * cache / r1m),
    ));
    report.push((
        "read from disk, 1 reader".into(),
        gbs(disk1),
        format!("fio 1 MiB QD4 read {}", gbs(r1m)),
        format!("{:.0}%", 100.0 * disk1 / r1m),
    ));
    report.push((
        "read from disk, 4 readers".into(),
        gbs(disk4),
        format!("fio 1 MiB QD4 read {}", gbs(r1m)),
        format!("{:.0}%", 100.0 * disk4 / r1m),
    ));
    out["fio_read_1m_qd4"] = json!(r1m);
    out["read_cache"] = json!(cache);
    out["read_disk_1"] = json!(disk1);
    out["read_disk_4"] = json!(disk4);
    out["fio_write_all_rounds"] = json!(fio_all);
    report.extend(cleaner_throughput(&args.dir, args.mib.min(2048)));

    println!("| measure | engine | reference (same run) | ratio |");
    println!("|---|---|---|---|");
    for (a, b, c, d) in &report {
        println!("| {a} | {b} | {c} | {d} |");
    }
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_string_pretty(&out).unwrap_or_default())
            .unwrap_or_else(|e| die(&e.to_string()));
    }
}
