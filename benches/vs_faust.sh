#!/usr/bin/env bash
# benches/vs_faust.sh — cta-stream against Python Faust (faust-streaming) and a bare rdkafka
# loop, on the same jobs, the same broker and the same input, in one run.
#
#   benches/vs_faust.sh [MESSAGES]          (default: $BENCH_MESSAGES, else 200000)
#
# Two jobs, each over a fresh input topic of MESSAGES records (1 partition) that every
# system reads from the beginning with a fresh consumer group:
#   stations  rows of the PostgreSQL stations table as Kafka Connect writes them (flat JSON,
#             cycling through the 230 rows of data/cta_stations.csv): a row of the red,
#             blue or green line becomes {station_id, station_name, order, line} in the
#             table `stations` (key station_id) and `line_stations` (key "line:station_id");
#             the others are left out (188 of the 230 rows are kept)
#   counting  records with keys key-00000000 … (BENCH_KEYS distinct keys): a count per key
#             in the table `key_counts`, a get and an insert per record
# and for each job, one after the other:
#   bare        a bare rdkafka loop doing the job (cargo bench target benches/bare_jobs.rs):
#               consume, parse, transform or count, produce; flush + commit every second
#   cta-stream  the release worker (cta-stream worker -l warn) running only the job's agent
#               (cta_station_transform, count_keys) with settings derived from settings.toml
#               by benches/vs_faust.py: at-least-once, then exactly-once
#   faust       the same job as a Faust app (benches/faust/*.py: a faust.Record, an agent,
#               in-memory tables with their changelogs; at-least-once, Faust's default),
#               `python APP.py --loop uvloop worker -l warn`, in its own venv
#               (benches/faust/pyenv: faust-streaming pinned, with orjson and uvloop)
# Throughput: output records (changelog records; the bare loop's output records) ÷ the span
# from the first to the last output record's timestamp (CreateTime), so that start-up,
# group joins and table recovery are left out alike. Each output is then read back
# (read_committed) and checked: exactly the records the job must write (the stations
# changelog gets exactly the red/blue/green rows, key_counts one record per input record)
# and the right final value for every key. Beside it, the CPU time that the system's
# process used over the same span (sampled every 10 ms from /proc; the broker's is not
# counted), a figure less sensitive to other load on the machine. A Markdown table is
# printed at the end, with the ratios cta-stream ÷ Faust and cta-stream ÷ bare.
#
# Exit 0 when every run completed and every check passed; 1 with a message when something
# failed (build, venv, a process that died or did not finish in time), 3 when an output
# check failed (the table says which).
#
# Environment:
#   BENCH_MESSAGES        input records per job (default 200000)
#   BENCH_KEYS            counting: distinct keys (default 10000)
#   BENCH_JOBS            jobs to run (default "stations counting")
#   BENCH_SYSTEMS         systems to run (default "bare alo eos faust": the bare loop, the
#                         worker at-least-once and exactly-once, Faust)
#   BENCH_BROKER          Kafka bootstrap (default 127.0.0.1:9092; the local stack's Kafka
#                         is started, and stopped afterwards, if nothing listens there)
#   BENCH_COMMIT_INTERVAL the workers' app.commit_interval (default: settings.toml's)
#   BENCH_FAUST_LOOP      Faust's event loop: uvloop (default) or aio
#   BENCH_TIMEOUT         seconds one system may take for one job (default 900)
#   BENCH_REPORT          also write the Markdown summary to this file
#   BENCH_KEEP=1          keep the temporary directory (settings, logs, measurements) and
#                         the topics and consumer groups of the run
#   BENCH_NO_BUILD=1      use the existing release binary and bare_jobs bench executable
#   CARGO_TARGET_DIR      default ~/.cache/cta-stream/target (as scripts/run)
#   CTA_STREAM_CACHE      where benches/faust/pyenv keeps the Faust venv
# CTA_STREAM_* variables and RUST_LOG are not passed to the workers (the generated settings
# file is the whole configuration).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"

say() { printf 'vs_faust: %s\n' "$*" >&2; }
die() { printf 'vs_faust: error: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
case ${1:-} in -h | --help) usage; exit 0 ;; esac

N=${1:-${BENCH_MESSAGES:-200000}}
KEYS=${BENCH_KEYS:-10000}
JOBS=${BENCH_JOBS:-stations counting}
SYSTEMS=${BENCH_SYSTEMS:-bare alo eos faust}
BROKER=${BENCH_BROKER:-127.0.0.1:9092}
TIMEOUT=${BENCH_TIMEOUT:-900}
FAUST_LOOP=${BENCH_FAUST_LOOP:-uvloop}
for v in "$N" "$KEYS" "$TIMEOUT"; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || die "MESSAGES, BENCH_KEYS and BENCH_TIMEOUT are positive whole numbers (got '$v')"
done
for job in $JOBS; do
  [[ $job == stations || $job == counting ]] || die "unknown job '$job' in BENCH_JOBS (stations, counting)"
