#!/bin/sh
# Load benchmark: LOAD_SECONDS (default 600) of many concurrent pollers on
# GET /api/jobs/{id} (wrk, LOAD_POLLERS connections) plus a steady stream of typed
# submissions (LOAD_SUBMIT_PER_S per second) against the local system. Prints
# polls/s with p50/p99 latency, submissions accepted vs answered 429/503, every
# process's RSS at start and end (and every LOAD_SAMPLE_S seconds in between, with
# the broker's queue depths, which is where its memory goes, and the gateway's heap:
# in use, held free, SQLite's part, sessions kept), how the accepted jobs ended
# (done, failed by error code) and how many never ended (lost). Figures, not
# assertions.
#   bench/load.sh [BUILD_DIR]
set -eu
. "$(dirname "$0")/../scripts/lib.sh"
ensure_packages wrk

BUILD_DIR=${1:-$TOP/build}
SECONDS_TOTAL=${LOAD_SECONDS:-600}
POLLERS=${LOAD_POLLERS:-64}
RATE=${LOAD_SUBMIT_PER_S:-2}
SAMPLE=${LOAD_SAMPLE_S:-60}
WORK=$(mktemp -d)
PORT=$((10000 + $$ % 20000))
BASE="http://127.0.0.1:$PORT"
export BROKER_BIND="tcp://127.0.0.1:$((PORT + 1))" BROKER_ENDPOINT="tcp://127.0.0.1:$((PORT + 1))"
export GATEWAY_PORT=$PORT GATEWAY_BIND=127.0.0.1 MEDIA_DIR="$WORK/media" LOG_LEVEL=warn
export GATEWAY_RATE_PER_MIN=0 GATEWAY_POLL_RATE_PER_MIN=0 GATEWAY_MAX_CONNECTIONS=1024 GATEWAY_MAX_CONNECTIONS_PER_IP=0
# The same question over and over: without this, every answer after the first
# would come from the answer cache and the stages would sit idle.
export ANSWER_CACHE_MAX=${ANSWER_CACHE_MAX:-0} CHAT_CACHE_MAX=${CHAT_CACHE_MAX:-0}

cleanup() {
  kill ${sampler:-} 2>/dev/null || true
  kill $(cut -d' ' -f2 "$WORK/pids") 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
for s in broker stt chat tts avatar gateway; do
  case $s in gateway) bin=gateway/gateway ;; *) bin=services/$s/$s ;; esac
  "$BUILD_DIR/$bin" 2>>"$WORK/$s.log" &
  echo "$s $!" >> "$WORK/pids"
done
i=0
until [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/healthz")" = 200 ]; do
  sleep 0.1; i=$((i + 1)); [ $i -lt 100 ] || { echo "system did not start" >&2; exit 1; }
done

rss() { while read -r name pid; do printf '%s=%s ' "$name" "$(awk '/VmRSS/ { print $2 }' "/proc/$pid/status")"; done < "$WORK/pids"; }
queues() { curl -s "$BASE/metrics" | sed -n 's/^gateway_stage_queue_depth{stage="\(.*\)"} /\1=/p' | tr '\n' ' '; }
# How jobs ended, from the gateway's counters (records may have expired by the end):
# "state:code count" lines; the run's are the difference from before the run.
ends() { curl -s "$BASE/metrics" | sed -n 's/^gateway_jobs_total{state="\([a-z]*\)",error_code="\([a-z_]*\)"} /\1:\2 /p'; }
heap() { curl -s "$BASE/metrics" | awk '/^gateway_(heap_in_use|heap_free|sqlite_memory)_bytes / { sub("gateway_", "", $1); sub("_bytes", "", $1); printf "%s=%d ", $1, $2 / 1024 }
  $1 == "gateway_sessions_stored" { printf "sessions=%d ", $2 }'; }
echo "RSS kB at start: $(rss) gateway heap kB: $(heap)"
( t=0; while sleep "$SAMPLE"; do t=$((t + SAMPLE)); echo "t=${t}s RSS kB: $(rss) queued: $(queues) gateway heap kB: $(heap)"; done ) &
sampler=$!

first=$(curl -s -X POST "$BASE/api/ask" -H 'Content-Type: application/json' -d '{"text":"hello"}' | jq -r .job_id)
i=0
until [ "$(curl -s "$BASE/api/jobs/$first" | jq -r .state)" = done ] || [ $i -ge 600 ]; do sleep 0.1; i=$((i + 1)); done
ends > "$WORK/ends.before"
cat > "$WORK/poll.lua" <<EOF
request = function() return wrk.format("GET", "/api/jobs/$first") end
EOF

# Submissions for the whole run, in the background.
(
  end=$(( $(date +%s) + SECONDS_TOTAL ))
  pause=$(awk -v r="$RATE" 'BEGIN { print 1 / r }')
  while [ "$(date +%s)" -lt "$end" ]; do
    out=$(curl -s -w '\n%{http_code}' -X POST "$BASE/api/ask" -H 'Content-Type: application/json' \
      -d '{"text":"What are your office hours?"}')
    code=$(printf '%s' "$out" | tail -n 1)
    echo "$code" >> "$WORK/codes"
    [ "$code" = 202 ] && printf '%s' "$out" | head -n 1 | jq -r .job_id >> "$WORK/accepted"
    sleep "$pause"
  done
) &
submitter=$!

wrk -t 2 -c "$POLLERS" -d "${SECONDS_TOTAL}s" --latency -s "$WORK/poll.lua" "$BASE" > "$WORK/wrk.txt"
wait "$submitter"
kill "$sampler" 2>/dev/null || true
sleep 5
echo "RSS kB at end:   $(rss) gateway heap kB: $(heap)"

echo "polls/s: $(awk '/Requests\/sec/ { print $2 }' "$WORK/wrk.txt")"
echo "poll latency p50: $(awk '$1 == "50%" { print $2 }' "$WORK/wrk.txt")  p99: $(awk '$1 == "99%" { print $2 }' "$WORK/wrk.txt")"
echo "submissions: $(wc -l < "$WORK/codes"), accepted $(grep -c '^202$' "$WORK/codes" || true), 429 $(grep -c '^429$' "$WORK/codes" || true), 503 $(grep -c '^503$' "$WORK/codes" || true)"
# Wait for the last jobs (up to their deadline), then count those that never ended.
deadline=$(( $(date +%s) + 65 ))
while :; do
  open=0
  while read -r job; do
    # null: the record expired (JOB_TTL_S) after its job ended.
    case $(curl -s "$BASE/api/jobs/$job" | jq -r .state) in done | failed | null) ;; *) open=$((open + 1)) ;; esac
  done < "$WORK/accepted"
  [ "$open" -eq 0 ] || [ "$(date +%s)" -ge "$deadline" ] && break
  sleep 2
done
ends > "$WORK/ends.after"
echo "jobs: $(awk 'NR == FNR { before[$1] = $2; next } { n = $2 - before[$1]; sub(/:$/, "", $1); if (n) printf "%s %d, ", $1, n }' "$WORK/ends.before" "$WORK/ends.after")lost $open"
echo "RSS kB after the last job: $(rss) gateway heap kB: $(heap)"
