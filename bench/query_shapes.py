"""What each part of the profile read costs the hub (``python -m bench.query_shapes``).

    python -m bench.query_shapes [--database postgres|sqlite] [--pg-url URL] [--clients 8] [--seconds 4] [--rounds 3]

One uvicorn worker on the benchmark database a previous ``make bench`` generated; the closed-loop
load of each query shape in turn, rounds interleaving the shapes, and the server process's CPU
time (user + system, from /proc) per request answered. The shapes grow from the fixed part of a
request (token row, pairwise-id resolution: ``learner { id }`` discloses nothing) through one
section to the whole profile read, so the differences say what a page and its entries cost.
"""

from __future__ import annotations

import argparse
import statistics

from bench import suite
from bench.__main__ import PSEUDONYM_KEY_HEX, ROOT, generated_data
from bench.http import closed_loop, get_token, graphql_body, post_graphql, run
from bench.servers import HOST, hub_server, process_cpu_seconds, server_env

SHAPES = {
    "learner { id }": "query($id: ID!) { learner(id: $id) { id } }",
    "badges(first: 20)": """query($id: ID!) { learner(id: $id) {
      badges(first: 20) { nodes { id sourceId achievement { id name description criteria { narrative } achievementType }
                                  issuer { id name } awardedDate } } } }""",
    "activities(first: 50)": """query($id: ID!) { learner(id: $id) {
      activities(first: 50) {
        edges { cursor node { id sourceId verb { id display } object { id name type }
                              result { score { scaled raw min max } success completion duration } timestamp } }
        pageInfo { hasNextPage endCursor } } } }""",
    "the profile read": suite.PROFILE_QUERY,
}


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    p.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/kinfolio_bench")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--port", type=int, default=8177)
    args = p.parse_args()
    work = ROOT / "data" / "bench"
    url, manifest = generated_data(args.database, args.pg_url, work)
    env = server_env(database_url=url, data_dir=work, issuer_port=args.port, pseudonym_key_hex=PSEUDONYM_KEY_HEX)
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in SHAPES}
    async with hub_server(args.port, env, log=work / "server-query-shapes.log") as server:
        provider = manifest.providers[0]
        token = await get_token(HOST, args.port, provider.client_id, provider.client_secret)
        for _ in range(args.rounds):
            for name, query in SHAPES.items():
                bodies = [graphql_body(query, {"id": learner}) for learner in manifest.sample_learners[8:]]

                async def send(conn, i, bodies=bodies):  # type: ignore[no-untyped-def]
                    out = await post_graphql(conn, token, bodies[i % len(bodies)])
                    if "errors" in out:
                        raise RuntimeError(str(out)[:300])
                    return True

                await closed_loop(HOST, args.port, args.clients, duration=1.0, send=send)  # warm-up
                cpu0 = process_cpu_seconds(server.pid)
                result = await closed_loop(HOST, args.port, args.clients, duration=args.seconds, send=send)
                cpu = (process_cpu_seconds(server.pid) - cpu0) * 1000 / len(result.latencies)
                figures[name].append((cpu, result.rate))
    print(f"{args.database}, {manifest.activities:,} activities, one worker, {args.clients} clients, "
          f"{args.rounds} interleaved rounds (medians):")
    for name, runs in figures.items():
        print(f"  {name:24} hub CPU {statistics.median(c for c, _ in runs):.2f} ms/request, "
              f"{statistics.median(r for _, r in runs):,.0f} req/s")


if __name__ == "__main__":
    run(main())
