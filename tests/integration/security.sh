#!/bin/sh
# Security of the whole system on loopback with the real processes: the gateway
# started with an API token, a CORS allow-list and tight rate limits in front of
# the broker and the four workers. Checks 401/403/429, the login form, the
# security headers, a typed question answered end to end with the token, and
# that no service's log ever contains the token or the cookie derived from it.
# Speaks TAP. Needs: curl, jq.
set -u

BUILD_DIR=${BUILD_DIR:?BUILD_DIR must name the build directory}
WORK=$(mktemp -d)
# Below Linux's ephemeral port range (32768+), so no outgoing connection holds it.
PORT=$((10000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 20000))
BROKER_PORT=$((PORT + 1))
BASE="http://127.0.0.1:$PORT"
ORIGIN="https://kiosk.example.com"
TOKEN="itest-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
export BROKER_BIND="tcp://127.0.0.1:$BROKER_PORT" BROKER_ENDPOINT="tcp://127.0.0.1:$BROKER_PORT"
export GATEWAY_PORT=$PORT GATEWAY_BIND=127.0.0.1 MEDIA_DIR="$WORK/media" LOG_LEVEL=debug
export CONVERSATION_DB="$WORK/conversations.db"
export GATEWAY_API_TOKEN="$TOKEN" GATEWAY_CORS_ORIGINS="$ORIGIN, http://localhost:3000"
export GATEWAY_RATE_PER_MIN=6 GATEWAY_RATE_BURST=4

. "$(dirname "$0")/tap.sh"

start() { # start NAME: runs the service in the background, pid in $WORK/NAME.pid
  "$BUILD_DIR/$(path_of "$1")" 2>>"$WORK/$1.log" &
  echo $! > "$WORK/$1.pid"
}
path_of() { case $1 in gateway) echo gateway/gateway ;; *) echo "services/$1/$1" ;; esac; }

cleanup() {
  for s in gateway stt chat tts avatar broker; do
    [ -f "$WORK/$s.pid" ] && kill "$(cat "$WORK/$s.pid")" 2>/dev/null
  done
  wait 2>/dev/null
  tap_sanitizer_check "$WORK"
  rm -rf "$WORK"
  tap_end
}
trap 'cleanup; exit $?' EXIT
trap 'exit 1' INT TERM

# status_of CURL-ARGS...: prints only the HTTP status; body in $WORK/body, headers in $WORK/headers.
status_of() { curl -s -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' "$@"; }
has_header() { grep -qi "^$1:" "$WORK/headers"; }
header_value() { grep -i "^$1:" "$WORK/headers" | head -n 1 | cut -d: -f2- | tr -d '\r' | sed 's/^ *//'; }
error_code() { jq -r .error.code "$WORK/body" 2>/dev/null; }
auth="Authorization: Bearer $TOKEN"

wait_healthy() {
  i=0
  while [ $i -lt 150 ]; do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/healthz")" = 200 ] && return 0
    sleep 0.1; i=$((i + 1))
  done
  return 1
}

poll() { # poll JOB_ID: waits until the job is done or failed; prints its JSON.
  i=0
  while [ $i -lt 300 ]; do
    body=$(curl -s -H "$auth" "$BASE/api/jobs/$1")
    case $(printf '%s' "$body" | jq -r .state) in done | failed) printf '%s' "$body"; return 0 ;; esac
    sleep 0.2; i=$((i + 1))
  done
  printf '%s' "$body"
  return 1
}

start broker
for s in stt chat tts avatar; do start $s; done
start gateway
check "system becomes healthy (probes need no token)" wait_healthy

# --- API token ---------------------------------------------------------------------
check "no token: 401" test "$(status_of "$BASE/api/jobs/0123456789abcdef")" = 401
check "401 is the unauthorized JSON error" test "$(error_code)" = unauthorized
check "401 names the Bearer scheme" grep -qi '^WWW-Authenticate: Bearer' "$WORK/headers"
check "wrong token: 401" test "$(status_of -H 'Authorization: Bearer not-the-token' "$BASE/api/jobs/0123456789abcdef")" = 401
check "right token: the API answers (404 for an unknown job)" \
  test "$(status_of -H "$auth" "$BASE/api/jobs/0123456789abcdef")" = 404
code=$(status_of -X POST "$BASE/api/ask" -H "$auth" -H 'Content-Type: application/json' \
  --data-binary '{"text": "What are your office hours?"}')
check "typed question with the token: 202" test "$code" = 202
job=$(jq -r .job_id "$WORK/body")
result=$(poll "$job")
check "it is answered end to end ($(printf '%s' "$result" | jq -c '.error'))" \
  test "$(printf '%s' "$result" | jq -r .state)" = done
video=$(printf '%s' "$result" | jq -r .video_url)
check "its video is served without the token (unguessable name)" test "$(status_of "$BASE$video")" = 200