done
for sys in $SYSTEMS; do
  [[ $sys =~ ^(bare|alo|eos|faust)$ ]] || die "unknown system '$sys' in BENCH_SYSTEMS (bare, alo, eos, faust)"
done
has() { [[ " $SYSTEMS " == *" $1 "* ]]; }
[[ $FAUST_LOOP == uvloop || $FAUST_LOOP == aio ]] || die "BENCH_FAUST_LOOP is uvloop or aio (got '$FAUST_LOOP')"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/cta-stream/target}
BIN=$CARGO_TARGET_DIR/release/cta-stream
# counting runs the example agent count_keys, which lives in the examples binary
EXAMPLES_BIN=$CARGO_TARGET_DIR/release/cta-stream-examples
HELPER=(python3 "$ROOT/benches/vs_faust.py")
python3 -c 'import sys, tomllib; sys.exit(sys.version_info < (3, 11))' 2>/dev/null ||
  die "needs python3 3.11 or newer (tomllib)"

PREFIX=vsfaust-$(date +%Y%m%d%H%M%S)-$$
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cta-vsfaust.XXXXXX")
RESULTS=$TMP/results.jsonl
PROC_PID=  # the worker or Faust app running now
PROC_NAME=
HELPER_PID= # the bare_jobs step running now
STARTED_STACK=0
CREATED=0 # topics or groups of ours may exist on the broker
T_START=$SECONDS
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------------------------ cleanup

# stop_proc: SIGTERM to $PROC_PID, wait up to 60 s (a worker's shutdown_timeout is 30 s,
# Faust's shutdown may take as long), then SIGKILL. Sets STOP_RC.
stop_proc() {
  local pid=$PROC_PID i
  STOP_RC=0
  [[ -n $pid ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 600; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "$PROC_NAME (pid $pid) still running 60 s after SIGTERM: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || STOP_RC=$?
  PROC_PID=
}



cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $HELPER_PID ]]; then
    kill -TERM "$HELPER_PID" 2>/dev/null || true
    wait "$HELPER_PID" 2>/dev/null || true
  fi
  stop_proc
  if ((CREATED)) && [[ ${BENCH_KEEP:-0} != 1 ]] && broker_up; then
    delete_run_data "$PREFIX"
  fi
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then
    say "kept $TMP (settings, logs, measurements) and the topics/groups $PREFIX-*"
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

