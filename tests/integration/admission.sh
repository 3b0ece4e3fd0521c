#!/bin/sh
# Integration test of deadline-aware admission with the real processes on loopback:
# chat uses the OpenAI-compatible backend against tests/fakes' fake chat server,
# which answers every question 1.5 s late (its "slow" outcome), so one chat replica
# clears a question every 1.5 s. With BROKER_ADMIT_PERCENT=30 and 30 s deadlines a
# question may wait 9 s: a burst of typed questions must be admitted until the
# broker's estimate passes that, the rest answered 503 overloaded at once with a
# Retry-After from the estimate, every admitted question must end done, and once
# the queue has drained a question is admitted again. Speaks TAP.
# Needs: curl, jq.
set -u

BUILD_DIR=${BUILD_DIR:?BUILD_DIR must name the build directory}
WORK=$(mktemp -d)
# Below Linux's ephemeral port range (32768+), so no outgoing connection holds it.
PORT=$((10000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 20000))
BROKER_PORT=$((PORT + 1))
BASE="http://127.0.0.1:$PORT"
SLOW_MS=1500
BURST=12
export BROKER_BIND="tcp://127.0.0.1:$BROKER_PORT" BROKER_ENDPOINT="tcp://127.0.0.1:$BROKER_PORT"
export GATEWAY_PORT=$PORT GATEWAY_BIND=127.0.0.1 MEDIA_DIR="$WORK/media" LOG_LEVEL=info
export JOB_DEADLINE_MS=30000 BROKER_ADMIT_PERCENT=30
# Every question must reach chat: no answer from a cache; one client asks everything.
export ANSWER_CACHE_MAX=0 CHAT_CACHE_MAX=0 GATEWAY_RATE_PER_MIN=0
# The small, fast picture of the chaos run: this test is about the queue, not rendering.
export AVATAR_SIZE=128 AVATAR_FPS=10
export CHAT_BACKEND=openai OPENAI_API_KEY=sk-fake-admission OPENAI_CHAT_MODEL=llama3.1

. "$(dirname "$0")/tap.sh"

SERVICES="gateway stt chat tts avatar broker"
start() { # start NAME: runs the service in the background, pid in $WORK/NAME.pid
  "$BUILD_DIR/$(path_of "$1")" 2>>"$WORK/$1.log" &
  echo $! > "$WORK/$1.pid"
}
path_of() { case $1 in gateway) echo gateway/gateway ;; *) echo "services/$1/$1" ;; esac; }
pid_of() { cat "$WORK/$1.pid"; }

cleanup() {
  for s in $SERVICES fake_openai_chat; do
    [ -f "$WORK/$s.pid" ] && kill "$(pid_of $s)" 2>/dev/null
  done
  wait 2>/dev/null
  # A sanitizer report in any log fails the run.
  tap_sanitizer_check "$WORK"
  rm -rf "$WORK"
  tap_end
}
trap 'cleanup; exit $?' EXIT
trap 'exit 1' INT TERM

start_fake_chat() {
  # Enough "slow" outcomes for every question this test asks; later ones answer at once.
  outcomes=$(yes slow | head -n 40 | tr '\n' ' ')
  FAKE_SLOW_MS=$SLOW_MS FAKE_OUTCOMES="$outcomes" FAKE_OPENAI_MODEL=llama3.1 \
    "$BUILD_DIR/tests/fakes/fake_openai_chat" >"$WORK/fake.out" 2>>"$WORK/fake_openai_chat.log" &
  echo $! > "$WORK/fake_openai_chat.pid"
  i=0
  while [ $i -lt 100 ]; do
    port=$(sed -n 's/^port \([0-9]*\)$/\1/p' "$WORK/fake.out")
    [ -n "$port" ] && { export OPENAI_CHAT_BASE_URL="http://127.0.0.1:$port"; return 0; }
    sleep 0.05; i=$((i + 1))
  done
  return 1
}

wait_healthy() {
  i=0
  while [ $i -lt 150 ]; do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/healthz")" = 200 ] && return 0
    sleep 0.1; i=$((i + 1))
  done
  return 1
}

