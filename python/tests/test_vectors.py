"""Every shared test vector in schemas/vectors, through the Python codec, and
the JSON Schemas in schemas/ checked against the same vectors.

Telemetry and DLQ records are read by tools, not by the worker: the codec
only decodes them, and their schema is their validator (a vector the C codec
rejects must be rejected by the schema, at the field the vector names).

A vector is <kind>/<case>.msgpack (the bytes) plus <case>.json: either
{"valid": true, "decoded": ...} or {"valid": false, "error": {"code", "field"?},
"max_bytes"?}. The C tests run the very same files.
"""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import SCHEMAS, VECTORS

from snakefleet.codec import (
    MAX_FRAME_BYTES,
    MAX_MESSAGE_BYTES,
    DecodeError,
    FrameReader,
    decode_map,
    decode_request,
    validate_frame,
    validate_reply,
)

KINDS = ("request", "reply", "telemetry", "dlq", "frame")
# Kinds whose validator is their JSON Schema (see the module docstring).
SCHEMA_CHECKED = ("telemetry", "dlq")
SCHEMA_FILES = {
    "request": "request.schema.json",
    "reply": "reply.schema.json",
    "frame": "frame.schema.json",
    "telemetry": "telemetry.schema.json",
    "dlq": "dlq.schema.json",
}
# Codes that mean "a readable map that breaks the contract": the JSON Schema
# must reject those too. (Byte-level problems have no JSON form.)
SEMANTIC_CODES = {
    "missing_field",
    "wrong_type",
    "bad_value",
    "unknown_op",
    "unknown_version",
    "unknown_frame",
}


def all_cases() -> list[tuple[str, str]]:
    cases = [(kind, p.stem) for kind in KINDS for p in sorted((VECTORS / kind).glob("*.json"))]
    return cases


CASES = all_cases()


def load(kind: str, name: str) -> tuple[bytes, dict[str, Any]]:
    data = (VECTORS / kind / f"{name}.msgpack").read_bytes()
    expect = json.loads((VECTORS / kind / f"{name}.json").read_text())
    return data, expect


def to_json(value: Any) -> Any:
    """A decoded msgpack value as the vectors write it ({"$bin": base64})."""
    if isinstance(value, bytes):
        return {"$bin": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value


def strict_equal(a: Any, b: Any) -> bool:
    """== that also tells bool from int and int from float."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(strict_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b))
    return bool(a == b)


def read_stream(chunks: list[bytes], max_bytes: int) -> list[dict[str, Any]]:
    reader = FrameReader(max_bytes)
    frames = []
    for chunk in chunks:
        reader.feed(chunk)
        while True:
            frame = reader.get_frame()
            if frame is None:
                break
            validate_frame(frame)
            frames.append(frame)
    reader.eof()
    return frames


def splits(data: bytes, name: str) -> dict[str, list[bytes]]:
    """The ways a frame vector is fed: whole, a byte at a time, and at random
    split points (seeded, so a failure reproduces)."""
    ways = {"whole": [data], "bytewise": [data[i : i + 1] for i in range(len(data))]}
    for seed in range(5):
        rng = random.Random(f"{name}/{seed}")
        points = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 8))))
        bounds = [0, *points, len(data)]
        ways[f"random{seed}"] = [data[a:b] for a, b in zip(bounds, bounds[1:])]
    return ways


def check_error(err: DecodeError, expect: dict[str, Any]) -> None:
    want = expect["error"]
    assert (err.code, err.field) == (want["code"], want.get("field")), (
        f"got {err.code}/{err.field} ({err.message}), want {want}"
    )


@pytest.mark.parametrize(("kind", "name"), CASES, ids=[f"{k}/{n}" for k, n in CASES])
def test_vector(kind: str, name: str) -> None:
    data, expect = load(kind, name)
    if kind == "frame":
        max_bytes = expect.get("max_bytes", MAX_FRAME_BYTES)
        for way, chunks in splits(data, name).items():
            if expect["valid"]:
                frames = read_stream(chunks, max_bytes)
                assert strict_equal(to_json(frames), expect["decoded"]), way
            else:
                with pytest.raises(DecodeError) as info:
                    read_stream(chunks, max_bytes)
                check_error(info.value, expect)
        return

    max_bytes = expect.get("max_bytes", MAX_MESSAGE_BYTES)
    if kind in SCHEMA_CHECKED:
        check_schema_checked(kind, data, expect, max_bytes)
        return

    def decode() -> Any:
        if kind == "request":
            return decode_request(data, max_bytes=max_bytes)
        obj = decode_map(data, max_bytes, "reply")
        validate_reply(obj)
        return obj

    if expect["valid"]:
        assert strict_equal(to_json(decode()), expect["decoded"])
    else:
        with pytest.raises(DecodeError) as info:
            decode()
        check_error(info.value, expect)


def schema_error_names(err: jsonschema.ValidationError, field: str) -> bool:
    """Whether a schema error is about `field` (dotted, e.g. latency.exec.p50_us):
    its path, or for a missing key its message, ends in the field's last part."""
    path = [str(p) for p in err.absolute_path]
    last = field.split(".")[-1]
    return ".".join(path) == field or (
        ".".join(path) == field.rpartition(".")[0] and f"'{last}'" in err.message
    )


def check_schema_checked(kind: str, data: bytes, expect: dict[str, Any], max_bytes: int) -> None:
    """A telemetry or DLQ vector: decoded as the vector says, and the schema
    accepts it, or rejects it at the field the vector names."""
    if not expect["valid"] and expect["error"]["code"] not in SEMANTIC_CODES:
        with pytest.raises(DecodeError) as info:
            decode_map(data, max_bytes, kind)
        check_error(info.value, expect)
        return
    obj = decode_map(data, max_bytes, kind)
    errors = list(validator(kind).iter_errors(to_json(obj)))
    if expect["valid"]:
        assert strict_equal(to_json(obj), expect["decoded"])
        assert not errors, [e.message for e in errors]
        return
    field = expect["error"]["field"]
    assert any(schema_error_names(e, field) for e in errors), (
        f"schema did not reject {field}: {[(list(e.absolute_path), e.message) for e in errors]}"
    )


def test_every_kind_has_vectors() -> None:
    for kind in KINDS:
        valid = [n for k, n in CASES if k == kind and load(k, n)[1]["valid"]]
        invalid = [n for k, n in CASES if k == kind and not load(k, n)[1]["valid"]]
        assert valid and invalid, kind


# ---------------------------------------------------------------- JSON Schema


def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / SCHEMA_FILES[name]).read_text())
    return loaded


def validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema(name))


@pytest.mark.parametrize("name", sorted(SCHEMA_FILES))
def test_schema_is_valid(name: str) -> None:
    s = schema(name)
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(s)


def decoded_messages(kind: str, expect: dict[str, Any]) -> list[Any]:
    return list(expect["decoded"]) if kind == "frame" else [expect["decoded"]]


VALID = [(k, n) for k, n in CASES if load(k, n)[1]["valid"]]
SEMANTIC = [
    (k, n) for k, n in CASES if load(k, n)[1].get("error", {}).get("code") in SEMANTIC_CODES
]


@pytest.mark.parametrize(("kind", "name"), VALID, ids=[f"{k}/{n}" for k, n in VALID])
def test_valid_vector_matches_schema(kind: str, name: str) -> None:
    _, expect = load(kind, name)
    v = validator(kind)
    for message in decoded_messages(kind, expect):
        v.validate(message)


@pytest.mark.parametrize(("kind", "name"), SEMANTIC, ids=[f"{k}/{n}" for k, n in SEMANTIC])
def test_invalid_vector_rejected_by_schema(kind: str, name: str) -> None:
    """The bytes decode to a map that breaks the contract: the schema must
    reject it too (for frames: the first frame of the stream). Byte-level
    problems (truncated, malformed, too_large, not_map) have no JSON form."""
    data, _ = load(kind, name)
    v = validator(kind)
    if kind == "frame":
        reader = FrameReader()
        reader.feed(data)
        message = reader.get_frame()
    else:
        message = decode_map(data, None)
    assert message is not None
    errors = list(v.iter_errors(to_json(message)))
    assert errors, f"schema accepted {message}"


def test_telemetry_schema_examples() -> None:
    v = validator("telemetry")
    snapshot = {
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
        "lag": {"snakefleet.requests/0": 0, "snakefleet.requests/11": 42},
        "latency": {
            "exec": {"count": 120, "p50_us": 80, "p90_us": 200, "p99_us": 900, "max_us": 4000}
        },
    }
    v.validate(snapshot)
    for key, bad in [
        ("pool_size", -1),
        ("busy_workers", "2"),
        ("lag", {"no-partition": 1}),
        ("latency", {"exec": {"count": 1}}),
        ("v", 2),
    ]:
        assert list(v.iter_errors({**snapshot, key: bad})), key
    missing = dict(snapshot)
    del missing["healthy_workers"]
    assert list(v.iter_errors(missing))


def test_dlq_schema_examples() -> None:
    v = validator("dlq")
    record = {
        "v": 1,
        "reason": "missing field 'session'",
        "error_type": "invalid_request",
        "topic": "snakefleet.requests",
        "partition": 3,
        "offset": 1234,
        "key": {"$bin": base64.b64encode(b"user_42").decode()},
        "value": {"$bin": base64.b64encode(b"\x81\xa1v\x01").decode()},
        "ts_ms": 1_700_000_000_000,
        "supervisor": "host-a:1234",
    }
    v.validate(record)
    v.validate({**record, "key": None})
    assert list(v.iter_errors({**record, "value": "not bin"}))
    assert list(v.iter_errors({**record, "offset": -1}))


def test_vectors_dir_is_complete() -> None:
    """Every .msgpack has its .json and the other way round."""
    for kind in KINDS:
        d: Path = VECTORS / kind
        assert {p.stem for p in d.glob("*.msgpack")} == {p.stem for p in d.glob("*.json")}
