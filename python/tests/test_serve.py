"""serve() called in-process on plain pipes, as a zygote's forked child would."""

from __future__ import annotations

import os
import threading
from typing import Any

from snakefleet.codec import FrameReader, encode_frame, validate_frame
from snakefleet.programs import KINDS, Kind, Program, ProgramRegistry
from snakefleet.worker import serve


def run_serve(frames: list[bytes], **kwargs: Any) -> tuple[int, list[dict[str, Any]]]:
    """Feed `frames` then EOF to serve(); returns (exit code, frames out)."""
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    collected = bytearray()

    def drain() -> None:
        while chunk := os.read(out_r, 65536):
            collected.extend(chunk)

    drainer = threading.Thread(target=drain)
    drainer.start()

    def write() -> None:
        os.write(in_w, b"".join(frames))
        os.close(in_w)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        rc = serve(in_r, out_w, "w-inproc", **kwargs)
    finally:
        os.close(out_w)
        os.close(in_r)
        writer.join(10)
        drainer.join(10)
        os.close(out_r)
    reader = FrameReader()
    reader.feed(bytes(collected))
    out = []
    while (frame := reader.get_frame()) is not None:
        validate_frame(frame)
        out.append(frame)
    reader.eof()
    return rc, out


def test_serve_in_process_until_eof() -> None:
    registry = ProgramRegistry()
    calls = [
        encode_frame(
            {
                "t": "call",
                "v": 1,
                "seq": i,
                "op": "execute_program",
                "session": "s",
                "program": "c",
                "spec": {"kind": "callable", "entry": "snakefleet.examples:counter"},
                "args": {"by": i},
                "state": {"n": 100},
            }
        )
        for i in range(1, 4)
    ]
    rc, out = run_serve(calls, registry=registry)
    assert rc == 0
    assert out[0]["t"] == "ready" and out[0]["worker_id"] == "w-inproc"
    assert [(f["seq"], f["value"], f["state"]) for f in out[1:]] == [
        (1, 101, {"n": 101}),
        (2, 102, {"n": 102}),
        (3, 103, {"n": 103}),
    ]
    assert registry.ids("s") == ["c"]  # the caller's registry was used


def test_serve_broken_stream_returns_3() -> None:
    rc, out = run_serve([b"\x00\x10\x00\x00"], max_frame_bytes=1024)
    assert rc == 3
    assert [f["t"] for f in out] == ["ready", "error"]


def test_bug_in_a_kind_builder_is_an_internal_error_not_a_crash() -> None:
    def build(program_id: str, spec: object) -> Program:
        raise RuntimeError("builder bug")

    registry = ProgramRegistry({**KINDS, "buggy": Kind("buggy", build)})
    call = {"t": "call", "v": 1, "op": "create_program", "session": "s", "program": "p"}
    frames = [
        encode_frame({**call, "seq": 1, "spec": {"kind": "buggy"}}),
        encode_frame({**call, "seq": 2, "op": "ping"}),
    ]
    rc, out = run_serve(frames, registry=registry)
    assert rc == 0
    assert out[1]["error"]["type"] == "internal"
    assert out[1]["error"]["message"] == "RuntimeError: builder bug"
    assert out[2]["value"] == "pong"
