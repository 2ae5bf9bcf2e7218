"""The worker runtime: `python -m snakefleet.worker --worker-id ID`.

A supervisor spawns this process and speaks worker frames with it (see
schemas/README.md): calls come in on fd 0, results go out on fd 1. The flow:

    main()  parse flags, claim_stdio(): frames move to private fds, so user
            print()s and C-level writes to fd 1 land on stderr and fd 0 reads
            /dev/null (a child process cannot steal frames either)
    serve() the whole protocol on two fds; returns the exit code. The
            zygote (snakefleet.zygote) pre-imports modules, forks, and calls
            claim_stdio() and serve() directly.
            serve() sends `ready`, then loops: read a chunk, feed the FrameReader,
            handle every whole frame in order, write all replies with one
            write (the supervisor may pipeline several calls)

Exit codes: 0 on EOF, `shutdown` or SIGTERM (even mid-program); 3 when a
length prefix is over the limit (framing is lost, nothing more can be read);
2 on bad command-line flags; 130 on SIGINT.

Replies for one read batch go out together, except that a reply is flushed
right away when the frame that produced it took more than FLUSH_AFTER_S: a
slow call does not hold back the fast ones after it. (A slow call does hold
back the replies of fast calls before it in the same batch.)

Start-up cost matters (pools spawn and recycle workers): this module imports
only the codec, msgpack and the standard modules the interpreter already has;
`traceback` is imported on the first error and dspy never at start.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import time

from snakefleet.codec import (
    MAX_FRAME_BYTES,
    VERSION,
    DecodeError,
    EncodeError,
    FrameReader,
    FrameTooLarge,
    decode_value,
    encode,
    encode_frame,
    find_unsendable,
    refusal_message,
    validate_frame,
)
from snakefleet.context import STATE, SessionContext, StateError
from snakefleet.errors import (
    INTERNAL,
    INVALID_REQUEST,
    PROGRAM_ERROR,
    STALE_CACHE,
    ProgramError,
    describe,
)
from snakefleet.kinds import available_kinds
from snakefleet.log import Logger
from snakefleet.programs import (
    PROGRAM_CACHE_MAX,
    CallableProgram,
    Program,
    ProgramRegistry,
    format_user_traceback,
    run_program,
)

# `typing` costs a worker ~3 ms of start-up (it imports `re`); annotations are
# strings here (PEP 563), so type-only names are imported for checkers only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import CodeType, FrameType
    from typing import Any

    from snakefleet.codec import Message

READ_SIZE = 256 * 1024
FLUSH_AFTER_S = 0.001
EXIT_OK = 0
EXIT_USAGE = 2
EXIT_BROKEN_STREAM = 3
EXIT_INTERRUPTED = 130
# Sessions whose state a worker keeps between calls (least recently used go
# first); SNAKEFLEET_STATE_CACHE_MAX overrides it.
STATE_CACHE_MAX = 4096

PYTHON_VERSION = "{}.{}.{}".format(*sys.version_info[:3])
# Results the decode check can skip: the decoder gives back these exactly as
# the encoder took them (anything else may hide a non-string key or an ext type).
PLAIN_RESULTS = frozenset({type(None), bool, int, float, str, bytes})

USAGE = "usage: python -m snakefleet.worker --worker-id ID [--max-frame-bytes N]"


class _Terminate(BaseException):
    """Raised by the SIGTERM handler. A BaseException, not SystemExit, so that
    `except Exception` in user code cannot swallow it and a user's own
    sys.exit() stays an ordinary program error."""


class _PeerGone(Exception):
    """The supervisor closed our output pipe."""


def rss_kb() -> int:
    """Resident set size of this process in KiB (current, not peak)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            resident_pages = int(f.read().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError, IndexError):
        import resource  # not Linux: peak RSS is the best we have

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak // 1024 if sys.platform == "darwin" else peak


def claim_stdio() -> tuple[int, int]:
    """Move the frame channel off fds 0 and 1; returns (in_fd, out_fd).

    Afterwards fd 1 is a copy of stderr and sys.stdout is sys.stderr, so
    print() (and C code writing to fd 1) cannot corrupt the frame stream; fd 0
    reads /dev/null. The private fds are not inherited by child processes."""
    in_fd = os.dup(0)
    out_fd = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        os.dup2(devnull, 0)
        try:
            os.dup2(2, 1)
        except OSError:  # no stderr at all: send output nowhere
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
    finally:
        os.close(devnull)
    sys.stdout = sys.stderr
    return in_fd, out_fd


