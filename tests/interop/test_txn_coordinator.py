"""Transactions driven by real clients through Odradek's transaction coordinator: librdkafka
(confluent-kafka), kafka-python and Kafka's Java client (a small program compiled here with
javac against ../shared/kafka) each begin, commit and abort transactions, and the three
clients' read_committed and read_uncommitted consumers (librdkafka, kafka-python, Kafka's
console consumer) see exactly what they should; an open transaction holds read_committed
consumers and ListOffsets back; consume-transform-produce with the group's offsets sent to
the transaction is exactly once, also across a broker kill -9 in the middle of a transaction;
a zombie producer is fenced; a hanging transaction is aborted at its timeout; Kafka's
kafka-transactions.sh lists and describes transactions."""

import os
import subprocess
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTopicPartition

from conftest import ROOT

KAFKA = os.environ.get("KAFKA_DIR", os.path.join(ROOT, "..", "shared", "kafka"))
JAVA_SRC = os.path.join(os.path.dirname(__file__), "java", "TxnClient.java")


def create(b, *topics, partitions=1):
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    for f in admin.create_topics([NewTopic(t, partitions, 1) for t in topics]).values():
        f.result(30)


def librdkafka_read(b, topic, partitions, isolation, expect_count, timeout=30):
    """(partition, value) of every record, in partition then offset order."""
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": f"reader-{topic}-{isolation}-{time.time()}",
                  "isolation.level": isolation, "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got, quiet_since = [], None
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = c.poll(0.2)
        if m is None:
            if len(got) >= expect_count:
                quiet_since = quiet_since or time.time()
                if time.time() - quiet_since > 1.5:
                    break
            continue
        if m.error():
            continue
        got.append((m.partition(), m.offset(), m.value().decode()))
    c.close()
    return [(p, v) for p, _, v in sorted(got)]


def kafka_python_read(b, topic, partitions, isolation):
    """(records as (partition, value), end offsets) with kafka-python."""
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, isolation_level=isolation, enable_auto_commit=False,
                      consumer_timeout_ms=3000)
    tps = [KTopicPartition(topic, p) for p in range(partitions)]
    c.assign(tps)
    for tp in tps:
        c.seek(tp, 0)
    got = sorted((m.partition, m.offset, m.value.decode()) for m in c)
    ends = c.end_offsets(tps)
    c.close()
    return [(p, v) for p, _, v in got], [ends[tp] for tp in tps]


def java_console_read(b, topic, isolation, tmp_path, expect_count):
    env = dict(os.environ, LOG_DIR=str(tmp_path / "logs"))
    out = subprocess.run(
        [os.path.join(KAFKA, "bin", "kafka-console-consumer.sh"), "--bootstrap-server", b.bootstrap, "--topic", topic,
         "--from-beginning", "--isolation-level", isolation, "--timeout-ms", "6000",
         "--max-messages", str(expect_count)],
        capture_output=True, text=True, env=env, timeout=120)
    return sorted(out.stdout.split())


@pytest.fixture(scope="module")
def java_client(tmp_path_factory):
    """Compiles TxnClient.java; returns a function running it with arguments."""
    out = tmp_path_factory.mktemp("java")
    libs = os.path.join(KAFKA, "libs", "*")
    subprocess.run(["javac", "-cp", libs, "-d", str(out), JAVA_SRC], check=True, capture_output=True, timeout=300)

    def run(*args, timeout=180):
        r = subprocess.run(["java", "-cp", f"{out}:{libs}", "-Dlog4j.configuration=file:/dev/null", "TxnClient",
                            *args], capture_output=True, text=True, timeout=timeout)
        assert r.returncode == 0, r.stderr[-3000:]
        return r.stdout.split()

    return run


def check_all_readers(b, topic, partitions, committed, everything, tmp_path):
    """Every client's read_committed and read_uncommitted consumer sees exactly these."""
    assert librdkafka_read(b, topic, partitions, "read_committed", len(committed)) == committed
    assert librdkafka_read(b, topic, partitions, "read_uncommitted", len(everything)) == everything
    assert kafka_python_read(b, topic, partitions, "read_committed")[0] == committed
    assert kafka_python_read(b, topic, partitions, "read_uncommitted")[0] == everything
    values = lambda rows: sorted(v for _, v in rows)
    assert java_console_read(b, topic, "read_committed", tmp_path, len(committed)) == values(committed)
    assert java_console_read(b, topic, "read_uncommitted", tmp_path, len(everything)) == values(everything)


