"""The codec beyond the shared vectors: round trips, limits, reader state."""

from __future__ import annotations

import collections
import datetime
import struct
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest

from snakefleet.codec import (
    MAX_FRAME_BYTES,
    DecodeError,
    EncodeError,
    FrameReader,
    FrameTooLarge,
    decode_map,
    decode_reply,
    decode_request,
    decode_value,
    encode,
    encode_frame,
    find_unsendable,
    refusal_message,
    validate_frame,
    validate_reply,
    validate_request,
)

REQUEST = {"v": 1, "id": "r-1", "session": "s-1", "op": "ping"}


def raw_frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def error_of(fn: Any, *args: Any, **kwargs: Any) -> tuple[str, str | None]:
    with pytest.raises(DecodeError) as info:
        fn(*args, **kwargs)
    return info.value.code, info.value.field


# ---------------------------------------------------------------- frames


def test_frame_round_trip_many_values() -> None:
    values: list[dict[str, Any]] = [
        {"t": "ping", "v": 1, "seq": i, "blob": bytes(range(i % 256)), "s": "é" * i}
        for i in range(200)
    ]
    stream = b"".join(encode_frame(v) for v in values)
    reader = FrameReader()
    got = []
    # Feed in chunks of awkward sizes so frames straddle every boundary.
    for i in range(0, len(stream), 97):
        reader.feed(stream[i : i + 97])
        while (frame := reader.get_frame()) is not None:
            got.append(frame)
    reader.eof()
    assert got == values
    assert reader.pending == 0


def test_encode_frame_layout() -> None:
    data = encode_frame({"t": "shutdown", "v": 1})
    (length,) = struct.unpack(">I", data[:4])
    assert length == len(data) - 4
    assert msgpack.unpackb(data[4:]) == {"t": "shutdown", "v": 1}


def test_bin_and_str_stay_distinct() -> None:
    data = encode_frame({"t": "ping", "v": 1, "seq": 1, "b": b"abc", "s": "abc"})
    reader = FrameReader()
    reader.feed(data)
    frame = reader.get_frame()
    assert frame is not None
    assert frame["b"] == b"abc" and frame["s"] == "abc"


def test_frame_exactly_at_limit_is_accepted_one_more_is_not() -> None:
    body = msgpack.packb({"t": "ping", "v": 1, "seq": 1, "pad": "x" * 40})
    reader = FrameReader(max_frame_bytes=len(body))
    reader.feed(raw_frame(body))
    assert reader.get_frame() is not None
    small = FrameReader(max_frame_bytes=len(body) - 1)
    small.feed(raw_frame(body)[:4])  # the header alone is enough to know
    assert error_of(small.get_frame) == ("too_large", None)


def test_too_large_breaks_the_reader_for_good() -> None:
    reader = FrameReader(max_frame_bytes=64)
    reader.feed(b"\x00\x01\x00\x00")
    with pytest.raises(DecodeError):
        reader.get_frame()
    assert reader.broken
    reader.feed(encode_frame({"t": "ping", "v": 1, "seq": 1}))
    assert error_of(reader.get_frame) == ("too_large", None)


def test_bad_body_does_not_break_framing() -> None:
    good = encode_frame({"t": "ping", "v": 1, "seq": 2})
    stream = raw_frame(b"\xc1") + raw_frame(b"\x93\x01\x02\x03") + raw_frame(b"\x80\x00") + good
    reader = FrameReader()
    reader.feed(stream)
    assert error_of(reader.get_frame) == ("malformed", None)
    assert error_of(reader.get_frame) == ("not_map", None)
    assert error_of(reader.get_frame) == ("malformed", None)
    assert reader.get_frame() == {"t": "ping", "v": 1, "seq": 2}
    assert not reader.broken


def test_non_string_keys_are_malformed_top_level_and_nested() -> None:
    for body in (
        msgpack.packb({1: "x"}),
        msgpack.packb({b"t": "ping"}, use_bin_type=True),
        msgpack.packb({"t": "call", "args": {2: "x"}}),
        msgpack.packb({"t": "call", "args": [{None: 1}]}),
    ):
        reader = FrameReader()
        reader.feed(raw_frame(body))
        assert error_of(reader.get_frame) == ("malformed", None)


def test_ext_types_are_malformed() -> None:
    body = msgpack.packb({"t": "ping", "x": msgpack.ExtType(5, b"zz")})
    assert error_of(decode_value, body) == ("malformed", None)
    # The standard timestamp ext (-1) is decoded by msgpack itself.
    assert decode_map(msgpack.packb({"ts": msgpack.Timestamp(1)}), None) == {
        "ts": msgpack.Timestamp(1)
    }


