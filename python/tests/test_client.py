"""Tests of snakefleet.client: request building, correlation, and the Client
against an in-memory fake Kafka (no broker). The last test talks to a real
broker and runs only when SNAKEFLEET_TEST_KAFKA is set."""

from __future__ import annotations

import builtins
import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from snakefleet import client as sfc
from snakefleet import codec

# ---------------------------------------------------------------- requests


def test_build_request_minimal() -> None:
    req = sfc.build_request("s1", "ping", request_id="r1")
    assert req == {"v": 1, "id": "r1", "session": "s1", "op": "ping"}


def test_build_request_full_roundtrips_through_the_codec() -> None:
    req = sfc.build_request(
        "s1",
        "execute_program",
        request_id="r2",
        program="p",
        args={"x": 1, "blob": b"\x00\x01"},
        reply_to="my.replies",
        deadline_ms=1_700_000_000_000,
        meta={"trace": "t"},
    )
    assert codec.decode_request(codec.encode(req)) == req


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"session": "", "op": "ping"}, "session"),
        ({"session": "s", "op": "explode"}, "op"),
        ({"session": "s", "op": "execute_program"}, "program"),
        ({"session": "s", "op": "create_program", "program": "p", "args": {}}, "args.spec"),
        ({"session": "s", "op": "set_session_state"}, None),
    ],
)
def test_build_request_rejects_what_the_supervisor_would(
    kwargs: dict[str, Any], field: str | None
) -> None:
    with pytest.raises(codec.DecodeError) as e:
        sfc.build_request(request_id="r", **kwargs)
    if field is not None:
        assert e.value.field == field


