"""`odradek bench`, the load generator, against a real broker: every record it says it produced
is in the topic (checked with confluent-kafka and kafka-python, not with our own client), every
record there is counted by `bench consume`, the JSON result follows the contract with the
scenario runner, and failures exit non-zero with one clear line."""

import json
import subprocess
import time

import pytest
from confluent_kafka import Consumer, TopicPartition
from kafka import KafkaConsumer
from kafka.partitioner.default import murmur2

from conftest import BIN

LATENCY_KEYS = ["count", "mean", "p50", "p90", "p99", "p999", "p9999", "max"]


def bench(kind, bootstrap, topic, *args, json_path=None, timeout=120):
    cmd = [BIN, "bench", kind, "--bootstrap-server", bootstrap, "--topic", topic, "--quiet", *map(str, args)]
    if json_path is not None:
        cmd += ["--json", str(json_path)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def run_ok(kind, bootstrap, topic, tmp_path, *args):
    path = tmp_path / f"{kind}-{time.monotonic_ns()}.json"
    r = bench(kind, bootstrap, topic, *args, json_path=path)
    assert r.returncode == 0, r.stderr
    return json.loads(path.read_text())


def check_latency(lat, bound_us=30_000_000):
    assert set(lat) == set(LATENCY_KEYS)
    assert lat["count"] > 0
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p999"] <= lat["p9999"] <= lat["max"] < bound_us
    assert lat["p50"] <= lat["mean"] * 10 and lat["mean"] <= lat["max"]


def end_offsets(bootstrap, topic, partitions):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-check", "enable.auto.commit": False})
    try:
        return [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in range(partitions)]
    finally:
        c.close()


def read_all(bootstrap, topic, expected):
    """Every record of the topic through kafka-python."""
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False,
                      group_id=None, consumer_timeout_ms=5000)
    out = []
    try:
        deadline = time.time() + 60
        while len(out) < expected and time.time() < deadline:
            for batch in c.poll(timeout_ms=1000, max_records=10_000).values():
                out.extend(batch)
    finally:
        c.close()
    return out


def test_produce_then_consume_counts_every_record(broker, topic_name, tmp_path):
    n, size = 5_000, 300
    t0 = time.time_ns()
    res = run_ok("produce", broker.bootstrap, topic_name, tmp_path, "--create-topic", "--partitions", 4,
                 "--count", n, "--record-size", size, "--producers", 2, "--threads", 2)
    t1 = time.time_ns()
    assert res["kind"] == "produce" and res["topic"] == topic_name and res["bootstrap"] == broker.bootstrap
    assert res["produced"]["records"] == n and res["produced"]["errors"] == 0
    assert res["produced"]["bytes"] == n * size
    assert res["produced"]["records_per_s"] > 0 and res["produced"]["mb_per_s"] > 0
    assert res["consumed"] is None and res["latency"]["e2e"] is None
    check_latency(res["latency"]["produce"])
    assert res["latency"]["produce"]["count"] == n
    assert res["config"]["record_size"] == size and res["config"]["acks"] == "all"
    assert res["config"]["count"] == n and res["config"]["producers"] == 2
    assert res["started_at"].endswith("Z") and res["duration_s"] > 0
    assert sum(s["produced_records_per_s"] for s in res["timeline"]) == n
    assert [s["t_s"] for s in res["timeline"]] == list(range(1, len(res["timeline"]) + 1))

    # Independent checks: the end offsets (librdkafka) and the records themselves (kafka-python).
    offsets = end_offsets(broker.bootstrap, topic_name, 4)
    assert sum(hi - lo for lo, hi in offsets) == n
    assert sum(1 for _, hi in offsets if hi > 0) == 4, f"null keys spread over every partition: {offsets}"
    records = read_all(broker.bootstrap, topic_name, n)
    assert len(records) == n
    for r in records:
        assert r.key is None and len(r.value) == size
        sent_ns = int.from_bytes(r.value[:8], "big")
        assert t0 <= sent_ns <= t1, "the value starts with its intended send time"
        assert r.value[8:].isalpha()

    res = run_ok("consume", broker.bootstrap, topic_name, tmp_path, "--count", n, "--consumers", 2)
    assert res["kind"] == "consume" and res["produced"] is None
    assert res["consumed"]["records"] == n and res["consumed"]["bytes"] == n * size
    assert res["latency"] == {"produce": None, "e2e": None}
    assert res["config"]["from"] == "beginning"

    # Bounded by time instead: everything there is read, then it stops at the deadline.
    res = run_ok("consume", broker.bootstrap, topic_name, tmp_path, "--duration", 1.5)
    assert res["consumed"]["records"] == n
    assert 1.0 < res["duration_s"] < 10