def test_empty_frame_body_is_a_decode_error_not_a_crash() -> None:
    reader = FrameReader()
    reader.feed(b"\x00\x00\x00\x00" + encode_frame({"t": "ping", "v": 1, "seq": 1}))
    assert error_of(reader.get_frame)[0] == "truncated"
    assert reader.get_frame() is not None


def test_truncated_stream_only_reported_at_eof() -> None:
    data = encode_frame({"t": "ping", "v": 1, "seq": 1})
    reader = FrameReader()
    reader.feed(data[:-1])
    assert reader.get_frame() is None
    assert reader.pending == len(data) - 1
    assert error_of(reader.eof) == ("truncated", None)
    reader.feed(data[-1:])
    assert reader.get_frame() is not None
    reader.eof()


def test_reader_rejects_silly_limits() -> None:
    with pytest.raises(ValueError):
        FrameReader(0)
    with pytest.raises(ValueError):
        FrameReader(1 << 32)


def test_encode_errors() -> None:
    with pytest.raises(EncodeError, match="not serializable"):
        encode_frame({"x": object()})
    with pytest.raises(EncodeError, match="not serializable"):
        encode({"x": 1 << 70})
    with pytest.raises(EncodeError, match="exceeds the limit"):
        encode_frame({"pad": "x" * 100}, max_frame_bytes=64)
    assert len(encode_frame({"pad": "x" * 100}, max_frame_bytes=None)) > 100
    assert MAX_FRAME_BYTES == 16 * 1024 * 1024


def test_too_large_frame_tells_its_size_and_limit() -> None:
    with pytest.raises(FrameTooLarge) as info:
        encode_frame({"pad": "x" * 100}, max_frame_bytes=64)
    assert (info.value.size, info.value.limit) == (len(encode({"pad": "x" * 100})), 64)
    assert str(info.value) == f"frame of {info.value.size} bytes exceeds the limit of 64"


class _RaisingMap(dict[str, Any]):
    def items(self) -> Any:
        raise RuntimeError("items() broke")


def test_user_code_failing_inside_encode_is_an_encode_error() -> None:
    """msgpack calls a dict subclass's items(); what it raises must not escape as
    something the worker does not expect."""
    with pytest.raises(EncodeError, match="RuntimeError: items\\(\\) broke"):
        encode({"m": _RaisingMap(a=1)})
    with pytest.raises(EncodeError, match="BufferError"):
        encode(memoryview(bytes(8))[::2])


# ---------------------------------------------------------------- explaining a refusal


def nest(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "path", "problem"),
    [
        ({1, 2}, "result", "value of type set (msgpack cannot encode it)"),
        (
            {"items": [1, 2, 3, datetime.datetime(2024, 1, 1)]},
            'result["items"][3]',
            "value of type datetime.datetime (msgpack cannot encode it)",
        ),
        ([object()], "result[0]", "value of type object (msgpack cannot encode it)"),
        ({"a": {"b": {3: 1}}}, 'result["a"]["b"][3]', "key of type int (map keys must be strings)"),
        ({(1, 2): 1}, "result[(1, 2)]", "key of type tuple (map keys must be strings)"),
        ({None: 1}, "result[None]", "key of type NoneType (map keys must be strings)"),
        (
            {"x": (1, {2.5: 1})},
            'result["x"][1][2.5]',
            "key of type float (map keys must be strings)",
        ),
        (
            [2**64],
            "result[0]",
            "value of type int out of msgpack's range (-2**63 to 2**64-1)",
        ),
        (
            [-(2**63) - 1],
            "result[0]",
            "value of type int out of msgpack's range (-2**63 to 2**64-1)",
        ),
        ({"s": "\ud800"}, 'result["s"]', "value of type str with a lone surrogate (not UTF-8)"),
        (
            {"\udc80": 1},
            'result["\\udc80"]',
            "key of type str with a lone surrogate (not UTF-8)",
        ),
        (
            [msgpack.Timestamp(1, 0)],
            "result[0]",
            "value of type msgpack.ext.Timestamp (msgpack ext types are not part of the contract)",
        ),
        (
            {"e": msgpack.ExtType(3, b"")},
            'result["e"]',
            "value of type msgpack.ext.ExtType (msgpack ext types are not part of the contract)",
        ),
        (
            memoryview(bytes(8))[::2],
            "result",
            "value of type memoryview that is not contiguous",
        ),
        (
            nest(32),
            "result" + "[0]" * 31,
            "containers nested more than 31 levels deep (the supervisor reads no deeper)",
        ),
    ],
)
def test_find_unsendable_names_path_and_problem(value: Any, path: str, problem: str) -> None:
    assert find_unsendable(value, "result") == (path, problem)