def test_librdkafka_commit_abort_and_an_open_transaction(fresh_broker, topic_name, tmp_path):
    b = fresh_broker()
    create(b, topic_name, partitions=2)
    p = Producer({"bootstrap.servers": b.bootstrap, "transactional.id": f"{topic_name}-rd"})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(4):
        p.produce(topic_name, value=f"rd-c-{i}".encode(), partition=i % 2)
    p.commit_transaction(30)
    p.begin_transaction()
    for i in range(3):
        p.produce(topic_name, value=f"rd-a-{i}".encode(), partition=0)
    p.flush(30)
    p.abort_transaction(30)
    # A plain producer's records are visible at once, also to read_committed consumers.
    plain = Producer({"bootstrap.servers": b.bootstrap})
    plain.produce(topic_name, value=b"plain-0", partition=1)
    plain.flush(30)
    # An open transaction: read_uncommitted consumers see it, read_committed ones stop before it.
    p.begin_transaction()
    p.produce(topic_name, value=b"rd-open", partition=1)
    p.flush(30)
    plain.produce(topic_name, value=b"plain-1", partition=1)
    plain.flush(30)
    committed = [(0, "rd-c-0"), (0, "rd-c-2"), (1, "rd-c-1"), (1, "rd-c-3"), (1, "plain-0")]
    everything = [(0, "rd-c-0"), (0, "rd-c-2"), (0, "rd-a-0"), (0, "rd-a-1"), (0, "rd-a-2"),
                  (1, "rd-c-1"), (1, "rd-c-3"), (1, "plain-0"), (1, "rd-open"), (1, "plain-1")]
    check_all_readers(b, topic_name, 2, committed, everything, tmp_path)
    # ListOffsets for read_committed is the last stable offset. Partition 0: two records, a
    # COMMIT marker, three aborted records and their ABORT marker; partition 1: rd-c-1,
    # rd-c-3, their marker, plain-0, then the open transaction at offset 4 and plain-1.
    assert kafka_python_read(b, topic_name, 2, "read_committed")[1] == [7, 4]
    assert kafka_python_read(b, topic_name, 2, "read_uncommitted")[1] == [7, 6]
    p.commit_transaction(30)
    committed = committed + [(1, "rd-open"), (1, "plain-1")]
    assert librdkafka_read(b, topic_name, 2, "read_committed", len(committed)) == committed
    assert kafka_python_read(b, topic_name, 2, "read_committed") == (committed, [7, 7])


def test_kafka_python_transactional_producer(fresh_broker, topic_name, tmp_path):
    b = fresh_broker()
    create(b, topic_name, partitions=2)
    p = KafkaProducer(bootstrap_servers=b.bootstrap, transactional_id=f"{topic_name}-kp")
    p.init_transactions()
    p.begin_transaction()
    for i in range(4):
        p.send(topic_name, value=f"kp-c-{i}".encode(), partition=i % 2)
    p.commit_transaction()
    p.begin_transaction()
    p.send(topic_name, value=b"kp-a-0", partition=1)
    p.flush()
    p.abort_transaction()
    p.begin_transaction()
    p.send(topic_name, value=b"kp-c-4", partition=1)
    p.commit_transaction()
    p.close()
    committed = [(0, "kp-c-0"), (0, "kp-c-2"), (1, "kp-c-1"), (1, "kp-c-3"), (1, "kp-c-4")]
    everything = [(0, "kp-c-0"), (0, "kp-c-2"), (1, "kp-c-1"), (1, "kp-c-3"), (1, "kp-a-0"), (1, "kp-c-4")]
    check_all_readers(b, topic_name, 2, committed, everything, tmp_path)


def test_java_transactional_producer(fresh_broker, topic_name, tmp_path, java_client):
    b = fresh_broker()
    create(b, topic_name, partitions=2)
    assert java_client("produce", b.bootstrap, topic_name, f"{topic_name}-java") == ["done"]
    committed = [(0, "java-c-0"), (0, "java-c-2"), (0, "java-c-4"), (1, "java-c-1"), (1, "java-c-3"),
                 (1, "java-c-5")]
    everything = [(0, "java-c-0"), (0, "java-c-2"), (0, "java-c-4"), (0, "java-a-0"), (0, "java-a-1"),
                  (0, "java-a-2"), (1, "java-c-1"), (1, "java-c-3"), (1, "java-c-5")]
    check_all_readers(b, topic_name, 2, committed, everything, tmp_path)


