#!/bin/sh
# Integration test of the whole pipeline with the cloud and self-hosted backends,
# against the local fake APIs of tests/fakes (real processes on loopback):
#   1. STT_BACKEND=google CHAT_BACKEND=gemini TTS_BACKEND=google AVATAR_BACKEND=did
#   2. STT_BACKEND=openai CHAT_BACKEND=openai TTS_BACKEND=openai AVATAR_BACKEND=local
# Each answers a spoken question with a video, the model's answer streamed sentence
# by sentence; a stream broken off fails its job; a first question asked again is
# answered from chat's reply cache. No service log may contain a key.
# Speaks TAP. Needs: curl, jq, ffmpeg/ffprobe, espeak-ng.
set -u

BUILD_DIR=${BUILD_DIR:?BUILD_DIR must name the build directory}
FAKES="$BUILD_DIR/tests/fakes"
WORK=$(mktemp -d)
# Below Linux's ephemeral port range (32768+), so no outgoing connection holds it.
PORT=$((10000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 20000))
BROKER_PORT=$((PORT + 1))
BASE="http://127.0.0.1:$PORT"
export BROKER_BIND="tcp://127.0.0.1:$BROKER_PORT" BROKER_ENDPOINT="tcp://127.0.0.1:$BROKER_PORT"
export GATEWAY_PORT=$PORT GATEWAY_BIND=127.0.0.1 LOG_LEVEL=info
export JOB_DEADLINE_MS=90000 AVATAR_TIMEOUT_MS=60000

# The keys: long and unusual, so finding one in a log cannot be a coincidence.
GOOGLE_KEY="AIzaFakeGoogleKey-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
GEMINI_KEY="AIzaFakeGeminiKey-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
DID_KEY="ZmFrZUBleGFtcGxlLmNvbQ:did-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
OPENAI_KEY="sk-fake-openai-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"

. "$(dirname "$0")/tap.sh"

SERVICES="gateway stt chat tts avatar broker"
FAKE_NAMES="fake_google fake_gemini fake_did fake_openai_audio fake_openai_chat"

start() { # start NAME: runs the service in the background, pid in $WORK/NAME.pid
  "$BUILD_DIR/$(path_of "$1")" 2>>"$WORK/$1.log" &
  echo $! > "$WORK/$1.pid"
}
path_of() { case $1 in gateway) echo gateway/gateway ;; *) echo "services/$1/$1" ;; esac; }
pid_of() { cat "$WORK/$1.pid"; }

stop_services() {
  for s in $SERVICES; do
    [ -f "$WORK/$s.pid" ] && kill "$(pid_of $s)" 2>/dev/null && wait "$(pid_of $s)" 2>/dev/null
    rm -f "$WORK/$s.pid"
  done
}

cleanup() {
  stop_services
  for f in $FAKE_NAMES; do
    [ -f "$WORK/$f.pid" ] && kill "$(pid_of $f)" 2>/dev/null
  done
  wait 2>/dev/null
  tap_sanitizer_check "$WORK" "no sanitizer reports in service or fake logs"
  rm -rf "$WORK"
  tap_end
}
trap 'cleanup; exit $?' EXIT
trap 'exit 1' INT TERM

# start_fake NAME [VAR=value...]: starts a fake API; its base URL in $WORK/NAME.url.
start_fake() {
  fake=$1; shift
  : > "$WORK/$fake.out"
  env "$@" "$FAKES/$fake" >"$WORK/$fake.out" 2>>"$WORK/$fake.log" &
  echo $! > "$WORK/$fake.pid"
  i=0
  while [ $i -lt 100 ]; do
    port=$(sed -n 's/^port \([0-9]*\)$/\1/p' "$WORK/$fake.out")
    [ -n "$port" ] && { echo "http://127.0.0.1:$port" > "$WORK/$fake.url"; return 0; }
    sleep 0.05; i=$((i + 1))
  done
  return 1
}
url_of() { cat "$WORK/$1.url"; }
requests() { curl -s "$(url_of "$1")/_fake/requests"; } # requests FAKE: its JSON records

