# scripts/lib/needs.sh — the one list of what building, running and testing cta-stream
# needs, sourced by scripts/setup (which installs what is missing) and scripts/doctor (which
# reports). Not meant to be run.
#
# Each check looks at what the build or the scripts really use: the exact executable they
# run (found the way they find it, with the same environment overrides), or the Debian
# package that ships the file a build script loads. Never a glob that a neighbouring package
# can satisfy: `/usr/lib/llvm-*/lib/libclang*.so*` once took libclang-cpp14's
# `libclang-cpp.so.14` for libclang, so libclang-dev was never installed and the RocksDB
# build failed twenty minutes later.
#
# A check function `need_<id>` sets:
#   NEED_STATE   ok | missing | wrong (present, unusable version) | fetch (a script fetches it
#                on first use) | warn (works, but worth knowing) | skip (not needed here)
#   NEED_FOUND   what was found (version, path), for the report
#   NEED_FIX     how to fix it, one line
#   NEED_APT     Debian packages that scripts/setup installs for it (empty: none can)

NEEDS_ROOT=${NEEDS_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
NEEDS_CACHE_DIR=${CTA_STREAM_CACHE:-${CTA_CACHE_DIR:-$HOME/.cache/cta-stream}}

# id|group|name|why it is needed — the order is the report's order. Groups: build (cargo
# and the native libraries), stack (Kafka, PostgreSQL, Kafka Connect), test (the test
# clients), system (tools the scripts call, ports, disk).
NEEDS_LIST=(
  "rust|build|Rust|cargo and rustc, at least Cargo.toml's rust-version"
  "rust_tools|build|rustfmt, clippy|the project's crates build through clippy-driver (.cargo/config.toml); scripts/test checks formatting"
  "cc|build|C compiler|librdkafka's configure and make, lz4 (\$CC or cc)"
  "cxx|build|C++ compiler|C++ the cc crate builds for crates other than RocksDB (\$CXX or c++)"
  "clang|build|clang++|RocksDB's C++ (.cargo/config.toml names it: about half the time gcc takes)"
  "make|build|make|librdkafka's build"
  "libclang|build|libclang|librocksdb-sys generates its Rust bindings with libclang.so (Debian: libclang-dev)"
  "java|stack|Java 17+|Kafka, Kafka Connect and their tools"
  "maven|stack|Maven|resolves Kafka's and Debezium's jars on the first scripts/stack up"
  "kafka_jars|stack|Kafka jars|Kafka, Kafka Connect and the Debezium plugin, cached"
  "postgres|stack|PostgreSQL|the stack runs its own server (initdb, pg_ctl, psql, pg_isready)"
  "python|test|Python 3.10+|the tests' independent Avro client and the compose validation, in venvs"
  "py_clients|test|Python clients|confluent-kafka and fastavro, in scripts/pyenv's venv"
  "node|test|Node.js 18+, npm|the browser test"
  "browser_clients|test|npm clients|puppeteer-core, installed by scripts/browser-env"
  "chromium|test|Chromium|the browser test drives Debian's /usr/bin/chromium"
  "tools|system|system tools|flock, setsid, runuser, timeout, sort, sha256sum (util-linux, coreutils)"
  "ports|system|ports|the stack's (9092, 9093, 5432, 8083) and the worker's (8081, 8082, 8888)"
  "disk|system|disk|room for the release build (CARGO_TARGET_DIR)"
)

needs_set() { NEED_STATE=$1 NEED_FOUND=$2 NEED_FIX=${3:-} NEED_APT=${4:-}; }

# dpkg_installed PACKAGE: the Debian package is installed (not just known, half-removed or
# held in "config-files" state)
dpkg_installed() {
  command -v dpkg-query >/dev/null 2>&1 || return 1
  [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]
}

# version_ge A B: version A >= version B (dotted numbers)
version_ge() { [[ $(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1) == "$2" ]]; }

# --------------------------------------------------------------------- build ---
need_rust() {
  local want have
  want=$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' "$NEEDS_ROOT/Cargo.toml" | head -n1)
  if ! command -v cargo >/dev/null 2>&1 || ! command -v rustc >/dev/null 2>&1; then
    needs_set missing "cargo/rustc not on PATH" "install Rust with rustup (then open a new shell or source ~/.cargo/env)"
    return
  fi
  have=$(rustc --version 2>/dev/null | awk '{print $2}')
  if [[ -z $have ]]; then
    needs_set wrong "rustc does not run" "repair the toolchain: rustup toolchain install stable"
  elif [[ -n $want ]] && ! version_ge "${have%%-*}" "$want"; then
    needs_set wrong "rustc $have" "needs rustc >= $want: rustup update stable"
  else
    needs_set ok "rustc $have${want:+ (>= $want)}"
  fi
}

need_rust_tools() {
  local missing=() fmt clippy
  fmt=$(cargo fmt --version 2>/dev/null | awk '{print $2}') || true
  clippy=$(clippy-driver --version 2>/dev/null | awk '{print $2}') || true
  [[ -n $fmt ]] || missing+=(rustfmt)
  [[ -n $clippy ]] || missing+=(clippy)
  if ((${#missing[@]})); then
    needs_set missing "no ${missing[*]}" "rustup component add ${missing[*]} (scripts/setup does it when rustup is there)"
  else
    needs_set ok "rustfmt $fmt, clippy $clippy"
  fi
}

# the compilers as the build runs them: the cc crate honours CC/CXX, librdkafka's configure CC
need_cc() {
  local cc=${CC:-cc} v
  if ! command -v "$cc" >/dev/null 2>&1; then
    needs_set missing "no \`$cc\`" "apt-get install gcc" gcc
    return
  fi
  v=$("$cc" --version 2>/dev/null | head -n1)
  needs_set ok "${v:-$cc}"
}

need_cxx() {
  local cxx=${CXX:-c++} v
  if [[ $(uname -m) == x86_64 ]]; then
    needs_set skip "not used here: RocksDB, the one C++ library, builds with clang++"
    return
  fi
  if ! command -v "$cxx" >/dev/null 2>&1; then
    needs_set missing "no \`$cxx\`" "apt-get install g++" g++
    return
  fi
  v=$("$cxx" --version 2>/dev/null | head -n1)
  needs_set ok "${v:-$cxx}"
}

# the compiler .cargo/config.toml names for RocksDB (CXX_x86_64_unknown_linux_gnu)
need_clang() {
  local cxx=${CXX_x86_64_unknown_linux_gnu:-clang++} v
  if [[ $(uname -m) != x86_64 ]]; then
    needs_set skip "not used on $(uname -m): .cargo/config.toml names clang++ for x86_64 only"
    return
  fi
  if ! command -v "$cxx" >/dev/null 2>&1; then
    needs_set missing "no \`$cxx\`" "apt-get install clang" clang
    return
  fi
  v=$("$cxx" --version 2>/dev/null | head -n1)
  needs_set ok "${v:-$cxx}"
}

need_make() {
  if command -v make >/dev/null 2>&1; then
    needs_set ok "$(make --version 2>/dev/null | head -n1)"
  else
    needs_set missing "no make" "apt-get install make" make
  fi
}

# clang-sys (through bindgen) loads libclang.so from LIBCLANG_PATH or LLVM's library
# directories. On Debian exactly one package ships that file: libclang-dev (a symlink to
# libclang-N.so.1). libclang-cpp, libclang1 and friends ship other files.
need_libclang() {
  if [[ -n ${LIBCLANG_PATH:-} ]]; then
    if [[ -e $LIBCLANG_PATH/libclang.so || -e $LIBCLANG_PATH/libclang.so.1 ]]; then
      needs_set ok "LIBCLANG_PATH=$LIBCLANG_PATH"
    else
      needs_set wrong "LIBCLANG_PATH=$LIBCLANG_PATH holds no libclang.so" "point LIBCLANG_PATH at the directory of libclang.so, or unset it and apt-get install libclang-dev"
    fi
    return
  fi
  if dpkg_installed libclang-dev; then
    needs_set ok "libclang-dev $(dpkg-query -W -f='${Version}' libclang-dev 2>/dev/null)"
  elif command -v dpkg-query >/dev/null 2>&1; then
    needs_set missing "Debian package libclang-dev not installed" "apt-get install libclang-dev" libclang-dev
  else
    needs_set missing "not a Debian system: cannot tell" "install libclang and set LIBCLANG_PATH to the directory of libclang.so"
  fi
}

# --------------------------------------------------------------------- stack ---
# java as scripts/stack finds it: $JAVA_HOME/bin/java, else java on PATH
need_java() {
  local java ver major
  if [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]]; then
    java=$JAVA_HOME/bin/java
  elif command -v java >/dev/null 2>&1; then
    java=$(command -v java)
  else
    needs_set missing "no java (JAVA_HOME unset or without bin/java, none on PATH)" "apt-get install openjdk-17-jre-headless, or set JAVA_HOME" openjdk-17-jre-headless
    return
  fi
  ver=$("$java" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n1)
  major=${ver%%.*}
  [[ $major == 1 ]] && major=$(cut -d. -f2 <<<"$ver")
  if [[ $major =~ ^[0-9]+$ ]] && ((major >= 17)); then
    needs_set ok "Java $ver ($java)"
  else
    needs_set wrong "Java ${ver:-unknown} ($java)" "Kafka needs Java 17 or newer: apt-get install openjdk-17-jre-headless, or set JAVA_HOME" openjdk-17-jre-headless
  fi
}

need_maven() {
  if command -v mvn >/dev/null 2>&1; then
    needs_set ok "$(mvn -B -v 2>/dev/null | head -n1 | sed 's/\x1b\[[0-9;]*m//g; s/ (.*//')"
  elif "$NEEDS_ROOT/scripts/stack" fetch --check >/dev/null 2>&1; then
    needs_set skip "no mvn; not needed while the jars are cached"
  else
    needs_set missing "no mvn" "apt-get install maven" maven
  fi
}

need_kafka_jars() {
  local out
  # the stack answers for its own cache (the versions and markers are its own)
  if out=$("$NEEDS_ROOT/scripts/stack" fetch --check 2>&1); then
    needs_set ok "$(sed 's/^stack: //' <<<"$out" | paste -sd'|' - | sed 's/|/; /g')"
  else
    needs_set fetch "$(sed 's/^stack: //' <<<"$out" | paste -sd'|' - | sed 's/|/; /g')" "scripts/stack fetch (or the first scripts/stack up) downloads them"
  fi
}

# the binaries as scripts/stack finds them: CTA_PG_BIN, else the newest
# /usr/lib/postgresql/*/bin holding initdb and pg_ctl
need_postgres() {
  local d bin=
  if [[ -n ${CTA_PG_BIN:-} ]]; then
    bin=$CTA_PG_BIN
  else
    while IFS= read -r d; do
      [[ -x $d/initdb && -x $d/pg_ctl ]] && bin=$d
    done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V)
  fi
  if [[ -z $bin ]]; then
    needs_set missing "no initdb/pg_ctl in /usr/lib/postgresql/*/bin" "apt-get install postgresql (scripts/setup keeps its own cluster from starting)" postgresql
  elif [[ ! -x $bin/initdb || ! -x $bin/pg_ctl || ! -x $bin/psql || ! -x $bin/pg_isready ]]; then
    needs_set missing "$bin lacks initdb, pg_ctl, psql or pg_isready" "apt-get install postgresql, or point CTA_PG_BIN at a complete bin directory" postgresql
  else
    needs_set ok "$("$bin/postgres" --version 2>/dev/null || echo "$bin")"
  fi
}

# ---------------------------------------------------------------------- test ---
# python as scripts/pyenv uses it: CTA_PYTHON or python3; `-m venv` needs ensurepip, which
# Debian ships apart (python3-venv)
need_python() {
  local py=${CTA_PYTHON:-python3} v
  if ! command -v "$py" >/dev/null 2>&1; then
    needs_set missing "no $py" "apt-get install python3 python3-venv (or set CTA_PYTHON)" "python3 python3-venv"
    return
  fi
  v=$("$py" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null)
  if [[ -z $v ]] || ! version_ge "$v" 3.10; then
    needs_set wrong "Python ${v:-unknown} ($py)" "needs Python 3.10 or newer (set CTA_PYTHON)"
  elif ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    needs_set missing "Python $v without venv/ensurepip" "apt-get install python3-venv" python3-venv
  else
    needs_set ok "Python $v ($(command -v "$py"))"
  fi
}

need_py_clients() {
  if "$NEEDS_ROOT/scripts/pyenv" --check >/dev/null 2>&1; then
    needs_set ok "venv $NEEDS_CACHE_DIR/venv up to date with tests/python/requirements.txt"
  else
    needs_set fetch "venv missing or stale" "scripts/pyenv installs tests/python/requirements.txt (scripts/test runs it)"
  fi
}

need_node() {
  local node=${CTA_NODE:-node} v npm
  if ! command -v "$node" >/dev/null 2>&1; then
    needs_set missing "no $node" "apt-get install nodejs npm (or set CTA_NODE)" "nodejs npm"
    return
  fi
  v=$("$node" --version 2>/dev/null)
  if ! [[ ${v#v} =~ ^[0-9]+ ]] || ((${BASH_REMATCH[0]} < 18)); then
    needs_set wrong "Node.js ${v:-unknown}" "the browser test needs Node.js 18 or newer (set CTA_NODE)"
    return
  fi
  npm=$(dirname "$(readlink -f "$(command -v "$node")")")/npm
  [[ -x $npm ]] || npm=$(command -v npm 2>/dev/null) || npm=
  if [[ -z $npm ]]; then
    needs_set missing "Node.js $v, no npm" "apt-get install npm" npm
  else
    needs_set ok "Node.js $v, npm $("$npm" --version 2>/dev/null)"
  fi
}

need_browser_clients() {
  if "$NEEDS_ROOT/scripts/browser-env" --check >/dev/null 2>&1; then
    needs_set ok "puppeteer-core in $NEEDS_CACHE_DIR/browser up to date with tests/browser/package-lock.json"
  else
    needs_set fetch "not installed or stale" "scripts/browser-env installs tests/browser/package-lock.json (scripts/test runs it)"
  fi
}

# Chromium as scripts/browser-env finds it: CTA_CHROMIUM, else /usr/bin/chromium, else PATH
need_chromium() {
  local c=${CTA_CHROMIUM:-} v
  if [[ -n $c ]]; then
    [[ -x $c ]] || c=$(command -v "$c" 2>/dev/null) || c=
    if [[ -z $c ]]; then
      needs_set missing "CTA_CHROMIUM=$CTA_CHROMIUM not found" "point CTA_CHROMIUM at a Chromium binary, or unset it and apt-get install chromium" chromium
      return
    fi
  elif [[ -x /usr/bin/chromium ]]; then
    c=/usr/bin/chromium
  else
    c=$(command -v chromium 2>/dev/null) || c=
  fi
  if [[ -z $c ]]; then
    needs_set missing "no /usr/bin/chromium" "apt-get install chromium" chromium
    return
  fi
  v=$(timeout 30 "$c" --version 2>/dev/null | grep -m1 -i chrom || true)
  if [[ -n $v ]]; then
    needs_set ok "$v"
  else
    needs_set wrong "$c --version fails" "apt-get install --reinstall chromium" chromium
  fi
}

# -------------------------------------------------------------------- system ---
need_tools() {
  local t missing=() pkgs=()
  for t in flock setsid runuser timeout tail sort sha256sum; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
  done
  if ((${#missing[@]} == 0)); then
    needs_set ok "all present"
    return
  fi
  [[ " ${missing[*]} " == *" flock "* || " ${missing[*]} " == *" setsid "* || " ${missing[*]} " == *" runuser "* ]] && pkgs+=(util-linux)
  [[ " ${missing[*]} " == *" timeout "* || " ${missing[*]} " == *" tail "* || " ${missing[*]} " == *" sort "* || " ${missing[*]} " == *" sha256sum "* ]] && pkgs+=(coreutils)
  needs_set missing "no ${missing[*]}" "apt-get install ${pkgs[*]}" "${pkgs[*]}"
}

# port_in_use PORT: something accepts TCP connections on 127.0.0.1:PORT
port_in_use() {
  # shellcheck disable=SC2016  # expanded by the inner shell
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$1" 2>/dev/null
}

# The stack's ports may be served by the stack itself (fine) or by another program, which
# scripts/stack then uses as it is (fine if it is a Kafka or PostgreSQL you meant to use).
# The worker's ports must be free for scripts/run.
need_ports() {
  local status taken=() p svc
  status=$("$NEEDS_ROOT/scripts/stack" status 2>/dev/null || true)
  for p in "kafka:${CTA_KAFKA_PORT:-9092}" "kafka:${CTA_CONTROLLER_PORT:-9093}" "postgres:${CTA_PG_PORT:-5432}" "connect:${CTA_CONNECT_PORT:-8083}"; do
    svc=${p%%:*}
    port_in_use "${p#*:}" || continue
    grep -qE "^$svc +running \\(pid" <<<"$status" || taken+=("${p#*:} ($svc, not started by scripts/stack: used as it is)")
  done
  for p in 8081 8082 8888; do
    port_in_use "$p" && taken+=("$p (the worker's: a worker already running?)")
  done
  if ((${#taken[@]})); then
    needs_set warn "in use: ${taken[*]}" "stop what holds them (scripts/stack status; a running scripts/run), or move the worker: CTA_STREAM_WEB__BIND=127.0.0.1:9888"
  else
    needs_set ok "9092 9093 5432 8083 free or the stack's; 8081 8082 8888 free"
  fi
}

# A release build of cta-stream with its tests takes about 4 GB; the stack's data grows too.
need_disk() {
  local dir=${CARGO_TARGET_DIR:-$NEEDS_CACHE_DIR/target} avail
  while [[ ! -d $dir ]]; do dir=$(dirname "$dir"); done
  avail=$(df -Pk "$dir" 2>/dev/null | awk 'NR == 2 {print int($4 / 1048576)}')
  if [[ -z $avail ]]; then
    needs_set warn "cannot tell (df failed on $dir)" ""
  elif ((avail < 6)); then
    needs_set warn "$avail GB free at $dir" "the build needs about 6 GB: free some space or set CARGO_TARGET_DIR elsewhere"
  else
    needs_set ok "$avail GB free at $dir"
  fi
}

# needs_for PURPOSE: the groups a purpose needs (run: build + stack; test: everything)
needs_groups_for() {
  case $1 in
    run) echo "build stack system" ;;
    build) echo "build system" ;;
    test | all) echo "build stack test system" ;;
    *) return 1 ;;
  esac
}
