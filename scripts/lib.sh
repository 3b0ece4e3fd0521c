# Shared by scripts/start and scripts/test: install what is missing, build what is stale.
# POSIX sh; sourced, not run.

TOP=$(cd "$(dirname "$0")/.." && pwd)

# npm installs the deployment checks' tools (tests/deploy): Debian's npm, unless
# a Node.js that brings its own npm is installed already.
NPM_PACKAGE=npm
command -v npm >/dev/null 2>&1 && NPM_PACKAGE=""

# Debian packages the build, the services and the tests need.
PACKAGES="build-essential meson ninja-build pkg-config protobuf-c-compiler
 libzmq3-dev libczmq-dev libprotobuf-c-dev libcjson-dev libmicrohttpd-dev
 libcurl4-openssl-dev libhiredis-dev libpocketsphinx-dev pocketsphinx-en-us
 libespeak-ng-dev espeak-ng libavformat-dev libavcodec-dev libavutil-dev
 libswresample-dev libswscale-dev libcairo2-dev libsqlite3-dev libcmocka-dev
 libssl-dev ffmpeg curl jq procps redis-server yamllint iproute2 $NPM_PACKAGE
 clang libclang-rt-14-dev"

# Only scripts/test needs these: the browser tests drive Debian's Chromium; the
# conversation-quality eval adds Flite voices to eSpeak's.
TEST_PACKAGES="chromium flite"

say() { printf '%s\n' "$*" >&2; }

ensure_packages() {
  missing=""
  for p in $PACKAGES "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
      || missing="$missing $p"
  done
  [ -z "$missing" ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    say "missing Debian packages:$missing (run as root to install them)"
    exit 1
  fi
  say "installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || { say "apt-get update failed"; exit 1; }
  # shellcheck disable=SC2086 # word splitting of the list is intended
  apt-get install -y -qq --no-install-recommends $missing >/dev/null \
    || { say "apt-get install failed:$missing"; exit 1; }
}

# ensure_build DIR [meson options...]: configure once, then let ninja rebuild what is stale.
ensure_build() {
  dir=$1; shift
  if [ ! -f "$TOP/$dir/build.ninja" ]; then
    meson setup "$TOP/$dir" "$TOP" "$@" >/dev/null || { say "meson setup $dir failed"; exit 1; }
  fi
  ninja -C "$TOP/$dir" >/dev/null || { ninja -C "$TOP/$dir" | tail -40 >&2; say "build $dir failed"; exit 1; }
}

# ensure_npm DIR: installs DIR's npm packages exactly as its package-lock.json
# says, again whenever the lock file is newer than the installed tree.
ensure_npm() {
  dir=$TOP/$1
  command -v npm >/dev/null || { say "npm is missing (Node.js 20 and npm are needed for $1)"; exit 1; }
  [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ] && return 0
  say "npm ci in $1..."
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || { say "npm ci in $1 failed"; exit 1; }
}
