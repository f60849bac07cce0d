#!/usr/bin/env python3
"""Helper of benches/e2e_latency.sh: end-to-end latency from a train's arrival event to
the status page's update that shows the train at that station, and the worker's memory.

It follows two things at once while the full CTA worker runs:
  - every arrival topic (regex subscription, from the end), decoding the Avro values with
    confluent-kafka's AvroDeserializer through the worker's Schema Registry: the latest
    arrival of each train, with its record timestamp (CreateTime, set when produced);
  - the page's server-sent events (/events): the status after each change.
When an update shows a train at a station other than before, the latency is the update's receive time minus the timestamp
of the train's latest arrival at that station. Moves seen on the page before the arrival is read from Kafka are kept
and matched when it is. /performance is sampled once a second for the resident memory.

Prints one JSON object: samples, p50/p90/p99/max in ms, RSS (max and the last sample).
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import statistics
import sys
import threading
import time
import urllib.request

from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

lock = threading.Lock()
# train -> its recent arrivals (station_id, timestamp ms), newest last: the page may show
# a train at a station after the train has already moved on in Kafka.
arrivals: dict[str, collections.deque] = collections.defaultdict(lambda: collections.deque(maxlen=20))
pending: dict[tuple[str, int], float] = {}  # (train, station_id) -> page time s
latencies: list[float] = []
stop = threading.Event()
ready = threading.Event()


def follow_kafka(bootstrap: str, registry: str, pattern: str) -> None:
    deser = AvroDeserializer(SchemaRegistryClient({"url": registry}))
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"e2e-latency-{time.time_ns()}",
        "auto.offset.reset": "latest",
        "enable.auto.commit": False,
        "topic.metadata.refresh.interval.ms": 2000,
    })
    c.subscribe([pattern], on_assign=lambda *_: ready.set())
    while not stop.is_set():
        m = c.poll(0.2)
        if m is None or m.error():
            continue
        v = deser(m.value(), SerializationContext(m.topic(), MessageField.VALUE))
        ts = m.timestamp()[1]
        with lock:
            arrivals[v["train_id"]].append((v["station_id"], ts))
            seen = pending.pop((v["train_id"], v["station_id"]), None)
            if seen is not None:
                latencies.append(seen * 1000 - ts)
    c.close()


def positions(status: dict) -> dict[str, int]:
    at = {}
    for line in status["lines"]:
        for s in line["stations"]:
            for t in s["train_a"] + s["train_b"]:
                at[t] = s["station_id"]
    return at


def follow_page(host: str, port: int) -> None:
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request("GET", "/events", headers={"Accept": "text/event-stream"})
    r = conn.getresponse()
    last: dict[str, int] = {}
    data = []
    while not stop.is_set():
        line = r.readline()
        if not line:
            break
        line = line.decode().rstrip("\n")
        if line.startswith("data:"):
            data.append(line[5:].lstrip())
        elif line == "" and data:
            now = time.time()
            try:
                at = positions(json.loads("\n".join(data)))
            except (ValueError, KeyError):
                data = []
                continue
            data = []
            with lock:
                for train, station in at.items():
                    if last.get(train) == station:
                        continue
                    ts = next((t for s, t in reversed(arrivals[train]) if s == station), None)
                    if ts is not None:
                        latencies.append(now * 1000 - ts)
                    elif last:  # not the first picture: a move whose arrival is not read yet
                        pending[(train, station)] = now
            last = at


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--web", required=True, help="host:port of the worker")
    ap.add_argument("--pattern", default="^org\\.chicago\\.cta\\.station\\.arrivals\\..*")
    ap.add_argument("--seconds", type=int, default=60)
    a = ap.parse_args()
    host, port = a.web.rsplit(":", 1)
    threading.Thread(target=follow_kafka, args=(a.bootstrap, a.registry, a.pattern), daemon=True).start()
    if not ready.wait(60):
        sys.exit("no arrival topic assigned within 60 s")
    threading.Thread(target=follow_page, args=(host, int(port)), daemon=True).start()
    rss = []
    end = time.time() + a.seconds
    while time.time() < end:
        try:
            with urllib.request.urlopen(f"http://{a.web}/performance", timeout=5) as r:
                rss.append(json.load(r)["memory"]["resident_bytes"])
        except OSError:
            pass
        time.sleep(1)
    stop.set()
    with lock:
        xs = sorted(latencies)
    if not xs:
        sys.exit("no page update matched an arrival")

    def pct(q: float) -> float:
        return round(xs[min(len(xs) - 1, int(q * len(xs)))], 1)

    print(json.dumps({
        "samples": len(xs),
        "p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99),
        "max_ms": round(xs[-1], 1), "mean_ms": round(statistics.fmean(xs), 1),
        "unmatched_moves": len(pending),
        "rss_max_mb": round(max(rss) / 2**20, 1) if rss else None,
        "rss_last_mb": round(rss[-1] / 2**20, 1) if rss else None,
    }))


if __name__ == "__main__":
    main()