wait_healthy() {
  i=0
  while [ $i -lt 150 ]; do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/healthz")" = 200 ] && return 0
    sleep 0.1; i=$((i + 1))
  done
  return 1
}

poll() { # poll JOB_ID: waits until the job is done or failed; prints its JSON
  i=0
  while [ $i -lt 900 ]; do
    body=$(curl -s "$BASE/api/jobs/$1")
    case $(printf '%s' "$body" | jq -r .state) in done | failed) printf '%s' "$body"; return 0 ;; esac
    sleep 0.1; i=$((i + 1))
  done
  printf '%s' "$body"
  return 1
}

# ask_spoken LABEL: sends the spoken question, checks the answer is a playable video.
ask_spoken() {
  label=$1
  started=$(date +%s%N)
  submit=$(curl -s -X POST "$BASE/api/complete-flow" -H 'Content-Type: audio/webm;codecs=opus' \
    --data-binary @"$WORK/question.webm")
  job=$(printf '%s' "$submit" | jq -r .job_id)
  result=$(poll "$job")
  echo "# $label: spoken question answered in $(( ($(date +%s%N) - started) / 1000000 )) ms"
  state=$(printf '%s' "$result" | jq -r .state)
  check "$label: spoken job ends done ($(printf '%s' "$result" | jq -c '.error // empty'))" test "$state" = done
  check "$label: transcript is the question" \
    test "$(printf '%s' "$result" | jq -r .transcript)" = "what are your office hours"
  reply=$(printf '%s' "$result" | jq -r .reply)
  echo "# $label: reply: $reply"
  case $reply in *"what are your office hours"*) ok "$label: the model was asked the question" ;;
    *) not_ok "$label: the model was asked the question" "reply: $reply" ;; esac
  count=$(printf '%s' "$result" | jq -r '.segment_count // 0')
  check "$label: the model's answer streamed as several segments ($count)" test "$count" -ge 2
  check "$label: the segments, in order, are the reply" test "$(printf '%s' "$result" | jq -r \
    '[.segments | sort_by(.index)[] | .text] | join(" ")')" = "$reply"
  check "$label: chat sent sentences on while the model wrote" \
    grep -q '"event":"reply_streamed"' "$WORK/chat.log"
  curl -s -o "$WORK/answer.mp4" "$BASE$(printf '%s' "$result" | jq -r .video_url)"
  streams=$(ffprobe -v error -show_entries stream=codec_name -of csv=p=0 "$WORK/answer.mp4" | sort | tr '\n' ' ')
  check "$label: the video is served from our origin as H.264 + AAC ($streams)" test "$streams" = "aac h264 "
  video_s=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$WORK/answer.mp4")
  check "$label: the video has a real length ($video_s s)" \
    awk -v v="$video_s" 'BEGIN { exit !(v > 0.5) }'
}

ask_typed() { # ask_typed TEXT: prints the job id
  jq -cn --arg t "$1" '{text: $t}' |
    curl -s -X POST "$BASE/api/ask" -H 'Content-Type: application/json' --data-binary @- | jq -r .job_id
}

# stream_and_cache LABEL FAKE: a stream broken off mid-answer fails the job with a
# clear error; the first question asked again is answered without the model.
stream_and_cache() {
  label=$1 fake=$2
  curl -s -X POST "$(url_of "$fake")/_fake/next" --data-binary cut >/dev/null
  result=$(poll "$(ask_typed "do you ship to canada")")
  error=$(printf '%s' "$result" | jq -r '.error.message // .error // empty')
  check "$label: an answer stream broken off fails the job ($error)" \
    test "$(printf '%s' "$result" | jq -r .state)" = failed
  case $error in *"broke off"*) ok "$label: the error says the answer broke off" ;;
    *) not_ok "$label: the error says the answer broke off" "error: $error" ;; esac
  before=$(requests "$fake" | jq length)
  result=$(poll "$(ask_typed "What are your office hours?")")
  check "$label: the question asked again ends done" test "$(printf '%s' "$result" | jq -r .state)" = done
  check "$label: ... from the reply cache, without the model" test "$(requests "$fake" | jq length)" = "$before"
  check "$label: chat logged the cache hit" grep -q '"event":"reply_cache_hit"' "$WORK/chat.log"
}