def test_find_unsendable_finds_nothing_in_what_the_wire_carries() -> None:
    fine = {
        "t": (1, (2, "x")),  # tuples are arrays
        "nan": float("nan"),
        "bin": b"\x00",
        "ba": bytearray(b"\x01"),
        "mv": memoryview(b"ab"),
        "big": 2**64 - 1,
        "small": -(2**63),
        "od": collections.OrderedDict(a=[True, None]),
        "ü": "ünïcode",
        b"bin key": 1,  # below the root of a frame, as the decoder allows
        "deep": nest(30),
    }
    assert find_unsendable(fine, "result") is None
    assert find_unsendable(fine, "state", str_keys_at_root=True) == (
        "state[b'bin key']",
        "key of type bytes (map keys must be strings)",
    )


def test_find_unsendable_reports_the_first_item_in_encoding_order() -> None:
    value = {"a": [1, {"b": {1, 2}}], 5: "x", "c": object()}
    assert find_unsendable(value, "result") == (
        'result["a"][1]["b"]',
        "value of type set (msgpack cannot encode it)",
    )
    del value["a"]
    assert find_unsendable(value, "result") == (
        "result[5]",
        "key of type int (map keys must be strings)",
    )


def test_find_unsendable_cuts_long_keys_and_escapes_strings() -> None:
    key = "k" * 60
    path, _ = find_unsendable({key: {1}}, "result") or ("", "")
    assert path == 'result["' + "k" * 40 + '..."]'
    path, _ = find_unsendable({'say "hi"\n': {1}}, "result") or ("", "")
    assert path == 'result["say \\"hi\\"\\n"]'


def test_find_unsendable_survives_user_code_that_raises() -> None:
    assert find_unsendable({"m": _RaisingMap(a=1)}, "result") is None


def test_refusal_message() -> None:
    found = ('result["x"]', "value of type set (msgpack cannot encode it)")
    error = EncodeError("not serializable: TypeError: can not serialize 'set' object")
    assert refusal_message("the result", found, error) == (
        'the result is not serializable at result["x"]:'
        " value of type set (msgpack cannot encode it)"
    )
    assert refusal_message("the result", None, error) == (
        "the result is not serializable: TypeError: can not serialize 'set' object"
    )


# ---------------------------------------------------------------- requests


def test_request_round_trip_keeps_unknown_keys() -> None:
    req = {**REQUEST, "future": [1, {"a": b"\x00"}]}
    assert decode_request(encode(req)) == req


def test_request_size_limit_is_inclusive() -> None:
    data = encode(REQUEST)
    assert decode_request(data, max_bytes=len(data)) == REQUEST
    assert error_of(decode_request, data, max_bytes=len(data) - 1) == ("too_large", None)


def test_request_lengths_count_utf8_bytes() -> None:
    assert decode_request(encode({**REQUEST, "id": "é" * 64}))  # 128 bytes
    assert error_of(decode_request, encode({**REQUEST, "id": "é" * 65})) == ("bad_value", "id")
    assert decode_request(encode({**REQUEST, "session": "x" * 256}))
    assert error_of(decode_request, encode({**REQUEST, "session": "x" * 257})) == (
        "bad_value",
        "session",
    )


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"v": True}, "wrong_type", "v"),
        ({"v": 1.0}, "wrong_type", "v"),
        ({"op": "create_program", "program": "p"}, "missing_field", "args.spec"),
        ({"op": "create_program", "program": "p", "args": {"spec": []}}, "wrong_type", "args.spec"),
        (
            {"op": "create_program", "program": "p", "args": {"spec": {"kind": 1}}},
            "wrong_type",
            "args.spec.kind",
        ),
        ({"op": "delete_program"}, "missing_field", "program"),
        ({"program": ""}, "bad_value", "program"),
        ({"program": "x" * 257}, "bad_value", "program"),
        ({"op": "set_session_state"}, "missing_field", "args.state"),
        ({"op": "set_session_state", "args": {"state": []}}, "wrong_type", "args.state"),
        ({"deadline_ms": 1.5}, "wrong_type", "deadline_ms"),
        ({"deadline_ms": False}, "wrong_type", "deadline_ms"),
        ({"v": 2, "id": 5}, "unknown_version", "v"),
    ],
)
def test_request_errors(change: dict[str, Any], code: str, field: str) -> None:
    assert error_of(decode_request, encode({**REQUEST, **change})) == (code, field)


