"""A program's result or session state that cannot go on the wire: the worker
answers `program_error` naming what failed (the result or the session state),
the path of the offending item, its type, and a traceback pointing at the
program; and it keeps serving. Real worker subprocesses over pipes, running
programs from a module written for these tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import WorkerProc

from snakefleet.codec import encode

PROGRAMS = """\
import collections
import datetime
import functools

import msgpack


def returns_set(ctx):
    return {1, 2, 3}


def returns_nested(ctx):
    return {"items": [1, "two", None, datetime.date(2024, 1, 1)], "after": 5}


def returns_deep_int_key(ctx):
    return {"a": [{"ok": 1}, {"b": {7: "seven"}}]}


def returns_plain(ctx):
    return {"t": (1, (2, "x")), "nan": float("nan"), "bin": b"\\x00\\xff", "big": 2**64 - 1}


def returns_ext(ctx):
    return msgpack.ExtType(5, b"x")


def returns_ordered_int_keys(ctx):
    return collections.OrderedDict([(1, "one")])


def returns_cycle(ctx):
    loop = []
    loop.append(loop)
    return loop


def returns_huge_int(ctx):
    return {"n": [2**70]}


def state_int_key(ctx):
    ctx.state[1] = "x"
    return "done"


def state_nested_set(ctx):
    ctx.state["cart"] = ["apple", "pear", "plum", {"kiwi"}]
    return "done"


def state_nested_int_key(ctx):
    ctx.state["cart"] = {"ids": {7: "x"}}
    return "done"


def state_bin_key(ctx):
    ctx.state[b"raw"] = 1
    return "done"


def sized(ctx, result, state):
    ctx.state["pad"] = bytes(state)
    return bytes(result)


def _logged(fn):
    @functools.wraps(fn)
    def wrapper(ctx, **kw):
        return fn(ctx, **kw)

    return wrapper


@_logged
def decorated(ctx):
    return object()


class Caller:
    def __call__(self, ctx):
        return object()