# keys_absent LABEL: no key appears in any service log.
keys_absent() {
  found=""
  for key in "$GOOGLE_KEY" "$GEMINI_KEY" "$DID_KEY" "$OPENAI_KEY"; do
    for s in $SERVICES; do
      grep -q -F "$key" "$WORK/$s.log" 2>/dev/null && found="$found $s"
    done
  done
  check "$1: no key in any service log${found:+ (found in$found)}" test -z "$found"
}

# --- the fakes and the question ------------------------------------------------
check "fake Google answers on a port" start_fake fake_google FAKE_GOOGLE_API_KEY="$GOOGLE_KEY" \
  FAKE_GOOGLE_TRANSCRIPT="what are your office hours" ESPEAK_NG="$(command -v espeak-ng)"
check "fake Gemini answers on a port" start_fake fake_gemini FAKE_GEMINI_KEY="$GEMINI_KEY"
check "fake D-ID answers on a port" start_fake fake_did FAKE_DID_API_KEY="$DID_KEY"
check "fake OpenAI-compatible audio server answers on a port" start_fake fake_openai_audio \
  FAKE_OPENAI_API_KEY="$OPENAI_KEY" ESPEAK_NG="$(command -v espeak-ng)"
check "fake OpenAI-compatible chat server answers on a port" start_fake fake_openai_chat \
  FAKE_OPENAI_KEY="$OPENAI_KEY" FAKE_OPENAI_MODEL=llama3.1

espeak-ng -w "$WORK/question.wav" "What are your office hours?"
ffmpeg -loglevel error -y -i "$WORK/question.wav" -c:a libopus -b:a 32k -ar 48000 "$WORK/question.webm"

# --- a backend without its key stops its service at start ---------------------
STT_BACKEND=google GOOGLE_API_KEY= GOOGLE_APPLICATION_CREDENTIALS= \
  "$BUILD_DIR/services/stt/stt" 2>"$WORK/nokey.log"
rc=$?
check "stt with STT_BACKEND=google and no key exits at start (rc=$rc)" test "$rc" -ne 0
check "its message names GOOGLE_API_KEY" grep -q GOOGLE_API_KEY "$WORK/nokey.log"
AVATAR_BACKEND=did DID_API_KEY="$DID_KEY" DID_SOURCE_URL= "$BUILD_DIR/services/avatar/avatar" 2>"$WORK/nokey.log"
check "avatar with AVATAR_BACKEND=did and no DID_SOURCE_URL exits naming it" grep -q DID_SOURCE_URL "$WORK/nokey.log"

# --- 1. Google Speech-to-Text, Gemini, Google Text-to-Speech, D-ID ---------------
(
  export MEDIA_DIR="$WORK/media1"
  export STT_BACKEND=google CHAT_BACKEND=gemini TTS_BACKEND=google AVATAR_BACKEND=did
  export GOOGLE_API_KEY="$GOOGLE_KEY" GEMINI_API_KEY="$GEMINI_KEY" DID_API_KEY="$DID_KEY"
  export GOOGLE_STT_BASE_URL="$(url_of fake_google)" GOOGLE_TTS_BASE_URL="$(url_of fake_google)"
  export GEMINI_BASE_URL="$(url_of fake_gemini)" DID_BASE_URL="$(url_of fake_did)"
  export DID_SOURCE_URL=https://example.invalid/portrait.jpg DID_POLL_MS=100
  start broker
  for s in stt chat tts avatar; do start $s; done
  start gateway
  check "google+gemini+did: system becomes healthy" wait_healthy
  ask_spoken "google+gemini+did"
  stream_and_cache "google+gemini+did" fake_gemini
  stop_services
) | tee "$WORK/run1.tap" | grep -v '^ok\|^not ok'
# The subshell's results count here.
while read -r line; do
  case $line in "ok "*) ok "${line#ok * - }" ;; "not ok "*) not_ok "${line#not ok * - }" ;; esac
