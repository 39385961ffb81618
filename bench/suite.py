"""The benchmarks of issue 9. Each returns ``Row``s: a figure, a same-run ratio and a target.

Every figure is a median over ``repeats`` runs; the variants compared by a ratio (HTTP vs raw
insert, with vs without consent, deep vs shallow page) are interleaved run by run, so slow
phases of the shared machine hit both sides.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.http import Connection, LoadResult, closed_loop, get_token, graphql_body, post_graphql
from bench.servers import HOST, process_cpu_seconds
from hub.generate import Manifest

PROFILE_QUERY = """
query Profile($id: ID!) {
  learner(id: $id) {
    id
    badges(first: 20) { nodes { id sourceId achievement { id name description criteria { narrative } achievementType }
                                issuer { id name } awardedDate } }
    skills(first: 20) { nodes { id skill { key label code } scale { name min max } proficiency assessedAt } }
    activities(first: 50) {
      edges { cursor node { id sourceId verb { id display } object { id name type }
                            result { score { scaled raw min max } success completion duration } timestamp } }
      pageInfo { hasNextPage endCursor }
    }
  }
}"""

PAGE_QUERY = """
query Page($id: ID!, $after: String) {
  learner(id: $id) {
    activities(first: 50, after: $after) {
      edges { cursor node { id verb { display } object { id name } result { score { scaled } } timestamp } }
      pageInfo { hasNextPage endCursor }
    }
  }
}"""

FANOUT_QUERY = """
query FanOut {
  learners(first: 100) {
    nodes {
      id
      badges(first: 5) { nodes { achievement { name } awardedDate } }
      skills(first: 5) { nodes { skill { label } proficiency } }
      activities(first: 5) { nodes { verb { display } timestamp } }
    }
  }
}"""

INGEST_MUTATION = """
mutation Ingest($id: ID!, $items: [ActivityInput!]!) {
  recordActivities(learnerId: $id, activities: $items) { received created updated unchanged }
}"""

VERBS = [("completed", 3), ("attempted", 3), ("experienced", 6), ("answered", 2), ("passed", 1)]


@dataclass
class Row:
    bench: str
    database: str
    figure: str
    ratio: str
    target: str
    met: str
    detail: dict[str, Any]


@dataclass
class Target:
    """Where the hub under test listens, and how to reach its database from here."""

    database: str  # "sqlite" | "postgres"
    engine: AsyncEngine
    manifest: Manifest
    port: int  # consent enforced
    bypass_port: int  # benchmark-only consent bypass
    repeats: int
    duration: float
    ingest_batches: int
    concurrency: int
    data_dir: Path
    pseudonym_key_hex: str
    # port -> the uvicorn process serving it (its CPU is read from /proc); filled once they run.
    server_pids: dict[int, int] = field(default_factory=dict)

    @property
    def writers(self) -> int:
        """Concurrent ingest clients: two on both databases (a sync job with a little parallelism).
        On SQLite the second one's transaction waits for the first's commit on the event loop
        (hub.sqlite_driver), while its request's decoding and validation run; until the seventh
        session SQLite was measured with one (BENCHMARKS.md)."""
        return 2

    @property
    def raw_writers(self) -> int:
        """The raw insert's connections: SQLite has one write lock and inserts fastest from one."""
        return 1 if self.database == "sqlite" else self.writers

    @property
    def bench_client(self) -> tuple[str, str]:
        p = self.manifest.providers[0]
        return p.client_id, p.client_secret

    async def token(self, port: int | None = None) -> str:
        return await get_token(HOST, port or self.port, *self.bench_client)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"


# -- 1 + 3: ingest -------------------------------------------------------------------------------


