#!/usr/bin/env bash
# Validates docker-compose.yml without Docker.
#
#   tests/compose/validate.sh [COMPOSE_FILE]      (default: docker-compose.yml at the repo root)
#
# 1. Parses the file as YAML (duplicate keys are an error, as in `docker compose`), applies
#    Compose interpolation (`$$`, `${VAR:-default}`; a variable without a default is an error,
#    the file must be self-contained) and validates the result against the Compose
#    Specification JSON schema vendored next to this script (compose-spec.json).
# 2. Asserts the project's facts: the six services, their host ports, one Confluent Platform
#    version for every cp image, PostgreSQL's credentials and seeding (the init SQL COPYs
#    /data/cta_stations.csv into table stations and creates publication cta_stations), KRaft
#    settings, the JDBC connector install, healthchecks and `depends_on: condition:
#    service_healthy`.
# 3. When a Compose v2 CLI is at hand (`docker compose`, or `docker-compose` v2, or the command
#    named by CTA_COMPOSE_CLI), also runs `<cli> -f FILE config -q` (no engine needed).
#    CTA_COMPOSE_CLI=off skips it. Without a CLI the step is reported as skipped.
#
# Prints one line per check and a closing "compose: N passed, N failed" line; exits 0 when all
# checks pass, 1 when one fails, 2 when the tools could not be set up.
#
# Tools: Python's `jsonschema` and `PyYAML`, pinned below, installed on first use into a venv
# outside the repository: ${CTA_CACHE_DIR:-$HOME/.cache/cta-stream}/venv-compose. Needs python3
# (>= 3.9; set PYTHON to choose another interpreter) and the Python package index on first run.
#
# compose-spec.json is schema/compose-spec.json of the Go module
# github.com/compose-spec/compose-go/v2 at v2.16.2 (the loader that `docker compose` uses;
# sha256 f266dcbb043229405d7cedd5aec918f9102c2b3d5e3850808fdd8edd564a43ff), copied unchanged.
# It is Apache-2.0, "Copyright 2020 The Compose Specification Authors". To update it:
#   go mod download -json github.com/compose-spec/compose-go/v2@<version>   # prints "Dir"
#   cp <Dir>/schema/compose-spec.json tests/compose/compose-spec.json
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
FILE="${1:-$ROOT/docker-compose.yml}"
SCHEMA="$HERE/compose-spec.json"
CACHE_DIR="${CTA_CACHE_DIR:-$HOME/.cache/cta-stream}"
VENV="$CACHE_DIR/venv-compose"
PYTHON="${PYTHON:-python3}"
REQUIREMENTS=(jsonschema==4.26.0 PyYAML==6.0.3)

if [ ! -f "$FILE" ]; then
  echo "validate.sh: no such file: $FILE" >&2
  exit 2
fi
if [ ! -f "$SCHEMA" ]; then
  echo "validate.sh: the vendored schema is missing: $SCHEMA" >&2
  exit 2
fi

