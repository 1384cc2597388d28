"""Kafka Streams with exactly_once_v2 against Odradek, across a kill -9 of the broker or the app.

Kafka's own WordCountDemo (../shared/kafka, Kafka Streams 3.8.0, RocksDB store, record cache
off so every count update is emitted) reads `streams-plaintext-input` and writes the running
count of every word to `streams-wordcount-output`. Streams creates its repartition and
changelog topics itself (CreateTopics), commits every 200 ms in transactions (EOS v2: one
transactional producer per thread, the group's offsets sent to the transaction), and is the
only writer of the output. The broker (or the app) is killed with SIGKILL while the app runs
and while more input is being produced, and restarted (the broker on the same data directory
and port, the app with the same application.id and state.dir). A read_committed consumer
must then see, for every word, the counts 1, 2, ..., N exactly once and in order, N being the
word's count over all input lines: nothing aborted, lost, counted twice or replayed from a
stale state store shows through."""

import collections
import os
import random
import signal
import subprocess
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import ROOT

KAFKA = os.environ.get("KAFKA_DIR", os.path.join(ROOT, "..", "shared", "kafka"))
INPUT, OUTPUT = "streams-plaintext-input", "streams-wordcount-output"
PARTITIONS = 2
VOCAB = ["kafka", "streams", "odradek", "exactly", "once", "broker", "kill", "restart", "count", "word"]
# librdkafka 2.16 re-bootstraps when every broker it knows is down and can then keep stale
# broker handles (see test_txn_coordinator.py); with one broker, plain reconnects are right.
CLIENT = {"metadata.recovery.strategy": "none", "socket.timeout.ms": 10000}
WAIT = 60

LOG4J = """log4j.rootLogger=INFO, file, stderr
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=${kafka.logs.dir}/streams.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Threshold=WARN
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.appender.stderr.Target=System.err
"""


def make_lines(n, seed=20261201):
    rng = random.Random(seed)
    return [" ".join(rng.choice(VOCAB) for _ in range(rng.randint(1, 6))) for _ in range(n)]


def word_counts(lines):
    return dict(collections.Counter(w for line in lines for w in line.split(" ")))


def tail(path, chars=3000):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")[-chars:]
    except OSError:
        return f"({path} missing)"


