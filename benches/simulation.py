#!/usr/bin/env python3
"""Helper of benches/simulation.sh (standard library only, Python 3.11+).

  settings  write a worker settings file for one benchmark run, derived from settings.toml
  ports     print N free TCP ports on 127.0.0.1
  wait      wait until a worker's /health says every CTA agent runs
  sample    sample /health once a second for a fixed time (JSON lines)
  report    print the summary of the runs

The settings file of a run is settings.toml with: its own app id (hence consumer groups
`<id>-<agent>`), its own topics (clock, arrivals, turnstiles, weather, schemas; all named
`<id>.…`), its own ports, state directory and clock speed-up, a pinned clock start, absolute
paths (the file lives in a temporary directory), and nothing but the four agents of the
simulation (no tables, connectors, ksqlDB statements, web views or other agents).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import os
import random
import re
import socket
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

SIM_AGENTS = ("cta_clock", "cta_trains", "cta_turnstiles", "cta_weather")
PRODUCERS = ("cta_trains", "cta_turnstiles", "cta_weather")
# Sections of settings.toml a run keeps (topics and agents are rebuilt).
KEEP_SECTIONS = ("app", "web", "services", "embedded", "kafka", "topic_defaults", "store")


# --------------------------------------------------------------------------- settings


def toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    raise TypeError(f"cannot write {v!r} as TOML")


def toml_dump(d: dict, path: tuple[str, ...] = ()) -> str:
    """Tables as [a."b.c".d] headers, values of a table before its sub-tables."""
    out = []
    scalars = {k: v for k, v in d.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in d.items() if isinstance(v, dict)}
    if path and (scalars or not tables):
        out.append("[" + ".".join(toml_key(p) for p in path) + "]")
    for k, v in scalars.items():
        out.append(f"{toml_key(k)} = {toml_value(v)}")
    if out:
        out.append("")
    for k, v in tables.items():
        out.append(toml_dump(v, path + (k,)))
    return "\n".join(out)


def cmd_settings(a) -> None:
    repo = Path(a.repo).resolve()
    src = Path(a.src).resolve()
    with open(src, "rb") as f:
        s = tomllib.load(f)
    # Only what the simulation needs: no tables, connectors, ksqlDB statements or other
    # agents (a benchmark must not create connectors or touch other topics).
    orig, s = s, {k: v for k, v in s.items() if k in KEEP_SECTIONS}
    rid = a.app_id
    t_clock, t_turn, t_weather = f"{rid}.clock", f"{rid}.turnstile", f"{rid}.weather"
    arrivals = f"{rid}.arrivals."

    def absolute(p: str) -> str:
        return str(Path(p) if Path(p).is_absolute() else (src.parent / p))

    app = s.setdefault("app", {})
    app["id"] = rid
    app["state_dir"] = str(Path(a.state_dir).resolve())
    if a.broker:
        app["broker"] = a.broker
    if a.guarantee:
        app["processing_guarantee"] = a.guarantee
    app.pop("transactional_id", None)  # the default, <app-id>-<host>-<web port>, is unique
    s.setdefault("web", {})["bind"] = f"127.0.0.1:{a.web_port}"
    s["web"]["enabled"] = True
    s["web"].pop("views", None)  # pages over tables and agents a run does not have
    emb = s.setdefault("embedded", {})
    emb["schema_registry"] = f"127.0.0.1:{a.sr_port}"
    emb["rest_proxy"] = f"127.0.0.1:{a.rp_port}"
    emb["schemas_topic"] = f"{rid}._schemas"
    svc = s.setdefault("services", {})
    svc["schema_registry"] = ""  # the embedded ones
    svc["rest_proxy"] = ""

    # Topics: the simulation's own, with their codecs and schemas (absolute paths).
    topics = orig.get("topics", {})
    arr_conf = next((v for k, v in topics.items() if k.startswith("org.chicago.cta.station.arrivals")), None)
    turn_conf = topics.get("org.chicago.cta.turnstile.v1")
    if arr_conf is None or turn_conf is None:
        sys.exit("simulation.py: settings.toml has no [topics] entry for the arrivals or the turnstile topic")
    new_topics = {}
    for name, conf in ((arrivals + "*", arr_conf), (t_turn, turn_conf)):
        conf = dict(conf)
        for k in ("key_schema", "value_schema"):
            if k in conf:
                conf[k] = absolute(conf[k])
        new_topics[name] = conf
    s["topics"] = new_topics

    agents = orig.get("agents", {})
    missing = [n for n in SIM_AGENTS if n not in agents]
    if missing:
        sys.exit(f"simulation.py: settings.toml has no agent {', '.join(missing)}")
    agents = s["agents"] = {n: agents[n] for n in SIM_AGENTS}
    for name, ag in agents.items():
        ag["enabled"] = True
        params = ag.setdefault("params", {})
        if name == "cta_clock":
            ag.setdefault("source", {})["speedup"] = a.speedup
            ag["sinks"] = [t_clock]
            params["start"] = a.start
            continue
        ag["source"] = {"topics": [t_clock]}
        if name in ("cta_trains", "cta_turnstiles"):
            params["data_dir"] = absolute(params.get("data_dir", "data"))
        if name == "cta_trains":
            params["arrivals_prefix"] = arrivals
        if name == "cta_turnstiles":
            ag["sinks"] = [t_turn]
        if name == "cta_weather":
            params["topic"] = t_weather
            params["key_schema"] = absolute(params.get("key_schema", "schemas/weather_key.json"))
            params["value_schema"] = absolute(params.get("value_schema", "schemas/weather_value.json"))
    timer = agents["cta_clock"].get("source", {}).get("timer", "5s")
    Path(a.out).write_text(f"# generated by benches/simulation.py from {src}\n\n" + toml_dump(s))
    json.dump(
        {
            "app_id": rid,
            "clock_topic": t_clock,
            "turnstile_topic": t_turn,
            "weather_topic": t_weather,
            "arrivals_prefix": arrivals,
            "speedup": a.speedup,
            "timer": timer,
            "start": a.start,
            "groups": [f"{rid}-{n}" for n in PRODUCERS],
            "data_dir": agents["cta_turnstiles"]["params"]["data_dir"],
            "step": agents["cta_clock"].get("params", {}).get("step", "5m"),
            "guarantee": app.get("processing_guarantee", "at_least_once"),
            "commit_interval": app.get("commit_interval", "1s"),
        },
        open(Path(a.out).with_suffix(".json"), "w"),
        indent=1,
    )


# --------------------------------------------------------------------------- ports / health


def cmd_ports(a) -> None:
    socks = []
    for _ in range(a.n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    print(" ".join(str(s.getsockname()[1]) for s in socks))
    for s in socks:
        s.close()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def get_health(url: str, timeout: float = 0.9):
    """(http code, body as JSON) or (None, error text)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.load(e)
        except Exception:  # noqa: BLE001
            return e.code, None
    except Exception as e:  # noqa: BLE001
        return None, str(e)


