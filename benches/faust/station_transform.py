"""The station transform of agents/cta_station_transform.rs (`cta_station_transform`) as a Faust app.

Rows of the PostgreSQL `stations` table, as Kafka Connect writes them (flat JSON), become
one TransformedStation each when the stop is on the red, blue or green line (checked in
that order, as the original CTA project's faust_stream.py did); the others are left out.
A station goes into the table `stations` keyed by station_id and into `line_stations`
keyed "<line>:<station_id>", as the Rust agent does with the tables of settings.toml.

Faust's defaults otherwise: at-least-once, tables in memory (changelog topics
`<app id>-stations-changelog` and `<app id>-line_stations-changelog`, created by Faust).

Run (benches/vs_faust.sh does this):

    BENCH_INPUT_TOPIC=... BENCH_FAUST_APP_ID=... \\
        python station_transform.py --loop uvloop worker -l warn

Environment:
    BENCH_INPUT_TOPIC   the topic of station rows (required; 1 partition)
    BENCH_FAUST_APP_ID  the app id, hence consumer group and changelog names
                        (default faust-bench-stations)
    BENCH_BROKER        Kafka bootstrap (default 127.0.0.1:9092)
"""

import os
from typing import Optional

import faust

BROKER = os.environ.get("BENCH_BROKER", "127.0.0.1:9092")
APP_ID = os.environ.get("BENCH_FAUST_APP_ID", "faust-bench-stations")
INPUT_TOPIC = os.environ.get("BENCH_INPUT_TOPIC", "")
if not INPUT_TOPIC:
    raise SystemExit("station_transform.py: set BENCH_INPUT_TOPIC")


class Station(faust.Record):
    """A row of the stations table (all its columns, as Kafka Connect writes them)."""

    stop_id: int
    direction_id: str
    stop_name: str
    station_name: str
    station_descriptive_name: str
    station_id: int
    order: Optional[int]
    red: bool
    blue: bool
    green: bool


class TransformedStation(faust.Record, include_metadata=False):
    """A station of a simulated line (no Faust metadata in the JSON, like the Rust side)."""

    station_id: int
    station_name: str
    order: Optional[int]
    line: str


app = faust.App(
    APP_ID,
    broker=f"kafka://{BROKER}",
    store="memory://",
    topic_partitions=1,  # the input topic's, which the tables must match
    web_enabled=False,
)
rows = app.topic(INPUT_TOPIC, value_type=Station)
stations = app.Table("stations", key_type=int, value_type=TransformedStation, partitions=1)
line_stations = app.Table("line_stations", key_type=str, value_type=TransformedStation, partitions=1)


def line_of(row: Station) -> Optional[str]:
    if row.red:
        return "red"
    if row.blue:
        return "blue"
    if row.green:
        return "green"
    return None


@app.agent(rows)
async def station_transform(stream):
    async for row in stream:
        line = line_of(row)
        if line is None:
            continue
        station = TransformedStation(
            station_id=row.station_id,
            station_name=row.station_name,
            order=row.order,
            line=line,
        )
        stations[station.station_id] = station
        line_stations[f"{line}:{station.station_id}"] = station


if __name__ == "__main__":
    app.main()
