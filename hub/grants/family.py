"""What a learner's controllers do: grant, revoke, decide access requests.

Every operation first asks ``consent.control`` whether the acting person controls the record
today (age rules), then acts through the grant service. Adds and flushes; never commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from consent import Action, get_section, parse_scope
from consent.control import ActorKind, ControlPolicy, approvals_needed, control_of, may_manage_consent
from hub.credentials.statuslist import revoke_where_badges
from hub.grants.models import AccessRequest, ConsentGrant
from hub.grants.service import grant_access, revoke_access
from hub.people.models import Learner, LearnerGuardian
from hub.records.models import SECTION_MODELS, section_clause
from hub.records.service import log_changes


class NotPermitted(PermissionError):
    """The actor does not control this learner's record (with the reason)."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a guardian (``guardian_id``) or the learner themself."""

    kind: ActorKind
    guardian_id: UUID | None = None

    @classmethod
    def guardian(cls, guardian_id: UUID) -> Actor:
        return cls(ActorKind.GUARDIAN, guardian_id)

    @classmethod
    def learner(cls) -> Actor:
        return cls(ActorKind.LEARNER)


async def _guardian_ids(session: AsyncSession, learner_id: UUID) -> list[UUID]:
    return list((await session.execute(
        select(LearnerGuardian.guardian_id).where(LearnerGuardian.learner_id == learner_id)
    )).scalars())


async def require_control(
    *, session: AsyncSession, actor: Actor, learner_id: UUID, today: datetime, policy: ControlPolicy
) -> Learner:
    learner = await session.get(Learner, learner_id)
    if learner is None:
        raise LookupError(f"no learner {learner_id}")
    decision = may_manage_consent(
        actor=actor.kind,
        is_guardian_of_learner=actor.guardian_id in await _guardian_ids(session, learner_id),
        date_of_birth=learner.date_of_birth,
        today=today.date(),
        policy=policy,
    )
    if not decision:
        raise NotPermitted(decision.reason)
    return learner


async def grant_by(
    *, session: AsyncSession, actor: Actor, learner_id: UUID, provider_id: UUID, section: str, action: Action,
    purpose: str, now: datetime, pseudonym_key: bytes, policy: ControlPolicy,
    expires_at: datetime | None = None, data_from: datetime | None = None, access_request_id: UUID | None = None,
) -> tuple[ConsentGrant, bool]:
    learner = await require_control(session=session, actor=actor, learner_id=learner_id, today=now, policy=policy)
    needed = approvals_needed(
        sensitive=get_section(section).sensitive,
        guardian_count=len(await _guardian_ids(session, learner_id)),
        controller=control_of(learner.date_of_birth, now.date(), policy).controller,
        policy=policy,
    )
    if needed > 1 and access_request_id is None:
        # A sensitive section under an all-guardians policy goes through a request that every
        # guardian approves (decide_request), never through one guardian's direct grant.
        raise NotPermitted(f"section {section!r} needs the approval of all {needed} guardians: use an access request")
    grant, created = await grant_access(
        session=session, learner_id=learner_id, provider_id=provider_id, section=section, action=action,
        purpose=purpose, granted_by=actor.guardian_id, now=now, pseudonym_key=pseudonym_key, expires_at=expires_at,
    )
    if created:
        grant.data_from = data_from
        grant.granted_by_learner = actor.kind is ActorKind.LEARNER
        grant.access_request_id = access_request_id
    return grant, created


