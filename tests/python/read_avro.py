#!/usr/bin/env python3
"""read_avro.py — an independent Avro + Schema Registry reader for the integration tests.

It decodes what cta-stream writes with a client that is not ours: confluent-kafka (librdkafka)
as the consumer, and confluent-kafka's SchemaRegistryClient + AvroDeserializer (fastavro) for
the Confluent wire format. Run it with the venv of scripts/pyenv:

    PY=$(scripts/pyenv)
    "$PY" tests/python/read_avro.py --bootstrap 127.0.0.1:9092 --registry http://127.0.0.1:8081 \
        --topic weather --count 1 [--timeout 60]

It reads the given topics from the beginning (a fresh random group id, auto.offset.reset
earliest, no commits) until it has --count messages in total or --timeout seconds have
passed, and prints one JSON object per message on stdout, as soon as it is decoded:

    {"topic": ..., "partition": ..., "offset": ..., "key": <decoded or null>,
     "value": <decoded>, "key_schema_id": <int or null>, "value_schema_id": <int>}

Keys and values go through AvroDeserializer with the writer schema from the registry; a null
key stays null. Schema ids are read from the Confluent frame (byte 0 is 0, bytes 1-4 the id,
big-endian). Avro enums come out as strings, float/double as JSON numbers, bytes/fixed as
ISO-8859-1 strings (as in Avro's JSON encoding), decimals as strings, timestamps and dates as
ISO 8601 strings, NaN and infinities as the strings "NaN", "Infinity", "-Infinity".

Exit codes: 0 all --count messages read; 3 timeout (what was read is printed, stderr says how
many of N); 2 bad arguments; 1 a decode error (stderr names topic/partition/offset) or another
error (a fatal Kafka error, a missing package).
"""

from __future__ import annotations

import argparse
import datetime
import decimal
import json
import logging
import math
import os
import re
import struct
import sys
import threading
import time
import uuid

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3

# Beyond --timeout, how long closing the consumer and a registry request still in flight may
# take before the process ends itself anyway.
GRACE_SECONDS = 10.0


def log(msg: str) -> None:
    print(f"read_avro: {msg}", file=sys.stderr, flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="read_avro.py",
        description="Read Confluent-framed Avro records from Kafka with confluent-kafka and "
        "print them as JSON lines.",
    )
    p.add_argument("--bootstrap", required=True, metavar="HOST:PORT",
                   help="Kafka bootstrap servers (comma-separated HOST:PORT)")
    p.add_argument("--registry", required=True, metavar="URL",
                   help="Schema Registry base URL, e.g. http://127.0.0.1:8081")
    p.add_argument("--topic", required=True, action="append", dest="topics", metavar="T",
                   help="topic to read; repeat for several")
    p.add_argument("--count", required=True, type=int, metavar="N",
                   help="number of messages to read in total")
    p.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                   help="give up after this many seconds (default: 60)")
    p.add_argument("--key-codec", choices=("avro", "raw"), default="avro",
                   help="how keys are encoded: avro (default, Confluent-framed) or raw "
                   "(printed as a UTF-8 string, key_schema_id null)")
    args = p.parse_args(argv)
    if args.count < 1:
        p.error("--count must be 1 or more")
    if not (args.timeout > 0 and math.isfinite(args.timeout)):
        p.error("--timeout must be a positive number of seconds")
    for server in args.bootstrap.split(","):
        if not re.fullmatch(r"[^\s:,]+:\d{1,5}|\[[0-9a-fA-F:.]+\]:\d{1,5}", server.strip()):
            p.error(f"--bootstrap: '{server}' is not HOST:PORT")
    if not re.match(r"https?://[^\s/]+", args.registry):
        p.error(f"--registry: '{args.registry}' is not an http(s) URL")
    for t in args.topics:
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", t):
            p.error(f"--topic: '{t}' is not a valid Kafka topic name")
    return args


def frame_schema_id(data: bytes | None) -> int | None:
    """The schema id of a Confluent-framed payload (magic byte 0, 4-byte big-endian id)."""
    if data is None or len(data) < 5 or data[0] != 0:
        return None
    return struct.unpack(">I", data[1:5])[0]


def to_json(obj):
    """Avro values as fastavro returns them, made JSON-safe."""
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        if math.isnan(obj):
            return "NaN"
        if math.isinf(obj):
            return "Infinity" if obj > 0 else "-Infinity"
        return obj
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj).decode("latin-1")
    if isinstance(obj, decimal.Decimal):
        return str(obj)
    if isinstance(obj, (datetime.datetime, datetime.date, datetime.time)):
        return obj.isoformat()
    if isinstance(obj, uuid.UUID):
        return str(obj)
    return str(obj)


class _OncePerText(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        # drop the part of the text that changes between retries ("after 0ms in state ...")
        text = re.sub(r"\(after \d+ms.*?\)", "", record.getMessage())
        if text in self.seen:
            return False
        self.seen.add(text)
        return True


def librdkafka_logger() -> logging.Logger:
    logger = logging.getLogger("read_avro.librdkafka")
    logger.propagate = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("read_avro: librdkafka: %(message)s"))
    handler.addFilter(_OncePerText())
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    return logger


