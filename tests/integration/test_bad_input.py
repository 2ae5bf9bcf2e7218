"""Guarantee 5 of docs/DESIGN.md, bad input gets a clear answer: a request that
cannot be decoded or is invalid gets an error reply when a reply topic is known
and a DLQ record otherwise; a poison pill goes to the DLQ with an error reply;
a request past its deadline is not run; a reply Kafka cannot take (too large,
or to a topic that does not exist) is a typed error or a DLQ record. None of
them stalls its partition.

Same isolation as the other integration tests (conftest.py): every test has its
own request topic, reply topic, consumer group and session ids, and stops every
process it starts.
"""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from conftest import DLQ_TOPIC, Fleet, KafkaEnv, Record, now_ms, wait_until
from helpers import PROGRAMS_DIR, schema_errors, setup_requests


def delivered_at(env: KafkaEnv, value: bytes) -> tuple[int, int]:
    """(partition, offset) the producer got for the request with these bytes."""
    for topic, p, off, _key, v in env.delivered:
        if topic == env.requests and v == value:
            return p, off
    raise AssertionError("request not delivered")


@pytest.mark.timeout(180)
def test_bad_input_gets_an_answer_and_the_partition_keeps_flowing(
    kafka: KafkaEnv, fleet: Fleet
) -> None:
    """Guarantee 5: every kind of bad request gets an error reply (reply topic
    known) or a DLQ record (not known), and a good request right after it on
    the same partition is answered. Also the reply-topic / correlation-id
    headers (Spring Kafka's names too)."""
    sup = fleet.start(supervisor__max_message_bytes=2048)
    fleet.wait_stable([sup])
    dlq = kafka.reader(DLQ_TOPIC, from_end=True)
    replies = kafka.replies()
    hdr_topic = kafka.create_topic(f"{kafka.prefix}.hdr-replies", 1)
    hdr_replies = kafka.replies(hdr_topic)
    s = kafka.session("bad")
    R = kafka.replies_topic
    good: list[str] = []
    n = 0

    def good_one() -> None:
        nonlocal n
        n += 1
        rid = f"{s}/good{n}"
        kafka.send(kafka.request(rid, s, "get_session_state"))
        good.append(rid)

    kafka.send(kafka.request(f"{s}/create", s, "create_session", args={"state": {"x": 1}}))
    good_one()
    # 1. garbage, no reply topic anywhere -> DLQ
    garbage = b"\xc1\xc1 this is not msgpack \x00\xff"
    kafka.send(garbage, key=s)
    good_one()
    # 1b. garbage without a key -> DLQ with key nil (lands on any partition)
    garbage_nokey = b"\x93\x01\x02"  # a msgpack array, not a map
    kafka.send(garbage_nokey, key=None)
    # 2. unknown schema version, reply_to given -> unknown_version
    kafka.send({"v": 99, "id": f"{s}/v99", "session": s, "op": "ping", "reply_to": R})
    good_one()
    # 3. no session, reply_to given -> invalid_request field session
    kafka.send({"v": 1, "id": f"{s}/nosession", "op": "ping", "reply_to": R}, key=s)
    good_one()
    # 4. key differs from session
    kafka.send(
        {
            "v": 1,
            "id": f"{s}/wrongkey",
            "session": f"{s}-other",
            "op": "ping",
            "reply_to": R,
        },
        key=s,
    )
    good_one()
    # 5. larger than supervisor.max_message_bytes (2048)
    big = {
        "v": 1,
        "id": f"{s}/big",
        "session": s,
        "op": "ping",
        "reply_to": R,
        "meta": {"pad": "x" * 4096},
    }
    kafka.send(big)
    good_one()
    # 6. unknown op
    kafka.send({"v": 1, "id": f"{s}/badop", "session": s, "op": "frobnicate", "reply_to": R})
    good_one()
    # 7. reply topic and correlation id as headers
    kafka.send(
        {"v": 1, "id": f"{s}/hdr", "session": s, "op": "ping"},
        headers=[("reply-topic", hdr_topic.encode()), ("correlation-id", b"corr-123")],
    )
    kafka.send(
        {"v": 1, "id": f"{s}/spring", "session": s, "op": "ping"},
        headers=[
            ("kafka_replyTopic", hdr_topic.encode()),
            ("kafka_correlationId", b"\x00\x01spring"),
        ],
    )
    # 8. garbage, but a reply-topic header -> error reply there, no DLQ
    garbage2 = b"\xc1 more garbage"
    kafka.send(
        garbage2,
        key=s,
        headers=[
            ("reply-topic", hdr_topic.encode()),
            ("correlation-id", b"corr-garbage"),
        ],
    )
    good_one()
    kafka.flush()

    want = [
        *good,
        f"{s}/create",
        f"{s}/v99",
        f"{s}/nosession",
        f"{s}/wrongkey",
        f"{s}/big",
        f"{s}/badop",
    ]
    byid = replies.wait_ids(want, 60)
    for rid in good:
        rep = byid[rid]
        assert len(rep) == 1 and rep[0]["ok"], f"{rid}: {rep}"
        assert rep[0]["result"] == {"x": 1}

    def err(rid: str, session: str = s) -> dict[str, Any]:
        rep = byid[rid]
        assert len(rep) == 1, rep
        assert rep[0]["ok"] is False, rep
        assert rep[0]["id"] == rid, rep
        assert rep[0]["session"] == session, rep
        assert schema_errors("reply", rep[0]) == [], rep
        return rep[0]["error"]

    e = err(f"{s}/v99")
    assert e["type"] == "unknown_version" and "99" in e["message"], e
    e = err(f"{s}/nosession")
    assert e["type"] == "invalid_request" and e.get("field") == "session", e
    e = err(f"{s}/wrongkey", session=f"{s}-other")  # the reply names the body's session
    assert e["type"] == "invalid_request" and e.get("field") == "session", e
    assert "key" in e["message"], e
    e = err(f"{s}/big")
    big_len = len(msgpack.packb(big))
    assert e["type"] == "invalid_request", e
    assert str(big_len) in e["message"] and "2048" in e["message"], e
    e = err(f"{s}/badop")
    assert e["type"] == "invalid_request" and e.get("field") == "op", e

    # the header replies
    hdr_replies.wait_for(lambda recs: len(recs) >= 3, 30, "3 replies on the header topic")
    by = {r.msg["id"]: r for r in hdr_replies.records}
    assert by[f"{s}/hdr"].msg["ok"] and by[f"{s}/hdr"].headers.get("correlation-id") == b"corr-123"
    assert by[f"{s}/hdr"].key == s.encode()
    assert by[f"{s}/spring"].msg["ok"]
    assert by[f"{s}/spring"].headers.get("kafka_correlationId") == b"\x00\x01spring"
    g = by[""]  # the garbage had no id
    assert g.msg["ok"] is False and g.msg["error"]["type"] == "invalid_request", g.msg
    assert g.msg["session"] == s and g.key == s.encode(), g.msg
    assert g.headers.get("correlation-id") == b"corr-garbage"
    assert all(r.msg.get("id") not in (f"{s}/hdr", f"{s}/spring") for r in replies.records), (
        "a header-addressed reply also went to the default reply topic"
    )

    # the DLQ: exactly the two records without a reply topic
    def mine(rs: list[Record]) -> list[Record]:
        return [r for r in rs if isinstance(r.msg, dict) and r.msg.get("topic") == kafka.requests]

    dlq.wait_for(lambda rs: len(mine(rs)) >= 2, 30, "2 DLQ records")
    dlq.poll(1.0)  # nothing more may come
    recs = mine(dlq.records)
    assert len(recs) == 2, [r.msg for r in recs]
    by_value = {r.msg["value"]: r for r in recs}
    assert set(by_value) == {garbage, garbage_nokey}
    for value, key in ((garbage, s.encode()), (garbage_nokey, None)):
        r = by_value[value]
        m = r.msg
        p, off = delivered_at(kafka, value)
        assert (m["partition"], m["offset"]) == (p, off), m
        assert m["key"] == key and r.key == key, m
        assert m["v"] == 1 and m["supervisor"] == sup.id
        assert isinstance(m["reason"], str) and m["reason"], m
        assert isinstance(m["error_type"], str) and m["error_type"], m
        assert abs(m["ts_ms"] - now_ms()) < 120_000, m
        assert schema_errors("dlq", m) == [], m

    # The partition kept flowing: every offset of it got finished and committed.
    p, _ = delivered_at(kafka, garbage)
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": f"{kafka.prefix}-wm"})
    try:
        _, hi = c.get_watermark_offsets(TopicPartition(kafka.requests, p), timeout=10)
    finally:
        c.close()
    wait_until(
        lambda: kafka.committed([p]).get(p) == hi,
        20,
        f"the group's committed offset on partition {p} to reach {hi}",
        interval=0.5,
    )