def _activity_items(prefix: str, count: int, seed: int) -> list[dict[str, Any]]:
    import random

    rng = random.Random(seed)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    verbs = [v for v, w in VERBS for _ in range(w)]
    items = []
    for n in range(count):
        verb = rng.choice(verbs)
        lesson = rng.randint(1, 80)
        item: dict[str, Any] = {
            "sourceId": f"{prefix}-{n}",
            "verb": {"id": f"http://adlnet.gov/expapi/verbs/{verb}", "display": verb},
            "object": {"id": f"https://learn.example.org/algebra/lessons/{lesson}", "name": f"Algebra lesson {lesson}",
                       "type": "http://adlnet.gov/expapi/activities/lesson"},
            "timestamp": (base + timedelta(seconds=rng.randint(0, 86_400 * 300))).isoformat().replace("+00:00", "Z"),
        }
        if verb in ("answered", "passed", "completed"):
            item["result"] = {"score": {"scaled": round(rng.uniform(0.3, 1), 2)}, "success": verb != "failed",
                              "duration": f"PT{rng.randint(1, 50)}M"}
        items.append(item)
    return items


def _raw_rows(items: list[dict[str, Any]], learner_id: uuid.UUID, provider_id: uuid.UUID) -> list[dict[str, Any]]:
    """The rows contribute_entries would write for ``items`` (for the raw-insert baseline)."""
    now = datetime.now(UTC)
    rows = []
    for item in items:
        result = item.get("result") or {}
        score = result.get("score") or {}
        rows.append({
            "learner_id": learner_id, "provider_id": provider_id, "source_id": item["sourceId"],
            "content_hash": uuid.uuid4().hex * 2, "created_at": now, "updated_at": now,
            "verb_id": item["verb"]["id"], "verb_display": item["verb"]["display"], "object_id": item["object"]["id"],
            "object_name": item["object"].get("name"), "object_type": item["object"].get("type"),
            "result_score_scaled": score.get("scaled"), "result_score_raw": None, "result_score_min": None,
            "result_score_max": None, "result_success": result.get("success"), "result_completion": None,
            "result_duration": result.get("duration"),
            "timestamp": datetime.fromisoformat(item["timestamp"].replace("Z", "+00:00")),
        })
    return rows


async def _learner_uuid(engine: AsyncEngine, provider_id: str, pseudonym: str) -> uuid.UUID:
    from hub.grants.models import LearnerPseudonym

    async with engine.connect() as conn:
        return (await conn.execute(select(LearnerPseudonym.learner_id).where(
            LearnerPseudonym.provider_id == uuid.UUID(provider_id), LearnerPseudonym.pseudonym == pseudonym))).scalar_one()


async def http_ingest(t: Target, port: int, learners: list[str], run_tag: str, *, writers: int | None = None) -> float:
    """Activities/s of ``ingest_batches`` batches of 1,000 via HTTP, ``writers`` (default
    ``t.writers``) clients at a time."""
    token = await t.token(port)
    bodies = [
        graphql_body(INGEST_MUTATION, {"id": learners[i % len(learners)], "items": _activity_items(f"{run_tag}-{i}", 1000, i)})
        for i in range(t.ingest_batches)
    ]

    async def send(conn: Connection, i: int) -> bool:
        out = await post_graphql(conn, token, bodies[i])
        if "errors" in out or out["data"]["recordActivities"]["created"] != 1000:
            raise RuntimeError(f"ingest failed: {str(out)[:400]}")
        return True

    result = await closed_loop(HOST, port, writers or t.writers, requests=len(bodies), send=send)
    return 1000 * len(result.latencies) / result.seconds


async def _raw_ingest(t: Target, learner_ids: list[uuid.UUID], run_tag: str) -> float:
    """Activities/s of the same batches as plain executemany INSERTs, one transaction per batch
    (SQLite: the hub's own driver-level executemany, so the baseline is never the slower insert)."""
    from hub.db import sqlite_insert_rows
    from hub.records.models import Activity
    from hub.records.service import BATCH_CONSTANTS

    provider_id = uuid.UUID(t.manifest.providers[0].provider_id)
    batches = [_raw_rows(_activity_items(f"{run_tag}-{i}", 1000, i), learner_ids[i % len(learner_ids)], provider_id)
               for i in range(t.ingest_batches)]
    started = time.perf_counter()

    async def one(share: list[list[dict[str, Any]]]) -> None:
        for rows in share:
            async with t.engine.begin() as conn:
                if t.database == "sqlite":
                    await sqlite_insert_rows(conn, Activity.__table__, rows, BATCH_CONSTANTS)
                else:
                    await conn.execute(insert(Activity), rows)

    await asyncio.gather(*(one(batches[w :: t.raw_writers]) for w in range(t.raw_writers)))
    return 1000 * len(batches) / (time.perf_counter() - started)