async def revoke_by(
    *, session: AsyncSession, actor: Actor, learner_id: UUID, provider_id: UUID, now: datetime, policy: ControlPolicy,
    section: str | None = None, action: Action | None = None, delete_contributions: bool = False,
) -> tuple[int, int]:
    """Revoke; optionally delete the provider's past contributions. Returns (revoked, deleted)."""
    await require_control(session=session, actor=actor, learner_id=learner_id, today=now, policy=policy)
    revoked = await revoke_access(
        session=session, learner_id=learner_id, provider_id=provider_id, revoked_by=actor.guardian_id, now=now,
        section=section, action=action,
    )
    deleted = 0
    if delete_contributions and action in (None, Action.CONTRIBUTE):
        for name, model in SECTION_MODELS.items():
            if section is None or name == section:
                if name == "badges":
                    # Credentials the hub issued for these badges are revoked, not left verifying.
                    await revoke_where_badges(
                        session, select(model.id).where(model.learner_id == learner_id, model.provider_id == provider_id),
                        now=now, reason="badge deleted by the family",
                    )
                gone = (await session.execute(
                    delete(model).where(
                        model.learner_id == learner_id, model.provider_id == provider_id, *section_clause(name)
                    ).returning(model.id, model.source_id)
                )).all()
                await log_changes(session=session, section=name, learner_id=learner_id, provider_id=provider_id,
                                  entries=[(row.id, row.source_id) for row in gone], op="deleted", now=now)
                deleted += len(gone)
    return revoked, deleted


async def list_requests(*, session: AsyncSession, learner_id: UUID, status: str | None = None) -> list[AccessRequest]:
    query = select(AccessRequest).where(AccessRequest.learner_id == learner_id).order_by(AccessRequest.created_at.desc())
    if status is not None:
        query = query.where(AccessRequest.status == status)
    return list((await session.execute(query)).scalars())


async def decide_request(
    *, session: AsyncSession, actor: Actor, request_id: UUID, now: datetime, pseudonym_key: bytes,
    policy: ControlPolicy, approve: list[str] | None = None, deny: bool = False,
) -> AccessRequest:
    """Approve all (``approve=None``), approve some (a subset of the items), or deny a request."""
    request = await session.get(AccessRequest, request_id)
    if request is None:
        raise LookupError(f"no access request {request_id}")
    if request.status != "pending":
        raise ValueError(f"the request is already {request.status}")
    learner = await require_control(session=session, actor=actor, learner_id=request.learner_id, today=now, policy=policy)
    if deny:
        request.status, request.decided_at, request.decided_by, request.updated_at = "denied", now, actor.guardian_id, now
        return request
    chosen = list(request.items) if approve is None else approve
    unknown = sorted(set(chosen) - set(request.items))
    if unknown or not chosen:
        raise ValueError(f"approve a non-empty subset of the requested items {request.items}; not requested: {unknown}")
    guardians = await _guardian_ids(session, request.learner_id)
    controller = control_of(learner.date_of_birth, now.date(), policy).controller
    approvals = [*request.approvals, {"by": str(actor.guardian_id) if actor.guardian_id else "learner", "items": chosen}]
    request.approvals = approvals
    expires_at = now + timedelta(days=request.duration_days) if request.duration_days else None
    granted, waiting = [], []
    for item in chosen:
        section, action = parse_scope(item)
        needed = approvals_needed(sensitive=section.sensitive, guardian_count=len(guardians), controller=controller, policy=policy)
        approvers = {a["by"] for a in approvals if item in a["items"]}
        if len(approvers) < needed:
            waiting.append(item)
            continue
        grant, created = await grant_access(
            session=session, learner_id=request.learner_id, provider_id=request.provider_id, section=section.name,
            action=action, purpose=request.purpose, granted_by=actor.guardian_id, now=now,
            pseudonym_key=pseudonym_key, expires_at=expires_at,
        )
        if created:
            grant.access_request_id = request.id  # the consent receipt names the request
            grant.granted_by_learner = actor.kind is ActorKind.LEARNER
        granted.append(item)
    request.approved_items = sorted(set(request.approved_items) | set(granted))
    request.updated_at = now
    if not waiting:
        request.status = "approved" if set(request.approved_items) == set(request.items) else "partially_approved"
        request.decided_at, request.decided_by = now, actor.guardian_id
    await session.flush()
    return request