def all_running(body) -> bool:
    if not isinstance(body, dict) or body.get("status") != "ok":
        return False
    ags = body.get("agents", {})
    return all(ags.get(n, {}).get("state") == "running" for n in SIM_AGENTS)


def cmd_wait(a) -> None:
    deadline = time.monotonic() + a.timeout
    last = None
    while time.monotonic() < deadline:
        if not alive(a.pid):
            sys.exit(f"the worker (pid {a.pid}) exited before it became healthy")
        code, body = get_health(a.url)
        last = (code, body)
        if code == 200 and all_running(body):
            return
        time.sleep(0.2)
    code, body = last or (None, None)
    if isinstance(body, dict):
        why = "; ".join(body.get("reasons") or [])
        for n, st in body.get("agents", {}).items():
            if n in SIM_AGENTS and st.get("state") != "running":
                fail = (st.get("last_failure") or {}).get("error", "")
                why += f"; {n} is {st.get('state')}" + (f" (last failure: {fail})" if fail else "")
    else:
        why = f"no answer from {a.url}: {body}"
    sys.exit(f"the worker did not become healthy within {a.timeout:.0f} s (HTTP {code}): {why.strip('; ')}")


def cmd_sample(a) -> None:
    # Each sample is taken at a random offset (±jitter) from its whole second: samples
    # at a fixed phase would lock onto periodic work (the 1 s commit cycle, exactly-once
    # transactions) and see always the same moment of it.
    rnd = random.Random()
    t0 = time.monotonic()
    n = 0
    with open(a.out, "w") as out:
        while True:
            target = t0 + n * a.interval + (rnd.uniform(-a.jitter, a.jitter) if n else 0.0)
            now = time.monotonic()
            if target > now:
                time.sleep(target - now)
            if not alive(a.pid):
                sys.exit(f"the worker (pid {a.pid}) died during the run, {time.monotonic() - t0:.1f} s in")
            t = time.monotonic() - t0
            code, body = get_health(a.url, timeout=min(0.9, a.interval))
            rec = {"t": round(t, 3), "wall_ms": int(time.time() * 1000), "code": code}
            if isinstance(body, dict):
                rec["status"] = body.get("status")
                rec["reasons"] = body.get("reasons")
                rec["in_flight"] = body.get("producer", {}).get("in_flight")
                rec["agents"] = {
                    name: {k: st.get(k) for k in
                           ("state", "events_in", "events_out", "restarts", "failures",
                            "delivery_errors", "rewinds", "skipped")}
                    for name, st in body.get("agents", {}).items() if name in SIM_AGENTS
                }
            else:
                rec["error"] = body
            out.write(json.dumps(rec) + "\n")
            out.flush()
            n += 1
            if n * a.interval > a.duration + 1e-9:
                break