async def bench_ingest(t: Target) -> list[Row]:
    learners = t.manifest.sample_learners[:8]
    provider = t.manifest.providers[0].provider_id
    learner_ids = [await _learner_uuid(t.engine, provider, p) for p in learners]
    http, bypass, raw = [], [], []
    cpus: dict[int, list[float]] = {t.port: [], t.bypass_port: []}  # server CPU ms per batch

    async def timed(port: int, run_tag: str) -> float:
        pid = t.server_pids.get(port)
        cpu0 = process_cpu_seconds(pid) if pid else 0.0
        rate = await http_ingest(t, port, learners, run_tag)
        if pid:
            cpus[port].append((process_cpu_seconds(pid) - cpu0) * 1000 / t.ingest_batches)
        return rate

    for r in range(t.repeats):
        tag = f"b{uuid.uuid4().hex[:8]}"
        # The pair's order alternates (ABBA), so a machine speeding up or slowing down during the
        # run does not favour one side; the raw insert stays next to the hub's run.
        if r % 2 == 0:
            http.append(await timed(t.port, f"{tag}-h"))
            raw.append(await _raw_ingest(t, learner_ids, f"{tag}-r"))
            bypass.append(await timed(t.bypass_port, f"{tag}-x"))
        else:
            bypass.append(await timed(t.bypass_port, f"{tag}-x"))
            raw.append(await _raw_ingest(t, learner_ids, f"{tag}-r"))
            http.append(await timed(t.port, f"{tag}-h"))
    h, x, w = _median(http), _median(bypass), _median(raw)
    # Paired per repeat, as for the read (bench_profile_read): the median of the runs' own ratios.
    ratio = _median([a / b for a, b in zip(http, raw, strict=True)])
    overhead = _median([b / a for a, b in zip(http, bypass, strict=True)]) - 1
    cpu_note = ""
    if cpus[t.port] and cpus[t.bypass_port]:
        cpu_overhead = _median([c / b for c, b in zip(cpus[t.port], cpus[t.bypass_port], strict=True)]) - 1
        cpu_note = (f"; hub CPU {_median(cpus[t.port]):.1f} vs {_median(cpus[t.bypass_port]):.1f} ms/batch "
                    f"({cpu_overhead:+.1%}{'' if t.database == 'sqlite' else ', PostgreSQL not counted'})")
    target_rate = 20_000 if t.database == "sqlite" else 10_000
    return [
        Row("1 ingest", t.database, f"{h:,.0f} activities/s", f"{ratio:.0%} of raw insert ({w:,.0f}/s)",
            f">= {target_rate:,}/s and >= 25%", _yes(h >= target_rate and ratio >= 0.25),
            {"http": http, "raw": raw, "batches": t.ingest_batches, "server_cpu_ms_per_batch": cpus[t.port]}),
        Row("3 consent overhead (ingest)", t.database, f"{overhead:+.1%} (median of {t.repeats} paired runs){cpu_note}",
            f"bypass {x:,.0f}/s vs {h:,.0f}/s", "<= 15%",
            _yes(overhead <= 0.15), {"bypass": bypass, "http": http, "bypass_server_cpu_ms_per_batch": cpus[t.bypass_port]}),
    ]


# -- 2 + 3: profile read ------------------------------------------------------------------------


async def _read_run(t: Target, port: int, token: str, bodies: list[bytes], concurrency: int, duration: float) -> LoadResult:
    async def send(conn: Connection, i: int) -> bool:
        out = await post_graphql(conn, token, bodies[i % len(bodies)])
        if "errors" in out:
            raise RuntimeError(f"read failed: {str(out)[:400]}")
        return True

    return await closed_loop(HOST, port, concurrency, duration=duration, send=send)