callable_object = Caller()
"""


@pytest.fixture(scope="module")
def programs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("unsendable")
    (path / "unsendable_progs.py").write_text(PROGRAMS)
    return path


@pytest.fixture
def worker(programs_dir: Path) -> Iterator[WorkerProc]:
    w = WorkerProc("--max-frame-bytes", "4096", path=str(programs_dir))
    try:
        w.ready()
        yield w
    finally:
        w.kill()


def run(w: WorkerProc, name: str, **fields: Any) -> dict[str, Any]:
    spec = {"kind": "callable", "entry": f"unsendable_progs:{name}"}
    return w.call("execute_program", program=name, spec=spec, **fields)


def refused(w: WorkerProc, name: str, **fields: Any) -> dict[str, Any]:
    """The error of a call that must fail with program_error; the worker must
    still serve afterwards."""
    r = run(w, name, **fields)
    assert r["ok"] is False, r
    assert "state" not in r
    error = r["error"]
    assert error["type"] == "program_error", error
    assert error["traceback"].startswith("Traceback (most recent call last):\n"), error
    assert error["traceback"].endswith("\n")
    assert w.call("ping")["value"] == "pong"
    return error  # type: ignore[no-any-return]


def def_line(name: str) -> int:
    return PROGRAMS.splitlines().index(f"def {name}(ctx):") + 1


# ---------------------------------------------------------------- the result


def test_result_that_is_a_set(worker: WorkerProc) -> None:
    error = refused(worker, "returns_set")
    assert error["message"] == (
        "the result is not serializable at result: value of type set (msgpack cannot encode it)"
    )


def test_result_with_a_bad_value_in_a_list_in_a_map(worker: WorkerProc) -> None:
    error = refused(worker, "returns_nested")
    assert error["message"] == (
        'the result is not serializable at result["items"][3]:'
        " value of type datetime.date (msgpack cannot encode it)"
    )


def test_result_with_an_int_key_deep_down(worker: WorkerProc) -> None:
    error = refused(worker, "returns_deep_int_key")
    assert error["message"] == (
        'the result is not serializable at result["a"][1]["b"][7]:'
        " key of type int (map keys must be strings)"
    )


def test_result_ext_type_is_refused_not_sent(worker: WorkerProc) -> None:
    """A top-level ext value used to skip the decode check; the supervisor
    would have refused the frame and dropped the worker."""
    error = refused(worker, "returns_ext")
    assert error["message"] == (
        "the result is not serializable at result:"
        " value of type msgpack.ext.ExtType (msgpack ext types are not part of the contract)"
    )


def test_result_map_subclass_with_int_keys_is_refused(worker: WorkerProc) -> None:
    error = refused(worker, "returns_ordered_int_keys")
    assert error["message"] == (
        "the result is not serializable at result[1]: key of type int (map keys must be strings)"
    )


def test_result_that_contains_itself(worker: WorkerProc) -> None:
    error = refused(worker, "returns_cycle")
    assert error["message"].startswith("the result is not serializable at result[0][0][0]")
    assert error["message"].endswith(
        ": containers nested more than 31 levels deep (the supervisor reads no deeper)"
    )


def test_result_int_out_of_range(worker: WorkerProc) -> None:
    error = refused(worker, "returns_huge_int")
    assert error["message"] == (
        'the result is not serializable at result["n"][0]:'
        " value of type int out of msgpack's range (-2**63 to 2**64-1)"
    )


def test_tuples_nan_bytes_and_big_ints_still_go_out(worker: WorkerProc) -> None:
    r = run(worker, "returns_plain")
    assert r["ok"] is True, r
    value = r["value"]
    assert value["t"] == [1, [2, "x"]]  # a tuple is a msgpack array, as before
    assert value["nan"] != value["nan"]
    assert (value["bin"], value["big"]) == (b"\x00\xff", 2**64 - 1)


# ---------------------------------------------------------------- the session state


def test_state_with_an_int_key(worker: WorkerProc) -> None:
    error = refused(worker, "state_int_key", state={"n": 1})
    assert error["message"] == (
        "the session state is not serializable at state[1]:"
        " key of type int (map keys must be strings)"
    )


def test_state_with_a_bad_value_nested(worker: WorkerProc) -> None:
    error = refused(worker, "state_nested_set", state={"n": 1})
    assert error["message"] == (
        'the session state is not serializable at state["cart"][3]:'
        " value of type set (msgpack cannot encode it)"
    )


def test_state_with_a_nested_int_key_is_named_not_the_result(worker: WorkerProc) -> None:
    """Found by the decode check of the whole reply, which used to blame the result."""
    error = refused(worker, "state_nested_int_key", state={"n": 1})
    assert error["message"] == (
        'the session state is not serializable at state["cart"]["ids"][7]:'
        " key of type int (map keys must be strings)"
    )


def test_state_bin_key_at_the_top(worker: WorkerProc) -> None:
    error = refused(worker, "state_bin_key")
    assert error["message"] == (
        "the session state is not serializable at state[b'raw']:"
        " key of type bytes (map keys must be strings)"
    )


def test_a_refused_state_leaves_the_delivered_one_cached(worker: WorkerProc) -> None:
    refused(worker, "state_nested_int_key", state={"n": 1})
    delivered = worker.seq - 1  # refused() pinged after the call
    spec = {"kind": "callable", "entry": "snakefleet.examples:get_state"}
    r = worker.call("execute_program", program="g", spec=spec, state_ver=delivered)
    assert r["ok"] is True and r["value"] == {"n": 1}, r


# ---------------------------------------------------------------- too large


@pytest.mark.parametrize(
    ("result", "state", "subject"),
    [
        (5000, 10, "the result is"),
        (10, 5000, "the session state is"),
        (2500, 2500, "the result and the session state are"),
    ],
)
def test_too_large_result_or_state(
    worker: WorkerProc, result: int, state: int, subject: str
) -> None:
    error = refused(worker, "sized", args={"result": result, "state": state})
    message = error["message"]
    assert message.startswith(f"{subject} too large to send: frame of "), message
    assert "bytes exceeds the limit of 4096" in message
    sizes = len(encode(bytes(result))), len(encode({"pad": bytes(state)}))
    assert message.endswith("(result {} bytes, session state {} bytes)".format(*sizes))


def test_too_large_result_without_state(worker: WorkerProc) -> None:
    spec = {"kind": "callable", "entry": "snakefleet.examples:blob"}
    r = worker.call("execute_program", program="b", spec=spec, args={"size": 5000})
    assert r["ok"] is False and r["error"]["type"] == "program_error"
    assert r["error"]["message"].startswith("the result is too large to send: frame of ")
    assert r["error"]["message"].endswith(" (result 5003 bytes)")
    assert "in blob" in r["error"]["traceback"]
    assert "\nsnakefleet.codec.FrameTooLarge: the result is too large" in r["error"]["traceback"]


# ---------------------------------------------------------------- tracebacks


def test_traceback_names_the_program_function_and_file(
    worker: WorkerProc, programs_dir: Path
) -> None:
    error = refused(worker, "returns_nested")
    path = programs_dir / "unsendable_progs.py"
    assert error["traceback"] == (
        "Traceback (most recent call last):\n"
        f'  File "{path}", line {def_line("returns_nested")}, in returns_nested\n'
        "    def returns_nested(ctx):\n"
        f"snakefleet.codec.EncodeError: {error['message']}\n"
        "(checked after returns_nested returned: the line shown is where it is defined,"
        " not where the value was made)\n"
    )


def test_traceback_of_a_state_error_names_the_program(worker: WorkerProc) -> None:
    for name in ("state_int_key", "state_nested_int_key"):
        error = refused(worker, name, state={"n": 1})
        assert f"line {def_line(name)}, in {name}\n" in error["traceback"], error


def test_traceback_sees_through_decorators_and_callable_objects(worker: WorkerProc) -> None:
    error = refused(worker, "decorated")
    assert "in decorated\n    @_logged\n" in error["traceback"]  # where Python says it starts
    error = refused(worker, "callable_object")
    assert "in __call__\n    def __call__(self, ctx):\n" in error["traceback"]


def test_traceback_says_so_when_no_python_function_is_behind_the_program(
    worker: WorkerProc,
) -> None:
    spec = {"kind": "callable", "entry": "builtins:type"}  # type(ctx): a class
    r = worker.call("execute_program", program="t", spec=spec)
    error = r["error"]
    assert error["message"] == (
        "the result is not serializable at result: value of type type (msgpack cannot encode it)"
    )
    assert error["traceback"] == (
        "Traceback (most recent call last):\n"
        "  (no Python function to show for program 't' of kind 'callable')\n"
        f"snakefleet.codec.EncodeError: {error['message']}\n"
    )
