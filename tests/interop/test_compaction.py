"""Compacted topics end to end: the log cleaner with real clients.

librdkafka (confluent-kafka) and kafka-python produce many updates per key plus tombstones; after
cleaning, a consumer of each (and Kafka's own console consumer) reads exactly the latest value
per key at the offset it was written, tombstones until `delete.retention.ms` has passed and
then none; a consumer reading while the cleaner runs never sees an offset twice or a value go
back; a broker killed with -9 again and again during cleaning loses nothing and serves nothing
twice. Records without a key are refused on compacted topics.
"""

import os
import random
import re
import subprocess
import threading
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTopicPartition
from kafka.errors import InvalidRecordError

KAFKA = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "kafka"))
TICK = b"~tick"

# Segments roll 100 ms after their first append (on the next append), the cleaner looks every
# 100 ms, and any dirt is enough: passes follow a produce within a fraction of a second.
FAST_CLEANER = ["--override", "log.cleaner.backoff.ms=100"]


def compacted(b, name, **extra):
    config = {"cleanup.policy": "compact", "segment.ms": "100", "min.cleanable.dirty.ratio": "0.01",
              "delete.retention.ms": "1500"}
    config.update({k.replace("_", "."): str(v) for k, v in extra.items()})
    config = {k: v for k, v in config.items() if v != "None"}
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.create_topics([NewTopic(name, 1, 1, config=config)])[name].result(15)


def librdkafka_produce(b, topic, records, **conf):
    """Produces (key, value) pairs in order; returns each one's offset."""
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 5, "enable.idempotence": True, **conf})
    offsets = [None] * len(records)
    errors = []

    def done(i):
        def cb(err, msg):
            if err:
                errors.append(err)
            else:
                offsets[i] = msg.offset()
        return cb

    for i, (k, v) in enumerate(records):
        p.produce(topic, key=k, value=v, on_delivery=done(i))
        p.poll(0)
    assert p.flush(30) == 0
    assert not errors, errors
    return offsets


def tick(b, topic):
    """One more record after the active segment's segment.ms: it rolls, so the cleaner may
    clean what came before."""
    time.sleep(0.15)
    return librdkafka_produce(b, topic, [(TICK, b"t")])[0]


def librdkafka_read_all(b, topic):
    """Everything in the partition from its start to its end now: [(offset, key, value)]."""
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": f"g-{random.random()}", "enable.auto.commit": False})
    tp = TopicPartition(topic, 0)
    low, high = c.get_watermark_offsets(tp, timeout=10)
    c.assign([TopicPartition(topic, 0, low)])
    out = []
    deadline = time.time() + 20
    while time.time() < deadline and (not out or out[-1][0] < high - 1):
        m = c.poll(0.2)
        if m is None:
            # Compaction may have removed the records just below the end: the consumer's
            # position reaching the end is enough.
            if c.position([tp])[0].offset >= high:
                break
            continue
        assert not m.error(), m.error()
        out.append((m.offset(), m.key(), m.value()))
    c.close()
    return out