class WordCountApp:
    """WordCountDemo as a subprocess: kafka-run-class.sh execs the JVM, so its pid is the app's.
    A restarted app has the same application.id and state.dir, and logs to the same files."""

    def __init__(self, broker, app_id, tmp_path, extra=()):
        self.log_dir = tmp_path / "streams-logs"
        self.log_dir.mkdir()
        self.props = tmp_path / "app.properties"
        self.props.write_text("\n".join([
            f"bootstrap.servers={broker.bootstrap}",
            f"application.id={app_id}",
            "processing.guarantee=exactly_once_v2",
            f"state.dir={tmp_path / 'state'}",
            "commit.interval.ms=200",
            *extra,
        ]) + "\n")
        self.log4j = tmp_path / "log4j.properties"
        self.log4j.write_text(LOG4J)
        self.out_path = self.log_dir / "stdout-stderr.txt"
        self.out = None
        self.proc = None
        self.start()

    def start(self):
        if self.out is not None:
            self.out.close()
        self.out = open(self.out_path, "ab")
        env = dict(os.environ, LOG_DIR=str(self.log_dir),
                   KAFKA_LOG4J_OPTS=f"-Dlog4j.configuration=file:{self.log4j}")
        self.proc = subprocess.Popen(
            [os.path.join(KAFKA, "bin", "kafka-run-class.sh"),
             "org.apache.kafka.streams.examples.wordcount.WordCountDemo", str(self.props)],
            stdout=self.out, stderr=subprocess.STDOUT, env=env)

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def logs(self):
        return (f"--- app stdout/stderr (WARN and up), exit code {self.proc.poll()}:\n{tail(self.out_path)}\n"
                f"--- app log (INFO) tail:\n{tail(self.log_dir / 'streams.log', 5000)}")

    def stop(self):
        """SIGTERM (WordCountDemo's shutdown hook closes the KafkaStreams), SIGKILL after 30 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()


class OutputReader:
    """A read_committed consumer of the whole output topic, from offset 0, kept open across the
    broker's restart; `records[partition]` holds (offset, word, count) in offset order."""

    def __init__(self, broker):
        self.consumer = Consumer(dict(CLIENT, **{
            "bootstrap.servers": broker.bootstrap, "group.id": f"wordcount-reader-{time.time()}",
            "isolation.level": "read_committed", "enable.auto.commit": False}))
        self.consumer.assign([TopicPartition(OUTPUT, p, 0) for p in range(PARTITIONS)])
        self.records = collections.defaultdict(list)

    def poll(self, seconds):
        deadline = time.time() + seconds
        while time.time() < deadline:
            m = self.consumer.poll(0.1)
            if m is None or m.error():
                continue
            assert len(m.value()) == 8, f"output value of {m.key()!r} is not a long: {m.value()!r}"
            count = int.from_bytes(m.value(), "big", signed=True)
            self.records[m.partition()].append((m.offset(), m.key().decode(), count))

    def last_counts(self):
        last = {}
        for rows in self.records.values():
            for _, word, count in rows:
                last[word] = count
        return last

    def wait_for(self, expected, what, app, broker):
        deadline = time.time() + WAIT
        while time.time() < deadline:
            self.poll(0.5)
            if self.last_counts() == expected:
                return
            assert app.proc.poll() is None, f"the Streams app exited while waiting for {what}\n{app.logs()}"
        got = self.last_counts()
        diff = {w: (got.get(w), expected.get(w)) for w in set(got) | set(expected) if got.get(w) != expected.get(w)}
        raise AssertionError(f"no exact counts for {what} within {WAIT} s; (got, expected) per differing word: "
                             f"{diff}\n{app.logs()}\n--- broker log tail:\n{broker.read_log()}")

    def close(self):
        self.consumer.close()


def read_input(broker, expect):
    """Every input line stored, as a multiset (read_committed: the input is not transactional)."""
    c = Consumer(dict(CLIENT, **{"bootstrap.servers": broker.bootstrap, "group.id": f"input-reader-{time.time()}",
                                 "isolation.level": "read_committed", "enable.auto.commit": False}))
    c.assign([TopicPartition(INPUT, p, 0) for p in range(PARTITIONS)])
    got, deadline = [], time.time() + 30
    while time.time() < deadline and len(got) < expect:
        m = c.poll(0.2)
        if m is not None and not m.error():
            got.append(m.value().decode())
    # Anything beyond `expect` (a duplicate) would show within a moment.
    end = time.time() + 1
    while time.time() < end:
        m = c.poll(0.2)
        if m is not None and not m.error():
            got.append(m.value().decode())
    c.close()
    return collections.Counter(got)


