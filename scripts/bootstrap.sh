#!/usr/bin/env bash
# Installs what IQTS needs on a fresh machine and starts the servers its tests use.
#   scripts/bootstrap.sh env      uv (from PyPI) if missing, then the locked virtualenv
#   scripts/bootstrap.sh redis    Debian's redis-server if missing, started on loopback under the state dir
#   scripts/bootstrap.sh browser  Debian's chromium (for the browser tests)
#   scripts/bootstrap.sh model    the offline chat model (1.1 GB, once, cached in the state dir; test-all only)
#   scripts/bootstrap.sh kernels  the backtest kernels compiled into numba's cache in the state dir (~70 s once)
# Idempotent: a second run does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

STATE_DIR="${IQTS_STATE_DIR:-$PWD/.iqts}"
REDIS_PORT="${IQTS_TEST_REDIS_PORT:-6390}"
UV_VERSION="0.13.8"
mkdir -p "$STATE_DIR"

say() { echo "bootstrap: $*" >&2; }

uv_cmd() {
  if command -v uv >/dev/null 2>&1; then echo uv; return; fi
  if python3 -m uv --version >/dev/null 2>&1; then echo "python3 -m uv"; return; fi
  say "installing uv $UV_VERSION from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION" >&2
  echo "python3 -m uv"
}

apt_install() {
  if [ "$(id -u)" -ne 0 ]; then say "need root to apt-get install $*; install them and retry"; exit 1; fi
  if [ ! -f "$STATE_DIR/.apt-updated" ]; then
    apt-get update -qq >>"$STATE_DIR/apt.log" 2>&1 && touch "$STATE_DIR/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >>"$STATE_DIR/apt.log" 2>&1 \
    || { say "apt-get install $* failed (see $STATE_DIR/apt.log)"; exit 1; }
}

do_env() {
  local uv; uv=$(uv_cmd)
  # all extras: they co-install by construction of the lock; --frozen: never re-resolve on a user's machine.
  # --compile-bytecode: where PYTHONDONTWRITEBYTECODE is set (as on our CI image), every process would otherwise
  # compile its ~1,800 imported modules from source: `iqts backtest` took 55 s instead of 6.5 s. Compiling the
  # venv once costs ~2 min on 2 cores; later runs skip what is up to date (~3 s).
  $uv sync --frozen --all-extras --compile-bytecode --quiet
}

do_redis() {
  if ! command -v redis-server >/dev/null 2>&1; then
    say "installing Debian's redis-server"
    apt_install redis-server
  fi
  if redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then return; fi
  mkdir -p "$STATE_DIR/redis"
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$STATE_DIR/redis" --daemonize yes \
    --pidfile "$STATE_DIR/redis/redis.pid" --logfile "$STATE_DIR/redis/redis.log" \
    --save "" --appendonly no --protected-mode yes >/dev/null
  for _ in $(seq 1 50); do
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && return
    sleep 0.1
  done
  say "redis-server did not answer on 127.0.0.1:$REDIS_PORT (see $STATE_DIR/redis/redis.log)"; exit 1
}

do_browser() {
  if [ ! -x /usr/bin/chromium ]; then
    say "installing Debian's chromium"
    apt_install chromium
  fi
}

do_kernels() {
  # numba's on-disk cache of the backtest kernels, in the state dir: ~70 s once on 2 cores, ~4 s when warm
  local uv; uv=$(uv_cmd)
  $uv run --frozen --all-extras python -m engine.backtest.warm
}

do_model() {
  local uv; uv=$(uv_cmd)
  $uv run --frozen --all-extras python -m agent.models.fetch --all
}

for step in "$@"; do
  case "$step" in
    env) do_env ;;
    redis) do_redis ;;
    browser) do_browser ;;
    model) do_model ;;
    kernels) do_kernels ;;
    *) say "unknown step: $step"; exit 2 ;;
  esac
done
