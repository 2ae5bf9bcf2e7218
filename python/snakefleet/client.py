"""Submit execute requests to a snakefleet fleet over Kafka and await the replies.

    from snakefleet.client import Client

    with Client("127.0.0.1:9092") as client:
        client.submit("s1", "create_session")
        client.submit("s1", "create_program", program="p",
                      args={"spec": {"kind": "callable", "entry": "snakefleet.examples:echo"}})
        reply = client.submit("s1", "execute_program", program="p", args={"x": 1})
        assert reply["ok"], reply["error"]
        print(reply["result"])          # {'x': 1}

How it works (the same design as the C `snakefleet submit/batch/loadtest`):

- Requests are msgpack maps (schemas/README.md, "Execute request") produced
  to `requests_topic` keyed by session id, with `reply_to` set to this
  client's reply topic and a `correlation-id` header equal to the request id.
  The producer uses `partitioner=murmur2_random` (a session maps to the same
  partition as with the Java client and the C tools) and
  `enable.idempotence=true` (a session's requests stay in order across
  retries); requests of one session submitted from one thread reach Kafka in
  submission order.
- Replies are read by a background thread from `reply_topic` (default the
  shared `snakefleet.replies`; pass a topic of your own to avoid reading other
  clients' replies). The consumer never joins a group: it is assigned every
  partition at the end offsets read when the client starts, *before* the first
  request is produced, so no reply can slip past it. Replies are matched to
  their request by the reply's `id`; the rest are skipped.
- `submit()` returns the reply dict whatever its `ok`; it raises
  `ReplyTimeout` when no reply comes in time and `DeliveryError` when Kafka
  would not take the request. A failed reply's `error["type"]` is one of the
  constants of snakefleet.errors (`errors.SESSION_NOT_FOUND`, ...); a type
  not listed there may come from a newer fleet.
- `call()` is `submit()` that returns the reply's `result` and raises a
  failed reply as the ReplyError subclass of its type (`SessionNotFound`,
  `DeadlineExceeded`, ...; `ReplyError` itself for a type this client does
  not know), with the error's message, field and traceback;
  `raise_for_reply(reply)` does the same for a reply in hand.
- `headers=[(name, bytes), ...]` on submit travel with the request (a W3C
  `traceparent` reaches the program as `ctx.traceparent` and comes back on
  the reply).

Extra librdkafka properties go to both clients: `Client(bootstrap,
**{"fetch.wait.max.ms": 5})`. Against `snakefleet dev-broker` (librdkafka's
mock cluster, which answers an empty fetch only after the whole
fetch.wait.max.ms) keep fetch.wait.max.ms low; the client's default is 10.

confluent-kafka is an optional dependency (`pip install 'snakefleet[kafka]'`);
it is imported when a Client is made, not when this module is.
"""

from __future__ import annotations

import itertools
import os
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Protocol, TypedDict

from snakefleet import codec, errors

DEFAULT_REQUESTS_TOPIC = "snakefleet.requests"
DEFAULT_REPLY_TOPIC = "snakefleet.replies"

# Properties the contract fixes for every producer; any other value is an error.
FORCED_PRODUCER_CONF: dict[str, Any] = {
    "partitioner": "murmur2_random",
    "enable.idempotence": True,
}
PRODUCER_DEFAULTS: dict[str, Any] = {"linger.ms": 0}
CONSUMER_DEFAULTS: dict[str, Any] = {
    "fetch.wait.max.ms": 10,
    "isolation.level": "read_uncommitted",
}

Reply = dict[str, Any]


class ErrorInfo(TypedDict, total=False):
    """A failed reply's `error` (schemas/reply.schema.json)."""

    type: str
    message: str
    field: str
    traceback: str


class ReplyMessage(TypedDict, total=False):
    """A reply record as the fleet produces it (schemas/reply.schema.json), for
    type checking a service's code: `cast(ReplyMessage, client.submit(...))`."""

    v: int
    id: str
    session: str
    ok: bool
    result: Any
    error: ErrorInfo
    worker: str
    supervisor: str
    exec_us: int
    queued_us: int
    total_us: int


class RequestMessage(TypedDict, total=False):
    """An execute request as build_request makes it (schemas/request.schema.json)."""

    v: int
    id: str
    session: str
    op: str
    program: str
    args: dict[str, Any]
    reply_to: str
    deadline_ms: int
    meta: dict[str, Any]


