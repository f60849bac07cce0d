# benches/lib.sh — shell helpers shared by the benchmark scripts (sourced, not run).
# shellcheck shell=bash
# Expects ROOT (the repository), BROKER (bootstrap servers) and a `say` function.

# A Kafka CLI tool with the stack's cached jars.
tool() { "$ROOT/scripts/stack" tool "$@"; }

# True when the first bootstrap server accepts a TCP connection.
broker_up() {
  local host=${BROKER%%,*}
  (exec 3<>"/dev/tcp/${host%:*}/${host##*:}") 2>/dev/null
}

# Deletes the topics and consumer groups named PREFIX-* of a run.
delete_run_data() { # PREFIX
  local prefix=$1
  say "deleting the topics and consumer groups of $prefix-*"
  tool topics --bootstrap-server "$BROKER" --delete --topic "$prefix-.*" >/dev/null 2>&1 ||
    say "could not delete the topics $prefix-* (delete them by hand)"
  # A group can be deleted once its members have left; a worker that did not leave
  # (killed, or exactly-once, whose consumers are not closed at shutdown) stays a member
  # until its session times out (10 s): list and delete until none is left, ~20 s at most.
  local g try args=()
  for ((try = 1; try <= 7; try++)); do
    args=()
    while IFS= read -r g; do
      [[ $g == "$prefix"-* ]] && args+=(--group "$g")
    done < <(tool consumer-groups --bootstrap-server "$BROKER" --list 2>/dev/null || true)
    ((${#args[@]})) || break
    ((try == 1)) || sleep 3
    tool consumer-groups --bootstrap-server "$BROKER" --delete "${args[@]}" >/dev/null 2>&1 || true
  done
  ((${#args[@]} == 0)) || say "could not delete the consumer groups of $prefix-* (still active?); later:" \
    "scripts/stack tool consumer-groups --bootstrap-server $BROKER --delete ${args[*]}"
}
