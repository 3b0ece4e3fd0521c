#!/bin/sh
# Integration test of the container probe (services/health/healthcheck) against
# real processes on loopback: the broker's INFO, a worker's broker connection and
# the gateway's /healthz, each seen healthy and then, once its process is gone,
# unhealthy. Speaks TAP.
set -u

BUILD_DIR=${BUILD_DIR:?BUILD_DIR must name the build directory}
WORK=$(mktemp -d)
# Below Linux's ephemeral port range (32768+), so no outgoing connection holds it.
PORT=$((10000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 20000))
BROKER_PORT=$((PORT + 1))
export BROKER_BIND="tcp://127.0.0.1:$BROKER_PORT" BROKER_ENDPOINT="tcp://127.0.0.1:$BROKER_PORT"
export GATEWAY_PORT=$PORT GATEWAY_BIND=127.0.0.1 MEDIA_DIR="$WORK/media" HEALTHCHECK_TIMEOUT_MS=1000
PROBE="$BUILD_DIR/services/health/healthcheck"

. "$(dirname "$0")/tap.sh"
expect() { # expect NAME CODE PROBE-ARGS...: the probe exits with CODE
  name=$1 code=$2; shift 2
  "$PROBE" "$@" 2>>"$WORK/probe.log"
  rc=$?
  if [ "$rc" = "$code" ]; then ok "$name"; else not_ok "$name" "healthcheck $* exited $rc, not $code"; fi
}
start() { "$BUILD_DIR/$2" 2>>"$WORK/$1.log" & echo $! > "$WORK/$1.pid"; }
stop() { kill "$(cat "$WORK/$1.pid")" 2>/dev/null; wait "$(cat "$WORK/$1.pid")" 2>/dev/null; rm -f "$WORK/$1.pid"; }
cleanup() {
  for s in gateway chat broker; do [ -f "$WORK/$s.pid" ] && stop $s; done
  tap_sanitizer_check "$WORK" "no sanitizer reports"
  rm -rf "$WORK"
  tap_end
}
trap 'cleanup; exit $?' EXIT
trap 'exit 1' INT TERM

# until_code CODE PROBE-ARGS...: waits up to 5 s for the probe to exit with CODE.
until_code() {
  code=$1; shift
  i=0
  while [ $i -lt 50 ]; do
    "$PROBE" "$@" 2>/dev/null; [ $? = "$code" ] && return 0
    sleep 0.1; i=$((i + 1))
  done
}

expect "bad usage exits 2" 2 nonsense
expect "connected needs a tcp endpoint" 2 connected ipc:///tmp/x
expect "no broker: broker check fails" 1 broker
expect "no worker: connected check fails" 1 connected

start broker services/broker/broker
until_code 0 broker
expect "broker answers INFO" 0 broker
expect "broker answers INFO at an explicit endpoint" 0 broker "$BROKER_ENDPOINT"
expect "still no worker attached" 1 connected

start chat services/chat/chat
until_code 0 connected
expect "a worker attached to the broker is seen" 0 connected
stop chat
until_code 1 connected
expect "the stopped worker is no longer seen" 1 connected

# The gateway's /healthz is 200 only while every stage has a worker (readiness);
# its page answers whenever the HTTP server runs (liveness).
start gateway gateway/gateway
until_code 0 http "http://127.0.0.1:$PORT/"
expect "gateway page answers 200" 0 http "http://127.0.0.1:$PORT/"
expect "/healthz without workers is unhealthy (503)" 1 http "http://127.0.0.1:$PORT/healthz"
expect "a 404 is unhealthy" 1 http "http://127.0.0.1:$PORT/no-such-page"
stop gateway
expect "no gateway: http check fails" 1 http "http://127.0.0.1:$PORT/"

stop broker
expect "stopped broker: broker check fails" 1 broker
grep -q '"event":"unhealthy"' "$WORK/probe.log" && ok "failures are logged as JSON lines" ||
  not_ok "failures are logged as JSON lines" "$(head -3 "$WORK/probe.log")"
