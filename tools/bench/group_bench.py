#!/usr/bin/env python3
"""Consumer-group benchmark with librdkafka (confluent-kafka) against an Odradek broker this
script starts (release build) on a temporary data directory.

Measures, each next to a reference taken in the same run:
- time from subscribe() to the first record, for 1 and for 10 consumers in one group
  (classic and KIP-848 `group.protocol=consumer`); reference: the same consumers with
  assign() (no group at all), so the ratio is what group membership costs;
- rebalance time when one of 10 members leaves (close()): from close() until the remaining
  members own every partition (classic eager, classic cooperative-sticky, KIP-848);
- committed offsets per second: synchronous OffsetCommit of one partition in a loop;
  reference: synchronous acks=all produce of one record in a loop (the same durable append
  path on the broker).

    cargo build --release -p odradek
    target/interop-venv/bin/python tools/bench/group_bench.py [--rounds 3]
"""

import argparse
import json
import os
import statistics
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "interop"))
from conftest import ROOT, Broker  # noqa: E402

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

PARTITIONS = 10


def consumer_conf(b, group, protocol, strategy="range"):
    conf = {"bootstrap.servers": b.bootstrap, "auto.offset.reset": "earliest", "enable.auto.commit": False,
            "fetch.wait.max.ms": 50}
    if os.environ.get("GROUP_BENCH_DEBUG"):
        conf["debug"] = os.environ["GROUP_BENCH_DEBUG"]
    if group:
        conf["group.id"] = group
        if protocol == "consumer":
            conf["group.protocol"] = "consumer"
        else:
            conf.update({"partition.assignment.strategy": strategy, "session.timeout.ms": 10000,
                         "heartbeat.interval.ms": 500})
    else:
        conf["group.id"] = "unused-" + uuid.uuid4().hex[:8]
    return conf


