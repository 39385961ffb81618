"""The sections of issue 5 over GraphQL: round trips, consent per section, the birthdate grant,
sealed storage of the sensitive sections (no plaintext at rest, tampering refused, KEK rotation,
crypto-shredding) and the absence of any "all sections" grant."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select, text
from typer.testing import CliRunner

from consent import Action, catalogue
from hub.app import create_app
from hub.config import Settings, get_settings, key_ring
from hub.db import make_sessionmaker
from hub.grants.models import DisclosureEvent
from hub.grants.service import grant_access
from hub.people.service import delete_learner
from hub.records.crypto import KeyRing, UnreadableData
from hub.records.keys import DataKeys
from hub.records.models import GENERIC_SECTIONS, LearnerDataKey, SectionEntry
from tests.conftest import ISSUER, PSEUDONYM_KEY
from tests.factories import Family, ProviderClient, get_token, gql, grant, learner_id_for, make_family, make_provider

NEW_SECTIONS = ["profile", "pathways", "service", "projects", "support_needs", "wellbeing", "conduct"]
SENSITIVE = ["support_needs", "wellbeing", "conduct"]
KEK_A, KEK_B = "a1" * 32, "b2" * 32


def at(n: int) -> str:
    return (datetime(2026, 3, 1, tzinfo=UTC) + timedelta(days=n)).isoformat()


@dataclass(frozen=True)
class Case:
    mutation: str
    argument: str
    input_type: str
    field: str
    date_key: str

    def make(self, n: int) -> dict[str, Any]:
        return {"sourceId": f"{self.field}-{n}", **ENTRIES[self.field](n)}


# Complete inputs (every optional field set), so a round trip must give back exactly the input.
ENTRIES = {
    "profile": lambda n: {"asOf": at(n), "preferredName": f"Sam {n}", "pronouns": "they/them",
                          "languages": [{"tag": "en", "proficiency": "HOME"}, {"tag": "pt-BR", "proficiency": "LEARNING"}]},
    "pathways": lambda n: {"kind": "INTERNSHIP", "organisation": {"name": "Harbor Labs", "id": "https://harbor.example.org"},
                           "occurredAt": at(n), "hours": 12.5, "reflection": f"Loved the robotics bay, visit {n}"},
    "service": lambda n: {"organisation": {"name": "Eastside Food Bank", "id": "https://foodbank.example.org"},
                          "role": "Sorting volunteer", "hours": 20.0, "startedAt": at(n), "endedAt": at(n + 30),
                          "verifier": {"name": "Dana Reyes", "role": "Coordinator", "email": "dana@foodbank.example.org"}},
    "projects": lambda n: {"title": f"Community garden {n}", "role": "Lead", "startedAt": at(n), "completedAt": at(n + 60),
                           "milestones": [{"title": "Site survey", "dueAt": at(n + 7), "reachedAt": at(n + 6)}],
                           "outcome": "Twelve raised beds built",
                           "linkedSkills": [{"label": "Planning", "frameworkUri": None, "code": None},
                                            {"label": "Teamwork", "frameworkUri": "https://case.example.org/fw", "code": "TW.1"}]},
    "supportNeeds": lambda n: {"category": "ACCOMMODATION", "description": f"Dyslexia: extra reading time {n}",
                               "identifiedAt": at(n), "identifiedBy": "Learning support coordinator",
                               "accommodations": ["Extra time on timed tests", "Text to speech"], "reviewAt": at(n + 180)},
    "wellbeing": lambda n: {"measure": "One mile run", "value": 9.5 - n / 10, "unit": "minutes", "measuredAt": at(n),
                            "goal": 9.0, "notes": f"Asthma inhaler before running {n}"},
    "conduct": lambda n: {"occurredAt": at(n), "category": "Disruption in class",
                          "description": f"Argued with a classmate during chemistry lab {n}",
                          "resolution": {"status": "RESOLVED", "resolvedAt": at(n + 2), "notes": "Restorative conversation held"}},
}

CASES = {
    "profile": Case("contributeProfile", "profile", "ProfileInput", "profile", "asOf"),
    "pathways": Case("contributePathways", "pathways", "PathwayInput", "pathways", "occurredAt"),
    "service": Case("contributeService", "service", "ServiceInput", "service", "startedAt"),
    "projects": Case("contributeProjects", "projects", "ProjectInput", "projects", "startedAt"),
    "support_needs": Case("contributeSupportNeeds", "supportNeeds", "SupportNeedInput", "supportNeeds", "identifiedAt"),
    "wellbeing": Case("contributeWellbeing", "wellbeing", "WellbeingInput", "wellbeing", "measuredAt"),
    "conduct": Case("contributeConduct", "conduct", "ConductInput", "conduct", "occurredAt"),
}


def selection(value: dict[str, Any]) -> str:
    """A GraphQL selection set asking for exactly the keys of ``value`` (recursively)."""
    parts = []
    for key, item in value.items():
        sample = item[0] if isinstance(item, list) and item else item
        parts.append(f"{key} {selection(sample)}" if isinstance(sample, dict) else key)
    return "{ " + " ".join(parts) + " }"


def contribute(section: str) -> str:
    c = CASES[section]
    return (f"mutation($learner: ID!, $items: [{c.input_type}!]!) {{ {c.mutation}(learnerId: $learner, {c.argument}: $items) "
            "{ received created updated unchanged } }")


def read(section: str, args: str = "") -> str:
    c = CASES[section]
    inner = f"({args})" if args else ""
    return (f"query($id: ID!) {{ learner(id: $id) {{ {c.field}{inner} {{ nodes {selection(c.make(0))} "
            "pageInfo { hasNextPage endCursor } } } }")


async def setup_provider(engine, family: Family, name: str, sections: list[str], actions=tuple(Action)) -> ProviderClient:  # type: ignore[no-untyped-def]
    # Tokens carry every scope: refusals below come from the family's consent, not the client's limits.
    provider = await make_provider(engine, name, [f"{s}:{a.value}" for s in NEW_SECTIONS for a in Action]
                                   + ["profile.birthdate:read", "badges:read"])
    for section in sections:
        for action in actions:
            await grant(engine, family, provider, section, action)
    return provider


@pytest.fixture
async def world(client, engine):  # type: ignore[no-untyped-def]
    family = await make_family(engine)
    provider = await setup_provider(engine, family, "Whole Record", NEW_SECTIONS)
    return family, provider, await get_token(client, provider), learner_id_for(family, provider)


@asynccontextmanager
async def hub_with(settings: Settings, engine, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    """A second hub on the same database with other settings (e.g. other KEKs)."""
    app = create_app(settings.model_copy(update=overrides), engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http:
        yield http


def data(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


def only_error(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text  # refusals and incidents are answers, never a 500
    errors = response.json()["errors"]
    assert len(errors) == 1, errors
    return errors[0]


# -- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("section", NEW_SECTIONS)
async def test_round_trip_is_exact_idempotent_and_newest_first(client, engine, world, section):
    _, provider, token, learner = world
    case = CASES[section]
    items = [case.make(n) for n in range(3)]
    counts = lambda r: r[case.mutation]  # noqa: E731
    assert counts(data(await gql(client, token, contribute(section), {"learner": learner, "items": items}))) == {
        "received": 3, "created": 3, "updated": 0, "unchanged": 0}
    assert counts(data(await gql(client, token, contribute(section), {"learner": learner, "items": items}))) == {
        "received": 3, "created": 0, "updated": 0, "unchanged": 3}
    changed = [*items[:2], {**items[2], case.date_key: at(-1)}]  # moved to the oldest
    assert counts(data(await gql(client, token, contribute(section), {"learner": learner, "items": changed}))) == {
        "received": 3, "created": 0, "updated": 1, "unchanged": 2}

    page = data(await gql(client, token, read(section, "first: 2"), {"id": learner}))["learner"][case.field]
    assert page["nodes"] == [changed[1], changed[0]]  # exactly what was sent, newest first
    assert page["pageInfo"]["hasNextPage"] is True
    rest = data(await gql(client, token, read(section, f'first: 2, after: "{page["pageInfo"]["endCursor"]}"'),
                          {"id": learner}))["learner"][case.field]
    assert rest["nodes"] == [changed[2]] and rest["pageInfo"]["hasNextPage"] is False

    envelope = data(await gql(client, token, f"query($id: ID!) {{ learner(id: $id) {{ {case.field} {{ nodes "
                              "{ id contributedBy createdAt updatedAt } } } }", {"id": learner}))
    assert {n["contributedBy"] for n in envelope["learner"][case.field]["nodes"]} == {str(provider.provider_id)}


async def test_pathways_filter_by_kind_and_time_range(client, world):
    _, _, token, learner = world
    kinds = ["COLLEGE_VISIT", "CAREER_FAIR", "JOB_SHADOW", "INTERNSHIP", "COURSE", "INTERNSHIP"]
    items = [{**CASES["pathways"].make(n), "kind": kind} for n, kind in enumerate(kinds)]
    data(await gql(client, token, contribute("pathways"), {"learner": learner, "items": items}))
    query = """query($id: ID!, $kind: PathwayKind, $since: DateTime, $until: DateTime) { learner(id: $id) {
      pathways(kind: $kind, since: $since, until: $until) { nodes { sourceId kind } } } }"""

    async def ids(**variables: Any) -> list[str]:
        body = data(await gql(client, token, query, {"id": learner, **variables}))
        return [n["sourceId"] for n in body["learner"]["pathways"]["nodes"]]

    assert await ids(kind="INTERNSHIP") == ["pathways-5", "pathways-3"]
    assert await ids(since=at(1), until=at(4)) == ["pathways-3", "pathways-2", "pathways-1"]
    assert await ids(kind="INTERNSHIP", until=at(4)) == ["pathways-3"]
    assert await ids() == [f"pathways-{n}" for n in reversed(range(6))]
    error = only_error(await gql(client, token, query, {"id": learner, "since": at(4), "until": at(1)}))
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize("section", SENSITIVE + ["service"])
async def test_time_range_filters_the_sections_date(client, world, section):
    _, _, token, learner = world
    case = CASES[section]
    data(await gql(client, token, contribute(section), {"learner": learner, "items": [case.make(n) for n in range(5)]}))
    body = data(await gql(client, token, f'query($id: ID!) {{ learner(id: $id) {{ {case.field}(since: "{at(1)}", '
                          f'until: "{at(3)}") {{ nodes {{ sourceId }} }} }} }}', {"id": learner}))
    assert [n["sourceId"] for n in body["learner"][case.field]["nodes"]] == [f"{case.field}-2", f"{case.field}-1"]


@pytest.mark.parametrize(
    ("section", "change", "path_tail"),
    [
        ("profile", {"preferredName": None, "pronouns": None, "languages": []}, []),
        ("profile", {"languages": [{"tag": "not a tag!"}]}, ["languages", 0, "tag"]),
        ("pathways", {"hours": -1}, ["hours"]),
        ("service", {"endedAt": at(-5)}, []),
        ("service", {"verifier": {"name": "X", "email": "no-at-sign"}}, ["verifier", "email"]),
        ("projects", {"linkedSkills": [{"label": "X", "frameworkUri": "https://f.example.org"}]}, ["linkedSkills", 0]),
        ("support_needs", {"description": ""}, ["description"]),
        ("wellbeing", {"measuredAt": "2026-03-01T00:00:00"}, ["measuredAt"]),
        ("conduct", {"resolution": {"status": "RESOLVED"}}, ["resolution"]),
    ],
)
async def test_invalid_entries_are_refused_whole_with_their_path(client, engine, world, section, change, path_tail):
    _, _, token, learner = world
    case = CASES[section]
    items = [case.make(0), {**case.make(1), **change}]
    error = only_error(await gql(client, token, contribute(section), {"learner": learner, "items": items}))
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "nothing was stored" in error["message"]
    assert error["extensions"]["errors"][0]["path"][:2 + len(path_tail)] == [case.argument, 1, *path_tail]
    async with engine.connect() as conn:
        assert (await conn.execute(select(SectionEntry.id))).all() == []


async def test_an_unknown_enum_value_is_a_graphql_error_not_a_500(client, world):
    _, _, token, learner = world
    response = await gql(client, token, contribute("pathways"),
                         {"learner": learner, "items": [{**CASES["pathways"].make(0), "kind": "PARTY"}]})
    assert response.status_code == 200
    assert "PARTY" in response.json()["errors"][0]["message"]


# -- consent ---------------------------------------------------------------------------------


@pytest.mark.parametrize("section", NEW_SECTIONS)
async def test_each_section_needs_its_own_consent(client, engine, section):
    family = await make_family(engine)
    owner = await setup_provider(engine, family, "Owner", [section])
    other = await setup_provider(engine, family, "Other", [s for s in NEW_SECTIONS if s != section])
    case = CASES[section]
    data(await gql(client, await get_token(client, owner), contribute(section),
                   {"learner": learner_id_for(family, owner), "items": [case.make(0)]}))

    token, learner = await get_token(client, other), learner_id_for(family, other)
    read_refused = (await gql(client, token, read(section), {"id": learner})).json()
    assert read_refused["data"]["learner"][case.field] is None
    [error] = read_refused["errors"]
    assert error["extensions"] == {"code": "CONSENT_REQUIRED", "section": section, "action": "read", "reason": "no_grant"}
    write_refused = only_error(await gql(client, token, contribute(section), {"learner": learner, "items": [case.make(1)]}))
    assert write_refused["extensions"]["code"] == "CONSENT_REQUIRED"
    assert write_refused["extensions"]["action"] == "contribute"
    async with engine.connect() as conn:
        assert (await conn.execute(select(SectionEntry.source_id))).scalars().all() == [f"{case.field}-0"]
        outcomes = (await conn.execute(select(DisclosureEvent.action, DisclosureEvent.outcome).where(
            DisclosureEvent.provider_id == other.provider_id, DisclosureEvent.section == section))).all()
    assert sorted(outcomes) == [("contribute", "denied"), ("read", "denied")]


async def test_birthdate_needs_the_profile_birthdate_grant(client, engine):
    family = await make_family(engine)
    provider = await setup_provider(engine, family, "Profiles", ["profile"])
    token, learner = await get_token(client, provider), learner_id_for(family, provider)
    query = "query($id: ID!) { learner(id: $id) { birthdate profile { nodes { sourceId } } } }"
    body = (await gql(client, token, query, {"id": learner})).json()
    # profile:read and profile:contribute are granted; the birthdate is not part of them.
    assert body["data"]["learner"] == {"birthdate": None, "profile": {"nodes": []}}
    assert [e["extensions"] for e in body["errors"]] == [
        {"code": "CONSENT_REQUIRED", "section": "profile.birthdate", "action": "read", "reason": "no_grant"}]

    await grant(engine, family, provider, "profile.birthdate", Action.READ)
    assert data(await gql(client, token, query, {"id": learner}))["learner"]["birthdate"] == "2012-05-01"
    async with engine.connect() as conn:
        events = (await conn.execute(select(DisclosureEvent.outcome, DisclosureEvent.entry_count).where(
            DisclosureEvent.section == "profile.birthdate").order_by(DisclosureEvent.seq))).all()
    assert [tuple(e) for e in events] == [("denied", None), ("allowed", 1)]

    # A token issued without the scope is refused as such, whatever the family granted.
    narrow = await get_token(client, provider, scope="profile:read")
    error = only_error(await gql(client, narrow, "query($id: ID!) { learner(id: $id) { birthdate } }", {"id": learner}))
    assert error["extensions"]["code"] == "INSUFFICIENT_SCOPE"


async def test_nobody_can_be_granted_to_contribute_a_birthdate(engine):
    family = await make_family(engine)
    provider = await make_provider(engine, "Writer", ["badges:read"])
    with pytest.raises(ValueError, match="offers only: read"):
        await grant(engine, family, provider, "profile.birthdate", Action.CONTRIBUTE)


async def test_read_own_applies_to_sealed_sections(client, engine):
    family = await make_family(engine)
    writer = await setup_provider(engine, family, "Counsellor", ["conduct"], actions=(Action.CONTRIBUTE,))
    other = await setup_provider(engine, family, "School", ["conduct"], actions=(Action.CONTRIBUTE,))
    for provider, n in ((writer, 0), (other, 1)):
        data(await gql(client, await get_token(client, provider), contribute("conduct"),
                       {"learner": learner_id_for(family, provider), "items": [CASES["conduct"].make(n)]}))
    body = data(await gql(client, await get_token(client, writer), "query($id: ID!) { learner(id: $id) { conduct "
                          "{ nodes { sourceId description } } } }", {"id": learner_id_for(family, writer)}))
    assert body["learner"]["conduct"]["nodes"] == [
        {"sourceId": "conduct-0", "description": "Argued with a classmate during chemistry lab 0"}]


async def test_revoking_with_deletion_removes_only_that_generic_section(client, engine, world, settings):
    from hub.grants.family import Actor, revoke_by
    from hub.config import control_policy

    family, provider, token, learner = world
    for section in ("pathways", "service"):
        data(await gql(client, token, contribute(section), {"learner": learner, "items": [CASES[section].make(0)]}))
    async with make_sessionmaker(engine)() as session, session.begin():
        revoked, deleted = await revoke_by(
            session=session, actor=Actor.guardian(family.guardian_id), learner_id=family.learner_id,
            provider_id=provider.provider_id, now=datetime.now(UTC), policy=control_policy(settings),
            section="pathways", delete_contributions=True,
        )
    assert (revoked, deleted) == (2, 1)
    async with engine.connect() as conn:
        assert (await conn.execute(select(SectionEntry.section_name))).scalars().all() == ["service"]


# -- no "all sections" grant -------------------------------------------------------------------


async def test_there_is_no_all_sections_grant(client, engine, world, tmp_path, monkeypatch, database_url):
    """Every way of granting names one section: a sensitive one is only ever granted explicitly."""
    from hub.cli import app as cli
    from hub.grants.family import grant_by

    for function in (grant_access, grant_by):
        assert inspect.signature(function).parameters["section"].default is inspect.Parameter.empty
    assert not any(name in catalogue() for name in ("*", "all", "everything"))
    family, provider, token, learner = world
    for wildcard in ("*", "all", ""):
        with pytest.raises(Exception, match="unknown section"):
            await grant(engine, family, provider, wildcard, Action.READ)
        error = only_error(await gql(client, token, "mutation($id: ID!, $items: [AccessItemInput!]!) { requestAccess("
                                     "learnerId: $id, items: $items, purpose: \"x\") { merged } }",
                                     {"id": learner, "items": [{"section": wildcard, "action": "read"}]}))
        assert error["extensions"]["code"] == "BAD_USER_INPUT"

    monkeypatch.setenv("KINFOLIO_DATABASE_URL", database_url)
    monkeypatch.setenv("KINFOLIO_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        base = ["grant", "create", "--learner", str(family.learner_id), "--provider", "Whole Record", "--action",
                "read", "--purpose", "x", "--by", "parent@example.org"]
        assert runner.invoke(cli, base).exit_code != 0  # --section is required
        refused = runner.invoke(cli, [*base, "--section", "all"])
        assert refused.exit_code == 2 and "unknown section 'all'" in refused.output
    finally:
        get_settings.cache_clear()


# -- sealed at rest ---------------------------------------------------------------------------


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


async def _raw_rows(engine, section: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        result = await conn.execute(text("SELECT * FROM section_entry WHERE section = :s ORDER BY source_id"), {"s": section})
        return [dict(row._mapping) for row in result]


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


# A field both entries share: sealed under fresh nonces, equal plaintexts never give equal ciphertexts.
SHARED_FIELD = {"support_needs": "accommodations", "wellbeing": "unit", "conduct": "category"}


@pytest.mark.parametrize("section", SENSITIVE)
async def test_sensitive_columns_hold_no_plaintext(client, engine, world, settings, section):
    from hub.records.service import content_hash, list_entries, page_query
    from consent import Allowed
    from uuid import uuid4

    family, provider, token, learner = world
    case = CASES[section]
    items = [case.make(n) for n in range(2)]
    data(await gql(client, token, contribute(section), {"learner": learner, "items": items}))
    rows = await _raw_rows(engine, section)
    assert len(rows) == 2
    secrets = {s for item in items for s in _strings(item) if len(s) >= 5 and s not in (item["sourceId"], item[case.date_key])}
    secrets |= {s.lower() for s in secrets}  # enum values are stored in lower case
    assert len(secrets) >= 4
    for row in rows:
        assert row["body"] is None and row["kind"] is None
        sealed = _json(row["sealed"])
        assert sealed and all(value.startswith("v1:") for value in sealed.values())
        # Field names (e.g. "accommodations") are schema, not data: look at every value only.
        leaked = sorted(s for s in secrets if s in repr({**row, "sealed": list(sealed.values())}))
        assert leaked == [], f"plaintext at rest: {leaked}"
    first, second = (_json(r["sealed"]) for r in rows)
    assert first[SHARED_FIELD[section]] != second[SHARED_FIELD[section]]

    # The content hash is keyed (HMAC under a key derived from the data key), not the plain SHA-256
    # of the entry that would let anyone holding the table confirm a guessed record offline.
    async with make_sessionmaker(engine)() as session:
        allowed = Allowed(uuid4())
        spec = page_query(allowed, section=section, reader_provider_id=provider.provider_id, first=10)
        page = await list_entries(session=session, access=allowed, learner_id=family.learner_id, spec=spec,
                                  data_keys=DataKeys(key_ring(settings)))
    plain = {content_hash(entry.value) for entry in page.entries}
    assert len(plain) == 2 and plain.isdisjoint({r["content_hash"] for r in rows})


async def test_plain_sections_keep_a_readable_body_and_the_kind_column(client, engine, world):
    _, _, token, learner = world
    data(await gql(client, token, contribute("pathways"), {"learner": learner, "items": [CASES["pathways"].make(0)]}))
    [row] = await _raw_rows(engine, "pathways")
    assert row["sealed"] is None and row["kind"] == "internship"
    assert _json(row["body"])["organisation"] == {"name": "Harbor Labs", "id": "https://harbor.example.org"}


def _flip(token: str) -> str:
    middle = len(token) // 2
    return token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1:]


TAMPERINGS = {
    "flipped ciphertext": lambda rows: [{**rows[0], "category": _flip(rows[0]["category"])}, rows[1]],
    "field moved to another row (wrong source id in AAD)": lambda rows: [{**rows[0], "description": rows[1]["description"]}, rows[1]],
    "fields swapped within a row (wrong field name in AAD)": lambda rows: [
        {**rows[0], "category": rows[0]["description"], "description": rows[0]["category"]}, rows[1]],
    "field deleted": lambda rows: [{k: v for k, v in rows[0].items() if k != "resolution"}, rows[1]],
    "not a token": lambda rows: [{**rows[0], "category": "Disruption in class"}, rows[1]],
}


@pytest.mark.parametrize("tampering", sorted(TAMPERINGS))
async def test_tampered_or_moved_ciphertext_is_refused_with_a_code(client, engine, world, tampering):
    _, _, token, learner = world
    data(await gql(client, token, contribute("conduct"), {"learner": learner, "items": [CASES["conduct"].make(n) for n in range(2)]}))
    rows = await _raw_rows(engine, "conduct")
    changed = TAMPERINGS[tampering]([_json(r["sealed"]) for r in rows])
    async with engine.begin() as conn:
        for row, sealed in zip(rows, changed, strict=True):
            await conn.execute(text("UPDATE section_entry SET sealed = :s WHERE id = :id"), {"s": json.dumps(sealed), "id": row["id"]})
    response = await gql(client, token, read("conduct"), {"id": learner})
    error = only_error(response)
    assert error["extensions"] == {"code": "DATA_UNREADABLE", "section": "conduct"}
    assert response.json()["data"]["learner"]["conduct"] is None
    assert "Argued" not in response.text


async def test_an_unreadable_section_fails_alone_in_a_read_of_several(client, engine, world):
    """The pages of one read are loaded in one batch; a sealed page that cannot be opened fails
    its own field, and the read's other sections are answered."""
    _, _, token, learner = world
    data(await gql(client, token, contribute("conduct"), {"learner": learner, "items": [CASES["conduct"].make(0)]}))
    data(await gql(client, token, contribute("service"), {"learner": learner, "items": [CASES["service"].make(0)]}))
    [row] = await _raw_rows(engine, "conduct")
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE section_entry SET sealed = :s WHERE id = :id"),
                           {"s": json.dumps(TAMPERINGS["flipped ciphertext"]([_json(row["sealed"]), {}])[0]), "id": row["id"]})
    both = (f"query($id: ID!) {{ learner(id: $id) {{ {CASES['conduct'].field} {{ nodes {selection(CASES['conduct'].make(0))} }} "
            f"{CASES['service'].field} {{ nodes {selection(CASES['service'].make(0))} }} }} }}")
    response = await gql(client, token, both, {"id": learner})
    error = only_error(response)
    assert error["extensions"] == {"code": "DATA_UNREADABLE", "section": "conduct"}
    answered = response.json()["data"]["learner"]
    assert answered[CASES["conduct"].field] is None
    assert len(answered[CASES["service"].field]["nodes"]) == 1


