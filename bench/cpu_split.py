"""Where the two cores go under the profile-read load (``python -m bench.cpu_split``).

    python -m bench.cpu_split [--pg-url URL] [--workers 1,2] [--clients 8] [--seconds 6] [--rounds 3]

Serves the hub with each worker count (as ``kinfolio serve --workers N`` does) on the PostgreSQL
benchmark database a previous ``make bench`` generated, runs the closed-loop profile read, and
divides the CPU time used during the run by the requests answered: the hub's processes, every
PostgreSQL process on this machine (``pgrep -u postgres``: run it on a machine where nothing else
uses PostgreSQL), and this load generator. With the sum beside the wall time times the cores,
it tells whether the run was CPU-bound and what each part costs per request. Rounds alternate the
worker counts; medians are printed.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import time

from bench import suite
from bench.__main__ import PSEUDONYM_KEY_HEX, ROOT, bench_database
from bench.http import closed_loop, get_token, graphql_body, post_graphql, run
from bench.servers import HOST, cpu_seconds, hub_server, process_cpu_seconds, server_env
from hub.generate import Manifest


def postgres_cpu_seconds() -> float:
    total = 0.0
    for pid in subprocess.run(["pgrep", "-u", "postgres"], capture_output=True, text=True).stdout.split():
        try:
            total += cpu_seconds(int(pid))
        except FileNotFoundError:  # a backend that ended meanwhile
            pass
    return total


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(url: str, manifest: Manifest, workers: int, clients: int, seconds: float, port: int) -> dict[str, float]:
    work = ROOT / "data" / "bench"
    env = server_env(database_url=url, data_dir=work, issuer_port=port, pseudonym_key_hex=PSEUDONYM_KEY_HEX, pool_size=5)
    bodies = [graphql_body(suite.PROFILE_QUERY, {"id": p}) for p in manifest.sample_learners[8:]]
    async with hub_server(port, env, workers=workers) as server:
        provider = manifest.providers[0]
        token = await get_token(HOST, port, provider.client_id, provider.client_secret)

        async def send(conn, i):  # type: ignore[no-untyped-def]
            return "errors" not in await post_graphql(conn, token, bodies[i % len(bodies)])

        await closed_loop(HOST, port, clients, duration=1.0, send=send)  # warm every worker
        hub0, pg0, own0, t0 = process_cpu_seconds(server.pid), postgres_cpu_seconds(), own_cpu_seconds(), time.perf_counter()
        result = await closed_loop(HOST, port, clients, duration=seconds, send=send)
        hub1, pg1, own1, t1 = process_cpu_seconds(server.pid), postgres_cpu_seconds(), own_cpu_seconds(), time.perf_counter()
    n = len(result.latencies)
    if result.errors or not n:
        raise SystemExit(f"{result.errors} requests failed, {n} answered")
    per_request = {"hub": hub1 - hub0, "postgres": pg1 - pg0, "load generator": own1 - own0}
    figures = {name: 1000 * value / n for name, value in per_request.items()}
    figures["sum"] = sum(figures.values())
    figures["wall x cores"] = 1000 * (t1 - t0) * (os.cpu_count() or 1) / n
    figures["req/s"] = result.rate
    return figures


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/kinfolio_bench")
    p.add_argument("--workers", default="1,2")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--port", type=int, default=8195)
    args = p.parse_args()
    url, manifest_path = bench_database("postgres", args.pg_url, ROOT / "data" / "bench")
    manifest = Manifest.from_json(manifest_path.read_text())
    counts = [int(w) for w in args.workers.split(",")]
    runs: dict[int, list[dict[str, float]]] = {w: [] for w in counts}
    for _ in range(args.rounds):
        for workers in counts:
            runs[workers].append(await measure(url, manifest, workers, args.clients, args.seconds, args.port))
    print(f"profile read, {args.clients} clients, {args.seconds:.0f} s runs, {args.rounds} rounds (medians); "
          f"CPU ms per request on {os.cpu_count()} cores:")
    for workers, figures in runs.items():
        median = {name: statistics.median(run[name] for run in figures) for name in figures[0]}
        print(f"  {workers} worker(s): {median['req/s']:,.0f} req/s | hub {median['hub']:.2f}, PostgreSQL "
              f"{median['postgres']:.2f}, load generator {median['load generator']:.2f}, sum {median['sum']:.2f} "
              f"| wall x cores {median['wall x cores']:.2f}")


if __name__ == "__main__":
    run(main())