# The bare_jobs bench executable: cargo names it bare_jobs-<hash>.
find_bare_jobs() {
  local f newest=
  for f in "$CARGO_TARGET_DIR"/release/deps/bare_jobs-*; do
    [[ -f $f && -x $f && ${f##*/} != *.* ]] || continue
    [[ -z $newest || $f -nt $newest ]] && newest=$f
  done
  printf '%s' "$newest"
}

if [[ ${BENCH_NO_BUILD:-0} != 1 ]]; then
  say "building the release binary and the bare_jobs bench (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
  t0=$SECONDS
  cargo build --release --bin cta-stream --bin cta-stream-examples >&2 || die "the release build failed"
  cargo bench --bench bare_jobs --no-run --message-format=json >"$TMP/bench-build.json" ||
    die "the build of benches/bare_jobs.rs failed (cargo bench --bench bare_jobs --no-run)"
  BARE=$(python3 -c 'import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line) if line.startswith("{") else {}
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "bare_jobs" and m.get("executable"):
        print(m["executable"])' "$TMP/bench-build.json" | tail -n 1)
  say "build took $((SECONDS - t0)) s"
else
  BARE=$(find_bare_jobs)
fi
[[ -x $BIN ]] || die "no binary at $BIN"
[[ -x $EXAMPLES_BIN ]] || die "no binary at $EXAMPLES_BIN"
[[ -n $BARE && -x $BARE ]] || die "no bare_jobs bench executable (cargo bench --bench bare_jobs --no-run)"

say "preparing the Faust venv (benches/faust/pyenv)"
FAUST_PY=$("$ROOT/benches/faust/pyenv" | tail -n 1) || die "benches/faust/pyenv failed (see above)"
FAUST_VERSION=$("$FAUST_PY" -c 'import importlib.metadata as m; print(m.version("faust-streaming"))')
PY_VERSION=$("$FAUST_PY" -c 'import platform; print(platform.python_version())')
AIOKAFKA_VERSION=$("$FAUST_PY" -c 'import importlib.metadata as m; print(m.version("aiokafka"))')

# The workers' environment: no CTA_STREAM_* overrides, no RUST_LOG.
WORKER_ENV=(env -u RUST_LOG)
while IFS= read -r v; do
  [[ -n $v ]] && WORKER_ENV+=(-u "$v")
done < <(compgen -v CTA_STREAM_ || true)

# bare_jobs STEP JOB [VAR=VALUE...]: one step of the Kafka helper (in the background,
# waited for, so that a signal to this script is handled at once)
bare_jobs() {
  local step=$1 job=$2 rc=0
  shift 2
  env CTA_TEST_BROKER="$BROKER" BENCH_STEP="$step" BENCH_JOB="$job" BENCH_MESSAGES="$N" \
    BENCH_KEYS="$KEYS" BENCH_TIMEOUT="$TIMEOUT" "$@" "$BARE" &
  HELPER_PID=$!
  wait "$HELPER_PID" || rc=$?
  HELPER_PID=
  return "$rc"
}

log_tail() { grep -Ev '^[│├┌└|+]|producer buffer full' "$1" | tail -n 25 >&2 || true; }

# tables JOB: the job's tables, the first one timed
tables() {
  case $1 in
    stations) echo stations line_stations ;;
    counting) echo key_counts ;;
  esac
}

# measure JOB DIR TOPIC...: read back and check each output topic (the first is timed;
# with the bare loop they hold the tables' records in the same order as tables())
measure() {
  local job=$1 dir=$2 t i=0 files=()
  shift 2
  local names
  read -r -a names <<<"$(tables "$job")"
  for t in "$@"; do
    bare_jobs measure "$job" BENCH_OUTPUT="$t" BENCH_TABLE="${names[$i]}" >"$dir/measure-$i.json" ||
      die "reading back $t failed"
    files+=("$dir/measure-$i.json")
    i=$((i + 1))
  done
  MEASURES=("${files[@]}")
}

# record JOB SYSTEM TITLE GUARANTEE DIR: add the measurement (and the CPU samples of the
# wait step) to the results
record() {
  "${HELPER[@]}" record --results "$RESULTS" --job "$1" --system "$2" --system-title "$3" \
    --guarantee "$4" --messages "$N" --cpu "$5/cpu.json" "${MEASURES[@]}"
}

# wait_done JOB DIR NAME TOPIC [GROUP]: until TOPIC holds the job's records (and GROUP has
# committed the whole input), while $PROC_PID runs
wait_done() {
  local job=$1 dir=$2 name=$3 topic=$4 group=${5:-}
  if ! bare_jobs wait "$job" BENCH_INPUT="$INPUT" BENCH_OUTPUT="$topic" BENCH_GROUP="$group" \
    BENCH_PID="$PROC_PID" >"$dir/cpu.json"; then
    say "$name did not finish; the end of its log ($dir/log):"
    log_tail "$dir/log"
    exit 1
  fi
}

# ------------------------------------------------------------------------------ the runs

run_bare() { # JOB
  local job=$1 dir=$TMP/$1-bare out=$PREFIX-$1-bare-out rc=0
  mkdir -p "$dir"
  say "$job: bare rdkafka loop"
  # It ends by itself once it has consumed the input and flushed its output.
  env CTA_TEST_BROKER="$BROKER" BENCH_STEP=bare BENCH_JOB="$job" BENCH_MESSAGES="$N" \
    BENCH_TIMEOUT="$TIMEOUT" BENCH_INPUT="$INPUT" BENCH_OUTPUT="$out" BENCH_OUTPUT_LINES="$out-lines" \
    BENCH_GROUP="$PREFIX-$job-bare" "$BARE" >"$dir/log" 2>&1 &
  PROC_PID=$! PROC_NAME="the bare loop"
  wait_done "$job" "$dir" "the bare loop" "$out"
  wait "$PROC_PID" || rc=$?
  PROC_PID=
  ((rc == 0)) || { log_tail "$dir/log"; die "$job: the bare loop failed (exit $rc)"; }
  if [[ $job == stations ]]; then measure "$job" "$dir" "$out" "$out-lines"; else measure "$job" "$dir" "$out"; fi
  record "$job" bare "bare rdkafka loop" at_least_once "$dir"
}

run_worker() { # JOB GUARANTEE
  local job=$1 guarantee=$2 agent t topics=()
  local tag=alo
  [[ $guarantee == exactly_once ]] && tag=eos
  local dir=$TMP/$job-cta-$tag app=$PREFIX-$job-cta-$tag bin=$BIN
  case $job in stations) agent=cta_station_transform ;; counting) agent=count_keys bin=$EXAMPLES_BIN ;; esac
  mkdir -p "$dir/state"
  "${HELPER[@]}" settings --job "$job" --src "$ROOT/settings.toml" --out "$dir/settings.toml" \
    --app-id "$app" --broker "$BROKER" --guarantee "$guarantee" --input "$INPUT" \
    --state-dir "$dir/state" --commit-interval "${BENCH_COMMIT_INTERVAL:-}"
  for t in $(tables "$job"); do topics+=("$app-$t-changelog"); done
  say "$job: cta-stream worker, $guarantee (app id $app)"
  (cd "$dir" && exec "${WORKER_ENV[@]}" "$bin" worker -l warn --settings "$dir/settings.toml") >"$dir/log" 2>&1 &
  PROC_PID=$! PROC_NAME="the cta-stream worker"
  wait_done "$job" "$dir" "the cta-stream worker ($guarantee)" "${topics[0]}" "$app-$agent"
  stop_proc
  ((STOP_RC == 0)) || say "$job: the worker exited with $STOP_RC after SIGTERM"
  # Worker errors are worth seeing at once (those of the run, not of the stop that follows).
  if sed '/signal received/q' "$dir/log" | grep -E '\b(ERROR|WARN)\b' | grep -v 'signal received' |
    head -n 5 >"$dir/warnings" && [[ -s $dir/warnings ]]; then
    say "$job: warnings/errors in the worker log before the stop (first 5):"
    cat "$dir/warnings" >&2
  fi
  measure "$job" "$dir" "${topics[@]}"
  record "$job" cta-stream "cta-stream worker" "$guarantee" "$dir"
}