def kafka_python_read_all(b, topic, isolation="read_uncommitted"):
    """As librdkafka_read_all, with kafka-python: [(offset, key, value)]."""
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, enable_auto_commit=False, consumer_timeout_ms=3000,
                      isolation_level=isolation)
    tp = KpTopicPartition(topic, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    end = c.end_offsets([tp])[tp]
    out = []
    for m in c:
        out.append((m.offset, m.key, m.value))
        if m.offset >= end - 1:
            break
    c.close()
    return out


def latest_per_key(records, offsets):
    latest = {}
    for (k, v), o in zip(records, offsets):
        latest[k] = (o, v)
    return latest


def expected(latest, tombstones=True):
    rows = [(o, k, v) for k, (o, v) in latest.items() if tombstones or v is not None]
    return sorted(rows)


def wait_for(read, want, what, timeout=30):
    deadline = time.time() + timeout
    got = None
    while time.time() < deadline:
        got = read()
        if got == want:
            return got
        time.sleep(0.3)
    raise AssertionError(f"{what}: never read the expected state; last read {len(got or [])} records, "
                         f"want {len(want)}: first got {got[:5] if got else got}, want {want[:5]}")


def updates(keys=20, rounds=30, dead=5):
    records = []
    for r in range(rounds):
        for k in range(keys):
            records.append((f"key-{k:02d}".encode(), f"value-{k}-{r}".encode()))
    for k in range(dead):
        records.append((f"key-{k:02d}".encode(), None))
    return records


def test_librdkafka_reads_the_latest_value_per_key_then_no_tombstones(fresh_broker, topic_name):
    b = fresh_broker(FAST_CLEANER)
    compacted(b, topic_name, delete_retention_ms=4000)
    records = updates()
    offsets = librdkafka_produce(b, topic_name, records)
    t = tick(b, topic_name)
    latest = latest_per_key(records, offsets)
    latest[TICK] = (t, b"t")
    # Cleaned: one record per key at the offset it was written, the 5 tombstones still there.
    want = expected(latest)
    assert len(want) == 21
    wait_for(lambda: librdkafka_read_all(b, topic_name), want, "after the first pass")
    # delete.retention.ms (4 s) later, a pass removes the tombstones.
    wait_for(lambda: librdkafka_read_all(b, topic_name), expected(latest, tombstones=False), "tombstones expired")
    # Kafka's own console consumer (the Java client) reads the same.
    env = dict(os.environ, LOG_DIR=os.path.join(b.data_dir, "..", os.path.basename(b.data_dir) + "-tools"))
    out = subprocess.run(
        [os.path.join(KAFKA, "bin", "kafka-console-consumer.sh"), "--bootstrap-server", b.bootstrap, "--topic",
         topic_name, "--from-beginning", "--timeout-ms", "8000", "--property", "print.key=true",
         "--property", "print.offset=true", "--property", "key.separator=|"],
        capture_output=True, text=True, env=env, timeout=60)
    lines = [line for line in out.stdout.splitlines() if "|" in line]
    java = [(int(line.split("|")[0].split(":")[1]), line.split("|")[1], line.split("|")[2]) for line in lines]
    assert java == [(o, k.decode(), v.decode()) for o, k, v in expected(latest, tombstones=False)], out.stderr[-2000:]
    # Appends go on after the cleaned range at the next offset.
    assert librdkafka_produce(b, topic_name, [(b"after", b"x")]) == [t + 1]


def test_kafka_python_produces_and_reads_a_compacted_topic_across_a_restart(fresh_broker, topic_name):
    b = fresh_broker(FAST_CLEANER)
    compacted(b, topic_name)
    p = KafkaProducer(bootstrap_servers=b.bootstrap, acks="all", linger_ms=5)
    records = updates(keys=10, rounds=40, dead=3)
    futures = [p.send(topic_name, key=k, value=v) for k, v in records]
    p.flush(30)
    offsets = [f.get(timeout=10).offset for f in futures]
    time.sleep(0.15)
    t = p.send(topic_name, key=TICK, value=b"t").get(timeout=10).offset
    p.close()
    latest = latest_per_key(records, offsets)
    latest[TICK] = (t, b"t")

    def kafka_python_read():
        return kafka_python_read_all(b, topic_name)

    want = expected(latest)
    wait_for(kafka_python_read, want, "kafka-python after cleaning")
    b.stop()
    b.start()
    assert kafka_python_read() == want or kafka_python_read() == expected(latest, tombstones=False)
    wait_for(kafka_python_read, expected(latest, tombstones=False), "kafka-python, tombstones expired")


def test_records_without_a_key_are_refused_on_compacted_topics(broker, topic_name):
    compacted(broker, topic_name)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    errors = []
    p.produce(topic_name, value=b"no key", on_delivery=lambda err, msg: errors.append(err))
    p.flush(15)
    assert len(errors) == 1 and errors[0] is not None and errors[0].code() == KafkaError.INVALID_RECORD, errors
    kp = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", retries=0)
    try:
        kp.send(topic_name, value=b"no key").get(timeout=15)
        raise AssertionError("a record without a key was accepted")
    except InvalidRecordError:
        pass
    kp.send(topic_name, key=b"k", value=b"keyed").get(timeout=15)
    kp.close()
    assert librdkafka_read_all(broker, topic_name) == [(0, b"k", b"keyed")]


def test_a_consumer_reading_while_the_cleaner_runs_never_goes_back(fresh_broker, topic_name):
    b = fresh_broker(FAST_CLEANER)
    compacted(b, topic_name, delete_retention_ms=600000)
    stop = threading.Event()
    produced = []

    def produce():
        # Idempotent, so a retried request cannot reorder the records of a key.
        p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 2, "enable.idempotence": True})
        n = 0
        while not stop.is_set():
            for k in range(8):
                while True:
                    try:
                        p.produce(topic_name, key=f"k{k}".encode(), value=f"{n:06d}".encode())
                        break
                    except BufferError:
                        p.poll(0.05)
            n += 1
            p.poll(0)
            time.sleep(0.005)
        p.flush(30)
        produced.append(n)

    th = threading.Thread(target=produce)
    th.start()
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": f"g-{topic_name}", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic_name, 0, 0)])
    last_offset = -1
    last_value = {}
    seen = 0
    t_end = time.time() + 6
    while time.time() < t_end:
        m = c.poll(0.2)
        if m is None or m.error():
            continue
        assert m.offset() > last_offset, f"offset {m.offset()} after {last_offset}"
        last_offset = m.offset()
        prev = last_value.get(m.key(), (b"", -1))
        assert m.value() > prev[0], f"{m.key()} went back to {m.value()} at {m.offset()} from {prev}"
        last_value[m.key()] = (m.value(), m.offset())
        seen += 1
    stop.set()
    th.join()
    c.close()
    assert seen > 100
    assert "cleaned " in b.read_log(), "the cleaner ran meanwhile"
    # In the end: the latest value of each of the 8 keys (plus a tick's), nothing else.
    t = tick(b, topic_name)
    final = f"{produced[0] - 1:06d}".encode()

    def keys_and_values():
        return sorted((k, v) for _, k, v in librdkafka_read_all(b, topic_name) if k != TICK)
    wait_for(keys_and_values, sorted((f"k{k}".encode(), final) for k in range(8)), "latest values after the run")
    assert t > 0


