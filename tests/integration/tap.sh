# tap.sh: the TAP helpers every shell test here shares; sourced, not run.
#   ok NAME | not_ok NAME [DETAIL...] | check NAME COMMAND... : one result line each
#   tap_sanitizer_check DIR [NAME] : one result: no sanitizer report in DIR/*.log
#   tap_end : prints the plan; true when nothing failed
n=0 failures=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failures=$((failures + 1)); echo "not ok $n - $1"; shift; for l in "$@"; do echo "# $l"; done; }
check() { name=$1; shift; if "$@"; then ok "$name"; else not_ok "$name" "command: $*"; fi; }

tap_sanitizer_check() {
  name=${2:-no sanitizer reports in service logs}
  if grep -l -E "ERROR: (Address|Leak)Sanitizer|runtime error:" "$1"/*.log >/dev/null 2>&1; then
    not_ok "$name" "$(grep -h -A12 -E "ERROR: (Address|Leak)Sanitizer|runtime error:" "$1"/*.log | head -40)"
  else
    ok "$name"
  fi
}

tap_end() {
  echo "1..$n"
  [ "$failures" -eq 0 ]
}