async def bench_profile_read(t: Target) -> list[Row]:
    bodies = [graphql_body(PROFILE_QUERY, {"id": p}) for p in t.manifest.sample_learners[8:]]
    tokens = {t.port: await t.token(t.port), t.bypass_port: await t.token(t.bypass_port)}
    p50s: dict[int, list[float]] = {t.port: [], t.bypass_port: []}
    server_p50s: list[float] = []
    rates: dict[int, list[float]] = {t.port: [], t.bypass_port: []}
    cpus: dict[int, list[float]] = {t.port: [], t.bypass_port: []}  # server CPU ms per request, loaded
    # Under load, the tail too: a p50 hides a request that waited seconds for a lock.
    p99s: list[float] = []
    slowest: list[float] = []
    await _read_run(t, t.port, tokens[t.port], bodies, 4, 1.0)  # warm-up (connections, caches)
    for repeat in range(t.repeats):
        # The pair's order alternates (ABBA), as for ingest.
        for port in (t.port, t.bypass_port) if repeat % 2 == 0 else (t.bypass_port, t.port):
            single = await _read_run(t, port, tokens[port], bodies, 1, t.duration / 2)
            p50s[port].append(single.p50_ms)
            if port == t.port:
                server_p50s.append(single.server_p50_ms)
            pid = t.server_pids.get(port)
            cpu0 = process_cpu_seconds(pid) if pid else 0.0
            loaded = await _read_run(t, port, tokens[port], bodies, t.concurrency, t.duration)
            if pid:
                cpus[port].append((process_cpu_seconds(pid) - cpu0) * 1000 / len(loaded.latencies))
            rates[port].append(loaded.rate)
            if port == t.port:
                p99s.append(loaded.pct(0.99) * 1000)
                slowest.append(max(loaded.latencies) * 1000)
    p50, rate = _median(p50s[t.port]), _median(rates[t.port])
    p50_x, rate_x = _median(p50s[t.bypass_port]), _median(rates[t.bypass_port])
    # The target is server time (Server-Timing, measured by the hub from request to response
    # start); the client's round trip adds the HTTP parsing on both sides and the loopback.
    server_p50 = _median(server_p50s)
    # Paired: each repeat ran both servers back to back, so the median of the per-repeat ratios
    # cancels most of a noisy machine's drift (a ratio of medians mixes different minutes).
    overhead = _median([x / c for x, c in zip(rates[t.bypass_port], rates[t.port], strict=True)]) - 1
    cpu_note = ""
    if cpus[t.port] and cpus[t.bypass_port]:
        cpu_overhead = _median([c / x for c, x in zip(cpus[t.port], cpus[t.bypass_port], strict=True)]) - 1
        cpu_note = (f"; hub CPU {_median(cpus[t.port]):.2f} vs {_median(cpus[t.bypass_port]):.2f} ms/request "
                    f"({cpu_overhead:+.1%}{'' if t.database == 'sqlite' else ', PostgreSQL not counted'})")
    size = f"{t.manifest.activities:,} activities"
    return [
        Row("2 profile read", t.database,
            f"p50 server {server_p50:.2f} ms, round trip {p50:.2f} ms (1 client); {rate:,.0f} req/s ({t.concurrency} clients, "
            f"p99 {_median(p99s):.1f} ms, slowest {max(slowest):.0f} ms)",
            f"db {size}", "p50 <= 5 ms (server), >= 500 req/s, >= 10M activities",
            " / ".join((f"p50 {_yes(server_p50 <= 5)}", f"req/s {_yes(rate >= 500)}",
                        f"size {_yes(t.manifest.activities >= 10_000_000)}")),
            {"p50_ms": p50s[t.port], "server_p50_ms": server_p50s, "rate": rates[t.port], "loaded_p99_ms": p99s,
             "loaded_slowest_ms": slowest,
             "server_cpu_ms": cpus[t.port], "activities": t.manifest.activities}),
        Row("3 consent overhead (read)", t.database,
            f"{overhead:+.1%} throughput (median of {t.repeats} paired runs); p50 {p50:.2f} vs {p50_x:.2f} ms{cpu_note}",
            f"bypass {rate_x:,.0f} vs {rate:,.0f} req/s", "<= 15%", _yes(overhead <= 0.15),
            {"bypass_p50_ms": p50s[t.bypass_port], "bypass_rate": rates[t.bypass_port],
             "bypass_server_cpu_ms": cpus[t.bypass_port]}),
    ]


