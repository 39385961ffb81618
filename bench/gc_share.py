"""What the cyclic garbage collector costs the server under the profile read (``python -m bench.gc_share``).

    python -m bench.gc_share [--database postgres|sqlite] [--pg-url URL] [--clients 8] [--seconds 6] [--rounds 3]

One uvicorn worker, as ``bench.query_shapes`` runs it, on the benchmark database a previous
``make bench`` generated; its interpreter times every collection (``gc.callbacks``, the
collecting thread's CPU time) and counts them by generation. The closed-loop profile read runs
``--rounds`` times; for each the server's CPU (from /proc) and its collections during the run are
read, and the medians printed: collections per 1,000 requests, their CPU per request, and their
share of the server's CPU. It shows whether requests leave garbage that only the collector frees
(tests/hub/test_request_garbage.py) and what the server's collector thresholds cost (hub/app.py,
``freeze_startup_heap``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench import suite
from bench.__main__ import PSEUDONYM_KEY_HEX, ROOT, generated_data
from bench.http import closed_loop, get_token, graphql_body, post_graphql, run
from bench.servers import HOST, hub_server, process_cpu_seconds, server_env

STATS_ENV = "KINFOLIO_BENCH_GC_STATS"  # where the server writes its collector's figures


def serve() -> None:
    """uvicorn's command line (``sys.argv``), in an interpreter that records its collections."""
    stats = {str(generation): {"collections": 0, "cpu_seconds": 0.0, "collected": 0} for generation in range(3)}
    started = [0.0]

    def timed(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.thread_time()
        else:
            figures = stats[str(info["generation"])]
            figures["collections"] += 1
            figures["cpu_seconds"] += time.thread_time() - started[0]
            figures["collected"] += info["collected"]

    gc.callbacks.append(timed)
    path = Path(os.environ[STATS_ENV])

    def write_stats() -> None:  # a snapshot every 0.2 s: the bench reads it before and after a run
        while True:
            snapshot = json.dumps({**stats, "thresholds": gc.get_threshold(), "frozen": gc.get_freeze_count()})
            path.with_suffix(".tmp").write_text(snapshot)
            path.with_suffix(".tmp").replace(path)
            time.sleep(0.2)

    threading.Thread(target=write_stats, daemon=True).start()
    import uvicorn

    uvicorn.main()


def _stats(path: Path) -> dict[str, Any]:
    time.sleep(0.3)  # the server's next snapshot, taken after the run ended
    return json.loads(path.read_text())


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    p.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/kinfolio_bench")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--port", type=int, default=8178)
    args = p.parse_args()
    work = ROOT / "data" / "bench"
    url, manifest = generated_data(args.database, args.pg_url, work)
    stats_path = work / "server-gc-stats.json"
    env = {**server_env(database_url=url, data_dir=work, issuer_port=args.port, pseudonym_key_hex=PSEUDONYM_KEY_HEX),
           STATS_ENV: str(stats_path)}
    command = [sys.executable, "-c", "from bench.gc_share import serve; serve()", "hub.asgi:app", "--host", HOST,
               "--port", str(args.port), "--loop", "uvloop", "--http", "httptools", "--no-access-log",
               "--log-level", "warning"]
    bodies = [graphql_body(suite.PROFILE_QUERY, {"id": learner}) for learner in manifest.sample_learners[8:]]
    rounds: list[dict[str, float]] = []
    async with hub_server(args.port, env, log=work / "server-gc-share.log", command=command) as server:
        provider = manifest.providers[0]
        token = await get_token(HOST, args.port, provider.client_id, provider.client_secret)

        async def send(conn, i):  # type: ignore[no-untyped-def]
            out = await post_graphql(conn, token, bodies[i % len(bodies)])
            if "errors" in out:
                raise RuntimeError(str(out)[:300])
            return True

        await closed_loop(HOST, args.port, args.clients, duration=2.0, send=send)  # warm-up: caches fill
        for _ in range(args.rounds):
            before, cpu0 = _stats(stats_path), process_cpu_seconds(server.pid)
            result = await closed_loop(HOST, args.port, args.clients, duration=args.seconds, send=send)
            cpu, after = process_cpu_seconds(server.pid) - cpu0, _stats(stats_path)
            requests = len(result.latencies)
            figures = {"rate": result.rate, "server_ms": cpu * 1000 / requests}
            for generation in "012":
                figures[f"gen{generation}_per_1000"] = (after[generation]["collections"]
                                                        - before[generation]["collections"]) * 1000 / requests
                figures[f"gen{generation}_ms"] = (after[generation]["cpu_seconds"]
                                                  - before[generation]["cpu_seconds"]) * 1000 / requests
            figures["gc_ms"] = sum(figures[f"gen{g}_ms"] for g in "012")
            figures["share"] = figures["gc_ms"] / figures["server_ms"]
            rounds.append(figures)
        thresholds = after["thresholds"]

    def median(name: str) -> float:
        return statistics.median(r[name] for r in rounds)

    print(f"{args.database}, {manifest.activities:,} activities, one worker, {args.clients} clients, {args.rounds} rounds "
          f"of {args.seconds:g} s (medians); collector thresholds {tuple(thresholds)}:")
    print(f"  {median('rate'):,.0f} req/s, server CPU {median('server_ms'):.2f} ms/request, of which the collector "
          f"{median('gc_ms'):.3f} ms ({median('share'):.1%})")
    for generation in "012":
        print(f"  generation {generation}: {median(f'gen{generation}_per_1000'):.0f} collections per 1,000 requests, "
              f"{median(f'gen{generation}_ms'):.3f} ms/request")


if __name__ == "__main__":
    run(main())
