"""Transactional produce with librdkafka (confluent-kafka): TXNS transactions of RECORDS records
of 1 KiB each, spread over the topic's partitions, each committed before the next begins.
Prints one line: broker label, transactions/s, records/s, and the commit latency
(commit_transaction's call to return, ms) at p50/p99/p99.9/max.

    python3 benches/txn_commit_latency.py LABEL BOOTSTRAP TOPIC [TXNS] [RECORDS]
"""

import sys
import time

from confluent_kafka import Producer

label, bootstrap, topic = sys.argv[1:4]
txns = int(sys.argv[4]) if len(sys.argv) > 4 else 2000
records = int(sys.argv[5]) if len(sys.argv) > 5 else 10
value = b"x" * 1024
p = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"bench-{topic}", "linger.ms": 0})
p.init_transactions(60)
# A few warm-up transactions (connections, coordinator lookup, partitions' first writes).
for _ in range(20):
    p.begin_transaction()
    p.produce(topic, value=value)
    p.commit_transaction(60)
lat = []
start = time.perf_counter()
for _ in range(txns):
    p.begin_transaction()
    for _ in range(records):
        p.produce(topic, value=value)
    t = time.perf_counter()
    p.commit_transaction(60)
    lat.append((time.perf_counter() - t) * 1000)
elapsed = time.perf_counter() - start
lat.sort()
q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))]
print(label, f"txn/s={txns / elapsed:.0f}", f"records/s={txns * records / elapsed:.0f}",
      f"commit_ms_p50={q(0.5):.2f}", f"p99={q(0.99):.2f}", f"p99.9={q(0.999):.2f}", f"max={lat[-1]:.2f}")