@pytest.mark.timeout(120)
def test_poison_pill_goes_to_the_dlq(kafka: KafkaEnv, fleet: Fleet) -> None:
    """Guarantee 5: a request that crashes a worker poison_threshold (3) times
    gets a poison_pill error reply and a DLQ record; its session goes on."""
    sup = fleet.start()
    fleet.wait_stable([sup])
    dlq = kafka.reader(DLQ_TOPIC, from_end=True)
    replies = kafka.replies()
    s = kafka.session("poison")
    crash_spec = {"kind": "callable", "entry": "snakefleet.examples:crash"}
    reqs = [
        *setup_requests(kafka, s),
        kafka.request(
            f"{s}/prog-crash",
            s,
            "create_program",
            program="crash",
            args={"spec": crash_spec},
        ),
        kafka.request(f"{s}/op0", s, "execute_program", program="rec", args={"op": 0}),
        kafka.request(f"{s}/pill", s, "execute_program", program="crash", args={"how": "abort"}),
        kafka.request(f"{s}/op1", s, "execute_program", program="rec", args={"op": 1}),
        kafka.request(f"{s}/state", s, "get_session_state"),
    ]
    for r in reqs:
        kafka.send(r)
    kafka.flush()
    pill_bytes = msgpack.packb(reqs[4], use_bin_type=True)
    byid = replies.wait_ids([r["id"] for r in reqs], 90)

    pill = byid[f"{s}/pill"]
    assert len(pill) == 1 and not pill[0]["ok"], pill
    assert pill[0]["error"]["type"] == "poison_pill", pill
    for rid in (
        f"{s}/create",
        f"{s}/prog-rec",
        f"{s}/prog-crash",
        f"{s}/op0",
        f"{s}/op1",
    ):
        assert byid[rid][0]["ok"], byid[rid]
    assert byid[f"{s}/op1"][0]["result"] == 2
    assert byid[f"{s}/state"][0]["result"] == {"seq": [0, 1]}
    retries = sup.events("request.retry_after_crash")
    assert len(retries) == 2, retries  # crashes 1 and 2 are retried, the 3rd is the verdict
    assert len(sup.events("pool.worker_died")) >= 3

    def mine(rs: list[Record]) -> list[Record]:
        return [r for r in rs if isinstance(r.msg, dict) and r.msg.get("topic") == kafka.requests]

    recs = dlq.wait_for(mine, 30, "the poison pill's DLQ record")
    dlq.poll(1.0)
    recs = mine(dlq.records)
    assert len(recs) == 1, [r.msg for r in recs]
    m = recs[0].msg
    assert m["error_type"] == "poison_pill" and "poison" in m["reason"], m
    assert m["value"] == pill_bytes and m["key"] == s.encode(), m
    p, off = delivered_at(kafka, pill_bytes)
    assert (m["partition"], m["offset"]) == (p, off), m
    assert schema_errors("dlq", m) == [], m
    # the pool recovers: two healthy workers again
    wait_until(lambda: len(sup.events("pool.worker_ready")) >= 5, 30, "replacement workers")


