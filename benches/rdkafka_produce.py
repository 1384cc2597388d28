#!/usr/bin/env python3
"""librdkafka's produce throughput against a broker that is already running, as the reference for
`odradek bench produce --rate 0` on the same broker in the same run (README: "Load generator").

Same workload as tools/bench/produce_bench.py's saturation run (1 KiB values, null keys,
linger.ms=5, no idempotence), but unkeyed round-robin is left to librdkafka's sticky partitioner
like the bench's null keys, and it runs for a fixed time instead of a fixed count.

    target/interop-venv/bin/python benches/rdkafka_produce.py --bootstrap 127.0.0.1:19092 \
        --topic t --seconds 20 --acks all   # creates t with 6 partitions if missing
"""

import argparse
import json
import time

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--acks", default="all")
    ap.add_argument("--record-size", type=int, default=1024)
    ap.add_argument("--partitions", type=int, default=6)
    args = ap.parse_args()
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    try:
        admin.create_topics([NewTopic(args.topic, num_partitions=args.partitions, replication_factor=1)])[
            args.topic].result(10)
    except KafkaException as e:
        if "TOPIC_ALREADY_EXISTS" not in str(e):
            raise
    p = Producer({"bootstrap.servers": args.bootstrap, "acks": args.acks, "linger.ms": 5,
                  "batch.size": 16384, "enable.idempotence": False,
                  "queue.buffering.max.messages": 1_000_000, "queue.buffering.max.kbytes": 1_048_576})
    value = b"x" * args.record_size
    acked = [0, 0]

    def cb(err, _msg):
        if err is None:
            acked[0] += 1
        else:
            acked[1] += 1

    t0 = time.perf_counter()
    deadline = t0 + args.seconds
    sent = 0
    while time.perf_counter() < deadline:
        for _ in range(1000):
            try:
                p.produce(args.topic, value, on_delivery=cb)
                sent += 1
            except BufferError:
                p.poll(0.001)
        p.poll(0)
    p.flush(120)
    elapsed = time.perf_counter() - t0
    print(json.dumps({"records": acked[0], "errors": acked[1], "seconds": elapsed,
                      "records_per_s": acked[0] / elapsed, "mb_per_s": acked[0] * args.record_size / elapsed / 1e6}))


if __name__ == "__main__":
    main()