def hard_stop(code: int, why: str) -> None:
    """End the process now, whatever a library thread is doing."""
    log(why)
    try:
        sys.stdout.flush()
    finally:
        os._exit(code)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    deadline = started + args.timeout

    # The run is bounded even if a library call blocks: a watchdog ends it.
    got = [0]
    watchdog = threading.Timer(
        args.timeout + GRACE_SECONDS,
        lambda: hard_stop(EXIT_TIMEOUT, f"timeout: still blocked {GRACE_SECONDS:.0f}s after "
                          f"--timeout {args.timeout:g}s; read {got[0]} of {args.count} messages"),
    )
    watchdog.daemon = True
    watchdog.start()

    try:
        from confluent_kafka import Consumer, KafkaError, KafkaException
        from confluent_kafka.schema_registry import SchemaRegistryClient
        from confluent_kafka.schema_registry.avro import AvroDeserializer
        from confluent_kafka.serialization import MessageField, SerializationContext
    except ImportError as e:
        log(f"cannot import confluent-kafka's Avro support ({e}); run it with the python of scripts/pyenv")
        return EXIT_ERROR

    registry = SchemaRegistryClient({
        "url": args.registry,
        # three tries (max.retries 2) of one request fit in --timeout
        "timeout": max(1.0, min(10.0, args.timeout / 3)),
        "max.retries": 2,
    })
    # TOPIC strategy: the classic one of every Confluent client. Deserializing needs no subject
    # anyway (the writer schema comes by id); this keeps the client from asking the registry
    # for the topic's subject associations first (the default ASSOCIATED strategy, which falls
    # back to TOPIC on a 404 and works against our registry too, at one more request).
    deser_conf = {"subject.name.strategy.type": "TOPIC"}
    value_deser = AvroDeserializer(registry, conf=deser_conf)
    key_deser = AvroDeserializer(registry, conf=deser_conf)

    fatal: list[str] = []
    reported: set[str] = set()

    def on_error(err) -> None:
        text = re.sub(r" \(after \d+ms.*?\)", "", f"{err.name()}: {err.str()}")
        if err.fatal():
            fatal.append(text)
        if text not in reported:
            reported.add(text)
            log(f"kafka: {text}")

    consumer = Consumer({
        # librdkafka's own log lines (a refused connection is logged on every retry), each
        # distinct one once, to stderr
        "logger": librdkafka_logger(),
        "bootstrap.servers": args.bootstrap,
        "group.id": f"read-avro-{uuid.uuid4()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        # pick up topics that are created while we wait (librdkafka's default is 5 minutes)
        "topic.metadata.refresh.interval.ms": 1000,
        "socket.timeout.ms": 10000,
        "error_cb": on_error,
    })

    code = EXIT_OK
    try:
        consumer.subscribe(args.topics)
        while got[0] < args.count:
            if fatal:
                log(f"fatal Kafka error: {fatal[0]}")
                code = EXIT_ERROR
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                code = EXIT_TIMEOUT
                break
            msg = consumer.poll(min(remaining, 0.5))
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                text = f"{err.name()}: {err.str()}"
                if err.fatal():
                    log(f"fatal Kafka error on {msg.topic()}: {text}")
                    code = EXIT_ERROR
                    break
                # e.g. UNKNOWN_TOPIC_OR_PART while a topic is not created yet: keep waiting
                if text not in reported:
                    reported.add(text)
                    log(f"kafka: {msg.topic()}: {text} (waiting)")
                continue

            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            raw_key, raw_value = msg.key(), msg.value()
            headers = msg.headers()
            field, raw = "key", raw_key
            try:
                if raw_key is None:
                    key, key_schema_id = None, None
                elif args.key_codec == "raw":
                    key, key_schema_id = raw_key.decode("utf-8"), None
                else:
                    key = key_deser(raw_key, SerializationContext(topic, MessageField.KEY, headers))
                    key_schema_id = frame_schema_id(raw_key)
                field, raw = "value", raw_value
                if raw_value is None:
                    raise ValueError("the value is null (a tombstone), not an Avro record")
                value = value_deser(raw_value, SerializationContext(topic, MessageField.VALUE, headers))
                value_schema_id = frame_schema_id(raw_value)
                line = json.dumps({
                    "topic": topic,
                    "partition": partition,
                    "offset": offset,
                    "key": to_json(key),
                    "value": to_json(value),
                    "key_schema_id": key_schema_id,
                    "value_schema_id": value_schema_id,
                }, ensure_ascii=False, allow_nan=False)
            except Exception as e:  # noqa: BLE001 - any failure to decode is reported the same way
                head = (raw or b"")[:16].hex()
                log(f"decode error at topic {topic} partition {partition} offset {offset}, "
                    f"{field}: {type(e).__name__}: {e} ({field} bytes start {head or '(empty)'})")
                code = EXIT_ERROR
                break
            print(line, flush=True)
            got[0] += 1
    except KafkaException as e:
        log(f"Kafka error: {e}")
        code = EXIT_ERROR
    except KeyboardInterrupt:
        log("interrupted")
        code = EXIT_ERROR
    finally:
        # Leaving the group is polite but must not hold us up: close in the background and
        # wait a little for it.
        closer = threading.Thread(target=consumer.close, daemon=True)
        closer.start()
        closer.join(5.0)

    if code == EXIT_TIMEOUT:
        log(f"timeout after {args.timeout:g}s: read {got[0]} of {args.count} messages "
            f"from {', '.join(args.topics)}")
    return code


if __name__ == "__main__":
    rc = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # os._exit: no waiting at interpreter exit on library threads (librdkafka, the watchdog)
    os._exit(rc)
