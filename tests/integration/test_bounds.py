"""Guarantee 6 of docs/DESIGN.md, bounded everything, through Kafka: the requests
a supervisor holds (backpressure pauses partitions above supervisor.max_queued
and resumes them below supervisor.resume_below), one call's run time
(pool.request_timeout: `timeout`, the worker killed and replaced) and the
sessions stored in Redis (redis.max_sessions: `session_limit`).

Sizes (supervisor.max_message_bytes, reply_too_large) are in test_bad_input.py,
Redis down in test_redis_faults.py and test_one_answer.py.

Same isolation as the other integration tests (conftest.py): every test has its
own request topic, reply topic, consumer group and session ids, and stops every
process it starts.
"""

from __future__ import annotations

import time

import pytest

from conftest import REDIS, Fleet, KafkaEnv, RedisServer, live_workers, redis_cli, wait_until
from helpers import (
    Poller,
    assert_all_ok,
    check_counters,
    http_base,
    parse_metrics,
    produce_increments,
    setup_session,
)

SLEEP_SPEC = {"kind": "callable", "entry": "snakefleet.examples:sleep"}


@pytest.mark.timeout(180)
def test_backpressure_pauses_and_resumes(kafka: KafkaEnv, fleet: Fleet) -> None:
    """Guarantee 6 (queue depth): one worker, a 0.05 s program and 500
    requests over 50 sessions against max_queued=50 / resume_below=10: the
    supervisor pauses partitions and resumes them, answers everything, and
    never holds much more than max_queued.

    The bound: a supervisor checks after every consumed request and, while
    it holds more than max_queued, pauses the unpaused partition holding the
    most. librdkafka's pause bumps the partition's op version, so messages
    of it already fetched (in its fetch queue or the consumer queue) are
    dropped on poll and fetched again after resume. Hence after crossing
    max_queued every further consumed request pauses one more partition: at
    most (partitions - 1) more arrive. held <= max_queued + 1 + 7 = 58 for 8
    partitions, whatever was prefetched."""
    max_queued, resume_below, nparts = 50, 10, 8
    nsess, nops = 50, 10
    sup = fleet.start(
        pool__pool_size=1,
        supervisor__max_queued=max_queued,
        supervisor__resume_below=resume_below,
        supervisor__http_listen="127.0.0.1:0",
    )
    fleet.wait_stable([sup])
    base = http_base(sup)
    replies = kafka.replies()
    sessions = [kafka.session(i) for i in range(nsess)]
    ids: list[str] = []
    for s in sessions:
        ids += setup_session(kafka, s, "slp", SLEEP_SPEC)
    kafka.flush()
    replies.wait_ids(ids, 60)
    load: list[str] = []
    with Poller(f"{base}/metrics", interval=0.05) as metrics:
        for k in range(nops):
            for s in sessions:
                rid = f"{s}/sleep{k}"
                kafka.send(
                    kafka.request(rid, s, "execute_program", program="slp", args={"seconds": 0.05})
                )
                load.append(rid)
        kafka.flush()
        t0 = time.monotonic()
        byid = replies.wait_ids(load, 120)
        took = time.monotonic() - t0
    assert_all_ok(byid)
    polled = [
        parse_metrics(body)["snakefleet_held"] for _, code, body in metrics.samples if code == 200
    ]
    assert polled, "no /metrics sample"
    pauses, resumes = sup.events("backpressure.pause"), sup.events("backpressure.resume")
    assert pauses and resumes, f"pauses {len(pauses)}, resumes {len(resumes)}"
    logged = [int(e["held"]) for e in pauses]
    peak = max(max(polled), max(logged))
    bound = max_queued + nparts
    assert peak <= bound, f"held reached {peak} (bound {bound}); /metrics max {max(polled)}"
    assert all(int(e["held"]) < resume_below for e in resumes), resumes[:3]
    print(
        f"{len(load)} requests in {took:.1f} s; {len(pauses)} pauses, {len(resumes)} resumes; "
        f"held peak {peak} (polled max {max(polled):.0f} over {len(polled)} samples, "
        f"logged at pause max {max(logged)}); bound {bound}"
    )


