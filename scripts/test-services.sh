#!/usr/bin/env bash
# Starts throwaway backing services on loopback, runs the workspace tests against them, and
# always stops them again.
#
# Usage:
#   scripts/test-services.sh                 # nextest (all features), then the doc tests
#   scripts/test-services.sh cargo test -p openframe-data --features redis --test conformance_redis
#
# Each started service exports the variable its conformance suite reads
# (OPENFRAME_TEST_REDIS_URL, OPENFRAME_TEST_NATS_URL, ...). A variable that is already set is
# respected: that service is not started and the suite runs against the given server instead.
#
# Adding a service: write `start_<name>` (start it with `spawn`, wait with `wait_for`, export its
# variable, call `service_up`) and add <name> to SERVICES.
#
# Exit status: the tests' status (the first failing command's), or non-zero if a service could
# not be started.

set -euo pipefail

# Services started for the run, in order; each has a start_<name> function below.
SERVICES=(redis nats kafka)
# Services this script does not start: "Display name|VARIABLE".
EXTERNAL_SERVICES=("MongoDB|OPENFRAME_TEST_MONGODB_URL")

LOG_PREFIX="[test-services]"
WORK_DIR=""
STARTED_PIDS=()
STARTED_NAMES=()
UP=()
TEST_PID=""