def test_keyed_records_land_where_kafkas_partitioner_puts_them(broker, topic_name, tmp_path):
    n = 2_000
    res = run_ok("produce", broker.bootstrap, topic_name, tmp_path, "--create-topic", "--partitions", 5,
                 "--count", n, "--keys", "sequential", "--key-space", 100, "--record-size", 64)
    assert res["produced"]["records"] == n and res["produced"]["bytes"] == n * (16 + 64)
    records = read_all(broker.bootstrap, topic_name, n)
    assert len(records) == n
    keys = {}
    for r in records:
        assert len(r.key) == 16 and r.key.isdigit()
        assert r.partition == (murmur2(r.key) & 0x7FFFFFFF) % 5, r.key
        keys[r.key] = keys.get(r.key, 0) + 1
    assert keys == {str(i).zfill(16).encode(): n // 100 for i in range(100)}


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_batches_are_read_by_other_clients(broker, topic_name, tmp_path, codec):
    n = 1_000
    res = run_ok("produce", broker.bootstrap, topic_name, tmp_path, "--create-topic", "--partitions", 2,
                 "--count", n, "--compression", codec, "--record-size", 200, "--keys", "random")
    assert res["produced"]["records"] == n
    records = read_all(broker.bootstrap, topic_name, n)
    assert len(records) == n and all(len(r.value) == 200 for r in records)
    res = run_ok("consume", broker.bootstrap, topic_name, tmp_path, "--count", n)
    assert res["consumed"]["records"] == n and res["consumed"]["bytes"] == n * (16 + 200)


def test_acks_0_sends_every_record(broker, topic_name, tmp_path):
    res = run_ok("produce", broker.bootstrap, topic_name, tmp_path, "--create-topic", "--partitions", 3,
                 "--count", 3_000, "--acks", 0, "--record-size", 100)
    assert res["produced"]["records"] == 3_000 and res["latency"]["produce"] is None
    deadline = time.time() + 10
    while sum(hi for _, hi in end_offsets(broker.bootstrap, topic_name, 3)) < 3_000 and time.time() < deadline:
        time.sleep(0.2)
    assert sum(hi for _, hi in end_offsets(broker.bootstrap, topic_name, 3)) == 3_000


def test_e2e_at_a_fixed_rate_consumes_everything_produced(broker, topic_name, tmp_path):
    rate, secs = 2_000, 3
    res = run_ok("e2e", broker.bootstrap, topic_name, tmp_path, "--create-topic", "--partitions", 3,
                 "--rate", rate, "--duration", secs, "--producers", 2, "--consumers", 2, "--record-size", 256)
    produced, consumed = res["produced"]["records"], res["consumed"]["records"]
    assert produced == consumed == rate * secs, "the schedule offers rate x duration records"
    assert res["consumed"]["bytes"] == res["produced"]["bytes"] == produced * 256
    check_latency(res["latency"]["produce"])
    check_latency(res["latency"]["e2e"])
    assert res["latency"]["e2e"]["count"] == consumed
    assert res["config"]["from"] == "end" and res["config"]["rate"] == rate
    t = res["timeline"]
    assert len(t) >= secs and all(set(s) == {"t_s", "produced_records_per_s", "consumed_records_per_s",
                                             "produce_p99", "e2e_p99"} for s in t)
    assert sum(s["produced_records_per_s"] for s in t) == produced
    assert sum(s["consumed_records_per_s"] for s in t) == consumed
    full = t[: secs - 1]
    assert all(abs(s["produced_records_per_s"] - rate) <= rate * 0.25 for s in full), t
    assert all(s["e2e_p99"] > 0 for s in full)


def test_warmup_is_left_out_of_the_figures(broker, topic_name, tmp_path):
    res = run_ok("produce", broker.bootstrap, topic_name, tmp_path, "--create-topic", "--partitions", 2,
                 "--rate", 1_000, "--warmup", 1, "--duration", 1, "--record-size", 100)
    # The schedule intends records 0..999 in the warmup second, 1000..1999 in the measured one.
    assert res["produced"]["records"] == 1_000
    assert res["produced"]["records_total"] == 2_000
    assert res["latency"]["produce"]["count"] == res["produced"]["records"]
    assert 0.9 < res["duration_s"] < 5


def test_unreachable_broker_fails_with_one_line(tmp_path):
    r = bench("produce", "127.0.0.1:1", "t", "--count", 10, json_path=tmp_path / "x.json")
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot connect to 127.0.0.1:1" in lines[0], r.stderr
    assert not (tmp_path / "x.json").exists()


def test_unknown_topic_without_create_topic_fails(broker, topic_name):
    for kind in ("produce", "consume", "e2e"):
        r = bench(kind, broker.bootstrap, topic_name, "--count", 10)
        assert r.returncode != 0
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "unknown topic" in lines[0] and "--create-topic" in lines[0], r.stderr


def test_bad_flags_fail(broker, topic_name):
    for args in (["--acks", "2"], ["--record-size", "4"], ["--rate", "-5"], ["--keys", "weird"],
                 ["--topic-config", "novalue"]):
        r = bench("produce", broker.bootstrap, topic_name, "--create-topic", "--count", 1, *args)
        assert r.returncode != 0, args
        assert r.stderr.strip(), args


def test_records_refused_by_the_broker_count_as_errors(fresh_broker, topic_name, tmp_path):
    b = fresh_broker(args=["--message-max-bytes", "2000"])
    path = tmp_path / "r.json"
    r = bench("produce", b.bootstrap, topic_name, "--create-topic", "--partitions", 2, "--count", 40,
              "--record-size", 4000, json_path=path)
    assert r.returncode == 0, r.stderr
    assert "MESSAGE_TOO_LARGE" in r.stderr
    res = json.loads(path.read_text())
    assert res["produced"]["records"] == 0 and res["produced"]["errors"] == 40
    assert res["latency"]["produce"] is None
    assert sum(hi for _, hi in end_offsets(b.bootstrap, topic_name, 2)) == 0


def test_e2e_warmup_counts_the_same_records_on_both_sides(broker, topic_name, tmp_path):
    res = run_ok("e2e", broker.bootstrap, topic_name, tmp_path, "--create-topic", "--partitions", 2,
                 "--rate", 1_000, "--warmup", 1, "--duration", 2, "--record-size", 64, "--consumers", 2)
    # Intended in [1 s, 3 s): records 1000..2999 are measured on both sides, all 3000 are moved.
    assert res["produced"]["records"] == res["consumed"]["records"] == 2_000
    assert res["produced"]["records_total"] == res["consumed"]["records_total"] == 3_000
    assert res["consumed"]["bytes"] == 2_000 * 64
    assert res["latency"]["e2e"]["count"] == 2_000