# ask TEXT: posts a typed question; prints "code seconds retry_after job_id_or_error_code".
ask() {
  curl -s -D "$WORK/headers" -o "$WORK/body" -w '%{http_code} %{time_total}' -X POST "$BASE/api/ask" \
    -H 'Content-Type: application/json' -d "{\"text\": \"$1\"}" > "$WORK/status"
  retry=$(tr -d '\r' < "$WORK/headers" | sed -n 's/^[Rr]etry-[Aa]fter: *//p')
  what=$(jq -r '.job_id // .error.code' "$WORK/body")
  echo "$(cat "$WORK/status") ${retry:--} $what"
}

# poll JOB_ID: waits until the job is done or failed (at most 40 s); prints its state.
poll() {
  i=0
  while [ $i -lt 400 ]; do
    state=$(curl -s "$BASE/api/jobs/$1" | jq -r .state)
    case $state in done | failed) echo "$state"; return 0 ;; esac
    sleep 0.1; i=$((i + 1))
  done
  echo "$state"
}

check "the fake chat server answers on a port" start_fake_chat
start broker
for s in stt chat tts avatar; do start $s; done
start gateway
check "system becomes healthy" wait_healthy

# One question first: the broker learns how long chat takes per question.
set -- $(ask "warm up")
check "a first question is accepted ($1)" test "$1" = 202
check "... and ends done" test "$(poll "$4")" = done

# The burst, one request after the other as fast as curl goes.
: > "$WORK/accepted"
refused=0 slowest_refusal=0 retry_ok=true i=0
while [ $i -lt $BURST ]; do
  set -- $(ask "question number $i")
  echo "# question $i: HTTP $1 in $2 s, Retry-After $3, $4"
  if [ "$1" = 202 ]; then
    echo "$4" >> "$WORK/accepted"
  elif [ "$1" = 503 ] && [ "$4" = overloaded ]; then
    refused=$((refused + 1))
    slowest_refusal=$(awk -v a="$slowest_refusal" -v b="$2" 'BEGIN { print (b > a ? b : a) }')
    case $3 in '' | *[!0-9]*) retry_ok=false ;; *) [ "$3" -ge 1 ] && [ "$3" -le 30 ] || retry_ok=false ;; esac
  fi
  i=$((i + 1))
done
accepted=$(wc -l < "$WORK/accepted")
echo "# burst of $BURST: $accepted accepted, $refused refused (slowest refusal ${slowest_refusal} s)"
# 9 s of waiting at 1.5 s a question: about six admitted behind the one chat holds.
check "the first questions of the burst are admitted ($accepted)" test "$accepted" -ge 3
check "the rest are refused as overloaded ($refused)" test "$refused" -ge 1
check "accepted + refused = the burst" test $((accepted + refused)) -eq $BURST
check "each refusal came at once (slowest ${slowest_refusal} s)" \
  awk -v t="$slowest_refusal" 'BEGIN { exit !(t < 1.0) }'
check "each refusal carries Retry-After from the estimate (1-30 s)" $retry_ok
check "the gateway logged the broker's reason" grep -q 'would wait about' "$WORK/gateway.log"
# Each question opened a new session; a refused one must not leave it behind.
sessions=$(curl -s "$BASE/metrics" | awk '$1 == "gateway_sessions_stored" { print $2 }')
check "sessions kept: the warm-up's and the admitted ones' only (${sessions:-none} for $((accepted + 1)))" \
  test "${sessions:-none}" = $((accepted + 1))
check "/metrics shows the estimate and the refusals" sh -c "curl -s '$BASE/metrics' | grep -q '^broker_jobs_nacked_wait_total [1-9]' &&
  curl -s '$BASE/metrics' | grep -q '^gateway_stage_service_ms{stage=\"chat\"} [1-9]'"

done_count=0
while read -r job; do
  [ "$(poll "$job")" = done ] && done_count=$((done_count + 1))
done < "$WORK/accepted"
check "every admitted question ends done ($done_count of $accepted)" test "$done_count" -eq "$accepted"

# The queue has drained: the estimate is back under the limit.
set -- $(ask "after the burst")
check "once the queue has drained a question is admitted again ($1)" test "$1" = 202
check "... and ends done" test "$(poll "$4")" = done