def test_request_ids_are_unique() -> None:
    ids = {sfc.new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(i.startswith("py-") for i in ids)


def test_producer_config_forces_the_partitioner_and_idempotence() -> None:
    conf = sfc.producer_config("b:1", {"linger.ms": 5})
    assert conf["partitioner"] == "murmur2_random"
    assert conf["enable.idempotence"] is True
    assert conf["linger.ms"] == 5
    assert conf["bootstrap.servers"] == "b:1"
    assert sfc.producer_config("b:1", {"enable.idempotence": "true"})["enable.idempotence"]
    with pytest.raises(ValueError, match="partitioner"):
        sfc.producer_config("b:1", {"partitioner": "consistent"})
    with pytest.raises(ValueError, match=r"enable\.idempotence"):
        sfc.producer_config("b:1", {"enable.idempotence": False})


def test_consumer_config_never_commits_nor_joins_a_shared_group() -> None:
    a = sfc.consumer_config("b:1", {"group.id": "snakefleet", "fetch.wait.max.ms": 5})
    b = sfc.consumer_config("b:1", {})
    assert a["group.id"] != "snakefleet" and a["group.id"] != b["group.id"]
    assert a["enable.auto.commit"] is False
    assert a["fetch.wait.max.ms"] == 5
    assert b["fetch.wait.max.ms"] == sfc.CONSUMER_DEFAULTS["fetch.wait.max.ms"]


# ---------------------------------------------------------------- correlation


def reply_bytes(rid: str, ok: bool = True, **extra: Any) -> bytes:
    reply: dict[str, Any] = {"v": 1, "id": rid, "session": "s", "ok": ok}
    if ok:
        reply["result"] = extra.pop("result", None)
    else:
        reply["error"] = {"type": "program_error", "message": "boom"}
    reply.update(extra)
    return codec.encode(reply)


def test_correlator_matches_replies_by_id() -> None:
    c = sfc.Correlator()
    f1, f2 = c.register("a", 10), c.register("b", 10)
    assert c.on_reply(reply_bytes("b", result=2))
    assert c.on_reply(reply_bytes("a", ok=False))
    assert f2.result(0)["result"] == 2
    assert f1.result(0)["error"]["type"] == "program_error"
    assert c.pending == 0 and c.replies == 2


def test_correlator_skips_foreign_duplicate_and_undecodable_replies() -> None:
    c = sfc.Correlator()
    fut = c.register("mine", 10)
    assert not c.on_reply(reply_bytes("someone-else"))
    assert not c.on_reply(b"\xc1 not msgpack")
    assert not c.on_reply(codec.encode({"v": 1, "id": "", "session": "", "ok": True}))
    assert c.on_reply(reply_bytes("mine"))
    assert not c.on_reply(reply_bytes("mine"))  # a redelivered reply is foreign by now
    assert fut.done()
    assert (c.foreign, c.invalid, c.replies) == (3, 1, 1)


def test_correlator_fails_a_request_whose_reply_breaks_the_schema() -> None:
    c = sfc.Correlator()
    fut = c.register("r", 10)
    assert c.on_reply(codec.encode({"v": 1, "id": "r", "session": "s", "ok": "yes"}))
    with pytest.raises(codec.DecodeError) as e:
        fut.result(0)
    assert e.value.field == "ok"


def test_correlator_expires_late_requests() -> None:
    now = [100.0]
    c = sfc.Correlator(clock=lambda: now[0])
    quick, slow, never = c.register("q", 1), c.register("s", 5), c.register("n", None)
    now[0] = 101.5
    assert c.expire() == 1
    with pytest.raises(sfc.ReplyTimeout):
        quick.result(0)
    assert not slow.done() and not never.done()
    now[0] = 1e9
    assert c.expire() == 1
    assert not never.done()
    c.fail_all(sfc.ClientClosed("bye"))
    with pytest.raises(sfc.ClientClosed):
        never.result(0)


def test_correlator_rejects_an_id_already_in_flight() -> None:
    c = sfc.Correlator()
    c.register("x", 1)
    with pytest.raises(ValueError, match="already in flight"):
        c.register("x", 1)


# ---------------------------------------------------------------- a fake Kafka


class FakeMessage:
    def __init__(self, value: bytes, err: Any = None) -> None:
        self._value, self._err = value, err

    def value(self) -> bytes:
        return self._value

    def error(self) -> Any:
        return self._err


class FakeKafka:
    """Topics as in-memory partition logs shared by the fake clients, and a
    responder that answers every request like a supervisor would."""

    def __init__(self, partitions: dict[str, int]) -> None:
        self.partitions = partitions
        self.logs: dict[tuple[str, int], list[tuple[bytes | None, bytes]]] = {
            (t, p): [] for t, n in partitions.items() for p in range(n)
        }
        self.lock = threading.Lock()
        self.events: list[str] = []
        self.answer = True
        self.fail_delivery = False

    def metadata(self, topic: str | None) -> Any:
        topics = {}
        for t, n in self.partitions.items():
            if topic is None or t == topic:
                topics[t] = SimpleNamespace(error=None, partitions={p: None for p in range(n)})
        return SimpleNamespace(topics=topics)

    def append(self, topic: str, key: bytes | None, value: bytes) -> int:
        n = self.partitions[topic]
        p = sum(key or b"") % n  # any stable key → partition map will do here
        with self.lock:
            self.logs[(topic, p)].append((key, value))
        return p

    def respond(self, value: bytes) -> None:
        req = codec.decode_request(value)
        if not self.answer:
            return
        if req["op"] == "execute_program" and "fail" in req.get("args", {}):
            error = {"type": req["args"]["fail"], "message": "it failed", "field": "session"}
            reply = {"v": 1, "id": req["id"], "session": req["session"], "ok": False}
            reply["error"] = error
        elif req["op"] == "execute_program":
            reply = {"v": 1, "id": req["id"], "session": req["session"], "ok": True}
            reply["result"] = req.get("args", {})
        else:
            reply = {"v": 1, "id": req["id"], "session": req["session"], "ok": True}
            reply["result"] = "pong" if req["op"] == "ping" else None
        self.append(req["reply_to"], req["session"].encode(), codec.encode(reply))


class FakeProducer:
    def __init__(self, kafka: FakeKafka) -> None:
        self.kafka = kafka
        self.produced: list[tuple[str, bytes | None, bytes, Any]] = []
        self.reports: deque[Any] = deque()

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        headers: list[tuple[str, bytes]] | None = None,
        on_delivery: Any = None,
    ) -> None:
        assert value is not None
        self.kafka.events.append("produce")
        self.produced.append((topic, key, value, headers))
        if self.kafka.fail_delivery:
            self.reports.append(lambda: on_delivery("KafkaError{MSG_TIMED_OUT}", None))
            return
        self.kafka.append(topic, key, value)
        self.reports.append(lambda: on_delivery(None, None))
        self.kafka.respond(value)

    def poll(self, timeout: float = 0) -> int:
        n = 0
        while self.reports:
            self.reports.popleft()()
            n += 1
        return n

    def flush(self, timeout: float = 0) -> int:
        self.poll()
        return 0

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        return self.kafka.metadata(topic)