def produce(producer, lines, errors, pause=0.0, every=10):
    def delivered(err, _msg):
        if err is not None:
            errors.append(err)

    for i, line in enumerate(lines):
        while True:
            try:
                producer.produce(INPUT, value=line.encode(), on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        if pause and i % every == every - 1:
            time.sleep(pause)


def run_wordcount(fresh_broker, topic_name, tmp_path, crash, app_props=()):
    """Runs the app over 400 lines; `crash(broker, app, reader)` is called in the middle of lines 200-300,
    while they are being produced."""
    started = time.time()
    b = fresh_broker()
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    for f in admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in (INPUT, OUTPUT)]).values():
        f.result(30)
    lines = make_lines(400)
    first, during, rest = lines[:200], lines[200:300], lines[300:]
    # Idempotent, so the input holds every line once also when the kill cuts off acks.
    producer = Producer(dict(CLIENT, **{"bootstrap.servers": b.bootstrap, "enable.idempotence": True,
                                        "linger.ms": 5, "message.timeout.ms": 120000}))
    errors = []
    produce(producer, first, errors)
    assert producer.flush(30) == 0 and not errors, errors

    app_id = "wordcount-" + topic_name
    app = WordCountApp(b, app_id, tmp_path, app_props)
    reader = OutputReader(b)
    try:
        reader.wait_for(word_counts(first), "the first 200 lines", app, b)
        first_done = time.time()
        # Streams made its internal topics itself: the repartition topic and the store's changelog.
        topics = set(admin.list_topics(timeout=30).topics)
        internal = {t for t in topics if t.startswith(app_id + "-")}
        assert any(t.endswith("-repartition") for t in internal), topics
        assert any(t.endswith("-changelog") for t in internal), topics

        # 100 more lines, 10 every 0.1 s, from another thread; the crash comes in the middle of
        # them, while the app is processing (a transaction of it open, most likely).
        sender = threading.Thread(target=produce, args=(producer, during, errors, 0.1), daemon=True)
        sender.start()
        time.sleep(0.5)
        crash(b, app, reader)
        sender.join(30)
        assert not sender.is_alive(), "producing the lines around the kill hung"
        produce(producer, rest, errors)
        assert producer.flush(60) == 0, "input lines not acknowledged within 60 s of the restart"
        assert not errors, f"input lines not delivered: {errors[:5]}"
        assert read_input(b, len(lines)) == collections.Counter(lines), \
            "the input topic does not hold every line exactly once (a producer-side duplicate or loss)"

        expected = word_counts(lines)
        reader.wait_for(expected, "all 400 lines after the restart", app, b)
        all_done = time.time()
        reader.poll(1.0)  # a late duplicate would show here
        # Exactly once: every word's committed counts are 1, 2, ..., N, in offset order (the
        # record cache is off, so every update is emitted; a word lives on one partition).
        per_word = collections.defaultdict(list)
        for rows in reader.records.values():
            for _, word, count in rows:
                per_word[word].append(count)
        assert set(per_word) == set(expected), (sorted(per_word), sorted(expected))
        for word, counts in sorted(per_word.items()):
            n = expected[word]
            drops = [(a, c) for a, c in zip(counts, counts[1:]) if c <= a]
            assert not drops, f"{word!r}: committed count does not increase at {drops[:5]} (counted twice?)"
            assert max(counts) == n, f"{word!r}: committed counts reach {max(counts)}, expected {n}"
            assert counts == list(range(1, n + 1)), f"{word!r}: committed counts are not 1..{n}: {counts}"
        print(f"\nstreams EOS: first counts after {first_done - started:.1f} s, all after "
              f"{all_done - started:.1f} s; {sum(map(len, per_word.values()))} output records")
    finally:
        reader.close()
        app.stop()


def test_wordcount_exactly_once_v2_across_broker_kill9(fresh_broker, topic_name, tmp_path):
    """The broker is killed (-9) and restarted on the same data directory and port about a
    second later; the app keeps running through it."""

    def crash(b, app, reader):
        b.kill9()
        reader.poll(1.0)
        b.start()

    run_wordcount(fresh_broker, topic_name, tmp_path, crash)


def test_wordcount_exactly_once_v2_across_app_kill9(fresh_broker, topic_name, tmp_path):
    """The app is killed (-9) and started again with the same application.id and state.dir: its
    open transaction is aborted (the new producer fences the old one), its store is restored
    from the changelog, and it goes on from the offsets its last transaction committed."""

    def crash(b, app, reader):
        app.kill9()
        app.start()

    # The dead member leaves the group at its session timeout, not Streams' 45 s default.
    run_wordcount(fresh_broker, topic_name, tmp_path, crash,
                  ["session.timeout.ms=6000", "heartbeat.interval.ms=1000"])
