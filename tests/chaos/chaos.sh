#!/bin/sh
# Chaos test: two replicas of every stage; CHAOS_JOBS jobs (mixed spoken and typed)
# submitted while a driver kills -9 a random worker every CHAOS_KILL_EVERY seconds
# (it comes back a moment later) and the broker is killed and restarted once.
# Every accepted job must end done or failed with a clear error before its deadline;
# none may be lost, none answered twice in its session. Speaks TAP; prints counts.
#   CHAOS_JOBS=1000 tests/chaos/chaos.sh     (the long run; scripts/test runs 60)
set -u

BUILD_DIR=${BUILD_DIR:?BUILD_DIR must name the build directory}
JOBS=${CHAOS_JOBS:-60}
KILL_EVERY=${CHAOS_KILL_EVERY:-2}
WORK=$(mktemp -d)
# Below Linux's ephemeral port range (32768+), so no outgoing connection holds it.
PORT=$((10000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 20000))
BASE="http://127.0.0.1:$PORT"
export BROKER_BIND="tcp://127.0.0.1:$((PORT + 1))" BROKER_ENDPOINT="tcp://127.0.0.1:$((PORT + 1))"
export GATEWAY_PORT=$PORT GATEWAY_BIND=127.0.0.1 MEDIA_DIR="$WORK/media" LOG_LEVEL=warn
# Small frames keep the test about crashes, not rendering speed.
export AVATAR_SIZE=${AVATAR_SIZE:-128} AVATAR_FPS=${AVATAR_FPS:-10}
export JOB_DEADLINE_MS=${JOB_DEADLINE_MS:-60000} BROKER_QUEUE_MAX=${BROKER_QUEUE_MAX:-1000}
# One client submits and polls everything here: no per-client rate limits.
export GATEWAY_RATE_PER_MIN=0 GATEWAY_POLL_RATE_PER_MIN=0 GATEWAY_MAX_CONNECTIONS_PER_IP=0
# Every job goes through every stage while workers die: no answer from a cache.
export ANSWER_CACHE_MAX=0 CHAT_CACHE_MAX=0
STAGES="stt chat tts avatar"

. "$(dirname "$0")/../integration/tap.sh"

