"""The wire codec: msgpack messages and length-prefixed worker frames, no I/O.

This is the Python half of the contract in schemas/README.md (the C half lives
in the supervisor). It is shaped like hiredis's reader: `FrameReader.feed()`
takes whatever bytes a read returned, `FrameReader.get_frame()` hands out whole
frames one at a time, and every failure is a `DecodeError` carrying the same
`code` and `field` that the shared test vectors in schemas/vectors expect. No
file descriptors appear here, so the worker's hot loop, the client library and
the tests all use the same code.

Decoding is strict where the contract is:
- maps have string keys: int, nil, float or array keys are `malformed` at any
  depth (msgpack's strict_map_key), bin keys in the top-level map;
- a value uses all its bytes: trailing bytes are `malformed`;
- input that ends mid-value is `truncated`;
- msgpack ext types are not part of the contract (`malformed`), except the
  standard timestamp (ext -1), which msgpack decodes itself;
- the validators tell a bool from an int: `ok: 1` is `wrong_type`.
Unknown top-level keys are ignored for forward compatibility.

Speed matters: the worker calls `get_frame()` and `validate_frame()` for every
call it serves, so both stay a handful of dict look-ups on top of msgpack's C
unpacker.
"""

from __future__ import annotations

import struct

import msgpack  # type: ignore[import-untyped]  # ships no type information

# `typing` costs a worker ~3 ms of start-up (it imports `re`); annotations are
# strings here (PEP 563), so type-only names are imported for checkers only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, Callable, NoReturn

    Message = dict[str, Any]
    Check = Callable[[Any], bool]

VERSION = 1
MAX_FRAME_BYTES = 16 * 1024 * 1024  # the frame reader's default limit
MAX_MESSAGE_BYTES = 1024 * 1024  # max_message_bytes: Kafka requests and replies

# Error codes, exactly as the vectors spell them.
NOT_MAP = "not_map"
TRUNCATED = "truncated"
MALFORMED = "malformed"
TOO_LARGE = "too_large"
MISSING_FIELD = "missing_field"
WRONG_TYPE = "wrong_type"
BAD_VALUE = "bad_value"
UNKNOWN_OP = "unknown_op"
UNKNOWN_VERSION = "unknown_version"
UNKNOWN_FRAME = "unknown_frame"

# Ops of an execute request (Kafka) and of a worker `call` frame (pipes).
REQUEST_OPS = frozenset(
    {
        "create_session",
        "end_session",
        "create_program",
        "execute_program",
        "get_session_state",
        "set_session_state",
        "delete_program",
        "list_programs",
        "ping",
    }
)
WORKER_OPS = frozenset(
    {
        "create_program",
        "execute_program",
        "delete_program",
        "list_programs",
        "cleanup_session",
        "ping",
        "stats",
    }
)
# Ops that name a program (`program` is required); the same set on both sides.
PROGRAM_OPS = frozenset({"create_program", "execute_program", "delete_program"})

FRAME_TYPES = ("ready", "call", "result", "ping", "pong", "shutdown", "error")

_HEADER = struct.Struct(">I")
_unpack_length = _HEADER.unpack_from
_pack_length = _HEADER.pack
_unpackb = msgpack.unpackb
_packb = msgpack.packb
_MISSING: Any = object()