done < "$WORK/run1.tap"
keys_absent "google+gemini+did"
google=$(requests fake_google)
check "Google STT got the WebM as WEBM_OPUS 48000 with the key header" test "$(printf '%s' "$google" | jq -r \
  '[.[] | select(.path == "/v1/speech:recognize") | (.body | fromjson | .config | .encoding + " " + (.sampleRateHertz | tostring))] | first')" = "WEBM_OPUS 48000"
check "Google TTS was asked for LINEAR16" test "$(printf '%s' "$google" | jq -r \
  '[.[] | select(.path == "/v1/text:synthesize") | (.body | fromjson | .audioConfig.audioEncoding)] | first')" = LINEAR16
check "every Google call carried x-goog-api-key" test "$(printf '%s' "$google" | jq '[.[] | select(.headers["x-goog-api-key"] == null and .headers["X-Goog-Api-Key"] == null)] | length')" = 0
did=$(requests fake_did)
check "D-ID saw upload, talk, polls and the download" test "$(printf '%s' "$did" | jq -r '[.[].route] | unique | join(" ")')" = "/audios /results/* /talks /talks/*"
check "the D-ID download carried no Authorization" test "$(printf '%s' "$did" | jq '[.[] | select(.route == "/results/*" and .headers.Authorization != null)] | length')" = 0
check "Gemini was asked for a stream" test "$(requests fake_gemini | jq -r \
  '[.[] | select(.path | endswith(":streamGenerateContent")) | .query] | first')" = alt=sse

# --- 2. OpenAI-compatible stt, chat and tts; the local avatar ---------------------
for s in $SERVICES; do mv "$WORK/$s.log" "$WORK/$s.run1.log" 2>/dev/null; done
(
  export MEDIA_DIR="$WORK/media2"
  export STT_BACKEND=openai CHAT_BACKEND=openai TTS_BACKEND=openai AVATAR_BACKEND=local
  export OPENAI_API_KEY="$OPENAI_KEY" OPENAI_CHAT_MODEL=llama3.1
  export OPENAI_STT_BASE_URL="$(url_of fake_openai_audio)" OPENAI_TTS_BASE_URL="$(url_of fake_openai_audio)"
  export OPENAI_CHAT_BASE_URL="$(url_of fake_openai_chat)"
  start broker
  for s in stt chat tts avatar; do start $s; done
  start gateway
  check "openai+local: system becomes healthy" wait_healthy
  ask_spoken "openai+local"
  stream_and_cache "openai+local" fake_openai_chat
  stop_services
) | tee "$WORK/run2.tap" | grep -v '^ok\|^not ok'
while read -r line; do
  case $line in "ok "*) ok "${line#ok * - }" ;; "not ok "*) not_ok "${line#not ok * - }" ;; esac
done < "$WORK/run2.tap"
keys_absent "openai+local"
audio=$(requests fake_openai_audio)
check "the transcription upload was multipart with the WebM file" test "$(printf '%s' "$audio" | jq -r \
  '[.[] | select(.path == "/v1/audio/transcriptions") | (.parts[] | select(.name == "file") | .filename)] | first')" = speech.webm
check "speech was asked for as WAV with the Bearer key" test "$(printf '%s' "$audio" | jq -r --arg k "Bearer $OPENAI_KEY" \
  '[.[] | select(.path == "/v1/audio/speech") | ((.body | fromjson | .response_format) + " " + (.headers.Authorization == $k | tostring))] | first')" = "wav true"
check "the chat server was asked for a stream" test "$(requests fake_openai_chat | jq -r \
  '[.[] | select(.path == "/v1/chat/completions") | (.body | fromjson | .stream)] | first')" = true