def test_request_optional_fields_accepted() -> None:
    req = {
        **REQUEST,
        "op": "create_session",
        "args": {},
        "deadline_ms": 0,
        "reply_to": "r",
        "meta": {},
    }
    validate_request(req)
    validate_request({**REQUEST, "op": "execute_program", "program": "p"})


def test_validate_request_rejects_non_map() -> None:
    assert error_of(validate_request, [1]) == ("not_map", None)


# ---------------------------------------------------------------- replies


def test_reply_checks() -> None:
    ok = {"v": 1, "id": "r", "session": "s", "ok": True, "result": 1}
    validate_reply(ok)
    assert decode_reply(encode(ok)) == ok
    assert error_of(validate_reply, {**ok, "ok": 1}) == ("wrong_type", "ok")
    missing = dict(ok)
    del missing["result"]
    assert error_of(validate_reply, missing) == ("missing_field", "result")
    bad_error = {"v": 1, "id": "r", "session": "s", "ok": False, "error": {"type": "x"}}
    assert error_of(validate_reply, bad_error) == ("missing_field", "error.message")
    with_tb = {**bad_error, "error": {"type": "x", "message": "m", "traceback": 3}}
    assert error_of(validate_reply, with_tb) == ("wrong_type", "error.traceback")
    assert error_of(validate_reply, {**ok, "timings": {"exec_us": "1"}}) == (
        "wrong_type",
        "timings.exec_us",
    )


# ---------------------------------------------------------------- frames: validation


CALL = {"t": "call", "v": 1, "seq": 1, "op": "ping", "session": "s"}


@pytest.mark.parametrize(
    ("frame", "code", "field"),
    [
        ({**CALL, "op": "format_disk"}, "unknown_op", "op"),
        ({**CALL, "op": "execute_program"}, "missing_field", "program"),
        ({**CALL, "op": "create_program", "program": "p"}, "missing_field", "spec"),
        (
            {**CALL, "op": "execute_program", "program": "p", "spec": {}},
            "missing_field",
            "spec.kind",
        ),
        ({**CALL, "state": []}, "wrong_type", "state"),
        ({**CALL, "seq": "1"}, "wrong_type", "seq"),
        ({**CALL, "session": None}, "wrong_type", "session"),
        ({"t": 5, "v": 1}, "wrong_type", "t"),
        ({"t": "ping", "v": "1", "seq": 1}, "wrong_type", "v"),
        ({"t": "result", "v": 1, "seq": 1, "ok": True, "exec_us": 1}, "missing_field", "value"),
        ({"t": "result", "v": 1, "seq": 1, "ok": False, "exec_us": 1}, "missing_field", "error"),
        (
            {"t": "result", "v": 1, "seq": 1, "ok": False, "error": {"message": "m"}, "exec_us": 1},
            "missing_field",
            "error.type",
        ),
        ({"t": "result", "v": 1, "seq": 1, "ok": True, "value": None}, "missing_field", "exec_us"),
        ({"t": "pong", "v": 1, "seq": 1}, "missing_field", "rss_kb"),
        (
            {"t": "ready", "v": 1, "pid": 1, "worker_id": "w", "python": "3", "caps": [1]},
            "wrong_type",
            "caps",
        ),
        ({"t": "error", "v": 1}, "missing_field", "message"),
        ({"t": "error", "v": 1, "message": "m", "seq": "x"}, "wrong_type", "seq"),
    ],
)
def test_frame_errors(frame: dict[str, Any], code: str, field: str) -> None:
    assert error_of(validate_frame, frame) == (code, field)


def test_valid_frames() -> None:
    validate_frame(CALL)
    validate_frame({**CALL, "op": "stats", "args": [1, 2]})
    validate_frame({**CALL, "op": "execute_program", "program": "p", "args": {"x": 1}, "state": {}})
    validate_frame({"t": "result", "v": 1, "seq": 1, "ok": True, "value": None, "exec_us": 0})
    validate_frame({"t": "error", "v": 1, "message": "m", "seq": 3})
    validate_frame({"t": "shutdown", "v": 1})


@pytest.mark.parametrize(
    "data",
    [b'{"v": 1, "id": "r-1", "session": "s-1", "op": "ping"}', b"[1, 2]\n"],
)
def test_json_request_is_named_as_json(data: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        decode_request(data)
    assert (info.value.code, info.value.field) == ("malformed", None)
    assert "JSON, not msgpack" in info.value.message


def test_bytes_that_only_start_like_json_keep_the_msgpack_error() -> None:
    with pytest.raises(DecodeError) as info:
        decode_request(b"{oops")
    assert info.value.code == "malformed"
    assert "JSON" not in info.value.message
