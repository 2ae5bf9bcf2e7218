"""The plain Python baseline of `bench/run.sh e2e`: what a Python user would
write instead of snakefleet.

A confluent-kafka consumer in a group reads the requests; a
`multiprocessing.Pool(processes=2)` (fork) runs the same no-op
(`snakefleet.examples.noop`) for each; the reply — a msgpack map {v, id,
session, ok, result} like snakefleet's — is produced to the request's
`reply_to` (else --reply-topic), keyed by the request's key, with
partitioner=murmur2_random.

Written the way a competent user would, not a strawman: the consumer takes
batches (`consume(num_messages=500)`), each request is an `apply_async` whose
callback produces the reply at once (no waiting for a batch), the worker
decodes the request and encodes the reply (msgpack) so the parent process only
moves bytes, and the producer is polled for delivery reports. Offsets are
auto-committed (enable.auto.commit, the client's default); there is no
session state, no ordering per session and no dedupe — all of which
snakefleet provides — so this is an optimistic baseline.

Usage: py_consumer.py --bootstrap B --topic T --group G --reply-topic R
                      [--workers 2] [--kafka.KEY=VALUE ...]
Runs until SIGTERM/SIGINT, then prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import sys
import time
from typing import Any

import msgpack  # type: ignore[import-untyped]  # ships no type information
from confluent_kafka import Consumer, KafkaException, Producer
from snakefleet.examples import noop as _noop

noop: Any = _noop


def handle(value: bytes) -> tuple[str | None, bytes]:
    """Runs in a pool worker: decode, run the program, encode the reply."""
    req = msgpack.unpackb(value, raw=False)
    try:
        result = noop(None, **(req.get("args") or {}))
        reply = {
            "v": 1,
            "id": req.get("id", ""),
            "session": req.get("session", ""),
            "ok": True,
            "result": result,
        }
    except Exception as e:  # noqa: BLE001 - a user program may raise anything
        reply = {
            "v": 1,
            "id": req.get("id", ""),
            "session": req.get("session", ""),
            "ok": False,
            "error": {"type": "program_error", "message": str(e)},
        }
    return req.get("reply_to"), msgpack.packb(reply)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--reply-topic", required=True)
    ap.add_argument("--workers", type=int, default=2)
    args, rest = ap.parse_known_args()
    kafka: dict[str, str] = {}
    for a in rest:
        if not a.startswith("--kafka.") or "=" not in a:
            ap.error(f"unknown argument {a}")
        k, v = a[len("--kafka.") :].split("=", 1)
        kafka[k] = v

    # The same pass-through the other two get; keys that belong to the other
    # client type only are left out (confluent-kafka warns about them).
    producer_only = {
        "linger.ms",
        "queue.buffering.max.ms",
        "batch.num.messages",
        "batch.size",
        "compression.type",
        "acks",
        "enable.idempotence",
    }
    consumer_only = {
        "fetch.wait.max.ms",
        "fetch.min.bytes",
        "fetch.max.bytes",
        "auto.offset.reset",
        "queued.min.messages",
        "enable.auto.commit",
        "auto.commit.interval.ms",
        "session.timeout.ms",
        "heartbeat.interval.ms",
        "max.poll.interval.ms",
        "partition.assignment.strategy",
    }
    cconf: dict[str, Any] = {k: v for k, v in kafka.items() if k not in producer_only}
    pconf: dict[str, Any] = {k: v for k, v in kafka.items() if k not in consumer_only}
    cconf.update(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "client.id": "py-consumer",
            "enable.partition.eof": False,
        }
    )
    pconf.update(
        {
            "bootstrap.servers": args.bootstrap,
            "client.id": "py-consumer",
            "partitioner": "murmur2_random",
        }
    )

    pool = multiprocessing.get_context("fork").Pool(processes=args.workers)
    producer = Producer(pconf)
    consumer = Consumer(cconf)
    consumer.subscribe([args.topic])

    stop = False

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    state = {"replied": 0, "failed": 0}

    def make_callback(key: bytes | None) -> Any:
        def done(res: tuple[str | None, bytes]) -> None:
            topic, value = res
            while True:
                try:
                    producer.produce(topic or args.reply_topic, value, key)
                    break
                except BufferError:
                    producer.poll(0.01)
            state["replied"] += 1

        return done

    def on_error(e: BaseException) -> None:
        state["failed"] += 1
        print(f"py_consumer: {e!r}", file=sys.stderr)

    t0 = time.process_time()
    while not stop:
        try:
            msgs = consumer.consume(num_messages=500, timeout=0.05)
        except KafkaException as e:
            print(f"py_consumer: {e}", file=sys.stderr)
            continue
        for m in msgs:
            if m.error():
                continue
            pool.apply_async(
                handle,
                (m.value(),),
                callback=make_callback(m.key()),
                error_callback=on_error,
            )
        producer.poll(0)
    consumer.close()
    pool.close()
    pool.join()
    producer.flush(5)
    print(
        json.dumps(
            {
                "bench": "py_consumer",
                "replied": state["replied"],
                "failed": state["failed"],
                "parent_cpu_s": time.process_time() - t0,
                "pid": os.getpid(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
