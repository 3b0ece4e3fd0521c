#!/bin/sh
# Latency benchmark (issue 10): how soon the avatar starts answering and how soon
# the whole answer exists, through the real pipeline on loopback.
#
#   1. typed and spoken questions whose answers have one and four sentences, RUNS
#      runs each (default 20), one at a time, answer cache off: gateway-accepted
#      (= upload complete) -> first segment playable, and -> whole answer done;
#      medians and p90, with each stage's share;
#   2. the same reply again with the answer cache on: accepted -> done;
#   3. how latency grows with the answer's length (2, 6 and 8 sentences);
#   4. throughput at saturation (answers per minute), BURST questions at once,
#      with one and with two replicas of the avatar stage.
# Parts 1-3 run AVATAR_REPLICAS avatar replicas (default 1; scripts/start runs 2).
# The answers come from a knowledge file of the bench's own (the questions are
# the real knowledge base's, so stt hears them as usual). Figures, not assertions.
#   bench/latency.sh [BUILD_DIR]          RUNS=20 BURST=12 AVATAR_REPLICAS=1
set -eu

TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${1:-$TOP/build}
RUNS=${RUNS:-20}
BURST=${BURST:-12}
AVATAR_REPLICAS=${AVATAR_REPLICAS:-1}
WORK=$(mktemp -d)
PORT=$((10000 + $$ % 20000))
BASE="http://127.0.0.1:$PORT"
export BROKER_BIND="tcp://127.0.0.1:$((PORT + 1))" BROKER_ENDPOINT="tcp://127.0.0.1:$((PORT + 1))"
export GATEWAY_PORT=$PORT GATEWAY_BIND=127.0.0.1 MEDIA_DIR="$WORK/media" LOG_LEVEL=warn
export GATEWAY_RATE_PER_MIN=0 GATEWAY_POLL_RATE_PER_MIN=0 GATEWAY_MAX_CONNECTIONS_PER_IP=0
export CONVERSATION_DB=none

stop_system() {
  [ -s "$WORK/pids" ] && kill $(cut -d' ' -f2 "$WORK/pids") 2>/dev/null
  wait 2>/dev/null || true
  : > "$WORK/pids"
}
trap 'stop_system; rm -rf "$WORK"' EXIT INT TERM

# The bench's answers: one, two, four, six and eight sentences.
cat > "$WORK/knowledge.json" <<'EOF'
{
  "name": "Bench Store", "assistant": "Ava",
  "fallback": "I'm sorry, I can't help with that.",
  "entries": [
    {"id": "parking", "questions": ["is there parking"],
     "answer": "We have free customer parking right behind the store."},
    {"id": "location", "questions": ["where are you located"],
     "answer": "We are at 12 Harbour Street in the town centre. The entrance is next to the post office."},
    {"id": "hours", "questions": ["what are your office hours"],
     "answer": "We are open Monday to Friday from nine to six. On Saturdays we open from ten until two. We are closed on Sundays and public holidays. In December we stay open until eight."},
    {"id": "returns", "questions": ["how do i return an item"],
     "answer": "You can return any item within thirty days. Bring it to the store or send it by post. Please keep the receipt with the parcel. We check every item when it arrives. The refund reaches your account within five days. Gift cards cannot be returned."},
    {"id": "shipping", "questions": ["how long does shipping take"],
     "answer": "Standard shipping takes three to five working days. Express shipping arrives the next working day. Orders placed before noon leave the same day. We ship with two national carriers. You get a tracking link by email. Parcels can go to a pick-up point. Large items come by appointment. Shipping is free above fifty euros."}
  ]
}
EOF

# start_system AVATAR_REPLICAS ANSWER_CACHE_MAX
start_system() {
  for s in broker stt chat tts gateway; do
    case $s in gateway) bin=gateway/gateway ;; *) bin=services/$s/$s ;; esac
    KNOWLEDGE_FILE="$WORK/knowledge.json" ANSWER_CACHE_MAX=$2 "$BUILD_DIR/$bin" 2>>"$WORK/$s.log" &
    echo "$s $!" >> "$WORK/pids"
  done
  n=0
  while [ $n -lt "$1" ]; do
    "$BUILD_DIR/services/avatar/avatar" 2>>"$WORK/avatar.log" &
    echo "avatar $!" >> "$WORK/pids"
    n=$((n + 1))
  done
  i=0
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/healthz")" = 200 ]; do
    sleep 0.1; i=$((i + 1)); [ $i -lt 150 ] || { echo "system did not start" >&2; exit 1; }
  done
  # The greeting renders once at start: let it pass before measuring.
  i=0
  until [ "$(curl -s "$BASE/api/greeting" | jq -r .state)" = done ] || [ $i -ge 100 ]; do
    sleep 0.1; i=$((i + 1))
  done
}

speak() { # speak NAME TEXT: a WebM/Opus recording of TEXT, as a browser sends it
  espeak-ng -w "$WORK/$1.wav" "$2"
  ffmpeg -loglevel error -y -i "$WORK/$1.wav" -c:a libopus -b:a 32k -ar 48000 "$WORK/$1.webm"
}

submit() { # submit typed|spoken QUESTION_NAME QUESTION_TEXT: prints the job id
  if [ "$1" = typed ]; then
    jq -n --arg text "$3" '{text: $text}' |
      curl -s -X POST "$BASE/api/ask" -H 'Content-Type: application/json' --data-binary @- |
      jq -r .job_id
  else
    curl -s -X POST "$BASE/api/complete-flow" -H 'Content-Type: audio/webm;codecs=opus' \
      --data-binary @"$WORK/$2.webm" | jq -r .job_id
  fi
}