# --- tools ---------------------------------------------------------------------------------
stamp="$VENV/.cta-requirements"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${REQUIREMENTS[*]}" ]; then
  echo "validate.sh: setting up $VENV (${REQUIREMENTS[*]})"
  if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "validate.sh: $PYTHON not found (set PYTHON=/path/to/python3)" >&2
    exit 2
  fi
  rm -rf "$VENV"
  mkdir -p "$CACHE_DIR"
  log="$(mktemp)"
  if ! { "$PYTHON" -m venv "$VENV" &&
         "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
           "${REQUIREMENTS[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    rm -rf "$VENV"
    echo "validate.sh: could not install ${REQUIREMENTS[*]} into $VENV" >&2
    exit 2
  fi
  rm -f "$log"
  printf '%s' "${REQUIREMENTS[*]}" >"$stamp"
fi

# --- optional: a real Compose CLI ----------------------------------------------------------
cli_status="skipped"
cli_label="no Compose v2 CLI found (docker compose / docker-compose v2 / CTA_COMPOSE_CLI)"
cli_out="$(mktemp)"
trap 'rm -f "$cli_out"' EXIT
cli=()
if [ "${CTA_COMPOSE_CLI:-}" = "off" ]; then
  cli_label="disabled by CTA_COMPOSE_CLI=off"
elif [ -n "${CTA_COMPOSE_CLI:-}" ]; then
  read -r -a cli <<<"$CTA_COMPOSE_CLI"
elif command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
  cli=(docker compose)
elif command -v docker-compose >/dev/null 2>&1 &&
     docker-compose version --short 2>/dev/null | grep -q '^v\?2\.'; then
  cli=(docker-compose)
fi
if [ "${#cli[@]}" -gt 0 ]; then
  version="$("${cli[@]}" version --short 2>/dev/null || true)"
  cli_label="${cli[*]} ${version:-(version unknown)}: config -q"
  if "${cli[@]}" -f "$FILE" config -q >"$cli_out" 2>&1; then
    cli_status="ok"
  else
    cli_status="fail"
  fi
fi

# --- schema + project facts ----------------------------------------------------------------
"$VENV/bin/python" - "$FILE" "$SCHEMA" "$cli_status" "$cli_label" "$cli_out" <<'PY'
import json
import os
import re
import sys

import jsonschema
import yaml

compose_path, schema_path, cli_status, cli_label, cli_out_path = sys.argv[1:6]
project_dir = os.path.dirname(os.path.abspath(compose_path))

results = []  # (status, name, details)


def check(name, problems, skipped=False):
    """Record one check: `problems` is a list of strings, empty when the check passes."""
    if skipped:
        results.append(("skip", name, problems))
    else:
        results.append(("ok" if not problems else "FAIL", name, problems))


# --- YAML, with duplicate keys refused -----------------------------------------------------
class StrictLoader(yaml.SafeLoader):
    pass


def construct_mapping(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f"duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)

try:
    with open(compose_path, encoding="utf-8") as f:
        raw = yaml.load(f, Loader=StrictLoader)
    yaml_problems = [] if isinstance(raw, dict) else ["top level is not a mapping"]
except yaml.YAMLError as e:
    raw, yaml_problems = None, [str(e)]
check("YAML parses (no duplicate keys)", yaml_problems)

# --- interpolation -------------------------------------------------------------------------
VAR = re.compile(r"\$(?:(\$)|\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
interp_problems = []


def interpolate(value, path):
    if isinstance(value, dict):
        return {k: interpolate(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def repl(m):
        if m.group(1):
            return "$"
        expr = m.group(2) if m.group(2) is not None else m.group(3)
        for sep in (":-", "-"):
            name, found, default = expr.partition(sep)
            if found and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                return default
        interp_problems.append(f"{path}: {m.group(0)} has no default; write $$ for a literal $")
        return ""

    return VAR.sub(repl, value)


if raw is not None and not yaml_problems:
    doc = interpolate(raw, "")
    check("interpolation: every variable has a default", interp_problems)
else:
    doc = None

# --- Compose Specification schema ----------------------------------------------------------
if doc is not None:
    with open(schema_path, encoding="utf-8") as f:
        schema = json.load(f)
    validator_cls = jsonschema.validators.validator_for(schema)
    validator = validator_cls(schema, format_checker=validator_cls.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    problems = []
    for e in errors:
        where = "/".join(map(str, e.absolute_path)) or "(top level)"
        problems.append(f"{where}: {e.message}")
    check(f"Compose Specification schema ({os.path.basename(schema_path)})", problems)
else:
    check("Compose Specification schema", ["not run: the file did not parse"], skipped=True)

# --- CLI result (run by the shell part) ----------------------------------------------------
try:
    with open(cli_out_path, encoding="utf-8", errors="replace") as f:
        cli_output = [line.rstrip() for line in f if line.strip()]
except OSError:
    cli_output = []
if cli_status == "skipped":
    check(f"compose CLI ({cli_label})", [], skipped=True)
else:
    check(f"compose CLI ({cli_label})", (cli_output or ["failed"]) if cli_status == "fail" else [])



def report():
    print(f"compose file: {compose_path}")
    for status, name, details in results:
        print(f"  {status:<4} {name}")
        for d in details:
            first, *rest = str(d).splitlines() or [""]
            print(f"         - {first}")
            for line in rest:
                print(f"           {line}")
    passed = sum(1 for r in results if r[0] == "ok")
    failed = sum(1 for r in results if r[0] == "FAIL")
    skipped = sum(1 for r in results if r[0] == "skip")
    print("RESULT: " + ("PASS" if failed == 0 else "FAIL"))
    print(f"compose: {passed} passed, {failed} failed, {skipped} skipped")
    sys.exit(1 if failed else 0)


if not isinstance(doc, dict):
    check("project facts", ["not checked: the file did not parse"], skipped=True)
    report()

# --- project facts -------------------------------------------------------------------------
EXPECTED_PORTS = {
    "kafka": 9092,
    "schema-registry": 8081,
    "rest-proxy": 8082,
    "connect": 8083,
    "ksqldb-server": 8088,
    "postgres": 5432,
}
EXPECTED_IMAGES = {
    "kafka": "confluentinc/cp-kafka",
    "schema-registry": "confluentinc/cp-schema-registry",
    "rest-proxy": "confluentinc/cp-kafka-rest",
    "connect": "confluentinc/cp-kafka-connect",
    "ksqldb-server": "confluentinc/cp-ksqldb-server",
    "postgres": "postgres",
}


def env_of(svc):
    env = svc.get("environment") or {}
    if isinstance(env, list):
        out = {}
        for item in env:
            k, _, v = str(item).partition("=")
            out[k] = v
        return out
    return {k: ("" if v is None else str(v)) for k, v in env.items()}


def split_image(image):
    name, tag = image, None
    if "@" in name:
        name = name.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    return name, tag


def host_ports(svc):
    """Published host ports of a service (short and long syntax)."""
    out = set()
    for p in svc.get("ports") or []:
        if isinstance(p, dict):
            pub = p.get("published")
            spec = str(pub) if pub is not None else ""
        else:
            s = str(p).split("/", 1)[0]
            if s.startswith("["):  # [ipv6]:host:container
                s = s.split("]:", 1)[1] if "]:" in s else s
            parts = s.split(":")
            spec = parts[-2] if len(parts) >= 2 else ""
        if not spec:
            continue
        lo, _, hi = spec.partition("-")
        try:
            out.update(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            out.add(spec)
    return out


def command_text(svc):
    cmd = svc.get("command")
    if isinstance(cmd, list):
        return " ".join(map(str, cmd))
    return str(cmd or "")


def volume_pairs(svc):
    pairs = []
    for v in svc.get("volumes") or []:
        if isinstance(v, dict):
            pairs.append((str(v.get("source", "")), str(v.get("target", "")),
                          bool(v.get("read_only"))))
        else:
            parts = str(v).split(":")
            src = parts[0]
            tgt = parts[1] if len(parts) > 1 else ""
            mode = parts[2] if len(parts) > 2 else ""
            pairs.append((src, tgt, "ro" in mode.split(",")))
    return pairs


def norm(path):
    return os.path.normpath(path.rstrip("/")) if path else path


services = doc.get("services") or {}
if not isinstance(services, dict):
    services = {}

missing = [s for s in EXPECTED_PORTS if s not in services]
check("services: " + ", ".join(EXPECTED_PORTS),
      [f"missing service {s!r}" for s in missing])

zk = [n for n, s in services.items()
      if "zookeeper" in n.lower() or "zookeeper" in str(s.get("image", "")).lower()]
check("KRaft: no ZooKeeper service", [f"service {n!r} is ZooKeeper" for n in zk])

# Host ports
problems = []
owners = {}
for name, svc in services.items():
    for port in host_ports(svc):
        owners.setdefault(port, []).append(name)
for name, port in EXPECTED_PORTS.items():
    if name not in services:
        continue
    got = host_ports(services[name])
    if got != {port}:
        problems.append(f"{name}: host ports {sorted(map(str, got))}, expected ['{port}']")
for port, names in owners.items():
    if len(names) > 1:
        problems.append(f"host port {port} published by {', '.join(names)}")
check("host ports " + ", ".join(f"{n}={p}" for n, p in EXPECTED_PORTS.items()), problems)

# Images
problems = []
cp_tags = {}
for name, svc in services.items():
    image = str(svc.get("image", ""))
    repo, tag = split_image(image)
    if name in EXPECTED_IMAGES and repo != EXPECTED_IMAGES[name]:
        problems.append(f"{name}: image {image!r}, expected {EXPECTED_IMAGES[name]}:<tag>")
    if repo.startswith("confluentinc/cp-"):
        cp_tags[name] = tag
        if not tag or not re.fullmatch(r"\d+\.\d+\.\d+", tag):
            problems.append(f"{name}: {image!r} is not pinned to an x.y.z version")
if len(set(cp_tags.values())) > 1:
    problems.append("Confluent images differ in version: "
                    + ", ".join(f"{n}={t}" for n, t in sorted(cp_tags.items())))
versions = set(cp_tags.values())
if len(versions) == 1:
    (cp_version,) = versions
    if cp_version and not re.match(r"(7\.9|8\.\d+)\.", cp_version):
        problems.append(f"Confluent Platform {cp_version}: expected 7.9.x or 8.x")
else:
    cp_version = None
pg_repo, pg_tag = split_image(str(services.get("postgres", {}).get("image", "")))
if pg_repo == "postgres" and not (pg_tag == "16" or str(pg_tag).startswith("16.")):
    problems.append(f"postgres: tag {pg_tag!r}, expected 16 or 16.x")
check(f"images pinned, one Confluent Platform version ({cp_version or '?'})", problems)

# PostgreSQL
problems = []
pg = services.get("postgres")
if pg is not None:
    env = env_of(pg)
    for key, want in (("POSTGRES_USER", "cta_admin"), ("POSTGRES_PASSWORD", "chicago"),
                      ("POSTGRES_DB", "cta")):
        if env.get(key) != want:
            problems.append(f"postgres: {key}={env.get(key)!r}, expected {want!r}")
    if "wal_level=logical" not in command_text(pg):
        problems.append("postgres: command lacks `-c wal_level=logical`")
    vols = {norm(t): (norm(s), ro) for s, t, ro in volume_pairs(pg)}
    for target, source, want_ro in (("/docker-entrypoint-initdb.d", "./scripts/postgres-init", True),
                                    ("/data", "./data", True)):
        got = vols.get(target)
        if got is None or got[0] != norm(source):
            problems.append(f"postgres: expected volume {source}:{target}"
                            + (":ro" if want_ro else ""))
        elif want_ro and not got[1]:
            problems.append(f"postgres: volume {source}:{target} should be read-only (:ro)")
    init_dir = os.path.join(project_dir, "scripts", "postgres-init")
    sql = sorted(f for f in os.listdir(init_dir) if f.endswith(".sql")) \
        if os.path.isdir(init_dir) else []
    if not sql:
        problems.append(f"no *.sql init script in {init_dir}")
    csv_path = os.path.join(project_dir, "data", "cta_stations.csv")
    if not os.path.isfile(csv_path):
        problems.append(f"missing {csv_path} (read by the init script as /data/cta_stations.csv)")
    texts = {}
    for f in sql:
        text = texts[f] = open(os.path.join(init_dir, f), encoding="utf-8").read()
        if "/data/" in text and "/data/cta_stations.csv" not in text:
            problems.append(f"{f}: reads a file under /data other than cta_stations.csv")
    # The same scripts serve scripts/stack (CSV on psql's stdin); in the container the server
    # reads the mounted file, and the table + publication must come from them.
    if sql and not any(re.search(r"\bCOPY\b[^;]*\bFROM\s+'/data/cta_stations\.csv'", t, re.I)
                       for t in texts.values()):
        problems.append("no init script COPYs FROM '/data/cta_stations.csv'")
    if sql and not any(re.search(r"CREATE\s+TABLE\s+(IF\s+NOT\s+EXISTS\s+)?stations\b", t, re.I)
                       for t in texts.values()):
        problems.append("no init script creates table stations")
    if sql and not any(re.search(r"CREATE\s+PUBLICATION\s+cta_stations\s+FOR\s+TABLE\s+stations\b",
                                 t, re.I) for t in texts.values()):
        problems.append("no init script creates publication cta_stations FOR TABLE stations")
check("postgres: cta_admin/chicago/cta, wal_level=logical, init script (stations, publication "
      "cta_stations) + data mounted",
      problems, skipped=pg is None)

# Kafka (KRaft, listeners, single-node settings)
problems = []
kafka = services.get("kafka")
if kafka is not None:
    env = env_of(kafka)
    roles = {r.strip() for r in env.get("KAFKA_PROCESS_ROLES", "").split(",")}
    if not {"broker", "controller"} <= roles:
        problems.append(f"KAFKA_PROCESS_ROLES={env.get('KAFKA_PROCESS_ROLES')!r}, "
                        "expected broker,controller")
    if not env.get("CLUSTER_ID"):
        problems.append("CLUSTER_ID is not set")
    if "KAFKA_ZOOKEEPER_CONNECT" in env:
        problems.append("KAFKA_ZOOKEEPER_CONNECT is set (KRaft takes none)")
    advertised = {a.split("://", 1)[-1] for a in env.get("KAFKA_ADVERTISED_LISTENERS", "").split(",")}
    for addr in ("127.0.0.1:9092", "kafka:29092"):
        if addr not in advertised:
            problems.append(f"KAFKA_ADVERTISED_LISTENERS lacks {addr}")
    for key, want in (("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1"),
                      ("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1"),
                      ("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1"),
                      ("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")):
        if env.get(key) != want:
            problems.append(f"{key}={env.get(key)!r}, expected {want!r}")
check("kafka: KRaft broker+controller, listeners 127.0.0.1:9092 and kafka:29092, RFs 1",
      problems, skipped=kafka is None)

# Connect
problems = []
connect = services.get("connect")
if connect is not None:
    env = env_of(connect)
    cmd = command_text(connect)
    if not re.search(r"confluent-hub install --no-prompt .*confluentinc/kafka-connect-jdbc:10\.8\.\d+",
                     cmd):
        problems.append("command does not run `confluent-hub install --no-prompt "
                        "confluentinc/kafka-connect-jdbc:10.8.x`")
    if "/etc/confluent/docker/run" not in cmd:
        problems.append("command does not launch /etc/confluent/docker/run")
    for kind in ("CONFIG", "OFFSET", "STATUS"):
        key = f"CONNECT_{kind}_STORAGE_REPLICATION_FACTOR"
        if env.get(key) != "1":
            problems.append(f"{key}={env.get(key)!r}, expected '1'")
        if not env.get(f"CONNECT_{kind}_STORAGE_TOPIC"):
            problems.append(f"CONNECT_{kind}_STORAGE_TOPIC is not set")
    for key in ("CONNECT_KEY_CONVERTER", "CONNECT_VALUE_CONVERTER"):
        if env.get(key) != "org.apache.kafka.connect.json.JsonConverter":
            problems.append(f"{key}={env.get(key)!r}, expected the JsonConverter")
    if "confluent-hub-components" not in env.get("CONNECT_PLUGIN_PATH", ""):
        problems.append("CONNECT_PLUGIN_PATH does not include the confluent-hub components dir")
check("connect: JDBC source 10.8.x installed at start, JSON converters, storage RFs 1",
      problems, skipped=connect is None)

# Healthchecks and depends_on
problems = []
for name in EXPECTED_PORTS:
    svc = services.get(name)
    if svc is None:
        continue
    hc = svc.get("healthcheck")
    if not hc or hc.get("disable") or not hc.get("test") or hc.get("test") == ["NONE"]:
        problems.append(f"{name}: no healthcheck")
for name, svc in services.items():
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        problems.append(f"{name}: depends_on is a list; use `condition: service_healthy`")
        deps = {d: {} for d in deps}
    for dep, spec in deps.items():
        if dep not in services:
            problems.append(f"{name}: depends_on unknown service {dep!r}")
            continue
        if (spec or {}).get("condition") != "service_healthy":
            problems.append(f"{name}: depends_on {dep} without condition: service_healthy")
        elif not (services[dep].get("healthcheck") or {}).get("test"):
            problems.append(f"{name}: waits for {dep} to be healthy, but {dep} has no healthcheck")
check("healthchecks on all six; depends_on uses service_healthy", problems)

report()
PY
