"""The read side of transactions with real clients: read_committed consumers of librdkafka
(confluent-kafka), kafka-python and the Java client (Kafka's console consumer) see committed
and non-transactional records only, and nothing past an open transaction; read_uncommitted
consumers see every record and no control record. A hanging transaction is found and aborted
with Kafka's own `kafka-transactions.sh` (DescribeProducers, then WriteTxnMarkers) and with
kafka-python's admin client, after which read_committed consumers move past it.

The transactional writes here are raw Produce requests and the COMMIT markers raw
WriteTxnMarkers (kafka-python's encoder), so the partitions' side is tested alone: the broker
runs with `transaction.partition.verification.enable=false`, which lets a transactional batch
in without its coordinator (how a hanging transaction came to be before KIP-890).
Transactions driven by real clients through the coordinator are in test_txn_coordinator.py."""

import os
import socket
import struct
import subprocess
import time

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaAdminClient, KafkaConsumer
from kafka import TopicPartition as KTopicPartition
from kafka.admin import AbortTransactionSpec
from kafka.protocol.producer.transaction import WriteTxnMarkersRequest, WriteTxnMarkersResponse
from kafka.record.default_records import DefaultRecordBatchBuilder

from conftest import ROOT

KAFKA = os.environ.get("KAFKA_DIR", os.path.join(ROOT, "..", "shared", "kafka"))
UNVERIFIED = ["--override", "transaction.partition.verification.enable=false"]


def _recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def _batch(pid, seq, transactional, value):
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=transactional,
                                        producer_id=pid, producer_epoch=0 if pid >= 0 else -1,
                                        base_sequence=seq, batch_size=1 << 20)
    builder.append(0, timestamp=int(time.time() * 1000), key=None, value=value.encode(), headers=[])
    return bytes(builder.build())


def produce(b, topic, batch, txn_id=None):
    """Produce v3 (acks=all) of one batch; the base offset."""
    client = b"txn-test"
    body = struct.pack(">hhih", 0, 3, 1, len(client)) + client
    tid = txn_id.encode() if txn_id else None
    body += struct.pack(">h", -1) if tid is None else struct.pack(">h", len(tid)) + tid
    body += struct.pack(">hi", -1, 10000)
    body += struct.pack(">ih", 1, len(topic)) + topic.encode()
    body += struct.pack(">iii", 1, 0, len(batch)) + batch
    with socket.create_connection(("127.0.0.1", b.port), timeout=10) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _recv_exact(s, 4))
        f = _recv_exact(s, size)
    name_len = struct.unpack(">h", f[8:10])[0]
    pos = 10 + name_len
    _, index, error, base_offset = struct.unpack(">iihq", f[pos:pos + 18])
    assert (index, error) == (0, 0), error
    return base_offset


def commit_marker(b, topic, pid):
    """A COMMIT marker, as the coordinator writes it: WriteTxnMarkers v1."""
    M = WriteTxnMarkersRequest.WritableTxnMarker
    T = M.WritableTxnMarkerTopic
    req = WriteTxnMarkersRequest(version=1, markers=[
        M(producer_id=pid, producer_epoch=0, transaction_result=True,
          topics=[T(name=topic, partition_indexes=[0])], coordinator_epoch=0)])
    req.with_header(correlation_id=5, client_id="txn-test")
    with socket.create_connection(("127.0.0.1", b.port), timeout=10) as s:
        s.sendall(req.encode(header=True, framed=True))
        (size,) = struct.unpack(">i", _recv_exact(s, 4))
        r = WriteTxnMarkersResponse.decode(_recv_exact(s, size), version=1, header=True)
    assert r.markers[0].topics[0].partitions[0].error_code == 0


A, B, C = 11_000, 22_000, 33_000


def setup(b, topic):
    creator = AdminClient({"bootstrap.servers": b.bootstrap})
    creator.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    assert produce(b, topic, _batch(-1, -1, False, "p0")) == 0
    assert produce(b, topic, _batch(A, 0, True, "a-aborted-1"), "tx-a") == 1
    assert produce(b, topic, _batch(B, 0, True, "b-committed"), "tx-b") == 2
    assert produce(b, topic, _batch(A, 1, True, "a-aborted-2"), "tx-a") == 3
    assert produce(b, topic, _batch(-1, -1, False, "p1")) == 4
    commit_marker(b, topic, B)  # 5
    # The abort of A goes through kafka-python's admin client, as an operator would.
    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    producers = admin.describe_producers([KTopicPartition(topic, 0)])
    states = {p.producer_id: p for p in producers[KTopicPartition(topic, 0)].active_producers}
    assert states[A].current_transaction_start_offset == 1 and states[B].current_transaction_start_offset == -1
    admin.abort_transaction(AbortTransactionSpec(topic_partition=KTopicPartition(topic, 0), producer_id=A,
                                                 producer_epoch=0, coordinator_epoch=states[A].coordinator_epoch))
    admin.close()
    assert produce(b, topic, _batch(C, 0, True, "c-hanging"), "tx-c") == 7
    assert produce(b, topic, _batch(-1, -1, False, "p2")) == 8


