#!/bin/sh
# Conversation quality against the language-model mix: builds the stt language model
# with several weights of general English (config/general_english.txt) and of the
# generic en-us model's most likely words, interpolates it with the whole generic en-us
# model at several weights (STT_GENERIC_LM_PERCENT, 0: the domain model alone), runs
# tests/eval/conversation_eval on each
# (typed and spoken paraphrases, out-of-domain questions; see that file) and prints
# one line per mix. The figures behind docs/performance.md "Conversation quality".
#
#   bench/conversation_quality.sh [BUILD_DIR]      (default: build)
set -eu
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$TOP/build}
LMGEN=$BUILD/services/stt/lmgen
EVAL=$BUILD/tests/conversation_eval
[ -x "$LMGEN" ] && [ -x "$EVAL" ] || { echo "build first: ninja -C $BUILD" >&2; exit 1; }
MODEL=/usr/share/pocketsphinx/model/en-us
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT INT TERM

export EVAL_DIR="$TOP/tests/eval" KNOWLEDGE_FILE="$TOP/config/knowledge.json" EVAL_THRESHOLDS=0
export ESPEAK_NG=${ESPEAK_NG:-$(command -v espeak-ng)} FFMPEG=${FFMPEG:-$(command -v ffmpeg)}
export FLITE=${FLITE:-$(command -v flite || true)}

# name | general weight | generic words | generic weight | interpolated generic model, %
MIXES=${BENCH_MIXES:-"domain-only|0|0|0|0
mix|0.3|5000|0.05|0
domain-only+en-us-30%|0|0|0|30
mix+en-us-15%|0.3|5000|0.05|15
mix+en-us-30%|0.3|5000|0.05|30
mix+en-us-50%|0.3|5000|0.05|50"}

printf '%-24s %6s %8s %8s %8s %8s %8s %7s\n' mix words WER spoken ood-fb typed ood-typed ms/utt
echo "$MIXES" | while IFS='|' read -r name general words generic percent; do
  "$LMGEN" --general "$TOP/config/general_english.txt" --general-weight "$general" \
    --generic-lm "$MODEL/en-us.lm.bin" --generic-words "$words" --generic-weight "$generic" \
    "$KNOWLEDGE_FILE" "$MODEL/cmudict-en-us.dict" "$WORK/$name.lm" "$WORK/$name.dict" > "$WORK/lmgen.txt"
  STT_LM="$WORK/$name.lm" STT_DICT="$WORK/$name.dict" STT_GENERIC_LM_PERCENT="$percent" "$EVAL" > "$WORK/$name.txt" 2>/dev/null || true
  cp "$WORK/$name.txt" "${BENCH_KEEP_DIR:-$WORK}/" 2>/dev/null || true
  pick() { sed -n "s|^$1.*(\([0-9.]*%\)).*|\1|p" "$WORK/$name.txt" | head -n 1; }
  printf '%-24s %6s %8s %8s %8s %8s %8s %7s\n' "$name" \
    "$(sed -n 's/.*sentences, \([0-9]*\) words.*/\1/p' "$WORK/lmgen.txt")" \
    "$(sed -n 's/^spoken WER.*: \(.*\)$/\1/p' "$WORK/$name.txt")" \
    "$(pick 'spoken paraphrases')" "$(pick 'spoken out-of-domain')" \
    "$(pick 'typed paraphrases: [0-9]*/')" "$(pick 'typed out-of-domain')" \
    "$(sed -n 's/.*recognition \([0-9]*\) ms each.*/\1/p' "$WORK/$name.txt")"
done
