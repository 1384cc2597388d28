"""Idempotent producers with real clients: librdkafka (confluent-kafka), kafka-python and the
Java client (Kafka's own verifiable producer).

The faults are real: clients reach the broker through a proxy that lets every few Produce
requests through to the broker and then cuts the connection before their response comes back,
so the client cannot know whether the batch was stored and sends it again; and a broker is
killed with SIGKILL and restarted under a producer that keeps sending. Each record must then be
stored exactly once, in the order it was sent. A control run without idempotence shows the
proxy really makes clients resend stored batches (it stores duplicates)."""

import os
import socket
import struct
import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaProducer
from kafka.record.default_records import DefaultRecordBatchBuilder

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
KAFKA = os.environ.get("KAFKA_DIR", os.path.join(ROOT, "..", "shared", "kafka"))

PRODUCE = 0


def _recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _recv_frame(s):
    head = _recv_exact(s, 4)
    if head is None:
        return None
    (size,) = struct.unpack(">i", head)
    body = _recv_exact(s, size)
    return None if body is None else head + body


class LossyProxy:
    """Forwards Kafka connections to `upstream_port`; every `every`-th Produce response is lost:
    the request reached the broker, then the connection is cut before its answer is passed on."""

    def __init__(self, every):
        self.every = every
        self.upstream_port = None
        self.lock = threading.Lock()
        self.produce_answers = 0
        self.cut = 0
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def close(self):
        self.closed = True
        self.listener.close()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=30)
        except OSError:
            client.close()
            return
        pending = {}

        def cut():
            for s in (client, upstream):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

        def requests():
            while True:
                f = _recv_frame(client)
                if f is None:
                    return cut()
                api_key, _, correlation_id = struct.unpack(">hhi", f[4:12])
                pending[correlation_id] = api_key
                try:
                    upstream.sendall(f)
                except OSError:
                    return cut()

        threading.Thread(target=requests, daemon=True).start()
        while True:
            try:
                f = _recv_frame(upstream)
            except OSError:
                f = None
            if f is None:
                return cut()
            (correlation_id,) = struct.unpack(">i", f[4:8])
            if pending.pop(correlation_id, None) == PRODUCE:
                with self.lock:
                    self.produce_answers += 1
                    lose = self.produce_answers % self.every == 0
                    self.cut += lose
                if lose:
                    return cut()
            try:
                client.sendall(f)
            except OSError:
                return cut()


@pytest.fixture
def proxied(fresh_broker):
    """A broker whose clients all go through a LossyProxy (it advertises the proxy's address)."""
    made = []

    def make(every=4):
        proxy = LossyProxy(every)
        b = fresh_broker(args=["--advertised-listeners", proxy.bootstrap])
        proxy.upstream_port = b.port
        made.append(proxy)
        return b, proxy

    yield make
    for p in made:
        p.close()


def create_topic(b, topic):
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    # The broker advertises the proxy: admin calls go through it too, and it passes them on.
    a.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)


def consume_values(bootstrap, topic, expected_at_least, timeout=60):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{topic}", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, 0, 0)])
    out = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            if len(out) >= expected_at_least:
                # Nothing more within a poll: any duplicates would have come by now.
                break
            continue
        assert m.error() is None, m.error()
        out.append((m.offset(), m.value().decode()))
    c.close()
    offsets = [o for o, _ in out]
    assert offsets == list(range(len(out))), "offsets are dense from 0"
    return [v for _, v in out]


def librdkafka_produce(bootstrap, topic, values, idempotent):
    conf = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 2, "batch.num.messages": 20,
            "message.timeout.ms": 120000, "retry.backoff.ms": 20, "enable.idempotence": idempotent}
    if not idempotent:
        # Retries without idempotence, in order: what the duplicates come from.
        conf.update({"max.in.flight.requests.per.connection": 1, "retries": 1000})
    p = Producer(conf)
    failed = []
    for v in values:
        p.produce(topic, v.encode(), on_delivery=lambda err, msg: failed.append(err) if err else None)
        p.poll(0)
    assert p.flush(120) == 0
    assert failed == []


VALUES = [f"m{i:05d}" for i in range(1500)]


