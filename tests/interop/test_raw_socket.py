"""Malformed and hostile frames on raw sockets: each gets Kafka's error response or a closed
connection, never a crash; a normal request succeeds right after each, and a connection
opened before them carries on."""

import os
import socket
import struct
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition


def header(api_key, version, correlation_id, client_id=b"raw"):
    return struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id


def frame(payload):
    return struct.pack(">i", len(payload)) + payload


def connect(b):
    s = socket.create_connection(("127.0.0.1", b.port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def recv_frame(s):
    (size,) = struct.unpack(">i", recv_exact(s, 4))
    return recv_exact(s, size)


def api_versions_v0(s, correlation_id=7):
    s.sendall(frame(header(18, 0, correlation_id)))
    body = recv_frame(s)
    cid, err, count = struct.unpack(">ihi", body[:10])
    assert cid == correlation_id and err == 0 and count > 10
    return body


def metadata_v1_all(s, correlation_id=9):
    s.sendall(frame(header(3, 1, correlation_id) + struct.pack(">i", -1)))
    body = recv_frame(s)
    assert struct.unpack(">i", body[:4])[0] == correlation_id
    return body


def assert_closed(s, timeout=10):
    s.settimeout(timeout)
    try:
        data = s.recv(65536)
        while data:
            data = s.recv(65536)
    except ConnectionResetError:
        pass
    s.close()


def healthy(b):
    s = connect(b)
    api_versions_v0(s)
    metadata_v1_all(s)
    s.close()


@pytest.fixture
def bystander(broker):
    """A connection opened before the bad input, used again after it."""
    s = connect(broker)
    api_versions_v0(s, 1)
    yield s
    api_versions_v0(s, 2)
    metadata_v1_all(s, 3)
    s.close()


BAD_FRAMES = {
    "negative_size": struct.pack(">i", -5),
    "size_below_header": struct.pack(">i", 3) + b"abc",
    "size_over_limit": struct.pack(">i", 0x7FFFFFF0) + b"x" * 100,
    "unknown_api_key": frame(header(999, 0, 1)),
    "unsupported_metadata_version": frame(header(3, 99, 1)),
    "produce_v2_removed_in_kafka_4": frame(header(0, 2, 1) + b"\x00" * 20),
    "garbage": struct.pack(">i", 64) + os.urandom(64),
    "truncated_header": frame(struct.pack(">hhi", 3, 1, 5) + b"\x00\x10ab"),
    # Metadata v1 with 2^31-1 topics announced and none present.
    "absurd_array_count": frame(header(3, 1, 1) + struct.pack(">i", 0x7FFFFFFF)),
    # Metadata v9 (flexible): compact array with a huge varint count.
    "absurd_compact_count": frame(
        struct.pack(">hhih", 3, 9, 1, 3) + b"raw" + b"\x00" + b"\xff\xff\xff\xff\x0f"
    ),
    # Produce v9 (flexible) announcing a huge records length.
    "absurd_records_length": frame(
        struct.pack(">hhih", 0, 9, 1, 3) + b"raw" + b"\x00" + b"\x00" + struct.pack(">hi", 1, 1000)
        + b"\x02" + b"\x02t" + b"\x02" + struct.pack(">i", 0) + b"\xff\xff\xff\x7f"
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_FRAMES))
def test_bad_frame_closes_connection_only(broker, bystander, name):
    s = connect(broker)
    s.sendall(BAD_FRAMES[name])
    assert_closed(s)
    assert broker.alive()
    healthy(broker)


def test_truncated_body_then_hangup(broker, bystander):
    s = connect(broker)
    s.sendall(struct.pack(">i", 1000) + header(18, 0, 1))
    s.shutdown(socket.SHUT_WR)
    assert_closed(s)
    healthy(broker)


def test_unsupported_api_versions_version_gets_v0_error(broker, bystander):
    s = connect(broker)
    s.sendall(frame(header(18, 99, 42)))
    body = recv_frame(s)
    cid, err, count = struct.unpack(">ihi", body[:10])
    assert (cid, err) == (42, 35)  # UNSUPPORTED_VERSION
    entries = [struct.unpack(">hhh", body[10 + 6 * i: 16 + 6 * i]) for i in range(count)]
    assert (18, 0, 4) in entries
    # The connection stays usable.
    api_versions_v0(s)
    s.close()


def test_pipelined_requests_answer_in_order(broker):
    s = connect(broker)
    s.sendall(b"".join(frame(header(18 if i % 2 else 3, 0, 1000 + i) + (b"" if i % 2 else struct.pack(">i", 0)))
                       for i in range(64)))
    for i in range(64):
        body = recv_frame(s)
        assert struct.unpack(">i", body[:4])[0] == 1000 + i
    s.close()


def test_many_connections_at_once(broker):
    conns = [connect(broker) for _ in range(100)]
    for i, s in enumerate(conns):
        s.sendall(frame(header(18, 0, i)))
    for i, s in enumerate(conns):
        assert struct.unpack(">i", recv_frame(s)[:4])[0] == i
        s.close()


def test_produce_and_consume_after_abuse(broker, topic_name):
    for bad in BAD_FRAMES.values():
        s = connect(broker)
        s.sendall(bad)
        assert_closed(s)
    p = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": False})
    errors = []
    p.produce(topic_name, key=b"k", value=b"after", partition=0, on_delivery=lambda e, m: errors.append(e))
    p.flush(15)
    assert errors == [None]
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "enable.auto.commit": False})
    c.assign([TopicPartition(topic_name, 0, 0)])
    deadline = time.time() + 10
    msgs = []
    while not msgs and time.time() < deadline:
        msgs = [m for m in c.consume(10, 0.5) if m.error() is None]
    c.close()
    assert msgs and msgs[0].value() == b"after"