# -- 4: growth -----------------------------------------------------------------------------------


async def _deep_cursor(t: Target, depth: int) -> tuple[str, int]:
    """The cursor after ``depth`` newest activities of the heavy learner (OFFSET here, in setup only)."""
    from hub.records.models import Activity
    from hub.records.service import encode_cursor

    learner = uuid.UUID(t.manifest.heavy_learner_uuid or "")
    async with t.engine.connect() as conn:
        total = (await conn.execute(text("SELECT count(*) FROM activity WHERE learner_id = :l"),
                                    {"l": learner if t.database == "postgres" else learner.hex})).scalar_one()
        depth = min(depth, total - 60)
        row = (await conn.execute(
            select(Activity.timestamp, Activity.id).where(Activity.learner_id == learner)
            .order_by(Activity.timestamp.desc(), Activity.id.desc()).offset(depth - 1).limit(1)
        )).one()
    return encode_cursor(row.timestamp, row.id), depth


async def bench_growth(t: Target) -> list[Row]:
    if not (t.manifest.heavy_learner and t.manifest.light_learner):
        return []
    cursor, depth = await _deep_cursor(t, 1_000_000)
    token = await t.token()
    cases = {
        "light newest": graphql_body(PAGE_QUERY, {"id": t.manifest.light_learner}),
        "heavy newest": graphql_body(PAGE_QUERY, {"id": t.manifest.heavy_learner}),
        "heavy deep": graphql_body(PAGE_QUERY, {"id": t.manifest.heavy_learner, "after": cursor}),
    }
    p50: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(t.repeats):
        for name, body in cases.items():
            p50[name].append((await _read_run(t, t.port, token, [body], 1, t.duration / 3)).p50_ms)
    m = {k: _median(v) for k, v in p50.items()}
    worst = max(m["heavy newest"], m["heavy deep"]) / m["light newest"]
    return [Row(
        "4 growth", t.database,
        f"p50 light {m['light newest']:.2f} / heavy newest {m['heavy newest']:.2f} / heavy at {depth:,} deep {m['heavy deep']:.2f} ms",
        f"worst/light {worst:.2f}", "<= 2", _yes(worst <= 2),
        {"p50_ms": p50, "depth": depth, "heavy_activities": None},
    )]


# -- 5: revocation bite -----------------------------------------------------------------------