@pytest.mark.timeout(120)
def test_request_timeout_kills_and_replaces_the_worker(kafka: KafkaEnv, fleet: Fleet) -> None:
    """Guarantee 6 (per-request timeout) through Kafka: with
    pool.request_timeout=500 a call sleeping 5 s is answered `timeout` after
    about 0.5 s, its worker is killed and replaced, and the session's next
    request is answered normally."""
    sup = fleet.start(pool__request_timeout=500)
    fleet.wait_stable([sup])
    replies = kafka.replies()
    s = kafka.session("slow")
    ids = setup_session(kafka, s, "slp", SLEEP_SPEC)
    kafka.flush()
    replies.wait_ids(ids, 30)
    ready_before = len(sup.events("pool.worker_ready"))
    workers_before = sup.worker_pids()
    reqs = [
        kafka.request(f"{s}/long", s, "execute_program", program="slp", args={"seconds": 5}),
        kafka.request(f"{s}/short", s, "execute_program", program="slp", args={"seconds": 0.01}),
        kafka.request(f"{s}/ping", s, "ping"),
    ]
    for r in reqs:
        kafka.send(r)
    kafka.flush()
    byid = replies.wait_ids([r["id"] for r in reqs], 30)
    long_ = byid[f"{s}/long"]
    assert len(long_) == 1 and not long_[0]["ok"], long_
    assert long_[0]["error"]["type"] == "timeout", long_
    assert long_[0]["timings"]["total_us"] < 4_000_000, long_[0]["timings"]
    short = byid[f"{s}/short"][0]
    assert short["ok"] and short["result"] == 0.01, short
    assert byid[f"{s}/ping"][0]["ok"]
    timeouts = sup.events("pool.request_timeout")
    assert len(timeouts) == 1, timeouts
    killed = int(timeouts[0]["pid"])
    assert killed in workers_before
    wait_until(lambda: not live_workers({killed}), 10, f"the timed-out worker {killed} to exit")
    wait_until(
        lambda: len(sup.events("pool.worker_ready")) > ready_before,
        30,
        "a replacement worker",
    )
    died = [e for e in sup.events("pool.worker_died") if e.get("pid") == str(killed)]
    print(f"timed out after {long_[0]['timings']['total_us'] / 1e3:.0f} ms; worker died: {died}")


@pytest.mark.timeout(120)
def test_max_sessions_guard(own_redis: RedisServer, kafka: KafkaEnv, fleet: Fleet) -> None:
    """redis.max_sessions=4 (warning at 75 %): four sessions are created, the
    third one warns, a fifth gets the typed error session_limit while other
    requests go on, and once a session ends the fifth can be created. A Redis
    of the test's own: the session index counts every session in it."""
    own_redis.start()
    sup = fleet.start(redis__url=own_redis.url, redis__max_sessions=4, redis__max_sessions_warn=75)
    fleet.wait_stable([sup])
    replies = kafka.replies()
    ss = [kafka.session(f"lim{i}") for i in range(5)]
    for s in ss[:4]:
        kafka.send(kafka.request(f"{s}/create", s, "create_session", args={"state": {"n": 0}}))
    kafka.flush()
    byid = replies.wait_ids([f"{s}/create" for s in ss[:4]], 30)
    assert all(r[0]["ok"] for r in byid.values()), byid
    assert len(sup.events("session.near_limit")) >= 1

    fifth = ss[4]
    kafka.send(kafka.request(f"{fifth}/create", fifth, "create_session", args={"state": {}}))
    kafka.send(kafka.request(f"{ss[1]}/get", ss[1], "get_session_state"))
    kafka.flush()
    byid = replies.wait_ids([f"{fifth}/create", f"{ss[1]}/get"], 30)
    refused = byid[f"{fifth}/create"][0]
    assert not refused["ok"] and refused["error"]["type"] == "session_limit", refused
    assert "max_sessions" in refused["error"]["message"]
    assert byid[f"{ss[1]}/get"][0]["result"] == {"n": 0}
    assert len(sup.events("session.limit_reached")) == 1

    kafka.send(kafka.request(f"{ss[0]}/end", ss[0], "end_session"))
    kafka.flush()
    replies.wait_ids([f"{ss[0]}/end"], 30)
    kafka.send(kafka.request(f"{fifth}/create-again", fifth, "create_session", args={"state": {}}))
    kafka.flush()
    again = replies.wait_ids([f"{fifth}/create-again"], 30)[f"{fifth}/create-again"][0]
    assert again["ok"], again


