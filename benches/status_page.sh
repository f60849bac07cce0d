#!/usr/bin/env bash
# benches/status_page.sh — bursts of concurrent requests on the status page, its JSON API
# and, as the baseline in the same run, the worker's smallest endpoint (/health), with
# Apache's `ab` on loopback.
#
#   benches/status_page.sh [URL [REQUESTS [CONCURRENCY]]]   (defaults: http://127.0.0.1:8888 5000 500)
#
# URL is a running worker with the status view (scripts/run). `ab` comes from Debian's
# apache2-utils, installed when missing. Prints requests/s, p50/p99 latency and failed
# requests per endpoint; exits non-zero if any request failed.
set -euo pipefail
URL=${1:-http://127.0.0.1:8888}
N=${2:-5000}
C=${3:-500}

if ! command -v ab >/dev/null 2>&1; then
  echo "status bench: installing apache2-utils (ab)" >&2
  if [[ $(id -u) == 0 ]]; then apt-get install -y -q apache2-utils >/dev/null
  else sudo -n apt-get install -y -q apache2-utils >/dev/null; fi
fi
curl -fsS "$URL/api/status" >/dev/null || { echo "status bench: no status page at $URL (run scripts/run)" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || ulimit -n 4096 2>/dev/null || true

printf '%-14s %10s %9s %9s %8s\n' endpoint 'req/s' 'p50 ms' 'p99 ms' failed
failed_any=0
for path in /health /api/status /; do
  out=$(ab -q -r -n "$N" -c "$C" "$URL$path" 2>&1) || { echo "$out" >&2; exit 1; }
  rps=$(awk '/^Requests per second/ {print $4}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  # ab counts a response whose length differs from the first as failed: the page
  # changes as trains move, so only connect, receive and exception failures count.
  breakdown=$(grep -A1 '^Failed requests' <<<"$out" | tail -1)
  failed=$(sed -E 's/.*Connect: ([0-9]+), Receive: ([0-9]+), Length: [0-9]+, Exceptions: ([0-9]+).*/\1 \2 \3/' <<<"$breakdown" | awk 'NF == 3 {print $1 + $2 + $3} NF != 3 {print 0}')
  non2xx=$(awk '/^Non-2xx responses/ {print $3}' <<<"$out")
  failed=$((failed + ${non2xx:-0}))
  ((failed == 0)) || failed_any=1
  printf '%-14s %10s %9s %9s %8s\n' "$path" "$rps" "$p50" "$p99" "$failed"
done
echo "conditions: $N requests, $C concurrent, loopback, $(nproc) cores, $(date -u +%F)"
exit "$failed_any"
