"""Programs, the registry and the session context, in-process."""

from __future__ import annotations

from typing import Any

import pytest

from snakefleet import examples
from snakefleet.context import SessionContext, StateError
from snakefleet.programs import (
    KINDS,
    Kind,
    Program,
    ProgramError,
    ProgramRegistry,
    available_kinds,
    describe,
    register_kind,
    run_program,
)


def spec(name: str) -> dict[str, str]:
    return {"kind": "callable", "entry": f"snakefleet.examples:{name}"}


def ctx(state: dict[str, Any] | None = None) -> SessionContext:
    return SessionContext("s", "w1", "p", state)


# ---------------------------------------------------------------- registry


def test_programs_are_namespaced_by_session() -> None:
    reg = ProgramRegistry()
    a = reg.create("a", "p", spec("add"))
    b = reg.create("b", "p", spec("echo"))
    assert a is not b
    assert reg.get("a", "p") is a and reg.get("b", "p") is b
    assert reg.ids("a") == ["p"] and reg.ids("zzz") == []
    reg.create("a", "q", spec("noop"))
    assert reg.ids("a") == ["p", "q"]
    assert len(reg) == 3 and reg.session_count == 2
    assert reg.cleanup("a") == 2
    assert reg.get("a", "p") is None and reg.get("b", "p") is b
    assert reg.cleanup("a") == 0


def test_delete() -> None:
    reg = ProgramRegistry()
    reg.create("s", "p", spec("noop"))
    assert reg.delete("s", "p") is True
    assert reg.delete("s", "p") is False
    assert reg.session_count == 0


def test_ensure_builds_rebuilds_or_fails() -> None:
    reg = ProgramRegistry()
    with pytest.raises(ProgramError) as info:
        reg.ensure("s", "p", None)
    assert info.value.error_type == "program_not_found"
    first = reg.ensure("s", "p", spec("add"))
    assert reg.ensure("s", "p", None) is first
    assert reg.ensure("s", "p", spec("add")) is first  # same spec: cached
    second = reg.ensure("s", "p", spec("echo"))  # different spec: rebuilt
    assert second is not first and reg.get("s", "p") is second


@pytest.mark.parametrize(
    ("bad_spec", "needle"),
    [
        ({"kind": "callable", "entry": "no_such_module_xyz:f"}, "no_such_module_xyz:f"),
        ({"kind": "callable", "entry": "snakefleet.examples:nope"}, "snakefleet.examples:nope"),
        ({"kind": "callable", "entry": "snakefleet.examples:MIB"}, "not callable"),
        ({"kind": "callable", "entry": "no-colon"}, "no-colon"),
        ({"kind": "callable"}, "entry"),
        ({"kind": "callable", "entry": 5}, "entry"),
        ({"kind": "telepathy"}, "telepathy"),
    ],
)
def test_invalid_programs(bad_spec: dict[str, Any], needle: str) -> None:
    with pytest.raises(ProgramError) as info:
        ProgramRegistry().create("s", "p", bad_spec)
    assert info.value.error_type == "invalid_program"
    assert needle in info.value.message


def test_dotted_entry_attribute() -> None:
    program = ProgramRegistry().build("p", {"kind": "callable", "entry": "os.path:join"})
    assert program.kind == "callable"


def test_pluggable_kind() -> None:
    class Upper(Program):
        def run(self, ctx: SessionContext, inputs: dict[str, Any]) -> Any:
            return str(inputs["text"]).upper()

    kinds = {**KINDS, "upper": Kind("upper", lambda pid, s: Upper(pid, s))}
    reg = ProgramRegistry(kinds)
    program = reg.create("s", "p", {"kind": "upper"})
    assert run_program(program, ctx(), {"text": "hi"}) == "HI"
    assert "upper" in available_kinds(kinds)
    missing = {"x": Kind("x", lambda pid, s: Upper(pid, s), requires="no_such_module_xyz")}
    assert available_kinds(missing) == []


def test_dspy_is_advertised_only_when_installed() -> None:
    import importlib.util

    have_dspy = importlib.util.find_spec("dspy") is not None
    assert available_kinds() == ["callable", "dspy"] if have_dspy else ["callable"]
    register_kind("tmp_kind", lambda pid, s: Program(pid, s))
    try:
        assert "tmp_kind" in available_kinds()
    finally:
        del KINDS["tmp_kind"]


# ---------------------------------------------------------------- running


def test_program_error_carries_user_traceback_only() -> None:
    program = ProgramRegistry().build("p", spec("fail"))
    with pytest.raises(ProgramError) as info:
        run_program(program, ctx(), {"message": "bad input"})
    err = info.value
    assert err.error_type == "program_error"
    assert err.message == "ValueError: bad input"
    assert err.traceback is not None
    assert err.traceback.startswith("Traceback (most recent call last):")
    assert "examples.py" in err.traceback and "in fail" in err.traceback
    assert "programs.py" not in err.traceback
    assert err.to_wire() == {
        "type": "program_error",
        "message": "ValueError: bad input",
        "traceback": err.traceback,
    }


