"""Server-side A/B of the profile read between this checkout and another (``python -m bench.compare_commits``).

    git worktree add ../kinfolio-base <commit>
    python -m bench.compare_commits ../kinfolio-base [--database sqlite|postgres] [--rounds 5] [--seconds 4]

Starts the hub (uvicorn, one worker) from each checkout in turn, on the database and manifest a
previous ``make bench`` generated under data/bench/, and measures the profile read with one
client: p50 latency and the server process's CPU time per request (from /proc, so the client's
and the database server's CPU are not counted). Rounds alternate the two checkouts so that both
see the same machine; medians and their ratio are printed. This machine's speed drifts by ±30 %
within minutes, so only the ratio of interleaved rounds carries over (BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
from pathlib import Path

from bench import suite
from bench.__main__ import PSEUDONYM_KEY_HEX, ROOT, bench_database
from bench.http import closed_loop, get_token, graphql_body, post_graphql
from bench.servers import HOST, hub_server, server_env
from hub.generate import Manifest


def _process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (uvicorn's worker), from /proc."""
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    ticks = 0
    for process in [pid, *map(int, children)]:
        fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (proc(5))
    return ticks / os.sysconf("SC_CLK_TCK")


async def _measure(checkout: Path, url: str, manifest: Manifest, port: int, seconds: float) -> tuple[float, float]:
    work = ROOT / "data" / "bench"
    env = server_env(database_url=url, data_dir=work, issuer_port=port, pseudonym_key_hex=PSEUDONYM_KEY_HEX)
    bodies = [graphql_body(suite.PROFILE_QUERY, {"id": p}) for p in manifest.sample_learners[8:]]
    # `python -m uvicorn` puts its working directory first on sys.path: hub/ comes from that checkout.
    async with hub_server(port, env, log=work / "server-compare.log", cwd=checkout) as proc:
        client = manifest.providers[0]
        token = await get_token(HOST, port, client.client_id, client.client_secret)

        async def send(conn, i):  # type: ignore[no-untyped-def]
            out = await post_graphql(conn, token, bodies[i % len(bodies)])
            if "errors" in out:
                raise RuntimeError(f"read failed: {str(out)[:300]}")
            return True

        await closed_loop(HOST, port, 2, duration=1.0, send=send)  # warm-up: connections, caches
        cpu0 = _process_cpu_seconds(proc.pid)
        result = await closed_loop(HOST, port, 1, duration=seconds, send=send)
        cpu = _process_cpu_seconds(proc.pid) - cpu0
    return result.p50_ms, cpu / len(result.latencies) * 1000


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("base", type=Path, help="the other checkout (e.g. a git worktree of the base commit)")
    p.add_argument("--database", choices=["sqlite", "postgres"], default="postgres")
    p.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/kinfolio_bench")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--port", type=int, default=8190)
    args = p.parse_args()
    work = ROOT / "data" / "bench"
    url, manifest_path = bench_database(args.database, args.pg_url, work)
    if not manifest_path.exists():
        raise SystemExit(f"no benchmark data at {manifest_path}: run `make bench` (or python -m bench --only read) first")
    manifest = Manifest.from_json(manifest_path.read_text())
    checkouts = {"this": ROOT, "base": args.base.resolve()}
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in checkouts}
    for round_ in range(args.rounds):
        for name, checkout in checkouts.items():
            p50, cpu = await _measure(checkout, url, manifest, args.port, args.seconds)
            figures[name].append((p50, cpu))
            print(f"round {round_ + 1} {name:4} p50 {p50:6.2f} ms  server CPU {cpu:6.2f} ms/request", flush=True)
    medians = {name: (statistics.median(f[0] for f in rows), statistics.median(f[1] for f in rows))
               for name, rows in figures.items()}
    for name, (p50, cpu) in medians.items():
        print(f"median {name:4} ({checkouts[name]}): p50 {p50:.2f} ms, server CPU {cpu:.2f} ms/request")
    print(f"this/base: p50 {medians['this'][0] / medians['base'][0]:.2f}, "
          f"server CPU {medians['this'][1] / medians['base'][1]:.2f} ({args.database}, {args.rounds} interleaved rounds)")


if __name__ == "__main__":
    asyncio.run(main())