class ReplyError(Exception):
    """A reply with ok false, raised by Client.call and raise_for_reply. The
    subclass names its error type; `type`, `message`, `field`, `traceback`
    and the whole `reply` are kept."""

    error_type = ""

    def __init__(self, reply: Reply) -> None:
        err = reply.get("error") or {}
        self.reply = reply
        self.type = str(err.get("type", self.error_type))
        self.message = str(err.get("message", ""))
        self.field: str | None = err.get("field")
        self.traceback: str | None = err.get("traceback")
        super().__init__(f"{self.type}: {self.message}" if self.message else self.type)


class InvalidRequest(ReplyError):
    """The request was refused (a field is missing or wrong)."""

    error_type = errors.INVALID_REQUEST


class UnknownVersion(ReplyError):
    """The request's wire version is newer than the fleet's."""

    error_type = errors.UNKNOWN_VERSION


class SessionNotFound(ReplyError):
    """No such session (create it first, or it ended or expired)."""

    error_type = errors.SESSION_NOT_FOUND


class ProgramNotFound(ReplyError):
    """No such program in the session."""

    error_type = errors.PROGRAM_NOT_FOUND


class InvalidProgram(ReplyError):
    """The program's spec did not build."""

    error_type = errors.INVALID_PROGRAM


class ProgramFailed(ReplyError):
    """The program raised, or returned what cannot be sent."""

    error_type = errors.PROGRAM_ERROR


class CallTimeout(ReplyError):
    """The call ran past pool.request_timeout; its worker was replaced."""

    error_type = errors.TIMEOUT


class CheckoutTimeout(ReplyError):
    """No worker was free within pool.checkout_timeout."""

    error_type = errors.CHECKOUT_TIMEOUT


class DeadlineExceeded(ReplyError):
    """deadline_ms passed before or while the call ran."""

    error_type = errors.DEADLINE_EXCEEDED


class DuplicateInProgress(ReplyError):
    """A request with this id is still running elsewhere."""

    error_type = errors.DUPLICATE_IN_PROGRESS


class PoisonPill(ReplyError):
    """The request crashed worker after worker."""

    error_type = errors.POISON_PILL


class SessionLimit(ReplyError):
    """redis.max_sessions sessions are stored."""

    error_type = errors.SESSION_LIMIT


class ReplyTooLarge(ReplyError):
    """The reply would not fit in a Kafka record."""

    error_type = errors.REPLY_TOO_LARGE


class WrongPartition(ReplyError):
    """Produced to another partition than the fleet's partitioner gives."""

    error_type = errors.WRONG_PARTITION


class Conflict(ReplyError):
    """Another writer changed the session during each run."""

    error_type = errors.CONFLICT


class Unavailable(ReplyError):
    """The session store was out of reach for redis.retry_timeout."""

    error_type = errors.UNAVAILABLE


class WorkerCrashed(ReplyError):
    """The call's worker died."""

    error_type = errors.WORKER_CRASHED


class Internal(ReplyError):
    """A fault of the fleet's own."""

    error_type = errors.INTERNAL


ERROR_CLASSES: dict[str, type[ReplyError]] = {
    c.error_type: c
    for c in (
        InvalidRequest,
        UnknownVersion,
        SessionNotFound,
        ProgramNotFound,
        InvalidProgram,
        ProgramFailed,
        CallTimeout,
        CheckoutTimeout,
        DeadlineExceeded,
        DuplicateInProgress,
        PoisonPill,
        SessionLimit,
        ReplyTooLarge,
        WrongPartition,
        Conflict,
        Unavailable,
        WorkerCrashed,
        Internal,
    )
}


def raise_for_reply(reply: Reply) -> Any:
    """The reply's result; a failed reply raised as the ReplyError of its type."""
    if reply.get("ok"):
        return reply.get("result")
    err = reply.get("error") or {}
    raise ERROR_CLASSES.get(str(err.get("type")), ReplyError)(reply)


class ReplyTimeout(TimeoutError):
    """No reply to the request within its timeout."""


class DeliveryError(RuntimeError):
    """Kafka did not accept the request (it was never delivered)."""


class ClientClosed(RuntimeError):
    """The client was closed before the reply came."""


# ---------------------------------------------------------------- protocols


