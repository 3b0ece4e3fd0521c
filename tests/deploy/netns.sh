#!/bin/sh
# Multi-host simulation: the broker, the gateway and three worker "hosts" each in
# a network namespace of their own, joined by veth pairs to a bridge that lives
# in one more namespace, talking over real IP (10.77.0.0/24, which exists only
# inside these namespaces: the host's network is not touched). It scales the
# avatar stage from 1 to 3 replicas, one per host, under a short load and prints
# answers per minute for each (figures, not asserted), then kills one host's
# workers while jobs are in flight and checks that every job still ends done.
# Needs root and `ip netns`; otherwise it reports itself skipped. Speaks TAP.
set -u

BUILD_DIR=${BUILD_DIR:?BUILD_DIR must name the build directory}
JOBS=${NETNS_JOBS:-4}   # questions per load round
TAG="ta$$"              # namespace names: unique per run
NET=10.77.0
HOSTS="broker gw w1 w2 w3"
WORK=$(mktemp -d)

skip() { echo "1..0 # SKIP $1"; rm -rf "$WORK"; exit 0; }
[ "$(id -u)" -eq 0 ] || skip "needs root for ip netns"
command -v ip >/dev/null 2>&1 || skip "ip (iproute2) is not installed"
ip netns add "$TAG-probe" 2>/dev/null || skip "ip netns does not work here"
ip netns del "$TAG-probe"

. "$(dirname "$0")/../integration/tap.sh"

# Every process of ours runs inside one of our namespaces, so the namespaces'
# pid lists find them all, whatever happened to the script's own bookkeeping.
cleanup() {
  for host in $HOSTS hub; do
    ip netns pids "$TAG-$host" 2>/dev/null | xargs -r kill 2>/dev/null
  done
  sleep 0.5
  for host in $HOSTS hub; do
    ip netns pids "$TAG-$host" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del "$TAG-$host" 2>/dev/null
  done
  tap_sanitizer_check "$WORK"
  rm -rf "$WORK"
  tap_end
}
trap 'cleanup; exit $?' EXIT
trap 'exit 1' INT TERM HUP PIPE

# --- the network: hub namespace with a bridge, one veth pair per host -------------
address_of() { case $1 in broker) echo "$NET.1" ;; gw) echo "$NET.2" ;; w1) echo "$NET.11" ;; w2) echo "$NET.12" ;; w3) echo "$NET.13" ;; esac; }
build_network() {
  ip netns add "$TAG-hub" && ip -n "$TAG-hub" link add br0 type bridge &&
    ip -n "$TAG-hub" link set br0 up && ip -n "$TAG-hub" link set lo up || return 1
  for host in $HOSTS; do
    ns="$TAG-$host"
    ip netns add "$ns" &&
      ip -n "$ns" link add eth0 type veth peer name "v-$host" netns "$TAG-hub" &&
      ip -n "$TAG-hub" link set "v-$host" master br0 up &&
      ip -n "$ns" addr add "$(address_of "$host")/24" dev eth0 &&
      ip -n "$ns" link set eth0 up && ip -n "$ns" link set lo up || return 1
  done
}
check "five hosts on a bridge (namespaces, veth, $NET.0/24)" build_network

BROKER="tcp://$NET.1:5555"
GATEWAY="http://$NET.2:8080"
export BROKER_ENDPOINT="$BROKER" LOG_LEVEL=info AVATAR_SIZE=${AVATAR_SIZE:-256}
# One client submits every question here: no per-client rate limits.
export GATEWAY_RATE_PER_MIN=0 GATEWAY_POLL_RATE_PER_MIN=0 GATEWAY_MAX_CONNECTIONS_PER_IP=0
on() { host=$1; shift; ip netns exec "$TAG-$host" "$@"; }
start() { # start HOST NAME COMMAND...: runs COMMAND on HOST, pid in $WORK/NAME.pid
  host=$1 name=$2; shift 2
  on "$host" "$@" 2>>"$WORK/$name.log" &
  echo $! > "$WORK/$name.pid"
}

start broker broker env BROKER_BIND="tcp://$NET.1:5555" "$BUILD_DIR/services/broker/broker"
start gw gateway env GATEWAY_BIND="$NET.2" GATEWAY_PORT=8080 MEDIA_DIR="$WORK/media" \
  "$BUILD_DIR/gateway/gateway"
check "the gateway host reaches the broker on its host over IP" \
  on gw env HEALTHCHECK_TIMEOUT_MS=5000 "$BUILD_DIR/services/health/healthcheck" broker "$BROKER"
