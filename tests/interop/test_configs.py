"""Topic configs as Kafka 3.8 answers them: a matrix of valid, invalid and boundary values
through librdkafka's AdminClient, kafka-python's KafkaAdminClient and Kafka's own Java
kafka-topics.sh / kafka-configs.sh; and what configs do once accepted (recompression to the
topic's codec, flush.* in DescribeConfigs, min.insync.replicas on one node), and Kafka's answer
to a Produce for a topic that does not exist.

The expectations were recorded from the JVM Kafka 3.8 reference broker
(../shared/kafka/bin-odradek/kafka-start.sh). Set KAFKA_REFERENCE=host:port of a running one
to check the same matrix against it too (test_the_matrix_matches_the_reference_broker).
"""

import os
import socket
import struct
import subprocess
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from conftest import ROOT

KAFKA = os.environ.get("KAFKA_DIR", os.path.join(ROOT, "..", "shared", "kafka"))
LONG_MAX = "9223372036854775807"

# (config, value, None if Kafka 3.8 accepts it at CreateTopics, else the end of its message).
MATRIX = [
    ("cleanup.policy", "compact,delete", None),
    ("cleanup.policy", "", None),
    ("cleanup.policy", "delete,shred", "Invalid value shred for configuration cleanup.policy: String must be one of: compact, delete"),
    ("compression.type", "uncompressed", None),
    ("compression.type", "none", "String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer"),
    ("compression.gzip.level", "9", None),
    ("compression.gzip.level", "0", "Value must be between 1 and 9 or equal to -1"),
    ("compression.lz4.level", "17", None),
    ("compression.lz4.level", "18", "Value must be no more than 17"),
    ("compression.zstd.level", "-131072", None),
    ("compression.zstd.level", "23", "Value must be no more than 22"),
    ("delete.retention.ms", "0", None),
    ("delete.retention.ms", "-1", "Value must be at least 0"),
    ("file.delete.delay.ms", "-1", "Value must be at least 0"),
    ("flush.messages", "1", None),
    ("flush.messages", "0", "Invalid value 0 for configuration flush.messages: Value must be at least 1"),
    ("flush.ms", "0", None),
    ("flush.ms", "-1", "Value must be at least 0"),
    ("follower.replication.throttled.replicas", "0:0,1:0", None),
    ("leader.replication.throttled.replicas", "x:y", "must be the literal '*' or a list of replicas"),
    ("index.interval.bytes", "0", None),
    ("index.interval.bytes", "-1", "Value must be at least 0"),
    ("local.retention.ms", "-2", None),
    ("local.retention.bytes", "-3", "Value must be at least -2"),
    ("max.compaction.lag.ms", "1", None),
    ("max.compaction.lag.ms", "0", "Value must be at least 1"),
    ("max.message.bytes", "2147483647", None),
    ("max.message.bytes", "2147483648", "Not a number of type INT"),
    ("message.downconversion.enable", "TRUE", None),
    ("message.downconversion.enable", "yes", "Expected value to be either true or false"),
    ("message.format.version", "2.8-IV1", None),
    ("message.format.version", "3.9", "Version 3.9 is not a valid version"),
    ("message.timestamp.after.max.ms", "0", None),
    ("message.timestamp.before.max.ms", "-1", "Value must be at least 0"),
    ("message.timestamp.difference.max.ms", "0", None),
    ("message.timestamp.type", "LogAppendTime", None),
    ("message.timestamp.type", "createtime", "String must be one of: CreateTime, LogAppendTime"),
    ("min.cleanable.dirty.ratio", "1", None),
    ("min.cleanable.dirty.ratio", "0", None),
    ("min.cleanable.dirty.ratio", "7", "Invalid value 7.0 for configuration min.cleanable.dirty.ratio: Value must be no more than 1"),
    ("min.cleanable.dirty.ratio", "-0.1", "Value must be at least 0"),
    ("min.compaction.lag.ms", "-1", "Value must be at least 0"),
    ("min.insync.replicas", "2", None),
    ("min.insync.replicas", "0", "Value must be at least 1"),
    ("preallocate", "true", None),
    ("preallocate", "1", "Expected value to be either true or false"),
    ("remote.storage.enable", "false", None),
    ("remote.storage.enable", "true", "Tiered Storage functionality is disabled in the broker"),
    ("retention.bytes", "-2", None),
    ("retention.ms", "-1", None),
    ("retention.ms", "-2", "Invalid value -2 for configuration retention.ms: Value must be at least -1"),
    ("retention.ms", "1e3", "Not a number of type LONG"),
    ("segment.bytes", "14", None),
    ("segment.bytes", "13", "Invalid value 13 for configuration segment.bytes: Value must be at least 14"),
    ("segment.index.bytes", "4", None),
    ("segment.index.bytes", "3", "Value must be at least 4"),
    ("segment.jitter.ms", "-1", "Value must be at least 0"),
    ("segment.ms", "1", None),
    ("segment.ms", "0", "Value must be at least 1"),
    ("unclean.leader.election.enable", "yes", "Expected value to be either true or false"),
    ("no.such.config", "1", "Unknown topic config name: no.such.config"),
]