class TopicPartitionLike(Protocol):
    topic: str
    partition: int
    offset: int


class MessageLike(Protocol):
    def error(self) -> Any: ...

    def value(self) -> bytes | None: ...


class ProducerLike(Protocol):
    """The part of confluent_kafka.Producer the client uses."""

    def produce(
        self,
        topic: str,
        value: bytes | None = ...,
        key: bytes | None = ...,
        *,
        headers: list[tuple[str, bytes]] | None = ...,
        on_delivery: Any = ...,
    ) -> None: ...

    def poll(self, timeout: float = ...) -> int: ...

    def flush(self, timeout: float = ...) -> int: ...

    def list_topics(self, topic: str | None = ..., timeout: float = ...) -> Any: ...


class ConsumerLike(Protocol):
    """The part of confluent_kafka.Consumer the client uses."""

    def poll(self, timeout: float = ...) -> Any: ...

    def consume(self, num_messages: int = ..., timeout: float = ...) -> list[Any]: ...

    def assign(self, partitions: list[Any]) -> None: ...

    def get_watermark_offsets(self, partition: Any, timeout: float = ...) -> Any: ...

    def list_topics(self, topic: str | None = ..., timeout: float = ...) -> Any: ...

    def close(self) -> None: ...


# ---------------------------------------------------------------- requests

_ids = itertools.count(1)
_id_prefix = secrets.token_hex(8)


def new_request_id(prefix: str = "py") -> str:
    """A request id unique across processes: `<prefix>-<random>-<n>`."""
    return f"{prefix}-{_id_prefix}-{next(_ids)}"


