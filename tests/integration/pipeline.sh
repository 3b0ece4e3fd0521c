#!/bin/sh
# Integration test of the whole pipeline on loopback with the real processes:
# broker, stt, chat, tts, avatar and gateway from BUILD_DIR. Speaks TAP.
# Needs: curl, jq, ffmpeg/ffprobe, espeak-ng.
set -u

BUILD_DIR=${BUILD_DIR:?BUILD_DIR must name the build directory}
WORK=$(mktemp -d)
# Below Linux's ephemeral port range (32768+), so no outgoing connection holds it.
PORT=$((10000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 20000))
BROKER_PORT=$((PORT + 1))
BASE="http://127.0.0.1:$PORT"
export BROKER_BIND="tcp://127.0.0.1:$BROKER_PORT" BROKER_ENDPOINT="tcp://127.0.0.1:$BROKER_PORT"
export GATEWAY_PORT=$PORT GATEWAY_BIND=127.0.0.1 MEDIA_DIR="$WORK/media" LOG_LEVEL=info
export JOB_DEADLINE_MS=${JOB_DEADLINE_MS:-60000}

. "$(dirname "$0")/tap.sh"

start() { # start NAME: runs the service in the background, pid in $WORK/NAME.pid
  "$BUILD_DIR/$(path_of "$1")" 2>>"$WORK/$1.log" &
  echo $! > "$WORK/$1.pid"
}
path_of() { case $1 in gateway) echo gateway/gateway ;; *) echo "services/$1/$1" ;; esac; }
pid_of() { cat "$WORK/$1.pid"; }

cleanup() {
  for s in gateway stt chat tts avatar broker; do
    [ -f "$WORK/$s.pid" ] && kill "$(pid_of $s)" 2>/dev/null
  done
  wait 2>/dev/null
  # A sanitizer report in any service log fails the run.
  tap_sanitizer_check "$WORK"
  rm -rf "$WORK"
  tap_end
}
trap 'cleanup; exit $?' EXIT
trap 'exit 1' INT TERM

wait_healthy() {
  i=0
  while [ $i -lt 100 ]; do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/healthz")" = 200 ] && return 0
    sleep 0.1; i=$((i + 1))
  done
  return 1
}

# poll JOB_ID: waits until the job is done or failed; prints its JSON.
poll() {
  i=0
  while [ $i -lt 600 ]; do
    body=$(curl -s "$BASE/api/jobs/$1")
    case $(printf '%s' "$body" | jq -r .state) in done | failed) printf '%s' "$body"; return 0 ;; esac
    sleep 0.1; i=$((i + 1))
  done
  printf '%s' "$body"
  return 1
}

ask() { # ask TEXT [SESSION]: prints the 202 body
  jq -cn --arg t "$1" --arg s "${2:-}" '{text: $t} + (if $s == "" then {} else {session_id: $s} end)' |
    curl -s -X POST "$BASE/api/ask" -H 'Content-Type: application/json' --data-binary @-
}

status_of() { # status_of CURL-ARGS...: prints only the HTTP status
  curl -s -o "$WORK/body" -w '%{http_code}' "$@"
}

# --- start the system ---------------------------------------------------------
start broker
for s in stt chat tts avatar; do start $s; done
start gateway
check "system becomes healthy" wait_healthy

# --- spoken question ------------------------------------------------------------
espeak-ng -w "$WORK/question.wav" "What are your office hours?"
ffmpeg -loglevel error -y -i "$WORK/question.wav" -c:a libopus -b:a 32k -ar 48000 "$WORK/question.webm"
submit=$(curl -s -X POST "$BASE/api/complete-flow" -H 'Content-Type: audio/webm;codecs=opus' \
  --data-binary @"$WORK/question.webm")
job=$(printf '%s' "$submit" | jq -r .job_id)
session=$(printf '%s' "$submit" | jq -r .session_id)
check "complete-flow answers 202 with job and session ids" test -n "$job" -a "$job" != null -a "$session" != null
result=$(poll "$job")
check "spoken job ends done" test "$(printf '%s' "$result" | jq -r .state)" = done
check "transcript is the question" test "$(printf '%s' "$result" | jq -r .transcript)" = "what are your office hours"
reply=$(printf '%s' "$result" | jq -r .reply)
case $reply in *"9 AM to 6 PM"*) ok "reply gives the hours" ;; *) not_ok "reply gives the hours" "reply: $reply" ;; esac
curl -s -o "$WORK/answer.mp4" "$BASE$(printf '%s' "$result" | jq -r .video_url)"
curl -s -o "$WORK/answer.wav" "$BASE$(printf '%s' "$result" | jq -r .audio_url)"
streams=$(ffprobe -v error -show_entries stream=codec_name -of csv=p=0 "$WORK/answer.mp4" | sort | tr '\n' ' ')
check "video streams are H.264 and AAC" test "$streams" = "aac h264 "
video_s=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$WORK/answer.mp4")
speech_s=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$WORK/answer.wav")
check "video lasts as long as the speech (within 10%: $video_s s vs $speech_s s)" \
  awk -v v="$video_s" -v s="$speech_s" 'BEGIN { d = v - s; if (d < 0) d = -d; exit !(s > 1 && d <= s * 0.1) }'