def env_int(name: str, default: int) -> int:
    """A positive int from the environment, else `default`."""
    try:
        value = int(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if value > 0 else default


class Worker:
    """Protocol state of one worker: its reader, programs and counters."""

    def __init__(
        self,
        in_fd: int,
        out_fd: int,
        worker_id: str,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        registry: ProgramRegistry | None = None,
    ) -> None:
        self.in_fd = in_fd
        self.out_fd = out_fd
        self.worker_id = worker_id
        self.max_frame_bytes = max_frame_bytes
        self.reader = FrameReader(max_frame_bytes)
        self.registry = (
            ProgramRegistry(max_programs=env_int("SNAKEFLEET_PROGRAM_CACHE_MAX", PROGRAM_CACHE_MAX))
            if registry is None
            else registry
        )
        self.log = Logger(worker_id=worker_id)
        self.calls = 0
        self.errors = 0
        self.terminating = False
        # session -> (version, msgpack bytes) of the state this worker last saw or
        # produced for it. A version is the seq of the call that delivered or
        # produced the state; a call naming it (`state_ver`) comes without the state.
        self.states: dict[str, tuple[int, bytes]] = {}
        self.state_cache_max = env_int("SNAKEFLEET_STATE_CACHE_MAX", STATE_CACHE_MAX)
        self.state_hits = 0
        self._produced: tuple[str, int, bytes] | None = None

    # ------------------------------------------------------------ the loop

    def run(self) -> int:
        self.write(self.ready_frame())
        self.log.info("ready", pid=os.getpid(), python=PYTHON_VERSION)
        reader = self.reader
        read = os.read
        in_fd = self.in_fd
        clock = time.perf_counter
        while True:
            data = read(in_fd, READ_SIZE)
            if not data:
                return self.on_eof()
            reader.feed(data)
            out: list[bytes] = []
            while True:
                try:
                    frame = reader.get_frame()
                except DecodeError as e:
                    out.append(self.bad_frame(e, None))
                    if reader.broken:
                        self.write(b"".join(out))
                        self.log.error("exit", code=EXIT_BROKEN_STREAM, reason="framing lost")
                        return EXIT_BROKEN_STREAM
                    continue
                if frame is None:
                    break
                started = clock()
                reply = self.on_frame(frame)
                if reply is None:  # shutdown
                    if out:
                        self.write(b"".join(out))
                    self.log.info("exit", code=EXIT_OK, reason="shutdown")
                    return EXIT_OK
                out.append(reply)
                if self.terminating:
                    raise _Terminate
                if clock() - started > FLUSH_AFTER_S:
                    self.write(b"".join(out))
                    out = []
            if out:
                self.write(b"".join(out))

    def on_eof(self) -> int:
        try:
            self.reader.eof()
        except DecodeError as e:
            self.log.warn("eof_mid_frame", message=e.message)
        self.log.info("exit", code=EXIT_OK, reason="eof")
        return EXIT_OK

    def write(self, data: bytes) -> None:
        """Write all of `data`, however many writes the pipe needs."""
        view: Any = data
        try:
            while view:
                n = os.write(self.out_fd, view)
                if n == len(view):
                    return
                view = memoryview(view)[n:]
        except BrokenPipeError:
            raise _PeerGone from None

    # ------------------------------------------------------------ frames

    def ready_frame(self) -> bytes:
        return encode_frame(
            {
                "t": "ready",
                "v": VERSION,
                "pid": os.getpid(),
                "worker_id": self.worker_id,
                "python": PYTHON_VERSION,
                "caps": available_kinds(),
            }
        )

    def on_frame(self, frame: Message) -> bytes | None:
        """The encoded reply to one frame; None for `shutdown`."""
        try:
            validate_frame(frame)
        except DecodeError as e:
            return self.bad_frame(e, frame.get("seq"))
        t = frame["t"]
        if t == "call":
            return self.on_call(frame)
        if t == "ping":
            return encode_frame(
                {"t": "pong", "v": VERSION, "seq": frame["seq"], "rss_kb": rss_kb()}
            )
        if t == "shutdown":
            return None
        return self.bad_frame(
            DecodeError("unexpected_frame", "t", f"frame type '{t}' is not sent to a worker"),
            frame.get("seq"),
        )

    def bad_frame(self, error: DecodeError, seq: Any) -> bytes:
        """An `error` frame for a frame we could not read, plus a log line."""
        self.errors += 1
        seq = seq if type(seq) is int else None
        self.log.error(
            "bad_frame", seq=seq, code=error.code, field=error.field, message=error.message
        )
        reply: dict[str, Any] = {
            "t": "error",
            "v": VERSION,
            "message": f"{error.code}: {error.message}",
        }
        if seq is not None:
            reply["seq"] = seq
        return encode_frame(reply)

    def on_call(self, call: Message) -> bytes:
        self.calls += 1
        seq = call["seq"]
        started = time.perf_counter_ns()
        state = None
        self._produced = None
        try:
            value, state = self.dispatch(call)
            reply: dict[str, Any] = {
                "t": "result",
                "v": VERSION,
                "seq": seq,
                "ok": True,
                "value": value,
            }
            if state is not None:
                reply["state"] = state
        except ProgramError as e:
            return self.encode_error_result(call, e, started)
        except Exception as e:  # noqa: BLE001 - our bug or a kind builder's: answer, keep serving
            error = ProgramError(INTERNAL, describe(e), format_user_traceback(e))
            return self.encode_error_result(call, error, started)
        reply["exec_us"] = (time.perf_counter_ns() - started) // 1000
        try:
            data = encode_frame(reply, self.max_frame_bytes)
            if type(value) not in PLAIN_RESULTS or state is not None:
                decode_value(memoryview(data)[4:])  # nested non-string map keys, ext types
        except FrameTooLarge as e:
            message = too_large_message(value, state, e)
            data = self.unsendable_result(call, message, FrameTooLarge, started)
        except (EncodeError, DecodeError) as e:
            message = refused_reply_message(value, state, e)
            data = self.unsendable_result(call, message, EncodeError, started)
        else:
            if state is not None and self._produced is not None:
                self.cache_state(*self._produced)  # the state went out: it is the new version
        return data

    def unsendable_result(
        self, call: Message, message: str, kind: type[EncodeError], started: int
    ) -> bytes:
        """The program_error for a reply that cannot be sent, with a traceback
        naming the program that produced it."""
        program = None
        if call["op"] == "execute_program":
            program = self.registry.get(call["session"], call["program"])
        where = returned_traceback(program, call["op"], kind, message)
        error = ProgramError(PROGRAM_ERROR, message, where)
        return self.encode_error_result(call, error, started)

    def encode_error_result(self, call: Message, error: ProgramError, started: int) -> bytes:
        reply = self.error_result(call, error)
        reply["exec_us"] = (time.perf_counter_ns() - started) // 1000
        try:
            return encode_frame(reply, self.max_frame_bytes)
        except FrameTooLarge:
            # A giant exception message or traceback: cut it rather than send
            # a frame that would break the stream.
            wire = reply["error"]
            wire.pop("traceback", None)
            wire["message"] = wire["message"][:200] + " [truncated]"
            return encode_frame(reply)

    def error_result(self, call: Message, error: ProgramError) -> dict[str, Any]:
        self.errors += 1
        self.log.warn(
            "call_failed",
            session=call["session"],
            seq=call["seq"],
            op=call["op"],
            program=call.get("program"),
            type=error.error_type,
            message=error.message,
        )
        return {
            "t": "result",
            "v": VERSION,
            "seq": call["seq"],
            "ok": False,
            "error": error.to_wire(),
        }

    # ------------------------------------------------------------ ops

    def dispatch(self, call: Message) -> tuple[Any, dict[str, Any] | None]:
        """Run one call: (value, new session state or None)."""
        op = call["op"]
        session = call["session"]
        registry = self.registry
        if op == "execute_program":
            return self.execute(call)
        if op == "create_program":
            program = registry.create(session, call["program"], call["spec"], call.get("spec_ver"))
            return {"program": program.program_id, "kind": program.kind}, None
        if op == "delete_program":
            return registry.delete(session, call["program"]), None
        if op == "list_programs":
            return registry.ids(session), None
        if op == "cleanup_session":
            self.states.pop(session, None)
            return registry.cleanup(session), None
        if op == "ping":
            return "pong", None
        if op == "stats":
            return self.stats(), None
        raise ProgramError(INVALID_REQUEST, f"unknown op '{op}'", field="op")  # validated before

    def execute(self, call: Message) -> tuple[Any, dict[str, Any] | None]:
        session = call["session"]
        state, baseline = self.call_state(call)
        inputs = call.get("args")
        if inputs is None:
            inputs = {}
        elif type(inputs) is not dict:
            raise ProgramError(
                INVALID_REQUEST,
                f"execute_program args must be a map of inputs, got {type(inputs).__name__}",
                field="args",
            )
        program_id = call["program"]
        program = self.registry.ensure(session, program_id, call.get("spec"), call.get("spec_ver"))
        ctx = SessionContext(session, self.worker_id, program_id, state, baseline, call.get("ctx"))
        value = run_program(program, ctx, inputs)
        try:
            delta = ctx.state_delta()
        except StateError as e:
            message = str(e)
            where = returned_traceback(program, call["op"], EncodeError, message)
            raise ProgramError(PROGRAM_ERROR, message, where) from None
        if delta is not None and baseline is not None and ctx.encoded is not None:
            self._produced = (session, call["seq"], ctx.encoded)
        return value, delta

    def call_state(self, call: Message) -> tuple[dict[str, Any] | None, bytes | None]:
        """The session state a call runs with, and its encoding: the one it
        carries (cached under the call's seq), or the cached one its
        `state_ver` names; (None, None) when it has neither."""
        session = call["session"]
        state = call.get("state")
        if state is not None:
            baseline = encode(state)
            self.cache_state(session, call["seq"], baseline)
            return state, baseline
        version = call.get("state_ver")
        if version is None:
            return None, None
        entry = self.states.get(session)
        if entry is None or entry[0] != version:
            raise ProgramError(
                STALE_CACHE,
                f"the state of session '{session}' at version {version} is not cached here",
                field="state_ver",
            )
        self.cache_state(session, version, entry[1])  # most recently used now
        self.state_hits += 1
        return decode_value(entry[1]), entry[1]

    def cache_state(self, session: str, version: int, data: bytes) -> None:
        states = self.states
        states.pop(session, None)
        states[session] = (version, data)
        if len(states) > self.state_cache_max:
            del states[next(iter(states))]

    def stats(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "worker_id": self.worker_id,
            "calls": self.calls,
            "errors": self.errors,
            "programs": len(self.registry),
            "sessions": self.registry.session_count,
            "programs_evicted": self.registry.evicted,
            "builds": self.registry.builds,
            "cached_states": len(self.states),
            "state_hits": self.state_hits,
            "rss_kb": rss_kb(),
            "python": PYTHON_VERSION,
        }


# ---------------------------------------------------------------- unsendable replies
#
# A reply is encoded after the program has returned, so when its result or
# state cannot be sent no frame of user code is left to point at. These build
# the error's message and a traceback that says as much.


def refused_reply_message(value: Any, state: dict[str, Any] | None, error: Exception) -> str:
    """Why a reply that the encoder or the decode check refused cannot be sent,
    naming the offending item: the result is searched first, then the state."""
    found = find_unsendable(value, "result")
    if found is None and state is not None:
        found = find_unsendable(state, "state", str_keys_at_root=True)
        if found is not None:
            return refusal_message(STATE, found, error)
    return refusal_message(
        "the result" if state is None else "the result or " + STATE, found, error
    )


def too_large_message(value: Any, state: dict[str, Any] | None, error: FrameTooLarge) -> str:
    """Which part makes the reply too large: the result or the session state
    (the one that is too large even without the other), or both; with the
    sizes of each."""
    result_size = len(encode(value))
    if state is None:
        return f"the result is too large to send: {error} (result {result_size} bytes)"
    state_size = len(encode(state))
    rest = error.size - result_size - state_size  # the frame's other fields
    result_alone = rest + result_size > error.limit
    state_alone = rest + state_size > error.limit
    if result_alone and not state_alone:
        subject = "the result is"
    elif state_alone and not result_alone:
        subject = f"{STATE} is"
    else:
        subject = f"the result and {STATE} are"
    return (
        f"{subject} too large to send: {error}"
        f" (result {result_size} bytes, session state {state_size} bytes)"
    )


def returned_traceback(
    program: Program | None, op: str, kind: type[EncodeError], message: str
) -> str:
    """A traceback for a result or state found unsendable after the program
    returned, ending in `kind: message`. It has the layout of
    format_user_traceback()'s, from the same traceback module, but its one
    frame is where the program's function is defined, and a last line says so.
    Without a Python function behind the program (a dspy program, a builtin)
    or a program at all (ops the worker answers itself), the frame's place
    says that instead."""
    import traceback  # only on the error path: keeps worker start-up lean

    code = None if program is None else program_code(program)
    lines = ["Traceback (most recent call last):\n"]
    if code is not None:
        frame = traceback.FrameSummary(code.co_filename, code.co_firstlineno, code.co_name)
        lines += traceback.format_list([frame])
    elif program is None:
        lines.append(f"  (no user code ran: the worker answers op '{op}' itself)\n")
    else:
        lines.append(
            f"  (no Python function to show for program '{program.program_id}'"
            f" of kind '{program.kind}')\n"
        )
    lines.append(f"{kind.__module__}.{kind.__qualname__}: {message}\n")
    if code is not None:
        lines.append(
            f"(checked after {code.co_name} returned: the line shown is where it is"
            " defined, not where the value was made)\n"
        )
    return "".join(lines)


def program_code(program: Program) -> CodeType | None:
    """The code of the Python function behind a callable program, through
    decorators (`__wrapped__`), partials, bound methods and callable objects
    (their class's `__call__`); None when there is none to find."""
    import functools
    import types

    if not isinstance(program, CallableProgram):
        return None
    fn: Any = program.fn
    try:
        for _ in range(8):  # one layer of wrapping a turn; nobody stacks 8
            if hasattr(fn, "__wrapped__"):
                fn = fn.__wrapped__
            elif isinstance(fn, functools.partial):
                fn = fn.func
            elif isinstance(getattr(fn, "__code__", None), types.CodeType):
                return fn.__code__  # type: ignore[no-any-return]  # a function, a bound method
            elif isinstance(fn, type):
                return None  # a class as entry: no one function is "the program"
            else:
                fn = type(fn).__call__
    except Exception:  # noqa: BLE001 - a user object's __getattr__ may raise anything
        return None
    return None


def serve(
    in_fd: int,
    out_fd: int,
    worker_id: str,
    max_frame_bytes: int = MAX_FRAME_BYTES,
    registry: ProgramRegistry | None = None,
) -> int:
    """Speak the worker protocol on in_fd/out_fd until EOF, `shutdown` or
    SIGTERM; returns the process exit code. Call from the main thread."""
    worker = Worker(in_fd, out_fd, worker_id, max_frame_bytes, registry)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        worker.terminating = True  # in case user code swallows the exception
        raise _Terminate

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        # A supervisor may hand us non-blocking pipe ends; we want to block.
        os.set_blocking(in_fd, True)
        os.set_blocking(out_fd, True)
        return worker.run()
    except _Terminate:
        worker.log.info("exit", code=EXIT_OK, reason="SIGTERM")
        return EXIT_OK
    except _PeerGone:
        worker.log.warn("exit", code=EXIT_OK, reason="output pipe closed")
        return EXIT_OK
    except KeyboardInterrupt:
        worker.log.info("exit", code=EXIT_INTERRUPTED, reason="SIGINT")
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)