class FakeConsumer:
    def __init__(self, kafka: FakeKafka) -> None:
        self.kafka = kafka
        self.positions: dict[tuple[str, int], int] = {}
        self.closed = False

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        return self.kafka.metadata(topic)

    def get_watermark_offsets(self, tp: Any, timeout: float = -1) -> tuple[int, int]:
        return 0, len(self.kafka.logs[(tp.topic, tp.partition)])

    def assign(self, parts: list[Any]) -> None:
        self.kafka.events.append("assign")
        self.positions = {(tp.topic, tp.partition): tp.offset for tp in parts}

    def _next(self) -> FakeMessage | None:
        with self.kafka.lock:
            for key, pos in self.positions.items():
                log = self.kafka.logs[key]
                if pos < len(log):
                    self.positions[key] = pos + 1
                    return FakeMessage(log[pos][1])
        return None

    def poll(self, timeout: float = -1) -> FakeMessage | None:
        msg = self._next()
        if msg is None and timeout > 0:
            time.sleep(min(timeout, 0.005))
        return msg

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[FakeMessage]:
        out: list[FakeMessage] = []
        while len(out) < num_messages and (m := self._next()) is not None:
            out.append(m)
        return out

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def kafka() -> FakeKafka:
    pytest.importorskip("confluent_kafka")  # the Client builds confluent TopicPartitions
    return FakeKafka({"snakefleet.requests": 8, "snakefleet.replies": 4, "mine": 2})


def make_client(kafka: FakeKafka, **kwargs: Any) -> sfc.Client:
    return sfc.Client(
        "fake:9092", producer=FakeProducer(kafka), consumer=FakeConsumer(kafka), **kwargs
    )


def test_client_reads_replies_from_the_end_assigned_before_any_request(kafka: FakeKafka) -> None:
    # An old reply with a colliding id sits on the topic: it must never be read.
    kafka.append("snakefleet.replies", b"s", reply_bytes("py-stale", result="old"))
    with make_client(kafka) as c:
        assert kafka.events[0] == "assign"
        consumer = c._consumer
        assert isinstance(consumer, FakeConsumer)
        assert sum(consumer.positions.values()) == 1  # every partition at its end
        reply = c.submit("s1", "ping", timeout=5)
        assert reply["ok"] and reply["result"] == "pong"
    assert consumer.closed


def test_client_produces_keyed_requests_with_reply_to_and_correlation_header(
    kafka: FakeKafka,
) -> None:
    with make_client(kafka, reply_topic="mine") as c:
        reply = c.submit("sess-9", "execute_program", program="p", args={"i": 3}, timeout=5)
        assert reply["result"] == {"i": 3}
        producer = c._producer
        assert isinstance(producer, FakeProducer)
        topic, key, value, headers = producer.produced[0]
        req = codec.decode_request(value)
        assert topic == "snakefleet.requests" and key == b"sess-9"
        assert req["reply_to"] == "mine" and req["program"] == "p"
        assert headers == [("correlation-id", req["id"].encode())]
        assert c.stats()["replies"] == 1