def build_request(
    session: str,
    op: str,
    *,
    request_id: str,
    program: str | None = None,
    args: Mapping[str, Any] | None = None,
    reply_to: str | None = None,
    deadline_ms: int | None = None,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The execute request map; raises codec.DecodeError (a ValueError) naming
    the field when it would not pass the supervisor's validation."""
    req: dict[str, Any] = {"v": codec.VERSION, "id": request_id, "session": session, "op": op}
    if program is not None:
        req["program"] = program
    if args is not None:
        req["args"] = dict(args) if isinstance(args, Mapping) else args
    if reply_to:
        req["reply_to"] = reply_to
    if deadline_ms:
        req["deadline_ms"] = deadline_ms
    if meta is not None:
        req["meta"] = dict(meta) if isinstance(meta, Mapping) else meta
    codec.validate_request(req)
    return req


def producer_config(bootstrap: str, conf: Mapping[str, Any]) -> dict[str, Any]:
    """librdkafka properties of the request producer: defaults, the caller's,
    then the forced ones (ValueError if the caller set one differently)."""
    out: dict[str, Any] = {**PRODUCER_DEFAULTS, **conf, "bootstrap.servers": bootstrap}
    for key, want in FORCED_PRODUCER_CONF.items():
        given = conf.get(key)
        if given is not None and str(given).lower() != str(want).lower():
            raise ValueError(
                f"kafka property {key!r} must be {want!r} for snakefleet, not {given!r}"
            )
        out[key] = want
    return out


def consumer_config(bootstrap: str, conf: Mapping[str, Any]) -> dict[str, Any]:
    """librdkafka properties of the reply consumer: never commits, never joins
    the supervisors' group (it is assigned partitions, it does not subscribe)."""
    return {
        **CONSUMER_DEFAULTS,
        **conf,
        "bootstrap.servers": bootstrap,
        "group.id": f"snakefleet-client-{os.getpid()}-{secrets.token_hex(4)}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": False,
    }


# ---------------------------------------------------------------- correlation


class Correlator:
    """Request id → pending Future, with per-request deadlines. Thread-safe:
    callers register from any thread, the reply thread resolves and expires."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[Future[Reply], float]] = {}
        self.replies = 0
        self.foreign = 0
        self.invalid = 0
        self.timeouts = 0

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def register(self, request_id: str, timeout: float | None) -> Future[Reply]:
        fut: Future[Reply] = Future()
        fut.set_running_or_notify_cancel()
        deadline = self._clock() + timeout if timeout is not None else float("inf")
        with self._lock:
            if request_id in self._pending:
                raise ValueError(f"request id {request_id!r} is already in flight")
            self._pending[request_id] = (fut, deadline)
        return fut

    def _take(self, request_id: str) -> Future[Reply] | None:
        with self._lock:
            entry = self._pending.pop(request_id, None)
        return entry[0] if entry else None

    def on_reply(self, data: bytes) -> bool:
        """Resolves the request this reply answers; False if it is not ours."""
        try:
            reply = codec.decode_map(data, None, "reply")
        except codec.DecodeError:
            self.invalid += 1
            return False
        rid = reply.get("id")
        fut = self._take(rid) if isinstance(rid, str) and rid else None
        if fut is None:
            self.foreign += 1
            return False
        try:
            codec.validate_reply(reply)
        except codec.DecodeError as e:
            self.invalid += 1
            fut.set_exception(e)
            return True
        self.replies += 1
        fut.set_result(reply)
        return True

    def fail(self, request_id: str, exc: BaseException) -> bool:
        fut = self._take(request_id)
        if fut is None:
            return False
        fut.set_exception(exc)
        return True

    def forget(self, request_id: str) -> None:
        self._take(request_id)

    def expire(self) -> int:
        """Fails every request past its deadline with ReplyTimeout."""
        now = self._clock()
        with self._lock:
            late = [rid for rid, (_, deadline) in self._pending.items() if deadline <= now]
            futs = [(rid, self._pending.pop(rid)[0]) for rid in late]
        for rid, fut in futs:
            self.timeouts += 1
            fut.set_exception(ReplyTimeout(f"no reply to request {rid} in time"))
        return len(futs)

    def fail_all(self, exc: BaseException) -> None:
        with self._lock:
            futs = [fut for fut, _ in self._pending.values()]
            self._pending.clear()
        for fut in futs:
            fut.set_exception(exc)


# ---------------------------------------------------------------- the client


def _import_kafka() -> Any:
    try:
        import confluent_kafka
    except ImportError as e:
        raise ImportError(
            "snakefleet.client needs confluent-kafka: pip install 'snakefleet[kafka]' "
            "(or pip install confluent-kafka)"
        ) from e
    return confluent_kafka


def _partitions(client: ProducerLike | ConsumerLike, topic: str, timeout: float) -> list[int]:
    """Partition ids of topic; RuntimeError naming the topic if it is unusable."""
    md = client.list_topics(topic, timeout=timeout)
    t = md.topics.get(topic)
    if t is None or t.error is not None or not t.partitions:
        why = t.error if t is not None and t.error is not None else "no such topic"
        raise RuntimeError(f"topic {topic!r}: {why}")
    return sorted(t.partitions)


class Client:
    """A snakefleet client: `submit()` / `submit_async()` requests, one
    background thread reading replies. Close it (or use `with`)."""

    def __init__(
        self,
        bootstrap: str,
        requests_topic: str = DEFAULT_REQUESTS_TOPIC,
        reply_topic: str | None = None,
        *,
        start_timeout: float = 10.0,
        producer: ProducerLike | None = None,
        consumer: ConsumerLike | None = None,
        **kafka_conf: Any,
    ) -> None:
        """`producer`/`consumer` replace the confluent-kafka clients (tests);
        `kafka_conf` is passed to both (dotted keys: `**{"linger.ms": 0}`)."""
        self.requests_topic = requests_topic
        self.reply_topic = reply_topic or DEFAULT_REPLY_TOPIC
        self.correlator = Correlator()
        self.sent = 0
        self._closed = False
        self._stop = threading.Event()
        if producer is None or consumer is None:
            kafka = _import_kafka()
            if producer is None:
                producer = kafka.Producer(producer_config(bootstrap, kafka_conf))
            if consumer is None:
                consumer = kafka.Consumer(consumer_config(bootstrap, kafka_conf))
        assert producer is not None and consumer is not None
        self._producer: ProducerLike = producer
        self._consumer: ConsumerLike = consumer
        try:
            self._start(start_timeout)
        except BaseException:
            self._consumer.close()
            raise
        self._thread = threading.Thread(
            target=self._run, name="snakefleet-client-replies", daemon=True
        )
        self._thread.start()

    def _start(self, timeout: float) -> None:
        """Positions the reply consumer at the end of every partition, before
        any request exists, and warms the producer's metadata."""
        _partitions(self._consumer, self.requests_topic, timeout)
        _partitions(self._producer, self.requests_topic, timeout)
        tp_class = _import_kafka().TopicPartition
        assignment = []
        for p in _partitions(self._consumer, self.reply_topic, timeout):
            tp = tp_class(self.reply_topic, p)
            low_high = self._consumer.get_watermark_offsets(tp, timeout=timeout)
            if low_high is None:
                raise RuntimeError(f"cannot read the end offset of {self.reply_topic}/{p}")
            assignment.append(tp_class(self.reply_topic, p, low_high[1]))
        self._consumer.assign(assignment)

    # ------------------------------------------------------------ submit

    def submit_async(
        self,
        session: str,
        op: str,
        program: str | None = None,
        args: Mapping[str, Any] | None = None,
        timeout: float | None = 30.0,
        *,
        request_id: str | None = None,
        deadline_ms: int | None = None,
        meta: Mapping[str, Any] | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> Future[Reply]:
        """Produces one request; the Future gets the reply dict, or fails with
        ReplyTimeout (after `timeout` s), DeliveryError or ClientClosed."""
        if self._closed:
            raise ClientClosed("the client is closed")
        rid = request_id or new_request_id()
        req = build_request(
            session,
            op,
            request_id=rid,
            program=program,
            args=args,
            reply_to=self.reply_topic,
            deadline_ms=deadline_ms,
            meta=meta,
        )
        data = codec.encode(req)
        fut = self.correlator.register(rid, timeout)

        def on_delivery(err: Any, msg: Any) -> None:
            if err is not None:
                self.correlator.fail(rid, DeliveryError(f"request {rid}: {err}"))

        while True:
            try:
                self._producer.produce(
                    self.requests_topic,
                    value=data,
                    key=session.encode(),
                    headers=[("correlation-id", rid.encode()), *(headers or ())],
                    on_delivery=on_delivery,
                )
                break
            except BufferError:  # the local queue is full: let it drain
                self._producer.poll(0.01)
            except Exception as e:
                self.correlator.fail(rid, e)
                raise
        self.sent += 1
        return fut

    def submit(
        self,
        session: str,
        op: str,
        program: str | None = None,
        args: Mapping[str, Any] | None = None,
        timeout: float = 30.0,
        **kwargs: Any,
    ) -> Reply:
        """Produces one request and waits for its reply (returned whatever its
        `ok`). Raises ReplyTimeout, DeliveryError or ClientClosed."""
        fut = self.submit_async(session, op, program, args, timeout, **kwargs)
        try:
            return fut.result(timeout + 5.0)  # the reply thread expires it at `timeout`
        except FutureTimeout:
            raise ReplyTimeout(f"no reply within {timeout} s") from None

    def call(
        self,
        session: str,
        op: str,
        program: str | None = None,
        args: Mapping[str, Any] | None = None,
        timeout: float = 30.0,
        **kwargs: Any,
    ) -> Any:
        """submit(), then the reply's result; a failed reply is raised as the
        ReplyError subclass of its type (raise_for_reply)."""
        return raise_for_reply(self.submit(session, op, program, args, timeout, **kwargs))

    def stats(self) -> dict[str, int]:
        c = self.correlator
        return {
            "sent": self.sent,
            "replies": c.replies,
            "pending": c.pending,
            "foreign": c.foreign,
            "invalid": c.invalid,
            "timeouts": c.timeouts,
        }

    # ------------------------------------------------------------ the reply thread

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll_once(0.05)

    def poll_once(self, timeout: float) -> int:
        """One round of the reply thread: replies, delivery reports, expiry.
        Returns the replies matched (public for tests and single-threaded use)."""
        matched = 0
        first = self._consumer.poll(timeout)
        batch = [first, *self._consumer.consume(500, 0)] if first is not None else []
        for msg in batch:
            if msg.error() is not None:
                continue
            value = msg.value()
            if value is not None and self.correlator.on_reply(value):
                matched += 1
        self._producer.poll(0)
        self.correlator.expire()
        return matched

    # ------------------------------------------------------------ lifetime

    def close(self, timeout: float = 5.0) -> None:
        """Stops the reply thread, flushes queued requests (at most `timeout`
        s) and fails whatever still waits with ClientClosed."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._thread.join(timeout)
        self._producer.flush(timeout)
        self._consumer.close()
        self.correlator.fail_all(ClientClosed("the client was closed before the reply came"))

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
