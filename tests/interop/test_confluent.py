"""librdkafka (confluent-kafka) against Odradek: admin, produce with every codec and acks
setting, consume back exactly without a group, timestamps, limits, restarts."""

import os
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

from conftest import Broker

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def admin(b):
    return AdminClient({"bootstrap.servers": b.bootstrap})


def create(b, name, partitions=3, config=None):
    a = admin(b)  # must outlive the future
    fs = a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})])
    fs[name].result(10)


def produce(b, topic, n, partitions, codec="none", acks="all", base_ts=None, value_bytes=20):
    """Produces n keyed records with headers round-robin over partitions; returns what the
    broker acknowledged: {partition: [(offset, key, value, headers, timestamp)]}."""
    p = Producer(
        {
            "bootstrap.servers": b.bootstrap,
            "acks": acks,
            "compression.type": codec,
            "linger.ms": 5,
            "enable.idempotence": False,
        }
    )
    acked = {}
    errors = []
    base_ts = base_ts or int(time.time() * 1000) - 60_000

    def on_delivery(err, msg):
        if err:
            errors.append(err)
            return
        # Delivery reports carry no headers: rebuild the ones sent from the key.
        i = int(msg.key().decode().split("-")[1])
        headers = [("seq", str(i).encode()), ("codec", codec.encode())]
        acked.setdefault(msg.partition(), []).append((msg.offset(), msg.key(), msg.value(), headers, msg.timestamp()[1]))

    for i in range(n):
        key = f"key-{i}".encode()
        value = (f"value-{i}-" + "x" * value_bytes).encode()
        headers = [("seq", str(i).encode()), ("codec", codec.encode())]
        while True:
            try:
                p.produce(topic, value=value, key=key, headers=headers, partition=i % partitions,
                          timestamp=base_ts + i, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    assert p.flush(60) == 0
    assert not errors, errors[:3]
    return acked


def consume_all(b, topic, partitions, expected_count, timeout=30):
    c = Consumer(
        {
            "bootstrap.servers": b.bootstrap,
            "group.id": "unused-no-commits",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "fetch.wait.max.ms": 100,
        }
    )
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = {}
    n = 0
    deadline = time.time() + timeout
    while n < expected_count and time.time() < deadline:
        for m in c.consume(1000, 0.5):
            assert m.error() is None, m.error()
            got.setdefault(m.partition(), []).append(
                (m.offset(), m.key(), m.value(), m.headers(), m.timestamp()[1])
            )
            n += 1
    c.close()
    return got


def check_exact(acked, got):
    for part, records in acked.items():
        records = sorted(records)
        assert [r[0] for r in records] == list(range(len(records))), "offsets are dense from 0"
        assert got.get(part) == records, f"partition {part} differs"
    assert sum(len(v) for v in got.values()) == sum(len(v) for v in acked.values())


def test_admin_create_describe_alter_delete(broker, topic_name):
    a = admin(broker)
    create(broker, topic_name, 4, {"retention.ms": "3600000"})
    # Creating it again fails as in Kafka.
    with pytest.raises(KafkaException) as e:
        a.create_topics([NewTopic(topic_name, num_partitions=1, replication_factor=1)])[topic_name].result(10)
    assert e.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS
    md = a.list_topics(timeout=10)
    assert len(md.topics[topic_name].partitions) == 4
    res = ConfigResource(ConfigResource.Type.TOPIC, topic_name)
    configs = a.describe_configs([res])[res].result(10)
    assert configs["retention.ms"].value == "3600000"
    assert configs["retention.ms"].source == 1  # DYNAMIC_TOPIC_CONFIG
    assert configs["cleanup.policy"].value == "delete"
    assert configs["cleanup.policy"].is_default
    # Alter (incremental) and read back.
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry

    entry = ConfigEntry("max.message.bytes", "20000", incremental_operation=AlterConfigOpType.SET)
    a.incremental_alter_configs([ConfigResource(ConfigResource.Type.TOPIC, topic_name, incremental_configs=[entry])])[
        res
    ].result(10)
    configs = a.describe_configs([res])[res].result(10)
    assert configs["max.message.bytes"].value == "20000"
    assert configs["retention.ms"].value == "3600000"
    # Grow the topic.
    a.create_partitions([NewPartitions(topic_name, 6)])[topic_name].result(10)
    assert len(a.list_topics(timeout=10).topics[topic_name].partitions) == 6
    a.delete_topics([topic_name])[topic_name].result(10)
    assert topic_name not in a.list_topics(timeout=10).topics


def test_invalid_topic_and_replication_factor(broker, topic_name):
    a = admin(broker)
    with pytest.raises(KafkaException) as e:
        a.create_topics([NewTopic(topic_name, num_partitions=1, replication_factor=3)])[topic_name].result(10)
    assert e.value.args[0].code() == KafkaError.INVALID_REPLICATION_FACTOR
    with pytest.raises(KafkaException) as e:
        a.create_topics([NewTopic("bad/name", num_partitions=1, replication_factor=1)])["bad/name"].result(10)
    assert e.value.args[0].code() == KafkaError.TOPIC_EXCEPTION


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_produce_consume_exact(broker, topic_name, codec, acks):
    create(broker, topic_name, 3)
    n = 300
    acked = produce(broker, topic_name, n, 3, codec=codec, acks=acks)
    got = consume_all(broker, topic_name, 3, n)
    if acks == "0":
        # acks=0: the producer learns no offsets; compare content and order per partition.
        for part in range(3):
            want = [(f"key-{i}".encode(), f"value-{i}-".encode() + b"x" * 20) for i in range(part, n, 3)]
            assert [(r[1], r[2]) for r in got[part]] == want
            assert [r[0] for r in got[part]] == list(range(len(want)))
    else:
        check_exact(acked, got)


def test_ten_thousand_records_round_trip(broker, topic_name):
    create(broker, topic_name, 4)
    acked = produce(broker, topic_name, 10_000, 4, codec="lz4", acks="all")
    got = consume_all(broker, topic_name, 4, 10_000, timeout=60)
    check_exact(acked, got)


def test_offsets_for_times_and_watermarks(broker, topic_name):
    create(broker, topic_name, 1)
    base = int(time.time() * 1000) - 100_000
    produce(broker, topic_name, 100, 1, base_ts=base)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "enable.auto.commit": False})
    r = c.offsets_for_times([TopicPartition(topic_name, 0, base + 42)], timeout=10)
    assert r[0].offset == 42
    r = c.offsets_for_times([TopicPartition(topic_name, 0, base + 1_000_000)], timeout=10)
    assert r[0].offset == -1  # past the last timestamp: no offset (librdkafka reports END)
    assert c.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=10) == (0, 100)
    c.close()


