"""OneRoster bulk files are the complete set of their entity: what a new bulk drop leaves out is withdrawn.

1.1 CSV §2.1.1 / 1.2 CSV §3.1.2. Only bulk files withdraw, only their own entity, only records
this instance's drops listed, only once the whole drop was committed, and never more than
``max_withdrawal_fraction`` of the instance's live records unless the operator allows it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from connectors.runtime import Sync, run_instance
from consent import Action
from hub.db import make_sessionmaker
from hub.roster.models import OneRosterRecord
from tests.connectors.helpers import asgi_http
from tests.connectors.test_oneroster import (
    ANNA, ENROLLMENT_ID, GONE_ENROLLMENT, GONE_RESULT, JIM, MINIMAL, MMICHEL, RESULT_ID, _add_gradebook_and_demographics,
    _imported, _manifest, _sample_copy,
)
from tests.connectors.test_cli_schedule_lease import kinfolio  # noqa: F401  (fixture)
from tests.factories import grant, revoke

pytestmark = pytest.mark.samples

def _drop_rows(path: Path, *sourced_ids: str) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join(line for line in lines if line.split(",", 1)[0] not in sourced_ids) + "\n")


def _withdrawn(report) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {d["reason"].rsplit(" ", 1)[-1]: d["ref"] for d in report.details if d["kind"] == "withdrawn"}


async def _run(engine, app, **kwargs: Any):  # type: ignore[no-untyped-def]
    async with asgi_http(app) as http:
        return await run_instance(sessions=make_sessionmaker(engine), name="sis", http=http, **kwargs)


async def test_bulk_drop_withdraws_exactly_what_it_leaves_out(engine, app, monkeypatch, samples_dir, tmp_path, client):
    s = await _imported(engine, app, monkeypatch, samples_dir, tmp_path, client)
    before = await s.records()
    _drop_rows(s.folder / "enrollments.csv", GONE_ENROLLMENT)
    _drop_rows(s.folder / "results.csv", GONE_RESULT)

    second = await _run(engine, app)
    r = second.report
    assert second.status == "succeeded", second.error
    assert (r.created, r.updated, r.retracted, dict(r.held)) == (0, 0, 2, {"unknown_learner": 2}), r.details
    assert _withdrawn(r) == {GONE_ENROLLMENT: "enrollments.csv", GONE_RESULT: "results.csv"}
    after = await s.records()
    assert after[MMICHEL] == (before[MMICHEL][0] - {ENROLLMENT_ID}, before[MMICHEL][1] - {RESULT_ID})
    assert after[ANNA] == before[ANNA]  # the rest untouched
    async with make_sessionmaker(engine)() as session:
        marked = (await session.execute(select(OneRosterRecord.sourced_id).where(
            OneRosterRecord.withdrawn_at.is_not(None)))).scalars().all()
    assert sorted(marked) == [GONE_ENROLLMENT, GONE_RESULT]

    # A third run of the same drop (resumed from its cursor, or a full re-read) changes nothing,
    # and writes no stamps: every listed record already carries this drop's digest.
    table = OneRosterRecord.__table__.name
    stamp_updates: list[str] = []

    def note(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith(f"UPDATE {table.upper()}"):
            stamp_updates.append(statement)

    event.listen(engine.sync_engine, "after_cursor_execute", note)
    try:
        third, full = await _run(engine, app), await _run(engine, app, full=True)
    finally:
        event.remove(engine.sync_engine, "after_cursor_execute", note)
    assert stamp_updates == []
    assert (third.report.read, third.report.retracted, _withdrawn(third.report)) == (0, 0, {})
    assert (full.report.created, full.report.updated, full.report.retracted, _withdrawn(full.report)) == (0, 0, 0, {})
    assert await s.records() == after

    # The record back in a later bulk drop is restored (re-sent, live again for the next drops).
    (s.folder / "results.csv").write_text((s.folder / "results.csv").read_text()
                                           + f"{GONE_RESULT},,,li-1,{MMICHEL},fully graded,85,2022-10-16,\n")
    back = await _run(engine, app)
    assert (back.report.created + back.report.updated, back.report.retracted) == (1, 0), back.report.as_dict()
    assert RESULT_ID in (await s.record(MMICHEL))[1]


async def test_a_withdrawal_consent_refuses_stays_owed_and_is_retried(engine, app, monkeypatch, samples_dir, tmp_path, client):
    s = await _imported(engine, app, monkeypatch, samples_dir, tmp_path, client)
    await revoke(engine, s.families[MMICHEL], s.provider, "pathways")
    _drop_rows(s.folder / "enrollments.csv", GONE_ENROLLMENT)
    refused = await _run(engine, app)
    r = refused.report
    assert refused.status == "succeeded", refused.error
    assert r.refused["retraction_refused"] >= 1 and _withdrawn(r) == {}, r.details
    assert any(d["kind"] == "withdrawal refused" and GONE_ENROLLMENT in d["reason"] for d in r.details), r.details
    async with make_sessionmaker(engine)() as session:
        marked = (await session.execute(select(OneRosterRecord.sourced_id).where(
            OneRosterRecord.withdrawn_at.is_not(None)))).scalars().all()
    assert marked == []  # still owed

    for action in Action:  # consent back: the next run withdraws it
        await grant(engine, s.families[MMICHEL], s.provider, "pathways", action)
    retried = await _run(engine, app, full=True)
    assert _withdrawn(retried.report) == {GONE_ENROLLMENT: "enrollments.csv"}, retried.report.details
    assert ENROLLMENT_ID not in (await s.record(MMICHEL))[0]


async def test_bulk_enrollments_never_touch_results_and_delta_never_withdraws(
        engine, app, monkeypatch, samples_dir, tmp_path, client):
    s = await _imported(engine, app, monkeypatch, samples_dir, tmp_path, client)
    before = await s.records()
    # Enrollments in bulk without one enrollment; results as a delta with r-1 only (r-2 left out).
    _drop_rows(s.folder / "enrollments.csv", GONE_ENROLLMENT)
    _drop_rows(s.folder / "results.csv", "r-2", "r-3", "r-4")
    _manifest(s.folder, results="delta")
    outcome = await _run(engine, app)
    r = outcome.report
    assert outcome.status == "succeeded", outcome.error
    assert (r.retracted, _withdrawn(r)) == (1, {GONE_ENROLLMENT: "enrollments.csv"}), r.details
    after = await s.records()
    assert after[MMICHEL] == (before[MMICHEL][0] - {ENROLLMENT_ID}, before[MMICHEL][1])
    assert after[ANNA] == before[ANNA]

    # Results absent from the drop altogether (file.results=absent): untouched as well.
    (s.folder / "results.csv").unlink()
    _manifest(s.folder, results="absent")
    again = await _run(engine, app)
    assert (again.report.retracted, _withdrawn(again.report)) == (0, {})
    assert await s.records() == after


async def test_refused_file_or_failed_run_withdraws_nothing(engine, app, monkeypatch, samples_dir, tmp_path, client):
    s = await _imported(engine, app, monkeypatch, samples_dir, tmp_path, client, page_size=2)
    before = await s.records()

    # A bulk results.csv missing its required score column, and an enrollments.csv whose one row
    # cannot be read at all: neither file is known to be complete, nothing is withdrawn.
    (s.folder / "results.csv").write_text(
        "sourcedId,status,dateLastModified,lineItemSourcedId,studentSourcedId\nr-2,,,li-1," + ANNA + "\n")
    enrollments = (s.folder / "enrollments.csv").read_text().splitlines()
    (s.folder / "enrollments.csv").write_text("\n".join(enrollments[:2] + ['"unterminated,"quote'] + enrollments[3:5]) + "\n")
    refused = await _run(engine, app)
    r = refused.report
    assert refused.status == "succeeded", refused.error
    assert (r.retracted, _withdrawn(r)) == (0, {}), r.details
    assert r.held["withdrawal_incomplete_file"] == 3 + 4  # not listed: 3 enrollments, every result
    held = {d["ref"]: d["reason"] for d in r.details if d["kind"] == "held" and d["ref"].endswith(".csv")}
    assert "was refused" in held["results.csv"] and "sourcedId could not be read" in held["enrollments.csv"]
    assert await s.records() == before

    # A drop that leaves out one enrollment and one result, and a run that fails after its first
    # committed page: nothing is withdrawn. The next run resumes from the cursor and withdraws.
    _sample_copy_again(samples_dir, s.folder)
    _drop_rows(s.folder / "enrollments.csv", GONE_ENROLLMENT)
    _drop_rows(s.folder / "results.csv", GONE_RESULT)
    real, calls = Sync.process, []

    async def failing(self, records):  # type: ignore[no-untyped-def]
        calls.append(len(records))
        if len(calls) == 2:
            raise RuntimeError("injected failure")
        return await real(self, records)

    monkeypatch.setattr(Sync, "process", failing)
    with pytest.raises(RuntimeError, match="injected failure"):
        await _run(engine, app)
    assert await s.records() == before
    monkeypatch.setattr(Sync, "process", real)
    resumed = await _run(engine, app)
    r = resumed.report
    assert resumed.status == "succeeded", resumed.error
    assert calls == [2, 2] and r.read == 6 - 2  # 6 records in pages of 2: resumed after the committed one
    assert (r.retracted, set(_withdrawn(r))) == (2, {GONE_ENROLLMENT, GONE_RESULT}), r.details
    after = await s.records()
    assert after[MMICHEL] == (before[MMICHEL][0] - {ENROLLMENT_ID}, before[MMICHEL][1] - {RESULT_ID})
    assert after[ANNA] == before[ANNA]


def _sample_copy_again(samples_dir: Path, folder: Path) -> None:
    """Put the sample set and the gradebook back in ``folder`` (as a fresh drop)."""
    for name in folder.iterdir():
        name.unlink()
    folder.rmdir()
    _sample_copy(samples_dir, folder.parent, MINIMAL)
    _add_gradebook_and_demographics(folder)


async def test_safety_valve_refuses_a_mass_withdrawal_until_allowed(engine, app, monkeypatch, samples_dir, tmp_path, client):
    s = await _imported(engine, app, monkeypatch, samples_dir, tmp_path, client)
    before = await s.records()
    # A truncated export: three of the four student enrollments are missing (75 % > 50 %).
    _drop_rows(s.folder / "enrollments.csv", GONE_ENROLLMENT, "enr-s-222-12345-987655", "enr-s-222-12345-987532")
    refused = await _run(engine, app)
    r = refused.report
    assert refused.status == "succeeded", refused.error
    assert (r.retracted, _withdrawn(r), r.held["mass_withdrawal"]) == (0, {}, 3), r.details
    reason = next(d["reason"] for d in r.details if d["ref"] == "enrollments.csv")
    # Jim's enrollment was never stored (unknown learner): the valve counts stored entries only.
    assert "leaves out 2 of this instance's 2 stored enrollments (100%" in reason and "--allow-mass-withdrawal" in reason
    assert await s.records() == before

    # The operator confirms the export is complete: the same drop, resumed, now withdraws.
    allowed = await _run(engine, app, allow_mass_withdrawal=True)
    r = allowed.report
    assert r.read == 0 and "mass_withdrawal" not in r.held
    assert set(_withdrawn(r)) == {GONE_ENROLLMENT, "enr-s-222-12345-987655", "enr-s-222-12345-987532"}
    assert r.retracted == 2 and r.unchanged == 1  # Jim's enrollment was never stored (unknown learner)
    assert (await s.record(MMICHEL))[0] == set() and await s.record(ANNA) == before[ANNA]


async def test_records_that_never_became_entries_do_not_dilute_the_valve(engine, app, monkeypatch, samples_dir, tmp_path, client):
    """Six more enrollments of Jim (unknown learner: held, never stored) are listed live; a drop that
    then leaves out both of mmichel's stored enrollments is 2 of 10 listed (20 %) but 2 of 2 stored."""
    s = await _imported(engine, app, monkeypatch, samples_dir, tmp_path, client)
    enrollments = s.folder / "enrollments.csv"
    enrollments.write_text(enrollments.read_text() + "".join(
        f"enr-s-extra-{n},,,cls-222-123456,org-sch-222-456,{JIM},student,,,\n" for n in range(6)))
    listed = await _run(engine, app)
    assert listed.status == "succeeded" and listed.report.held["unknown_learner"] >= 6, listed.report.details
    before = await s.records()
    _drop_rows(enrollments, GONE_ENROLLMENT, "enr-s-222-12345-987655")
    truncated = await _run(engine, app)
    r = truncated.report
    assert (r.retracted, _withdrawn(r), r.held["mass_withdrawal"]) == (0, {}, 2), r.details
    reason = next(d["reason"] for d in r.details if d["ref"] == "enrollments.csv")
    assert "leaves out 2 of this instance's 2 stored enrollments (100%" in reason
    assert await s.records() == before


