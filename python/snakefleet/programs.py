"""Programs: what a worker runs, built from a spec and cached per session.

A program spec is a map with at least `kind`; the kind picks a builder that
turns the spec into a `Program`. The kinds are a table in snakefleet.kinds,
each registered by name with its builder or the import path of its builder,
so a kind joins without touching the worker or this module, and its module is
not imported until a program of that kind is built. This module holds what
every kind builds on (`Program`, `run_program`, `import_object`) and the
`callable` kind.

Kind `callable`: `{kind: "callable", entry: "package.module:function"}` (the
function part may be dotted, e.g. `module:Class.method`). It is called as
`fn(ctx, **inputs)`.

`ProgramRegistry` keys programs by (session, program id): program `p` of
session `s` and program `p` of session `t` are different objects, and
`cleanup(session)` drops all of one session's programs at once.

Failures that must reach the caller as a typed result error (`type`,
`message`, optional `traceback`/`field`) are raised as `ProgramError`, with
a type from snakefleet.errors.
"""

from __future__ import annotations

import importlib

from snakefleet.context import SessionContext

# The error types and ProgramError live in snakefleet.errors; the names stay
# importable from here, where they were first defined.
from snakefleet.errors import INTERNAL as INTERNAL
from snakefleet.errors import INVALID_PROGRAM as INVALID_PROGRAM
from snakefleet.errors import INVALID_REQUEST as INVALID_REQUEST
from snakefleet.errors import PROGRAM_ERROR as PROGRAM_ERROR
from snakefleet.errors import PROGRAM_NOT_FOUND as PROGRAM_NOT_FOUND
from snakefleet.errors import STALE_CACHE as STALE_CACHE
from snakefleet.errors import ProgramError as ProgramError
from snakefleet.errors import describe as describe

# The kind table lives in snakefleet.kinds, which names each kind's builder by
# path; these names stay importable from here too.
from snakefleet.kinds import KINDS as KINDS
from snakefleet.kinds import Kind as Kind
from snakefleet.kinds import available_kinds as available_kinds
from snakefleet.kinds import known_kinds as known_kinds
from snakefleet.kinds import register_kind as register_kind
from snakefleet.kinds import unknown_kind

# `typing` costs a worker ~3 ms of start-up (it imports `re`); annotations are
# strings here (PEP 563), so type-only names are imported for checkers only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, Callable

    Spec = Mapping[str, Any]


class Program:
    """A built program. Subclasses implement `run`."""

    __slots__ = ("kind", "program_id", "spec", "spec_ver")

    def __init__(self, program_id: str, spec: Spec) -> None:
        self.program_id = program_id
        self.kind: str = spec["kind"]
        self.spec = dict(spec)
        # The supervisor's version of the spec (a hash of its stored bytes), when it sent one.
        self.spec_ver: int | None = None

    def run(self, ctx: SessionContext, inputs: dict[str, Any]) -> Any:
        raise NotImplementedError


# ---------------------------------------------------------------- errors


def format_user_traceback(exc: BaseException, skip: str = __name__) -> str:
    """The traceback of `exc` without the leading frames of module `skip`
    (this one by default), so the user sees their own code first."""
    import traceback  # only on the error path: keeps worker start-up lean

    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_globals.get("__name__") == skip:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def run_program(program: Program, ctx: SessionContext, inputs: dict[str, Any]) -> Any:
    """Run user code; any exception it raises (SystemExit included) becomes a
    `program_error`, except a ProgramError, which a kind raises to report its
    own typed error and which passes through as it is. Other BaseExceptions
    (KeyboardInterrupt, the worker's termination signal) pass through."""
    try:
        return program.run(ctx, inputs)
    except ProgramError:
        raise  # a kind's own typed error (e.g. a missing input field)
    except (Exception, SystemExit) as e:  # noqa: BLE001 - user code: report it all
        raise ProgramError(PROGRAM_ERROR, describe(e), format_user_traceback(e)) from None


# ---------------------------------------------------------------- kind: callable


class CallableProgram(Program):
    __slots__ = ("fn",)

    def __init__(self, program_id: str, spec: Spec, fn: Callable[..., Any]) -> None:
        super().__init__(program_id, spec)
        self.fn = fn

    def run(self, ctx: SessionContext, inputs: dict[str, Any]) -> Any:
        return self.fn(ctx, **inputs)


def import_object(path: str, label: str, shape: str, field: str) -> Any:
    """Import 'module:attr.path' and return the object it names. Errors are
    invalid_program naming `field`; `label` is how they name the path (e.g.
    "entry 'm:f'") and `shape` what it must look like."""
    module_name, sep, attr_path = path.partition(":")
    if not sep or not module_name or not attr_path:
        raise ProgramError(INVALID_PROGRAM, f"{label} must look like '{shape}'", field=field)
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as e:  # noqa: BLE001 - module code may raise anything
        raise ProgramError(
            INVALID_PROGRAM,
            f"cannot import {label}: {describe(e)}",
            format_user_traceback(e) if not isinstance(e, ModuleNotFoundError) else None,
            field=field,
        ) from None
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ProgramError(
                INVALID_PROGRAM,
                f"{label}: '{part}' not found in {getattr(obj, '__name__', obj)!r}",
                field=field,
            ) from None
    return obj