def validate_matrix(bootstrap):
    """CreateTopics(validate_only) of one topic per row: {(name, value): None or message}."""
    a = AdminClient({"bootstrap.servers": bootstrap})
    topics = [NewTopic(f"matrix-{i}", 1, 1, config={k: v}) for i, (k, v, _) in enumerate(MATRIX)]
    futures = a.create_topics(topics, validate_only=True, request_timeout=20)
    got = {}
    for i, (k, v, _) in enumerate(MATRIX):
        try:
            futures[f"matrix-{i}"].result(20)
            got[(k, v)] = None
        except Exception as e:  # KafkaException carrying the broker's error
            err = e.args[0]
            assert err.code() == KafkaError.INVALID_CONFIG, (k, v, err)
            got[(k, v)] = err.str()
    return got


def check_matrix(got):
    for k, v, want in MATRIX:
        if want is None:
            assert got[(k, v)] is None, f"{k}={v}: refused: {got[(k, v)]}"
        else:
            assert got[(k, v)] is not None and want in got[(k, v)], f"{k}={v}: {got[(k, v)]!r}, want {want!r}"


def test_the_matrix_with_librdkafka(broker):
    check_matrix(validate_matrix(broker.bootstrap))


@pytest.mark.skipif(not os.environ.get("KAFKA_REFERENCE"), reason="KAFKA_REFERENCE (JVM Kafka host:port) not set")
def test_the_matrix_matches_the_reference_broker():
    check_matrix(validate_matrix(os.environ["KAFKA_REFERENCE"]))


def test_the_matrix_with_kafka_python(broker, topic_name):
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource as PyResource, ConfigResourceType, NewTopic as PyTopic
    from kafka.errors import InvalidConfigurationError

    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10_000)
    try:
        for k, v, want in MATRIX[::4]:
            t = PyTopic(f"{topic_name}-py", 1, 1, topic_configs={k: v})
            if want is None:
                a.create_topics([t], validate_only=True)
            else:
                with pytest.raises(InvalidConfigurationError):
                    a.create_topics([t], validate_only=True)
        a.create_topics([PyTopic(topic_name, 1, 1, topic_configs={"min.compaction.lag.ms": "10"})])
        # AlterConfigs (the legacy API kafka-python speaks): the cross-config check sees the
        # whole new set, and a refused alter leaves the topic as it was.
        res = a.alter_configs([PyResource(ConfigResourceType.TOPIC, topic_name,
                                          configs={"min.compaction.lag.ms": "10", "max.compaction.lag.ms": "5"})])
        answer = res["topic"][topic_name]
        assert "Error 40" in answer and "min.compaction.lag.ms (10) > max.compaction.lag.ms (5)" in answer, answer
        res = a.alter_configs([PyResource(ConfigResourceType.TOPIC, topic_name, configs={"segment.bytes": "14"})])
        assert res["topic"][topic_name] == "OK", res
    finally:
        a.close()