async def test_an_unreadable_learner_fails_alone_in_a_page_of_learners(client, engine, world):
    """``learners(first:)`` reads a section for a page of learners in one statement; one learner's
    tampered ciphertext fails that learner's field, and the other learners are answered."""
    family, provider, token, learner = world
    other = await make_family(engine, email="other@example.org")
    await grant(engine, other, provider, "conduct", Action.READ)
    await grant(engine, other, provider, "conduct", Action.CONTRIBUTE)
    other_learner = learner_id_for(other, provider)
    for pairwise in (learner, other_learner):
        data(await gql(client, token, contribute("conduct"), {"learner": pairwise, "items": [CASES["conduct"].make(0)]}))
    rows = await _raw_rows(engine, "conduct")
    [tampered] = [row for row in rows if UUID(str(row["learner_id"])) == family.learner_id]
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE section_entry SET sealed = :s WHERE id = :id"),
                           {"s": json.dumps(TAMPERINGS["flipped ciphertext"]([_json(tampered["sealed"]), {}])[0]), "id": tampered["id"]})
    page = (f"query {{ learners(first: 10) {{ nodes {{ id {CASES['conduct'].field} "
            f"{{ nodes {selection(CASES['conduct'].make(0))} }} }} }} }}")
    response = await gql(client, token, page)
    error = only_error(response)
    assert error["extensions"] == {"code": "DATA_UNREADABLE", "section": "conduct"}
    nodes = {node["id"]: node[CASES["conduct"].field] for node in response.json()["data"]["learners"]["nodes"]}
    assert nodes[learner] is None
    assert len(nodes[other_learner]["nodes"]) == 1


