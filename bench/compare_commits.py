"""Server-side A/B of the profile read (or of ingest) between this checkout and another
(``python -m bench.compare_commits``).

    git worktree add ../kinfolio-base <commit>
    python -m bench.compare_commits ../kinfolio-base [--what read|ingest] [--database sqlite|postgres] [--rounds 5]

Starts the hub (uvicorn, one worker) from each checkout in turn, on the database and manifest a
previous ``make bench`` generated under data/bench/, and measures with one client: for ``read``
the profile read (``--seconds`` per round), for ``ingest`` ``--batches`` new ``recordActivities``
batches of 1,000; p50 latency, throughput and the server process's CPU time per request (from
/proc, so the client's and the database server's CPU are not counted). ``--clients N`` sends from N
concurrent clients (default 1): throughput under contention, e.g. SQLite's single write lock.
Rounds alternate the two checkouts, in ABBA order, so that both see the same machine; the
medians and their ratio are printed, and the median of the rounds' own ratios. This machine's
speed drifts by ±30 % within minutes, so only the ratio of interleaved rounds carries over
(BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import statistics
import uuid
from pathlib import Path

from bench import suite
from bench.__main__ import PSEUDONYM_KEY_HEX, ROOT, generated_data
from bench.http import closed_loop, get_token, graphql_body, post_graphql, run
from bench.servers import HOST, hub_server, process_cpu_seconds, server_env
from bench.watermark import remove_rows_after, watermark
from hub.db import make_engine
from hub.generate import Manifest


def _workload(what: str, manifest: Manifest, batches: int) -> tuple[list[bytes], str]:
    """Request bodies and the mutation/query field that answers them."""
    if what == "read":
        return [graphql_body(suite.PROFILE_QUERY, {"id": p}) for p in manifest.sample_learners[8:]], "learner"
    tag = uuid.uuid4().hex[:8]  # new source ids every round: each batch is 1,000 inserts
    learners = manifest.sample_learners[:8]
    return [graphql_body(suite.INGEST_MUTATION, {"id": learners[i % len(learners)],
                                                 "items": suite._activity_items(f"ab-{tag}-{i}", 1000, i)})
            for i in range(batches)], "recordActivities"


async def _measure(checkout: Path, url: str, manifest: Manifest, port: int, args: argparse.Namespace) -> tuple[float, float, float]:
    work = ROOT / "data" / "bench"
    env = server_env(database_url=url, data_dir=work, issuer_port=port, pseudonym_key_hex=PSEUDONYM_KEY_HEX)
    warm_up, _ = _workload(args.what, manifest, 2)
    bodies, field = _workload(args.what, manifest, args.batches)
    # `python -m uvicorn` puts its working directory first on sys.path: hub/ comes from that checkout.
    async with hub_server(port, env, log=work / "server-compare.log", cwd=checkout) as proc:
        client = manifest.providers[0]
        token = await get_token(HOST, port, client.client_id, client.client_secret)

        def sender(bodies: list[bytes]):  # type: ignore[no-untyped-def]
            async def send(conn, i):  # type: ignore[no-untyped-def]
                out = await post_graphql(conn, token, bodies[i % len(bodies)])
                if "errors" in out or not out["data"][field]:
                    raise RuntimeError(f"{args.what} failed: {str(out)[:300]}")
                return True
            return send

        # Warm-up: connections, caches, prepared statements.
        await closed_loop(HOST, port, 1, requests=len(warm_up) if args.what == "ingest" else None,
                          duration=None if args.what == "ingest" else 1.0, send=sender(warm_up))
        cpu0 = process_cpu_seconds(proc.pid)
        if args.what == "ingest":
            result = await closed_loop(HOST, port, args.clients, requests=len(bodies), send=sender(bodies))
        else:
            result = await closed_loop(HOST, port, args.clients, duration=args.seconds, send=sender(bodies))
        cpu = process_cpu_seconds(proc.pid) - cpu0
    return result.p50_ms, cpu / len(result.latencies) * 1000, result.rate


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("base", type=Path, help="the other checkout (e.g. a git worktree of the base commit)")
    p.add_argument("--database", choices=["sqlite", "postgres"], default="postgres")
    p.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/kinfolio_bench")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--port", type=int, default=8190)
    p.add_argument("--what", choices=["read", "ingest"], default="read")
    p.add_argument("--batches", type=int, default=10, help="ingest: batches of 1,000 per round")
    p.add_argument("--clients", type=int, default=1, help="concurrent clients")
    args = p.parse_args()
    work = ROOT / "data" / "bench"
    url, manifest = generated_data(args.database, args.pg_url, work)
    checkouts = {"this": ROOT, "base": args.base.resolve()}
    figures: dict[str, list[tuple[float, float, float]]] = {name: [] for name in checkouts}
    engine = make_engine(url)
    start = await watermark(engine)  # ingest rounds' rows are deleted at the end (bench/watermark.py)
    try:
        for round_ in range(args.rounds):
            # The pair's order alternates (ABBA), as in the suite's paired benchmarks: with a fixed
            # order, the second server of every round would meet the caches and the drift the
            # first left behind.
            order = list(checkouts.items()) if round_ % 2 == 0 else list(checkouts.items())[::-1]
            for name, checkout in order:
                p50, cpu, rate = await _measure(checkout, url, manifest, args.port, args)
                figures[name].append((p50, cpu, rate))
                print(f"round {round_ + 1} {name:4} p50 {p50:6.2f} ms  server CPU {cpu:6.2f} ms/request  "
                      f"{rate:7.1f} requests/s ({args.what}, {args.clients} client(s))", flush=True)
    finally:
        await remove_rows_after(engine, start)
        await engine.dispose()
    medians = {name: tuple(statistics.median(f[i] for f in rows) for i in range(3)) for name, rows in figures.items()}
    for name, (p50, cpu, rate) in medians.items():
        print(f"median {name:4} ({checkouts[name]}): p50 {p50:.2f} ms, server CPU {cpu:.2f} ms/request, {rate:.1f} requests/s")
    this, base = medians["this"], medians["base"]
    print(f"this/base: p50 {this[0] / base[0]:.2f}, server CPU {this[1] / base[1]:.2f}, throughput {this[2] / base[2]:.2f} "
          f"({args.what}, {args.database}, {args.clients} client(s), {args.rounds} interleaved rounds)")
    # Each round's own ratio, then their median: a burst of noise in one round moves one ratio,
    # while a ratio of medians mixes different minutes of a drifting machine.
    paired = [statistics.median(t[i] / b[i] for t, b in zip(figures["this"], figures["base"], strict=True)) for i in range(3)]
    print(f"this/base, median of the rounds' own ratios: p50 {paired[0]:.2f}, server CPU {paired[1]:.2f}, "
          f"throughput {paired[2]:.2f}")


if __name__ == "__main__":
    run(main())