def resolve_entry(entry: str) -> Callable[..., Any]:
    """Import 'module:attr.path' and return the callable it names."""
    obj = import_object(entry, f"entry '{entry}'", "module:function", "spec.entry")
    if not callable(obj):
        raise ProgramError(
            INVALID_PROGRAM,
            f"entry '{entry}' is not callable (it is a {type(obj).__name__})",
            field="spec.entry",
        )
    return obj  # type: ignore[no-any-return]


def build_callable(program_id: str, spec: Spec) -> Program:
    entry = spec.get("entry")
    if not isinstance(entry, str):
        raise ProgramError(
            INVALID_PROGRAM,
            "a callable spec needs 'entry': 'module:function'"
            + ("" if entry is None else f" (got {type(entry).__name__})"),
            field="spec.entry",
        )
    return CallableProgram(program_id, spec, resolve_entry(entry))


# ---------------------------------------------------------------- registry


# Programs a worker keeps built (every session's together); past it, the
# session used least recently loses its programs. A call that names one of
# them is answered stale_cache and sent again with its spec (schemas/README.md,
# "Worker caches"). SNAKEFLEET_PROGRAM_CACHE_MAX overrides it.
PROGRAM_CACHE_MAX = 4096


class ProgramRegistry:
    """Built programs of the sessions this worker serves, bounded: at most
    `max_programs` (the sessions used least recently go first, whole)."""

    __slots__ = ("_count", "_kinds", "_sessions", "builds", "evicted", "max_programs")

    def __init__(
        self, kinds: Mapping[str, Kind] | None = None, max_programs: int = PROGRAM_CACHE_MAX
    ) -> None:
        self._kinds = KINDS if kinds is None else kinds
        # insertion order is recency: a session used is moved to the end
        self._sessions: dict[str, dict[str, Program]] = {}
        self._count = 0
        self.max_programs = max(1, max_programs)
        self.builds = 0  # programs built from a spec, for `stats`
        self.evicted = 0  # programs dropped to stay within max_programs, for `stats`

    def __len__(self) -> int:
        return self._count

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    def _touch(self, session: str) -> dict[str, Program] | None:
        programs = self._sessions.pop(session, None)
        if programs is not None:
            self._sessions[session] = programs
        return programs

    def _bound(self, keep: str) -> None:
        while self._count > self.max_programs and len(self._sessions) > 1:
            oldest = next(iter(self._sessions))
            if oldest == keep:
                break
            n = len(self._sessions.pop(oldest))
            self._count -= n
            self.evicted += n

    def build(self, program_id: str, spec: Spec) -> Program:
        kind_name = spec.get("kind")
        kind = self._kinds.get(kind_name) if isinstance(kind_name, str) else None
        if kind is None:
            raise unknown_kind(kind_name, self._kinds)
        return kind.build(program_id, spec)

    def create(
        self, session: str, program_id: str, spec: Spec, spec_ver: int | None = None
    ) -> Program:
        """Build from `spec` and cache, replacing any program of that id."""
        program = self.build(program_id, spec)
        self.builds += 1
        program.spec_ver = spec_ver
        programs = self._touch(session)
        if programs is None:
            programs = self._sessions[session] = {}
        if program_id not in programs:
            self._count += 1
        programs[program_id] = program
        self._bound(keep=session)
        return program

    def get(self, session: str, program_id: str) -> Program | None:
        programs = self._touch(session)
        return None if programs is None else programs.get(program_id)

    def ensure(
        self, session: str, program_id: str, spec: Spec | None, spec_ver: int | None = None
    ) -> Program:
        """The program to execute, by (session, program, spec version).

        With a version: the cached program if it was built from that version,
        else one built from `spec`; without `spec` that is a cache miss
        (STALE_CACHE: the supervisor sends the spec). Without a version: the
        cached program, rebuilt first when `spec` differs from its spec."""
        program = self.get(session, program_id)
        if spec_ver is not None:
            if program is not None and program.spec_ver == spec_ver:
                return program
            if spec is None:
                raise ProgramError(
                    STALE_CACHE,
                    f"program '{program_id}' of session '{session}' at spec version "
                    f"{spec_ver} is not cached here",
                    field="spec_ver",
                )
            return self.create(session, program_id, spec, spec_ver)
        if spec is not None and (program is None or program.spec != spec):
            return self.create(session, program_id, spec)
        if program is None:
            raise ProgramError(
                PROGRAM_NOT_FOUND,
                f"program '{program_id}' not found in session '{session}' and no spec was sent",
                field="program",
            )
        return program

    def delete(self, session: str, program_id: str) -> bool:
        programs = self._sessions.get(session)
        if programs is None or programs.pop(program_id, None) is None:
            return False
        self._count -= 1
        if not programs:
            del self._sessions[session]
        return True

    def ids(self, session: str) -> list[str]:
        """The session's program ids, sorted."""
        return sorted(self._sessions.get(session, ()))

    def cleanup(self, session: str) -> int:
        """Drop all of a session's programs; returns how many there were."""
        n = len(self._sessions.pop(session, {}))
        self._count -= n
        return n
