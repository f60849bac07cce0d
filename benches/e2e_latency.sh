#!/usr/bin/env bash
# benches/e2e_latency.sh — end-to-end latency of the full CTA app, from a train's arrival
# event (its Kafka record timestamp) to the status page's server-sent update showing the
# train at that station (p50/p90/p99), and the worker's resident memory while it runs.
#
#   benches/e2e_latency.sh [SECONDS [SPEEDUP]]          (defaults: 90 1)
#
# Runs the release worker on settings.toml — every agent, table, view and the stations
# connector, as `scripts/run` does — with its own app id and topic prefix (its own topics,
# consumer groups, connector and replication slot: the app's data is never touched), its
# own ports and state directory, and the clock at SPEEDUP; benches/e2e_latency.py (venv of
# scripts/pyenv) follows the arrival topics and /events and samples /performance. The
# worker first catches up (the stations from PostgreSQL), then is restarted with the same
# app id and state, and measured in that steady state. Needs
# the local stack (scripts/stack up: Kafka, PostgreSQL, Connect). The baseline of the same
# run is the arrival itself: the latency is what the pipeline adds (arrival topic →
# cta_train_positions → trains table → changelog → trains_all global table → page).
#
# Environment: BENCH_NO_BUILD=1 uses the existing release binary; CARGO_TARGET_DIR
# (default ~/.cache/cta-stream/target).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-90}
SPEEDUP=${2:-1}
say() { printf 'e2e bench: %s\n' "$*" >&2; }
die() { printf 'e2e bench: error: %s\n' "$*" >&2; exit 1; }

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/cta-stream/target}
[[ ${BENCH_NO_BUILD:-} == 1 ]] || cargo build --release --quiet --bin cta-stream
BIN=$CARGO_TARGET_DIR/release/cta-stream
[[ -x $BIN ]] || die "no release binary at $BIN"
scripts/stack status --check >/dev/null || die "the local stack is not up (scripts/stack up)"
PY=$(scripts/pyenv)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
WEB=$(free_port) REG=$(free_port) PROXY=$(free_port)
TMP=$(mktemp -d)
# lower-case letters, digits and _: it also names the connector's replication slot
APP=cta_e2e_$(date +%s)
cleanup() {
  [[ -n ${WPID:-} ]] && kill "$WPID" 2>/dev/null && wait "$WPID" 2>/dev/null
  # the connector this run declared, and its slot (a slot left behind holds WAL)
  curl -sf -X DELETE "http://127.0.0.1:8083/connectors/$APP.stations" >/dev/null 2>&1 || true
  for _ in $(seq 30); do
    case $(scripts/stack psql -qtAc "select active from pg_replication_slots where slot_name = '${APP}_stations'" 2>/dev/null) in
      f) scripts/stack psql -qtAc "select pg_drop_replication_slot('${APP}_stations')" >/dev/null 2>&1; break ;;
      t) sleep 1 ;;
      *) break ;;
    esac
  done
  rm -rf "$TMP"
}
trap cleanup EXIT

start_worker() { # LOG
  env -u RUST_LOG CTA_STREAM_APP__ID=$APP CTA_STREAM_APP__TOPIC_PREFIX=$APP. \
    CTA_STREAM_APP__STATE_DIR=$TMP/state \
    CTA_STREAM_WEB__BIND=127.0.0.1:$WEB \
    CTA_STREAM_EMBEDDED__SCHEMA_REGISTRY=127.0.0.1:$REG CTA_STREAM_SERVICES__SCHEMA_REGISTRY= \
    CTA_STREAM_EMBEDDED__REST_PROXY=127.0.0.1:$PROXY CTA_STREAM_SERVICES__REST_PROXY= \
    CTA_STREAM_AGENTS__CTA_CLOCK__SOURCE__SPEEDUP=$SPEEDUP \
    "$BIN" --settings settings.toml worker -l warn >"$1" 2>&1 &
  WPID=$!
  for _ in $(seq 120); do
    curl -sf "http://127.0.0.1:$WEB/health" >/dev/null && return 0
    kill -0 "$WPID" 2>/dev/null || { tail -20 "$1" >&2; die "the worker exited"; }
    sleep 1
  done
  die "the worker is not healthy after 120 s"
}
start_worker "$TMP/worker-1.log"
# Measure once every agent has caught up with what the run wrote so far.
say "worker up (app $APP, http://127.0.0.1:$WEB); waiting for its agents to catch up"
START=$(date +%s)
for _ in $(seq 600); do
  LAG=$(curl -sf "http://127.0.0.1:$WEB/performance" | python3 -c '
import json, sys
d = json.load(sys.stdin)
consumers = ("cta_train_positions", "cta_turnstile_summary", "cta_station_transform", "cta_trains")
known = all(d["agents"][a]["lag"]["partitions"] for a in consumers)
print(sum(a["lag"]["total"] for a in d["agents"].values()) if known else "none")' 2>/dev/null || echo x)
  [[ $LAG =~ ^[0-9]+$ ]] && ((LAG < 500)) && break
  sleep 1
done
[[ $LAG =~ ^[0-9]+$ ]] && ((LAG < 500)) || die "the agents did not catch up within 600 s (lag $LAG)"
PEAK=$(curl -sf "http://127.0.0.1:$WEB/performance" | python3 -c '
import json, sys; print(round(json.load(sys.stdin)["memory"]["peak_resident_bytes"] / 2**20, 1))')
say "caught up after $(( $(date +%s) - START )) s; peak resident memory so far ${PEAK} MB"
# Memory is measured in the steady state of a worker that restarts with its groups and
# state (what a deployment sees), not after the catch-up of a backlog.
kill -TERM "$WPID"
wait "$WPID" || die "the worker did not stop cleanly (log: $TMP/worker-1.log)"
start_worker "$TMP/worker-2.log"
say "restarted with the same app id and state"
say "measuring for ${SECS}s at x$SPEEDUP"
"$PY" benches/e2e_latency.py --bootstrap 127.0.0.1:9092 --registry "http://127.0.0.1:$REG" \
  --web "127.0.0.1:$WEB" --seconds "$SECS" --pattern "^$APP\\.org\\.chicago\\.cta\\.station\\.arrivals\\..*"
