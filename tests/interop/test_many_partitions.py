"""Many partitions: produce requests touching thousands of partitions are served (one raw
request with 1, 100, 2,000 and 10,000 partitions at acks=all), acknowledged records survive a
kill -9 of the broker whatever the partition count (confluent-kafka and `odradek bench`, acks=1
and acks=all), and the broker stays within its memory budget under load on 10,000 partitions.

acks=1 means the leader wrote the batch to its log: a crash of the broker process must not lose
it (Kafka's page-cache write gives the same guarantee)."""

import json
import random
import socket
import struct
import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec
from kafka import KafkaConsumer
from kafka import TopicPartition as KTopicPartition
from kafka.record.default_records import DefaultRecordBatchBuilder

from conftest import BIN


def create_topic(bootstrap, name, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fs = admin.create_topics([NewTopic(name, partitions, 1)], operation_timeout=120, request_timeout=180)
    fs[name].result(timeout=180)
    # Metadata shows every partition with a leader once creation is answered.
    md = admin.list_topics(name, timeout=30)
    assert len(md.topics[name].partitions) == partitions


def end_offsets(bootstrap, name, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    req = {TopicPartition(name, p): OffsetSpec.latest() for p in range(partitions)}
    res = admin.list_offsets(req, request_timeout=120)
    return {tp.partition: f.result(timeout=120).offset for tp, f in res.items()}


# ---- one request, many partitions (raw Produce v3, batches built by kafka-python) ----------


def record_batch(partition, request):
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False, producer_id=-1,
                                  producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    b.append(0, timestamp=1_700_000_000_000 + request, key=f"k{partition}-{request}".encode(),
             value=f"value of partition {partition} in request {request}".encode(),
             headers=[("req", str(request).encode())])
    return bytes(b.build())


def string(s):
    raw = s.encode()
    return struct.pack(">h", len(raw)) + raw


def produce_v3(topic, partitions, request, acks=-1, correlation_id=1):
    body = struct.pack(">hhi", -1, acks, 60_000)  # null transactional id, acks, timeout
    body += struct.pack(">i", 1) + string(topic) + struct.pack(">i", len(partitions))
    for p in partitions:
        rb = record_batch(p, request)
        body += struct.pack(">ii", p, len(rb)) + rb
    head = struct.pack(">hhi", 0, 3, correlation_id) + string("many-partitions")
    payload = head + body
    return struct.pack(">i", len(payload)) + payload


def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed by the broker")
        buf += chunk
    return bytes(buf)


def parse_produce_v3(body):
    """Returns {partition: (error_code, base_offset)} of a single-topic Produce v3 response."""
    pos = 4  # correlation id
    (topics,) = struct.unpack_from(">i", body, pos)
    pos += 4
    assert topics == 1
    (n,) = struct.unpack_from(">h", body, pos)
    pos += 2 + n
    (count,) = struct.unpack_from(">i", body, pos)
    pos += 4
    out = {}
    for _ in range(count):
        p, err, base, _append_time = struct.unpack_from(">ihqq", body, pos)
        pos += 4 + 2 + 8 + 8
        out[p] = (err, base)
    return out


def test_acks_all_requests_touching_up_to_10000_partitions_are_served(fresh_broker, topic_name):
    b = fresh_broker()
    total = 10_000
    create_topic(b.bootstrap, topic_name, total)
    sizes = [1, 100, 2_000, 10_000]
    s = socket.create_connection(("127.0.0.1", b.port), timeout=180)
    for request, n in enumerate(sizes):
        s.sendall(produce_v3(topic_name, range(n), request, correlation_id=request + 1))
        (size,) = struct.unpack(">i", recv_exact(s, 4))
        body = recv_exact(s, size)
        assert struct.unpack_from(">i", body)[0] == request + 1
        res = parse_produce_v3(body)
        assert sorted(res) == list(range(n))
        # Partition p got one record from every earlier request that named it.
        for p, (err, base) in res.items():
            assert err == 0, (p, err)
            assert base == sum(1 for m in sizes[:request] if p < m), (p, base)
    s.close()
    assert b.alive(), "the broker died: " + b.read_log()

    # Every partition holds exactly its records.
    ends = end_offsets(b.bootstrap, topic_name, total)
    assert ends == {p: sum(1 for m in sizes if p < m) for p in range(total)}
    # Byte for byte, through two independent clients.
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "many-check", "enable.auto.commit": False})
    want = {}
    for p in (0, 99, 100, 1_999, 2_000, 9_999):
        want[p] = [(f"k{p}-{r}".encode(), f"value of partition {p} in request {r}".encode(), r)
                   for r, m in enumerate(sizes) if p < m]
    c.assign([TopicPartition(topic_name, p, 0) for p in want])
    got = {p: [] for p in want}
    deadline = time.time() + 60
    while sum(map(len, got.values())) < sum(map(len, want.values())) and time.time() < deadline:
        m = c.poll(1)
        if m is None:
            continue
        assert m.error() is None, m.error()
        got[m.partition()].append((m.key(), m.value(), int(dict(m.headers())["req"])))
    c.close()
    assert got == want
    k = KafkaConsumer(bootstrap_servers=b.bootstrap, enable_auto_commit=False, group_id=None,
                      consumer_timeout_ms=5000)
    k.assign([KTopicPartition(topic_name, 9_999)])
    k.seek(KTopicPartition(topic_name, 9_999), 0)
    recs = [r for batch in k.poll(timeout_ms=10_000).values() for r in batch]
    k.close()
    assert [(r.key, r.value) for r in recs] == [(w[0], w[1]) for w in want[9_999]]

    # And it keeps serving: a normal producer and consumer right after.
    prod = Producer({"bootstrap.servers": b.bootstrap, "acks": "all"})
    prod.produce(topic_name, b"after", key=b"z", partition=5_000)
    assert prod.flush(30) == 0
    assert end_offsets(b.bootstrap, topic_name, total)[5_000] == ends[5_000] + 1