def test_client_keeps_each_sessions_submission_order(kafka: FakeKafka) -> None:
    with make_client(kafka) as c:
        futs = [
            c.submit_async(f"s{i % 3}", "execute_program", "p", {"i": i}, timeout=5)
            for i in range(60)
        ]
        results = [f.result(5)["result"]["i"] for f in futs]
        assert results == list(range(60))
        producer = c._producer
        assert isinstance(producer, FakeProducer)
        for s in ("s0", "s1", "s2"):
            sent = [
                codec.decode_request(v)["args"]["i"]
                for _, k, v, _ in producer.produced
                if k == s.encode()
            ]
            assert sent == sorted(sent)


def test_client_submit_times_out_when_nobody_answers(kafka: FakeKafka) -> None:
    kafka.answer = False
    with make_client(kafka) as c:
        t0 = time.monotonic()
        with pytest.raises(sfc.ReplyTimeout):
            c.submit("s", "ping", timeout=0.2)
        assert time.monotonic() - t0 < 2
        assert c.stats()["timeouts"] == 1 and c.stats()["pending"] == 0


def test_client_reports_an_undelivered_request(kafka: FakeKafka) -> None:
    kafka.fail_delivery = True
    with make_client(kafka) as c, pytest.raises(sfc.DeliveryError, match="MSG_TIMED_OUT"):
        c.submit("s", "ping", timeout=5)


def test_client_close_fails_what_still_waits(kafka: FakeKafka) -> None:
    kafka.answer = False
    c = make_client(kafka)
    fut = c.submit_async("s", "ping", timeout=None)
    c.close()
    with pytest.raises(sfc.ClientClosed):
        fut.result(1)
    with pytest.raises(sfc.ClientClosed):
        c.submit_async("s", "ping")
    c.close()  # idempotent


def test_client_refuses_a_missing_topic(kafka: FakeKafka) -> None:
    with pytest.raises(RuntimeError, match="nope"):
        make_client(kafka, reply_topic="nope")


def test_client_rejects_an_invalid_request_before_producing(kafka: FakeKafka) -> None:
    with make_client(kafka) as c:
        with pytest.raises(codec.DecodeError):
            c.submit("s", "execute_program")  # no program
        producer = c._producer
        assert isinstance(producer, FakeProducer)
        assert producer.produced == [] and c.stats()["pending"] == 0


