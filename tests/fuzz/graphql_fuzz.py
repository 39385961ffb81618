"""GraphQL fuzzing with Schemathesis against the real app (`make fuzz`): no request may end in a 5xx.

Sets up a scratch SQLite database with a provider, a learner and grants, obtains a real access
token, then lets Schemathesis generate queries and mutations from the schema for a bounded time.

    .venv/bin/python -m tests.fuzz.graphql_fuzz [--seconds 180] [--examples 400]
"""

from __future__ import annotations

import argparse
import collections
import asyncio
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import graphql
import schemathesis
from hypothesis import strategies as st
from hypothesis import HealthCheck, given, settings
from starlette.testclient import TestClient

import hub.models  # noqa: F401
from consent import Action
from consent.sections import all_scopes
from hub import migrate
from hub.app import create_app
from hub.config import Settings
from hub.db import make_engine, make_sessionmaker
from hub.grants.service import grant_access
from hub.oauth.keys import generate_private_pem
from hub.people.service import create_guardian, create_learner
from hub.providers.service import create_client, create_provider

KEY = bytes(range(32))


def _json_literals() -> st.SearchStrategy[graphql.ValueNode]:
    """Any GraphQL literal, nested (the JSON scalar takes them all: importFramework's package).

    Schemathesis 4.3x refuses a custom scalar it has no strategy for, instead of skipping it."""
    from schemathesis.graphql import nodes

    leaves = st.one_of(
        st.text(max_size=20).map(nodes.String), st.integers(-(2**31), 2**31 - 1).map(nodes.Int),
        st.floats(allow_nan=False, allow_infinity=False).map(nodes.Float), st.booleans().map(nodes.Boolean),
        st.just(nodes.Null),
    )
    names = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,10}\Z")
    return st.recursive(leaves, lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(nodes.List),
        st.dictionaries(names, inner, max_size=4).map(lambda fields: nodes.Object([
            graphql.ObjectFieldNode(name=graphql.NameNode(value=name), value=value) for name, value in fields.items()
        ])),
    ), max_leaves=12)


schemathesis.graphql.scalar("JSON", _json_literals())


async def _prepare(url: str) -> tuple[str, str]:
    engine = make_engine(url)
    await migrate.upgrade(engine)
    async with make_sessionmaker(engine)() as session, session.begin():
        provider = await create_provider(session=session, name="Fuzzer", kind="app")
        client, secret = await create_client(session=session, provider_id=provider.id, name="fuzz", scopes=all_scopes())
        guardian = await create_guardian(session=session, email="fuzz@example.org", display_name="Fuzz")
        learner = await create_learner(session=session, given_name="F", family_name="Z", date_of_birth=date(2012, 1, 1),
                                       guardian_ids=[guardian.id], today=date.today())
        for scope in all_scopes():
            section, _, action = scope.partition(":")
            await grant_access(session=session, learner_id=learner.id, provider_id=provider.id, section=section,
                               action=Action(action), purpose="fuzz", granted_by=guardian.id,
                               now=datetime.now(UTC) - timedelta(minutes=1), pseudonym_key=KEY)
    await engine.dispose()
    return client.client_id, secret


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--examples", type=int, default=400, help="examples per operation")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'fuzz.db'}"
        client_id, secret = asyncio.run(_prepare(url))
        app = create_app(Settings(environment="test", database_url=url, data_dir=Path(tmp), issuer="https://testserver",
                                  signing_key_pem=generate_private_pem().decode(), pseudonym_key_hex=KEY.hex(),
                                  rate_limit_per_minute=10**6, rate_limit_burst=10**6))
        # An exception in the app is answered 500 (as the server would), so it is counted and its query printed.
        with TestClient(app, base_url="https://testserver", raise_server_exceptions=False) as http:
            token = http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)).json()["access_token"]
            # The exported SDL is the schema (the drift test keeps it equal to the code).
            schema = schemathesis.graphql.from_path(str(Path(__file__).resolve().parents[2] / "schemas" / "kinfolio.graphql"))
            deadline = time.monotonic() + args.seconds
            failures: list[str] = []
            calls = 0
            outcomes: collections.Counter[str] = collections.Counter()
            for result in schema.get_all_operations():
                operation = result.ok()
                if time.monotonic() > deadline:
                    break

                @settings(max_examples=args.examples, deadline=None, database=None,
                          suppress_health_check=list(HealthCheck))
                @given(case=operation.as_strategy())
                def run(case) -> None:  # type: ignore[no-untyped-def]
                    nonlocal calls
                    if time.monotonic() > deadline:
                        return
                    body = {"query": case.body if isinstance(case.body, str) else case.body.get("query", "")}
                    response = http.post("/graphql", json=body, headers={"Authorization": f"Bearer {token}"})
                    calls += 1
                    payload = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
                    codes = sorted({(e.get("extensions") or {}).get("code", "GRAPHQL_VALIDATION") for e in payload.get("errors") or []})
                    outcomes[f"{response.status_code} {'+'.join(codes) or 'ok'}"] += 1
                    if response.status_code >= 500:
                        failures.append(f"{operation.label}: {response.status_code} for {body['query'][:300]}")

                run()
    print(f"fuzzed {calls} requests; {len(failures)} server error(s)")
    for outcome, count in outcomes.most_common(12):
        print(f"  {count:6d}  {outcome}")
    for failure in failures[:20]:
        print("  " + failure)
    return 1 if failures or calls == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
