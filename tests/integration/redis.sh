#!/bin/sh
# Integration test of replicated gateways sharing Redis (STATUS_STORE=redis://...):
# a real redis-server, the broker, one replica of each stage and two gateways, A
# and B, on loopback. The broker hands each status event to one of the gateways,
# so both write into the shared store; a client may talk to either. Speaks TAP.
# Needs: redis-server, curl, jq, ffprobe.
set -u

BUILD_DIR=${BUILD_DIR:?BUILD_DIR must name the build directory}
WORK=$(mktemp -d)
# Below Linux's ephemeral port range (32768+), so no outgoing connection holds it.
PORT=$((10000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 20000))
PORT_A=$PORT PORT_B=$((PORT + 1)) BROKER_PORT=$((PORT + 2)) REDIS_PORT=$((PORT + 3))
A="http://127.0.0.1:$PORT_A" B="http://127.0.0.1:$PORT_B"
export BROKER_BIND="tcp://127.0.0.1:$BROKER_PORT" BROKER_ENDPOINT="tcp://127.0.0.1:$BROKER_PORT"
export GATEWAY_BIND=127.0.0.1 LOG_LEVEL=info STATUS_STORE="redis://127.0.0.1:$REDIS_PORT/0"
# Neither gateway may fall back to a directory: media must come from Redis.
export MEDIA_DIR=/nonexistent/never-used

. "$(dirname "$0")/tap.sh"

start() { # start NAME COMMAND...: runs COMMAND in the background, pid in $WORK/NAME.pid
  name=$1; shift
  "$@" 2>>"$WORK/$name.log" &
  echo $! > "$WORK/$name.pid"
}
pid_of() { cat "$WORK/$1.pid"; }

cleanup() {
  for s in gateway-a gateway-b stt chat tts avatar broker redis; do
    [ -f "$WORK/$s.pid" ] && kill "$(pid_of $s)" 2>/dev/null
  done
  wait 2>/dev/null
  tap_sanitizer_check "$WORK"
  rm -rf "$WORK"
  tap_end
}
trap 'cleanup; exit $?' EXIT
trap 'exit 1' INT TERM

if ! command -v redis-server >/dev/null 2>&1; then
  echo "1..0 # SKIP redis-server is not installed"
  trap - EXIT
  rm -rf "$WORK"
  exit 0
fi

wait_healthy() { # wait_healthy BASE
  i=0
  while [ $i -lt 100 ]; do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1/healthz")" = 200 ] && return 0
    sleep 0.1; i=$((i + 1))
  done
  return 1
}

poll() { # poll BASE JOB_ID: waits until the job is done or failed; prints its JSON
  i=0
  while [ $i -lt 600 ]; do
    body=$(curl -s "$1/api/jobs/$2")
    case $(printf '%s' "$body" | jq -r .state 2>/dev/null) in done | failed) printf '%s' "$body"; return 0 ;; esac
    sleep 0.1; i=$((i + 1))
  done
  printf '%s' "$body"
  return 1
}

ask() { # ask BASE TEXT [SESSION]: prints the 202 body
  jq -cn --arg t "$2" --arg s "${3:-}" '{text: $t} + (if $s == "" then {} else {session_id: $s} end)' |
    curl -s -X POST "$1/api/ask" -H 'Content-Type: application/json' --data-binary @-
}

# --- start the system -------------------------------------------------------------
start redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  --loglevel warning --logfile "$WORK/redis-server.log"
i=0
until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 || [ $i -ge 50 ]; do sleep 0.1; i=$((i + 1)); done
start broker "$BUILD_DIR/services/broker/broker"
for s in stt chat tts avatar; do start $s "$BUILD_DIR/services/$s/$s"; done
GATEWAY_PORT=$PORT_A start gateway-a "$BUILD_DIR/gateway/gateway"
GATEWAY_PORT=$PORT_B start gateway-b "$BUILD_DIR/gateway/gateway"
check "gateway A becomes healthy" wait_healthy "$A"
check "gateway B becomes healthy" wait_healthy "$B"