start w1 chat "$BUILD_DIR/services/chat/chat"
start w1 tts "$BUILD_DIR/services/tts/tts"
start w1 avatar-1 "$BUILD_DIR/services/avatar/avatar"

# workers STAGE: how many replicas of STAGE the broker knows (asked on the gw host).
workers() {
  on gw "$BUILD_DIR/services/health/healthcheck" broker "$BROKER" >/dev/null 2>&1 || { echo 0; return; }
  on gw curl -s "$GATEWAY/healthz" | jq -r ".stages.$1.workers // 0"
}
wait_workers() { # wait_workers STAGE N
  i=0
  while [ $i -lt 100 ]; do
    [ "$(workers "$1")" = "$2" ] && return 0
    sleep 0.1; i=$((i + 1))
  done
  return 1
}
check "broker sees 1 avatar replica from another host" wait_workers avatar 1

ask() { # ask TEXT: prints the job id
  jq -cn --arg t "$1" '{text: $t}' |
    on gw curl -s -X POST "$GATEWAY/api/ask" -H 'Content-Type: application/json' --data-binary @- |
    jq -r .job_id
}
state_of() { on gw curl -s "$GATEWAY/api/jobs/$1" | jq -r .state; }
# wait_all JOB...: waits until every job is done or failed, at most 70 s (the
# gateway fails any job at its 60 s deadline plus 2 s); prints how many ended done.
wait_all() {
  give_up=$(( $(date +%s) + 70 ))
  while :; do
    done_count=0 open=0
    for job in "$@"; do
      case $(state_of "$job") in done) done_count=$((done_count + 1)) ;; failed) ;; *) open=1 ;; esac
    done
    [ $open -eq 0 ] || [ "$(date +%s)" -ge "$give_up" ] && break
    sleep 0.2
  done
  echo "$done_count"
}
now_ms() { date +%s%3N; }
QUESTIONS="What are your office hours?|Where is your store?|What is your phone number?|Do you offer a student discount?|What is your return policy?|Do you repair laptops?"
load() { # load: submits JOBS questions at once, prints their ids
  i=0
  while [ $i -lt "$JOBS" ]; do
    q=$(printf '%s' "$QUESTIONS" | cut -d'|' -f$((i % 6 + 1)))
    ask "$q"
    i=$((i + 1))
  done
}

# --- answers per minute with 1, 2 and 3 avatar replicas ------------------------------
for replicas in 1 2 3; do
  if [ "$replicas" -gt 1 ]; then
    start "w$replicas" "avatar-$replicas" "$BUILD_DIR/services/avatar/avatar"
    check "broker sees $replicas avatar replicas on $replicas hosts" wait_workers avatar "$replicas"
  fi
  started=$(now_ms)
  jobs=$(load)
  # shellcheck disable=SC2086 # the ids are words
  finished=$(wait_all $jobs)
  elapsed=$(( $(now_ms) - started ))
  check "$replicas replica(s): all $JOBS jobs done ($finished)" test "$finished" = "$JOBS"
  rate=$(awk -v j="$JOBS" -v ms="$elapsed" 'BEGIN { printf "%.1f", j * 60000 / ms }')
  echo "# avatar replicas: $replicas  jobs: $JOBS  wall: $elapsed ms  answers per minute: $rate"
done

# --- a host's workers die while jobs are in flight ----------------------------------
jobs=$(load)
sleep 1
victims=$(ip netns pids "$TAG-w2" | wc -l)
ip netns pids "$TAG-w2" | xargs -r kill -9
echo "# killed $victims process(es) on host w2 with jobs in flight"
# shellcheck disable=SC2086
finished=$(wait_all $jobs)
if [ "$finished" = "$JOBS" ]; then
  ok "every job ends done on the remaining hosts ($finished of $JOBS)"
else
  # shellcheck disable=SC2086
  not_ok "every job ends done on the remaining hosts ($finished of $JOBS)" \
    "$(for job in $jobs; do on gw curl -s "$GATEWAY/api/jobs/$job" | jq -c '{state, stage, error}'; done)" \
    "$(grep -h '"peer_removed"\|"job_timeout"\|worker_lost' "$WORK"/broker.log | tail -5)"
fi
check "broker dropped the dead replica (2 avatar replicas left)" wait_workers avatar 2
requeued=$(on gw curl -s "$GATEWAY/metrics" | awk '/jobs_requeued/ && !/^#/ { s += $2 } END { print s + 0 }')
echo "# jobs re-queued by the broker (from /metrics): $requeued"