async def test_a_wrapped_key_copied_to_another_learner_does_not_unwrap(client, engine, world):
    family, provider, token, learner = world
    data(await gql(client, token, contribute("wellbeing"), {"learner": learner, "items": [CASES["wellbeing"].make(0)]}))
    other = await make_family(engine, email="other@example.org")
    await grant(engine, other, provider, "wellbeing", Action.READ)
    await grant(engine, other, provider, "wellbeing", Action.CONTRIBUTE)
    other_learner = learner_id_for(other, provider)
    data(await gql(client, token, contribute("wellbeing"), {"learner": other_learner, "items": [CASES["wellbeing"].make(1)]}))
    async with engine.begin() as conn:
        wrapped = (await conn.execute(select(LearnerDataKey.wrapped_key).where(
            LearnerDataKey.learner_id == family.learner_id))).scalar_one()
        await conn.execute(LearnerDataKey.__table__.update().where(
            LearnerDataKey.learner_id == other.learner_id).values(wrapped_key=wrapped))
    error = only_error(await gql(client, token, read("wellbeing"), {"id": other_learner}))
    assert error["extensions"]["code"] == "DATA_UNREADABLE"
    data(await gql(client, token, read("wellbeing"), {"id": learner}))  # the owner's data is unaffected


# -- key rotation and crypto-shredding -------------------------------------------------------


