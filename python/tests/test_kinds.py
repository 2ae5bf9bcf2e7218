"""The kind table: kinds registered by name and builder path, imported on
their first build, and the errors for a kind that is unknown or cannot load."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import worker_env

from snakefleet import kinds, programs
from snakefleet.context import SessionContext
from snakefleet.errors import INTERNAL, INVALID_PROGRAM, ProgramError
from snakefleet.kinds import KINDS, Kind, available_kinds, known_kinds, register_kind
from snakefleet.programs import Program, ProgramRegistry, run_program

BUILDER_MODULE = """
from snakefleet.programs import Program

BUILDS = 0
NOT_CALLABLE = 42


class Shout(Program):
    def run(self, ctx, inputs):
        return str(inputs["text"]).upper()


def build(program_id, spec):
    global BUILDS
    BUILDS += 1
    return Shout(program_id, spec)
"""


@pytest.fixture
def builder_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The name of a fresh module holding a `build` builder, not yet imported;
    tmp_path is on sys.path."""
    name = f"kind_builder_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(BUILDER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def ctx() -> SessionContext:
    return SessionContext("s", "w1", "p", None)


# ---------------------------------------------------------------- the built-in table


def test_builtin_kinds_are_registered_by_path() -> None:
    assert list(KINDS) == ["callable", "dspy"]
    assert KINDS["callable"].path == "snakefleet.programs:build_callable"
    assert KINDS["dspy"].path == "snakefleet.dspy_kind:build_dspy"
    assert KINDS["dspy"].requires == "dspy" and KINDS["callable"].requires is None
    assert known_kinds() == ["callable", "dspy"]


def test_programs_module_does_not_import_or_name_dspy_kind() -> None:
    code = (
        "import sys, snakefleet.programs\n"
        "print(sorted(m for m in sys.modules if 'dspy' in m))\n"
        "snakefleet.programs.ProgramRegistry().build("
        "'p', {'kind': 'callable', 'entry': 'snakefleet.examples:echo'})\n"
        "print(sorted(m for m in sys.modules if 'dspy' in m))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=worker_env(), timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["[]", "[]"]  # nor after a callable build
    assert "dspy_kind" not in Path(programs.__file__).read_text()


def test_old_import_places_still_work() -> None:
    assert programs.KINDS is KINDS
    assert programs.Kind is Kind
    assert programs.register_kind is register_kind
    assert programs.available_kinds is available_kinds
    assert programs.known_kinds is known_kinds


# ---------------------------------------------------------------- by path


def test_a_kind_by_path_is_imported_on_first_build(builder_module: str) -> None:
    kind = Kind("shout", f"{builder_module}:build")
    assert builder_module not in sys.modules  # registering imports nothing
    reg = ProgramRegistry({"shout": kind})
    program = reg.create("s", "p", {"kind": "shout"})
    module: Any = sys.modules[builder_module]
    assert kind.build is module.build  # from now on a build calls the builder directly
    assert run_program(program, ctx(), {"text": "hi"}) == "HI"
    reg.create("s", "q", {"kind": "shout"})
    assert module.BUILDS == 2
    assert kind.path == f"{builder_module}:build"


def test_register_kind_by_path(builder_module: str) -> None:
    register_kind("shout", f"{builder_module}:build")
    try:
        assert "shout" in known_kinds() and "shout" in available_kinds()
        assert builder_module not in sys.modules
        program = ProgramRegistry().create("s", "p", {"kind": "shout"})
        assert program.kind == "shout"
    finally:
        del KINDS["shout"]


@pytest.mark.parametrize("path", ["no_colon", ":build", "module:", ""])
def test_a_malformed_builder_path_is_refused_at_registration(path: str) -> None:
    with pytest.raises(ValueError, match="is not 'module:function'"):
        Kind("k", path)


def test_a_builder_that_cannot_be_imported_is_internal(builder_module: str, tmp_path: Path) -> None:
    kind = Kind("later", "kind_builder_not_yet:build")
    reg = ProgramRegistry({"later": kind})
    with pytest.raises(ProgramError) as info:
        reg.build("p", {"kind": "later"})
    err = info.value
    assert err.error_type == INTERNAL and err.field == "spec.kind"
    assert err.message.startswith(
        "program kind 'later': cannot load its builder 'kind_builder_not_yet:build': "
        "ModuleNotFoundError"
    )
    assert err.traceback is not None and "ModuleNotFoundError" in err.traceback
    # Not remembered: once the module exists, the next build loads it.
    (tmp_path / "kind_builder_not_yet.py").write_text(BUILDER_MODULE)
    importlib.invalidate_caches()
    try:
        assert isinstance(reg.build("p", {"kind": "later"}), Program)
    finally:
        sys.modules.pop("kind_builder_not_yet", None)


def test_a_builder_path_to_a_missing_or_plain_attribute_is_internal(builder_module: str) -> None:
    missing = ProgramRegistry({"k": Kind("k", f"{builder_module}:nope")})
    with pytest.raises(ProgramError) as info:
        missing.build("p", {"kind": "k"})
    assert info.value.error_type == INTERNAL
    assert "AttributeError" in info.value.message
    plain = ProgramRegistry({"k": Kind("k", f"{builder_module}:NOT_CALLABLE")})
    with pytest.raises(ProgramError) as info:
        plain.build("p", {"kind": "k"})
    assert info.value.error_type == INTERNAL
    assert info.value.message == (
        f"program kind 'k': its builder '{builder_module}:NOT_CALLABLE' is not callable"
        " (it is a int)"
    )


# ---------------------------------------------------------------- unknown kinds


@pytest.mark.parametrize("name", ["telepathy", None, 5, ["callable"]])
def test_an_unknown_kind_names_the_known_ones(name: Any) -> None:
    with pytest.raises(ProgramError) as info:
        ProgramRegistry().build("p", {"kind": name} if name is not None else {})
    err = info.value
    assert err.error_type == INVALID_PROGRAM and err.field == "spec.kind"
    assert err.message == f"unknown program kind {name!r} (this worker knows: callable, dspy)"


def test_an_unknown_kind_error_names_the_registrys_own_table() -> None:
    only = {"solo": Kind("solo", lambda pid, s: Program(pid, s))}
    with pytest.raises(ProgramError) as info:
        ProgramRegistry(only).build("p", {"kind": "callable"})
    assert info.value.message == "unknown program kind 'callable' (this worker knows: solo)"
    assert kinds.unknown_kind("x", only).to_wire() == {
        "type": INVALID_PROGRAM,
        "message": "unknown program kind 'x' (this worker knows: solo)",
        "field": "spec.kind",
    }


def test_known_kinds_include_the_unavailable_ones() -> None:
    table = {
        "b": Kind("b", lambda pid, s: Program(pid, s), requires="no_such_module_xyz"),
        "a": Kind("a", lambda pid, s: Program(pid, s)),
    }
    assert known_kinds(table) == ["a", "b"]
    assert available_kinds(table) == ["a"]