# ---- kill -9 while acknowledged records flow -------------------------------------------------


def produce_until_killed(b, topic, partitions, acks, run_s, rng):
    """Produces with confluent-kafka until the broker is SIGKILLed mid-stream; returns the
    acknowledged records as {(partition, offset): (key, value)}."""
    acked = {}
    lock = threading.Lock()

    def on_delivery(err, msg):
        if err is None:
            with lock:
                acked[(msg.partition(), msg.offset())] = (msg.key(), msg.value())

    p = Producer({"bootstrap.servers": b.bootstrap, "acks": acks, "linger.ms": 2, "message.timeout.ms": 5000,
                  "retries": 0, "enable.idempotence": False, "queue.buffering.max.messages": 200_000})
    killer = threading.Timer(run_s, b.kill9)
    killer.start()
    i = 0
    tag = rng.randrange(1 << 30)
    while b.alive():
        part = i % partitions
        value = f"{tag}-{i}-".encode() + bytes([i % 251]) * (rng.randrange(200) if i % 97 == 0 else 20)
        try:
            p.produce(topic, value, key=f"{tag}:{i}".encode(), partition=part, on_delivery=on_delivery)
        except BufferError:
            p.poll(0.01)
            continue
        i += 1
        if i % 1000 == 0:
            p.poll(0)
    killer.join()
    p.flush(10)  # what was in flight fails now; only the callbacks before the kill count
    with lock:
        return dict(acked)


def read_partitions(bootstrap, topic, ends):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "crash-check", "enable.auto.commit": False,
                  "fetch.message.max.bytes": 1 << 20})
    c.assign([TopicPartition(topic, p, 0) for p, e in ends.items() if e > 0])
    got = {}
    want = sum(ends.values())
    deadline = time.time() + 120
    while len(got) < want and time.time() < deadline:
        for m in c.consume(10_000, timeout=1):
            assert m.error() is None, m.error()
            got[(m.partition(), m.offset())] = (m.key(), m.value())
    c.close()
    return got