def test_librdkafka_resends_after_lost_answers_are_stored_once(proxied, topic_name):
    b, proxy = proxied(every=4)
    create_topic(b, topic_name)
    librdkafka_produce(proxy.bootstrap, topic_name, VALUES, idempotent=True)
    assert proxy.cut >= 3, f"the proxy cut only {proxy.cut} connections"
    assert consume_values(proxy.bootstrap, topic_name, len(VALUES)) == VALUES


def test_without_idempotence_the_same_faults_store_duplicates(proxied, topic_name):
    """The control: the faults above do make clients resend batches the broker stored."""
    b, proxy = proxied(every=4)
    create_topic(b, topic_name)
    librdkafka_produce(proxy.bootstrap, topic_name, VALUES, idempotent=False)
    got = consume_values(proxy.bootstrap, topic_name, len(VALUES))
    assert proxy.cut >= 3
    assert len(got) > len(VALUES) and sorted(set(got)) == VALUES, "expected duplicates of stored batches"


def test_kafka_python_resends_after_lost_answers_are_stored_once(proxied, topic_name):
    b, proxy = proxied(every=4)
    create_topic(b, topic_name)
    p = KafkaProducer(bootstrap_servers=proxy.bootstrap, enable_idempotence=True, acks="all", linger_ms=2,
                      batch_size=2048, retries=1000, retry_backoff_ms=20, request_timeout_ms=10000,
                      delivery_timeout_ms=120000)
    futures = [p.send(topic_name, v.encode()) for v in VALUES]
    p.flush(120)
    for f in futures:
        f.get(timeout=1)
    p.close()
    assert proxy.cut >= 3, f"the proxy cut only {proxy.cut} connections"
    assert consume_values(proxy.bootstrap, topic_name, len(VALUES)) == VALUES


def test_java_verifiable_producer_resends_after_lost_answers_are_stored_once(proxied, topic_name, tmp_path):
    b, proxy = proxied(every=4)
    create_topic(b, topic_name)
    n = 1500
    conf = tmp_path / "producer.properties"
    # Small batches, paced: about a hundred Produce requests, so every fourth answer lost is many cuts,
    # however fast the machine (unpaced, the tool packed 1,500 records in ~10 requests: 2 cuts some runs).
    conf.write_text("enable.idempotence=true\nretries=1000000\nlinger.ms=2\nbatch.size=256\nretry.backoff.ms=20\n"
                    "request.timeout.ms=10000\ndelivery.timeout.ms=120000\n")
    env = dict(os.environ, LOG_DIR=str(tmp_path / "logs"))
    out = subprocess.run(
        [os.path.join(KAFKA, "bin", "kafka-verifiable-producer.sh"), "--bootstrap-server", proxy.bootstrap,
         "--topic", topic_name, "--max-messages", str(n), "--throughput", "1000", "--acks", "-1",
             "--producer.config", str(conf)],
        capture_output=True, text=True, env=env, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    assert '"name":"tool_data"' in out.stdout and f'"acked":{n}' in out.stdout, out.stdout[-2000:]
    assert proxy.cut >= 3, f"the proxy cut only {proxy.cut} connections"
    assert consume_values(proxy.bootstrap, topic_name, n) == [str(i) for i in range(n)]


def test_librdkafka_producer_across_broker_kill9_stores_each_record_once(fresh_broker, topic_name):
    b = fresh_broker()
    create_topic(b, topic_name)
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 2,
                  "batch.num.messages": 20, "message.timeout.ms": 120000, "retry.backoff.ms": 50,
                  "reconnect.backoff.max.ms": 200})
    failed = []
    values = [f"k{i:05d}" for i in range(3000)]
    for i, v in enumerate(values):
        p.produce(topic_name, v.encode(), on_delivery=lambda err, msg: failed.append(err) if err else None)
        p.poll(0)
        if i in (1000, 2000):
            # Mid-stream, with batches in flight: kill -9, restart on the same port.
            time.sleep(0.05)
            b.kill9()
            b.start()
        elif i % 100 == 0:
            time.sleep(0.01)
    assert p.flush(120) == 0
    assert failed == []
    assert consume_values(b.bootstrap, topic_name, len(values)) == values


# ---- raw requests: a batch resent after a kill -9 -------------------------------------------------