log() { printf '%s %s\n' "$LOG_PREFIX" "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# ---- cleanup ---------------------------------------------------------------------------

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -n "$TEST_PID" ]]; then
    stop_group "$TEST_PID" "the tests"
  fi
  local i
  for ((i = ${#STARTED_PIDS[@]} - 1; i >= 0; i--)); do
    stop_pid "${STARTED_PIDS[$i]}" "${STARTED_NAMES[$i]}"
  done
  if [[ -n "$WORK_DIR" && -d "$WORK_DIR" ]]; then
    rm -rf -- "$WORK_DIR"
  fi
  exit "$status"
}

stop_pid() {
  local pid=$1 name=$2 _
  kill -0 "$pid" 2>/dev/null || return 0
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name did not stop, killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# stop_group PID NAME: like stop_pid, for the process group PID leads (the test command and
# everything it spawned, such as test binaries).
stop_group() {
  local pid=$1 name=$2 _
  kill -0 "$pid" 2>/dev/null || return 0
  log "stopping $name (process group $pid)"
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# The EXIT trap cleans up on every path; INT and TERM just exit (which runs it). The tests run
# in the background under `wait`, so a signal is handled at once rather than when they end.
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- helpers ---------------------------------------------------------------------------

# as_root CMD...: runs CMD as root (through sudo when needed).
as_root() {
  if [[ $EUID -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root (or sudo) to run: $*"
  fi
}

APT_UPDATED=0
# need_command COMMAND PACKAGE: installs PACKAGE with apt-get unless COMMAND exists.
need_command() {
  local cmd=$1 package=$2
  command -v "$cmd" >/dev/null 2>&1 && return 0
  command -v apt-get >/dev/null 2>&1 || die "$cmd is missing and apt-get is unavailable; install $package"
  log "installing $package"
  if [[ $APT_UPDATED -eq 0 ]]; then
    as_root apt-get update -qq
    APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null
  command -v "$cmd" >/dev/null 2>&1 || die "$package installed but $cmd is still missing"
}

# free_port: prints a TCP port nothing listens on at 127.0.0.1.
free_port() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
    return
  fi
  local port
  for _ in $(seq 1 200); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
  die "no free port found"
}

# spawn NAME CMD...: starts CMD in the background and remembers it for cleanup.
spawn() {
  local name=$1
  shift
  "$@" &
  STARTED_PIDS+=("$!")
  STARTED_NAMES+=("$name")
}

# wait_for NAME LOG SECONDS CMD...: waits until CMD succeeds, failing early (with LOG's tail)
# if the last spawned process dies.
wait_for() {
  local name=$1 logfile=$2 seconds=$3 _
  shift 3
  local pid=${STARTED_PIDS[-1]}
  for _ in $(seq 1 $((seconds * 10))); do
    if "$@" >/dev/null 2>&1; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$logfile" >&2 2>/dev/null || true
      die "$name exited during startup"
    fi
    sleep 0.1
  done
  tail -n 20 "$logfile" >&2 2>/dev/null || true
  die "$name did not become ready within ${seconds}s"
}

service_up() { UP+=("$1"); }

# ---- services --------------------------------------------------------------------------

redis_ping() { [[ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" == "PONG" ]]; }

start_redis() {
  if [[ -n "${OPENFRAME_TEST_REDIS_URL:-}" ]]; then
    service_up "redis (external, from OPENFRAME_TEST_REDIS_URL)"
    return
  fi
  need_command redis-server redis-server
  need_command redis-cli redis-tools
  local dir="$WORK_DIR/redis" port
  mkdir -p "$dir"
  port=$(free_port)
  spawn redis redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" \
    --save '' --appendonly no --daemonize no --logfile "$dir/redis.log"
  wait_for redis "$dir/redis.log" 15 redis_ping "$port"
  export OPENFRAME_TEST_REDIS_URL="redis://127.0.0.1:${port}/"
  service_up "redis at $OPENFRAME_TEST_REDIS_URL (pid ${STARTED_PIDS[-1]})"
}

# nats_ping PORT: a NATS server answers on PORT (it greets every connection with INFO).
nats_ping() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1" && IFS= read -r -t 2 line <&3 && [[ $line == INFO* ]]) 2>/dev/null
}

# tcp_listening PORT: something accepts TCP connections on PORT.
tcp_listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_nats: nats-server with JetStream (its store in the work dir) on a free loopback port,
# plus a plain (no TLS) WebSocket listener on another, for WebSocket clients such as the agent.
# Exports OPENFRAME_TEST_NATS_URL (nats://) and OPENFRAME_TEST_NATS_WS_URL (ws://).
start_nats() {
  if [[ -n "${OPENFRAME_TEST_NATS_URL:-}" ]]; then
    service_up "nats (external, from OPENFRAME_TEST_NATS_URL)"
    return
  fi
  # Debian installs nats-server in /usr/sbin, which is not on every user's PATH.
  local PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
  need_command nats-server nats-server
  local dir="$WORK_DIR/nats" port ws_port
  mkdir -p "$dir/jetstream"
  port=$(free_port)
  ws_port=$(free_port)
  while [[ "$ws_port" == "$port" ]]; do ws_port=$(free_port); done
  cat >"$dir/nats.conf" <<CONF
websocket {
  listen: "127.0.0.1:${ws_port}"
  no_tls: true
}
CONF
  spawn nats nats-server -js -a 127.0.0.1 -p "$port" -sd "$dir/jetstream" \
    -c "$dir/nats.conf" -l "$dir/nats.log"
  wait_for nats "$dir/nats.log" 15 nats_ping "$port"
  wait_for nats "$dir/nats.log" 5 tcp_listening "$ws_port"
  export OPENFRAME_TEST_NATS_URL="nats://127.0.0.1:${port}"
  export OPENFRAME_TEST_NATS_WS_URL="ws://127.0.0.1:${ws_port}"
  service_up "nats at $OPENFRAME_TEST_NATS_URL, websocket at $OPENFRAME_TEST_NATS_WS_URL (pid ${STARTED_PIDS[-1]})"
}

# Cargo features tansu needs here: dynostore for the in-memory storage engine (the shared
# broker) and libsql for the SQLite engine (durable; the Kafka fault tests restart a broker on it).
# A plain `cargo install tansu` has no storage engine at all.
TANSU_FEATURES="libsql,dynostore"

# tansu_engine_works BIN ENGINE: BIN starts and listens with storage ENGINE (a tansu built
# without the engine's feature exits at once with "FeatureNotEnabled").
tansu_engine_works() {
  local bin=$1 engine=$2 dir port pid _ ok=1
  dir=$(mktemp -d "$WORK_DIR/tansu-probe.XXXXXX")
  port=$(free_port)
  (cd "$dir" && exec "$bin" broker --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine "$engine") \
    >"$dir/log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    if tcp_listening "$port"; then ok=0; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  return "$ok"
}

# tansu_usable BIN: BIN has both storage engines the tests use.
tansu_usable() { tansu_engine_works "$1" memory://tansu/ && tansu_engine_works "$1" sqlite://probe.db; }

# find_tansu: prints a tansu binary with both storage engines, installing one if needed.
find_tansu() {
  local candidate
  for candidate in "${OPENFRAME_TEST_TANSU_BIN:-}" "$(command -v tansu 2>/dev/null || true)" \
    "${CARGO_HOME:-$HOME/.cargo}/bin/tansu"; do
    if [[ -n "$candidate" && -x "$candidate" ]] && tansu_usable "$candidate"; then
      echo "$candidate"
      return 0
    fi
  done
  command -v cargo >/dev/null 2>&1 || die "tansu is missing and cargo is unavailable to install it"
  log "installing tansu (cargo install tansu --locked --features $TANSU_FEATURES); this takes about 15 minutes, once"
  cargo install tansu --locked --force --features "$TANSU_FEATURES" >"$WORK_DIR/tansu-install.log" 2>&1 ||
    { tail -n 20 "$WORK_DIR/tansu-install.log" >&2; die "cargo install tansu failed"; }
  candidate="${CARGO_HOME:-$HOME/.cargo}/bin/tansu"
  tansu_usable "$candidate" || die "the installed tansu lacks the memory or SQLite storage engine"
  echo "$candidate"
}

# ensure_python_kafka: makes Python's confluent-kafka importable (its wheels bundle librdkafka)
# for the peer-client test and exports OPENFRAME_TEST_PYTHON; only warns if that fails.
ensure_python_kafka() {
  [[ -n "${OPENFRAME_TEST_PYTHON:-}" ]] && return 0
  local python
  python=$(command -v python3 2>/dev/null) || { log "warning: python3 not found; the Kafka peer-client test will be skipped"; return 0; }
  if ! "$python" -c 'import confluent_kafka' >/dev/null 2>&1; then
    log "installing confluent-kafka for $python (pip install --user)"
    "$python" -m pip install --user --quiet confluent-kafka >"$WORK_DIR/pip.log" 2>&1 ||
      "$python" -m pip install --user --quiet --break-system-packages confluent-kafka >>"$WORK_DIR/pip.log" 2>&1 || true
  fi
  if "$python" -c 'import confluent_kafka' >/dev/null 2>&1; then
    export OPENFRAME_TEST_PYTHON="$python"
  else
    log "warning: confluent-kafka is not importable; the Kafka peer-client test will be skipped"
  fi
}

# in_dir DIR LOG CMD...: runs CMD in DIR with its output in LOG (for spawn).
in_dir() {
  local dir=$1 logfile=$2
  shift 2
  cd "$dir" && exec "$@" >"$logfile" 2>&1
}

# start_kafka: a tansu broker (Kafka protocol) on a free loopback port, run from the work dir.
# It uses the in-memory engine: tansu 0.6's SQLite engine panics ("more or less than one row" in
# its idempotent-producer check) under the concurrent conformance suite and then refuses every
# request; the fault tests, which need a restartable broker, use SQLite on their own broker.
# Exports OPENFRAME_TEST_KAFKA_BROKERS (host:port) and OPENFRAME_TEST_TANSU_BIN.
start_kafka() {
  ensure_python_kafka
  if [[ -n "${OPENFRAME_TEST_KAFKA_BROKERS:-}" ]]; then
    service_up "kafka (external, from OPENFRAME_TEST_KAFKA_BROKERS)"
    return
  fi
  local tansu dir="$WORK_DIR/kafka" port
  tansu=$(find_tansu)
  mkdir -p "$dir"
  port=$(free_port)
  spawn kafka in_dir "$dir" "$dir/tansu.log" "$tansu" broker \
    --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://tansu/
  wait_for kafka "$dir/tansu.log" 30 tcp_listening "$port"
  export OPENFRAME_TEST_KAFKA_BROKERS="127.0.0.1:${port}"
  export OPENFRAME_TEST_TANSU_BIN="$tansu"
  service_up "kafka (tansu) at $OPENFRAME_TEST_KAFKA_BROKERS (pid ${STARTED_PIDS[-1]})"
}

# ---- main ------------------------------------------------------------------------------

# run CMD...: runs CMD in its own process group, so a signal can stop all of it.
run() {
  log "running: $*"
  if command -v setsid >/dev/null 2>&1; then
    setsid "$@" &
  else
    "$@" &
  fi
  TEST_PID=$!
  local status=0
  wait "$TEST_PID" || status=$?
  TEST_PID=""
  return "$status"
}

run_tests() {
  local status=0
  if [[ $# -gt 0 ]]; then
    run "$@" || status=$?
    return "$status"
  fi
  local -a main=(cargo nextest run --workspace --all-features --no-fail-fast)
  if ! cargo nextest --version >/dev/null 2>&1; then
    log "cargo-nextest not found, using cargo test"
    main=(cargo test --workspace --all-features --no-fail-fast)
  fi
  local -a doc=(cargo test --workspace --all-features --doc)
  run "${main[@]}" || status=$?
  local doc_status=0
  run "${doc[@]}" || doc_status=$?
  [[ $status -ne 0 ]] || status=$doc_status
  return "$status"
}

main() {
  WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/openframe-test-services.XXXXXX")
  local service
  for service in "${SERVICES[@]}"; do
    declare -F "start_$service" >/dev/null || die "no start_$service function"
    "start_$service"
  done

  local entry
  for entry in "${UP[@]}"; do
    log "up: $entry"
  done
  for entry in "${EXTERNAL_SERVICES[@]}"; do
    local display=${entry%%|*} var=${entry#*|}
    if [[ -n "${!var:-}" ]]; then
      log "up: $display (external, from $var)"
    else
      echo "skipped: $display conformance (set $var)"
    fi
  done

  local status=0
  run_tests "$@" || status=$?
  if [[ $status -eq 0 ]]; then
    log "tests passed"
  else
    log "tests failed (status $status)"
  fi
  return "$status"
}

main "$@"
