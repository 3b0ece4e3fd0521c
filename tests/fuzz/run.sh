#!/bin/sh
# Builds the libFuzzer harnesses (build-fuzz: clang, ASan + UBSan, coverage on
# every project source), replays the committed crash reproducers, then runs
# each harness for FUZZ_SECONDS (default 30) on a scratch copy of its seed
# corpus, so the committed corpus never grows. Prints TAP, one test per harness.
#   FUZZ_SECONDS=600 FUZZ_TARGETS="audio" tests/fuzz/run.sh   # a long run of one
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/lib.sh"
TOP=$(cd "$here/../.." && pwd)

FUZZ_SECONDS=${FUZZ_SECONDS:-30}
FUZZ_TARGETS=${FUZZ_TARGETS:-"http broker messages audio knowledge questions"}

export CC=clang
ensure_build build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
  -Dc_args=-fsanitize=fuzzer-no-link

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$TOP/tests/lsan.supp:print_suppressions=0"
export LOG_LEVEL=${LOG_LEVEL:-error}

# Extra libFuzzer flags per harness. The broker and HTTP harnesses free memory in
# other threads after an input ends, so libFuzzer's per-input leak check would
# run on every input; LeakSanitizer still checks the whole run at exit.
flags() {
  case $1 in
  broker) echo "-detect_leaks=0 -dict=$here/broker.dict" ;;
  http) echo "-detect_leaks=0 -dict=$here/http.dict" ;;
  audio) echo "-rss_limit_mb=2560" ;;
  *) echo "" ;;
  esac
}

# stat NAME LOG: a figure from libFuzzer's -print_final_stats.
stat() { sed -n "s/^stat::$1: *//p" "$2" | tail -n 1; }

count=0
for target in $FUZZ_TARGETS; do count=$((count + 1)); done
echo "1..$count"
n=0 failed=0
for target in $FUZZ_TARGETS; do
  n=$((n + 1))
  binary="$TOP/build-fuzz/tests/fuzz/fuzz_$target"
  work="$TOP/build-fuzz/fuzz-runs/$target"
  rm -rf "$work"
  mkdir -p "$work/corpus" "$work/artifacts"
  cp "$here/corpus/$target/"* "$work/corpus/"
  log="$work/fuzz.log"
  # shellcheck disable=SC2046 # word splitting of the flags is intended
  set -- $(flags "$target")
  ok=true
  reproducers=$(find "$here/crashes" -name "$target-*" -type f 2>/dev/null | sort)
  if [ -n "$reproducers" ]; then
    # shellcheck disable=SC2086 # one argument per file
    "$binary" "$@" $reproducers > "$work/reproducers.log" 2>&1 || ok=false
  fi
  if $ok; then
    "$binary" "$@" -max_total_time="$FUZZ_SECONDS" -timeout=25 -print_final_stats=1 \
      -artifact_prefix="$work/artifacts/" "$work/corpus" > "$log" 2>&1 || ok=false
  else
    log="$work/reproducers.log"
  fi
  runs=$(stat number_of_executed_units "$log")
  speed=$(stat average_exec_per_sec "$log")
  new=$(stat new_units_added "$log")
  if $ok; then
    echo "ok $n - fuzz_$target: ${runs:-0} runs in ${FUZZ_SECONDS} s (${speed:-0}/s), ${new:-0} new inputs, no crash"
  else
    failed=$((failed + 1))
    echo "not ok $n - fuzz_$target: see $log; inputs in $work/artifacts/"
    grep -E "ERROR|SUMMARY|fuzz_$target:|^ +#[0-9]+ .* in " "$log" | head -n 30 | sed 's/^/# /'
  fi
done
[ "$failed" -eq 0 ]