# --------------------------------------------------------------------------- model


def load_model(data_dir: str):
    """Turnstile stations per line (station_id once per line) and the model's inputs."""
    d = Path(data_dir)

    def rows(name):
        with open(d / name, newline="") as f:
            return list(csv.DictReader(line for line in f if not line.startswith("#")))

    stops = rows("cta_stations.csv")
    lines = []
    for color in ("blue", "red", "green"):
        seen, ids = set(), []
        for s in sorted((s for s in stops if s[color].strip().upper() == "TRUE"), key=lambda s: int(s["order"])):
            sid = int(s["station_id"])
            if sid not in seen:
                seen.add(sid)
                ids.append(sid)
        lines.append(ids)
    rider = {int(r["station_id"]): (int(r["weekday"]), int(r["saturday"]), int(r["sunday_holiday"]))
             for r in rows("ridership.csv")}
    hourly = [0.0] * 24
    for r in rows("ridership_curve.csv"):
        hourly[int(r["hour"])] = float(r["ratio"])
    return lines, rider, hourly


def parse_start(s: str) -> int:
    s = s.strip()
    if s.lower() == "today":
        d = dt.datetime.now(dt.timezone.utc).date()
        return int(dt.datetime(d.year, d.month, d.day, tzinfo=dt.timezone.utc).timestamp() * 1000)
    try:
        t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        t = dt.datetime.strptime(s, "%Y-%m-%d")
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return int(t.timestamp() * 1000)


def parse_duration_ms(s: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)\s*", s)
    if not m:
        raise ValueError(f"cannot read the duration {s!r}")
    return int(float(m.group(1)) * {"ms": 1, "s": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000}[m.group(2)])


