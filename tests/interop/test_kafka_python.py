"""kafka-python (an independent pure-Python implementation) against Odradek."""

import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic
from kafka.errors import MessageSizeTooLargeError, TopicAlreadyExistsError

CODECS = [None, "gzip", "snappy", "lz4", "zstd"]


def admin(b):
    return KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=10_000)


def produce(b, topic, n, partitions, codec=None, acks="all", base_ts=None, **extra):
    p = KafkaProducer(bootstrap_servers=b.bootstrap, acks=acks if acks == "all" else int(acks),
                      compression_type=codec, linger_ms=5, **extra)
    base_ts = base_ts or int(time.time() * 1000) - 60_000
    futures = []
    for i in range(n):
        headers = [("seq", str(i).encode()), ("codec", str(codec).encode())]
        f = p.send(topic, key=f"key-{i}".encode(), value=f"value-{i}".encode(), headers=headers,
                   partition=i % partitions, timestamp_ms=base_ts + i)
        futures.append((i, headers, f))
    p.flush(30)
    acked = {}
    for i, headers, f in futures:
        md = f.get(10)
        acked.setdefault(md.partition, []).append(
            (md.offset, f"key-{i}".encode(), f"value-{i}".encode(), headers, base_ts + i))
    p.close()
    return acked


def consume(b, topic, partitions, expected, timeout=30):
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100)
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    got = {}
    n = 0
    deadline = time.time() + timeout
    while n < expected and time.time() < deadline:
        for tp, msgs in c.poll(timeout_ms=500).items():
            for m in msgs:
                got.setdefault(tp.partition, []).append(
                    (m.offset, m.key, m.value, [(k, v) for k, v in m.headers], m.timestamp))
                n += 1
    c.close()
    return got


def test_admin_round_trip(broker, topic_name):
    a = admin(broker)
    a.create_topics([NewTopic(topic_name, 2, 1, topic_configs={"segment.bytes": "1048576"})])
    with pytest.raises(TopicAlreadyExistsError):
        a.create_topics([NewTopic(topic_name, 2, 1)])
    assert topic_name in a.list_topics()
    desc = a.describe_topics([topic_name])
    assert len(desc[0]["partitions"]) == 2
    cfg = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic_name)])
    assert "segment.bytes" in str(cfg)
    a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic_name, configs={"retention.ms": "1234567"})])
    cfg = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic_name)])
    assert "1234567" in str(cfg)
    a.create_partitions({topic_name: NewPartitions(total_count=3)})
    assert len(a.describe_topics([topic_name])[0]["partitions"]) == 3
    a.delete_topics([topic_name])
    assert topic_name not in a.list_topics()
    a.close()


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("acks", ["1", "all"])
def test_produce_consume_exact(broker, topic_name, codec, acks):
    a = admin(broker)
    a.create_topics([NewTopic(topic_name, 3, 1)])
    a.close()
    acked = produce(broker, topic_name, 200, 3, codec=codec, acks=acks)
    got = consume(broker, topic_name, 3, 200)
    for part, records in acked.items():
        records = sorted(records)
        assert [r[0] for r in records] == list(range(len(records)))
        assert got.get(part) == records


def test_acks_zero(broker, topic_name):
    a = admin(broker)
    a.create_topics([NewTopic(topic_name, 1, 1)])
    a.close()
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, acks=0)
    for i in range(100):
        p.send(topic_name, key=b"k", value=str(i).encode(), partition=0)
    p.flush()
    p.close()
    got = consume(broker, topic_name, 1, 100)
    assert [int(r[2]) for r in got[0]] == list(range(100))


def test_default_idempotent_producer(broker, topic_name):
    # kafka-python 3 enables idempotence by default (InitProducerId).
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)
    md = p.send(topic_name, value=b"hello").get(15)
    assert md.offset == 0
    p.close()


def test_offsets_for_times(broker, topic_name):
    a = admin(broker)
    a.create_topics([NewTopic(topic_name, 1, 1)])
    a.close()
    base = int(time.time() * 1000) - 100_000
    produce(broker, topic_name, 50, 1, base_ts=base)
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    tp = TopicPartition(topic_name, 0)
    r = c.offsets_for_times({tp: base + 10})
    assert r[tp].offset == 10 and r[tp].timestamp == base + 10
    assert c.beginning_offsets([tp])[tp] == 0
    assert c.end_offsets([tp])[tp] == 50
    c.close()


def test_message_too_large(broker, topic_name):
    a = admin(broker)
    a.create_topics([NewTopic(topic_name, 1, 1, topic_configs={"max.message.bytes": "1000"})])
    a.close()
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, retries=0, enable_idempotence=False)
    with pytest.raises(MessageSizeTooLargeError):
        p.send(topic_name, value=b"x" * 5000).get(10)
    assert p.send(topic_name, value=b"ok").get(10).offset == 0
    p.close()


def test_incremental_fetch_session_sees_new_records(broker, topic_name):
    # kafka-python opens a KIP-227 fetch session and then sends incremental fetches: records
    # produced between polls must arrive through the session, in order, without repeats.
    a = admin(broker)
    a.create_topics([NewTopic(topic_name, 4, 1)])
    a.close()
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100)
    tps = [TopicPartition(topic_name, i) for i in range(4)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    seen = []
    for round_ in range(5):
        for i in range(20):
            p.send(topic_name, value=f"{round_}-{i}".encode(), partition=i % 4)
        p.flush()
        deadline = time.time() + 10
        while len(seen) < 20 * (round_ + 1) and time.time() < deadline:
            for tp, msgs in c.poll(timeout_ms=200).items():
                seen.extend((tp.partition, m.offset, m.value.decode()) for m in msgs)
    c.close()
    p.close()
    assert len(seen) == 100
    for part in range(4):
        offsets = [o for p_, o, _ in seen if p_ == part]
        assert offsets == list(range(25))


def test_describe_log_dirs_and_cluster(broker, topic_name):
    a = admin(broker)
    a.create_topics([NewTopic(topic_name, 2, 1)])
    produce(broker, topic_name, 10, 2)
    dirs = a.describe_log_dirs()
    assert topic_name in str(dirs)
    cluster = a.describe_cluster()
    assert cluster["controller_id"] == 0
    a.close()
