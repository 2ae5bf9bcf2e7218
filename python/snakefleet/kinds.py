"""Program kinds: the names a spec's `kind` may give, and where each kind's
builder lives.

KINDS maps a kind name to a `Kind`. A kind is registered with its builder,
`build(program_id, spec) -> Program`, or with the import path of its builder,
"package.module:function". A path lets this table name a kind's module
without importing it: the module is imported when the first program of that
kind is built, and from then on the Kind's `build` is the builder itself:
later builds cost a dict hit and a call, as with a builder registered
directly. So snakefleet.programs, which snakefleet.dspy_kind imports, never
names dspy_kind: there is no import cycle.

The built-in kinds:

    callable  {kind: "callable", entry: "package.module:function"};
              snakefleet.programs
    dspy      {kind: "dspy", signature, module?, lm?}, a DSPy module;
              snakefleet.dspy_kind. Needs the optional `dspy` package.

A kind may name a module it `requires` (dspy needs `dspy`): it is advertised
in the worker's `ready.caps` only when that module can be found, and finding
it imports nothing.

A spec whose `kind` is not in the table is `invalid_program`, naming the
kinds this worker knows; a builder that cannot be imported is `internal` (the
worker's installation is at fault, not the request).
"""

from __future__ import annotations

import importlib
import importlib.util

from snakefleet.errors import INTERNAL, INVALID_PROGRAM, ProgramError, describe

# `typing` costs a worker ~3 ms of start-up (it imports `re`); annotations are
# strings here (PEP 563), so type-only names are imported for checkers only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, Callable

    from snakefleet.programs import Program

    Spec = Mapping[str, Any]
    Builder = Callable[[str, Spec], Program]


class Kind:
    """One program kind: its name, its builder (or, until the first build, the
    builder's import path) and the module it requires, if any."""

    __slots__ = ("build", "name", "path", "requires")

    def __init__(self, name: str, build: Builder | str, requires: str | None = None) -> None:
        self.name = name
        self.requires = requires
        self.path: str | None = None
        if isinstance(build, str):
            module_name, sep, attr_path = build.partition(":")
            if not sep or not module_name or not attr_path:
                raise ValueError(f"kind {name!r}: builder path {build!r} is not 'module:function'")
            self.path = build
            # Replaced by the builder on the first build: later builds call it directly.
            self.build: Builder = self._load_and_build
        else:
            self.build = build

    def __repr__(self) -> str:
        return f"Kind({self.name!r}, {self.path or self.build!r}, requires={self.requires!r})"

    def available(self) -> bool:
        """True when the kind's required module is importable (not imported)."""
        if self.requires is None:
            return True
        try:
            return importlib.util.find_spec(self.requires) is not None
        except (ImportError, ValueError):
            return False

    def _load_and_build(self, program_id: str, spec: Spec) -> Program:
        """The first build of a kind registered by path: import the builder,
        keep it as `build`, build with it."""
        assert self.path is not None  # only a Kind made from a path builds through here
        self.build = import_builder(self.name, self.path)
        return self.build(program_id, spec)


def import_builder(kind: str, path: str) -> Builder:
    """The callable that 'package.module:attr.path' names; ProgramError
    (internal) naming the kind when it cannot be had. Not cached: a failed
    import is tried again by the next build."""
    module_name, _, attr_path = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr_path.split("."):
            obj = getattr(obj, part)
    except Exception as e:  # noqa: BLE001 - the module's own code may raise anything
        import traceback  # only on the error path: keeps worker start-up lean

        raise ProgramError(
            INTERNAL,
            f"program kind '{kind}': cannot load its builder '{path}': {describe(e)}",
            "".join(traceback.format_exception(type(e), e, e.__traceback__)),
            field="spec.kind",
        ) from None
    if not callable(obj):
        raise ProgramError(
            INTERNAL,
            f"program kind '{kind}': its builder '{path}' is not callable"
            f" (it is a {type(obj).__name__})",
            field="spec.kind",
        )
    return obj  # type: ignore[no-any-return]


# ---------------------------------------------------------------- the table

KINDS: dict[str, Kind] = {}


def register_kind(name: str, build: Builder | str, requires: str | None = None) -> None:
    """Add (or replace) a program kind for every registry that uses KINDS.
    `build` is the builder or its path, 'package.module:function'."""
    KINDS[name] = Kind(name, build, requires)


def known_kinds(kinds: Mapping[str, Kind] | None = None) -> list[str]:
    """Every kind in the table, sorted, whether this interpreter can build it or not."""
    return sorted(KINDS if kinds is None else kinds)


def available_kinds(kinds: Mapping[str, Kind] | None = None) -> list[str]:
    """The kinds this interpreter can build, in registration order: the
    worker's `ready.caps`."""
    table = KINDS if kinds is None else kinds
    return [name for name, kind in table.items() if kind.available()]


def unknown_kind(name: object, kinds: Mapping[str, Kind] | None = None) -> ProgramError:
    """The invalid_program error for a spec whose `kind` is not in `kinds`."""
    known = ", ".join(known_kinds(kinds))
    return ProgramError(
        INVALID_PROGRAM,
        f"unknown program kind {name!r} (this worker knows: {known})",
        field="spec.kind",
    )


# The built-in kinds, by path: neither module is imported here.
register_kind("callable", "snakefleet.programs:build_callable")
register_kind("dspy", "snakefleet.dspy_kind:build_dspy", requires="dspy")