class DecodeError(ValueError):
    """Bytes that are not a valid message: `code` is one of the codes above,
    `field` names the offending field (dotted for nested ones, e.g.
    `args.spec.kind`) or is None when the problem is not one field's."""

    def __init__(self, code: str, field: str | None, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
        self.message = message

    def __repr__(self) -> str:
        return f"DecodeError({self.code!r}, {self.field!r}, {self.message!r})"


class EncodeError(ValueError):
    """A value that cannot go on the wire: not msgpack-serializable, or too big."""


class FrameTooLarge(EncodeError):
    """An encoded frame over the reader's limit (sending it would break the stream):
    `size` is the frame body's length in bytes, `limit` the limit it exceeds."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"frame of {size} bytes exceeds the limit of {limit}")
        self.size = size
        self.limit = limit


# ---------------------------------------------------------------- decoding


def _reject_ext(code: int, data: bytes) -> NoReturn:
    raise DecodeError(MALFORMED, None, f"msgpack ext type {code} is not allowed")


def _unpack(data: bytes | bytearray | memoryview) -> Any:
    """One msgpack value that spans exactly `data`; typed errors otherwise."""
    try:
        return _unpackb(data, raw=False, strict_map_key=True, ext_hook=_reject_ext)
    except DecodeError:
        raise
    except msgpack.ExtraData as e:
        raise DecodeError(
            MALFORMED, None, f"{len(e.extra)} trailing byte(s) after the msgpack value"
        ) from None
    except (msgpack.FormatError, msgpack.StackError):
        raise DecodeError(MALFORMED, None, "not valid msgpack") from None
    except ValueError as e:
        text = str(e)
        # "exceeds max_*_len": msgpack caps every length at the buffer size, so
        # a length beyond it means the data stops before the value does.
        if "incomplete input" in text or "exceeds max_" in text:
            raise DecodeError(TRUNCATED, None, "msgpack value is truncated") from None
        if "map key" in text:
            raise DecodeError(MALFORMED, None, f"map keys must be strings ({text})") from None
        raise DecodeError(MALFORMED, None, f"not valid msgpack ({text})") from None
    except Exception as e:  # noqa: BLE001 - msgpack may raise anything on hostile input
        raise DecodeError(MALFORMED, None, f"not valid msgpack ({e})") from None


def decode_value(data: bytes | bytearray | memoryview) -> Any:
    """Decode one msgpack value of any type that spans exactly `data`."""
    return _unpack(data)


def _as_map(obj: Any, what: str) -> Message:
    if type(obj) is not dict:
        raise DecodeError(NOT_MAP, None, f"{what} is not a map (got {_kind(obj)})")
    for key in obj:
        if type(key) is not str:
            raise DecodeError(MALFORMED, None, f"{what} has a non-string key {key!r}")
    return obj


def decode_map(
    data: bytes, max_bytes: int | None = MAX_MESSAGE_BYTES, what: str = "message"
) -> Message:
    """Decode one msgpack map with string keys from `data` (no validation)."""
    if max_bytes is not None and len(data) > max_bytes:
        raise DecodeError(
            TOO_LARGE, None, f"{what} is {len(data)} bytes, over the limit of {max_bytes}"
        )
    return _as_map(_unpack(data), what)


def decode_request(data: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> Message:
    """Decode and validate an execute request (a Kafka record value)."""
    try:
        obj = decode_map(data, max_bytes, "request")
    except DecodeError as e:
        if e.code == MALFORMED and _is_json(data):
            raise DecodeError(MALFORMED, None, JSON_PAYLOAD) from None
        raise
    validate_request(obj)
    return obj


JSON_PAYLOAD = (
    "the payload is JSON, not msgpack: a request must be a msgpack map (schemas/README.md)"
)


def _is_json(data: bytes) -> bool:
    """A JSON object or array: '{' and '[' are msgpack fixints, so JSON bytes
    fail as msgpack with "trailing bytes"; the error should say JSON instead."""
    if len(data) < 2 or data[:1] not in (b"{", b"["):
        return False
    import json  # only on this error path: the worker does not pay for it

    try:
        json.loads(data)
    except ValueError:
        return False
    return True


def decode_reply(data: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> Message:
    """Decode and validate a reply (what a service reads from its reply topic)."""
    obj = decode_map(data, max_bytes, "reply")
    validate_reply(obj)
    return obj


class FrameReader:
    """Incremental reader of u32-big-endian-length-prefixed msgpack frames.

    `feed()` bytes as they arrive, then call `get_frame()` until it returns
    None (no whole frame buffered yet). A frame whose body is bad (not msgpack,
    not a map, trailing bytes) raises DecodeError but is consumed, so the next
    call goes on with the next frame: framing is intact. A length above
    `max_frame_bytes` breaks framing for good: it raises `too_large` now and on
    every later call (`broken` is then true). At end of stream call `eof()`,
    which raises `truncated` if part of a frame is left over.
    """

    __slots__ = ("_buf", "_error", "_pos", "max_frame_bytes")

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        if max_frame_bytes < 1 or max_frame_bytes > 0xFFFFFFFF:
            raise ValueError(f"max_frame_bytes must be in 1..2**32-1, got {max_frame_bytes}")
        self.max_frame_bytes = max_frame_bytes
        self._buf = bytearray()
        self._pos = 0  # start of the first unread frame in _buf
        self._error: DecodeError | None = None

    @property
    def pending(self) -> int:
        """Bytes buffered that are not yet part of a returned frame."""
        return len(self._buf) - self._pos

    @property
    def broken(self) -> bool:
        """True once framing is lost; no further frame can be read."""
        return self._error is not None

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def get_frame(self) -> Message | None:
        if self._error is not None:
            err = self._error
            raise DecodeError(err.code, err.field, err.message)
        buf = self._buf
        start = self._pos + 4
        if len(buf) < start:
            return None
        (length,) = _unpack_length(buf, self._pos)
        if length > self.max_frame_bytes:
            self._error = DecodeError(
                TOO_LARGE,
                None,
                f"frame length {length} exceeds the limit of {self.max_frame_bytes} bytes",
            )
            raise DecodeError(TOO_LARGE, None, self._error.message)
        end = start + length
        if len(buf) < end:
            return None
        body = buf[start:end]
        if end == len(buf):
            buf.clear()
            self._pos = 0
        else:
            self._pos = end
        return _as_map(_unpack(body), "frame")

    def eof(self) -> None:
        """The stream has ended: raise `truncated` if a partial frame is left."""
        if self._error is None and len(self._buf) > self._pos:
            raise DecodeError(
                TRUNCATED, None, f"stream ended inside a frame ({self.pending} byte(s) left over)"
            )


# ---------------------------------------------------------------- encoding


def encode(obj: Any) -> bytes:
    """msgpack-encode one message (bin stays bin, str stays str)."""
    try:
        data: bytes = _packb(obj, use_bin_type=True)
    except Exception as e:  # noqa: BLE001 - a dict subclass's items() is user code
        raise EncodeError(f"not serializable: {type(e).__name__}: {e}") from None
    return data


def encode_frame(obj: Message, max_frame_bytes: int | None = MAX_FRAME_BYTES) -> bytes:
    """Length prefix + msgpack body. EncodeError if it cannot be encoded or
    exceeds `max_frame_bytes` (a reader would drop the stream on it)."""
    body = encode(obj)
    if max_frame_bytes is not None and len(body) > max_frame_bytes:
        raise FrameTooLarge(len(body), max_frame_bytes)
    return _pack_length(len(body)) + body


# ---------------------------------------------------------------- explaining a refusal
#
# encode() and the decoder only say that a value cannot go on the wire; these
# say where in it and why. They run after a refusal, never on a value that went
# out, so the happy path pays nothing for them. The walk follows msgpack's
# order (a map's key, then its value) and stops at the first item the contract
# refuses: a type msgpack cannot encode, an int out of its range, a string that
# is not UTF-8, a map key that is not a string (bin keys pass below a root map
# that allows them, as in the decoder), an ext type, or containers nested deeper
# than the C decoder reads.
#
# A path is Python subscript notation from a root name: `result`,
# `result["items"][3]`, `state[1]` (the entry of `state` whose key is the int
# 1, when the key is at fault). String keys are shown in double quotes with
# JSON escapes (a valid Python literal too), other keys as repr(); a key longer
# than 40 characters is cut and ends in "...".

# The supervisor refuses a container, empty or not, this many levels below a
# message's root map (SF_MP_MAX_DEPTH in schemas/codec/mp.c, and msgpack-c's
# unpack stack); a result or state sits one level below the frame's root.
WIRE_MAX_DEPTH = 32
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
_KEY_SHOWN = 40


def find_unsendable(
    value: Any, root: str, str_keys_at_root: bool = False
) -> tuple[str, str] | None:
    """(path, problem) of the first item of `value`, a result or session state
    one level below a frame's root, that the wire cannot carry; e.g.
    ('result["items"][3]', 'value of type set (msgpack cannot encode it)').
    None when none is found. `str_keys_at_root`: the root map's keys must be
    strings, bin ones too are refused (a state is stored as a message of its own)."""
    try:
        return _walk(value, root, str_keys_at_root)
    except Exception:  # noqa: BLE001 - a dict subclass's items() is user code
        return None  # the caller falls back on the encoder's own words


def refusal_message(what: str, found: tuple[str, str] | None, error: Exception) -> str:
    """'<what> is not serializable at <path>: <problem>' for what
    find_unsendable() found; with the encoder's or decoder's own words (`error`)
    when it found nothing."""
    if found is None:
        return f"{what} is not serializable: {str(error).removeprefix('not serializable: ')}"
    path, problem = found
    return f"{what} is not serializable at {path}: {problem}"


def _walk(value: Any, root: str, str_keys_at_root: bool) -> tuple[str, str] | None:
    path: list[Any] = []  # the subscripts from the root down to `item`
    open_containers: list[tuple[Iterator[tuple[Any, Any]], bool]] = []  # (entries, is a map)
    item = value
    while True:
        problem = _value_problem(item, len(open_containers) + 1)
        if problem is not None:
            return _render_path(root, path), problem
        if isinstance(item, dict):
            open_containers.append((iter(item.items()), True))
            path.append(None)
        elif isinstance(item, (list, tuple)):
            open_containers.append((enumerate(item), False))
            path.append(None)
        while open_containers:  # on to the next item in encoding order
            entries, is_map = open_containers[-1]
            entry = next(entries, None)
            if entry is None:
                open_containers.pop()
                path.pop()
                continue
            key, item = entry
            path[-1] = key
            if is_map:
                problem = _key_problem(key, str_keys_at_root and len(open_containers) == 1)
                if problem is not None:
                    return _render_path(root, path), problem
            break
        else:
            return None


def _value_problem(item: Any, depth: int) -> str | None:
    """Why `item`, `depth` levels below a message's root, cannot be sent; None if it can."""
    if item is None or isinstance(item, (bool, float, bytes, bytearray)):
        return None
    if isinstance(item, (msgpack.ExtType, msgpack.Timestamp)):  # ExtType is a namedtuple
        return f"value of type {_type_name(item)} (msgpack ext types are not part of the contract)"
    if isinstance(item, (dict, list, tuple)):
        if depth >= WIRE_MAX_DEPTH:
            return (
                f"containers nested more than {WIRE_MAX_DEPTH - 1} levels deep"
                " (the supervisor reads no deeper)"
            )
        return None
    if isinstance(item, str):
        return None if _is_utf8(item) else "value of type str with a lone surrogate (not UTF-8)"
    if isinstance(item, int):
        if _INT_MIN <= item <= _INT_MAX:
            return None
        return "value of type int out of msgpack's range (-2**63 to 2**64-1)"
    if isinstance(item, memoryview):
        return None if item.c_contiguous else "value of type memoryview that is not contiguous"
    return f"value of type {_type_name(item)} (msgpack cannot encode it)"


def _key_problem(key: Any, str_only: bool) -> str | None:
    if isinstance(key, str):
        return None if _is_utf8(key) else "key of type str with a lone surrogate (not UTF-8)"
    if isinstance(key, (bytes, memoryview)) and not str_only:
        return None
    return f"key of type {_type_name(key)} (map keys must be strings)"


def _is_utf8(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _type_name(obj: Any) -> str:
    """'set', 'datetime.datetime', 'Thing' (a class of __main__)."""
    cls = type(obj)
    module = getattr(cls, "__module__", None)
    if module in (None, "builtins", "__main__"):
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


def _render_path(root: str, path: list[Any]) -> str:
    return root + "".join(f"[{_subscript(key)}]" for key in path)


def _subscript(key: Any) -> str:
    if isinstance(key, str):
        import json  # only on the error path: keeps worker start-up lean

        shown = key if len(key) <= _KEY_SHOWN else key[:_KEY_SHOWN] + "..."
        # Non-ASCII shows as itself, unless a lone surrogate would make the
        # message itself unsendable: then everything is escaped.
        return json.dumps(shown, ensure_ascii=not _is_utf8(shown))
    try:
        text = repr(key)
    except Exception:  # noqa: BLE001 - user __repr__, or an int too long to print
        text = f"<{_type_name(key)}>"
    return text if len(text) <= _KEY_SHOWN else text[:_KEY_SHOWN] + "..."


# ---------------------------------------------------------------- validation
#
# Each check raises the first problem it finds, in the order the README lists
# the fields, with `v` first: a receiver rejects an unknown version before
# judging anything else.

_KINDS = {
    type(None): "nil",
    bool: "bool",
    int: "int",
    float: "float",
    str: "str",
    bytes: "bin",
    list: "array",
    tuple: "array",
    dict: "map",
}


def _kind(value: Any) -> str:
    return _KINDS.get(type(value), type(value).__name__)


def _missing(field: str) -> DecodeError:
    return DecodeError(MISSING_FIELD, field, f"missing field '{field}'")


def _wrong(field: str, want: str, value: Any) -> DecodeError:
    return DecodeError(WRONG_TYPE, field, f"field '{field}' must be {want}, got {_kind(value)}")


def _is_int(value: Any) -> bool:
    return type(value) is int


def _is_str(value: Any) -> bool:
    return type(value) is str


def _is_bool(value: Any) -> bool:
    return type(value) is bool


def _is_map(value: Any) -> bool:
    return isinstance(value, dict)


def _is_array(value: Any) -> bool:
    return isinstance(value, (list, tuple))


def _is_any(value: Any) -> bool:
    return True


def _is_str_array(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(type(x) is str for x in value)


_WANT: dict[Callable[[Any], bool], str] = {
    _is_int: "an int",
    _is_str: "a string",
    _is_bool: "a bool",
    _is_map: "a map",
    _is_array: "an array",
    _is_any: "anything",
    _is_str_array: "an array of strings",
}


def _field(obj: Message, key: str, check: Check, required: bool, prefix: str = "") -> Any:
    """obj[key] after a type check; _MISSING when absent and optional."""
    value = obj.get(key, _MISSING)
    if value is _MISSING:
        if required:
            raise _missing(prefix + key)
        return _MISSING
    if not check(value):
        raise _wrong(prefix + key, _WANT[check], value)
    return value


def _check_version(obj: Message) -> None:
    v = obj.get("v", _MISSING)
    if v is _MISSING:
        raise _missing("v")
    if type(v) is not int:
        raise _wrong("v", "an int", v)
    if v != VERSION:
        raise DecodeError(
            UNKNOWN_VERSION, "v", f"unknown schema version {v} (this side speaks {VERSION})"
        )


_TOPIC_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def _check_topic(value: str, field: str) -> None:
    """A Kafka topic name: 1..249 of [A-Za-z0-9._-]."""
    if not 1 <= len(value) <= 249 or not _TOPIC_CHARS.issuperset(value):
        raise DecodeError(
            BAD_VALUE,
            field,
            f"field '{field}' must be a Kafka topic name (1 to 249 of A-Z a-z 0-9 . _ -),"
            f" got {value!r}",
        )


def _utf8_len(s: str) -> int:
    return len(s) if s.isascii() else len(s.encode("utf-8", "surrogatepass"))


def _check_len(value: str, field: str, lo: int, hi: int) -> None:
    n = _utf8_len(value)
    if n < lo or n > hi:
        raise DecodeError(BAD_VALUE, field, f"field '{field}' must be {lo}-{hi} bytes, got {n}")


def _check_spec(spec: Message, prefix: str) -> None:
    _field(spec, "kind", _is_str, True, prefix)


def _check_error_map(error: Message, prefix: str) -> None:
    _field(error, "type", _is_str, True, prefix)
    _field(error, "message", _is_str, True, prefix)
    _field(error, "traceback", _is_str, False, prefix)
    _field(error, "field", _is_str, False, prefix)


def validate_request(obj: Any) -> None:
    """Raise DecodeError unless `obj` is a valid execute request (README table)."""
    if not isinstance(obj, dict):
        raise DecodeError(NOT_MAP, None, f"request is not a map (got {_kind(obj)})")
    _check_version(obj)
    _check_len(_field(obj, "id", _is_str, True), "id", 1, 128)
    _check_len(_field(obj, "session", _is_str, True), "session", 1, 256)
    op = _field(obj, "op", _is_str, True)
    if op not in REQUEST_OPS:
        raise DecodeError(UNKNOWN_OP, "op", f"unknown op '{op}'")
    program = _field(obj, "program", _is_str, op in PROGRAM_OPS)
    if program is not _MISSING:
        _check_len(program, "program", 1, 256)
    args = _field(obj, "args", _is_map, False)
    if args is _MISSING:
        args = {}
    if op == "create_program":
        _check_spec(_field(args, "spec", _is_map, True, "args."), "args.spec.")
    elif op == "set_session_state" or op == "create_session":
        _field(args, "state", _is_map, op == "set_session_state", "args.")
    reply_to = _field(obj, "reply_to", _is_str, False)
    if reply_to is not _MISSING:
        _check_topic(reply_to, "reply_to")
    deadline = _field(obj, "deadline_ms", _is_int, False)
    if deadline is not _MISSING and deadline < 0:
        raise DecodeError(
            BAD_VALUE, "deadline_ms", f"field 'deadline_ms' must be >= 0, got {deadline}"
        )
    _field(obj, "meta", _is_map, False)


def validate_reply(obj: Any) -> None:
    """Raise DecodeError unless `obj` is a valid reply (README table)."""
    if not isinstance(obj, dict):
        raise DecodeError(NOT_MAP, None, f"reply is not a map (got {_kind(obj)})")
    _check_version(obj)
    _field(obj, "id", _is_str, True)
    _field(obj, "session", _is_str, True)
    if _field(obj, "ok", _is_bool, True):
        if "result" not in obj:
            raise _missing("result")
    else:
        _check_error_map(_field(obj, "error", _is_map, True), "error.")
    _field(obj, "worker", _is_str, False)
    _field(obj, "supervisor", _is_str, False)
    timings = _field(obj, "timings", _is_map, False)
    if timings is not _MISSING:
        for key in ("queued_us", "exec_us", "total_us"):
            _field(timings, key, _is_int, False, "timings.")


def _frame_ready(obj: Message) -> None:
    _field(obj, "pid", _is_int, True)
    _field(obj, "worker_id", _is_str, True)
    _field(obj, "python", _is_str, True)
    _field(obj, "caps", _is_str_array, True)


def _frame_call(obj: Message) -> None:
    _field(obj, "seq", _is_int, True)
    op = _field(obj, "op", _is_str, True)
    if op not in WORKER_OPS:
        raise DecodeError(UNKNOWN_OP, "op", f"unknown worker op '{op}'")
    _field(obj, "session", _is_str, True)
    _field(obj, "program", _is_str, op in PROGRAM_OPS)
    spec = _field(obj, "spec", _is_map, op == "create_program")
    if spec is not _MISSING:
        _check_spec(spec, "spec.")
    _field(obj, "state", _is_map, False)
    _field(obj, "spec_ver", _is_int, False)
    _field(obj, "state_ver", _is_int, False)
    _field(obj, "ctx", _is_map, False)


def _frame_result(obj: Message) -> None:
    _field(obj, "seq", _is_int, True)
    if _field(obj, "ok", _is_bool, True):
        if "value" not in obj:
            raise _missing("value")
    else:
        _check_error_map(_field(obj, "error", _is_map, True), "error.")
    _field(obj, "state", _is_map, False)
    _field(obj, "exec_us", _is_int, True)


def _frame_ping(obj: Message) -> None:
    _field(obj, "seq", _is_int, True)


def _frame_pong(obj: Message) -> None:
    _field(obj, "seq", _is_int, True)
    _field(obj, "rss_kb", _is_int, True)


def _frame_shutdown(obj: Message) -> None:
    pass


def _frame_error(obj: Message) -> None:
    _field(obj, "message", _is_str, True)
    _field(obj, "seq", _is_int, False)


_FRAME_CHECKS: dict[str, Callable[[Message], None]] = {
    "ready": _frame_ready,
    "call": _frame_call,
    "result": _frame_result,
    "ping": _frame_ping,
    "pong": _frame_pong,
    "shutdown": _frame_shutdown,
    "error": _frame_error,
}


def validate_frame(obj: Any) -> None:
    """Raise DecodeError unless `obj` is a valid worker frame (README table)."""
    if not isinstance(obj, dict):
        raise DecodeError(NOT_MAP, None, f"frame is not a map (got {_kind(obj)})")
    t = _field(obj, "t", _is_str, True)
    _check_version(obj)
    check = _FRAME_CHECKS.get(t)
    if check is None:
        raise DecodeError(UNKNOWN_FRAME, "t", f"unknown frame type '{t}'")
    check(obj)