wait_final() { # wait_final JOB: prints the final job JSON
  while :; do
    body=$(curl -s "$BASE/api/jobs/$1")
    case $(printf '%s' "$body" | jq -r .state) in done | failed) printf '%s' "$body"; return ;; esac
    sleep 0.02
  done
}

# measure LABEL typed|spoken NAME TEXT RUNS: one line of figures per run in LABEL.tsv
measure() {
  run=0
  while [ $run -lt "$5" ]; do
    job=$(submit "$2" "$3" "$4")
    wait_final "$job" | jq -r '[.state, (.timings_ms.first_segment // .timings_ms.total),
      .timings_ms.total, (.timings_ms.stt // 0), (.timings_ms.chat // 0),
      (.segment_count // 1),
      ((.segments // []) | map(select(.index == 0))[0].timings_ms.tts // 0),
      ((.segments // []) | map(select(.index == 0))[0].timings_ms.avatar // 0)] | @tsv' >> "$WORK/$1.tsv"
    run=$((run + 1))
  done
}

quantile() { # quantile Q: the Q-quantile (0..1) of the numbers on stdin, nearest rank
  sort -n | awk -v q="$1" '{ v[NR] = $1 } END { if (!NR) { print "-"; exit } r = int(q * NR + 0.999999); if (r < 1) r = 1; print v[r] }'
}

report() { # report LABEL
  f="$WORK/$1.tsv"
  ok=$(grep -c '^done' "$f" || true)
  first50=$(cut -f2 "$f" | quantile 0.5); first90=$(cut -f2 "$f" | quantile 0.9)
  full50=$(cut -f3 "$f" | quantile 0.5); full90=$(cut -f3 "$f" | quantile 0.9)
  stt=$(cut -f4 "$f" | quantile 0.5); chat=$(cut -f5 "$f" | quantile 0.5)
  segments=$(cut -f6 "$f" | quantile 0.5)
  tts=$(cut -f7 "$f" | quantile 0.5); avatar=$(cut -f8 "$f" | quantile 0.5)
  printf '%-16s %4s/%-3s %4s %8s %8s %8s %8s %6s %6s %6s %6s %6s\n' "$1" "$ok" "$(wc -l < "$f")" \
    "$segments" "$first50" "$first90" "$full50" "$full90" "$stt" "$chat" "$tts" "$avatar" \
    "$(awk -v f="$first50" -v s="$stt" -v c="$chat" -v t="$tts" -v a="$avatar" \
         'BEGIN { r = f - s - c - t - a; print r < 0 ? 0 : r }')"
}

# Shares of the first segment (medians): stt, chat, then tts and avatar of the
# first sentence alone; "rest" is queueing, hops between processes and storing.
header() {
  printf '%-16s %8s %4s %8s %8s %8s %8s %6s %6s %6s %6s %6s\n' case done segs first50 first90 \
    full50 full90 stt chat tts1 avatar1 rest
}

speak parking "Is there parking?"
speak hours "What are your office hours?"

echo "== 1. first segment and whole answer (ms from upload complete), answer cache off =="
start_system "$AVATAR_REPLICAS" 0
measure typed-1 typed parking "Is there parking?" "$RUNS"
measure typed-4 typed hours "What are your office hours?" "$RUNS"
measure spoken-1 spoken parking "" "$RUNS"
measure spoken-4 spoken hours "" "$RUNS"
header
for label in typed-1 typed-4 spoken-1 spoken-4; do report "$label"; done

echo "== 3. latency against answer length (typed, cache off, 5 runs each) =="
measure len-2 typed location "Where are you located?" 5
measure len-6 typed returns "How do I return an item?" 5
measure len-8 typed shipping "How long does shipping take?" 5
header
for label in typed-1 len-2 typed-4 len-6 len-8; do report "$label"; done
stop_system

echo "== 2. cache hits (the same reply again, typed and spoken) =="
start_system "$AVATAR_REPLICAS" 512
wait_final "$(submit typed hours "What are your office hours?")" > /dev/null
measure cached-typed typed hours "What are your office hours?" "$RUNS"
measure cached-spoken spoken hours "" "$RUNS"
header
report cached-typed
report cached-spoken
hits=$(curl -s "$BASE/metrics" | awk '/^gateway_answer_cache_total\{result="hit"\}/ { print $2 }')
echo "cache hits counted by /metrics: $hits"
stop_system

echo "== 4. throughput at saturation: $BURST four-sentence questions at once, cache off =="
for replicas in 1 2; do
  start_system "$replicas" 0
  start=$(date +%s%3N)
  : > "$WORK/burst"
  n=0
  while [ $n -lt "$BURST" ]; do
    submit typed hours "What are your office hours?" >> "$WORK/burst"
    n=$((n + 1))
  done
  done_count=0
  while read -r job; do
    [ "$(wait_final "$job" | jq -r .state)" = done ] && done_count=$((done_count + 1))
  done < "$WORK/burst"
  elapsed=$(( $(date +%s%3N) - start ))
  printf 'avatar replicas %s: %s/%s done in %s ms = %s answers per minute\n' "$replicas" \
    "$done_count" "$BURST" "$elapsed" "$(awk -v n="$done_count" -v ms="$elapsed" 'BEGIN { printf "%.1f", n * 60000 / ms }')"
  stop_system
done
