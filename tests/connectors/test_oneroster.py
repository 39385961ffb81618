"""OneRoster 1.1/1.2 CSV: roster -> learners + invitations (hub-internal), records via the public API."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from connectors.runtime import run_instance
from consent import Action
from hub.accounts.models import OutboxMessage
from hub.db import make_sessionmaker
from hub.grants.models import ConsentGrant
from hub.links.models import LearnerLink
from hub.people.models import Learner
from hub.people.service import create_guardian
from hub.roster.models import GuardianInvitation
from hub.roster.service import accept_invitation
from tests.connectors.helpers import SECRET_ENV, asgi_http, create, instance_config
from tests.factories import Family, get_token, gql, grant, learner_id_for, make_family, make_provider

pytestmark = pytest.mark.samples

MINIMAL = "catalyst/Test_minimal_data_set"
FULL = "catalyst/v1p2_full_dataset"
MMICHEL, ANNA, MARY, JIM = "usr-222-1234561232", "usr-222-567891", "usr-222-66778899", "usr-222-987654"


def _manifest(folder: Path, **modes: str) -> None:
    lines = (folder / "manifest.csv").read_text().splitlines()
    out = []
    for line in lines:
        key = line.split(",", 1)[0]
        entity = key.removeprefix("file.")
        out.append(f"{key},{modes.pop(entity)}" if key.startswith("file.") and entity in modes else line)
    out += [f"file.{k},{v}" for k, v in modes.items()]
    (folder / "manifest.csv").write_text("\n".join(out) + "\n")


def _sample_copy(samples_dir: Path, tmp_path: Path, which: str) -> Path:
    folder = tmp_path / "drop"
    shutil.copytree(samples_dir / "oneroster" / which, folder)
    return folder


def _add_gradebook_and_demographics(folder: Path) -> None:
    (folder / "demographics.csv").write_text(
        "sourcedId,status,dateLastModified,birthDate,sex\n"
        f"{MARY},,,2011-02-03,female\n{MMICHEL},,,2010-07-08,male\n{ANNA},,,2011-09-10,female\n"
    )
    (folder / "categories.csv").write_text("sourcedId,status,dateLastModified,title\ncat-1,,,Percent\n")
    (folder / "lineItems.csv").write_text(
        "sourcedId,status,dateLastModified,title,description,assignDate,dueDate,classSourcedId,categorySourcedId,"
        "gradingPeriodSourcedId,resultValueMin,resultValueMax\n"
        "li-1,,,Kinematics quiz,,2022-10-01,2022-10-15,cls-222-123456,cat-1,as-grp-222-23456,0,100\n"
        "li-2,,,Essay,,2022-10-01,2022-10-15,cls-222-123478,cat-1,as-grp-222-23456,,\n"
    )
    (folder / "results.csv").write_text(
        "sourcedId,status,dateLastModified,lineItemSourcedId,studentSourcedId,scoreStatus,score,scoreDate,comment\n"
        f"r-1,,,li-1,{MMICHEL},fully graded,85,2022-10-16,\n"
        f"r-2,,,li-1,{ANNA},fully graded,70,2022-10-16,\n"
        f"r-3,,,li-2,{MMICHEL},fully graded,3,2022-10-16,\n"
        f"r-4,,,li-1,{MARY},fully graded,abc,2022-10-16,\n"
    )
    _manifest(folder, demographics="bulk", categories="bulk", lineItems="bulk", results="bulk")


async def _provider(engine, monkeypatch):  # type: ignore[no-untyped-def]
    provider = await make_provider(engine, "District SIS", ["pathways:contribute", "skills:contribute"])
    monkeypatch.setenv(SECRET_ENV, provider.client_secret)
    return provider


async def _learner_of(engine, provider, sourced_id: str):  # type: ignore[no-untyped-def]
    async with make_sessionmaker(engine)() as session:
        return (await session.execute(select(LearnerLink.learner_id).where(
            LearnerLink.provider_id == provider.provider_id, LearnerLink.external_id == sourced_id))).scalar_one_or_none()


async def _count(engine, model) -> int:  # type: ignore[no-untyped-def]
    async with make_sessionmaker(engine)() as session:
        return (await session.execute(select(func.count()).select_from(model))).scalar_one()


def _refs(report, kind: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {d["ref"]: d["reason"] for d in report.details if d["kind"] == kind}


async def test_import_grants_for_some_second_run_and_delta(engine, app, monkeypatch, samples_dir, tmp_path):
    folder = _sample_copy(samples_dir, tmp_path, MINIMAL)
    _add_gradebook_and_demographics(folder)
    provider = await _provider(engine, monkeypatch)
    await create(engine, "sis", "oneroster-csv", instance_config(provider, {"path": str(folder)}))
    sessions = make_sessionmaker(engine)

    async with asgi_http(app) as http:
        first = await run_instance(sessions=sessions, name="sis", http=http)
    r = first.report
    assert first.status == "succeeded", first.error
    # Roster: the three students with a birth date become learners, linked; nothing is granted.
    assert r.roster["learners_created"] == 3 and await _count(engine, Learner) == 3
    assert await _count(engine, ConsentGrant) == 0
    # No grant yet: every record of a linked learner is refused, Jim (a teacher enrolled as a
    # student, not a roster student) is held, bad rows are invalid with their line numbers.
    assert (r.read, r.created, r.invalid) == (8, 0, 2)
    assert dict(r.refused) == {"no_grant": 4} and dict(r.held) == {"unknown_learner": 2}
    invalid = _refs(r, "invalid")
    assert "resultValueMin/resultValueMax" in invalid["results.csv:4"] and "not a number" in invalid["results.csv:5"]
    assert set(_refs(r, "held")) == {"enrollments.csv:3", "enrollments.csv:6"}

    # mmichel's family accepts the invitation path (a guardian) and consents; Anna's does not.
    mmichel = await _learner_of(engine, provider, MMICHEL)
    async with sessions() as session, session.begin():
        guardian = await create_guardian(session=session, email="parent.jones@example.org", display_name="P Jones")
    from hub.people.models import LearnerGuardian

    async with sessions() as session, session.begin():
        session.add(LearnerGuardian(learner_id=mmichel, guardian_id=guardian.id))
    family = Family(guardian_id=guardian.id, learner_id=mmichel)
    await grant(engine, family, provider, "pathways", Action.CONTRIBUTE)
    await grant(engine, family, provider, "skills", Action.CONTRIBUTE)

    async with asgi_http(app) as http:
        second = await run_instance(sessions=sessions, name="sis", http=http, full=True)
    r = second.report
    assert (r.read, r.created, r.updated, r.unchanged, r.invalid) == (8, 3, 0, 0, 2)
    assert dict(r.refused) == {"no_grant": 1}  # exactly Anna's result
    assert set(_refs(r, "refused")) == {"results.csv:3"}
    assert r.roster["learners_linked"] == 3 and "learners_created" not in r.roster

    # A second run changes nothing: incremental reads nothing, a full re-read is all unchanged.
    async with asgi_http(app) as http:
        again = await run_instance(sessions=sessions, name="sis", http=http)
        full = await run_instance(sessions=sessions, name="sis", http=http, full=True)
    assert again.report.read == 0
    assert (full.report.created, full.report.updated, full.report.unchanged) == (0, 0, 3)
    assert await _count(engine, Learner) == 3 and await _count(engine, LearnerLink) == 3

    # A delta drop: one changed score, one enrollment to be deleted, classes not repeated.
    for name in folder.iterdir():
        name.unlink()
    (folder / "manifest.csv").write_text(
        "propertyName,value\nmanifest.version,1.0\noneroster.version,1.1\nfile.results,delta\nfile.enrollments,delta\n"
        "file.users,absent\nfile.classes,absent\nfile.orgs,absent\nfile.academicSessions,absent\n"
    )
    (folder / "results.csv").write_text(
        "sourcedId,status,dateLastModified,lineItemSourcedId,studentSourcedId,scoreStatus,score,scoreDate,comment\n"
        f"r-1,active,2022-10-20T10:00:00Z,li-1,{MMICHEL},fully graded,90,2022-10-20,regraded\n"
    )
    (folder / "enrollments.csv").write_text(
        "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate\n"
        f"enr-s-222-12345-987655,active,2022-10-20T10:00:00Z,cls-222-123456,org-sch-222-456,{MMICHEL},student,,2022-09-05,\n"
        f"enr-s-222-12345-985321,tobedeleted,2022-10-20T10:00:00Z,cls-222-123478,org-sch-222-456,{MMICHEL},student,,,\n"
    )
    async with asgi_http(app) as http:
        delta = await run_instance(sessions=sessions, name="sis", http=http)
    r = delta.report
    assert (r.read, r.created, r.updated, r.unchanged, r.invalid, r.retracted) == (3, 0, 2, 0, 0, 1)
    from hub.records.models import SkillAssessment

    async with sessions() as session:
        levels = (await session.execute(select(SkillAssessment))).scalars().all()
    assert len(levels) == 1


async def test_v12_sample_roster_invitations_and_imperfections(engine, app, monkeypatch, samples_dir, tmp_path):
    folder = _sample_copy(samples_dir, tmp_path, FULL)
    provider = await _provider(engine, monkeypatch)
    await create(engine, "sis12", "oneroster-csv", instance_config(provider, {"path": str(folder)}))
    sessions = make_sessionmaker(engine)
    async with asgi_http(app) as http:
        first = await run_instance(sessions=sessions, name="sis12", http=http)
    r = first.report
    assert first.status == "succeeded", first.error
    # No demographics.csv: no learner is created; each student is reported with its line.
    assert r.roster == {"learners_no_birth_date": 3}
    assert set(_refs(r, "held")) >= {"users.csv:3", "users.csv:6", "users.csv:7"}
    warnings = _refs(r, "warning")
    assert "dateLastModified '1/05/2023'" in warnings["users.csv:2"] and "roles.csv:1" in warnings
    assert await _count(engine, Learner) == 0 and await _count(engine, OutboxMessage) == 0

    # With birth dates: learners are created and the guardian agent (John Doe holds a secondary
    # guardian role in roles.csv and has an e-mail) is invited for Mary and mmichel, once.
    (folder / "demographics.csv").write_text(
        f"sourcedId,status,dateLastModified,birthDate\n{MARY},active,2023-05-01,2011-02-03\n"
        f"{MMICHEL},active,2023-05-01,2010-07-08\n{ANNA},active,2023-05-01,2011-09-10\n"
    )
    _manifest(folder, demographics="bulk")
    async with asgi_http(app) as http:
        second = await run_instance(sessions=sessions, name="sis12", http=http)
        third = await run_instance(sessions=sessions, name="sis12", http=http, full=True)
    assert second.report.roster == {"learners_created": 3, "invitations": 2}
    assert third.report.roster == {"learners_linked": 3}
    async with sessions() as session:
        mail = (await session.execute(select(OutboxMessage))).scalars().all()
    assert {m.to_address for m in mail} == {"john.doe@myschool.com"} and len(mail) == 2
    assert await _count(engine, GuardianInvitation) == 2 and await _count(engine, ConsentGrant) == 0

    # Accepting makes a guardian (only of that learner), still without any grant.
    token = mail[0].body.split("/family/invitations/")[1].split()[0]
    async with sessions() as session, session.begin():
        guardian = await create_guardian(session=session, email="John.Doe@myschool.com", display_name="John")
        learner = await accept_invitation(session=session, token=token, guardian_id=guardian.id, now=datetime.now(UTC))
    assert learner is not None and await _count(engine, ConsentGrant) == 0


async def test_existing_learner_is_matched_not_duplicated(engine, app, monkeypatch, samples_dir, tmp_path):
    folder = _sample_copy(samples_dir, tmp_path, FULL)
    (folder / "demographics.csv").write_text(f"sourcedId,birthDate\n{MARY},2011-02-03\n")
    _manifest(folder, demographics="bulk")
    family = await make_family(engine, email="john.doe@myschool.com", dob=datetime(2011, 2, 3).date())
    async with make_sessionmaker(engine)() as session, session.begin():
        learner = await session.get(Learner, family.learner_id)
        learner.given_name, learner.family_name = "MARY", " jones "
    provider = await _provider(engine, monkeypatch)
    await create(engine, "sis-m", "oneroster-csv", instance_config(provider, {"path": str(folder)}))
    async with asgi_http(app) as http:
        outcome = await run_instance(sessions=make_sessionmaker(engine), name="sis-m", http=http)
    assert outcome.report.roster["learners_matched"] == 1
    assert await _learner_of(engine, provider, MARY) == family.learner_id
    assert await _count(engine, Learner) == 1  # matched, not duplicated; no invitation to a guardian already
    assert await _count(engine, GuardianInvitation) == 0


async def test_bad_input_reported_with_line_numbers(engine, app, monkeypatch, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "manifest.csv").write_text("propertyName,value\noneroster.version,1.1\nfile.users,bulk\nfile.orgs,bulk\n"
                                         "file.classes,bulk\nfile.enrollments,bulk\nfile.courses,bulk\nfile.demographics,bulk\n")
    (folder / "users.csv").write_bytes(
        "\ufeffsourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,givenName,familyName,email,agentSourcedIds\n"
        "u-1,,,true,o-1,Student,ana,Ana,Núñez,,\n"
        ",,,true,o-1,student,nobody,No,Body,,\n"
        'u-2,,,true,o-1,student,"bad"quote,Bo,Berg,,\n'
        "u-3,,,true,o-1,student,ok,Cy,Cole,,,,,extra,fields\n"
        "u-4,,,true,o-1,student,dee,Dee,Dunn,,\n".encode()
    )
    (folder / "orgs.csv").write_bytes("sourcedId,status,dateLastModified,name,type\no-1,,,École Fénelon,school\n".encode("latin-1"))
    (folder / "classes.csv").write_text("sourcedId,status,dateLastModified,courseSourcedId,schoolSourcedId,termSourcedIds\nc-1,,,k-1,o-1,t-1\n")
    (folder / "courses.csv").write_text("sourcedId,status,dateLastModified,title\nk-1,,,Maths\n")
    (folder / "demographics.csv").write_text("sourcedId,birthDate\nu-1,2012-01-02\nu-4,02/03/2012\n")
    (folder / "enrollments.csv").write_text(
        "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,beginDate\n"
        "e-1,,,c-1,o-1,u-1,student,2022-09-01\ne-2,,,c-9,o-1,u-1,student,2022-09-01\ne-3,,,c-1,o-1,u-1,student,\n"
    )
    provider = await _provider(engine, monkeypatch)
    await create(engine, "bad", "oneroster-csv", instance_config(provider, {"path": str(folder)}))
    async with asgi_http(app) as http:
        outcome = await run_instance(sessions=make_sessionmaker(engine), name="bad", http=http)
    r = outcome.report
    assert outcome.status == "succeeded", outcome.error
    invalid, warnings = _refs(r, "invalid"), _refs(r, "warning")
    assert "sourcedId is empty" in invalid["users.csv:3"]
    assert "malformed CSV" in invalid["users.csv:4"]
    assert "fields, the header has" in invalid["users.csv:5"]
    assert "missing required column(s) title" in invalid["classes.csv:1"]
    assert "birthDate '02/03/2012'" in invalid["demographics.csv:3"]
    assert "Latin-1" in warnings["orgs.csv:2"]
    # The rest is imported: Ana (BOM-prefixed header, capitalised role, accented name) is a learner;
    # her enrollments need a class the file refused: reported per row, nothing guessed.
    assert r.roster["learners_created"] == 1
    async with make_sessionmaker(engine)() as session:
        names = (await session.execute(select(Learner.family_name))).scalars().all()
    assert names == ["Núñez"]
    assert {"enrollments.csv:2", "enrollments.csv:3", "enrollments.csv:4"} <= set(invalid)


RECORD = """
query($id: ID!) { learner(id: $id) {
  pathways(first: 50) { nodes { sourceId } }
  skills(first: 50) { nodes { sourceId proficiency } } } }"""


GONE_ENROLLMENT, GONE_RESULT = "enr-s-222-12345-985321", "r-1"  # both mmichel's
ENROLLMENT_ID, RESULT_ID = f"oneroster:enrollment:{GONE_ENROLLMENT}", f"oneroster:result:{GONE_RESULT}"


@dataclass
class Setup:
    folder: Path
    provider: Any
    families: dict[str, Family]
    token: str
    client: Any

    async def record(self, sid: str) -> tuple[set[str], set[str]]:
        """What the provider reads back over GraphQL: (pathways sourceIds, skills sourceIds)."""
        body = (await gql(self.client, self.token, RECORD, {"id": learner_id_for(self.families[sid], self.provider)})).json()
        assert "errors" not in body, body
        learner = body["data"]["learner"]
        return ({n["sourceId"] for n in learner["pathways"]["nodes"]}, {n["sourceId"] for n in learner["skills"]["nodes"]})

    async def records(self) -> dict[str, tuple[set[str], set[str]]]:
        return {sid: await self.record(sid) for sid in self.families}


async def _imported(engine, app, monkeypatch, samples_dir, tmp_path, client, **source: Any) -> Setup:  # type: ignore[no-untyped-def]
    """The minimal sample set plus a gradebook, imported in bulk with mmichel's and Anna's consent:
    mmichel has two enrollments and result r-1, Anna result r-2 (4 entries)."""
    folder = _sample_copy(samples_dir, tmp_path, MINIMAL)
    _add_gradebook_and_demographics(folder)
    provider = await make_provider(engine, "District SIS", ["pathways:contribute", "skills:contribute",
                                                            "pathways:read", "skills:read"])
    monkeypatch.setenv(SECRET_ENV, provider.client_secret)
    await create(engine, "sis", "oneroster-csv", instance_config(provider, {"path": str(folder), **source}))
    sessions = make_sessionmaker(engine)
    async with asgi_http(app) as http:
        await run_instance(sessions=sessions, name="sis", http=http)  # roster: learners and links
    families = {}
    for sid in (MMICHEL, ANNA):
        family = Family(guardian_id=None, learner_id=await _learner_of(engine, provider, sid))  # type: ignore[arg-type]
        for section in ("pathways", "skills"):
            for action in Action:
                await grant(engine, family, provider, section, action)
        families[sid] = family
    async with asgi_http(app) as http:
        bulk = await run_instance(sessions=sessions, name="sis", http=http, full=True)
    assert (bulk.report.created, bulk.report.retracted, dict(bulk.report.refused)) == (4, 0, {}), bulk.report.details
    setup = Setup(folder, provider, families, await get_token(client, provider), client)
    assert ENROLLMENT_ID in (await setup.record(MMICHEL))[0] and RESULT_ID in (await setup.record(MMICHEL))[1]
    return setup


async def test_delta_tobedeleted_retracts_enrollment_and_result(engine, app, monkeypatch, samples_dir, tmp_path, client):
    setup = await _imported(engine, app, monkeypatch, samples_dir, tmp_path, client)
    folder, sessions = setup.folder, make_sessionmaker(engine)
    before = await setup.records()
    gone_enrollment, gone_result = GONE_ENROLLMENT, GONE_RESULT

    # A delta drop: one enrollment and one result of mmichel tobedeleted, plus a row for an
    # entry that was never stored (unchanged, not an error).
    for name in folder.iterdir():
        name.unlink()
    (folder / "manifest.csv").write_text(
        "propertyName,value\nmanifest.version,1.0\noneroster.version,1.1\nfile.results,delta\nfile.enrollments,delta\n"
    )
    (folder / "results.csv").write_text(
        "sourcedId,status,dateLastModified,lineItemSourcedId,studentSourcedId,scoreStatus,score,scoreDate,comment\n"
        f"{gone_result},tobedeleted,2022-10-20T10:00:00Z,li-1,{MMICHEL},fully graded,85,2022-10-16,\n"
        f"r-never,tobedeleted,2022-10-20T10:00:00Z,li-1,{ANNA},,,,\n"
    )
    (folder / "enrollments.csv").write_text(
        "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate\n"
        f"{gone_enrollment},tobedeleted,2022-10-20T10:00:00Z,cls-222-123478,org-sch-222-456,{MMICHEL},student,,,\n"
    )
    async with asgi_http(app) as http:
        delta = await run_instance(sessions=sessions, name="sis", http=http)
        again = await run_instance(sessions=sessions, name="sis", http=http, full=True)
    r = delta.report
    assert delta.status == "succeeded", delta.error
    assert (r.read, r.created, r.updated, r.retracted, r.unchanged, r.invalid) == (3, 0, 0, 2, 1, 0), r.details
    after = await setup.records()
    assert after[MMICHEL] == (before[MMICHEL][0] - {f"oneroster:enrollment:{gone_enrollment}"},
                              before[MMICHEL][1] - {f"oneroster:result:{gone_result}"})
    assert after[ANNA] == before[ANNA]  # the rest untouched
    # The second run of the same delta changes nothing.
    a = again.report
    assert (a.read, a.created, a.updated, a.retracted, a.unchanged, a.invalid) == (3, 0, 0, 0, 3, 0), a.details
    assert await setup.records() == after
