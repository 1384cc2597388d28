#!/usr/bin/env bash
# The cost of idempotence on produce throughput, with the Java client (Kafka's own
# kafka-producer-perf-test) against Odradek and the JVM Kafka reference (../shared/kafka) in the
# same run: for each broker, runs with enable.idempotence=false and =true alternate, ROUNDS times,
# each on a topic of its own, and the medians are compared. Kafka does not fsync; Odradek fsyncs
# acks=all (its default durability).
#
#   cargo build --release -p odradek
#   benches/idempotence_vs_kafka.sh [target/release/odradek]
#   RECORDS=2000000 ROUNDS=3 PARTITIONS=6 ACKS=all benches/idempotence_vs_kafka.sh ...
#
# Prints one line per run (records/s, MB/s, avg and p99 latency as the tool reports them) and a
# summary: per broker the median records/s with idempotence over without, and Odradek over Kafka.
set -uo pipefail
cd "$(dirname "$0")/.."
ODRADEK=${1:-target/release/odradek}
KAFKA=${KAFKA:-../shared/kafka}
OUT=${OUT:-/tmp/idempotence-vs-kafka}
RECORDS=${RECORDS:-1000000}
ROUNDS=${ROUNDS:-3}
PARTITIONS=${PARTITIONS:-6}
ACKS=${ACKS:-all}
KPORT=${KPORT:-29310}
OPORT=${OPORT:-29320}  # Kafka takes KPORT and KPORT+1 (its controller)
export LOG_DIR=$OUT/kafka-tool-logs
rm -rf "$OUT"; mkdir -p "$OUT" "$LOG_DIR"

"$KAFKA/bin-odradek/kafka-start.sh" "$KPORT" "$OUT/kafka" >/dev/null 2>&1
"$ODRADEK" serve --listeners "127.0.0.1:$OPORT" --data-dir "$OUT/odradek" >"$OUT/odradek.log" 2>&1 &
OPID=$!
trap '"$KAFKA/bin-odradek/kafka-stop.sh" "$OUT/kafka" >/dev/null 2>&1; kill $OPID 2>/dev/null; wait $OPID 2>/dev/null' EXIT
sleep 1

run() { # broker port idempotence round
  local topic="idem-$1-$3-$4"
  "$KAFKA/bin/kafka-topics.sh" --bootstrap-server "127.0.0.1:$2" --create --topic "$topic" \
    --partitions "$PARTITIONS" --replication-factor 1 >/dev/null 2>&1
  "$KAFKA/bin/kafka-producer-perf-test.sh" --topic "$topic" --num-records "$RECORDS" --record-size 1024 \
    --throughput -1 --producer-props "bootstrap.servers=127.0.0.1:$2" "acks=$ACKS" \
    "enable.idempotence=$3" linger.ms=5 batch.size=262144 2>/dev/null | tail -1 |
    python3 -c '
import re, sys
line = sys.stdin.read()
m = re.search(r"([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency.* ([\d.]+) ms 99th", line)
print(*sys.argv[1:], *(m.groups() if m else ["no result: " + line.strip()]))
' "$1" "idempotence=$3" "round=$4"
}

for r in $(seq 1 "$ROUNDS"); do
  for b in kafka:$KPORT odradek:$OPORT; do
    for i in false true; do
      run "${b%%:*}" "${b#*:}" "$i" "$r" | tee -a "$OUT/runs.txt"
    done
  done
done
python3 - "$OUT/runs.txt" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) >= 5 and not f[3].startswith("no"):
        runs.setdefault((f[0], f[1]), []).append(float(f[3]))
med = {k: statistics.median(v) for k, v in runs.items()}
for b in ("kafka", "odradek"):
    off, on = med.get((b, "idempotence=false")), med.get((b, "idempotence=true"))
    if off and on:
        print(f"{b}: median records/s without idempotence {off:.0f}, with {on:.0f}: with/without {on / off:.3f}")
for i in ("idempotence=false", "idempotence=true"):
    k, o = med.get(("kafka", i)), med.get(("odradek", i))
    if k and o:
        print(f"odradek/kafka, {i}: {o / k:.2f}x")
PY