def test_record_over_max_message_bytes_is_rejected(broker, topic_name):
    create(broker, topic_name, 1, {"max.message.bytes": "2000"})
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "enable.idempotence": False, "retries": 0})
    errors = []
    p.produce(topic_name, value=b"x" * 10_000, on_delivery=lambda err, msg: errors.append(err))
    p.flush(10)
    assert len(errors) == 1 and errors[0] is not None
    assert errors[0].code() == KafkaError.MSG_SIZE_TOO_LARGE
    # A small record still goes through.
    errors.clear()
    p.produce(topic_name, value=b"small", on_delivery=lambda err, msg: errors.append(err))
    p.flush(10)
    assert errors == [None]


def test_topics_and_acked_records_survive_restart_and_kill9(fresh_broker, topic_name):
    b = fresh_broker()
    create(b, topic_name, 3, {"retention.ms": "86400000"})
    acked = produce(b, topic_name, 500, 3, codec="zstd", acks="all")
    b.stop()
    b.start()
    a = admin(b)
    md = a.list_topics(timeout=10)
    assert len(md.topics[topic_name].partitions) == 3
    res = ConfigResource(ConfigResource.Type.TOPIC, topic_name)
    assert a.describe_configs([res])[res].result(10)["retention.ms"].value == "86400000"
    check_exact(acked, consume_all(b, topic_name, 3, 500))
    # acks=all, then kill -9: everything acknowledged is still there.
    more = produce(b, topic_name, 500, 3, codec="none", acks="all")
    b.kill9()
    b.start()
    for part, recs in more.items():
        acked[part].extend(recs)
    got = consume_all(b, topic_name, 3, 1000)
    for part, records in acked.items():
        assert got[part][: len(records)] == sorted(records)


def test_consumer_long_poll_is_woken_by_produce(broker, topic_name):
    create(broker, topic_name, 1)
    c = Consumer(
        {"bootstrap.servers": broker.bootstrap, "group.id": "unused", "fetch.wait.max.ms": 10000, "enable.auto.commit": False}
    )
    c.assign([TopicPartition(topic_name, 0, 0)])
    c.consume(10, 1.0)  # starts the fetcher on an empty partition
    t0 = time.time()
    produce(broker, topic_name, 1, 1)
    msgs = []
    while not msgs and time.time() - t0 < 15:
        msgs = [m for m in c.consume(10, 0.2) if m.error() is None]
    elapsed = time.time() - t0
    c.close()
    # Woken by the append, not by the 10 s fetch.wait.max.ms (generous margin for slow machines).
    assert msgs and elapsed < 5.0, f"consumer waited {elapsed:.2f}s for a produced record"


def test_auto_create_on_metadata(broker, topic_name):
    p = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": False})
    errors = []
    p.produce(topic_name, value=b"v", on_delivery=lambda err, msg: errors.append(err))
    p.flush(15)
    assert errors == [None]
    md = admin(broker).list_topics(timeout=10)
    assert len(md.topics[topic_name].partitions) == 3  # --num-partitions 3