COMMITTED = ["p0", "b-committed", "p1"]
EVERYTHING = ["p0", "a-aborted-1", "b-committed", "a-aborted-2", "p1", "c-hanging", "p2"]


def librdkafka_values(b, topic, isolation, expect):
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": f"g-{topic}-{isolation}-{len(expect)}",
                  "isolation.level": isolation, "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, 0, 0)])
    got, quiet_since = [], None
    deadline = time.time() + 30
    while time.time() < deadline:
        m = c.poll(0.2)
        if m is None:
            # Once what is expected came, wait a little for anything that should not.
            if len(got) >= len(expect):
                quiet_since = quiet_since or time.time()
                if time.time() - quiet_since > 1.5:
                    break
            continue
        if m.error():
            continue
        got.append(m.value().decode())
    c.close()
    return got


def kafka_python_values(b, topic, isolation, expect):
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, isolation_level=isolation, enable_auto_commit=False,
                      consumer_timeout_ms=2500)
    tp = KTopicPartition(topic, 0)
    c.assign([tp])
    c.seek(tp, 0)
    got = [m.value.decode() for m in c]
    end = c.end_offsets([tp])[tp]
    c.close()
    return got, end


def java_values(b, topic, isolation, tmp_path):
    env = dict(os.environ, LOG_DIR=str(tmp_path / "logs"))
    out = subprocess.run(
        [os.path.join(KAFKA, "bin", "kafka-console-consumer.sh"), "--bootstrap-server", b.bootstrap, "--topic", topic,
         "--from-beginning", "--isolation-level", isolation, "--timeout-ms", "6000"],
        capture_output=True, text=True, env=env, timeout=120)
    return out.stdout.split()


def test_read_committed_consumers_skip_aborted_and_stop_at_open_transactions(fresh_broker, topic_name, tmp_path):
    b = fresh_broker(UNVERIFIED)
    setup(b, topic_name)
    assert librdkafka_values(b, topic_name, "read_committed", COMMITTED) == COMMITTED
    assert librdkafka_values(b, topic_name, "read_uncommitted", EVERYTHING) == EVERYTHING
    assert kafka_python_values(b, topic_name, "read_committed", COMMITTED) == (COMMITTED, 7)
    assert kafka_python_values(b, topic_name, "read_uncommitted", EVERYTHING) == (EVERYTHING, 9)
    assert java_values(b, topic_name, "read_committed", tmp_path) == COMMITTED
    assert java_values(b, topic_name, "read_uncommitted", tmp_path) == EVERYTHING


def test_kafka_transactions_tool_aborts_a_hanging_transaction(fresh_broker, topic_name, tmp_path):
    b = fresh_broker(UNVERIFIED)
    setup(b, topic_name)
    env = dict(os.environ, LOG_DIR=str(tmp_path / "logs"))
    tool = os.path.join(KAFKA, "bin", "kafka-transactions.sh")
    described = subprocess.run([tool, "--bootstrap-server", b.bootstrap, "describe-producers", "--topic", topic_name,
                                "--partition", "0"], capture_output=True, text=True, env=env, timeout=120)
    assert described.returncode == 0, described.stderr[-2000:]
    rows = {r.split()[0]: r.split() for r in described.stdout.strip().splitlines()[1:]}
    # Producer C's transaction is open from offset 7; A's was aborted, B's committed.
    assert (rows[str(C)][5], rows[str(A)][5], rows[str(B)][5]) == ("7", "None", "None"), described.stdout
    aborted = subprocess.run([tool, "--bootstrap-server", b.bootstrap, "abort", "--topic", topic_name,
                              "--partition", "0", "--start-offset", "7"],
                             capture_output=True, text=True, env=env, timeout=120)
    assert aborted.returncode == 0, aborted.stderr[-2000:]
    expected = COMMITTED + ["p2"]
    assert librdkafka_values(b, topic_name, "read_committed", expected) == expected
    assert kafka_python_values(b, topic_name, "read_committed", expected) == (expected, 10)
    assert java_values(b, topic_name, "read_committed", tmp_path) == expected
    # And after a kill -9 the aborted transactions are still known to read_committed fetches.
    b.kill9()
    b.start()
    assert librdkafka_values(b, topic_name, "read_committed", expected) == expected
