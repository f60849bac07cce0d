"""The counting job of agents/examples.rs (`count_keys`) as a Faust app.

Counts the records of each key of the input topic into the table `key_counts`: a read
and a write of the table per event (`counts[key] += 1`), each write a changelog record.
Values are not decoded (raw), as the Rust agent's `codec = "raw"`.

Faust's defaults otherwise: at-least-once, the table in memory (changelog topic
`<app id>-key_counts-changelog`, created by Faust).

Run (benches/vs_faust.sh does this):

    BENCH_INPUT_TOPIC=... BENCH_FAUST_APP_ID=... \\
        python counting.py --loop uvloop worker -l warn

Environment:
    BENCH_INPUT_TOPIC   the topic to count (required; 1 partition, every record keyed)
    BENCH_FAUST_APP_ID  the app id, hence consumer group and changelog name
                        (default faust-bench-counting)
    BENCH_BROKER        Kafka bootstrap (default 127.0.0.1:9092)
"""

import os

import faust

BROKER = os.environ.get("BENCH_BROKER", "127.0.0.1:9092")
APP_ID = os.environ.get("BENCH_FAUST_APP_ID", "faust-bench-counting")
INPUT_TOPIC = os.environ.get("BENCH_INPUT_TOPIC", "")
if not INPUT_TOPIC:
    raise SystemExit("counting.py: set BENCH_INPUT_TOPIC")

app = faust.App(
    APP_ID,
    broker=f"kafka://{BROKER}",
    store="memory://",
    topic_partitions=1,  # the input topic's, which the table must match
    web_enabled=False,
)
events = app.topic(INPUT_TOPIC, key_serializer="raw", value_serializer="raw")
key_counts = app.Table("key_counts", key_type=str, value_type=int, default=int, partitions=1)


@app.agent(events)
async def count_keys(stream):
    async for key, _value in stream.items():
        if key is None:
            continue
        key_counts[key.decode()] += 1


if __name__ == "__main__":
    app.main()
