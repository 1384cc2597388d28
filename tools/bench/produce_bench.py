#!/usr/bin/env python3
"""Produce benchmark: 1 KiB records to 8 partitions with librdkafka (confluent-kafka) at its
usual batching (linger.ms=5), acks=1 and acks=all, against an Odradek broker this script
starts (release build) on a temporary data directory on the same disk as the fio reference.

Reports, per acks setting: throughput at saturation (records/s, MB/s) and produce latency
percentiles at a fixed offered rate, measured from each record's *intended* send time (so a
stalled producer does not hide queueing: coordinated omission is corrected). Also measures the
machine's references in the same run: fio sequential O_DIRECT write (1 MiB, 4 in flight) and,
if iperf3 is installed, loopback TCP bandwidth.

    cargo build --release -p odradek
    target/interop-venv/bin/python tools/bench/produce_bench.py [--records 300000] [--rate 20000]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "interop"))
from conftest import ROOT, Broker  # noqa: E402

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

RECORD = b"x" * 1024


def fio_reference(dir_):
    if not shutil.which("fio"):
        return None
    path = os.path.join(dir_, "fio.dat")
    out = subprocess.run(
        ["fio", "--name=ref", f"--filename={path}", "--rw=write", "--bs=1m", "--direct=1",
         "--ioengine=io_uring", "--iodepth=4", "--size=2G", "--end_fsync=1", "--output-format=json"],
        capture_output=True, check=True, text=True).stdout
    os.remove(path)
    return json.loads(out)["jobs"][0]["write"]["bw_bytes"]


def iperf_reference():
    if not shutil.which("iperf3"):
        return None
    server = subprocess.Popen(["iperf3", "-s", "-1", "-p", "5299"], stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", "5299", "-t", "5", "-J"],
                             capture_output=True, check=True, text=True).stdout
        return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 8
    finally:
        server.wait(timeout=10)


def producer(b, acks):
    return Producer({"bootstrap.servers": b.bootstrap, "acks": acks, "linger.ms": 5,
                     "enable.idempotence": False, "queue.buffering.max.messages": 1_000_000,
                     "queue.buffering.max.kbytes": 1_048_576})


def saturate(b, topic, acks, n):
    p = producer(b, acks)
    done = [0]

    def cb(err, _msg):
        assert err is None, err
        done[0] += 1

    t0 = time.perf_counter()
    for i in range(n):
        while True:
            try:
                p.produce(topic, RECORD, key=str(i).encode(), partition=i % 8, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.001)
        if i % 1000 == 0:
            p.poll(0)
    p.flush(120)
    elapsed = time.perf_counter() - t0
    assert done[0] == n
    return n / elapsed, n * len(RECORD) / elapsed


def fixed_rate(b, topic, acks, rate, seconds):
    p = producer(b, acks)
    lat = []
    t0 = time.perf_counter()
    n = int(rate * seconds)
    for i in range(n):
        intended = t0 + i / rate
        now = time.perf_counter()
        if now < intended:
            time.sleep(intended - now)

        def cb(err, _msg, intended=intended):
            assert err is None, err
            lat.append(time.perf_counter() - intended)

        p.produce(topic, RECORD, key=str(i).encode(), partition=i % 8, on_delivery=cb)
        p.poll(0)
    p.flush(60)
    lat.sort()

    def pct(q):
        return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000

    return {q: pct(q) for q in (0.5, 0.9, 0.99, 0.999, 0.9999)} | {"max": lat[-1] * 1000}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--rate", type=int, default=20_000, help="records/s for the latency runs")
    ap.add_argument("--seconds", type=float, default=10)
    args = ap.parse_args()
    os.environ.setdefault("ODRADEK_BIN", os.path.join(ROOT, "target", "release", "odradek"))
    import conftest
    conftest.BIN = os.environ["ODRADEK_BIN"]
    work = tempfile.mkdtemp(prefix="odradek-bench-", dir=os.environ.get("BENCH_DIR", "/var/tmp"))
    os.makedirs(os.path.join(work, "data"))
    b = Broker(data_dir=os.path.join(work, "data")).start()
    try:
        fio = fio_reference(work)
        net = iperf_reference()
        a = AdminClient({"bootstrap.servers": b.bootstrap})
        for acks in ("1", "all"):
            topic = f"bench-acks-{acks}"
            a.create_topics([NewTopic(topic, num_partitions=8, replication_factor=1)])[topic].result(10)
            rps, bps = saturate(b, topic, acks, args.records)
            lat = fixed_rate(b, topic, acks, args.rate, args.seconds)
            line = (f"acks={acks}: {rps:,.0f} records/s, {bps / 1e6:,.1f} MB/s"
                    + (f" ({bps / fio:.1%} of fio {fio / 1e9:.2f} GB/s)" if fio else "")
                    + (f" ({bps / net:.1%} of loopback {net / 1e9:.2f} GB/s)" if net else ""))
            print(line)
            print(f"  latency at {args.rate:,} records/s (ms): "
                  + ", ".join(f"p{q * 100:g}={v:.2f}" if q != "max" else f"max={v:.2f}" for q, v in lat.items()))
    finally:
        b.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