def test_connection_limit(fresh_broker):
    b = fresh_broker(args=["--override", "max.connections=5"])
    # The fixture's readiness probe counts until the broker has seen it close: retry until the
    # five slots are free.
    deadline = time.time() + 10
    while True:
        conns = [connect(b) for _ in range(5)]
        try:
            for s in conns:
                api_versions_v0(s)
            break
        except (ConnectionError, OSError):
            for s in conns:
                s.close()
            assert time.time() < deadline, "five connections never fitted under max.connections=5"
            time.sleep(0.2)
    extra = connect(b)
    assert_closed(extra)
    conns.pop().close()
    # Once the broker has seen that close, there is room again.
    deadline = time.time() + 10
    while True:
        s = connect(b)
        try:
            api_versions_v0(s)
            break
        except (ConnectionError, OSError):
            s.close()
            assert time.time() < deadline, "the closed connection's slot was never freed"
            time.sleep(0.1)
    for c in conns + [s]:
        c.close()


def test_request_size_limit(fresh_broker):
    b = fresh_broker(args=["--override", "socket.request.max.bytes=1000"])
    s = connect(b)
    s.sendall(struct.pack(">i", 2000) + b"x" * 2000)
    assert_closed(s)
    healthy(b)


def fetch_v7(s, session_id, epoch, correlation_id=11):
    body = struct.pack(">iiiibii", -1, 0, 0, 1 << 20, 0, session_id, epoch) + struct.pack(">ii", 0, 0)
    s.sendall(frame(header(1, 7, correlation_id) + body))
    resp = recv_frame(s)
    cid, _throttle, err, sid = struct.unpack(">iihi", resp[:14])
    assert cid == correlation_id
    return err, sid


def test_fetch_session_ids(broker):
    s = connect(broker)
    assert fetch_v7(s, 0, -1) == (0, 0)  # sessionless
    assert fetch_v7(s, 987654, 3) == (70, 0)  # FETCH_SESSION_ID_NOT_FOUND
    assert fetch_v7(s, 0, 5)[0] == 71  # INVALID_FETCH_SESSION_EPOCH
    err, sid = fetch_v7(s, 0, 0)  # a new full session
    assert err == 0 and sid > 0
    assert fetch_v7(s, sid, 1) == (0, sid)
    assert fetch_v7(s, sid, 1)[0] == 71  # epoch already used
    assert fetch_v7(s, sid, 2) == (0, sid)
    assert fetch_v7(s, sid, -1) == (0, 0)  # closed
    assert fetch_v7(s, sid, 3)[0] == 70
    s.close()