class Model:
    """Expected turnstile entries per step: Σ over turnstiles of E[max(0, base + U)],
    U uniform on −5..4, base = floor(daily × hourly share ÷ steps per hour)."""

    def __init__(self, meta):
        self.lines, self.rider, self.hourly = load_model(meta["data_dir"])
        self.start_ms = parse_start(meta["start"])
        self.step_ms = parse_duration_ms(meta["step"])
        self.steps_per_hour = max(1, 3_600_000 // max(1, self.step_ms))
        self._cache = {}

    def sim_time(self, step: int) -> int:
        return self.start_ms + step * self.step_ms

    def turnstile(self, step: int) -> float:
        t = self.sim_time(step)
        day = t // 86_400_000
        kind = {5: 1, 6: 2}.get((day + 3) % 7, 0)
        hour = (t % 86_400_000) // 3_600_000
        key = (kind, hour)
        if key not in self._cache:
            total = 0.0
            for ids in self.lines:
                for sid in ids:
                    r = self.rider.get(sid)
                    if r is None:
                        continue
                    base = math.floor(r[kind] * self.hourly[hour] / self.steps_per_hour)
                    total += sum(max(0, base + u) for u in range(-5, 5)) / 10
            self._cache[key] = total
        return self._cache[key]

    def turnstile_between(self, a: int, b: int) -> float:
        return sum(self.turnstile(i) for i in range(a, b))

    def hours_between(self, a: int, b: int) -> int:
        """Simulated hours that start within steps a..b-1 (weather posts)."""
        h = 3_600_000
        return sum(1 for i in range(a, b)
                   if self.sim_time(i) % h == 0 or self.sim_time(i) // h != (self.sim_time(i) + self.step_ms - 1) // h)


# --------------------------------------------------------------------------- report


def read_samples(path: Path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def parse_groups(text: str):
    """consumer-groups --describe output → {group: (committed, end, lag)} (summed)."""
    out = {}
    for line in text.splitlines():
        p = line.split()
        if len(p) >= 6 and p[0] != "GROUP" and p[2].isdigit():
            committed = int(p[3]) if p[3].isdigit() else None
            end = int(p[4]) if p[4].isdigit() else None
            g = out.setdefault(p[0], [0, 0, 0, True])
            g[0] += committed or 0
            g[1] += end or 0
            if committed is None or end is None:
                g[3] = False
            else:
                g[2] += end - committed
    return out


def fmt_int(x) -> str:
    return "-" if x is None else f"{x:,.0f}"


def fmt(x, nd=2) -> str:
    return "-" if x is None else f"{x:,.{nd}f}"


def analyse(rdir: Path):
    meta = json.load(open(rdir / "settings.json"))
    samples = read_samples(rdir / "samples.jsonl")
    good = [s for s in samples if "agents" in s and "cta_clock" in s["agents"]]
    if len(good) < 2:
        raise SystemExit(f"run {rdir.name}: fewer than two /health samples")
    # The window runs from the sample before the first new clock tick to the sample before
    # the last one: at ×1 (a tick every 5 s, samples every 1 s) both ends are then at the
    # same phase, whole steps apart, and between steps (a step's events take well under a
    # second), so the counts are exact; at high speed-ups it is the whole run but its end.
    ticks_at = [s["agents"]["cta_clock"]["events_out"] or 0 for s in good]
    changes = [i for i in range(1, len(good)) if ticks_at[i] > ticks_at[i - 1]]
    if len(changes) >= 2:
        good = good[changes[0] - 1:changes[-1]]
    first, last = good[0], good[-1]
    T = last["t"] - first["t"]

    def delta(agent, counter):
        return (last["agents"].get(agent, {}).get(counter) or 0) - (first["agents"].get(agent, {}).get(counter) or 0)

    timer_s = parse_duration_ms(meta["timer"]) / 1000
    speedup = float(meta["speedup"])
    target = speedup / timer_s
    ticks = delta("cta_clock", "events_out")
    steps_s = ticks / T if T else None
    # The clock's rate from its own ticks on the clock topic (emission times, ms): exact,
    # whatever the sampling; and the timer firings it skipped (gaps of 2+ intervals).
    clock = []
    if (rdir / "clock.txt").exists():
        for line in (rdir / "clock.txt").read_text().splitlines():
            if line.startswith("{"):
                try:
                    clock.append(json.loads(line))
                except ValueError:
                    pass
    clock.sort(key=lambda x: x["step"])
    interval_ms = 1000 / target
    gaps = [b["emitted_ms"] - a["emitted_ms"] for a, b in zip(clock, clock[1:])]
    tick_skips = sum(max(0, round(g / interval_ms) - 1) for g in gaps)
    tick_gap_max = max(gaps) if gaps else None
    in_window = [x["emitted_ms"] for x in clock if first["wall_ms"] <= x["emitted_ms"] <= last["wall_ms"]]
    if len(in_window) >= 3:
        steps_s = (len(in_window) - 1) / ((in_window[-1] - in_window[0]) / 1000)
    trains_in, trains_out = delta("cta_trains", "events_in"), delta("cta_trains", "events_out")
    turn_in, turn_out = delta("cta_turnstiles", "events_in"), delta("cta_turnstiles", "events_out")
    weather_in = delta("cta_weather", "events_in")
    events = trains_out + turn_out

    # Producer in-flight over the first and the last third of the window.
    def third(lo, hi):
        xs = [s["in_flight"] for s in good if lo <= s["t"] - first["t"] <= hi and s.get("in_flight") is not None]
        return (sum(xs) / len(xs) if xs else None, max(xs) if xs else None)

    f_mean, f_max = third(0, T / 3)
    l_mean, l_max = third(2 * T / 3, T)
    all_if = [s["in_flight"] for s in good if s.get("in_flight") is not None]
    peak = max((s for s in good if s.get("in_flight") is not None), key=lambda s: s["in_flight"], default=None)

    # How far the producers trail the clock, in steps (ticks emitted − ticks taken by the
    # slowest producer agent), per sample.
    def behind_of(s):
        return max(s["agents"]["cta_clock"]["events_out"] - (s["agents"].get(a, {}).get("events_in") or 0)
                   for a in PRODUCERS)

    def behind_third(lo, hi):
        xs = [behind_of(s) for s in good if lo <= s["t"] - first["t"] <= hi]
        return (sum(xs) / len(xs) if xs else None, max(xs) if xs else None)

    behind = {a: (last["agents"]["cta_clock"]["events_out"] - (last["agents"].get(a, {}).get("events_in") or 0))
              for a in PRODUCERS}
    behind_first, behind_last = behind_third(0, T / 3), behind_third(2 * T / 3, T)

    model = Model(meta)
    t_in0 = first["agents"]["cta_turnstiles"]["events_in"]
    t_in1 = last["agents"]["cta_turnstiles"]["events_in"]
    expected_turn = model.turnstile_between(t_in0, t_in1)
    sim0 = dt.datetime.fromtimestamp(model.sim_time(t_in0) / 1000, dt.timezone.utc)
    sim1 = dt.datetime.fromtimestamp(model.sim_time(max(t_in1, t_in0)) / 1000, dt.timezone.utc)

    restarts = {a: (last["agents"].get(a, {}).get("restarts") or 0) for a in SIM_AGENTS}
    failures = {a: (last["agents"].get(a, {}).get("failures") or 0) for a in SIM_AGENTS}
    delivery_errors = sum((last["agents"].get(a, {}).get("delivery_errors") or 0) for a in SIM_AGENTS)
    not_ok = [s for s in samples if s.get("status") != "ok"]

    lag_live = parse_groups((rdir / "lag-live.txt").read_text()) if (rdir / "lag-live.txt").exists() else {}
    lag_stop = parse_groups((rdir / "lag-stopped.txt").read_text()) if (rdir / "lag-stopped.txt").exists() else {}

    # Records on the broker after the worker stopped (whole run, start-up included).
    offsets = {}
    if (rdir / "offsets.txt").exists():
        for line in (rdir / "offsets.txt").read_text().splitlines():
            m = re.fullmatch(r"(.+):(\d+):(\d+)", line.strip())
            if m:
                offsets[m.group(1)] = offsets.get(m.group(1), 0) + int(m.group(3))
    on_broker = {
        "clock": offsets.get(meta["clock_topic"]),
        "arrivals": sum(v for k, v in offsets.items() if k.startswith(meta["arrivals_prefix"])) if offsets else None,
        "turnstile": offsets.get(meta["turnstile_topic"]),
        "weather": offsets.get(meta["weather_topic"]),
    }
    final = json.load(open(rdir / "final-health.json")) if (rdir / "final-health.json").exists() else None
    final_counts = None
    if final and "agents" in final:
        fa = final["agents"]
        final_counts = {
            "clock": fa.get("cta_clock", {}).get("events_out"),
            "arrivals": fa.get("cta_trains", {}).get("events_out"),
            "turnstile": fa.get("cta_turnstiles", {}).get("events_out"),
            "weather_ticks_in": fa.get("cta_weather", {}).get("events_in"),
        }
    weather_expected = model.hours_between(0, final_counts["weather_ticks_in"]) if final_counts else None

    log = (rdir / "worker.log").read_text(errors="replace") if (rdir / "worker.log").exists() else ""
    log = "\n".join(line for line in log.splitlines() if "signal received" not in line)
    levels = {lv: len(re.findall(rf"\b{lv}\b", log)) for lv in ("ERROR", "WARN")}
    stale = len(re.findall(r"skipping stale clock ticks", log))

    return {
        "name": rdir.name, "meta": meta, "T": T, "samples": len(samples), "good": len(good),
        "speedup": speedup, "target": target, "ticks": ticks, "steps_s": steps_s,
        "clock_ticks": len(clock), "tick_skips": tick_skips if clock else None, "tick_gap_max": tick_gap_max,
        "steps_from": "clock topic" if len(in_window) >= 3 else "/health",
        "trains_in_s": trains_in / T, "turn_in_s": turn_in / T, "weather_in": weather_in,
        "trains_out": trains_out, "turn_out": turn_out, "events": events, "events_s": events / T,
        "arrivals_per_step": trains_out / trains_in if trains_in else None,
        "turn_per_step": turn_out / turn_in if turn_in else None,
        "turn_expected_per_step": expected_turn / (t_in1 - t_in0) if t_in1 > t_in0 else None,
        "turn_vs_model": turn_out / expected_turn if expected_turn else None,
        "sim_span": (sim0, sim1),
        "if_first": (f_mean, f_max), "if_last": (l_mean, l_max),
        "if_max": max(all_if) if all_if else None,
        "if_peak_sim": (dt.datetime.fromtimestamp(model.sim_time(peak["agents"]["cta_clock"]["events_out"]) / 1000,
                                                  dt.timezone.utc) if peak and peak["in_flight"] else None),
        "if_peak_t": peak["t"] - first["t"] if peak else None,
        "behind": behind, "behind_first": behind_first, "behind_last": behind_last,
        "restarts": restarts, "failures": failures, "delivery_errors": delivery_errors,
        "not_ok": len(not_ok), "not_ok_reasons": sorted({r for s in not_ok for r in (s.get("reasons") or [])})[:5],
        "lag_live": lag_live, "lag_stop": lag_stop, "groups": meta["groups"],
        "on_broker": on_broker, "final_counts": final_counts, "weather_expected": weather_expected,
        "log_levels": levels, "stale": stale,
        "exit_code": (rdir / "exit-code").read_text().strip() if (rdir / "exit-code").exists() else "?",
        "stop_secs": (rdir / "stop-secs").read_text().strip() if (rdir / "stop-secs").exists() else "?",
    }


def growth_verdict(r) -> str:
    f, l = r["if_first"][0], r["if_last"][0]
    if f is None or l is None:
        return "no data"
    # "Meaningfully above": more than 1.5× the first third's mean and by more than what a
    # single step of the run produces (the queue holds about one step's records at a time).
    slack = max(0.5 * f, (r["turn_per_step"] or 0) + (r["arrivals_per_step"] or 0))
    return "GROWING" if l > f + slack else "no growth"


def follow_slack(r) -> float:
    """Steps the producers may trail the clock without falling behind: half a second of
    steps (sampling jitter), at least 2; under exactly-once also a commit interval, since
    consumers read committed ticks only and the clock's transaction commits that often."""
    secs = 0.5
    if r["meta"].get("guarantee") == "exactly_once":
        secs += parse_duration_ms(r["meta"].get("commit_interval", "1s")) / 1000
    return max(2.0, secs * r["target"])


def follow_verdict(r) -> str:
    f, l = r["behind_first"][0], r["behind_last"][0]
    if f is None or l is None:
        return "no data"
    slack = follow_slack(r)
    if l > f + slack:
        return "FALLING BEHIND"
    return "keep up" if l <= slack else "behind, not growing"


def lag_text(lag: dict, groups) -> str:
    parts = []
    for g in groups:
        short = g.rsplit("-", 1)[-1].replace("cta_", "")
        v = lag.get(g)
        parts.append(f"{short} {v[2] if v and v[3] else '?'}")
    return ", ".join(parts)


def cmd_report(a) -> None:
    runs = [analyse(Path(d)) for d in a.runs]
    base, fast = runs[0], runs[-1]
    w = sys.stdout.write
    w("\n=== CTA simulation benchmark: summary ===\n")
    w(f"conditions: {a.conditions}\n")
    w(f"processing guarantee {base['meta']['guarantee']}, commit interval {base['meta']['commit_interval']}; "
      f"simulated start pinned at {base['meta']['start']} (step {base['meta']['step']}); "
      f"clock timer {base['meta']['timer']} ÷ speed-up\n\n")

    rows = [
        ("speed-up", lambda r: f"×{r['speedup']:g}"),
        ("measured window", lambda r: f"{r['T']:.1f} s ({r['good']} samples)"),
        ("simulated span (turnstiles)", lambda r: f"{r['sim_span'][0]:%a %H:%M} → {r['sim_span'][1]:%a %H:%M}"),
        ("clock steps/s (target)", lambda r: f"{fmt(r['steps_s'], 3)} ({r['target']:g})"),
        ("  achieved / target", lambda r: f"{r['steps_s'] / r['target']:.3f} (from {r['steps_from']})"),
        ("timer firings skipped; longest tick gap", lambda r: f"{fmt_int(r['tick_skips'])}; "
         + (f"{r['tick_gap_max']} ms" if r["tick_gap_max"] is not None else "-")),
        ("steps/s consumed: trains, turnstiles", lambda r: f"{fmt(r['trains_in_s'], 3)}, {fmt(r['turn_in_s'], 3)}"),
        ("events produced (trains+turnstiles)", lambda r: fmt_int(r["events"])),
        ("events/s", lambda r: fmt(r["events_s"], 1)),
        ("arrivals per step", lambda r: fmt(r["arrivals_per_step"], 2)),
        ("turnstile events per step", lambda r: fmt(r["turn_per_step"], 1)),
        ("  model expectation per step", lambda r: fmt(r["turn_expected_per_step"], 1)),
        ("  observed / model", lambda r: fmt(r["turn_vs_model"], 3)),
        ("weather posts (broker) / sim. hours", lambda r: f"{fmt_int(r['on_broker']['weather'])} / {fmt_int(r['weather_expected'])}"),
        ("in_flight first third: mean / max", lambda r: f"{fmt(r['if_first'][0], 1)} / {fmt_int(r['if_first'][1])}"),
        ("in_flight last third: mean / max", lambda r: f"{fmt(r['if_last'][0], 1)} / {fmt_int(r['if_last'][1])}"),
        ("in_flight max: at s / simulated time", lambda r: f"{fmt_int(r['if_max'])}: "
         + (f"{r['if_peak_t']:.0f} s / {r['if_peak_sim']:%a %H:%M}" if r["if_peak_sim"] else "-")),
        ("  producer queue", lambda r: growth_verdict(r)),
        ("steps behind clock, first third: mean / max", lambda r: f"{fmt(r['behind_first'][0], 1)} / {fmt_int(r['behind_first'][1])}"),
        ("steps behind clock, last third: mean / max", lambda r: f"{fmt(r['behind_last'][0], 1)} / {fmt_int(r['behind_last'][1])}"),
        ("steps behind clock at the end", lambda r: ", ".join(
            f"{a.replace('cta_', '')} {r['behind'][a]}" for a in PRODUCERS)),
        ("  producers vs clock", lambda r: follow_verdict(r)),
        ("clock lag, live (commit 1s)", lambda r: lag_text(r["lag_live"], r["groups"])),
        ("clock lag after SIGTERM", lambda r: lag_text(r["lag_stop"], r["groups"])),
        ("restarts / failures / delivery errors", lambda r: f"{sum(r['restarts'].values())} / {sum(r['failures'].values())} / {r['delivery_errors']}"),
        ("samples not ok", lambda r: str(r["not_ok"])),
        ("log ERROR / WARN lines; stale skips", lambda r: f"{r['log_levels']['ERROR']} / {r['log_levels']['WARN']}; {r['stale']}"),
        ("worker exit code (stop time)", lambda r: f"{r['exit_code']} ({r['stop_secs']} s)"),
    ]
    labels = max(len(x[0]) for x in rows)
    cols = [[f(r) for r in runs] for _, f in rows]
    widths = [max(len(f"run {r['name']}"), *(len(c[i]) for c in cols)) for i, r in enumerate(runs)]
    w(f"{'':<{labels}} | " + " | ".join(f"{'run ' + r['name']:<{widths[i]}}" for i, r in enumerate(runs)) + "\n")
    w("-" * labels + "-+-" + "-+-".join("-" * x for x in widths) + "\n")
    for (label, _), c in zip(rows, cols):
        w(f"{label:<{labels}} | " + " | ".join(f"{v:<{widths[i]}}" for i, v in enumerate(c)) + "\n")

    raw = fast["events_s"] / base["events_s"] if base["events_s"] else None
    per_step_fast = fast["events"] / max(1, fast["ticks"])
    per_step_base = base["events"] / max(1, base["ticks"])
    w("\n")
    w(f"events/s ×{fast['speedup']:g} ÷ events/s ×{base['speedup']:g}: {fmt(raw, 1)} "
      f"(steps/s ratio {fmt(fast['steps_s'] / base['steps_s'] if base['steps_s'] else None, 1)}; "
      f"ideal {fast['speedup'] / base['speedup']:g})\n")
    w(f"events per clock step: ×{base['speedup']:g} {fmt(per_step_base, 1)}, ×{fast['speedup']:g} {fmt(per_step_fast, 1)} "
      f"(the runs cover different simulated hours; turnstile counts follow the hour: compare each with its model line)\n")
    if base["turn_vs_model"] and fast["turn_vs_model"]:
        adj = raw * (base["turn_expected_per_step"] + 30) / (fast["turn_expected_per_step"] + 30) if raw else None
        w(f"events/s ratio normalised to equal events per step (each run's events/s ÷ the model's "
          f"events per step for its simulated hours): {fmt(adj, 1)}\n")
    if any(r["meta"].get("guarantee") == "exactly_once" for r in runs):
        w("note: exactly-once — consumers see the clock's ticks when its transaction commits (every "
          f"{base['meta']['commit_interval']}), so producers trail the clock by up to that much; the "
          "clock topic's end offset also counts a transaction marker per commit, which the lag "
          "columns include.\n")
    verdicts = []
    ok_rate = all(r["steps_s"] >= 0.95 * r["target"] for r in runs)
    ok_queue = all(growth_verdict(r) == "no growth" for r in runs)
    ok_follow = all(follow_verdict(r) == "keep up" for r in runs)
    verdicts.append("clock keeps its rate" if ok_rate else "clock FALLS BEHIND its rate")
    verdicts.append("producers keep up with the clock" if ok_follow else "producers FALL BEHIND the clock")
    verdicts.append("no producer queue growth" if ok_queue else "producer queue GROWS")
    w("verdict: " + "; ".join(verdicts) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("settings")
    s.add_argument("--src", required=True)
    s.add_argument("--repo", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--app-id", required=True)
    s.add_argument("--speedup", type=float, required=True)
    s.add_argument("--start", required=True)
    s.add_argument("--state-dir", required=True)
    s.add_argument("--broker", default="")
    s.add_argument("--guarantee", default="", choices=["", "at_least_once", "exactly_once"])
    s.add_argument("--web-port", type=int, required=True)
    s.add_argument("--sr-port", type=int, required=True)
    s.add_argument("--rp-port", type=int, required=True)
    s = sub.add_parser("ports")
    s.add_argument("n", type=int)
    s = sub.add_parser("wait")
    s.add_argument("--url", required=True)
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--timeout", type=float, default=90)
    s = sub.add_parser("sample")
    s.add_argument("--url", required=True)
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--duration", type=float, required=True)
    s.add_argument("--interval", type=float, default=1.0)
    s.add_argument("--jitter", type=float, default=0.45)
    s.add_argument("--out", required=True)
    s = sub.add_parser("report")
    s.add_argument("--conditions", default="")
    s.add_argument("runs", nargs="+")
    a = p.parse_args()
    if a.cmd == "settings" and float(a.speedup).is_integer():
        a.speedup = int(a.speedup)
    {"settings": cmd_settings, "ports": cmd_ports, "wait": cmd_wait, "sample": cmd_sample,
     "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    main()