# --- a job submitted on A is followed and fetched on B ------------------------------
first=$(ask "$A" "What are your office hours?")
job=$(printf '%s' "$first" | jq -r .job_id)
session=$(printf '%s' "$first" | jq -r .session_id)
check "A answers 202 with job and session ids" test -n "$job" -a "$job" != null -a "$session" != null
result=$(poll "$B" "$job")
check "B follows A's job to done" test "$(printf '%s' "$result" | jq -r .state)" = done
case $(printf '%s' "$result" | jq -r .reply) in *"9 AM to 6 PM"*) ok "B shows A's reply" ;; *) not_ok "B shows A's reply" "$result" ;; esac
video=$(printf '%s' "$result" | jq -r .video_url)
curl -s -o "$WORK/answer.mp4" "$B$video"
streams=$(ffprobe -v error -show_entries stream=codec_name -of csv=p=0 "$WORK/answer.mp4" | sort | tr '\n' ' ')
check "B serves the video from Redis (H.264 + AAC)" test "$streams" = "aac h264 "
check "A serves the same bytes" sh -c "curl -s '$A$video' | cmp -s - '$WORK/answer.mp4'"
range=$(curl -s -o "$WORK/part" -w '%{http_code} %{size_download}' -r 100-1099 "$B$video")
check "media from Redis is served with byte ranges ($range)" test "$range" = "206 1000"
check "the range holds the right bytes" sh -c "tail -c +101 '$WORK/answer.mp4' | head -c 1000 | cmp -s - '$WORK/part'"

# --- the session is shared -----------------------------------------------------------
followup=$(ask "$B" "and on saturday?" "$session" | jq -r .job_id)
reply=$(poll "$A" "$followup" | jq -r .reply)
case $reply in *"10 AM to 2 PM"*) ok "follow-up on B uses the turn made through A" ;; *) not_ok "follow-up on B uses the turn made through A" "reply: $reply" ;; esac
turns=$(curl -s "$A/api/sessions/$session" | jq '.turns | length')
check "A shows the session's 4 turns (got $turns)" test "$turns" = 4

# --- several jobs: events spread over both gateways; every job ends on both ----------
jobs=""
for q in "Where is your store?" "What is your phone number?" "Do you offer a student discount?" \
  "What is your return policy?"; do
  jobs="$jobs $(ask "$A" "$q" | jq -r .job_id)"
done
all_done=1
for j in $jobs; do
  [ "$(poll "$B" "$j" | jq -r .state)" = done ] || all_done=0
  [ "$(poll "$A" "$j" | jq -r .state)" = done ] || all_done=0
done
check "4 more jobs end done, seen alike on A and B" test "$all_done" = 1
# Which gateway sees a job's last event depends on the broker's round robin. Only
# this test's questions count (each gateway also renders the greeting at start).
finals() { # finals LOG: how many of the test's jobs that gateway finished
  for j in $job $followup $jobs; do grep "\"event\":\"job_final\"" "$1" | grep -c "\"job_id\":\"$j\""; done |
    awk '{ n += $1 } END { print n + 0 }'
}
finals_a=$(finals "$WORK/gateway-a.log")
finals_b=$(finals "$WORK/gateway-b.log")
echo "# jobs finished by the events gateway A received: $finals_a, by B's: $finals_b"
check "each job became final once across both gateways ($finals_a + $finals_b = 6)" \
  test $((finals_a + finals_b)) -eq 6

# --- one gateway goes away; the other still answers for its jobs ---------------------
kill "$(pid_of gateway-a)"
wait "$(pid_of gateway-a)" 2>/dev/null
rm -f "$WORK/gateway-a.pid"
check "B still shows a job of A after A stopped" test "$(curl -s "$B/api/jobs/$job" | jq -r .state)" = done
late=$(ask "$B" "Thanks" "$session" | jq -r .job_id)
check "B alone keeps answering" test "$(poll "$B" "$late" | jq -r .state)" = done

# --- a gateway with a wrong STATUS_STORE refuses to start ----------------------------
STATUS_STORE="redis://127.0.0.1:1" GATEWAY_PORT=0 "$BUILD_DIR/gateway/gateway" 2>"$WORK/bad.log"
rc=$?
check "unreachable Redis stops the gateway with exit 1 (got $rc)" test "$rc" = 1
check "and says why" grep -q '"event":"start_failed".*cannot reach Redis' "$WORK/bad.log"
