"""Turns the JSON lines of one `bench/run.sh e2e` run into its report.

    python bench/e2e_report.py RESULTS.jsonl OUT.json

RESULTS.jsonl holds a settings line and one line per measurement, as printed
by bench/e2e_load. This prints the tables, writes every measurement plus the
summary to OUT.json, and prints the summary as the last line: one JSON object
with the headline figures.

Headline rules:
  e2e_req_per_s, echo_req_per_s, py_consumer_req_per_s, stateful_req_per_s:
      a system's peak: the best, over the numbers of outstanding requests
      tried (closed loop), of the median of its rounds;
  ratio_vs_echo = e2e / echo, ratio_vs_py = e2e / py,
  stateful_ratio = stateful / e2e (all from medians of the same run);
  p50_ms, p99_ms: the supervisor's open-loop runs at half of e2e's peak, the
      percentiles of all their replies pooled (median of the runs' values).
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from typing import Any

Row = dict[str, Any]

NAMES = {
    "echo": "raw Kafka echo (C)",
    "py": "Python consumer + mp.Pool",
    "e2e": "snakefleet, noop",
    "state": "snakefleet, counter (Redis)",
    "durable": "counter, min_replicas=1",
}
ORDER = ["echo", "py", "e2e", "state", "durable"]


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else 0.0


REDIS: list[Row] = []
SOAK: list[Row] = []


def load(path: str) -> tuple[Row, list[Row]]:
    settings: Row = {}
    rows: list[Row] = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            if r.get("bench") == "settings":
                settings = r
            elif r.get("bench") == "e2e":
                rows.append(r)
            elif r.get("bench") == "redis":
                REDIS.append(r)
            elif r.get("bench") == "soak":
                SOAK.append(r)
    return settings, rows


def cpu_cols(group: list[Row]) -> dict[str, float]:
    keys = sorted({k for r in group for k in r.get("cpu_us_per_req", {})})
    out = {k: med([r["cpu_us_per_req"].get(k, 0.0) for r in group]) for k in keys}
    out["driver"] = med([r["drv_cpu_us_per_req"] for r in group])
    return out


def progress_line() -> int:
    """--line: one measurement (stdin) as a progress line."""
    d = json.loads(sys.stdin.read())
    v = d.get("verify")
    line = (
        f"bench e2e:   {d['system']:<5} {d['mode']:<6} "
        f"{'' if d['mode'] == 'open' else d['inflight']:>5} {d['req_per_s']:>9.0f} req/s"
        f"  p50 {d['p50_us'] / 1000:7.1f} ms  p99 {d['p99_us'] / 1000:7.1f} ms"
        f"  errors {d['errors_total']} lost {d['lost']}"
    )
    if v:
        line += f"  counters: {v['mismatches']} mismatched of {v['sessions_checked']}"
    print(line)
    return 0


def main() -> int:
    if sys.argv[1] == "--line":
        return progress_line()
    settings, rows = load(sys.argv[1])
    out_path = sys.argv[2]
    by: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for r in rows:
        by[(r["system"], r["mode"])].append(r)

    print(
        f"Settings: {settings.get('sessions')} sessions, closed loop {settings.get('inflight')} "
        f"outstanding; supervisor pool_size={settings.get('pool_size')} "
        f"pipeline_depth={settings.get('pipeline_depth')}; every Kafka client: "
        f"{settings.get('kafka')}; topics: requests 8 partitions, replies 4; "
        f"{settings.get('reps')} rounds of {settings.get('warmup_s')} s warm-up + "
        f"{settings.get('seconds')} s measured; librdkafka {settings.get('librdkafka')}, "
        f"Redis {settings.get('redis')} (appendfsync {settings.get('redis_appendfsync', '?')}); "
        f"load average at start {settings.get('loadavg')} "
        f"on {settings.get('nproc')} cores"
    )
    print()
    print(
        "Peak throughput (closed loop; per number of outstanding requests the median of the\n"
        "rounds; a system's peak is the best of those; latency produce -> reply consumed)"
    )
    hdr = (
        f"{'system':<28} {'outst.':>6} {'req/s':>8} {'vs echo':>7} {'p50 ms':>7} {'p99 ms':>7}  "
        f"{'CPU µs/req: svc':>15} {'workers':>7} {'redis':>6} {'broker':>6} {'driver':>6} "
        f"{'total':>6}  runs (req/s)"
    )
    print(hdr)
    print("-" * len(hdr))
    peak: dict[str, Row] = {}
    for system in ORDER:
        g_all = by.get((system, "closed"), [])
        if not g_all:
            continue
        per_inflight: dict[int, list[Row]] = defaultdict(list)
        for r in g_all:
            per_inflight[r["inflight"]].append(r)
        best = max(
            per_inflight, key=lambda k: med([r["req_per_s"] for r in per_inflight[k]])
        )
        g = per_inflight[best]
        rps = med([r["req_per_s"] for r in g])
        cpu = cpu_cols(g)
        total = sum(cpu.values())
        s = {
            "req_per_s": rps,
            "inflight": best,
            "by_inflight": {
                k: med([r["req_per_s"] for r in v])
                for k, v in sorted(per_inflight.items())
            },
            "runs": [round(r["req_per_s"]) for r in g],
            "p50_ms": med([r["p50_us"] for r in g]) / 1000,
            "p99_ms": med([r["p99_us"] for r in g]) / 1000,
            "cpu_us_per_req": cpu,
            "cpu_us_per_req_total": total,
            "errors": sum(r["errors_total"] for r in g_all),
            "lost": sum(r["lost"] for r in g_all),
        }
        timings = [r["sup_timings"] for r in g if r.get("sup_timings")]
        if timings:
            s["sup_total_us_mean"] = med([t["total_us_mean"] for t in timings])
            s["sup_queued_us_mean"] = med([t["queued_us_mean"] for t in timings])
        verifies = [r["verify"] for r in g_all if r.get("verify")]
        if verifies:
            s["verify"] = {
                "runs": len(verifies),
                "sessions_checked": sum(v["sessions_checked"] for v in verifies),
                "executes": sum(v["executes"] for v in verifies),
                "mismatches": sum(v["mismatches"] for v in verifies),
                "first_mismatch": next(
                    (v["first_mismatch"] for v in verifies if v.get("first_mismatch")),
                    None,
                ),
            }
        peak[system] = s
        echo = peak.get("echo", {}).get("req_per_s")
        for n, (k, v) in enumerate(sorted(per_inflight.items())):
            name = NAMES[system] if n == 0 else ""
            vrps = med([r["req_per_s"] for r in v])
            if k != best:
                print(
                    f"{name:<28} {k:>6} {vrps:>8.0f} {'':>7} "
                    f"{med([r['p50_us'] for r in v]) / 1000:>7.1f} "
                    f"{med([r['p99_us'] for r in v]) / 1000:>7.1f}  "
                    f"{'':>15} {'':>7} {'':>6} {'':>6} {'':>6} {'':>6}  "
                    f"{[round(r['req_per_s']) for r in v]}"
                )
                continue
            vs = f"{rps / echo:.2f}" if echo else ""
            print(
                f"{name:<28} {best:>6} {rps:>8.0f} {vs:>7} {s['p50_ms']:>7.1f} "
                f"{s['p99_ms']:>7.1f}  {cpu.get('svc', 0):>15.1f} {cpu.get('workers', 0):>7.1f} "
                f"{cpu.get('redis', 0):>6.1f} {cpu.get('broker', 0):>6.1f} "
                f"{cpu.get('driver', 0):>6.1f} {total:>6.1f}  {s['runs']}  <- peak"
            )
    print()
    print(
        "CPU µs/req: CPU time each process used in the measured window per reply (svc: the\n"
        "supervisor / kafka_echo / the py parent, with their librdkafka threads; workers: the\n"
        "Python worker processes; broker: the Kafka JVM; driver: the load generator)."
    )
    if "e2e" in peak and "sup_total_us_mean" in peak["e2e"]:
        e = peak["e2e"]
        print(
            f"Inside the supervisor at peak (reply timings, mean): consumed -> reply produced "
            f"{e['sup_total_us_mean'] / 1000:.1f} ms, of which waiting for the session / a "
            f"worker {e['sup_queued_us_mean'] / 1000:.1f} ms."
        )

    lat: dict[str, Row] = {}
    print()
    print("Latency at half of e2e's peak (open loop; produce -> reply consumed)")
    hdr = (
        f"{'system':<28} {'rate':>7} {'req/s':>7} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} "
        f"{'p99.9 ms':>8} {'max ms':>7}  {'inside sup p50/p99 ms':>21}"
    )
    print(hdr)
    print("-" * len(hdr))
    for system in ORDER:
        g = by.get((system, "open"), [])
        if not g:
            continue
        s = {
            "rate": med([r["rate"] for r in g]),
            "req_per_s": med([r["req_per_s"] for r in g]),
            "p50_ms": med([r["p50_us"] for r in g]) / 1000,
            "p90_ms": med([r["p90_us"] for r in g]) / 1000,
            "p99_ms": med([r["p99_us"] for r in g]) / 1000,
            "p999_ms": med([r["p999_us"] for r in g]) / 1000,
            "max_ms": max(r["max_us"] for r in g) / 1000,
            "runs_p99_ms": [round(r["p99_us"] / 1000, 1) for r in g],
            "errors": sum(r["errors_total"] for r in g),
            "lost": sum(r["lost"] for r in g),
        }
        inside = ""
        t = [r["sup_timings"] for r in g if r.get("sup_timings")]
        if t:
            s["sup_p50_ms"] = med([x["total_p50_us"] for x in t]) / 1000
            s["sup_p99_ms"] = med([x["total_p99_us"] for x in t]) / 1000
            inside = f"{s['sup_p50_ms']:.2f} / {s['sup_p99_ms']:.2f}"
        lat[system] = s
        print(
            f"{NAMES[system]:<28} {s['rate']:>7.0f} {s['req_per_s']:>7.0f} {s['p50_ms']:>7.1f} "
            f"{s['p90_ms']:>7.1f} {s['p99_ms']:>7.1f} {s['p999_ms']:>8.1f} {s['max_ms']:>7.1f}  "
            f"{inside:>21}  runs p99 {s['runs_p99_ms']}"
        )
    print(
        "inside sup: the reply's timings.total_us (request consumed -> reply produced)."
    )

    if "state" in peak and "verify" in peak["state"]:
        v = peak["state"]["verify"]
        print()
        print(
            f"Stateful check: {v['sessions_checked']} sessions in {v['runs']} runs, "
            f"{v['executes']} executes of examples.counter: {v['mismatches']} counter(s) "
            f"different from the number of executes sent"
            + (f" (first: {v['first_mismatch']})" if v.get("first_mismatch") else "")
        )
    if REDIS:
        print()
        print(
            "Redis after each phase (reply records live until their offsets are committed, plus"
        )
        print("redis.dedupe_ttl, 60 s by default; an AOF rewrite forks redis-server):")
        prev = 0
        for r in REDIS:
            print(
                f"  after {r['phase']:<8} {r['keys']:>9} keys {r['used_memory_mb']:>8.1f} MiB  "
                f"AOF rewrites {r['aof_rewrites'] - prev} (latest fork {r['latest_fork_ms']} ms), "
                f"delayed fsyncs {r['aof_delayed_fsync']}"
            )
            prev = r["aof_rewrites"]
        if SOAK:
            print("  during the soak (counter, open loop), every 30 s:")
            for r in SOAK:
                print(
                    f"    {r['t_s']:>5} s {r['keys']:>9} keys {r['used_memory_mb']:>8.1f} MiB"
                    f"  Redis CPU {r['cpu_s']:.1f} s"
                )
        cmds = REDIS[-1].get("commands") or {}
        total = sum(c["usec"] for c in cmds.values())
        if total:
            # Commands run inside scripts count under their own names too (and in the
            # script's time): the split shows what a request costs Redis.
            top = sorted(cmds.items(), key=lambda kv: -kv[1]["usec"])[:8]
            print(
                "  Redis time by command (whole run; inside scripts too): "
                + ", ".join(
                    f"{name} {c['calls']} × {c['usec'] / max(c['calls'], 1):.2f} µs"
                    for name, c in top
                )
            )
    bad = {
        k: (s["errors"], s["lost"])
        for k, s in {**peak, **lat}.items()
        if s["errors"] or s["lost"]
    }
    if bad:
        print(f"ERRORS / LOST replies: {bad}")

    def r3(x: float | None) -> float | None:
        return None if x is None else round(x, 3)

    e2e = peak.get("e2e", {}).get("req_per_s")
    echo = peak.get("echo", {}).get("req_per_s")
    py = peak.get("py", {}).get("req_per_s")
    st = peak.get("state", {}).get("req_per_s")
    summary = {
        "e2e_req_per_s": round(e2e) if e2e else None,
        "echo_req_per_s": round(echo) if echo else None,
        "py_consumer_req_per_s": round(py) if py else None,
        "ratio_vs_echo": r3(e2e / echo) if e2e and echo else None,
        "ratio_vs_py": r3(e2e / py) if e2e and py else None,
        "p50_ms": r3(lat.get("e2e", {}).get("p50_ms")),
        "p99_ms": r3(lat.get("e2e", {}).get("p99_ms")),
        "stateful_req_per_s": round(st) if st else None,
        "stateful_ratio": r3(st / e2e) if st and e2e else None,
        # Redis CPU per request at each system's peak (the counter's is the one the
        # session store costs: state read and written), and what the peak phase left
        "redis_us_per_req": r3(
            peak.get("e2e", {}).get("cpu_us_per_req", {}).get("redis")
        ),
        "stateful_redis_us_per_req": r3(
            peak.get("state", {}).get("cpu_us_per_req", {}).get("redis")
        ),
        "redis_keys_end": next(
            (r["keys"] for r in REDIS if r.get("phase") == "peak"), None
        ),
        "redis_memory_mb_end": next(
            (r["used_memory_mb"] for r in REDIS if r.get("phase") == "peak"), None
        ),
        # every closed-loop run of e2e and state (and e2e's warm-up) used fresh sessions
        # E2E_SOAK_S: Redis over the long open-loop counter run (flat = bounded)
        "soak_s": SOAK[-1]["t_s"] if SOAK else None,
        "soak_keys_max": max((r["keys"] for r in SOAK), default=None),
        "soak_memory_mb_range": [
            min(r["used_memory_mb"] for r in SOAK),
            max(r["used_memory_mb"] for r in SOAK),
        ]
        if SOAK
        else None,
        # the counter with every write waiting for a replica (redis.min_replicas = 1)
        "failover_req_per_s": round(peak["durable"]["req_per_s"])
        if "durable" in peak
        else None,
        "failover_p99_ms": r3(peak.get("durable", {}).get("p99_ms")),
        "sessions": (settings.get("sessions") or 0)
        * (
            1
            + sum(
                r.get("system") in ("e2e", "state") and r.get("mode") == "closed"
                for r in rows
            )
        ),
    }
    with open(out_path, "w") as f:
        json.dump(
            {
                "settings": settings,
                "peak": peak,
                "latency": lat,
                "redis": REDIS,
                "runs": rows,
                "summary": summary,
            },
            f,
            indent=1,
        )
    print()
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