def committed_offset(b, group, topic):
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group})
    (tp,) = c.committed([TopicPartition(topic, 0)], timeout=30)
    c.close()
    return tp.offset


def fill(b, topic, count):
    p = Producer({"bootstrap.servers": b.bootstrap})
    for i in range(count):
        p.produce(topic, value=f"v{i:04d}".encode(), partition=0)
    p.flush(30)


def test_java_consume_transform_produce_is_exactly_once(fresh_broker, topic_name, java_client):
    b = fresh_broker()
    src, dst = topic_name + "-in", topic_name + "-out"
    create(b, src, dst)
    fill(b, src, 50)
    assert java_client("ctp", b.bootstrap, src, dst, topic_name + "-g", topic_name + "-ctp", "50") == ["done"]
    out = librdkafka_read(b, dst, 1, "read_committed", 50)
    assert [v for _, v in out] == [f"V{i:04d}" for i in range(50)]
    assert committed_offset(b, topic_name + "-g", src) == 50


def test_librdkafka_consume_transform_produce_across_kill9(fresh_broker, topic_name):
    """Transactions of 10 records; the broker is killed (-9) twice in the middle of one,
    after its records were sent and before its commit. Whatever the client meets (a commit
    that still succeeds, or an abortable error and a rewind to the committed offsets), the
    output holds every input record exactly once and the group's offset is at the end."""
    b = fresh_broker()
    src, dst, group = topic_name + "-in", topic_name + "-out", topic_name + "-g"
    create(b, src, dst)
    fill(b, src, 100)
    # librdkafka 2.16 re-bootstraps when every broker it knows is down, and its group
    # coordinator cache keeps pointing at the decommissioned broker handle: the next
    # send_offsets_to_transaction then waits forever for it (the same with any one-broker
    # cluster). Without re-bootstrap it reconnects to the restarted broker as it should.
    conf = {"bootstrap.servers": b.bootstrap, "message.timeout.ms": 60000, "socket.timeout.ms": 10000,
            "metadata.recovery.strategy": "none"}
    producer = Producer(dict(conf, **{"transactional.id": topic_name + "-ctp"}))
    producer.init_transactions(60)
    consumer = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "isolation.level": "read_committed",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(src, 0)])
    kills, txns, deadline = 0, 0, time.time() + 180
    while committed_offset(b, group, src) < 100 and time.time() < deadline:
        msgs = [m for m in consumer.consume(10, timeout=2) if not m.error()]
        if not msgs:
            continue
        producer.begin_transaction()
        for m in msgs:
            producer.produce(dst, value=m.value().upper(), partition=0)
        txns += 1
        try:
            producer.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                                 consumer.consumer_group_metadata(), 60)
            if txns in (3, 6):
                kills += 1
                b.kill9()
                b.start()
            producer.commit_transaction(60)
        except KafkaException as e:
            err = e.args[0]
            assert not err.fatal(), err
            if err.retriable():
                producer.commit_transaction(60)
                continue
            assert err.txn_requires_abort(), err
            producer.abort_transaction(60)
            # Rewind to what the group committed: the aborted records are done again.
            (tp,) = consumer.committed([TopicPartition(src, 0)], timeout=30)
            consumer.seek(TopicPartition(src, 0, max(tp.offset, 0)))
    consumer.close()
    assert kills == 2
    out = librdkafka_read(b, dst, 1, "read_committed", 100)
    assert [v for _, v in out] == [f"V{i:04d}" for i in range(100)]
    assert committed_offset(b, group, src) == 100


