"""Bad input is reported per record with its line, the rest is imported; voiding retracts."""

from __future__ import annotations

import json

import pytest

from connectors import state
from connectors.runtime import run_instance
from connectors.xapi.statements import actor_id
from hub.db import make_sessionmaker
from tests.connectors.helpers import asgi_http, connector_provider, count_activities, create, instance_config, linked_family


def _statement(n: int, email: str = "kim@example.org", **extra) -> dict:  # type: ignore[no-untyped-def]
    return {
        "id": f"00000000-0000-4000-8000-{n:012d}",
        "actor": {"mbox": f"mailto:{email}"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/completed", "display": {"en-US": "completed"}},
        "object": {"id": f"https://lms.example.org/lessons/{n}", "definition": {"name": {"en-US": f"Lesson {n}"}}},
        "timestamp": f"2026-01-01T10:{n % 60:02d}:00Z",
        **extra,
    }


async def test_malformed_lines_bom_latin1_and_invalid_statements_are_reported_with_line_numbers(engine, app, monkeypatch, tmp_path):
    provider = await connector_provider(engine, monkeypatch)
    await linked_family(engine, provider, "kim@example.org", grant_activities=True)
    lines = [
        "\ufeff" + json.dumps(_statement(1)),                                   # 1: UTF-8 BOM, fine
        "{not json",                                                            # 2: malformed
        json.dumps(_statement(3)),                                              # 3
        "",                                                                     # 4: blank, skipped
        json.dumps({"actor": {"mbox": "mailto:kim@example.org"}, "verb": {"id": "http://x.org/v"}}),  # 5: no object
        json.dumps(_statement(6, timestamp="2026-01-01T10:00:00")),             # 6: no offset
        json.dumps(_statement(7, result={"score": {"scaled": 3}})),             # 7: scaled > 1
        json.dumps(_statement(8, actor={"objectType": "Group", "member": []})),  # 8: group actor
        json.dumps(_statement(9, actor={"mbox": "mailto:kim@example.org", "openid": "https://x.org/kim"})),  # 9: two IFIs
        json.dumps(_statement(10)),                                             # 10
    ]
    data = "\n".join(lines).encode("utf-8")
    data += b'\n{"id": "caf\xe9"}\n'                                             # 11: Latin-1 byte, not UTF-8
    data += json.dumps(_statement(12)).encode() + b"\n"                        # 12
    path = tmp_path / "statements.jsonl"
    path.write_bytes(data)
    await create(engine, "bad", "xapi-file", instance_config(provider, {"paths": [str(path)]}))

    async with asgi_http(app) as http:
        outcome = await run_instance(sessions=make_sessionmaker(engine), name="bad", http=http)
    report = outcome.report
    assert (report.read, report.created, report.invalid) == (11, 4, 7)
    problems = {d["ref"]: d["reason"] for d in report.details}
    assert set(problems) == {f"statements.jsonl:{n}" for n in (2, 5, 6, 7, 8, 9, 11)}
    assert "not JSON" in problems["statements.jsonl:2"]
    assert "lacks required object" in problems["statements.jsonl:5"]
    assert "no time-zone offset" in problems["statements.jsonl:6"]
    assert problems["statements.jsonl:7"].startswith("result.score.scaled")
    assert "group actors" in problems["statements.jsonl:8"]
    assert "exactly one inverse functional identifier" in problems["statements.jsonl:9"]
    assert "not UTF-8" in problems["statements.jsonl:11"]
    assert await count_activities(engine, provider) == 4
    letters = await state.dead_letters(sessions=make_sessionmaker(engine), name="bad")
    assert sorted(l.ref for l in letters) == sorted(problems) and {l.reason_code for l in letters} == {"invalid"}


async def test_voided_statements_retract_activities_also_within_one_run(engine, app, monkeypatch, tmp_path):
    provider = await connector_provider(engine, monkeypatch)
    await linked_family(engine, provider, "kim@example.org", grant_activities=True)

    def void(n: int, target: int) -> dict:  # type: ignore[type-arg]
        return {
            "id": f"00000000-0000-4000-9000-{n:012d}", "actor": {"mbox": "mailto:teacher@example.org"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/voided", "display": {"en-US": "voided"}},
            "object": {"objectType": "StatementRef", "id": f"00000000-0000-4000-8000-{target:012d}"},
        }

    first = tmp_path / "a.jsonl"
    first.write_text("\n".join(json.dumps(_statement(n)) for n in range(1, 6)) + "\n")
    await create(engine, "voids", "xapi-file", instance_config(provider, {"paths": [str(tmp_path)], "page_size": 2}))
    sessions = make_sessionmaker(engine)
    async with asgi_http(app) as http:
        await run_instance(sessions=sessions, name="voids", http=http)
    assert await count_activities(engine, provider) == 5

    # A later file voids statement 2 (stored last run) and, before it appears, statement 7.
    second = tmp_path / "b.jsonl"
    second.write_text("\n".join(json.dumps(s) for s in [void(1, 2), void(2, 7), _statement(6), _statement(7)]) + "\n")
    async with asgi_http(app) as http:
        outcome = await run_instance(sessions=sessions, name="voids", http=http)
    assert (outcome.report.read, outcome.report.created, outcome.report.retracted) == (4, 1, 1)
    assert await count_activities(engine, provider) == 5  # 1,3,4,5,6


@pytest.mark.samples
async def test_spec_examples_are_imported_or_reported(engine, app, monkeypatch, samples_dir):
    examples = samples_dir / "xapi" / "xapi-spec-examples"
    provider = await connector_provider(engine, monkeypatch)
    for name in ("xAPI-Communication-block06.json", "xAPI-Data-block10.json"):
        actor = json.loads((examples / name).read_text())["actor"]
        await linked_family(engine, provider, f"{name[-11:-5]}@example.org", grant_activities=True, external_id=actor_id(actor))
    await create(engine, "spec", "xapi-file", instance_config(provider, {"paths": [str(examples)]}))
    async with asgi_http(app) as http:
        outcome = await run_instance(sessions=make_sessionmaker(engine), name="spec", http=http)
    r = outcome.report
    assert (r.read, r.created, r.invalid, dict(r.held), r.retracted) == (11, 2, 6, {"unknown_learner": 2}, 0)
    reasons = {d["ref"]: d["reason"] for d in r.details if d["kind"] == "invalid"}
    assert set(reasons) == {
        "xAPI-Communication-block05.json[1]", "xAPI-Data-block01.json[1]", "xAPI-Data-block05.json[1]",
        "xAPI-Data-block06.json[1]", "xAPI-Data-block11.json[1]", "xAPI-Data-block15.json[1]",
    }
    assert "group actors" in reasons["xAPI-Data-block11.json[1]"]
    assert "timestamp is missing" in reasons["xAPI-Data-block01.json[1]"]
    assert "SubStatement, not an Activity" in reasons["xAPI-Data-block06.json[1]"]
