#!/usr/bin/env bash
# Start-up time with a large __consumer_offsets, before and after the cleaner compacted it.
# COMMITS offset commits (default 1,000,000) to NGROUPS groups (1,000) over the 10 partitions of
# one topic, with librdkafka's AdminClient (AlterConsumerGroupOffsets, many in flight), on a
# broker whose cleaner is off. Then, each timed from exec to the first OffsetFetch answered (the
# coordinators load every group first): a restart with the log as written ("before"); a run
# with the cleaner on until it has compacted __consumer_offsets; a restart after that ("after").
#
#   cargo build --release -p odradek
#   benches/offsets_startup.sh [target/release/odradek]     # COMMITS, NGROUPS, PY
#
# Needs confluent-kafka in $PY (default: the interop tests' virtualenv). Odradek fsyncs offset
# commits before answering (its default durability).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/odradek}
PY=${PY:-target/interop-venv/bin/python}
OUT=${OUT:-/tmp/offsets-startup}
PORT=${PORT:-29500}
COMMITS=${COMMITS:-1000000}
NGROUPS=${NGROUPS:-1000}
BS=127.0.0.1:$PORT
DATA=$OUT/data
rm -rf "$OUT"; mkdir -p "$OUT"
PID=

serve() { # log extra-args...
  local log=$1; shift
  "$BIN" serve --listeners "$BS" --data-dir "$DATA" "$@" >>"$log" 2>&1 &
  PID=$!
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; }
# Sets STARTUP: seconds from exec to the first answered OffsetFetch of group g-0.
timed_start() { # log extra-args...
  local t0 t1
  t0=$(date +%s.%N)
  serve "$@"
  until "$BIN" group describe g-0 -b "$BS" >/dev/null 2>&1; do sleep 0.01; done
  t1=$(date +%s.%N)
  STARTUP=$(python3 -c "print(f'{$t1 - $t0:.3f}')")
}
offsets_mb() { du -sm "$DATA"/__consumer_offsets-* | awk '{s += $1} END {print s}'; }

serve "$OUT/write.log" --override log.cleaner.enable=false
sleep 1
"$BIN" topic create t -p 10 -b "$BS" >/dev/null
# The first commit creates __consumer_offsets; segments then roll every 2 s so the cleaner has
# closed segments to clean later.
"$BIN" group reset-offsets g-0 --topic t --to-offset 0 --execute -b "$BS" >/dev/null
"$BIN" config alter --topic __consumer_offsets --set segment.ms=2000 -b "$BS" >/dev/null
t0=$(date +%s)
"$PY" - "$BS" "$COMMITS" "$NGROUPS" <<'PY'
import sys
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient
bs, commits, groups = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
a = AdminClient({"bootstrap.servers": bs})
per_request = 10  # one offset per partition of t
pending, done, n = [], 0, 0
while done < commits:
    g = n % groups
    tps = [TopicPartition("t", p, n) for p in range(per_request)]
    pending.extend(a.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(f"g-{g}", tps)]).values())
    done += per_request
    n += 1
    if len(pending) >= 500:
        for f in pending:
            f.result(60)
        pending = []
for f in pending:
    f.result(60)
print(f"{done} commits in {n} requests")
PY
echo "commits took $(($(date +%s) - t0)) s; __consumer_offsets $(offsets_mb) MB"
stop

timed_start "$OUT/before.log" --override log.cleaner.enable=false
before=$STARTUP
stop
echo "start-up before compaction: $before s ($(offsets_mb) MB)"

serve "$OUT/clean.log" --override log.cleaner.backoff.ms=200
# Wait until no pass has cleaned __consumer_offsets for 5 s.
last=-1
while :; do
  sleep 5
  now=$(grep -c "^cleaned __consumer_offsets" "$OUT/clean.log" || true)
  [ "$now" = "$last" ] && break
  last=$now
done
stop
echo "cleaner passes over __consumer_offsets: $last"

timed_start "$OUT/after.log"
after=$STARTUP
stop
echo "start-up after compaction: $after s ($(offsets_mb) MB)"
python3 -c "print(f'after/before: {$after / $before:.3f}')"