def test_missing_confluent_kafka_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_kafka(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "confluent_kafka":
            raise ImportError("No module named 'confluent_kafka'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_kafka)
    with pytest.raises(ImportError, match=r"snakefleet\[kafka\]"):
        sfc.Client("127.0.0.1:1")


# ---------------------------------------------------------------- a real broker

BOOTSTRAP = os.environ.get("SNAKEFLEET_TEST_KAFKA")


@pytest.fixture
def private_topics() -> Iterator[tuple[str, str]]:
    """A requests and a reply topic of this test's own, so no supervisor (or
    other responder) running against the same broker answers first."""
    pytest.importorskip("confluent_kafka")
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic

    assert BOOTSTRAP is not None
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    base = f"snakefleet.test-client-{os.getpid()}-{int(time.time())}"
    names = (f"{base}.requests", f"{base}.replies")
    futures = admin.create_topics([NewTopic(n, 2, 1) for n in names])
    try:
        for fut in futures.values():
            fut.result(15)
    except KafkaException as e:
        pytest.skip(f"cannot create test topics on {BOOTSTRAP}: {e}")
    try:
        yield names
    finally:
        for fut in admin.delete_topics(list(names)).values():
            with contextlib.suppress(KafkaException):
                fut.result(15)


@pytest.mark.skipif(not BOOTSTRAP, reason="set SNAKEFLEET_TEST_KAFKA to run against Kafka")
def test_against_a_real_broker(private_topics: tuple[str, str]) -> None:
    """Round trips through a real Kafka, answered by a tiny responder that
    reads the requests topic from its end (no supervisor needed)."""
    ck = pytest.importorskip("confluent_kafka")
    assert BOOTSTRAP is not None
    requests_topic, reply_topic = private_topics
    fast: dict[str, Any] = {"fetch.wait.max.ms": 5}
    responder = ck.Consumer(sfc.consumer_config(BOOTSTRAP, fast))
    for _ in range(100):  # a new topic's metadata can take a moment to spread
        md = responder.list_topics(requests_topic, timeout=10).topics[requests_topic]
        if md.error is None and md.partitions:
            break
        time.sleep(0.1)
    assign = []
    for p in md.partitions:
        tp = ck.TopicPartition(requests_topic, p)
        assign.append(
            ck.TopicPartition(requests_topic, p, responder.get_watermark_offsets(tp, 10)[1])
        )
    responder.assign(assign)
    out = ck.Producer(sfc.producer_config(BOOTSTRAP, {}))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            msg = responder.poll(0.05)
            if msg is None or msg.error():
                continue
            req = codec.decode_request(msg.value())
            reply = {"v": 1, "id": req["id"], "session": req["session"], "ok": True}
            reply["result"] = req.get("args", {}).get("i")
            out.produce(req["reply_to"], codec.encode(reply), req["session"].encode())
            out.poll(0)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with sfc.Client(BOOTSTRAP, requests_topic, reply_topic, **fast) as c:
            futs = [
                c.submit_async("py-test", "execute_program", "p", {"i": i}, 20) for i in range(20)
            ]
            assert [f.result(30)["result"] for f in futs] == list(range(20))
            assert c.stats()["foreign"] == 0
    finally:
        stop.set()
        thread.join(5)
        out.flush(5)
        responder.close()


def test_call_returns_the_result_and_raises_a_failed_reply_as_its_type(kafka: FakeKafka) -> None:
    with make_client(kafka) as c:
        assert c.call("s", "execute_program", program="p", args={"i": 1}, timeout=5) == {"i": 1}
        with pytest.raises(sfc.SessionNotFound) as e:
            c.call("s", "execute_program", program="p", args={"fail": "session_not_found"})
        assert e.value.type == "session_not_found" and e.value.message == "it failed"
        assert e.value.field == "session" and not e.value.reply["ok"]
        assert isinstance(e.value, sfc.ReplyError)
        with pytest.raises(sfc.DeadlineExceeded):
            c.call("s", "execute_program", program="p", args={"fail": "deadline_exceeded"})
        # a type this client does not know (a newer fleet): the base class
        with pytest.raises(sfc.ReplyError) as e2:
            c.call("s", "execute_program", program="p", args={"fail": "from_the_future"})
        assert type(e2.value) is sfc.ReplyError and e2.value.type == "from_the_future"


def test_every_error_type_has_its_class() -> None:
    from snakefleet import errors

    types = {v for k, v in vars(errors).items() if k.isupper() and isinstance(v, str)}
    replied = types - {errors.STALE_CACHE}  # worker-to-pool only, never in a reply
    missing = {t for t in replied if t not in sfc.ERROR_CLASSES}
    assert not missing, f"error types without a ReplyError class: {missing}"
    assert all(cls.error_type == t for t, cls in sfc.ERROR_CLASSES.items())


def test_submit_sends_extra_headers_after_the_correlation_id(kafka: FakeKafka) -> None:
    tp = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with make_client(kafka) as c:
        c.submit("s", "ping", headers=[("traceparent", tp)], timeout=5)
        producer = c._producer
        assert isinstance(producer, FakeProducer)
        _, _, value, headers = producer.produced[0]
        rid = codec.decode_request(value)["id"]
        assert headers == [("correlation-id", rid.encode()), ("traceparent", tp)]