run_faust() { # JOB
  local job=$1 dir=$TMP/$1-faust app=$PREFIX-$1-faust script t topics=()
  case $job in stations) script=station_transform.py ;; counting) script=counting.py ;; esac
  for t in $(tables "$job"); do topics+=("$app-$t-changelog"); done
  mkdir -p "$dir"
  say "$job: Faust $FAUST_VERSION, at-least-once (app id $app)"
  # In its own directory: Faust keeps <app id>-data/ in the working directory.
  (cd "$dir" && exec env BENCH_BROKER="$BROKER" BENCH_FAUST_APP_ID="$app" BENCH_INPUT_TOPIC="$INPUT" \
    "$FAUST_PY" "$ROOT/benches/faust/$script" --loop "$FAUST_LOOP" worker -l warn) >"$dir/log" 2>&1 &
  PROC_PID=$! PROC_NAME="the Faust worker"
  wait_done "$job" "$dir" "the Faust worker" "${topics[0]}"
  stop_proc
  measure "$job" "$dir" "${topics[@]}"
  record "$job" faust "Faust (faust-streaming $FAUST_VERSION)" at_least_once "$dir"
}

say "run $PREFIX: $N records per job, jobs: $JOBS; load average before: $LOAD_BEFORE"
for job in $JOBS; do
  INPUT=$PREFIX-$job-in
  CREATED=1
  bare_jobs fill "$job" BENCH_INPUT="$INPUT" || die "filling $INPUT failed"
  if has bare; then run_bare "$job"; fi
  if has alo; then run_worker "$job" at_least_once; fi
  if has eos; then run_worker "$job" exactly_once; fi
  if has faust; then run_faust "$job"; fi
done

# ------------------------------------------------------------------------------ report

kafka_version=$("$ROOT/scripts/stack" help 2>/dev/null | sed -n 's/.*Kafka version.*(now: \(.*\)).*/\1/p' | head -n 1)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo '?')
git diff --quiet HEAD 2>/dev/null || commit="$commit + uncommitted changes"
broker="$BROKER"
case $BROKER in
  127.0.0.1:* | localhost:*) broker="local single-node KRaft Kafka ${kafka_version:-?} (scripts/stack) at $BROKER, same machine" ;;
esac
commit_interval=${BENCH_COMMIT_INTERVAL:-$(python3 -c 'import tomllib; print(tomllib.load(open("settings.toml", "rb")).get("app", {}).get("commit_interval", "1s"))')}
conditions="$(date -u +%Y-%m-%d), $(nproc) CPUs (${cpu:-?}), load average before $LOAD_BEFORE / after \
$(cut -d' ' -f1-3 /proc/loadavg); broker: $broker; $N input records per job, 1 partition, \
counting over $KEYS keys; cta-stream release build (commit $commit), commit_interval $commit_interval; \
Faust: faust-streaming $FAUST_VERSION, aiokafka $AIOKAFKA_VERSION, Python $PY_VERSION, $FAUST_LOOP loop, \
in-memory tables; bare loop: rdkafka, commits every 1 s."
report_rc=0
"${HELPER[@]}" report --title "cta-stream vs Faust, run $PREFIX" --conditions "$conditions" "$RESULTS" \
  >"$TMP/report.md" || report_rc=$?
cat "$TMP/report.md"
[[ -z ${BENCH_REPORT:-} ]] || cp "$TMP/report.md" "$BENCH_REPORT"
printf '(benchmark wall time: %d s)\n' $((SECONDS - T_START))
((report_rc == 0)) || { say "an output check failed (see the table)"; exit 3; }