@pytest.mark.timeout(120)
def test_deadline_in_the_past_is_not_run(kafka: KafkaEnv, fleet: Fleet) -> None:
    sup = fleet.start()
    fleet.wait_stable([sup])
    replies = kafka.replies()
    s = kafka.session("deadline")
    reqs = [
        *setup_requests(kafka, s),
        kafka.request(
            f"{s}/late",
            s,
            "execute_program",
            program="rec",
            args={"op": 0},
            deadline_ms=now_ms() - 60_000,
        ),
        kafka.request(
            f"{s}/op1",
            s,
            "execute_program",
            program="rec",
            args={"op": 1},
            deadline_ms=now_ms() + 120_000,
        ),
        kafka.request(f"{s}/late-state", s, "get_session_state", deadline_ms=1),
        kafka.request(f"{s}/state", s, "get_session_state", deadline_ms=0),
    ]
    for r in reqs:
        kafka.send(r)
    kafka.flush()
    byid = replies.wait_ids([r["id"] for r in reqs], 60)
    late = byid[f"{s}/late"][0]
    assert not late["ok"] and late["error"]["type"] == "deadline_exceeded", late
    assert late["error"].get("field") == "deadline_ms", late
    assert late.get("supervisor") == sup.id
    assert not byid[f"{s}/late-state"][0]["ok"]
    assert byid[f"{s}/late-state"][0]["error"]["type"] == "deadline_exceeded"
    op1 = byid[f"{s}/op1"][0]
    assert op1["ok"] and op1["result"] == 1, op1  # op 0 never ran
    st = byid[f"{s}/state"][0]
    assert st["ok"] and st["result"] == {"seq": [1]}, st