async def test_config_option_lifts_the_valve(engine, app, monkeypatch, samples_dir, tmp_path, client):
    s = await _imported(engine, app, monkeypatch, samples_dir, tmp_path, client, allow_mass_withdrawal=True)
    (s.folder / "results.csv").write_text(
        "sourcedId,status,dateLastModified,lineItemSourcedId,studentSourcedId,scoreStatus,score,scoreDate,comment\n")
    outcome = await _run(engine, app)
    assert (outcome.report.retracted, set(_withdrawn(outcome.report))) == (2, {"r-1", "r-2", "r-3", "r-4"})
    assert (await s.record(MMICHEL))[1] == set() and (await s.record(ANNA))[1] == set()


def test_sync_run_passes_the_operator_override(kinfolio, monkeypatch):  # type: ignore[no-untyped-def]
    import json

    from connectors import runtime
    from connectors.report import RunReport

    config = {"hub": {"url": "https://hub.example.org", "client_id": "c1", "client_secret_env": "X"},
              "source": {"path": "/"}}
    kinfolio("sync", "add", "sis", "--kind", "oneroster-csv", "--config", json.dumps(config))
    seen = []

    async def fake_run(**kwargs: Any) -> runtime.RunOutcome:
        seen.append(kwargs.get("allow_mass_withdrawal", False))
        return runtime.RunOutcome(run_id=1, report=RunReport(), status="succeeded")

    monkeypatch.setattr(runtime, "run_instance", fake_run)
    kinfolio("sync", "run", "sis", "--no-progress", "--json")
    kinfolio("sync", "run", "sis", "--no-progress", "--json", "--allow-mass-withdrawal")
    assert seen == [False, True]