def test_zombie_producers_are_fenced(fresh_broker, topic_name, java_client):
    b = fresh_broker()
    create(b, topic_name)
    # librdkafka: a second instance's init_transactions fences the first.
    first = Producer({"bootstrap.servers": b.bootstrap, "transactional.id": topic_name + "-z"})
    first.init_transactions(30)
    first.begin_transaction()
    first.produce(topic_name, value=b"rd-zombie-0", partition=0)
    first.flush(30)
    second = Producer({"bootstrap.servers": b.bootstrap, "transactional.id": topic_name + "-z"})
    second.init_transactions(30)
    first.produce(topic_name, value=b"rd-zombie-1", partition=0)
    with pytest.raises(KafkaException) as fenced:
        first.commit_transaction(30)
    assert fenced.value.args[0].fatal(), fenced.value.args[0]
    second.begin_transaction()
    second.produce(topic_name, value=b"rd-second", partition=0)
    second.commit_transaction(30)
    # The Java client: the same, with ProducerFencedException.
    assert java_client("zombie", b.bootstrap, topic_name, topic_name + "-jz") == ["fenced", "done"]
    got = librdkafka_read(b, topic_name, 1, "read_committed", 2)
    assert got == [(0, "rd-second"), (0, "second-0")]


def transactions_tool(b, tmp_path, *args):
    env = dict(os.environ, LOG_DIR=str(tmp_path / "logs"))
    r = subprocess.run([os.path.join(KAFKA, "bin", "kafka-transactions.sh"), "--bootstrap-server", b.bootstrap,
                        *args], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    return [line.split() for line in r.stdout.strip().splitlines()]


def test_a_hanging_transaction_is_aborted_at_its_timeout(fresh_broker, topic_name, tmp_path):
    b = fresh_broker(["--override", "transaction.abort.timed.out.transaction.cleanup.interval.ms=300"])
    create(b, topic_name)
    p = Producer({"bootstrap.servers": b.bootstrap, "transactional.id": topic_name + "-h",
                  "transaction.timeout.ms": 8000})
    p.init_transactions(30)
    p.begin_transaction()
    started = time.time()
    p.produce(topic_name, value=b"hanging", partition=0)
    p.flush(30)
    plain = Producer({"bootstrap.servers": b.bootstrap})
    plain.produce(topic_name, value=b"after", partition=0)
    plain.flush(30)
    assert librdkafka_read(b, topic_name, 1, "read_committed", 0, timeout=2) == []
    (listed,) = [r for r in transactions_tool(b, tmp_path, "list")[1:] if r[0] == topic_name + "-h"]
    assert listed[3] == "Ongoing", listed
    assert time.time() - started < 8, "too slow to see the transaction open"
    time.sleep(max(0.0, started + 9.5 - time.time()))
    # The coordinator aborted it, with the producer's epoch bumped: read_committed consumers
    # move on, and the producer learns it was fenced.
    assert librdkafka_read(b, topic_name, 1, "read_committed", 1) == [(0, "after")]
    header, row = transactions_tool(b, tmp_path, "describe", "--transactional-id", topic_name + "-h")
    described = dict(zip(header, row))
    assert described["TransactionState"] == "CompleteAbort", described
    assert described["ProducerEpoch"] == "1", described
    with pytest.raises(KafkaException):
        p.commit_transaction(10)


def test_kafka_transactions_tool_lists_and_describes(fresh_broker, topic_name, tmp_path):
    b = fresh_broker()
    create(b, topic_name, partitions=2)
    done = Producer({"bootstrap.servers": b.bootstrap, "transactional.id": topic_name + "-done"})
    done.init_transactions(30)
    done.begin_transaction()
    done.produce(topic_name, value=b"x", partition=0)
    done.commit_transaction(30)
    open_ = Producer({"bootstrap.servers": b.bootstrap, "transactional.id": topic_name + "-open"})
    open_.init_transactions(30)
    open_.begin_transaction()
    open_.produce(topic_name, value=b"y", partition=0)
    open_.produce(topic_name, value=b"z", partition=1)
    open_.flush(30)
    rows = transactions_tool(b, tmp_path, "list")
    assert rows[0] == ["TransactionalId", "Coordinator", "ProducerId", "TransactionState"]
    states = {r[0]: r[3] for r in rows[1:]}
    assert states == {topic_name + "-done": "CompleteCommit", topic_name + "-open": "Ongoing"}
    header, row = transactions_tool(b, tmp_path, "describe", "--transactional-id", topic_name + "-open")
    # The last column (the partitions) is "topic-0,topic-1".
    described = dict(zip(header, row))
    assert described["TransactionState"] == "Ongoing"
    assert described["ProducerEpoch"] == "0"
    assert sorted(row[-1].split(",")) == [f"{topic_name}-0", f"{topic_name}-1"], row
    assert int(described["TransactionTimeoutMs"]) == 60000
    open_.abort_transaction(30)
