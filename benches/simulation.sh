#!/usr/bin/env bash
# benches/simulation.sh — does the CTA simulation sustain its event rate at a clock
# speed-up (default ×60) without the producer's queue growing? Measured against a ×1
# baseline in the same run, on the same broker.
#
#   benches/simulation.sh [BASELINE_SECS [FAST_SECS [SPEEDUP]]]     (defaults: 60 60 60)
#
# Builds the release binary once, then runs the worker twice (×1, then ×SPEEDUP), each
# with a fresh app id (so fresh consumer groups), its own topics (clock, arrivals,
# turnstiles, weather, schemas — all named `<app-id>.…`), free ports, its own state
# directory, and the clock's start pinned so both runs begin at the same simulated hour.
# The settings of a run are settings.toml rewritten by benches/simulation.py. During a run
# /health is sampled about every second (±0.45 s, so as not to phase-lock with the 1 s
# commit cycle): clock ticks (cta_clock events_out), events produced (events_out of
# cta_trains + cta_turnstiles), the producer's in_flight. After the sampling window the
# consumer lag of the producer agents on the clock topic is read (live, then again after a
# graceful stop), the clock's ticks are read back from its topic (exact rate, skipped
# timer firings) and the records on the broker are counted.
# A summary table is printed at the end. Exit 0 on a completed measurement; non-zero
# with a message if a worker fails to become healthy, dies, or does not stop cleanly.
#
# Environment:
#   BENCH_BROKER          Kafka bootstrap (default 127.0.0.1:9092; the local stack is
#                         started, and stopped afterwards, if nothing listens there)
#   BENCH_SIM_START       simulated start of both runs (default 2026-11-23T00:00:00Z, a Monday)
#   BENCH_GUARANTEE       at_least_once or exactly_once (default: app.processing_guarantee
#                         of settings.toml)
#   BENCH_HEALTH_TIMEOUT  seconds a worker may take to become healthy (default 90)
#   BENCH_KEEP=1          keep the temporary directory (settings, logs, samples), the
#                         topics and the consumer groups of the runs
#   BENCH_NO_BUILD=1      use the existing release binary
#   CARGO_TARGET_DIR      default ~/.cache/cta-stream/target (as scripts/run)
# CTA_STREAM_* variables and RUST_LOG are not passed to the workers (the generated settings
# file is the whole configuration).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"

say() { printf 'simulation bench: %s\n' "$*" >&2; }
die() { printf 'simulation bench: error: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
case ${1:-} in -h | --help) usage; exit 0 ;; esac

BASE_SECS=${1:-60}
FAST_SECS=${2:-60}
SPEEDUP=${3:-60}
for v in "$BASE_SECS" "$FAST_SECS"; do
  if ! [[ $v =~ ^[0-9]+$ ]] || ((v < 10)); then
    die "durations are whole seconds, at least 10 (got '$v')"
  fi
done
[[ $SPEEDUP =~ ^[0-9]+([.][0-9]+)?$ ]] || die "the speed-up is a number (got '$SPEEDUP')"

BROKER=${BENCH_BROKER:-127.0.0.1:9092}
SIM_START=${BENCH_SIM_START:-2026-11-23T00:00:00Z}
HEALTH_TIMEOUT=${BENCH_HEALTH_TIMEOUT:-90}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/cta-stream/target}
BIN=$CARGO_TARGET_DIR/release/cta-stream
PY=(python3 "$ROOT/benches/simulation.py")
python3 -c 'import sys, tomllib; sys.exit(sys.version_info < (3, 11))' 2>/dev/null ||
  die "needs python3 3.11 or newer (tomllib)"

PREFIX=simbench-$(date +%Y%m%d%H%M%S)-$$
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cta-simbench.XXXXXX")
WORKER_PID=
SAMPLER_PID=
STARTED_STACK=0
CREATED=0 # topics or groups of ours may exist on the broker
T_START=$SECONDS

# ------------------------------------------------------------------------------ cleanup

# stop_worker PID: SIGTERM, wait up to 45 s (shutdown_timeout is 30 s), then SIGKILL.
# Sets STOP_RC and STOP_SECS.
stop_worker() {
  local pid=$1 t0=$SECONDS i
  STOP_RC=0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 450; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "worker $pid still running 45 s after SIGTERM: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || STOP_RC=$?
  STOP_SECS=$((SECONDS - t0))
}


cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $SAMPLER_PID ]]; then
    kill -TERM "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
  fi
  if [[ -n $WORKER_PID ]]; then
    stop_worker "$WORKER_PID"
    WORKER_PID=
  fi
  if ((CREATED)) && [[ ${BENCH_KEEP:-0} != 1 ]] && broker_up; then
    delete_run_data "$PREFIX"
  fi
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then
    say "kept $TMP (settings, worker logs, samples) and the topics/groups $PREFIX-*"
  else
    rm -rf "$TMP"
  fi
  if ((STARTED_STACK)); then
    say "stopping the Kafka this script started"
    "$ROOT/scripts/stack" down kafka >&2 || true
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM


# ------------------------------------------------------------------------------ setup

if ! broker_up; then
  [[ $BROKER == 127.0.0.1:9092 ]] || die "no broker at $BROKER"
  say "no broker at $BROKER: starting the local stack's Kafka"
  STARTED_STACK=1
  "$ROOT/scripts/stack" up kafka >&2
  broker_up || die "Kafka did not come up"
fi

if [[ ${BENCH_NO_BUILD:-0} != 1 ]]; then
  say "building the release binary (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
  t0=$SECONDS
  cargo build --release --bin cta-stream >&2 || die "the release build failed"
  say "build took $((SECONDS - t0)) s"