@pytest.mark.parametrize("acks", ["1", "all"])
@pytest.mark.parametrize("partitions", [1, 100, 2_000])
def test_acknowledged_records_survive_kill9(fresh_broker, topic_name, partitions, acks):
    b = fresh_broker()
    create_topic(b.bootstrap, topic_name, partitions)
    rng = random.Random(f"{partitions}-{acks}")
    all_acked = {}
    for _ in range(3):
        acked = produce_until_killed(b, topic_name, partitions, acks, rng.uniform(0.5, 2.0), rng)
        assert acked, "nothing was acknowledged before the kill"
        all_acked.update(acked)
        b.start()
        ends = end_offsets(b.bootstrap, topic_name, partitions)
        for (p, off) in acked:
            assert off < ends[p], f"acknowledged offset {off} of partition {p} is past the log end {ends[p]}"
        got = read_partitions(b.bootstrap, topic_name, ends)
        missing = [k for k in all_acked if got.get(k) != all_acked[k]]
        assert not missing, f"{len(missing)} of {len(all_acked)} acknowledged records lost or changed, " \
                            f"e.g. {missing[:3]}"


@pytest.mark.parametrize("acks", ["1", "all"])
def test_bench_acknowledged_records_survive_kill9_on_2000_partitions(fresh_broker, topic_name, tmp_path, acks):
    """The report's own steps: `odradek bench produce` into 2,000 partitions, wait a second,
    kill -9, restart: every record the load generator had acknowledged is there."""
    b = fresh_broker()
    out = tmp_path / "bench.json"
    r = subprocess.run([BIN, "bench", "produce", "--bootstrap-server", b.bootstrap, "--topic", topic_name,
                        "--create-topic", "--partitions", "2000", "--acks", acks, "--record-size", "100",
                        "--duration", "3", "--quiet", "--json", str(out)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    acked = res["produced"]["records"]
    assert acked > 0 and res["produced"]["errors"] == 0
    time.sleep(1)
    b.kill9()
    b.start()
    ends = end_offsets(b.bootstrap, topic_name, 2000)
    assert sum(ends.values()) == acked


# ---- memory -----------------------------------------------------------------------------


def rss_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"{field} missing")


def test_memory_stays_within_the_budget_on_10000_partitions(fresh_broker, topic_name):
    budget = 128 << 20
    requests = 32 << 20  # queued.max.request.bytes (per shard) and socket.request.max.bytes
    b = fresh_broker(args=["--override", f"odradek.log.memory.bytes={budget}",
                           "--override", f"queued.max.request.bytes={requests}",
                           "--override", f"socket.request.max.bytes={requests}", "--shards", "2"])
    create_topic(b.bootstrap, topic_name, 10_000)
    idle = rss_kb(b.proc.pid, "VmRSS")
    r = subprocess.run([BIN, "bench", "produce", "--bootstrap-server", b.bootstrap, "--topic", topic_name,
                        "--acks", "1", "--record-size", "200", "--batch-size", "1024", "--duration", "6",
                        "--producers", "4", "--quiet"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    peak = rss_kb(b.proc.pid, "VmHWM")
    assert b.alive()
    ends = end_offsets(b.bootstrap, topic_name, 10_000)
    assert sum(ends.values()) > 100_000, "too little load to test anything"
    # Peak memory: what the idle broker holds for 10,000 open partitions, plus the log budget,
    # plus the request bytes two shards may hold (twice: the frames, and the batches copied out
    # of them on their way to the owning shard), plus fixed allowances: the one-block write
    # buffer each written partition keeps (4 KiB, counted twice for allocator slack), and
    # connections, responses and allocator slack.
    allowance_kb = 10_000 * 8 + (64 << 10)
    bound = idle + (budget + 2 * 2 * requests) // 1024 + allowance_kb
    assert peak <= bound, f"peak RSS {peak} kB > {bound} kB (idle {idle} kB)"