def test_fetch_long_poll_honours_max_wait_and_min_bytes(broker, topic_name):
    from confluent_kafka.admin import AdminClient, NewTopic

    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic(topic_name, num_partitions=1, replication_factor=1)])[topic_name].result(10)
    name = topic_name.encode()

    def fetch(max_wait_ms, min_bytes):
        topics = struct.pack(">ih", 1, len(name)) + name + struct.pack(">iiqqi", 1, 0, 0, -1, 1 << 20)
        body = struct.pack(">iiiibii", -1, max_wait_ms, min_bytes, 1 << 20, 0, 0, -1) + topics + struct.pack(">i", 0)
        s = connect(broker)
        t0 = time.time()
        s.sendall(frame(header(1, 7, 5) + body))
        resp = recv_frame(s)
        s.close()
        assert struct.unpack(">ihi", resp[4:14])[1] == 0
        return time.time() - t0

    assert 0.55 <= fetch(600, 1) < 5.0  # nothing to read: waits max_wait_ms
    assert fetch(10_000, 0) < 5.0  # min_bytes 0: answers at once, not after max_wait_ms


def test_acks_zero_error_closes_the_connection(broker, topic_name):
    from confluent_kafka.admin import AdminClient, NewTopic

    # A Produce never creates a topic (only Metadata does, as in Kafka): create it first.
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic(topic_name, num_partitions=3, replication_factor=1)])[topic_name].result(10)
    name = topic_name.encode()
    # Produce v3, acks=0, to a partition that does not exist (the topic has 3).
    body = (struct.pack(">hhi", -1, 0, 1000) + struct.pack(">ih", 1, len(name)) + name
            + struct.pack(">iii", 1, 99, 0))
    s = connect(broker)
    s.sendall(frame(header(0, 3, 1) + body))
    assert_closed(s)
    healthy(broker)


def test_idle_connections_are_closed(fresh_broker):
    b = fresh_broker(args=["--override", "connections.max.idle.ms=500"])
    s = connect(b)
    api_versions_v0(s)
    t0 = time.time()
    assert_closed(s)
    assert 0.4 < time.time() - t0 < 8
    healthy(b)


def test_second_broker_on_the_same_port_refuses_to_start(broker, tmp_path):
    import subprocess

    from conftest import BIN

    r = subprocess.run([BIN, "serve", "--listeners", broker.bootstrap, "--data-dir", str(tmp_path / "d")],
                       capture_output=True, timeout=30)
    assert r.returncode != 0
    assert b"already answers" in r.stderr
    healthy(broker)


def test_clean_shutdown_stops_listening_at_once(fresh_broker):
    b = fresh_broker()
    healthy(b)
    b.stop()
    # No listening socket outlives the process (an io_uring accept in flight used to keep one
    # alive for a moment, completing handshakes nobody would answer).
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", b.port), timeout=2).close()


def describe_broker_configs_v1(s, name, correlation_id):
    """DescribeConfigs v1 for one BROKER resource; returns (error code, error message)."""
    body = struct.pack(">ibh", 1, 4, len(name)) + name + struct.pack(">i", -1) + b"\x00"
    s.sendall(frame(header(32, 1, correlation_id) + body))
    resp = recv_frame(s)
    cid, _throttle, count, err, msg_len = struct.unpack(">iiihh", resp[:16])
    assert (cid, count) == (correlation_id, 1)
    msg = resp[16:16 + msg_len].decode() if msg_len >= 0 else None
    return err, msg


def test_describe_configs_of_another_broker_id_is_refused(broker):
    s = connect(broker)
    # This broker is node 0: its own id and the empty name describe it, another id does not.
    assert describe_broker_configs_v1(s, b"0", 1)[0] == 0
    assert describe_broker_configs_v1(s, b"", 2)[0] == 0
    err, msg = describe_broker_configs_v1(s, b"7", 3)
    assert err == 42 and "received 7" in msg  # INVALID_REQUEST
    s.close()