check "media is served with byte ranges" \
  test "$(status_of -r 0-99 "$BASE$(printf '%s' "$result" | jq -r .video_url)")" = 206

# --- sentence streaming: the answer came as segments, joined at the end ----------
count=$(printf '%s' "$result" | jq -r '.segment_count // 0')
check "the reply streamed as several segments ($count)" test "$count" -ge 2
check "every segment has its text, audio and video" test "$(printf '%s' "$result" | jq \
  "[.segments[] | select(.text != \"\" and .audio_url != null and .video_url != null)] | length")" = "$count"
check "segments are in order and cover the reply" test "$(printf '%s' "$result" | jq -r \
  '[.segments | sort_by(.index)[] | .text] | join(" ")')" = "$reply"
check "first_segment timing comes before the total" test "$(printf '%s' "$result" | jq \
  '.timings_ms.first_segment > 0 and .timings_ms.first_segment < .timings_ms.total')" = true
segments_s=0
for url in $(printf '%s' "$result" | jq -r '.segments | sort_by(.index)[] | .video_url'); do
  curl -s -o "$WORK/segment.mp4" "$BASE$url"
  segments_s=$(awk -v a="$segments_s" -v b="$(ffprobe -v error -show_entries format=duration \
    -of csv=p=0 "$WORK/segment.mp4")" 'BEGIN { print a + b }')
done
check "the whole video is its segments back to back ($video_s s vs $segments_s s)" \
  awk -v v="$video_s" -v s="$segments_s" 'BEGIN { d = v - s; if (d < 0) d = -d; exit !(d <= 0.1) }'

# --- follow-up in the same session ----------------------------------------------
followup=$(ask "and on saturday?" "$session" | jq -r .job_id)
reply=$(poll "$followup" | jq -r .reply)
case $reply in *"10 AM to 2 PM"*) ok "follow-up uses the previous turn" ;; *) not_ok "follow-up uses the previous turn" "reply: $reply" ;; esac
turns=$(curl -s "$BASE/api/sessions/$session" | jq '.turns | length')
check "session holds both questions and answers (4 turns, got $turns)" test "$turns" = 4

# --- typed question -------------------------------------------------------------
typed=$(ask "Do you offer a student discount?" | jq -r .job_id)
result=$(poll "$typed")
check "typed job ends done with a video" test "$(printf '%s' "$result" | jq -r '.state + " " + (.video_url | tostring)' | cut -c1-12)" = "done /media/"
case $(printf '%s' "$result" | jq -r .reply) in *"10 percent"*) ok "typed reply gives the discount" ;; *) not_ok "typed reply gives the discount" "$result" ;; esac

# --- two questions in one: both answered, in the order asked, sentence by sentence ---
both=$(poll "$(ask "When are you open and where is your store?" | jq -r .job_id)")
case $(printf '%s' "$both" | jq -r .reply) in
  *"9 AM to 6 PM"*"42 Harbor Street"*) ok "two questions in one get both answers in order" ;;
  *) not_ok "two questions in one get both answers in order" "$both" ;;
esac
check "the two answers are streamed as their sentences ($(printf '%s' "$both" | jq .segment_count))" \
  test "$(printf '%s' "$both" | jq '[.segments[] | select(.video_url != null)] | length')" -ge 3

# --- the same reply again comes from the answer cache ------------------------------
first_video=$(printf '%s' "$result" | jq -r .video_url)
again=$(curl -s -X POST "$BASE/api/ask" -H 'Content-Type: application/json' \
  -d '{"text":"Is there a student discount?"}' | jq -r .job_id)
result=$(poll "$again")
check "a repeated reply is served from the answer cache" test "$(printf '%s' "$result" | \
  jq -r '[.state, .cached, .video_url] | join(" ")')" = "done true $first_video"
printf '# cached answer: total %s ms\n' "$(printf '%s' "$result" | jq .timings_ms.total)"
check "metrics count the cache hit" sh -c "curl -s '$BASE/metrics' | grep -q '^gateway_answer_cache_total{result=\"hit\"} [1-9]'"

# --- the greeting is rendered ahead and served --------------------------------------
i=0
while [ $i -lt 300 ]; do
  greeting=$(curl -s "$BASE/api/greeting")
  [ "$(printf '%s' "$greeting" | jq -r .state)" = done ] && break
  i=$((i + 1)); sleep 0.1