def first_record(b, topic, n, mode):
    """Seconds from subscribe/assign to the first record, per consumer (n in parallel)."""
    group = "g-" + uuid.uuid4().hex[:10]
    consumers = [Consumer(consumer_conf(b, group if mode != "assign" else None, mode)) for _ in range(n)]
    # Connect and load metadata first, so the figure is the group's cost, not the TCP setup's.
    for c in consumers:
        c.list_topics(topic, timeout=10)
    times = [None] * n
    start = threading.Barrier(n)

    def run(i, c):
        start.wait()
        t0 = time.perf_counter()
        if mode == "assign":
            # No offset: like a group member, the consumer looks up the committed offset and
            # falls back to auto.offset.reset, so only membership differs.
            c.assign([TopicPartition(topic, p) for p in range(i, PARTITIONS, n)])
        else:
            c.subscribe([topic])
        # Every consumer keeps polling until all have a record: a member that stopped polling
        # would hold up the group's next rebalance (as with Kafka, up to max.poll.interval.ms).
        while time.perf_counter() - t0 < 30 and not all(t is not None for t in times):
            m = c.poll(0.01)
            if m is not None and m.error() is None and times[i] is None:
                times[i] = time.perf_counter() - t0

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(consumers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stuck = [(i, c.memberid(), c.assignment()) for i, c in enumerate(consumers) if times[i] is None]
    for c in consumers:
        c.close()
    assert not stuck, f"{mode}: consumers without a record after 30 s: {stuck}"
    return times


def rebalance_after_leave(b, topic, n, mode, strategy="range"):
    """Seconds from one member's close() until the other n-1 own all partitions."""
    group = "g-" + uuid.uuid4().hex[:10]
    protocol = "consumer" if mode == "kip848" else "classic"
    consumers = [Consumer(consumer_conf(b, group, protocol, strategy)) for _ in range(n)]
    for c in consumers:
        c.subscribe([topic])
    stop = threading.Event()
    # Each consumer is only ever touched by its own thread (librdkafka serves rebalances inside
    # poll(); calling assignment() from another thread meanwhile can block): the threads
    # publish what they own, and close the leaving member when told to.
    owned = [[] for _ in consumers]
    leave = threading.Event()
    left_at = [None]

    def poller(i, c):
        while not stop.is_set():
            if i == 0 and leave.is_set():
                left_at[0] = time.perf_counter()
                c.close()
                owned[0] = []
                return
            c.poll(0.01)
            owned[i] = sorted(tp.partition for tp in c.assignment())

    def all_owned(idx):
        return sorted(p for i in idx for p in owned[i]) == list(range(PARTITIONS))

    threads = [threading.Thread(target=poller, args=(i, c)) for i, c in enumerate(consumers)]
    for t in threads:
        t.start()
    everyone, rest = range(n), range(1, n)
    deadline = time.time() + 60
    while not (all_owned(everyone) and all(owned[i] for i in everyone)):
        time.sleep(0.01)
        assert time.time() < deadline, f"{mode}: group never settled: {owned}"
    time.sleep(1)
    leave.set()
    while left_at[0] is None or not all_owned(rest) or owned[0]:
        time.sleep(0.001)
        assert time.time() < deadline + 60, f"{mode}: rebalance never finished: {owned}"
    t0 = left_at[0]
    took = time.perf_counter() - t0
    stop.set()
    for t in threads:
        t.join()
    for c in consumers[1:]:
        c.close()
    return took


def commits_per_second(b, topic, seconds):
    group = "g-" + uuid.uuid4().hex[:10]
    c = Consumer(consumer_conf(b, None, "classic") | {"group.id": group})
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        n += 1
        c.commit(offsets=[TopicPartition(topic, 0, n)], asynchronous=False)
    rate = n / (time.perf_counter() - t0)
    got = c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    c.close()
    assert got == n, (got, n)
    return rate


def produces_per_second(b, topic, seconds):
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 0})
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        p.produce(topic, value=b"x" * 64, partition=0)
        p.flush(10)
        n += 1
    return n / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5, help="per commit/produce rate measurement")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    os.environ.setdefault("ODRADEK_BIN", os.path.join(ROOT, "target", "release", "odradek"))
    import conftest
    conftest.BIN = os.environ["ODRADEK_BIN"]
    b = Broker().start()
    out = {}
    try:
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        topic = "group-bench"
        for f in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
            f.result(10)
        p = Producer({"bootstrap.servers": b.bootstrap})
        for i in range(PARTITIONS * 100):
            p.produce(topic, value=b"r%d" % i, partition=i % PARTITIONS)
        assert p.flush(30) == 0
        med = statistics.median
        for n in (1, 10):
            for mode in ("assign", "classic", "consumer"):
                runs = [first_record(b, topic, n, mode) for _ in range(args.rounds)]
                # Per round, the slowest consumer's time: the group is consuming once all are.
                out[f"first_record_{mode}_{n}_s"] = med([max(r) for r in runs])
        print("first-record figures done", file=sys.stderr)
        for mode, strategy in (("eager", "range"), ("cooperative", "cooperative-sticky"), ("kip848", None)):
            runs = [rebalance_after_leave(b, topic, 10, mode, strategy or "range") for _ in range(args.rounds)]
            out[f"rebalance_{mode}_s"] = med(runs)
        out["commits_per_s"] = med([commits_per_second(b, topic, args.seconds) for _ in range(args.rounds)])
        out["produce_acks_all_sync_per_s"] = med([produces_per_second(b, topic, args.seconds)
                                                  for _ in range(args.rounds)])
    finally:
        b.stop()
        b.cleanup()
    print(json.dumps(out, indent=2))
    print()
    for n in (1, 10):
        ref = out[f"first_record_assign_{n}_s"]
        for mode in ("classic", "consumer"):
            v = out[f"first_record_{mode}_{n}_s"]
            print(f"subscribe -> first record, {n:2} consumer(s), {mode:8}: {v * 1000:7.1f} ms "
                  f"({v / ref:.1f}x assign() without a group: {ref * 1000:.1f} ms)")
    for mode in ("eager", "cooperative", "kip848"):
        print(f"rebalance after a member leaves (10 members), {mode:11}: {out[f'rebalance_{mode}_s'] * 1000:7.1f} ms")
    c, r = out["commits_per_s"], out["produce_acks_all_sync_per_s"]
    print(f"synchronous commits: {c:.0f}/s ({c / r:.2f}x synchronous acks=all produce: {r:.0f}/s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
