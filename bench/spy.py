"""Sample the real hub server with py-spy while it serves a benchmark load (``python -m bench.spy``).

    python -m bench.spy read|ingest [--database sqlite|postgres] [--requests N] [--top 40] [--match REGEX]

Unlike ``bench.profile`` (pyinstrument, in-process, one request at a time), this profiles the
uvicorn server process as the benchmarks run it (uvloop, httptools, its own worker threads) under
the benchmark's concurrency: 8 clients for the profile read, 2 writers for ingest. Uses the
database and manifest a previous ``make bench`` generated under data/bench/; rows the run writes
are removed afterwards. Prints the functions with the most samples of their own and, with
``--match``, the inclusive share of every frame matching the regular expression.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import re
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from bench import suite
from bench.__main__ import PSEUDONYM_KEY_HEX, ROOT, bench_database
from bench.http import closed_loop, get_token, graphql_body, post_graphql, run
from bench.servers import HOST, hub_server, server_env
from bench.watermark import remove_rows_after, watermark
from hub.db import make_engine
from hub.generate import Manifest

PORT = 8190


def summarize(raw: Path, top: int, match: str | None) -> str:
    """py-spy's raw (collapsed) stacks -> own-sample and inclusive shares per function."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    lines = [f"{total} samples; own samples:"]
    lines += [f"{n / total:6.1%}  {frame}" for frame, n in own.most_common(top)]
    if match:
        lines.append(f"inclusive, frames matching {match!r}:")
        lines += [f"{n / total:6.1%}  {frame}" for frame, n in inclusive.most_common() if re.search(match, frame)][:top]
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["read", "ingest"])
    parser.add_argument("--database", default="postgres", choices=["sqlite", "postgres"])
    parser.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/kinfolio_bench")
    parser.add_argument("--requests", type=int, help="default: 3,000 reads or 160 batches of 1,000")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--match")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    args = parser.parse_args()
    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists():
        sys.exit("py-spy is not installed: pip install -e '.[bench]'")
    work = ROOT / "data" / "bench"
    url, manifest_path = bench_database(args.database, args.pg_url, work)
    manifest = Manifest.from_json(manifest_path.read_text())
    env = server_env(database_url=url, data_dir=work, issuer_port=PORT, pseudonym_key_hex=PSEUDONYM_KEY_HEX)
    cleanup = make_engine(url)
    start = await watermark(cleanup)
    raw = Path(tempfile.mkdtemp()) / "spy.txt"
    try:
        async with hub_server(PORT, env, log=work / "server-spy.log") as server:
            provider = manifest.providers[0]
            token = await get_token(HOST, PORT, provider.client_id, provider.client_secret)
            if args.what == "ingest":
                tag = uuid.uuid4().hex[:8]
                count = args.requests or 160
                bodies = [graphql_body(suite.INGEST_MUTATION, {"id": manifest.sample_learners[i % 8],
                                                               "items": suite._activity_items(f"{tag}-{i}", 1000, i)})
                          for i in range(count)]
                clients = 2
            else:
                count = args.requests or 3000
                bodies = [graphql_body(suite.PROFILE_QUERY, {"id": p}) for p in manifest.sample_learners[8:]]
                clients = 8
            spy = subprocess.Popen([str(py_spy), "record", "--pid", str(server.pid), "--subprocesses", "--format", "raw",
                                    "--output", str(raw), "--rate", str(args.rate), "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            await asyncio.sleep(1.5)  # py-spy attaches

            async def send(conn, i: int) -> bool:  # type: ignore[no-untyped-def]
                out = await post_graphql(conn, token, bodies[i % len(bodies)])
                if "errors" in out:
                    raise RuntimeError(str(out)[:300])
                return True

            result = await closed_loop(HOST, PORT, clients, requests=count, send=send)
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
    finally:
        await remove_rows_after(cleanup, start)
        await cleanup.dispose()
    print(f"{args.what} on {args.database}: {len(result.latencies) / result.seconds:.1f} requests/s "
          f"({clients} clients) while sampled at {args.rate}/s")
    print(summarize(raw, args.top, args.match))


if __name__ == "__main__":
    run(main())
