#!/usr/bin/env python3
"""Write the shared test vectors under schemas/vectors/.

Each case is a pair: <case>.msgpack (the exact bytes) and <case>.json (what a
decoder must make of them). The C and the Python test suites both run every
case, so this file is the single place where the wire contract's examples
live. Run it after changing a case and commit the output.
"""

from __future__ import annotations

import base64
import json
import shutil
import struct
import sys
from pathlib import Path
from typing import Any

import msgpack

HERE = Path(__file__).resolve().parent
OUT = HERE / "vectors"


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def frame(value: Any) -> bytes:
    body = pack(value)
    return struct.pack(">I", len(body)) + body


def to_json(value: Any) -> Any:
    """msgpack value -> JSON value (bin becomes {"$bin": base64})."""
    if isinstance(value, bytes):
        return {"$bin": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value


CASES: dict[str, list[tuple[str, bytes, dict[str, Any]]]] = {}


def ok(kind: str, name: str, value: Any) -> None:
    CASES.setdefault(kind, []).append(
        (name, pack(value), {"valid": True, "decoded": to_json(value)})
    )


def bad(
    kind: str,
    name: str,
    data: bytes,
    code: str,
    field: str | None = None,
    max_bytes: int | None = None,
) -> None:
    err: dict[str, Any] = {"code": code}
    if field is not None:
        err["field"] = field
    expect: dict[str, Any] = {"valid": False, "error": err}
    if max_bytes is not None:
        expect["max_bytes"] = max_bytes
    CASES.setdefault(kind, []).append((name, data, expect))


def request_cases() -> None:
    base = {"v": 1, "id": "r-1", "session": "s-1", "op": "ping"}
    ok("request", "ping_minimal", base)
    ok(
        "request",
        "create_session_with_state",
        {
            "v": 1,
            "id": "r-2",
            "session": "user_42",
            "op": "create_session",
            "args": {"state": {"theme": "dark", "history": [], "n": 0}},
            "reply_to": "snakefleet.replies",
        },
    )
    ok(
        "request",
        "create_program_callable",
        {
            "v": 1,
            "id": "r-3",
            "session": "user_42",
            "op": "create_program",
            "program": "counter",
            "args": {"spec": {"kind": "callable", "entry": "snakefleet.examples:counter"}},
        },
    )
    ok(
        "request",
        "execute_program_full",
        {
            "v": 1,
            "id": "r-4",
            "session": "user_42",
            "op": "execute_program",
            "program": "qa_bot",
            "args": {"question": "What is DSPex?", "temperature": 0.5, "k": -3},
            "reply_to": "replies.svc-a",
            "deadline_ms": 1893456000000,
            "meta": {"trace": "abc", "tags": ["x", "y"], "blob": b"\x00\x01\xff"},
        },
    )
    for op in ("end_session", "get_session_state", "list_programs"):
        ok("request", op, {"v": 1, "id": "r-" + op, "session": "s", "op": op})
    ok(
        "request",
        "set_session_state",
        {
            "v": 1,
            "id": "r-5",
            "session": "s",
            "op": "set_session_state",
            "args": {"state": {"a": 1}},
        },
    )
    ok(
        "request",
        "delete_program",
        {"v": 1, "id": "r-6", "session": "s", "op": "delete_program", "program": "p"},
    )
    ok(
        "request",
        "unknown_keys_ignored",
        {"v": 1, "id": "r-7", "session": "s", "op": "ping", "future_field": {"x": 1}},
    )
    ok(
        "request",
        "unicode_ids",
        {"v": 1, "id": "r-\u00e9\u4e2d", "session": "s-\U0001f40d", "op": "ping"},
    )

    def without(key: str) -> dict[str, Any]:
        d = dict(base)
        del d[key]
        return d

    def with_(**kw: Any) -> dict[str, Any]:
        d = dict(base)
        d.update(kw)
        return d

    for key in ("v", "id", "session", "op"):
        bad("request", f"missing_{key}", pack(without(key)), "missing_field", key)
    bad("request", "wrong_type_v", pack(with_(v="1")), "wrong_type", "v")
    # msgpack ext types are not part of the contract (neither side can map them)
    bad("request", "ext_in_args", pack(with_(args={"x": msgpack.ExtType(5, b"abc")})), "malformed")
    bad(
        "request",
        "fixext_in_args",
        pack(with_(args={"x": msgpack.ExtType(1, b"\x00" * 4)})),
        "malformed",
    )
    bad("request", "unknown_version", pack(with_(v=2)), "unknown_version", "v")
    bad("request", "wrong_type_id", pack(with_(id=17)), "wrong_type", "id")
    bad("request", "empty_id", pack(with_(id="")), "bad_value", "id")
    bad("request", "long_id", pack(with_(id="x" * 129)), "bad_value", "id")
    bad("request", "wrong_type_session", pack(with_(session=b"s-1")), "wrong_type", "session")
    bad("request", "empty_session", pack(with_(session="")), "bad_value", "session")
    bad("request", "wrong_type_op", pack(with_(op=["ping"])), "wrong_type", "op")
    bad("request", "unknown_op", pack(with_(op="format_disk")), "unknown_op", "op")
    bad(
        "request",
        "execute_without_program",
        pack(with_(op="execute_program")),
        "missing_field",
        "program",
    )
    bad(
        "request",
        "wrong_type_program",
        pack(with_(op="execute_program", program=5)),
        "wrong_type",
        "program",
    )
    bad("request", "wrong_type_args", pack(with_(args=[1, 2])), "wrong_type", "args")
    bad(
        "request",
        "create_program_without_spec",
        pack(with_(op="create_program", program="p", args={})),
        "missing_field",
        "args.spec",
    )
    bad(
        "request",
        "create_program_spec_without_kind",
        pack(with_(op="create_program", program="p", args={"spec": {"entry": "m:f"}})),
        "missing_field",
        "args.spec.kind",
    )
    bad(
        "request",
        "set_state_without_state",
        pack(with_(op="set_session_state", args={})),
        "missing_field",
        "args.state",
    )
    bad(
        "request",
        "create_session_state_not_map",
        pack(with_(op="create_session", args={"state": "x"})),
        "wrong_type",
        "args.state",
    )
    bad("request", "wrong_type_reply_to", pack(with_(reply_to=1)), "wrong_type", "reply_to")
    bad("request", "empty_reply_to", pack(with_(reply_to="")), "bad_value", "reply_to")
    bad(
        "request",
        "reply_to_not_a_topic_name",
        pack(with_(reply_to="replies/../x")),
        "bad_value",
        "reply_to",
    )
    bad(
        "request",
        "negative_deadline",
        pack(with_(deadline_ms=-1)),
        "bad_value",
        "deadline_ms",
    )
    bad("request", "wrong_type_meta", pack(with_(meta="m")), "wrong_type", "meta")
    bad("request", "not_map_array", pack([1, 2, 3]), "not_map")
    bad("request", "not_map_string", pack("hello"), "not_map")
    bad("request", "empty_input", b"", "truncated")
    full = pack(with_(args={"question": "why?"}))
    bad("request", "truncated", full[: len(full) // 2], "truncated")
    bad(
        "request",
        "invalid_utf8_session",
        b"\x84\xa1v\x01\xa2id\xa3r-1\xa7session\xa2\xff\xfe\xa2op\xa4ping",
        "malformed",
    )
    bad("request", "huge_declared_array", b"\x81\xa1v\xdd\xff\xff\xff\xff\x01", "truncated")
    bad("request", "garbage", b"\xc1\xc1\xc1garbage", "malformed")
    bad("request", "trailing_bytes", full + b"\x00", "malformed")
    # A JSON value is not msgpack ('{' is a fixint and the rest trails); the
    # decoders' message says it is JSON.
    bad("request", "json_payload", json.dumps(base).encode(), "malformed")
    bad("request", "non_string_key", pack({1: "x", "v": 1}), "malformed")
    bad(
        "request",
        "oversized",
        pack(with_(args={"blob": "x" * 200})),
        "too_large",
        max_bytes=128,
    )


def reply_cases() -> None:
    ok(
        "reply",
        "ok_result",
        {
            "v": 1,
            "id": "r-4",
            "session": "user_42",
            "ok": True,
            "result": {"answer": "A bridge.", "score": 0.25},
            "worker": "w3",
            "supervisor": "host-a:1234",
            "timings": {"queued_us": 12, "exec_us": 340, "total_us": 400},
        },
    )
    ok(
        "reply",
        "program_error",
        {
            "v": 1,
            "id": "r-9",
            "session": "s",
            "ok": False,
            "error": {
                "type": "program_error",
                "message": "ZeroDivisionError: division by zero",
                "traceback": 'Traceback (most recent call last):\n  File "x.py", line 1\n',
            },
            "worker": "w1",
            "supervisor": "host-b:99",
        },
    )
    ok(
        "reply",
        "invalid_request",
        {
            "v": 1,
            "id": "",
            "session": "",
            "ok": False,
            "error": {"type": "invalid_request", "message": "missing field 'id'", "field": "id"},
        },
    )
    ok("reply", "nil_result", {"v": 1, "id": "r", "session": "s", "ok": True, "result": None})
    bad("reply", "missing_ok", pack({"v": 1, "id": "r", "session": "s"}), "missing_field", "ok")
    bad(
        "reply",
        "error_without_type",
        pack({"v": 1, "id": "r", "session": "s", "ok": False, "error": {"message": "m"}}),
        "missing_field",
        "error.type",
    )
    bad(
        "reply",
        "not_ok_without_error",
        pack({"v": 1, "id": "r", "session": "s", "ok": False}),
        "missing_field",
        "error",
    )
    bad(
        "reply",
        "unknown_version",
        pack({"v": 9, "id": "r", "session": "s", "ok": True}),
        "unknown_version",
        "v",
    )


def telemetry_cases() -> None:
    # Keys in the order the supervisor writes them: the list in
    # schemas/codec/stats.h (the C test packs the same values and compares bytes).
    hist = {"count": 120, "p50_us": 80, "p90_us": 200, "p99_us": 900, "max_us": 4000}
    snapshot: dict[str, Any] = {
        "v": 1,
        "supervisor": "host-a:1234",
        "ts_ms": 1_700_000_000_000,
        "active_sessions": 3,
        "pool_size": 8,
        "total_commands": 120,
        "total_errors": 2,
        "healthy_workers": 8,
        "busy_workers": 2,
        "idle_workers": 6,
        "overflow_workers": 0,
        "queue_depth": 1,
        "in_flight": 2,
        "restarts": 0,
        "recycles": 1,
        "dlq_count": 0,
        "degraded": False,
        "held": 3,
        "deadline_exceeded": 1,
        "deduplicated": 4,
        "fenced": 0,
        "invalid": 5,
        "poison": 0,
        "stored_sessions": 40_000,
        "max_sessions": 100_000,
        "session_limit_refusals": 7,
        "conflicts": 2,
        "wrong_partition": 0,
        "partitions": 2,
        "redis_up": True,
        "workers": 8,
        "call_timeouts": 1,
        "checkout_timeouts": 0,
        "state_cache_hits": 90,
        "state_cache_misses": 30,
        "state_cache_bytes": 65_536,
        "lag": {"snakefleet.requests/0": 0, "snakefleet.requests/11": 42},
        "latency": {
            "total": {"count": 120, "p50_us": 150, "p90_us": 400, "p99_us": 2000, "max_us": 9000},
            "queue_wait": {"count": 120, "p50_us": 3, "p90_us": 10, "p99_us": 90, "max_us": 300},
            "exec": hist,
        },
    }
    ok("telemetry", "snapshot", snapshot)
    ok(
        "telemetry",
        "degraded_lag_unknown",
        {
            **snapshot,
            "healthy_workers": 0,
            "degraded": True,
            "redis_up": False,
            "partitions": 1,
            "lag": {"snakefleet.requests/3": -1},
        },
    )
    ok(
        "telemetry",
        "no_partitions",
        {**snapshot, "partitions": 0, "lag": {}, "ts_ms": 0, "supervisor": ""},
    )

    def with_(**kw: Any) -> dict[str, Any]:
        return {**snapshot, **kw}

    without_supervisor = dict(snapshot)
    del without_supervisor["supervisor"]
    bad("telemetry", "missing_supervisor", pack(without_supervisor), "missing_field", "supervisor")
    bad("telemetry", "unknown_version", pack(with_(v=2)), "unknown_version", "v")
    bad(
        "telemetry",
        "wrong_type_busy_workers",
        pack(with_(busy_workers="2")),
        "wrong_type",
        "busy_workers",
    )
    bad("telemetry", "negative_pool_size", pack(with_(pool_size=-1)), "bad_value", "pool_size")
    bad("telemetry", "degraded_not_bool", pack(with_(degraded=1)), "wrong_type", "degraded")
    bad(
        "telemetry",
        "lag_key_not_a_partition",
        pack(with_(lag={"no-partition": 1})),
        "bad_value",
        "lag",
    )
    bad(
        "telemetry",
        "histogram_without_quantiles",
        pack(with_(latency={"exec": {"count": 1}})),
        "missing_field",
        "latency.exec.p50_us",
    )
    bad("telemetry", "not_map", pack([1, 2]), "not_map")


def dlq_cases() -> None:
    # Keys in the order the supervisor writes them (schemas/codec/dlq.c).
    bad_request = pack({"v": 1, "id": "r-1", "op": "ping"})
    record: dict[str, Any] = {
        "v": 1,
        "reason": "missing_field: missing field 'session'",
        "error_type": "missing_field",
        "topic": "snakefleet.requests",
        "partition": 3,
        "offset": 1234,
        "key": b"user_42",
        "value": bad_request,
        "ts_ms": 1_700_000_000_000,
        "supervisor": "host-a:1234",
    }
    ok("dlq", "bad_input", record)
    ok(
        "dlq",
        "poison_pill_without_key",
        {
            **record,
            "reason": "poison pill: the request crashed 3 workers; last: killed by signal 9",
            "error_type": "poison_pill",
            "key": None,
            "value": b"\x84\xa1v\x01",
            "offset": 0,
        },
    )
    original = b"\x85" + b"x" * 300
    cut: dict[str, Any] = {}
    for k, v in record.items():
        cut[k] = v
        if k == "value":
            cut["value_size"] = len(original)
    cut.update(
        reason="reply undeliverable to 'replies.gone': Broker: Unknown topic or partition",
        error_type="reply_undeliverable",
        value=original[:64],
        partition=70_000,
        offset=2**40,
    )
    ok("dlq", "value_cut", cut)

    def with_(**kw: Any) -> dict[str, Any]:
        return {**record, **kw}

    without_value = dict(record)
    del without_value["value"]
    bad("dlq", "missing_value", pack(without_value), "missing_field", "value")
    bad("dlq", "unknown_version", pack(with_(v=2)), "unknown_version", "v")
    bad("dlq", "value_not_bin", pack(with_(value="abc")), "wrong_type", "value")
    bad("dlq", "key_not_bin", pack(with_(key="user_42")), "wrong_type", "key")
    bad("dlq", "negative_offset", pack(with_(offset=-1)), "bad_value", "offset")
    bad("dlq", "wrong_type_partition", pack(with_(partition="3")), "wrong_type", "partition")
    bad("dlq", "not_map", pack("record"), "not_map")


def frame_cases() -> None:
    ready = {
        "t": "ready",
        "v": 1,
        "pid": 4242,
        "worker_id": "w1",
        "python": "3.11.2",
        "caps": ["callable", "zygote"],
    }
    call = {
        "t": "call",
        "v": 1,
        "seq": 7,
        "op": "execute_program",
        "session": "s-1",
        "program": "counter",
        "args": {"by": 2},
        "spec": {"kind": "callable", "entry": "snakefleet.examples:counter"},
        "state": {"n": 40},
    }
    result_ok = {
        "t": "result",
        "v": 1,
        "seq": 7,
        "ok": True,
        "value": {"n": 42},
        "state": {"n": 42},
        "exec_us": 31,
    }
    result_err = {
        "t": "result",
        "v": 1,
        "seq": 8,
        "ok": False,
        "error": {"type": "program_error", "message": "boom", "traceback": "Traceback..."},
        "exec_us": 5,
    }
    ping = {"t": "ping", "v": 1, "seq": 9}
    pong = {"t": "pong", "v": 1, "seq": 9, "rss_kb": 20480}
    shutdown = {"t": "shutdown", "v": 1}
    error = {"t": "error", "v": 1, "message": "frame is not a map"}
    frames = [ready, call, result_ok, result_err, ping, pong, shutdown, error]
    names = ["ready", "call", "result_ok", "result_error", "ping", "pong", "shutdown", "error"]

    def ok_stream(name: str, values: list[Any]) -> None:
        CASES.setdefault("frame", []).append(
            (
                name,
                b"".join(frame(v) for v in values),
                {"valid": True, "decoded": [to_json(v) for v in values]},
            )
        )

    for name, value in zip(names, frames):
        ok_stream(name, [value])
    ok_stream("stream_of_all", frames)
    ok_stream("call_minimal", [{"t": "call", "v": 1, "seq": 1, "op": "ping", "session": ""}])
    ok_stream(
        "call_cached",
        [
            {
                "t": "call",
                "v": 1,
                "seq": 9,
                "op": "execute_program",
                "session": "user_42",
                "program": "counter",
                "args": {"by": 1},
                "spec_ver": 0x7EDCBA9876543210,
                "state_ver": 8,
            }
        ],
    )

    bad("frame", "unknown_type", frame({"t": "dance", "v": 1}), "unknown_frame", "t")
    bad("frame", "missing_type", frame({"v": 1, "seq": 1}), "missing_field", "t")
    bad("frame", "missing_version", frame({"t": "ping", "seq": 1}), "missing_field", "v")
    bad("frame", "unknown_version", frame({"t": "ping", "v": 3, "seq": 1}), "unknown_version", "v")
    bad(
        "frame",
        "result_missing_seq",
        frame({"t": "result", "v": 1, "ok": True}),
        "missing_field",
        "seq",
    )
    bad(
        "frame",
        "result_wrong_ok",
        frame({"t": "result", "v": 1, "seq": 1, "ok": 1}),
        "wrong_type",
        "ok",
    )
    bad(
        "frame",
        "call_missing_op",
        frame({"t": "call", "v": 1, "seq": 1, "session": "s"}),
        "missing_field",
        "op",
    )
    bad(
        "frame",
        "call_state_ver_not_int",
        frame({"t": "call", "v": 1, "seq": 1, "op": "ping", "session": "s", "state_ver": "8"}),
        "wrong_type",
        "state_ver",
    )
    bad(
        "frame",
        "ready_missing_pid",
        frame({"t": "ready", "v": 1, "worker_id": "w"}),
        "missing_field",
        "pid",
    )
    bad("frame", "not_map", frame([1, 2]), "not_map")
    bad("frame", "truncated_header", b"\x00\x00", "truncated")
    whole = frame(ping)
    bad("frame", "truncated_body", whole[:-2], "truncated")
    bad("frame", "body_not_msgpack", struct.pack(">I", 3) + b"\xc1\xc1\xc1", "malformed")
    bad("frame", "body_trailing_bytes", struct.pack(">I", 4) + b"\x80\x00\x00\x00", "malformed")
    bad(
        "frame",
        "oversized",
        frame({"t": "pong", "v": 1, "seq": 1, "pad": "x" * 100}),
        "too_large",
        max_bytes=64,
    )
    bad("frame", "oversized_length_only", b"\xff\xff\xff\xff", "too_large", max_bytes=1 << 20)


def main() -> int:
    request_cases()
    reply_cases()
    telemetry_cases()
    dlq_cases()
    frame_cases()
    if OUT.exists():
        shutil.rmtree(OUT)
    total = 0
    for kind, cases in CASES.items():
        d = OUT / kind
        d.mkdir(parents=True)
        seen: set[str] = set()
        for name, data, expect in cases:
            assert name not in seen, f"duplicate case {kind}/{name}"
            seen.add(name)
            (d / f"{name}.msgpack").write_bytes(data)
            (d / f"{name}.json").write_text(json.dumps(expect, indent=1, ensure_ascii=False) + "\n")
            total += 1
    print(f"wrote {total} vectors under {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