# --- the web page: login form and cookie ----------------------------------------------
check "the page sends a browser without the cookie to the login form" test "$(status_of "$BASE/")" = 303
check "... at /login" test "$(header_value Location)" = /login
check "the login form is served" test "$(status_of "$BASE/login")" = 200
status_of -X POST "$BASE/login" --data-urlencode 'token=wrong' >/dev/null
check "a wrong token gets no cookie, only the form again" test "$(header_value Location)" = "/login?failed=1"
check "... and no Set-Cookie" sh -c "! grep -qi '^Set-Cookie:' '$WORK/headers'"
check "the right token signs in (303 to /)" \
  test "$(status_of -X POST "$BASE/login" -c "$WORK/cookies" --data-urlencode "token=$TOKEN")" = 303
cookie=$(awk '$6 == "avatar_session" { print $7 }' "$WORK/cookies")
check "the cookie is HttpOnly and SameSite=Strict" grep -qi '^Set-Cookie:.*HttpOnly.*SameSite=Strict' "$WORK/headers"
check "the cookie is not the token" test -n "$cookie" -a "$cookie" != "$TOKEN"
check "with the cookie the page loads" test "$(status_of -b "$WORK/cookies" "$BASE/")" = 200
check "with the cookie the API answers" test "$(status_of -b "$WORK/cookies" "$BASE/api/jobs/$job")" = 200

# --- security headers ------------------------------------------------------------------
status_of -b "$WORK/cookies" "$BASE/" >/dev/null
for h in Content-Security-Policy X-Content-Type-Options Referrer-Policy X-Frame-Options \
  Permissions-Policy Cross-Origin-Opener-Policy; do
  check "the page has $h" has_header "$h"
done
check "the microphone is allowed for the page itself" grep -qi '^Permissions-Policy:.*microphone=(self)' "$WORK/headers"
check "no Server header" sh -c "! grep -qi '^Server:' '$WORK/headers'"
status_of "$BASE/api/jobs/x" >/dev/null
check "API errors carry the headers too" has_header Content-Security-Policy

# --- CORS ------------------------------------------------------------------------------
code=$(status_of -X OPTIONS "$BASE/api/ask" -H "Origin: $ORIGIN" \
  -H 'Access-Control-Request-Method: POST' -H 'Access-Control-Request-Headers: authorization, content-type')
check "preflight from an allowed origin: 204" test "$code" = 204
check "... granting that origin" test "$(header_value Access-Control-Allow-Origin)" = "$ORIGIN"
check "... and the Authorization header" grep -qi '^Access-Control-Allow-Headers:.*Authorization' "$WORK/headers"
check "preflight from another origin: 403" \
  test "$(status_of -X OPTIONS "$BASE/api/ask" -H 'Origin: https://evil.example' -H 'Access-Control-Request-Method: POST')" = 403
check "403 is the forbidden_origin JSON error" test "$(error_code)" = forbidden_origin
check "a request from another origin: 403, even with the token" \
  test "$(status_of -H "$auth" -H 'Origin: https://evil.example' "$BASE/api/jobs/$job")" = 403
check "a request from the allowed origin with the token: 200" \
  test "$(status_of -H "$auth" -H "Origin: $ORIGIN" "$BASE/api/jobs/$job")" = 200

# --- rate limit: a burst of 4 submissions (3 spent above: one question, two logins) ------
codes=""
for i in 1 2 3 4; do
  codes="$codes $(status_of -X POST "$BASE/api/ask" -H "$auth" -H 'Content-Type: application/json' \
    --data-binary '{"text": "hello"}')"
done
case $codes in *429*) ok "submissions past the burst get 429 ($codes)" ;; *) not_ok "submissions past the burst get 429" "codes:$codes" ;; esac
check "429 is the rate_limited JSON error" test "$(error_code)" = rate_limited
retry=$(header_value Retry-After)
check "429 says when to retry (Retry-After: $retry)" test "${retry:-0}" -ge 1
check "polling still works while submissions are limited" \
  test "$(status_of -H "$auth" "$BASE/api/jobs/$job")" = 200

# --- secrets never reach a log --------------------------------------------------------------
kill "$(cat "$WORK/gateway.pid")" 2>/dev/null
sleep 0.5
check "the gateway logged requests" grep -q '"event":"http_request"' "$WORK/gateway.log"
if grep -l -F -e "$TOKEN" -e "$cookie" "$WORK"/*.log >/dev/null 2>&1; then
  not_ok "no log contains the token or the login cookie" "$(grep -l -F -e "$TOKEN" -e "$cookie" "$WORK"/*.log)"
else
  ok "no log contains the token or the login cookie ($(cat "$WORK"/*.log | wc -l) lines in $(ls "$WORK"/*.log | wc -l) logs)"
fi