COUNTER_SPEC = {"kind": "callable", "entry": "snakefleet.examples:counter"}


def keys_of(prefix: str) -> dict[str, int]:
    """The fleet's keys under `prefix`, by kind (the word after the prefix or
    the session tag), and the reply records they hold."""
    kinds: dict[str, int] = {}
    for k in redis_cli(REDIS, "--scan", "--pattern", f"{prefix}:*").split():
        rest = k[len(prefix) + 1 :]
        kind = rest.rsplit(":", 1)[-1] if rest.startswith("{") else rest.split(":", 1)[0]
        kinds[kind] = kinds.get(kind, 0) + 1
        if kind == "done":
            kinds["records"] = kinds.get("records", 0) + int(redis_cli(REDIS, "HLEN", k))
    return kinds


@pytest.mark.timeout(180)
def test_redis_holds_keys_per_session_and_records_per_request_in_flight(
    kafka: KafkaEnv, fleet: Fleet
) -> None:
    """Guarantee 6 (Redis memory): what Redis holds grows with sessions, not
    with requests answered. Every request's reply record lives in its
    partition's two keys until the group has committed its offset (plus
    redis.dedupe_ttl, 0 here); claims go with their commits. 40 sessions x
    25 increments = 1,000 requests: afterwards Redis holds 2 keys per session,
    2 per partition, the partitions' epochs and the index, and only the
    records of the requests not yet settled when the last commits ran; the
    counters are exact."""
    prefix = f"bk{kafka.prefix[-8:]}"
    sup = fleet.start(redis__dedupe_ttl="0", redis__key_prefix=prefix)
    replies = kafka.replies()
    sessions = [kafka.session(i) for i in range(40)]
    ids: list[str] = []
    for s in sessions:
        ids += setup_session(kafka, s, "ctr", COUNTER_SPEC)
    nops = 25
    for k in range(nops - 1):
        ids += produce_increments(kafka, sessions, k)
    kafka.flush()
    replies.wait_ids(ids, 90)
    # The offsets are committed within auto.commit.interval.ms (1 s here); the
    # records below them go with each partition's next commit.
    time.sleep(3)
    last = produce_increments(kafka, sessions, nops - 1)
    kafka.flush()
    replies.wait_ids(ids + last, 60)
    check_counters(kafka, replies, sessions, nops)
    kinds = keys_of(prefix)
    print(f"keys after {len(ids) + len(last)} requests over 40 sessions: {kinds}")
    assert kinds.get("state") == 40 and kinds.get("programs") == 40, kinds
    assert kinds.get("req", 0) == 0, f"claims left behind: {kinds}"
    assert kinds.get("done", 0) <= 8 and kinds.get("order", 0) <= 8, kinds
    # 1,000 requests were answered and at most the last round (40) and the
    # requests of the round before whose commit the last commit had not seen
    # (40) may still have records.
    assert kinds.get("records", 0) <= 80, f"records of settled requests kept: {kinds}"
    assert sum(v for k, v in kinds.items() if k != "records") <= 2 * 40 + 8 * 3 + 1, kinds
    assert not sup.events("store.command_failed")