async def test_kek_rotation_rewraps_without_touching_ciphertext(engine, settings, database_url, tmp_path, monkeypatch):
    from hub.cli import app as cli

    family = await make_family(engine)
    provider = await setup_provider(engine, family, "Clinic", SENSITIVE)
    learner = learner_id_for(family, provider)
    async with hub_with(settings, engine, kek_hex=KEK_A) as http:
        token = await get_token(http, provider)
        for section in SENSITIVE:
            data(await gql(http, token, contribute(section), {"learner": learner, "items": [CASES[section].make(0)]}))
        expected = {s: data(await gql(http, token, read(s), {"id": learner})) for s in SENSITIVE}
    before = {s: await _raw_rows(engine, s) for s in SENSITIVE}

    # The new KEK alone cannot unwrap yet: the old one must stay configured until the re-wrap.
    async with hub_with(settings, engine, kek_hex=KEK_B) as http:
        token = await get_token(http, provider)
        assert only_error(await gql(http, token, read("conduct"), {"id": learner}))["extensions"]["code"] == "DATA_UNREADABLE"

    monkeypatch.setenv("KINFOLIO_DATABASE_URL", database_url)
    monkeypatch.setenv("KINFOLIO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("KINFOLIO_KEK_HEX", KEK_B)
    monkeypatch.setenv("KINFOLIO_PREVIOUS_KEKS_HEX", KEK_A)
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        # The CLI runs its own event loop (asyncio.run): give it a thread, as an operator's shell would.
        rotated = await asyncio.to_thread(runner.invoke, cli, ["keys", "rotate-kek"])
        assert rotated.exit_code == 0, rotated.output
        b_id, a_id = KeyRing(bytes.fromhex(KEK_B)).current_id, KeyRing(bytes.fromhex(KEK_A)).current_id
        assert rotated.output.strip() == f"re-wrapped 1 data key(s) under KEK {b_id}; 0 already current; 0 unreadable"
        again = await asyncio.to_thread(runner.invoke, cli, ["keys", "rotate-kek"])
        assert "re-wrapped 0 data key(s)" in again.output and "1 already current" in again.output
        status = (await asyncio.to_thread(runner.invoke, cli, ["keys", "status"])).output.splitlines()
        assert sorted(line.split() for line in status) == sorted(
            [[b_id, "current", "1", "data", "key(s)"], [a_id, "previous", "0", "data", "key(s)"]])
    finally:
        get_settings.cache_clear()

    assert {s: await _raw_rows(engine, s) for s in SENSITIVE} == before  # no ciphertext touched
    # The old KEK is retired: the data stays readable under the new one alone.
    async with hub_with(settings, engine, kek_hex=KEK_B, previous_keks_hex="") as http:
        token = await get_token(http, provider)
        assert {s: data(await gql(http, token, read(s), {"id": learner})) for s in SENSITIVE} == expected


async def test_rotation_reports_keys_no_configured_kek_can_unwrap(engine, settings):
    family = await make_family(engine)
    ring_a = KeyRing(bytes.fromhex(KEK_A))
    async with make_sessionmaker(engine)() as session, session.begin():
        await DataKeys(ring_a).get(session=session, learner_id=family.learner_id, create=True)
    from hub.records.keys import rewrap_data_keys

    async with make_sessionmaker(engine)() as session, session.begin():
        report, after = await rewrap_data_keys(session=session, keyring=KeyRing(bytes.fromhex(KEK_B)), now=datetime.now(UTC))
    assert (report.rewrapped, report.unreadable, after) == (0, [(family.learner_id, ring_a.current_id)], None)


async def test_destroying_the_data_key_shreds_the_sealed_fields(client, engine, world):
    from hub.records.keys import destroy_data_key

    family, _, token, learner = world
    data(await gql(client, token, contribute("support_needs"), {"learner": learner, "items": [CASES["support_needs"].make(0)]}))
    data(await gql(client, token, contribute("pathways"), {"learner": learner, "items": [CASES["pathways"].make(0)]}))
    async with make_sessionmaker(engine)() as session, session.begin():
        assert await destroy_data_key(session=session, learner_id=family.learner_id) is True
    error = only_error(await gql(client, token, read("support_needs"), {"id": learner}))
    assert error["extensions"]["code"] == "DATA_UNREADABLE"
    assert [r["sealed"] is not None for r in await _raw_rows(engine, "support_needs")] == [True]  # ciphertext still there
    data(await gql(client, token, read("pathways"), {"id": learner}))  # plain sections are not affected


async def test_deleting_a_learner_destroys_the_key_and_backups_die_with_the_kek(client, engine, world, settings):
    family, _, token, learner = world
    data(await gql(client, token, contribute("wellbeing"), {"learner": learner, "items": [CASES["wellbeing"].make(0)]}))
    async with engine.connect() as conn:  # a "backup": the wrapped key and the sealed rows
        backup_key = (await conn.execute(select(LearnerDataKey.wrapped_key, LearnerDataKey.kek_id))).one()
    backup_rows = await _raw_rows(engine, "wellbeing")

    async with make_sessionmaker(engine)() as session, session.begin():
        assert await delete_learner(session=session, learner_id=family.learner_id) is True
        assert await delete_learner(session=session, learner_id=family.learner_id) is False
    async with engine.connect() as conn:
        assert (await conn.execute(select(LearnerDataKey.learner_id))).all() == []
        assert (await conn.execute(select(SectionEntry.id))).all() == []

    # While the KEK that wrapped it is configured, the backup's key still unwraps (documented)...
    live = key_ring(settings)
    assert len(live.unwrap(family.learner_id, backup_key.wrapped_key, backup_key.kek_id)) == 32
    # ...once that KEK is retired (rotated away and dropped), the backup is unreadable for good.
    retired = KeyRing(bytes.fromhex(KEK_B))
    with pytest.raises(UnreadableData, match="not configured"):
        retired.unwrap(family.learner_id, backup_key.wrapped_key, backup_key.kek_id)
    assert backup_rows and backup_rows[0]["sealed"]


def test_production_requires_a_kek_and_keks_are_aes_256():
    base = dict(environment="production", database_url="postgresql+asyncpg://db/k", issuer="https://hub.example.org",
                signing_key_pem="x", pseudonym_key_hex="00" * 32, credential_key_pem="x", credential_rsa_key_pem="x",
                session_secret_hex="00" * 32)
    with pytest.raises(ValidationError, match="KINFOLIO_KEK_HEX"):
        Settings(**base)
    assert Settings(**base, kek_hex=KEK_A).kek_hex == KEK_A
    for bad in ("abcd", "zz" * 32, "00" * 16):
        with pytest.raises(ValidationError, match="KINFOLIO_KEK_HEX"):
            Settings(environment="test", kek_hex=bad)
    with pytest.raises(ValidationError, match="KINFOLIO_PREVIOUS_KEKS_HEX"):
        Settings(environment="test", previous_keks_hex=f"{KEK_A}, 00")


def test_development_kek_is_a_0600_file_under_the_data_dir(tmp_path):
    ring = key_ring(Settings(environment="development", data_dir=tmp_path))
    path = tmp_path / "kek.hex"
    assert path.stat().st_mode & 0o777 == 0o600
    assert ring.current_id == key_ring(Settings(environment="development", data_dir=tmp_path)).current_id


def test_every_sensitive_section_is_stored_sealed():
    # Encryption at rest follows the catalogue: a sensitive section must live in the sealed table.
    assert {n for n, s in catalogue().items() if s.sensitive} <= set(GENERIC_SECTIONS)


# -- migration and CLI ------------------------------------------------------------------------


async def test_migration_runs_on_a_populated_database_and_back(tmp_path):
    """The sections revision on top of a database holding learners, grants and entries, and back down."""
    import os

    from hub import migrate
    from hub.db import make_engine
    from tests.conftest import _create_pg_database, _drop_pg_database

    admin = os.environ.get("KINFOLIO_TEST_DATABASE_URL")
    url = await _create_pg_database(admin) if admin else f"sqlite+aiosqlite:///{tmp_path / 'populated.db'}"
    engine = make_engine(url)
    try:
        await migrate.upgrade(engine, "8fe53b3a58d0")
        family = await make_family(engine)
        async with make_sessionmaker(engine)() as session, session.begin():
            from hub.providers.service import create_provider

            provider = await create_provider(session=session, name="Before", kind="school")
            await grant_access(session=session, learner_id=family.learner_id, provider_id=provider.id, section="badges",
                               action=Action.READ, purpose="x", granted_by=family.guardian_id, now=datetime.now(UTC),
                               pseudonym_key=PSEUDONYM_KEY)
        await migrate.upgrade(engine)
        async with make_sessionmaker(engine)() as session, session.begin():
            key = await DataKeys(KeyRing(bytes.fromhex(KEK_A))).get(session=session, learner_id=family.learner_id, create=True)
            assert key is not None
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM learner_data_key"))).scalar_one() == 1
            assert (await conn.execute(text("SELECT count(*) FROM consent_grant"))).scalar_one() == 1
        await migrate.downgrade(engine, "8fe53b3a58d0")
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM consent_grant"))).scalar_one() == 1
    finally:
        await engine.dispose()
        if admin:
            await _drop_pg_database(url, admin)


async def test_cli_learner_delete_needs_confirmation_and_shreds(client, engine, world, database_url, tmp_path, monkeypatch):
    from hub.cli import app as cli

    family, _, token, learner = world
    data(await gql(client, token, contribute("conduct"), {"learner": learner, "items": [CASES["conduct"].make(0)]}))
    monkeypatch.setenv("KINFOLIO_DATABASE_URL", database_url)
    monkeypatch.setenv("KINFOLIO_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        unconfirmed = await asyncio.to_thread(runner.invoke, cli, ["learner", "delete", str(family.learner_id)])
        assert unconfirmed.exit_code == 2 and "pass --yes" in unconfirmed.output
        done = await asyncio.to_thread(runner.invoke, cli, ["learner", "delete", str(family.learner_id), "--yes"])
        assert done.exit_code == 0, done.output
        assert "data key is destroyed" in done.output
        again = await asyncio.to_thread(runner.invoke, cli, ["learner", "delete", str(family.learner_id), "--yes"])
        assert again.exit_code == 2 and "no learner" in again.output
    finally:
        get_settings.cache_clear()
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM learner_data_key"))).scalar_one() == 0
        assert (await conn.execute(text("SELECT count(*) FROM section_entry"))).scalar_one() == 0
    assert only_error(await gql(client, token, read("conduct"), {"id": learner}))["extensions"]["code"] == "NOT_FOUND"


async def test_a_plain_body_edited_behind_the_apis_back_is_refused_with_a_code(client, engine, world):
    _, _, token, learner = world
    data(await gql(client, token, contribute("pathways"), {"learner": learner, "items": [CASES["pathways"].make(0)]}))
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE section_entry SET body = :b"), {"b": json.dumps({"kind": "party"})})
    error = only_error(await gql(client, token, read("pathways"), {"id": learner}))
    assert error["extensions"] == {"code": "DATA_UNREADABLE", "section": "pathways"}