def test_system_exit_in_a_program_is_a_program_error() -> None:
    def bye(ctx: SessionContext) -> None:
        raise SystemExit(4)

    class P(Program):
        def run(self, ctx: SessionContext, inputs: dict[str, Any]) -> Any:
            return bye(ctx)

    with pytest.raises(ProgramError) as info:
        run_program(P("p", {"kind": "x"}), ctx(), {})
    assert info.value.message == "SystemExit: 4"


def test_wrong_inputs_are_a_program_error() -> None:
    program = ProgramRegistry().build("p", spec("add"))
    with pytest.raises(ProgramError) as info:
        run_program(program, ctx(), {"a": 1})
    assert info.value.message.startswith("TypeError:")


def test_describe() -> None:
    assert describe(ValueError()) == "ValueError"
    assert describe(KeyError("k")) == "KeyError: 'k'"


# ---------------------------------------------------------------- state


def test_state_unchanged_is_not_returned() -> None:
    c = ctx({"n": 1, "seq": [1]})
    examples.get_state(c)
    assert c.state_delta() is None
    assert ctx().state_delta() is None


def test_state_mutation_nested_and_reassignment_detected() -> None:
    c = ctx({"n": 40})
    assert examples.counter(c, by=2) == 42
    assert c.state_delta() == {"n": 42}

    c = ctx({"seq": ["a"]})
    examples.record(c, "b")
    assert c.state_delta() == {"seq": ["a", "b"]}

    c = ctx({"x": 1})
    examples.replace_state(c, y=2)
    assert c.state_delta() == {"y": 2}

    c = ctx({"x": 1})
    examples.replace_state(c)
    assert c.state_delta() == {}

    c = ctx()  # no state sent: any non-empty state is new
    examples.counter(c)
    assert c.state_delta() == {"n": 1}


def test_bad_state_is_reported() -> None:
    c = ctx({"n": 1})
    c.state = [1]  # type: ignore[assignment]
    with pytest.raises(StateError, match="must be a dict"):
        c.state_delta()
    c = ctx({"n": 1})
    c.state["s"] = [0, {1, 2}]
    with pytest.raises(StateError) as info:
        c.state_delta()
    assert str(info.value) == (
        'the session state is not serializable at state["s"][1]:'
        " value of type set (msgpack cannot encode it)"
    )
    c = ctx()
    c.state[5] = "x"  # type: ignore[index]
    with pytest.raises(StateError) as info:
        c.state_delta()
    assert str(info.value) == (
        "the session state is not serializable at state[5]:"
        " key of type int (map keys must be strings)"
    )


def test_examples_basics() -> None:
    c = ctx()
    examples.noop(c, x=1)  # returns None
    assert examples.echo(c, a=1) == {"a": 1}
    assert examples.add(c, 2, 3) == 5
    assert examples.sleep(c, 0) == 0
    assert examples.allocate(c, 1) >= 1
    assert examples.whoami(c)["session"] == "s"
    with pytest.raises(ValueError):
        examples.crash(c, how="nonsense")


def test_the_registry_is_bounded_and_drops_the_least_recently_used_session_whole() -> None:
    spec = {"kind": "callable", "entry": "snakefleet.examples:counter"}
    reg = ProgramRegistry(max_programs=4)
    reg.create("a", "p1", spec, 1)
    reg.create("a", "p2", spec, 1)
    reg.create("b", "p1", spec, 1)
    assert reg.get("a", "p1") is not None  # a is now the most recently used
    reg.create("c", "p1", spec, 1)
    assert len(reg) == 4 and reg.evicted == 0
    reg.create("c", "p2", spec, 1)  # 5 > 4: b, used least recently, goes (whole)
    assert reg.get("b", "p1") is None and reg.evicted == 1
    assert len(reg) == 4 and reg.session_count == 2
    # what was dropped is a cache miss the supervisor answers with the spec
    with pytest.raises(ProgramError) as e:
        reg.ensure("b", "p1", None, 1)
    assert e.value.error_type == "stale_cache"
    assert reg.ensure("b", "p1", spec, 1) is reg.get("b", "p1")
    # b back makes 5: a, now the least recently used, goes with its two programs
    assert reg.get("a", "p1") is None and reg.evicted == 3 and len(reg) == 3
    assert reg.cleanup("c") == 2 and len(reg) == 1
    assert reg.delete("b", "p1") and len(reg) == 0 and reg.session_count == 0


def test_a_session_alone_over_the_bound_keeps_its_programs() -> None:
    spec = {"kind": "callable", "entry": "snakefleet.examples:counter"}
    reg = ProgramRegistry(max_programs=1)
    reg.create("a", "p1", spec, 1)
    reg.create("a", "p2", spec, 1)
    assert reg.get("a", "p1") is not None and reg.get("a", "p2") is not None