def test_kill9_during_cleaning_loses_nothing_and_serves_nothing_twice(fresh_broker, topic_name):
    # A slow cleaner (1 MB/s) over about 6 MB of small segments: a pass takes seconds, and the
    # kills land in the middle of one.
    args = FAST_CLEANER + ["--override", "log.cleaner.io.max.bytes.per.second=1000000"]
    b = fresh_broker(args)
    compacted(b, topic_name, segment_bytes=262144, segment_ms=604800000)
    value = b"x" * 900
    records = [(f"key-{i % 300:03d}".encode(), value + f"{i:06d}".encode()) for i in range(6000)]
    offsets = librdkafka_produce(b, topic_name, records, **{"batch.size": 65536})
    latest = latest_per_key(records, offsets)
    rng = random.Random(7)
    for _ in range(4):
        time.sleep(rng.uniform(0.3, 1.5))
        b.kill9()
        b.start()
    # Wait for a whole pass after the last start, then read.
    passes = b.read_log().count("cleaned ")
    deadline = time.time() + 60
    while b.read_log().count("cleaned ") == passes and time.time() < deadline:
        time.sleep(0.3)
    got = librdkafka_read_all(b, topic_name)
    by_offset = {o: (k, v) for (k, v), o in zip(records, offsets)}
    read_offsets = [o for o, _, _ in got]
    assert read_offsets == sorted(set(read_offsets)), "an offset served twice or out of order"
    for o, k, v in got:
        assert by_offset.get(o) == (k, v), f"offset {o}: read {k}={v[-6:]}, written {by_offset.get(o)}"
    last_read = {k: (o, v) for o, k, v in got}
    assert last_read == latest, "the latest value of every key is there, at its offset"
    assert len(got) < len(records) // 2, f"cleaned: {len(got)} of {len(records)} records left"
    part = os.path.join(b.data_dir, f"{topic_name}-0")
    names = os.listdir(part)
    assert not [n for n in names if n.endswith(".tmp") or n.endswith(".swap")], names


def whole_log(b):
    with open(b.log_path, "rb") as f:
        return f.read().decode(errors="replace")


