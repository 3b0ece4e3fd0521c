#!/bin/sh
# The browser suite for meson: runs tests/browser/*.test.mjs with Node's test
# runner against a system it starts from BUILD_DIR. Needs Debian's chromium and
# the npm packages installed by scripts/test (ensure_npm).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || { echo "chromium is missing (scripts/test installs it)"; exit 1; }
[ -d "$HERE/node_modules/playwright-core" ] || { echo "playwright-core is missing: run npm ci in $HERE"; exit 1; }
cd "$HERE" && exec node --test --test-concurrency=1 --test-reporter=spec