def kafka_tool(tool, *args, tmp_path):
    env = dict(os.environ, LOG_DIR=str(tmp_path / "kafka-logs"))
    return subprocess.run([os.path.join(KAFKA, "bin", tool), *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_kafka_topics_and_kafka_configs_answer_as_against_kafka(broker, topic_name, tmp_path):
    b = ["--bootstrap-server", broker.bootstrap]
    r = kafka_tool("kafka-topics.sh", *b, "--create", "--topic", topic_name + "-bad", "--config", "segment.bytes=13",
                   tmp_path=tmp_path)
    assert r.returncode != 0
    assert "Invalid value 13 for configuration segment.bytes: Value must be at least 14" in r.stdout + r.stderr
    r = kafka_tool("kafka-topics.sh", *b, "--create", "--topic", topic_name, "--partitions", "1",
                   "--config", "segment.bytes=14", "--config", "min.cleanable.dirty.ratio=1",
                   "--config", "flush.ms=1000", "--config", "compression.type=zstd", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    r = kafka_tool("kafka-configs.sh", *b, "--alter", "--entity-type", "topics", "--entity-name", topic_name,
                   "--add-config", "min.cleanable.dirty.ratio=7", tmp_path=tmp_path)
    assert r.returncode != 0
    assert "Value must be no more than 1" in r.stdout + r.stderr
    r = kafka_tool("kafka-configs.sh", *b, "--alter", "--entity-type", "topics", "--entity-name", topic_name,
                   "--add-config", "retention.ms=-1,cleanup.policy=[compact,delete]", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    r = kafka_tool("kafka-configs.sh", *b, "--describe", "--all", "--entity-type", "topics",
                   "--entity-name", topic_name, tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = {line.strip().split("=", 1)[0]: line.strip() for line in r.stdout.splitlines() if "=" in line}
    # What JVM Kafka 3.8 prints for the same topic.
    assert lines["flush.ms"].startswith("flush.ms=1000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:flush.ms=1000")
    assert lines["cleanup.policy"] == ("cleanup.policy=compact,delete sensitive=false synonyms="
                                       "{DYNAMIC_TOPIC_CONFIG:cleanup.policy=compact,delete, "
                                       "DEFAULT_CONFIG:log.cleanup.policy=delete}")
    assert lines["compression.gzip.level"] == ("compression.gzip.level=-1 sensitive=false synonyms="
                                               "{DEFAULT_CONFIG:compression.gzip.level=-1}")
    assert lines["remote.storage.enable"] == "remote.storage.enable=false sensitive=false synonyms={}"
    assert lines["segment.index.bytes"] == ("segment.index.bytes=10485760 sensitive=false synonyms="
                                            "{DEFAULT_CONFIG:log.index.size.max.bytes=10485760}")


def describe(b, topic, *names):
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    res = ConfigResource("topic", topic)
    configs = a.describe_configs([res])[res].result(10)
    return {n: configs[n] for n in names}


def test_describe_shows_static_broker_settings_and_synonyms(fresh_broker, topic_name):
    b = fresh_broker(args=["--override", "log.flush.interval.ms=1000", "--override", "log.retention.hours=24"])
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic(topic_name, 1, 1, config={"segment.bytes": "2000000"})])[topic_name].result(10)
    c = describe(b, topic_name, "flush.ms", "retention.ms", "segment.bytes", "flush.messages")
    # As JVM Kafka 3.8 with the same server.properties lines.
    assert (c["flush.ms"].value, int(c["flush.ms"].source)) == ("1000", 4)
    assert [(s.name, s.value, int(s.source)) for s in c["flush.ms"].synonyms.values()] == [
        ("log.flush.interval.ms", "1000", 4), ("log.flush.scheduler.interval.ms", LONG_MAX, 5)]
    assert (c["segment.bytes"].value, int(c["segment.bytes"].source)) == ("2000000", 1)
    assert list(c["segment.bytes"].synonyms)[0] == "segment.bytes"
    assert c["retention.ms"].value == str(24 * 3600 * 1000)
    assert (c["flush.messages"].value, int(c["flush.messages"].source)) == (LONG_MAX, 5)
    # Topic override first, then the broker's.
    res = ConfigResource("topic", topic_name, incremental_configs=[
        ConfigEntry("flush.ms", "5", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res])[res].result(10)
    c = describe(b, topic_name, "flush.ms")["flush.ms"]
    assert (c.value, int(c.source)) == ("5", 1)
    assert [s.name for s in c.synonyms.values()] == ["flush.ms", "log.flush.interval.ms",
                                                       "log.flush.scheduler.interval.ms"]


def test_unsupported_flush_settings_stop_the_broker_with_a_reason(tmp_path):
    from conftest import BIN, free_port

    for bad in ["log.flush.interval.messages=0", "log.retention.check.interval.ms=0"]:
        r = subprocess.run([BIN, "serve", "--listeners", f"127.0.0.1:{free_port()}", "--data-dir",
                            str(tmp_path / "d"), "--override", bad], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and bad.split("=")[0] in r.stderr, r.stderr


def test_flush_messages_count_is_accepted_and_records_survive_kill9(fresh_broker, topic_name, tmp_path):
    """flush.messages=3 set by kafka-configs.sh: librdkafka's acks=all and acks=1 records are
    readable at once by kafka-python, with keys, values and headers, and still all there after
    kill -9 (the count only decides when the log syncs; the engine's tests count the syncs)."""
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KpTopicPartition

    b = fresh_broker()
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic(topic_name, 1, 1)])[topic_name].result(10)
    r = kafka_tool("kafka-configs.sh", "--bootstrap-server", b.bootstrap, "--alter", "--entity-type", "topics",
                   "--entity-name", topic_name, "--add-config", "flush.messages=3", tmp_path=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    c = describe(b, topic_name, "flush.messages")["flush.messages"]
    assert (c.value, int(c.source)) == ("3", 1)
    want = []
    for acks in ("all", "1"):
        p = Producer({"bootstrap.servers": b.bootstrap, "acks": acks, "linger.ms": 0})
        for i in range(4):
            k, v = f"{acks}-k{i}".encode(), f"value {i} acks={acks}".encode()
            p.produce(topic_name, key=k, value=v, headers=[("n", str(i).encode())])
            p.flush(10)  # one batch each: the count is crossed in the middle of a run
            want.append((len(want), k, v, [("n", str(i).encode())]))
        assert p.flush(10) == 0

    def read():
        kc = KafkaConsumer(bootstrap_servers=b.bootstrap, enable_auto_commit=False, consumer_timeout_ms=3000)
        tp = KpTopicPartition(topic_name, 0)
        kc.assign([tp])
        kc.seek_to_beginning(tp)
        got = []
        for m in kc:
            got.append((m.offset, m.key, m.value, list(m.headers)))
            if len(got) == len(want):
                break
        kc.close()
        return got

    assert read() == want
    b.kill9()
    b.start()
    assert read() == want


def fetch_v4_first_batch(b, topic):
    """The first stored batch of partition 0 as a raw Fetch v4 returns it."""
    name = topic.encode()
    body = (struct.pack(">iiiib", -1, 100, 1, 1 << 20, 0) + struct.pack(">ih", 1, len(name)) + name
            + struct.pack(">iiqi", 1, 0, 0, 1 << 20))
    payload = struct.pack(">hhih", 1, 4, 1, 3) + b"raw" + body
    with socket.create_connection(("127.0.0.1", b.port), timeout=10) as s:
        s.sendall(struct.pack(">i", len(payload)) + payload)
        size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
        resp = b""
        while len(resp) < size:
            resp += s.recv(size - len(resp))
    pos = 4 + 4 + 4  # correlation id, throttle time, topic count
    (n,) = struct.unpack(">h", resp[pos:pos + 2])
    pos += 2 + n + 4  # topic name, partition count
    _, err, _, _ = struct.unpack(">ihqq", resp[pos:pos + 22])
    assert err == 0
    pos += 22
    (aborted,) = struct.unpack(">i", resp[pos:pos + 4])
    pos += 4 + max(aborted, 0) * 16
    (records,) = struct.unpack(">i", resp[pos:pos + 4])
    return resp[pos + 4:pos + 4 + records]


CODEC_BITS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def librdkafka_read(b, topic, n, timeout=30):
    """Up to `n` messages of `topic` from the beginning, read by a librdkafka consumer."""
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": topic, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got = []
    deadline = time.time() + timeout
    while len(got) < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m)
    c.close()
    return got


@pytest.mark.parametrize("topic_codec,producer_codec", [("lz4", "gzip"), ("uncompressed", "zstd"), ("gzip", "none")])
def test_batches_are_recompressed_to_the_topics_codec(broker, topic_name, topic_codec, producer_codec):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic(topic_name, 1, 1, config={"compression.type": topic_codec})])[topic_name].result(10)
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": producer_codec, "linger.ms": 20})
    sent = [(f"k{i}".encode(), f"value {i} ".encode() * 20) for i in range(50)]
    for k, v in sent:
        p.produce(topic_name, v, k, partition=0, headers=[("i", k)])
    assert p.flush(15) == 0
    got = [(m.key(), m.value(), m.offset(), m.headers()) for m in librdkafka_read(broker, topic_name, len(sent))]
    assert [(k, v) for k, v, _, _ in got] == sent
    assert [o for _, _, o, _ in got] == list(range(len(sent)))
    assert all(h == [("i", k)] for k, _, _, h in got)
    batch = fetch_v4_first_batch(broker, topic_name)
    attributes = struct.unpack(">h", batch[21:23])[0]
    assert attributes & 0x07 == CODEC_BITS.get(topic_codec, 0)


def test_lz4_level_takes_effect_on_recompression(broker, topic_name, tmp_path):
    """compression.lz4.level, set with kafka-python's admin client: the same uncompressed batch
    from kafka-python is stored smaller at level 12 than at Kafka's default 9 (the fast
    encoder), librdkafka reads both back exactly, and Kafka's Java console consumer reads the
    level-12 (liblz4 high-compression) frames."""
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic as KpNewTopic

    ka = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    topics = {level: f"{topic_name}-l{level}" for level in (9, 12)}
    ka.create_topics([KpNewTopic(t, 1, 1, topic_configs={"compression.type": "lz4", "compression.lz4.level": str(lvl)})
                      for lvl, t in topics.items()])
    ka.close()
    sent = [(f"k{i}".encode(), f"sensor {i % 13} reading {(i * 7919) % 1000} status ok ".encode() * 8)
            for i in range(200)]
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=50, batch_size=1 << 20)
    for t in topics.values():
        for k, v in sent:
            p.send(t, v, k, partition=0)
        p.flush(15)
    p.close()
    sizes = {}
    for level, t in topics.items():
        batch = fetch_v4_first_batch(broker, t)
        assert struct.unpack(">h", batch[21:23])[0] & 0x07 == CODEC_BITS["lz4"]
        sizes[level] = len(batch)
        assert [(m.key(), m.value()) for m in librdkafka_read(broker, t, len(sent))] == sent, t
    assert sizes[12] < sizes[9], sizes
    r = kafka_tool("kafka-console-consumer.sh", "--bootstrap-server", broker.bootstrap, "--topic", topics[12],
                   "--from-beginning", "--max-messages", str(len(sent)), "--property", "print.key=true",
                   tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert [line for line in r.stdout.splitlines() if line] == [f"{k.decode()}\t{v.decode()}" for k, v in sent]


def test_produce_to_an_unknown_topic_does_not_create_it(fresh_broker, topic_name):
    from kafka import KafkaProducer
    from kafka.errors import KafkaTimeoutError

    # Raw Produce v3 with auto-creation on: UNKNOWN_TOPIC_OR_PARTITION, and no topic.
    b = fresh_broker()
    name = topic_name.encode()
    records = bytes(61)  # never read: the topic is looked up first
    body = (struct.pack(">hhi", -1, -1, 5000) + struct.pack(">ih", 1, len(name)) + name
            + struct.pack(">iii", 1, 0, len(records)) + records)
    payload = struct.pack(">hhih", 0, 3, 1, 3) + b"raw" + body
    with socket.create_connection(("127.0.0.1", b.port), timeout=10) as s:
        s.sendall(struct.pack(">i", len(payload)) + payload)
        size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
        resp = s.recv(size, socket.MSG_WAITALL)
    pos = 4 + 4 + 2 + len(name) + 4
    index, err = struct.unpack(">ih", resp[pos:pos + 6])
    assert (index, err) == (0, 3)
    assert topic_name not in AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=10).topics

    # Clients, with auto-creation off: librdkafka fails the message, kafka-python its send.
    b = fresh_broker(args=["--auto-create-topics-enable", "false"])
    errors = []
    p = Producer({"bootstrap.servers": b.bootstrap, "message.timeout.ms": 3000})
    p.produce(topic_name, b"x", on_delivery=lambda err, m: errors.append(err))
    p.flush(10)
    assert errors and errors[0].code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC,
                                           KafkaError._MSG_TIMED_OUT), errors
    kp = KafkaProducer(bootstrap_servers=b.bootstrap, max_block_ms=2000)
    with pytest.raises(KafkaTimeoutError):
        kp.send(topic_name, b"x").get(5)
    kp.close()
    assert topic_name not in AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=10).topics


def test_min_insync_replicas_2_on_one_replica_accepts_acks_all_as_kafka_3_8(broker, topic_name):
    """Kafka 3.8 enforces min(min.insync.replicas, replicas): on a replication-factor-1 topic
    acks=all succeeds with min.insync.replicas=2 (checked on the JVM broker), and so here."""
    from kafka import KafkaProducer

    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic(topic_name, 1, 1, config={"min.insync.replicas": "2"})])[topic_name].result(10)
    res = []
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "enable.idempotence": False})
    p.produce(topic_name, b"x", on_delivery=lambda err, m: res.append((err, m.offset())))
    p.flush(10)
    assert res == [(None, 0)]
    kp = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    assert kp.send(topic_name, b"y").get(10).offset == 1
    kp.close()