def test_a_tombstone_stays_delete_retention_ms_after_the_first_pass_whatever_its_timestamp(
        fresh_broker, topic_name, tmp_path):
    # KIP-534: a tombstone's delete.retention.ms runs from the first pass that saw it, not from
    # its timestamp, which a producer chooses. Here the broker sets the default
    # (log.cleaner.delete.retention.ms) and the topic does not: the broker's value applies.
    b = fresh_broker(FAST_CLEANER + ["--override", "log.cleaner.delete.retention.ms=5000"])
    compacted(b, topic_name, delete_retention_ms=None)
    an_hour_ago = int(time.time() * 1000) - 3_600_000
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "enable.idempotence": True})
    offsets = []
    for k, v in [(b"k1", b"v1"), (b"k2", b"v2"), (b"k1", None), (b"k2", b"v2-latest")]:
        p.produce(topic_name, key=k, value=v, timestamp=an_hour_ago,
                  on_delivery=lambda err, msg: offsets.append(None if err else msg.offset()))
    assert p.flush(30) == 0
    t = tick(b, topic_name)
    first_pass = [(offsets[2], b"k1", None), (offsets[3], b"k2", b"v2-latest"), (t, TICK, b"t")]
    # kafka-python sees the cleaned log with the tombstone (a timestamp rule would have
    # removed it in the very pass that removed k1's and k2's older values).
    wait_for(lambda: kafka_python_read_all(b, topic_name), first_pass, "the first pass keeps the tombstone")
    wait_for(lambda: librdkafka_read_all(b, topic_name), first_pass[1:], "the tombstone goes after its horizon")
    # Kafka's kafka-configs.sh shows where the topic's value comes from, as it does against Kafka.
    env = dict(os.environ, LOG_DIR=str(tmp_path / "kafka-logs"))
    r = subprocess.run([os.path.join(KAFKA, "bin", "kafka-configs.sh"), "--bootstrap-server", b.bootstrap,
                        "--describe", "--all", "--entity-type", "topics", "--entity-name", topic_name],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = {line.strip().split("=", 1)[0]: line.strip() for line in r.stdout.splitlines() if "=" in line}
    assert lines["delete.retention.ms"] == (
        "delete.retention.ms=5000 sensitive=false synonyms={STATIC_BROKER_CONFIG:log.cleaner.delete.retention.ms=5000, "
        "DEFAULT_CONFIG:log.cleaner.delete.retention.ms=86400000}"), lines["delete.retention.ms"]


def test_transaction_markers_go_once_their_transaction_left_nothing(fresh_broker, topic_name):
    b = fresh_broker(FAST_CLEANER)
    compacted(b, topic_name, delete_retention_ms=1000)
    p = Producer({"bootstrap.servers": b.bootstrap, "transactional.id": f"{topic_name}-tx"})
    p.init_transactions(30)
    offsets = {}

    def txn(pairs, commit):
        p.begin_transaction()
        for k, v in pairs:
            p.produce(topic_name, key=k, value=v,
                      on_delivery=lambda err, msg: offsets.__setitem__(msg.value(), msg.offset()))
        p.flush(30)
        p.commit_transaction(30) if commit else p.abort_transaction(30)

    txn([(b"a", b"a1"), (b"b", b"b1")], True)  # superseded below: its marker can go
    txn([(b"a", b"a-aborted"), (b"c", b"c-aborted")], False)  # aborted: data and marker go
    txn([(b"a", b"a3"), (b"b", b"b3")], True)  # still there: its marker stays
    t = tick(b, topic_name)
    want = [(offsets[b"a3"], b"a", b"a3"), (offsets[b"b3"], b"b", b"b3"), (t, TICK, b"t")]
    wait_for(lambda: librdkafka_read_all(b, topic_name), want, "librdkafka after cleaning")

    def markers_removed():
        return sum(int(n) for n in re.findall(r"(\d+) markers removed", whole_log(b)))
    deadline = time.time() + 30
    while markers_removed() < 2 and time.time() < deadline:
        time.sleep(0.3)
    assert markers_removed() == 2, whole_log(b)[-3000:]
    # Both clients' read_committed consumers read the committed survivors, at their offsets.
    assert kafka_python_read_all(b, topic_name, "read_committed") == want
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": f"g-{topic_name}", "isolation.level": "read_committed",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic_name, 0, 0)])
    got = []
    deadline = time.time() + 20
    while len(got) < len(want) and time.time() < deadline:
        m = c.poll(0.2)
        if m is not None and not m.error():
            got.append((m.offset(), m.key(), m.value()))
    c.close()
    assert got == want
    # The broker forgot the aborted transaction durably: after a kill -9 nothing changes.
    b.kill9()
    b.start()
    assert kafka_python_read_all(b, topic_name, "read_committed") == want
    # Another pass later removes nothing more: the last transaction's marker is still needed.
    librdkafka_produce(b, topic_name, [(b"d", b"d1")])
    tick(b, topic_name)
    passes = whole_log(b).count("cleaned ")
    deadline = time.time() + 30
    while whole_log(b).count("cleaned ") == passes and time.time() < deadline:
        time.sleep(0.3)
    assert markers_removed() == 2
