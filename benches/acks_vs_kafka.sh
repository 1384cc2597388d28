#!/usr/bin/env bash
# Produce throughput and latency at acks=1 and acks=all, same client (`odradek bench produce`),
# against the JVM Kafka reference (../shared/kafka) and one or more Odradek binaries, one after
# the other per workload, on fresh data directories. Kafka does not fsync; Odradek writes acks=1
# with direct I/O and fsyncs acks=all.
#
#   cargo build --release -p odradek
#   benches/acks_vs_kafka.sh after=target/release/odradek [before=/path/to/old/odradek ...]
#   WORKLOADS="8,1,1 2000,all,4" benches/acks_vs_kafka.sh ...   # partitions,acks,producers
#
# Prints one line per target and workload: records/s, MB/s, errors, produce latency percentiles
# and the broker's RSS right after the run; before and after everything, fio's O_DIRECT
# sequential write bandwidth on the same filesystem (the ceiling of any write-through acks). Results (JSON) go to $OUT (default /tmp/acks-vs-kafka).
set -uo pipefail
cd "$(dirname "$0")/.."
BENCH=${BENCH:-target/release/odradek}
KAFKA=${KAFKA:-../shared/kafka}
OUT=${OUT:-/tmp/acks-vs-kafka}
PORT=${PORT:-29300}
mkdir -p "$OUT"
TARGETS=(kafka "$@")
WL=${WORKLOADS:-"8,1,1 8,all,1 8,1,4 8,all,4 2000,1,4 2000,all,4"}

start() { # target dir
  case $1 in
    kafka) "$KAFKA/bin-odradek/kafka-start.sh" "$PORT" "$2" >/dev/null 2>&1; PID=$(cat "$2/kafka.pid") ;;
    *=*) "${1#*=}" serve --listeners "127.0.0.1:$PORT" --data-dir "$2" >"$2.log" 2>&1 & PID=$!; sleep 1 ;;
  esac
}
stop() { # target dir
  case $1 in
    kafka) "$KAFKA/bin-odradek/kafka-stop.sh" "$2" >/dev/null 2>&1 ;;
    *) kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null ;;
  esac
  rm -rf "$2" "$2.log"
}
fio_ref() {
  if ! command -v fio >/dev/null; then echo "fio: not installed"; return; fi
  fio --name=ref --filename="$OUT/fio.dat" --rw=write --bs=1m --direct=1 --ioengine=io_uring \
    --iodepth=4 --size=1G --end_fsync=1 --output-format=json 2>/dev/null |
    python3 -c 'import json,sys; print("fio O_DIRECT write 1 MiB x4 MB/s", round(json.load(sys.stdin)["jobs"][0]["write"]["bw_bytes"] / 1e6, 1))'
  rm -f "$OUT/fio.dat"
}
fio_ref
for w in $WL; do
  IFS=, read -r P A N <<<"$w"
  for t in "${TARGETS[@]}"; do
    name=${t%%=*}; dir=$OUT/data-$name; rm -rf "$dir"
    start "$t" "$dir"
    "$BENCH" topic create b --partitions "$P" -b "127.0.0.1:$PORT" --timeout 120 >/dev/null
    sleep 2
    if [ "$P" -gt 100 ]; then
      # Kafka answers NOT_LEADER_OR_FOLLOWER for seconds after creating thousands of partitions.
      sleep 10
      timeout 60 "$BENCH" bench produce --bootstrap-server "127.0.0.1:$PORT" --topic b --partitions "$P" \
        --acks 1 --record-size 1024 --duration 5 --quiet >/dev/null 2>&1
    fi
    json=$OUT/$name-p$P-a$A-n$N.json
    timeout 120 "$BENCH" bench produce --bootstrap-server "127.0.0.1:$PORT" --topic b --partitions "$P" \
      --producers "$N" --acks "$A" --record-size 1024 --duration 10 --warmup 2 --quiet --json "$json" \
      >"$OUT/$name-p$P-a$A-n$N.out" 2>&1
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status" 2>/dev/null)
    python3 - "$json" "$name p=$P acks=$A producers=$N rss_kb=${rss:-dead}" <<'PY'
import json, sys
try:
    r = json.load(open(sys.argv[1])); p = r["produced"]; l = r["latency"]["produce"]
    print(sys.argv[2], "rec/s", round(p["records_per_s"]), "MB/s", round(p["mb_per_s"], 1), "errors", p["errors"],
          "p50/p99/p99.9/max ms", *[round(l[k] / 1000, 1) for k in ("p50", "p99", "p999", "max")])
except Exception as e:
    print(sys.argv[2], "no result:", e)
PY
    stop "$t" "$dir"
  done
done
fio_ref