done
check "the greeting is ready with its video" test "$(status_of "$BASE$(printf '%s' "$greeting" | jq -r .video_url)")" = 200
check "a bad character name for the greeting is 400" test "$(status_of "$BASE/api/greeting?character=No%20Way")" = 400

# --- a worker killed while it holds a job ----------------------------------------
# SIGSTOP freezes tts so the broker hands it the job; kill -9 then takes it down
# with the job. The broker must notice the silence and give the job to a new tts.
kill -STOP "$(pid_of tts)"
held=$(ask "Where is your store?" | jq -r .job_id)
sleep 0.5
kill -9 "$(pid_of tts)"
start tts
result=$(poll "$held")
state=$(printf '%s' "$result" | jq -r .state)
code=$(printf '%s' "$result" | jq -r '.error.code // empty')
check "job held by a killed tts still ends (state=$state $code)" test "$state" = done -o -n "$code"
check "it ends done after the restart" test "$state" = done

# --- the broker restarts while a job is in flight ------------------------------
# The gateway keeps every open job and hands it to the new broker; workers rejoin.
kill -STOP "$(pid_of tts)"
moved=$(ask "What is your email address?" | jq -r .job_id)
sleep 0.3
kill -9 "$(pid_of broker)"
kill -CONT "$(pid_of tts)"
start broker
result=$(poll "$moved")
check "job survives a broker restart ($(printf '%s' "$result" | jq -c .error))" test "$(printf '%s' "$result" | jq -r .state)" = done
check "every stage has a worker again after the restart" wait_healthy

# --- bad input --------------------------------------------------------------------
check "garbage audio is 422" test "$(status_of -X POST "$BASE/api/complete-flow" -H 'Content-Type: audio/webm' --data-binary 'this is not audio at all')" = 422
check "422 body is a JSON error" test "$(jq -r .error.code "$WORK/body")" = unprocessable
head -c 20000000 /dev/zero > "$WORK/huge"
check "20 MB body is 413" test "$(status_of -X POST "$BASE/api/complete-flow" -H 'Content-Type: audio/webm' --data-binary @"$WORK/huge")" = 413
check "malformed JSON is 400" test "$(status_of -X POST "$BASE/api/ask" -H 'Content-Type: application/json' --data-binary '{"text": ')" = 400
check "unknown job id is 404" test "$(status_of "$BASE/api/jobs/0123456789abcdef0123456789abcdef")" = 404
check "404 body is a JSON error" test "$(jq -r .error.code "$WORK/body")" = not_found
check "unsupported media type is 415" test "$(status_of -X POST "$BASE/api/complete-flow" -H 'Content-Type: text/plain' --data-binary 'hello')" = 415
# Garbage on the broker socket: raw bytes that are not even ZMTP, then valid ZMTP
# frames that are not AVP1.
printf 'GET / HTTP/1.1\r\n\r\n%s' "$(head -c 3000 /dev/urandom | tr -d '\0')" |
  curl -s -m 2 --data-binary @- "http://127.0.0.1:$BROKER_PORT/" >/dev/null 2>&1
"$BUILD_DIR/tests/zmq_garbage" "$BROKER_ENDPOINT"
check "broker survives garbage frames" kill -0 "$(pid_of broker)"
after=$(ask "What is your phone number?" | jq -r .job_id)
check "system keeps serving after bad input" test "$(poll "$after" | jq -r .state)" = done
check "healthz is still ok" test "$(status_of "$BASE/healthz")" = 200
curl -s -o "$WORK/metrics" "$BASE/metrics"
check "metrics are Prometheus text" grep -q '^# TYPE' "$WORK/metrics"
check "metrics carry the workers' counters" grep -q '^worker_jobs_done_total{stage="avatar"}' "$WORK/metrics"
check "metrics carry the broker's counters" grep -q '^broker_jobs_dispatched_total [1-9]' "$WORK/metrics"
curl -s -o "$WORK/idle.mp4" "$BASE/idle.mp4"
check "the idle loop is served as H.264 video" test "$(ffprobe -v error -show_entries stream=codec_name -of csv=p=0 "$WORK/idle.mp4")" = h264
leo=$(printf '{"text": "Is there free parking?", "character": "leo"}' |
  curl -s -X POST "$BASE/api/ask" -H 'Content-Type: application/json' --data-binary @- | jq -r .job_id)
check "a question for another character ends done" test "$(poll "$leo" | jq -r .state)" = done
check "a malformed character name is 400" test "$(status_of -X POST "$BASE/api/ask" -H 'Content-Type: application/json' --data-binary '{"text": "hi", "character": "../x"}')" = 400
