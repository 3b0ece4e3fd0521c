#!/bin/sh
# Benchmark: the canonical spoken question ("What are your office hours?", WebM/Opus)
# sent RUNS times (default 20) through the real pipeline on loopback, one at a time.
# Prints medians of each stage's time, upload-to-video-ready, video seconds rendered
# per second of wall time, and each process's peak RSS. Figures, not assertions.
#   bench/pipeline.sh [BUILD_DIR]
set -eu

TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${1:-$TOP/build}
RUNS=${RUNS:-20}
WORK=$(mktemp -d)
PORT=$((10000 + $$ % 20000))
BASE="http://127.0.0.1:$PORT"
export BROKER_BIND="tcp://127.0.0.1:$((PORT + 1))" BROKER_ENDPOINT="tcp://127.0.0.1:$((PORT + 1))"
export GATEWAY_PORT=$PORT GATEWAY_BIND=127.0.0.1 MEDIA_DIR="$WORK/media" LOG_LEVEL=warn
export GATEWAY_RATE_PER_MIN=0 GATEWAY_POLL_RATE_PER_MIN=0 GATEWAY_MAX_CONNECTIONS_PER_IP=0

pids=""
cleanup() { kill $pids 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM
for s in broker stt chat tts avatar gateway; do
  case $s in gateway) bin=gateway/gateway ;; *) bin=services/$s/$s ;; esac
  "$BUILD_DIR/$bin" 2>>"$WORK/$s.log" &
  pids="$pids $!"
  echo "$s $!" >> "$WORK/pids"
done
i=0
until [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/healthz")" = 200 ]; do
  sleep 0.1; i=$((i + 1)); [ $i -lt 100 ] || { echo "system did not start" >&2; exit 1; }
done

espeak-ng -w "$WORK/q.wav" "What are your office hours?"
ffmpeg -loglevel error -y -i "$WORK/q.wav" -c:a libopus -b:a 32k -ar 48000 "$WORK/q.webm"

now_ms() { date +%s%3N; }
run=0
while [ $run -lt "$RUNS" ]; do
  t0=$(now_ms)
  job=$(curl -s -X POST "$BASE/api/complete-flow" -H 'Content-Type: audio/webm' \
    --data-binary @"$WORK/q.webm" | jq -r .job_id)
  while :; do
    body=$(curl -s "$BASE/api/jobs/$job")
    state=$(printf '%s' "$body" | jq -r .state)
    [ "$state" = done ] || [ "$state" = failed ] && break
    sleep 0.01
  done
  t1=$(now_ms)
  video=$(printf '%s' "$body" | jq -r .video_url)
  dur=$(curl -s "$BASE$video" -o "$WORK/v.mp4" && ffprobe -v error -show_entries format=duration -of csv=p=0 "$WORK/v.mp4")
  printf '%s' "$body" | jq -r --arg wall "$((t1 - t0))" --arg dur "$dur" \
    '[.state, .timings_ms.stt, .timings_ms.chat, .timings_ms.tts, .timings_ms.avatar, .timings_ms.total, ($wall|tonumber), ($dur|tonumber)] | @tsv' >> "$WORK/runs.tsv"
  run=$((run + 1))
done

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { cut -f"$1" "$WORK/runs.tsv" | median; }
done_runs=$(grep -c '^done' "$WORK/runs.tsv" || true)
echo "runs: $RUNS, done: $done_runs"
echo "median stt_ms:     $(col 2)"
echo "median chat_ms:    $(col 3)"
echo "median tts_ms:     $(col 4)"
echo "median avatar_ms:  $(col 5)"
echo "median total_ms (gateway accepted -> video stored): $(col 6)"
echo "median client_ms (upload start -> poll sees done, 10 ms polling): $(col 7)"
echo "median video_s:    $(col 8)"
echo "video seconds rendered per wall second (avatar stage): $(awk -F'\t' '{ print $8 / ($5 / 1000) }' "$WORK/runs.tsv" | median)"
while read -r name pid; do
  printf 'peak RSS %-8s %s\n' "$name" "$(awk '/VmHWM/ { print $2 " " $3 }' "/proc/$pid/status" 2>/dev/null)"
done < "$WORK/pids"
