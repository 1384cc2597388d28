"""The `odradek` CLI (issue 5) against real Kafka clients: records it produces are read exactly
by confluent-kafka (librdkafka) and kafka-python, records kcat and confluent-kafka produce are
printed exactly by `odradek consume`, and `odradek group describe` shows the lag of a group a
confluent-kafka consumer committed (classic and KIP-848 groups)."""

import json
import shutil
import subprocess
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KTopicPartition
from kafka.partitioner.default import murmur2

from conftest import BIN


def odradek(b, *args, stdin=None, ok=True, timeout=60):
    r = subprocess.run([BIN, *args, "--bootstrap-server", b.bootstrap], input=stdin, capture_output=True,
                       timeout=timeout)
    if ok:
        assert r.returncode == 0, r.stderr.decode(errors="replace")
    return r


def java_partition(key, partitions):
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def expected_records(n):
    lines = "".join(f"key-{i}|value-{i}\n" for i in range(n)).encode()
    return lines, [(f"key-{i}".encode(), f"value-{i}".encode()) for i in range(n)]


@pytest.mark.parametrize("codec", ["none", "zstd", "snappy", "lz4", "gzip"])
def test_cli_records_read_exactly_by_librdkafka_and_kafka_python(broker, topic_name, codec):
    odradek(broker, "topic", "create", topic_name, "--partitions", "3")
    lines, records = expected_records(40)
    out = odradek(broker, "produce", topic_name, "-K", "|", "-H", "origin=odradek", "-H", "codec=" + codec,
                  "-z", codec, "--timestamp", "1700000000000", "--output", "json", stdin=lines).stdout
    assert json.loads(out)["records"] == 40

    # Where each key went: Kafka's default (murmur2) partitioner, dense offsets from 0.
    next_offset = [0, 0, 0]
    want = set()
    for k, v in records:
        p = java_partition(k, 3)
        want.add((p, next_offset[p], k, v))
        next_offset[p] += 1
    headers = [("origin", b"odradek"), ("codec", codec.encode())]

    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "enable.auto.commit": False})
    c.assign([TopicPartition(topic_name, p, 0) for p in range(3)])
    got = set()
    deadline = time.time() + 30
    while len(got) < 40 and time.time() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        assert m.error() is None, m.error()
        assert m.headers() == headers
        assert m.timestamp()[1] == 1700000000000
        got.add((m.partition(), m.offset(), m.key(), m.value()))
    c.close()
    assert got == want

    kc = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100)
    tps = [KTopicPartition(topic_name, p) for p in range(3)]
    kc.assign(tps)
    kc.seek_to_beginning(*tps)
    got = set()
    deadline = time.time() + 30
    while len(got) < 40 and time.time() < deadline:
        for tp, msgs in kc.poll(timeout_ms=200).items():
            for m in msgs:
                assert list(m.headers) == headers
                assert m.timestamp == 1700000000000
                got.add((tp.partition, m.offset, m.key, m.value))
    kc.close()
    assert got == want


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")
def test_cli_prints_kcat_and_librdkafka_records_exactly(broker, topic_name):
    odradek(broker, "topic", "create", topic_name, "--partitions", "2")
    kcat = ["kcat", "-b", broker.bootstrap, "-P", "-t", topic_name, "-p", "0", "-K:", "-H", "src=kcat", "-z", "lz4"]
    r = subprocess.run(kcat, input=b"a:1\nb:2\nc:3\n", capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": "zstd", "linger.ms": 5})
    p.produce(topic_name, partition=1, key=b"ck", value=b"cv", headers=[("h", b"1"), ("h", b"2")], timestamp=1234)
    p.produce(topic_name, partition=1, key=None, value=b"no key", timestamp=5678)
    assert p.flush(30) == 0

    out = odradek(broker, "consume", topic_name, "-p", "0", "-F", "%p %o %k=%v %h\\n").stdout.decode()
    assert out == "0 0 a=1 src=kcat\n0 1 b=2 src=kcat\n0 2 c=3 src=kcat\n"
    out = odradek(broker, "consume", topic_name, "-p", "1", "-F", "%o|%K|%k|%v|%h|%T\\n").stdout.decode()
    assert out == "0|2|ck|cv|h=1,h=2|1234\n1|-1||no key||5678\n"
    rows = [json.loads(line) for line in
            odradek(broker, "consume", topic_name, "-p", "1", "--output", "json").stdout.decode().splitlines()]
    assert rows == [
        {"topic": topic_name, "partition": 1, "offset": 0, "timestamp": 1234, "key": "ck", "value": "cv",
         "headers": [["h", "1"], ["h", "2"]]},
        {"topic": topic_name, "partition": 1, "offset": 1, "timestamp": 5678, "key": None, "value": "no key",
         "headers": []},
    ]
    # Resuming from an offset and counting.
    out = odradek(broker, "consume", topic_name, "-p", "0", "--offset", "1", "-n", "1").stdout.decode()
    assert out == "2\n"


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_cli_group_describe_shows_librdkafka_lag(broker, topic_name, protocol):
    odradek(broker, "topic", "create", topic_name, "--partitions", "2")
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for part, n in ((0, 4), (1, 6)):
        for i in range(n):
            p.produce(topic_name, value=f"{part}-{i}".encode(), partition=part)
    assert p.flush(30) == 0

    group = f"g-{uuid.uuid4().hex[:10]}"
    conf = {"bootstrap.servers": broker.bootstrap, "group.id": group, "client.id": "lag-test",
            "auto.offset.reset": "earliest", "enable.auto.commit": False, "group.protocol": protocol}
    if protocol == "classic":
        conf.update({"session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    c = Consumer(conf)
    c.subscribe([topic_name])
    deadline = time.time() + 40
    while len(c.assignment()) < 2 and time.time() < deadline:
        c.poll(0.2)
    assert len(c.assignment()) == 2
    c.commit(offsets=[TopicPartition(topic_name, 0, 1), TopicPartition(topic_name, 1, 5)], asynchronous=False)

    # While the consumer is a member: it owns both partitions, and resets are refused.
    d = json.loads(odradek(broker, "group", "describe", group, "--output", "json").stdout)
    assert d["state"] == "Stable"
    assert [m["client_id"] for m in d["members"]] == ["lag-test"]
    assert d["members"][0]["assignment"] == [{"topic": topic_name, "partitions": [0, 1]}]
    rows = [(o["partition"], o["committed_offset"], o["log_end_offset"], o["lag"], o["member_id"])
            for o in d["offsets"]]
    member = d["members"][0]["member_id"]
    assert rows == [(0, 1, 4, 3, member), (1, 5, 6, 1, member)]
    r = odradek(broker, "group", "reset-offsets", group, "--topic", topic_name, "--to-earliest", "--execute",
                ok=False)
    assert r.returncode == 1
    assert b"NON_EMPTY_GROUP" in r.stderr and b"Stable" in r.stderr, r.stderr
    r = odradek(broker, "consume", topic_name, "--group", group, ok=False)
    assert r.returncode == 1 and r.stdout == b""
    assert b"NON_EMPTY_GROUP" in r.stderr, r.stderr

    c.close()
    table = odradek(broker, "group", "describe", group).stdout.decode()
    assert table.startswith(f"Group: {group}  State: Empty  Members: 0\n"), table
    lines = table.splitlines()
    assert lines[1].split() == ["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID",
                                "HOST", "CLIENT-ID"]
    assert [line.split()[:5] for line in lines[2:]] == [[topic_name, "0", "1", "4", "3"],
                                                        [topic_name, "1", "5", "6", "1"]]
    # Once the group is empty the reset goes through, and librdkafka resumes from it.
    odradek(broker, "group", "reset-offsets", group, "--topic", f"{topic_name}:1", "--to-offset", "2", "--execute")
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    committed = c.committed([TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)], timeout=10)
    c.close()
    assert [tp.offset for tp in committed] == [1, 2]