fi
[[ -x $BIN ]] || die "no binary at $BIN"

# The workers' environment: no CTA_STREAM_* overrides, no RUST_LOG.
WORKER_ENV=(env -u RUST_LOG)
while IFS= read -r v; do
  [[ -n $v ]] && WORKER_ENV+=(-u "$v")
done < <(compgen -v CTA_STREAM_ || true)

# ------------------------------------------------------------------------------ one run

log_tail() { grep -Ev 'created topic|^[│├┌└]' "$1" | tail -n 25 >&2; }

# run NAME SPEEDUP SECONDS
run() {
  local name=$1 speedup=$2 secs=$3 dir=$TMP/$1 app=$PREFIX-$1 web sr rp
  mkdir -p "$dir/state"
  read -r web sr rp < <("${PY[@]}" ports 3)
  "${PY[@]}" settings --src "$ROOT/settings.toml" --repo "$ROOT" --out "$dir/settings.toml" \
    --app-id "$app" --speedup "$speedup" --start "$SIM_START" --state-dir "$dir/state" \
    --broker "$BROKER" --guarantee "${BENCH_GUARANTEE:-}" --web-port "$web" --sr-port "$sr" --rp-port "$rp"
  local url=http://127.0.0.1:$web/health
  say "run $name: speed-up ×$speedup for $secs s, app id $app, web $web"
  CREATED=1
  "${WORKER_ENV[@]}" "$BIN" worker -l info --settings "$dir/settings.toml" >"$dir/worker.log" 2>&1 &
  WORKER_PID=$!
  if ! "${PY[@]}" wait --url "$url" --pid "$WORKER_PID" --timeout "$HEALTH_TIMEOUT"; then
    say "run $name: the worker did not become healthy; the end of its log:"
    log_tail "$dir/worker.log"
    exit 1
  fi
  # In the background, so that a signal to this script is handled at once.
  "${PY[@]}" sample --url "$url" --pid "$WORKER_PID" --duration "$secs" --out "$dir/samples.jsonl" &
  SAMPLER_PID=$!
  local sampled=0
  wait "$SAMPLER_PID" || sampled=$?
  SAMPLER_PID=
  if ((sampled != 0)); then
    say "run $name: sampling stopped early (see above); the end of the worker's log:"
    log_tail "$dir/worker.log"
    WORKER_PID=
    exit 1
  fi
  # Lag of the producer agents on the clock topic while the worker still runs (commits
  # every app.commit_interval, so a step or two behind is normal), then the final state.
  local groups=(--group "$app-cta_trains" --group "$app-cta_turnstiles" --group "$app-cta_weather")
  tool consumer-groups --bootstrap-server "$BROKER" --describe "${groups[@]}" >"$dir/lag-live.txt" 2>&1 || true
  curl -s --max-time 2 "$url" >"$dir/final-health.json" || true
  kill -0 "$WORKER_PID" 2>/dev/null || { say "run $name: the worker died at the end of the run"; log_tail "$dir/worker.log"; WORKER_PID=; exit 1; }
  stop_worker "$WORKER_PID"
  WORKER_PID=
  echo "$STOP_RC" >"$dir/exit-code"
  echo "$STOP_SECS" >"$dir/stop-secs"
  ((STOP_RC == 0)) || say "run $name: the worker exited with $STOP_RC after SIGTERM"
  tool consumer-groups --bootstrap-server "$BROKER" --describe "${groups[@]}" >"$dir/lag-stopped.txt" 2>&1 || true
  tool console-consumer --bootstrap-server "$BROKER" --topic "$app.clock" --from-beginning \
    --isolation-level read_committed --timeout-ms 3000 >"$dir/clock.txt" 2>/dev/null || true
  tool org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$BROKER" --topic "^$app\\..*" \
    >"$dir/offsets.txt" 2>/dev/null || true
  # Worker errors are worth seeing at once.
  if grep -E '\b(ERROR|WARN)\b' "$dir/worker.log" | grep -v 'signal received' | head -n 5 | grep -q .; then
    say "run $name: warnings/errors in the worker log (first 5):"
    grep -E '\b(ERROR|WARN)\b' "$dir/worker.log" | grep -v 'signal received' | head -n 5 >&2
  fi
}

run x1 1 "$BASE_SECS"
run "x$SPEEDUP" "$SPEEDUP" "$FAST_SECS"

# ------------------------------------------------------------------------------ report

kafka_version=$("$ROOT/scripts/stack" help 2>/dev/null | sed -n 's/.*Kafka version.*(now: \(.*\)).*/\1/p' | head -n 1)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo '?')
git diff --quiet HEAD 2>/dev/null || commit="$commit + uncommitted changes"
broker="$BROKER"
case $BROKER in
  127.0.0.1:* | localhost:*) broker="local single-node Kafka ${kafka_version:-?} (scripts/stack) at $BROKER, same machine" ;;
esac
conditions="$(date -u +%Y-%m-%d), $(nproc) CPUs (${cpu:-?}), release build (commit $commit), \
broker: $broker, \
durations: ×1 ${BASE_SECS} s, ×$SPEEDUP ${FAST_SECS} s, /health sampled every 1 s ± 0.45 s"
"${PY[@]}" report --conditions "$conditions" "$TMP/x1" "$TMP/x$SPEEDUP"
printf '(benchmark wall time: %d s)\n' $((SECONDS - T_START))

for r in x1 "x$SPEEDUP"; do
  rc=$(cat "$TMP/$r/exit-code")
  ((rc == 0)) || die "run $r: the worker exited with $rc after SIGTERM (see the table)"
done