@pytest.mark.timeout(120)
def test_undeliverable_reply_does_not_stall_the_partition(kafka: KafkaEnv, fleet: Fleet) -> None:
    """Guarantee 5 ("neither stalls its partition") for a request whose reply
    topic does not exist (the broker does not auto-create topics): the
    requests after it are answered, and the group's committed offset on the
    partition must move past it once the reply has failed for good (the
    reason goes to the DLQ)."""
    # fail the reply after 3 s instead of librdkafka's 30 s wait for the topic
    sup = fleet.start(kafka__topic__metadata__propagation__max__ms=3000)
    fleet.wait_stable([sup])
    replies = kafka.replies()
    s = kafka.session("lost")
    kafka.send(kafka.request(f"{s}/create", s, "create_session", args={"state": {}}))
    kafka.send(kafka.request(f"{s}/lost", s, "ping", reply_to=f"{kafka.prefix}.missing"))
    kafka.send(kafka.request(f"{s}/after", s, "get_session_state"))
    kafka.flush()
    replies.wait_ids([f"{s}/create", f"{s}/after"], 30)
    # never deliverable: it becomes a DLQ record with the reason, and is finished
    sup.wait_event("reply.undeliverable", timeout=30)
    p = kafka.delivered[0][1]
    end = max(off for t, part, off, _k, _v in kafka.delivered if part == p) + 1
    wait_until(
        lambda: kafka.committed([p]).get(p) == end,
        8,
        f"the committed offset of partition {p} to reach {end} "
        f"(it stays at the lost reply's offset)",
        interval=0.5,
    )


@pytest.mark.timeout(120)
def test_reply_too_large_for_kafka_is_a_typed_error(kafka: KafkaEnv, fleet: Fleet) -> None:
    """Guarantee 5 for a result bigger than a Kafka record may be (librdkafka's
    message.max.bytes, 1,000,000 by default; worker frames allow 16 MiB): the
    client gets `reply_too_large` instead of nothing, the call's state change
    is not saved (like any failed call), and the session and its partition go
    on."""
    sup = fleet.start(python__path=PROGRAMS_DIR)
    fleet.wait_stable([sup])
    replies = kafka.replies()
    s = kafka.session("big")
    grow = {"kind": "callable", "entry": "it_programs:grow"}
    setup = setup_requests(kafka, s, program="grow", spec=grow, state={"n": 7})
    for r in setup:
        kafka.send(r)
    for rid, size in ((f"{s}/big", 1_200_000), (f"{s}/small", 10)):
        kafka.send(kafka.request(rid, s, "execute_program", program="grow", args={"size": size}))
    kafka.send(kafka.request(f"{s}/state", s, "get_session_state"))
    kafka.flush()
    ids = [*(r["id"] for r in setup), f"{s}/big", f"{s}/small", f"{s}/state"]
    byid = replies.wait_ids(ids, 60)
    big = byid[f"{s}/big"][0]
    assert not big["ok"] and big["error"]["type"] == "reply_too_large", big
    assert "message.max.bytes" in big["error"]["message"]
    small = byid[f"{s}/small"][0]
    assert small["ok"] and len(small["result"]) == 10, small
    assert byid[f"{s}/state"][0]["result"] == {"n": 8}, "only the small call's change landed"
    assert sup.events("reply.too_large")