start() { # start NAME [REPLICA]
  case $1 in gateway) bin=gateway/gateway ;; *) bin=services/$1/$1 ;; esac
  "$BUILD_DIR/$bin" 2>>"$WORK/$1${2:-}.log" &
  echo $! > "$WORK/$1${2:-}.pid"
}
stop_all() {
  for f in "$WORK"/*.pid; do [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null; done
  wait 2>/dev/null
}
cleanup() {
  [ -n "${killer:-}" ] && kill "$killer" 2>/dev/null
  stop_all
  rm -rf "$WORK"
  tap_end
}
trap 'cleanup; exit $?' EXIT
trap 'exit 1' INT TERM

start broker
for s in $STAGES; do start "$s" 1; start "$s" 2; done
start gateway
i=0
until [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/healthz")" = 200 ]; do
  sleep 0.1; i=$((i + 1)); [ $i -lt 150 ] || break
done
check "system with two replicas per stage is healthy" test $i -lt 150

espeak-ng -w "$WORK/q.wav" "Do you ship to Canada?"
ffmpeg -loglevel error -y -i "$WORK/q.wav" -c:a libopus -b:a 24k -ar 48000 "$WORK/q.webm"

# The killer: a random worker dies every KILL_EVERY s and comes back 0.5 s later;
# half-way through the run the broker dies and comes back.
(
  kills=0
  while :; do
    sleep "$KILL_EVERY"
    victim=$(printf '%s\n' stt1 stt2 chat1 chat2 tts1 tts2 avatar1 avatar2 | shuf -n 1)
    kill -9 "$(cat "$WORK/$victim.pid")" 2>/dev/null
    sleep 0.5
    stage=${victim%[12]}
    start "$stage" "${victim#"$stage"}"
    kills=$((kills + 1))
    echo "$kills" > "$WORK/kills"
    if [ -f "$WORK/restart-broker" ]; then
      rm -f "$WORK/restart-broker"
      kill -9 "$(cat "$WORK/broker.pid")" 2>/dev/null
      sleep 0.5
      start broker
      echo 1 > "$WORK/broker-restarted"
    fi
  done
) &
killer=$!

# Submissions: 5 jobs per session, spoken and typed in turn, about 4 per second.
accepted=0 refused=0 session=""
j=0
while [ $j -lt "$JOBS" ]; do
  [ $((j % 5)) -eq 0 ] && session=""
  if [ $((j % 2)) -eq 0 ]; then
    reply=$(curl -s -w '\n%{http_code}' -X POST "$BASE/api/complete-flow?session_id=$session" \
      -H 'Content-Type: audio/webm' --data-binary @"$WORK/q.webm")
  else
    reply=$(jq -cn --arg s "$session" --arg t "What are your hours? ($j)" '{text: $t, session_id: $s}' |
      curl -s -w '\n%{http_code}' -X POST "$BASE/api/ask" -H 'Content-Type: application/json' --data-binary @-)
  fi
  code=$(printf '%s' "$reply" | tail -n 1)
  if [ "$code" = 202 ]; then
    body=$(printf '%s' "$reply" | head -n 1)
    session=$(printf '%s' "$body" | jq -r .session_id)
    printf '%s %s\n' "$(printf '%s' "$body" | jq -r .job_id)" "$session" >> "$WORK/accepted"
    accepted=$((accepted + 1))
  else
    refused=$((refused + 1))
  fi
  j=$((j + 1))
  [ $j -eq $((JOBS / 2)) ] && touch "$WORK/restart-broker"
  sleep 0.25
done

# Every accepted job must end before its deadline (plus the gateway's 2 s grace).
give_up=$(( $(date +%s) + JOB_DEADLINE_MS / 1000 + 5 ))
: > "$WORK/final"
while :; do
  : > "$WORK/open"
  while read -r job session; do
    grep -q "^$job " "$WORK/final" && continue
    state=$(curl -s "$BASE/api/jobs/$job" | jq -r '.state + " " + (.error.code // "-")')
    case $state in
      done*|failed*) echo "$job $state" >> "$WORK/final" ;;
      *) echo "$job" >> "$WORK/open" ;;
    esac
  done < "$WORK/accepted"
  [ -s "$WORK/open" ] || break
  [ "$(date +%s)" -lt "$give_up" ] || break
  sleep 1
done
kill "$killer" 2>/dev/null; killer=""

done_count=$(grep -c ' done ' "$WORK/final")
failed_count=$(grep -c ' failed ' "$WORK/final")
lost=$(wc -l < "$WORK/open")
# A job answered twice would show its id twice among its session's turns.
duplicates=0
for s in $(cut -d' ' -f2 "$WORK/accepted" | sort -u); do
  d=$(curl -s "$BASE/api/sessions/$s" | jq -r '.turns[] | select(.role == "assistant") | .job_id' | sort | uniq -d | wc -l)
  duplicates=$((duplicates + d))
done
echo "# accepted $accepted, refused $refused, done $done_count, failed $failed_count, duplicates $duplicates, lost $lost, worker kills $(cat "$WORK/kills" 2>/dev/null || echo 0)"
awk '$2 == "failed" { print $3 }' "$WORK/final" | sort | uniq -c | sed 's/^/# failed by code: /'
check "jobs were accepted ($accepted of $JOBS)" test "$accepted" -gt 0
check "the broker was restarted during the run" test -f "$WORK/broker-restarted"
check "no accepted job is lost ($lost)" test "$lost" -eq 0
check "every job ended done or failed ($done_count + $failed_count of $accepted)" test $((done_count + failed_count)) -eq "$accepted"
check "no job answered twice in its session ($duplicates)" test "$duplicates" -eq 0
check "every failure has a code" sh -c "! awk '\$2 == \"failed\" && \$3 == \"-\"' '$WORK/final' | grep -q ."
