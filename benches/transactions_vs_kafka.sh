#!/usr/bin/env bash
# Transactions on Odradek and on the JVM Kafka reference (../shared/kafka), same clients, same
# run. Kafka does not fsync; Odradek fsyncs acks=all (its default durability), and every
# transaction-log write and marker is synced before it is answered.
#
#   cargo build --release -p odradek
#   benches/transactions_vs_kafka.sh [target/release/odradek]
#   RECORDS=1000000 ROUNDS=2 PARTITIONS=6 TXNS=2000 TXN_RECORDS=10 benches/transactions_vs_kafka.sh ...
#
# 1. Throughput, Java client (kafka-producer-perf-test, acks=all, 1 KiB records): idempotent
#    without transactions, then transactional (--transaction-duration-ms 100: a commit every
#    100 ms), alternating per broker, ROUNDS times.
# 2. Commit latency, librdkafka (benches/txn_commit_latency.py): TXNS transactions of
#    TXN_RECORDS records each, one after the other; p50/p99/p99.9 of commit_transaction.
# Prints every run and a summary of medians: transactional over plain per broker, Odradek over
# Kafka per mode.
set -uo pipefail
cd "$(dirname "$0")/.."
ODRADEK=${1:-target/release/odradek}
KAFKA=${KAFKA:-../shared/kafka}
OUT=${OUT:-/tmp/transactions-vs-kafka}
RECORDS=${RECORDS:-1000000}
ROUNDS=${ROUNDS:-2}
PARTITIONS=${PARTITIONS:-6}
TXNS=${TXNS:-2000}
TXN_RECORDS=${TXN_RECORDS:-10}
PY=${PY:-target/interop-venv/bin/python}
KPORT=${KPORT:-29330}
OPORT=${OPORT:-29340}  # Kafka takes KPORT and KPORT+1 (its controller)
export LOG_DIR=$OUT/kafka-tool-logs
rm -rf "$OUT"; mkdir -p "$OUT" "$LOG_DIR"

"$KAFKA/bin-odradek/kafka-start.sh" "$KPORT" "$OUT/kafka" >/dev/null 2>&1
"$ODRADEK" serve --listeners "127.0.0.1:$OPORT" --data-dir "$OUT/odradek" >"$OUT/odradek.log" 2>&1 &
OPID=$!
trap '"$KAFKA/bin-odradek/kafka-stop.sh" "$OUT/kafka" >/dev/null 2>&1; kill $OPID 2>/dev/null; wait $OPID 2>/dev/null' EXIT
sleep 1

topic() { # port name
  "$KAFKA/bin/kafka-topics.sh" --bootstrap-server "127.0.0.1:$1" --create --topic "$2" \
    --partitions "$PARTITIONS" --replication-factor 1 >/dev/null 2>&1
}

perf() { # broker port mode round
  local t="txn-$1-$3-$4" extra=()
  topic "$2" "$t"
  [ "$3" = transactional ] && extra=(--transactional-id "perf-$t" --transaction-duration-ms 100)
  "$KAFKA/bin/kafka-producer-perf-test.sh" --topic "$t" --num-records "$RECORDS" --record-size 1024 \
    --throughput -1 "${extra[@]}" --producer-props "bootstrap.servers=127.0.0.1:$2" acks=all \
    enable.idempotence=true linger.ms=5 batch.size=262144 2>/dev/null | grep "records/sec" | tail -1 |
    python3 -c '
import re, sys
line = sys.stdin.read()
m = re.search(r"([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency.* ([\d.]+) ms 99th", line)
print(*sys.argv[1:], *(m.groups() if m else ["no result: " + line.strip()]))
' "$1" "$3" "round=$4"
}

for r in $(seq 1 "$ROUNDS"); do
  for b in kafka:$KPORT odradek:$OPORT; do
    for m in plain transactional; do
      perf "${b%%:*}" "${b#*:}" "$m" "$r" | tee -a "$OUT/perf.txt"
    done
  done
done
for r in $(seq 1 "$ROUNDS"); do
  for b in kafka:$KPORT odradek:$OPORT; do
    t="commit-${b%%:*}-$r"
    topic "${b#*:}" "$t"
    "$PY" benches/txn_commit_latency.py "${b%%:*}" "127.0.0.1:${b#*:}" "$t" "$TXNS" "$TXN_RECORDS" 2>/dev/null |
      tee -a "$OUT/commit.txt"
  done
done
python3 - "$OUT/perf.txt" "$OUT/commit.txt" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) >= 5 and not f[3].startswith("no"):
        runs.setdefault((f[0], f[1]), []).append(float(f[3]))
med = {k: statistics.median(v) for k, v in runs.items()}
for b in ("kafka", "odradek"):
    plain, txn = med.get((b, "plain")), med.get((b, "transactional"))
    if plain and txn:
        print(f"{b}: median records/s idempotent {plain:.0f}, transactional {txn:.0f}: transactional/plain {txn / plain:.3f}")
for m in ("plain", "transactional"):
    k, o = med.get(("kafka", m)), med.get(("odradek", m))
    if k and o:
        print(f"odradek/kafka records/s, {m}: {o / k:.2f}x")
commits = {}
for line in open(sys.argv[2]):
    f = line.split()
    vals = dict(x.split("=") for x in f[1:])
    commits.setdefault(f[0], []).append({k: float(v) for k, v in vals.items()})
for b, rows in commits.items():
    m = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print(f"{b}: commit latency median of rounds: p50 {m['commit_ms_p50']:.2f} ms, p99 {m['p99']:.2f} ms, "
          f"p99.9 {m['p99.9']:.2f} ms; {m['txn/s']:.0f} txn/s")
if "kafka" in commits and "odradek" in commits:
    k = statistics.median(r["txn/s"] for r in commits["kafka"])
    o = statistics.median(r["txn/s"] for r in commits["odradek"])
    print(f"odradek/kafka transactions/s (librdkafka, {sys.argv[2]}): {o / k:.2f}x")
PY