def _produce_v3(b, topic, batch, correlation_id):
    client = b"idem"
    body = struct.pack(">hhih", PRODUCE, 3, correlation_id, len(client)) + client
    body += struct.pack(">hhi", -1, -1, 10000)  # no transactional id, acks=all, timeout
    body += struct.pack(">ih", 1, len(topic)) + topic.encode()
    body += struct.pack(">iii", 1, 0, len(batch)) + batch
    # Right after a kill -9 the dead broker's listening socket can linger for a moment and
    # reset a connection: resend then, as a client would (which is what idempotence is for).
    for attempt in range(20):
        try:
            with socket.create_connection(("127.0.0.1", b.port), timeout=10) as s:
                s.sendall(struct.pack(">i", len(body)) + body)
                f = _recv_frame(s)
            if f is not None:
                break
        except ConnectionError:
            pass
        time.sleep(0.2)
    assert f is not None, "no answer"
    # correlation id, [topic: name, [partition: index, error, base offset, append time]]
    cid, _, name_len = struct.unpack(">iih", f[4:14])
    assert cid == correlation_id
    pos = 14 + name_len
    _, index, error, base_offset = struct.unpack(">iihq", f[pos:pos + 18])
    assert index == 0
    return error, base_offset


def _batch(producer_id, epoch, seq, values):
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                                        producer_id=producer_id, producer_epoch=epoch, base_sequence=seq,
                                        batch_size=1 << 20)
    now = int(time.time() * 1000)
    for i, v in enumerate(values):
        builder.append(i, timestamp=now, key=None, value=v.encode(), headers=[])
    return bytes(builder.build())


def test_a_batch_resent_after_kill9_is_still_a_duplicate(fresh_broker, topic_name):
    b = fresh_broker()
    create_topic(b, topic_name)
    pid = 7_000_000_000
    first, second = _batch(pid, 0, 0, ["a", "b", "c"]), _batch(pid, 0, 3, ["d", "e"])
    assert _produce_v3(b, topic_name, first, 1) == (0, 0)
    assert _produce_v3(b, topic_name, second, 2) == (0, 3)
    # No clean stop, so no snapshot: the state comes back from the log.
    b.kill9()
    b.start()
    assert _produce_v3(b, topic_name, second, 3) == (0, 3)
    assert _produce_v3(b, topic_name, first, 4) == (0, 0)
    assert _produce_v3(b, topic_name, _batch(pid, 0, 9, ["gap"]), 5)[0] == 45  # OUT_OF_ORDER_SEQUENCE_NUMBER
    assert _produce_v3(b, topic_name, _batch(pid, 0, 5, ["f"]), 6) == (0, 5)
    assert consume_values(b.bootstrap, topic_name, 6) == ["a", "b", "c", "d", "e", "f"]


def test_kafka_transactions_tool_describes_the_producers(fresh_broker, topic_name, tmp_path):
    b = fresh_broker()
    create_topic(b, topic_name)
    assert _produce_v3(b, topic_name, _batch(7_000_000_000, 0, 0, ["a", "b", "c"]), 1) == (0, 0)
    assert _produce_v3(b, topic_name, _batch(7_000_000_001, 3, 10, ["d"]), 2) == (0, 3)
    env = dict(os.environ, LOG_DIR=str(tmp_path / "logs"))
    out = subprocess.run(
        [os.path.join(KAFKA, "bin", "kafka-transactions.sh"), "--bootstrap-server", b.bootstrap,
         "describe-producers", "--topic", topic_name, "--partition", "0"],
        capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [line.split() for line in out.stdout.strip().splitlines()]
    assert rows[0][:4] == ["ProducerId", "ProducerEpoch", "LatestCoordinatorEpoch", "LastSequence"], out.stdout
    # Producer id, epoch, coordinator epoch, last sequence; then the time and no transaction.
    assert [(r[0], r[1], r[2], r[3], r[5]) for r in rows[1:]] == [
        ("7000000000", "0", "-1", "2", "None"), ("7000000001", "3", "-1", "10", "None")]
    now_ms = time.time() * 1000
    assert all(abs(int(r[4]) - now_ms) < 120_000 for r in rows[1:])
