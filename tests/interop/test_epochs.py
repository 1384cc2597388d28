"""Leader epochs as Kafka clients see them. Every start of the broker is a new leader epoch for
each partition it leads (as a restart is on Kafka): Metadata reports it, appends carry it,
ListOffsets and OffsetForLeaderEpoch answer with it, and requests naming an older or newer
epoch are refused with FENCED_LEADER_EPOCH (74) or UNKNOWN_LEADER_EPOCH (75). Clients that
cached the old epoch must recover on their own: librdkafka, the Java consumer (Kafka's console
consumer) and kafka-python's encoders against brokers these tests start and restart."""

import os
import socket
import struct
import subprocess
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka.protocol.consumer.offsets import (
    ListOffsetsRequest,
    ListOffsetsResponse,
    OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse,
)

from conftest import ROOT

KAFKA = os.environ.get("KAFKA_DIR", os.path.join(ROOT, "..", "shared", "kafka"))
FENCED_LEADER_EPOCH = 74
UNKNOWN_LEADER_EPOCH = 75


def create(b, topic, partitions=1):
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)


def produce(b, topic, values):
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all"})
    for v in values:
        p.produce(topic, v, partition=0)
    assert p.flush(30) == 0


def restart(b):
    b.stop()
    b.start()


def consume(consumer, n, timeout=60):
    got = []
    deadline = time.time() + timeout
    while len(got) < n and time.time() < deadline:
        m = consumer.poll(1)
        if m is None or m.error():
            continue
        got.append((m.offset(), m.value(), m.leader_epoch()))
    return got


def test_each_start_is_a_new_epoch_stamped_on_appends(fresh_broker, topic_name):
    b = fresh_broker()
    create(b, topic_name)
    produce(b, topic_name, [b"a0", b"a1", b"a2"])
    restart(b)
    produce(b, topic_name, [b"b0", b"b1"])
    restart(b)
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": topic_name, "enable.auto.commit": False})
    c.assign([TopicPartition(topic_name, 0, 0)])
    got = consume(c, 5)
    c.close()
    assert got == [(0, b"a0", 0), (1, b"a1", 0), (2, b"a2", 0), (3, b"b0", 1), (4, b"b1", 1)]
    md = AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(topic_name, timeout=10)
    assert md.topics[topic_name].partitions[0].leader == 0


def test_librdkafka_consumer_follows_the_new_epoch_across_a_restart(fresh_broker, topic_name):
    b = fresh_broker()
    create(b, topic_name)
    produce(b, topic_name, [b"x0", b"x1", b"x2"])
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": topic_name, "enable.auto.commit": False,
                  "topic.metadata.refresh.interval.ms": 1000})
    c.assign([TopicPartition(topic_name, 0, 0)])
    assert consume(c, 3) == [(0, b"x0", 0), (1, b"x1", 0), (2, b"x2", 0)]
    # The consumer's cached epoch is 0; after the restart its fetches are fenced until it
    # refreshes metadata and validates its position, then it goes on from offset 3.
    restart(b)
    produce(b, topic_name, [b"y0", b"y1"])
    assert consume(c, 2) == [(3, b"y0", 1), (4, b"y1", 1)]
    c.close()


def test_java_console_consumer_follows_the_new_epoch_across_a_restart(fresh_broker, topic_name, tmp_path):
    b = fresh_broker()
    create(b, topic_name)
    produce(b, topic_name, [b"j0", b"j1", b"j2"])
    env = dict(os.environ, LOG_DIR=str(tmp_path / "kafka-logs"))
    proc = subprocess.Popen(
        [os.path.join(KAFKA, "bin", "kafka-console-consumer.sh"), "--bootstrap-server", b.bootstrap,
         "--topic", topic_name, "--from-beginning", "--max-messages", "5", "--timeout-ms", "90000",
         "--property", "print.offset=true"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    deadline = time.time() + 60
    while len(lines) < 3 and time.time() < deadline:
        time.sleep(0.2)
    assert len(lines) == 3, lines
    restart(b)
    produce(b, topic_name, [b"k0", b"k1"])
    proc.wait(timeout=120)
    reader.join(10)
    assert proc.returncode == 0, proc.stderr.read()[-3000:]
    assert [l.strip() for l in lines] == [
        "Offset:0\tj0", "Offset:1\tj1", "Offset:2\tj2", "Offset:3\tk0", "Offset:4\tk1"]


def _call(b, request, response_class, version):
    request.with_header(correlation_id=11, client_id="epochs-test")
    with socket.create_connection(("127.0.0.1", b.port), timeout=10) as s:
        s.sendall(request.encode(header=True, framed=True))
        size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
        data = b""
        while len(data) < size:
            chunk = s.recv(size - len(data))
            assert chunk, "connection closed"
            data += chunk
    return response_class.decode(data, version=version, header=True)


def list_offsets(b, topic, current_leader_epoch):
    T = ListOffsetsRequest.ListOffsetsTopic
    P = T.ListOffsetsPartition
    req = ListOffsetsRequest(version=4, replica_id=-1, isolation_level=0, topics=[
        T(name=topic, partitions=[P(partition_index=0, current_leader_epoch=current_leader_epoch, timestamp=-1)])])
    r = _call(b, req, ListOffsetsResponse, 4)
    p = r.topics[0].partitions[0]
    return p.error_code, p.offset, p.leader_epoch


def end_offset_for_epoch(b, topic, current_leader_epoch, leader_epoch):
    T = OffsetForLeaderEpochRequest.OffsetForLeaderTopic
    P = T.OffsetForLeaderPartition
    req = OffsetForLeaderEpochRequest(version=3, replica_id=-1, topics=[
        T(topic=topic, partitions=[P(partition=0, current_leader_epoch=current_leader_epoch,
                                     leader_epoch=leader_epoch)])])
    r = _call(b, req, OffsetForLeaderEpochResponse, 3)
    p = r.topics[0].partitions[0]
    return p.error_code, p.leader_epoch, p.end_offset


def test_requests_naming_another_epoch_are_fenced_kafka_python_encoders(fresh_broker, topic_name):
    b = fresh_broker()
    create(b, topic_name)
    produce(b, topic_name, [b"e0", b"e1"])
    restart(b)
    produce(b, topic_name, [b"f0"])
    # This start leads in epoch 1.
    assert list_offsets(b, topic_name, 1) == (0, 3, 1)
    assert list_offsets(b, topic_name, -1) == (0, 3, 1)
    assert list_offsets(b, topic_name, 0)[0] == FENCED_LEADER_EPOCH
    assert list_offsets(b, topic_name, 2)[0] == UNKNOWN_LEADER_EPOCH
    # Epoch 0 ended where epoch 1 began (offset 2); epoch 1 ends at the log end.
    assert end_offset_for_epoch(b, topic_name, 1, 0) == (0, 0, 2)
    assert end_offset_for_epoch(b, topic_name, 1, 1) == (0, 1, 3)
    assert end_offset_for_epoch(b, topic_name, 0, 0)[0] == FENCED_LEADER_EPOCH
    assert end_offset_for_epoch(b, topic_name, 7, 0)[0] == UNKNOWN_LEADER_EPOCH
