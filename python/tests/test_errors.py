"""snakefleet.errors against the contract: the error types it names are the
ones schemas/README.md's table and schemas/reply.schema.json list, and the
rest of the package spells them through it."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from conftest import SCHEMAS

from snakefleet import errors
from snakefleet.errors import ProgramError, describe

PACKAGE = Path(errors.__file__).parent
README_SECTION = "### Error types, one by one"


def readme_section() -> str:
    """The section's text up to the next heading."""
    text = (SCHEMAS / "README.md").read_text()
    start = text.index(README_SECTION) + len(README_SECTION)
    end = text.find("\n#", start)
    return text[start:] if end < 0 else text[start:end]


def readme_prose() -> str:
    """The section's text outside its table, on one line."""
    lines = [line for line in readme_section().splitlines() if not line.startswith("|")]
    return " ".join(" ".join(lines).split())


def readme_table_types() -> set[str]:
    """The first column of the section's table, below its header and rule."""
    lines = [line for line in readme_section().splitlines() if line.startswith("|")]
    header, rule, *rows = lines
    assert header.startswith("| `type` |") and set(rule) <= set("|- ")
    types = [row.split("|")[1].strip().strip("`") for row in rows]
    assert len(types) == len(set(types)), f"a type appears twice in the table: {types}"
    return set(types)


def schema_error_description() -> str:
    schema = json.loads((SCHEMAS / "reply.schema.json").read_text())
    description: str = schema["$defs"]["error"]["description"]
    return description


def schema_types() -> tuple[set[str], set[str]]:
    """(listed, reserved) of the error description: 'type is one of a, b (...),
    c; d is reserved (...)'."""
    text = re.sub(r"\([^()]*\)", "", schema_error_description())
    assert text.startswith("type is one of "), text
    listed, _, rest = text[len("type is one of ") :].partition(";")
    reserved = set(re.findall(r"(\w+) is reserved", rest))
    return {name.strip() for name in listed.split(",")}, reserved


def module_constants() -> dict[str, str]:
    """NAME -> value of every upper-case string constant of snakefleet.errors."""
    return {
        name: value
        for name, value in vars(errors).items()
        if name.isupper() and isinstance(value, str)
    }


# ---------------------------------------------------------------- against the contract


def test_reply_types_are_the_readme_table() -> None:
    assert readme_table_types() == errors.REPLY_TYPES


def test_reply_types_are_the_schema_list() -> None:
    listed, reserved = schema_types()
    assert listed == errors.REPLY_TYPES
    assert reserved == errors.RESERVED_TYPES


def test_reserved_and_worker_only_types_are_the_readme_ones() -> None:
    section = readme_prose()
    assert set(re.findall(r"`(\w+)` is not sent by this version", section)) == (
        errors.RESERVED_TYPES
    )
    assert set(re.findall(r"`(\w+)` stays between a supervisor and its workers", section)) == {
        errors.STALE_CACHE
    }


def test_every_constant_is_in_one_set() -> None:
    values = set(module_constants().values())
    assert values == errors.REPLY_TYPES | errors.RESERVED_TYPES | {errors.STALE_CACHE}
    assert not errors.REPLY_TYPES & errors.RESERVED_TYPES
    assert errors.STALE_CACHE not in errors.REPLY_TYPES | errors.RESERVED_TYPES
    for name, value in module_constants().items():
        assert name == value.upper(), f"{name} = {value!r}"


def test_the_package_spells_error_types_through_errors() -> None:
    """No other module of the package writes an error type as a literal."""
    types = errors.REPLY_TYPES | errors.RESERVED_TYPES | {errors.STALE_CACHE}
    # The codec's decode codes are the test vectors' vocabulary; one of them
    # is spelled like the reply type the supervisor turns it into.
    allowed = {("codec.py", errors.UNKNOWN_VERSION)}
    found = []
    for path in sorted(PACKAGE.glob("*.py")):
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Constant)
                and node.value in types
                and (path.name, node.value) not in allowed
            ):
                found.append(f"{path.name}:{node.lineno}: {node.value!r}")
    assert not found


# ---------------------------------------------------------------- the exception


def test_program_error_to_wire() -> None:
    bare = ProgramError(errors.INTERNAL, "boom")
    assert bare.to_wire() == {"type": "internal", "message": "boom"}
    assert str(bare) == "boom"
    full = ProgramError(errors.INVALID_PROGRAM, "bad", "Traceback ...", field="spec.kind")
    assert full.to_wire() == {
        "type": "invalid_program",
        "message": "bad",
        "traceback": "Traceback ...",
        "field": "spec.kind",
    }


def test_old_import_places_still_work() -> None:
    from snakefleet import programs

    assert programs.ProgramError is ProgramError
    assert programs.describe is describe
    for name in (
        "INVALID_PROGRAM",
        "PROGRAM_NOT_FOUND",
        "PROGRAM_ERROR",
        "INVALID_REQUEST",
        "INTERNAL",
        "STALE_CACHE",
    ):
        assert getattr(programs, name) == getattr(errors, name)


def test_describe() -> None:
    class Broken(Exception):
        def __str__(self) -> str:
            raise RuntimeError

    assert describe(ValueError("bad")) == "ValueError: bad"
    assert describe(KeyError()) == "KeyError"
    assert describe(Broken()) == "Broken: <exception str() failed>"
