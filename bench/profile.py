"""Profile one benchmark request type in-process with pyinstrument (``python -m bench.profile``).

    python -m bench.profile read|ingest|fanout [--database sqlite|postgres] [--n 200] [--html out.html]
    python -m bench.profile read --compare executor [--rounds 15]   # lean vs graphql-core executor, interleaved
    python -m bench.profile ingest --compare coercion --n 8          # compiled vs graphql-core variable coercion
    python -m bench.profile ingest --compare native --n 8            # native-first vs Python-only compiled coercion

Uses the database and manifest a previous ``make bench`` generated under data/bench/.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from bench import suite
from bench.__main__ import PSEUDONYM_KEY_HEX, ROOT, bench_database
from bench.http import graphql_body, run
from bench.watermark import remove_rows_after, watermark
from hub.app import create_app
from hub.config import Settings
from hub.db import make_engine
from hub.generate import Manifest


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["read", "ingest", "fanout", "minimal", "lean"],
                   help="read: the profile read; minimal: learner(id) { id }; lean: 50 activities, 2 fields each")
    p.add_argument("--database", default="sqlite")
    p.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/kinfolio_bench")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--html")
    p.add_argument("--bypass", action="store_true")
    p.add_argument("--flat", action="store_true", help="also list functions by own time")
    p.add_argument("--cpu", action="store_true", help="no profiler: report CPU and wall time per request")
    p.add_argument("--statements", action="store_true", help="no profiler: time every SQL statement")
    p.add_argument("--compare", choices=["executor", "coercion", "native"],
                   help="no profiler: CPU per request with hub/graphql/execution.py's executor (or its compiled "
                        "variable coercion) vs graphql-core's, interleaved in rounds of --n requests (same process)")
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args()
    work = ROOT / "data" / "bench"
    url, manifest_path = bench_database(args.database, args.pg_url, work)
    manifest = Manifest.from_json(manifest_path.read_text())
    settings = Settings(environment="development", database_url=url, issuer="http://127.0.0.1:8150", data_dir=work,
                        signing_key_file=work / "jwt-signing-key.pem", pseudonym_key_hex=PSEUDONYM_KEY_HEX,
                        benchmark_bypass_consent=args.bypass,
                        # One client: the per-client limiter would measure itself (as in bench/servers.py).
                        rate_limit_per_minute=100_000_000, rate_limit_burst=1_000_000)
    import hub.app

    schemas: list[Any] = []
    build = hub.app.build_schema
    hub.app.build_schema = lambda s: schemas.append(build(s)) or schemas[-1]  # type: ignore[assignment]
    # As the server process (hub.asgi) runs: its startup (heap frozen, SQLite WAL checkpointed in the background).
    app = create_app(settings, server_process=True)
    bench = manifest.providers[0]
    cleanup = make_engine(url)
    start = await watermark(cleanup)  # rows written here are deleted at the end (bench/watermark.py)
    try:
        async with app.router.lifespan_context(app), \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8150") as http:
            token = (await http.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": bench.client_id,
                                                           "client_secret": bench.client_secret})).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            if args.what == "read":
                bodies = [graphql_body(suite.PROFILE_QUERY, {"id": l}) for l in manifest.sample_learners[8:]]
            elif args.what == "minimal":
                bodies = [graphql_body("query($id: ID!) { learner(id: $id) { id } }", {"id": l}) for l in manifest.sample_learners[8:]]
            elif args.what == "lean":
                bodies = [graphql_body("query($id: ID!) { learner(id: $id) { activities(first: 50) { nodes { id timestamp } } } }",
                                       {"id": l}) for l in manifest.sample_learners[8:]]
            elif args.what == "fanout":
                bodies = [graphql_body(suite.FANOUT_QUERY)]
            else:
                tag = f"prof{int(time.time())}"
                bodies = [graphql_body(suite.INGEST_MUTATION, {"id": manifest.sample_learners[i % 8],
                                                               "items": suite._activity_items(f"{tag}-{i}", 1000, i)})
                          for i in range(args.n)]
            for body in bodies[:3]:  # warm-up
                await http.post("/graphql", content=body, headers=headers)
            first = 3 if args.what == "ingest" else 0

            async def run() -> None:
                for i in range(first, args.n):
                    r = await http.post("/graphql", content=bodies[i % len(bodies)], headers=headers)
                    assert r.status_code == 200 and "errors" not in r.json(), r.text[:300]

            if args.compare:
                from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

                from hub.graphql.execution import LeanExecutionContext

                from hub.graphql import coercion, execution

                lean_build = LeanExecutionContext.__dict__["build"]
                generic_build = classmethod(StrawberryGraphQLCoreExecutionContext.build.__func__)  # type: ignore[attr-defined]

                @functools.cache
                def python_only(type_: Any) -> Any:
                    try:
                        return coercion._compile(type_, ())
                    except coercion._Recursive:
                        return None

                def use(variant: str) -> None:
                    if args.compare == "native":  # "lean": native first; "graphql-core": the Python coercer alone
                        execution.input_coercer = coercion.input_coercer if variant == "lean" else python_only  # type: ignore[assignment]
                    elif args.compare == "executor":
                        schemas[0].execution_context_class = (
                            LeanExecutionContext if variant == "lean" else StrawberryGraphQLCoreExecutionContext)
                    else:
                        LeanExecutionContext.build = lean_build if variant == "lean" else generic_build  # type: ignore[method-assign]

                spent: dict[str, list[float]] = {"lean": [], "graphql-core": []}
                for _ in range(args.rounds):
                    for variant in spent:
                        use(variant)
                        cpu0 = time.process_time()
                        await run()
                        spent[variant].append((time.process_time() - cpu0) / (args.n - first) * 1000)
                        if args.what == "ingest":  # the next round must store new entries, not find them unchanged
                            tag = f"cmp{time.time_ns()}"
                            bodies[:] = [graphql_body(suite.INGEST_MUTATION, {
                                "id": manifest.sample_learners[i % 8],
                                "items": suite._activity_items(f"{tag}-{i}", 1000, i)}) for i in range(args.n)]
                use("lean")
                medians = {name: statistics.median(values) for name, values in spent.items()}
                print(f"{args.what} on {args.database}, --compare {args.compare}: {args.rounds} interleaved rounds of "
                      f"{args.n - first} requests, median CPU ms per request (in-process): "
                      + ", ".join(f"{name} {ms:.2f}" for name, ms in medians.items())
                      + f"; lean/graphql-core = {medians['lean'] / medians['graphql-core']:.2f}")
                return
            if args.statements:
                # Time every SQL statement of the measured requests (cursor events on the app's engine).
                import collections

                from sqlalchemy import event

                engine = app.state.hub.engine
                spent: dict[str, float] = collections.defaultdict(float)
                count: collections.Counter[str] = collections.Counter()
                started_at: dict[int, float] = {}

                def before(_c, _cur, _stmt, _p, context, _many):  # type: ignore[no-untyped-def]
                    started_at[id(context)] = time.perf_counter()

                def after(_c, _cur, stmt, _p, context, many):  # type: ignore[no-untyped-def]
                    key = " ".join(stmt.split())[:70] + (" [executemany]" if many else "")
                    spent[key] += time.perf_counter() - started_at.pop(id(context))
                    count[key] += 1

                event.listen(engine.sync_engine, "before_cursor_execute", before)
                event.listen(engine.sync_engine, "after_cursor_execute", after)
                wall0 = time.perf_counter()
                await run()
                n = args.n - first
                print(f"{n} {args.what} requests on {args.database}: {(time.perf_counter() - wall0) / n * 1000:.1f} ms wall each")
                for key, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
                    print(f"{seconds / n * 1000:9.2f} ms/request  x{count[key] / n:g}  {key}")
                return
            if args.cpu:
                # Process CPU time per request (server side and the in-process client together):
                # unlike wall time it hardly depends on what else runs on the machine.
                cpu0, wall0 = time.process_time(), time.perf_counter()
                await run()
                cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
                n = args.n - first
                print(f"{n} {args.what} requests on {args.database}: {cpu / n * 1000:.2f} ms CPU, {wall / n * 1000:.2f} ms wall each "
                      f"(in-process, not profiled; database server CPU not included)")
                return
            from pyinstrument import Profiler

            profiler = Profiler(async_mode="enabled", interval=0.0005)
            started = time.perf_counter()
            with profiler:
                await run()
            elapsed = time.perf_counter() - started
    finally:
        await remove_rows_after(cleanup, start)
        await cleanup.dispose()
    print(f"{args.n} {args.what} requests: {elapsed / args.n * 1000:.2f} ms each (in-process, profiled)")
    if args.html:
        Path(args.html).write_text(profiler.output_html())
    print(profiler.output_text(unicode=False, color=False, show_all=False))
    if args.flat:
        print(profiler.output_text(unicode=False, color=False, flat=True, flat_time="self")[:6000])


if __name__ == "__main__":
    run(main())
