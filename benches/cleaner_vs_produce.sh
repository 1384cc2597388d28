#!/usr/bin/env bash
# Does a busy log cleaner hurt the produce tail? Produce latency at a fixed rate (acks=all,
# 1 KiB records, `odradek bench produce`, latency from each record's scheduled send time) to a
# plain topic, while a second producer rewrites 20,000 keys of a 6-partition topic at a fixed
# rate over a backlog written first. In the "busy" run that topic is compacted (segments roll
# every second, any dirt is enough, the cleaner looks every 100 ms: it cleans all the time);
# in the "idle" run it is the same topic with cleanup.policy=delete (same writes, no cleaner).
# The runs alternate, ROUNDS times, each on a fresh broker and data directory.
#
#   cargo build --release -p odradek
#   benches/cleaner_vs_produce.sh [target/release/odradek]    # RATE, BACKLOG_MB, ROUNDS, SECS
#   CLEANER_IO=200000000 benches/cleaner_vs_produce.sh ...    # log.cleaner.io.max.bytes.per.second
#   CLEANER_ENABLE=false benches/cleaner_vs_produce.sh ...    # control: compacted topic, no cleaner
#
# Odradek fsyncs acks=all before acknowledging (its default durability). Prints each run's
# p50/p99/p99.9/max, the cleaner passes during it, and the busy/idle ratios of the medians.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/odradek}
OUT=${OUT:-/tmp/cleaner-vs-produce}
PORT=${PORT:-29400}
RATE=${RATE:-5000}
BACKLOG_MB=${BACKLOG_MB:-1024}
ROUNDS=${ROUNDS:-2}
SECS=${SECS:-20}
CLEANER_IO=${CLEANER_IO:-}
CLEANER_ENABLE=${CLEANER_ENABLE:-true}
BS=127.0.0.1:$PORT
mkdir -p "$OUT"

run() { # mode round
  local mode=$1 dir=$OUT/data-$1-$2 log=$OUT/broker-$1-$2.log policy
  rm -rf "$dir"
  local extra=()
  [ -n "$CLEANER_IO" ] && extra=(--override "log.cleaner.io.max.bytes.per.second=$CLEANER_IO")
  extra+=(--override "log.cleaner.enable=$CLEANER_ENABLE")
  "$BIN" serve --listeners "$BS" --data-dir "$dir" --override log.cleaner.backoff.ms=100 "${extra[@]}" >"$log" 2>&1 &
  local pid=$!
  sleep 1
  if [ "$mode" = busy ]; then policy=compact; else policy=delete; fi
  "$BIN" topic create kv -p 6 -b "$BS" -c cleanup.policy=$policy -c segment.ms=1000 \
    -c min.cleanable.dirty.ratio=0.01 -c segment.bytes=67108864 >/dev/null
  "$BIN" topic create p -p 6 -b "$BS" >/dev/null
  # The backlog the cleaner works through (1 KiB values over 20,000 keys).
  "$BIN" bench produce --bootstrap-server "$BS" --topic kv --partitions 6 --keys random --key-space 20000 \
    --acks 1 --record-size 1024 --count $((BACKLOG_MB * 1024)) --quiet >/dev/null 2>&1
  local passes_before
  passes_before=$(grep -c "^cleaned " "$log")
  # Rewrites during the measurement, at a fixed rate, then the measured producer.
  "$BIN" bench produce --bootstrap-server "$BS" --topic kv --partitions 6 --keys random --key-space 20000 \
    --acks 1 --record-size 1024 --rate 20000 --duration $((SECS + 4)) --quiet >/dev/null 2>&1 &
  local bg=$!
  local json=$OUT/$mode-$2.json
  "$BIN" bench produce --bootstrap-server "$BS" --topic p --partitions 6 --acks all --record-size 1024 \
    --rate "$RATE" --duration "$SECS" --warmup 2 --quiet --json "$json" >/dev/null 2>&1
  wait "$bg"
  local passes=$(($(grep -c "^cleaned " "$log") - passes_before))
  kill "$pid"; wait "$pid" 2>/dev/null
  python3 - "$json" "$mode round $2: cleaner passes during the run $passes" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); l = r["latency"]["produce"]; p = r["produced"]
print(sys.argv[2], "| rec/s", round(p["records_per_s"]), "errors", p["errors"],
      "| p50/p99/p99.9/max ms", *[round(l[k] / 1000, 2) for k in ("p50", "p99", "p999", "max")])
PY
  rm -rf "$dir"
}

for r in $(seq 1 "$ROUNDS"); do
  run idle "$r"
  run busy "$r"
done
python3 - "$OUT" "$ROUNDS" <<'PY'
import json, sys, statistics
out, rounds = sys.argv[1], int(sys.argv[2])
def med(mode, k):
    return statistics.median(json.load(open(f"{out}/{mode}-{r}.json"))["latency"]["produce"][k] for r in range(1, rounds + 1))
for k, name in (("p50", "p50"), ("p99", "p99"), ("p999", "p99.9")):
    b, i = med("busy", k), med("idle", k)
    print(f"{name}: busy {b / 1000:.2f} ms, idle {i / 1000:.2f} ms, busy/idle {b / i:.2f}x")
PY
