"""``POST /xapi/statements``: an LRS-compatible push endpoint (xAPI 1.0.3 Communication §2.1.2).

A provider's LRS or app posts one statement or an array, with its OAuth bearer token (the same
token as for GraphQL, Communication §4) and ``X-Experience-API-Version`` (Communication §3.3).
Statements become activities of the learner their actor is linked to (``hub.links``), through the
same consent gate as every provider write (``ProviderAccess.authorize`` -> ``consent.decide``);
voided statements retract (Data §2.3.2).

- An invalid statement rejects the whole batch with 400 and nothing is stored, as an LRS must
  (Communication §2.1.2); the body lists every problem with its index.
- Otherwise the answer is 200 with the statement ids (Communication §2.1.2). Statements whose actor
  is not linked for this provider are *held back* (not stored, not guessed) and statements refused
  by consent are not stored; both are counted in the ``X-Kinfolio-Report`` header
  (created, unchanged, updated, retracted, held, refused by reason). The sender keeps them and may
  re-send once the family has linked and consented: ids make re-sends idempotent.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

from connectors.base import InvalidRecord, MapContext, Retract, Upsert
from connectors.xapi.statements import SYSTEM, map_statement, statement_source_id
from consent import Action
from hub.db import utcnow
from hub.grants.enforce import AccessDenied, LearnerNotFound, ProviderAccess
from hub.grants.log import LearnersErased
from hub.links.service import lookup_links
from hub.oauth.bearer import BearerError, authenticate
from hub.records import service as record_service
from schemas import records as record_schemas

router = APIRouter(prefix="/xapi", tags=["xapi"])
VERSION = "1.0.3"
_HEADERS = {"X-Experience-API-Version": VERSION}


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status, headers=_HEADERS)


@router.post("/statements")
async def post_statements(request: Request) -> JSONResponse:
    hub = request.app.state.hub
    version = request.headers.get("x-experience-api-version", "")
    if not version.startswith("1.0"):
        return _error(400, "X-Experience-API-Version 1.0.x is required (xAPI 1.0.3 Communication §3.3)")
    async with hub.sessions() as session:
        try:
            token = await authenticate(session, request.headers.get("authorization"), hub.access_tokens)
        except BearerError as error:
            return JSONResponse(error.detail,
                                status_code=error.status, headers={**_HEADERS, "WWW-Authenticate": error.challenge})
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return _error(400, "the body is not JSON")
        statements = body if isinstance(body, list) else [body]
        limit = hub.settings.max_batch_size
        if not statements or len(statements) > limit:
            return _error(400, f"post 1 to {limit} statements per request")

        context = MapContext()
        problems: list[dict[str, Any]] = []
        upserts: list[tuple[Upsert, record_schemas.ActivityCreate]] = []
        retracts: list[str] = []
        ids: list[str] = []
        for index, statement in enumerate(statements):
            try:
                ids.append(statement_source_id(statement) if isinstance(statement, dict) else "")
                for op in map_statement(statement, context):
                    if isinstance(op, Retract):
                        retracts.append(op.source_id)
                    else:
                        try:
                            upserts.append((op, record_schemas.ActivityCreate.model_validate(op.entry)))
                        except ValidationError as exc:
                            err = exc.errors(include_url=False)[0]
                            raise InvalidRecord(f"{'.'.join(map(str, err['loc']))}: {record_schemas.error_message(err)}") from None
            except InvalidRecord as exc:
                problems.append({"index": index, "reason": exc.reason})
        if problems:
            return _error(400, f"{len(problems)} invalid statement(s); nothing was stored", statements=problems[:100])

        report: Counter[str] = Counter()
        refused: Counter[str] = Counter()
        access = ProviderAccess(session=session, token=token, now=utcnow(), writes=True)
        answers = {
            a.external_id: a
            for a in await lookup_links(session=session, provider_id=token.provider_id, system=SYSTEM,
                                        external_ids=[op.external_id for op, _ in upserts], at=access.now)
        } if upserts else {}
        by_learner: dict[str, dict[str, record_schemas.ActivityCreate]] = defaultdict(dict)
        for op, entry in upserts:
            answer = answers[op.external_id]
            if answer.status == "linked" and answer.pseudonym:
                by_learner[answer.pseudonym][entry.source_id] = entry
            elif answer.status == "consent_required":
                refused["no_grant"] += 1
            else:
                report["held"] += 1
        try:
            for pseudonym, entries in by_learner.items():
                try:
                    learner_id = await access.resolve(pseudonym)
                    allowed = await access.authorize(learner_id, "activities", Action.CONTRIBUTE)
                except LearnerNotFound:
                    refused["no_grant"] += len(entries)
                    continue
                except AccessDenied as denied:
                    refused[denied.reason.value] += len(entries)
                    continue
                async with session.begin_nested():
                    result = await record_service.contribute_entries(
                        session=session, access=allowed, section="activities", learner_id=learner_id,
                        provider_id=token.provider_id, entries=list(entries.values()), now=access.now,
                    )
                report.update(created=result.created, updated=result.updated, unchanged=result.unchanged)
                access.disclosed(learner_id, "activities", Action.CONTRIBUTE, result.created + result.updated)
            if retracts:
                found = await record_service.learners_of_sources(
                    session=session, section="activities", provider_id=token.provider_id, source_ids=retracts
                )
                for learner_id, source_ids in found.items():
                    try:
                        allowed = await access.authorize(learner_id, "activities", Action.CONTRIBUTE)
                    except (LearnerNotFound, AccessDenied):
                        refused["retraction_refused"] += len(source_ids)
                        continue
                    retracted = await record_service.retract_entries(
                        session=session, access=allowed, section="activities", learner_id=learner_id,
                        provider_id=token.provider_id, source_ids=source_ids, now=access.now,
                    )
                    access.disclosed(learner_id, "activities", Action.CONTRIBUTE, retracted)
                    report["retracted"] += retracted
            await access.flush_log()  # the disclosure log commits with the data it describes
            await session.commit()
        except IntegrityError:
            await session.rollback()
            return _error(409, "a concurrent request stored some of these statements; retry")
        except LearnersErased:  # not expected: every decision here is a write, which holds its learner
            await session.rollback()
            return _error(409, "a learner of these statements was erased while the request ran; nothing was stored; "
                               "retry (their statements will be refused)")
    summary = {k: report.get(k, 0) for k in ("created", "updated", "unchanged", "retracted", "held")}
    summary["refused"] = dict(refused)
    return JSONResponse(ids, headers={**_HEADERS, "X-Kinfolio-Report": json.dumps(summary, separators=(",", ":"))})