def test_log_append_time_topic_across_restart(fresh_broker, topic_name):
    from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME

    b = fresh_broker()
    create(b, topic_name, 1, {"message.timestamp.type": "LogAppendTime"})
    old = int(time.time() * 1000) - 3_600_000
    produce(b, topic_name, 3, 1, base_ts=old)
    b.stop()
    b.start()
    produce(b, topic_name, 3, 1, base_ts=old)
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "unused", "enable.auto.commit": False})
    c.assign([TopicPartition(topic_name, 0, 0)])
    msgs = []
    deadline = time.time() + 15
    while len(msgs) < 6 and time.time() < deadline:
        msgs += [m for m in c.consume(10, 0.5) if m.error() is None]
    c.close()
    assert len(msgs) == 6
    now = time.time() * 1000
    for m in msgs:
        kind, ts = m.timestamp()
        assert kind == TIMESTAMP_LOG_APPEND_TIME
        assert now - 120_000 < ts <= now + 1000


def test_delete_records_describe_cluster_and_topics(broker, topic_name):
    from confluent_kafka import TopicCollection

    create(broker, topic_name, 2)
    produce(broker, topic_name, 100, 2)
    a = admin(broker)
    res = a.delete_records([TopicPartition(topic_name, 0, 20)])
    (fut,) = res.values()
    assert fut.result(10).low_watermark == 20
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "enable.auto.commit": False})
    assert c.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=10) == (20, 50)
    c.assign([TopicPartition(topic_name, 0, 20)])
    first = None
    deadline = time.time() + 10
    while first is None and time.time() < deadline:
        msgs = [m for m in c.consume(1, 0.5) if m.error() is None]
        first = msgs[0] if msgs else None
    c.close()
    assert first is not None and first.offset() == 20
    cluster = a.describe_cluster().result(10)
    assert [n.id for n in cluster.nodes] == [0] and cluster.controller.id == 0
    desc = a.describe_topics(TopicCollection([topic_name]))[topic_name].result(10)
    assert [p.id for p in desc.partitions] == [0, 1]
    assert all(p.leader.id == 0 for p in desc.partitions)


def test_auto_create_disabled(fresh_broker, topic_name):
    b = fresh_broker(args=["--auto-create-topics-enable", "false"])
    md = admin(b).list_topics(topic=topic_name, timeout=10)
    assert md.topics[topic_name].error is not None
    assert md.topics[topic_name].error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    assert topic_name not in admin(b).list_topics(timeout=10).topics


def test_validate_only_and_broker_configs(broker, topic_name):
    a = admin(broker)
    fs = a.create_topics([NewTopic(topic_name, num_partitions=2, replication_factor=1)], validate_only=True)
    fs[topic_name].result(10)
    assert topic_name not in a.list_topics(timeout=10).topics
    with pytest.raises(KafkaException) as e:
        a.create_topics([NewTopic(topic_name, 1, 1, config={"no.such.config": "1"})])[topic_name].result(10)
    assert e.value.args[0].code() == KafkaError.INVALID_CONFIG
    res = ConfigResource(ConfigResource.Type.BROKER, "0")
    configs = a.describe_configs([res])[res].result(10)
    assert configs["num.partitions"].value == "3"
    assert configs["auto.create.topics.enable"].value == "true"


def test_time_retention_deletes_old_segments(broker, topic_name):
    create(broker, topic_name, 1, {"segment.bytes": "1048576", "retention.ms": "60000"})
    # 3 MB of records an hour old, in 1 MiB segments: all but the active one are past retention.
    produce(broker, topic_name, 3000, 1, base_ts=int(time.time() * 1000) - 3_600_000, value_bytes=1000)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "enable.auto.commit": False})
    deadline = time.time() + 20
    low, high = 0, 0
    while time.time() < deadline:
        low, high = c.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=10)
        if low > 0:
            break
        time.sleep(0.5)
    c.close()
    assert high == 3000
    assert 0 < low < 3000, "retention should have deleted the old segments but not the active one"


def test_topic_segment_size_survives_restart(fresh_broker, topic_name):
    b = fresh_broker()
    create(b, topic_name, 1, {"segment.bytes": "1048576"})
    b.stop()
    b.start()
    # 3 MB after the restart: with the topic's 1 MiB segments that is at least three segment
    # files; with the broker default (1 GiB) it would be one.
    produce(b, topic_name, 3000, 1, value_bytes=1000)
    part_dir = os.path.join(b.data_dir, f"{topic_name}-0")
    segments = [f for f in os.listdir(part_dir) if f.endswith(".log")]
    assert len(segments) >= 3, segments