async def bench_revocation(t: Target) -> list[Row]:
    from consent import Action
    from hub.db import make_sessionmaker
    from hub.grants.service import grant_access, grants_between, revoke_access

    pseudonym = t.manifest.sample_learners[7]
    provider_id = uuid.UUID(t.manifest.providers[0].provider_id)
    learner_id = await _learner_uuid(t.engine, str(provider_id), pseudonym)
    body = graphql_body(PAGE_QUERY.replace("first: 50", "first: 10"), {"id": pseudonym})
    token = await t.token()
    sessions = make_sessionmaker(t.engine)
    served_after, bites, in_flight_served = [], [], []
    for _ in range(t.repeats):
        log: list[tuple[float, float, bool]] = []  # (sent, answered, served data)

        async def send(conn: Connection, i: int) -> bool:
            sent = time.perf_counter()
            out = await post_graphql(conn, token, body)
            activities = (out.get("data") or {}).get("learner") and out["data"]["learner"]["activities"]
            log.append((sent, time.perf_counter(), activities is not None))
            return True

        load = asyncio.create_task(closed_loop(HOST, t.port, t.concurrency, duration=3.0, send=send))
        await asyncio.sleep(1.5)
        # Both actions: with only `read` revoked, read_own still (rightly) serves the provider
        # what it contributed itself (consent/policy.py).
        async with sessions() as session, session.begin():
            held = {g.action for g in await grants_between(session=session, provider_id=provider_id, learner_id=learner_id)
                    if g.section == "activities" and g.is_active(datetime.now(UTC))}
            await revoke_access(session=session, learner_id=learner_id, provider_id=provider_id, revoked_by=None,
                                now=datetime.now(UTC), section="activities")
        committed = time.perf_counter()
        try:
            await load
        finally:  # even if the load failed: a reused benchmark database must keep its grants
            async with sessions() as session, session.begin():
                for action in held or {Action.READ}:
                    await grant_access(session=session, learner_id=learner_id, provider_id=provider_id,
                                       section="activities", action=action, purpose="benchmark re-grant",
                                       granted_by=None, now=datetime.now(UTC),
                                       pseudonym_key=bytes.fromhex(t.pseudonym_key_hex))
        served_after.append(sum(1 for sent, _, ok in log if sent >= committed and ok))
        in_flight_served.append(sum(1 for sent, done, ok in log if sent < committed <= done and ok))
        refused = [done for sent, done, ok in log if not ok and done >= committed]
        bites.append((min(refused) - committed) * 1000 if refused else float("nan"))
    total_after = sum(served_after)
    return [Row("5 revocation bite", t.database,
                f"{total_after} served after revoke commit; first refusal {_median(bites):.1f} ms after commit",
                f"in flight at commit and served: {in_flight_served}", "0 served after commit",
                _yes(total_after == 0), {"served_after": served_after, "bite_ms": bites, "in_flight_served": in_flight_served})]


# -- 6: fan-out ---------------------------------------------------------------------------------


async def count_statements(t: Target, query_body: bytes, token: str) -> int:
    """SQL statements one request runs, counted on an in-process app over the same database."""
    import httpx

    from hub.app import create_app
    from hub.config import Settings
    from hub.db import make_engine

    settings = Settings(environment="development", database_url=str(t.engine.url.render_as_string(hide_password=False)),
                        issuer=f"http://{HOST}:{t.port}", data_dir=t.data_dir,
                        signing_key_file=t.data_dir / "jwt-signing-key.pem", pseudonym_key_hex=t.pseudonym_key_hex)
    engine = make_engine(settings.resolved_database_url)
    statements: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    try:
        app = create_app(settings, engine=engine)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{HOST}:{t.port}") as http:
            statements.clear()
            response = await http.post("/graphql", content=query_body,
                                       headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            assert response.status_code == 200 and "errors" not in response.json(), response.text[:300]
            return len(statements)
    finally:
        await engine.dispose()


async def bench_fanout(t: Target) -> list[Row]:
    token = await t.token()
    body = graphql_body(FANOUT_QUERY)
    count = await count_statements(t, body, token)
    profile_count = await count_statements(t, graphql_body(PROFILE_QUERY, {"id": t.manifest.sample_learners[9]}), token)
    p50s = []
    for _ in range(t.repeats):
        p50s.append((await _read_run(t, t.port, token, [body], 1, t.duration / 2)).p50_ms)
    return [Row("6 fan-out learners(first:100) x 3 sections", t.database, f"p50 {_median(p50s):.1f} ms",
                f"{count} SQL statements = {(count - 2) / 100:.0f} per learner + 2 (profile read: {profile_count})",
                "bounded; report", "- (linear in first, <= 100)", {"p50_ms": p50s, "statements": count,
                                                             "profile_statements": profile_count})]


ALL: dict[str, Callable[[Target], Any]] = {
    "ingest": bench_ingest,
    "read": bench_profile_read,
    "growth": bench_growth,
    "revocation": bench_revocation,
    "fanout": bench_fanout,
}