def parse_args(argv: list[str]) -> tuple[str, int]:
    """(worker_id, max_frame_bytes) from argv; ValueError with a message."""
    worker_id = os.environ.get("SNAKEFLEET_WORKER_ID", "")
    max_frame_bytes = MAX_FRAME_BYTES
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in ("-h", "--help"):
            raise ValueError("")
        if name not in ("--worker-id", "--max-frame-bytes"):
            raise ValueError(f"unknown argument '{arg}'")
        if not eq:
            i += 1
            if i == len(argv):
                raise ValueError(f"{name} needs a value")
            value = argv[i]
        if name == "--worker-id":
            worker_id = value
        else:
            try:
                max_frame_bytes = int(value)
            except ValueError:
                raise ValueError(f"--max-frame-bytes must be an integer, got '{value}'") from None
            if not 1 <= max_frame_bytes <= 0xFFFFFFFF:
                raise ValueError(
                    f"--max-frame-bytes must be in 1..4294967295, got {max_frame_bytes}"
                )
        i += 1
    if not worker_id:
        raise ValueError("--worker-id is required")
    return worker_id, max_frame_bytes


def main(argv: list[str] | None = None) -> int:
    try:
        worker_id, max_frame_bytes = parse_args(sys.argv[1:] if argv is None else argv)
    except ValueError as e:
        message = str(e)
        print(f"snakefleet.worker: {message}\n{USAGE}" if message else USAGE, file=sys.stderr)
        return 0 if not message else EXIT_USAGE
    in_fd, out_fd = claim_stdio()
    # A crash in C code (segfault, abort) then leaves a Python traceback in
    # the worker's stderr, which the supervisor logs.
    faulthandler.enable()
    preload_modules(os.environ.get("SNAKEFLEET_PRELOAD", ""))
    return serve(in_fd, out_fd, worker_id, max_frame_bytes)


def preload_modules(names: str) -> None:
    """Imports the comma-separated modules before `ready` (the pool's preload
    when no zygote forks this worker). A module that fails to import is
    reported on stderr and skipped: programs needing it fail with their own
    error later, the worker still serves the rest."""
    import importlib

    for name in (n.strip() for n in names.split(",")):
        if not name:
            continue
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - reported, the worker keeps starting
            print(
                f"level=warn event=preload_failed module={name} error={type(e).__name__}: {e}",
                file=sys.stderr,
            )


if __name__ == "__main__":
    sys.exit(main())
