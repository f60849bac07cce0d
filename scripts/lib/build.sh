# scripts/lib/build.sh — how scripts/run and scripts/test build: one cargo target directory
# outside the clone and one profile (release) for clippy, the tests and the binary, so that
# RocksDB's C++ — most of a first build — is compiled once and serves all three. Sourced,
# not run.

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${CTA_CACHE_DIR:-$HOME/.cache/cta-stream}/target}

# build_is_first: RocksDB has not been built in this target directory yet
build_is_first() {
  ! compgen -G "$CARGO_TARGET_DIR/release/build/librocksdb-sys-*/out/librocksdb.a" >/dev/null
}

# build_estimate: a sentence on how long the coming build takes. The figures were measured
# on a 2-core machine (docs/testing.md); the native builds use every core, so they scale.
build_estimate() { # MINUTES-ON-2-CORES
  local cores minutes
  cores=$(nproc 2>/dev/null || echo 2)
  minutes=$(((${1} * 2 + cores - 1) / cores))
  if build_is_first; then
    printf 'first build in %s: about %d minutes on %d cores (RocksDB'"'"'s C++ is most of it); later builds take seconds' \
      "$CARGO_TARGET_DIR" "$minutes" "$cores"
  else
    printf 'incremental build in %s: seconds, unless the code or Cargo.lock changed' "$CARGO_TARGET_DIR"
  fi
}

# elapsed SECONDS: "1 min 05 s" / "42 s"
elapsed() {
  local s=$1
  if ((s >= 60)); then printf '%d min %02d s' $((s / 60)) $((s % 60)); else printf '%d s' "$s"; fi
}
