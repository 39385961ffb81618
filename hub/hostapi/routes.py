"""The Host API routes under ``/ims/ob/v3p0`` (Open Badges 3.0 §6) and ``/ims/clr/v2p0`` (CLR 2.0 §6).

| operation | scope (OB / CLR prefix) | Kinfolio consent |
|---|---|---|
| ``GET /discovery`` | none (unprotected, §6.3.1) | none |
| ``GET /credentials`` | ``credential.readonly`` | ``badges`` read |
| ``POST /credentials`` | ``credential.upsert`` | ``badges`` contribute |
| ``GET /profile`` | ``profile.readonly`` | ``profile`` read |
| ``PUT /profile`` | ``profile.update`` | ``profile`` contribute |

Each protected call: bearer token (RFC 6750, RFC 9068, token row not revoked) from the
authorization-code flow, hence bound to one learner (``TokenContext.learner_id``); the token's
1EdTech scopes of *this* binding are presented as section scopes (``consent.sections.ims_equivalents``) to
``ProviderAccess.authorize`` — the one consent gate, which records the disclosure event — so a
missing scope, a revoked or expired grant refuses the call exactly as on GraphQL. Errors are
``Imsx_StatusInfo`` bodies (OB 3.0 §6.2 / Appendix "Imsx_StatusInfo") with the HTTP status of the
spec's response tables. The disclosure log is chained (``flush_log``) before the one commit.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from consent import Action, DenyReason
from consent.sections import CLR_SCOPE_PREFIX, OB_SCOPE_PREFIX, ims_equivalents, scope_for
from hub.credentials import vcjwt
from hub.credentials.importer import ImportRefused, import_credential
from hub.credentials.routes import credential_kit
from hub.credentials.service import ClrView, CredentialsNotConfigured, clr_view_id
from hub.credentials.verify import load_input
from hub.db import utcnow
from hub.grants.enforce import AccessDenied, LearnerNotFound, ProviderAccess
from hub.grants.log import LearnersErased
from hub.hostapi import service
from hub.hostapi.discovery import service_description
from hub.oauth.bearer import BearerError, TokenContext, authenticate
from hub.oauth.service import pairwise_of
from hub.records import service as record_service
from schemas.records import error_message

PREFIXES = {"ob": ("/ims/ob/v3p0", OB_SCOPE_PREFIX), "clr": ("/ims/clr/v2p0", CLR_SCOPE_PREFIX)}
# The fresh ClrCredential of getCredentials also carries these sections when the token holds
# their Kinfolio read scope (the 1EdTech scopes name credentials and profile only) and the
# family's grants allow it, decided exactly as on GraphQL.
CLR_RECORD_SECTIONS = ("skills", "activities")
MAX_BODY_BYTES = 2_000_000
# The codeMinor field's name: "the identity of the system that has produced the code minor status
# code report" (Imsx_CodeMinorField).
TARGET = "TargetEndSystem"


class HostError(Exception):
    """An error response: HTTP status, Imsx codeMinor and a description."""

    def __init__(self, status: int, minor: str, description: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.status, self.minor, self.description, self.headers = status, minor, description, headers or {}


def status_info(status: int, minor: str, description: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An ``Imsx_StatusInfo`` body (codeMajor ``failure``, severity ``error``)."""
    body = {
        "imsx_codeMajor": "failure",
        "imsx_severity": "error",
        "imsx_description": description,
        "imsx_codeMinor": {"imsx_codeMinorField": [{"imsx_codeMinorFieldName": TARGET,
                                                     "imsx_codeMinorFieldValue": minor}]},
    }
    return JSONResponse(body, status_code=status, headers=headers)


def _denied(exc: AccessDenied) -> HostError:
    headers = {}
    if exc.reason is DenyReason.SCOPE_MISSING:
        # RFC 6750 §3.1: the token lacks the scope this operation needs.
        headers["WWW-Authenticate"] = 'Bearer realm="kinfolio", error="insufficient_scope"'
        return HostError(403, "forbidden", f"the access token does not carry the scope to {exc.action.value} "
                                           f"{exc.section}", headers)
    return HostError(403, "forbidden", f"the family has not consented to {exc.action.value} {exc.section} "
                                       f"({exc.reason.value})")


Handler = Callable[[AsyncSession, ProviderAccess, UUID, TokenContext], Awaitable[Response]]


async def _protected(request: Request, binding: str, handler: Handler) -> Response:
    """Authenticate, bind to the token's learner, run ``handler``, chain the log, commit."""
    hub = request.app.state.hub
    async with hub.sessions() as session:
        try:
            token = await authenticate(session, request.headers.get("authorization"), hub.access_tokens)
        except BearerError as error:
            minor = "forbidden" if error.status == 403 else "unauthorizedrequest"
            return status_info(error.status, minor, str(error), {"WWW-Authenticate": error.challenge})
        if token.learner_id is None:
            # The Host API is per user (OB 3.0 §6: "the authenticated user"): only authorization-code
            # tokens, which the family bound to one learner, can use it.
            return status_info(403, "forbidden", "this API needs a token from the authorization-code flow "
                                                 "(bound to one learner)")
        scopes = ims_equivalents(token.scopes, PREFIXES[binding][1])
        if binding == "clr":
            scopes |= token.scopes & {scope_for(s, Action.READ) for s in CLR_RECORD_SECTIONS}
        scoped = replace(token, scopes=scopes)
        access = ProviderAccess(session=session, token=scoped, now=utcnow(), writes=request.method != "GET")
        try:
            response = await handler(session, access, token.learner_id, token)
        except LearnerNotFound:
            # No live grant at all (e.g. the family revoked everything): nothing to disclose or log.
            await session.rollback()
            return status_info(403, "forbidden", "the family has not consented to share this record (no live grant)")
        except AccessDenied as exc:
            # The refusal itself is a logged decision: keep its event, drop anything else.
            await session.rollback()
            error = _denied(exc)
            response = status_info(error.status, error.minor, error.description, error.headers)
        except HostError as error:
            await session.rollback()  # decisions taken before the bad input stay logged
            response = status_info(error.status, error.minor, error.description, error.headers)
        except IntegrityError:
            await session.rollback()
            return status_info(409, "unknown", "a concurrent request stored the same credential; retry")
        try:
            await access.flush_log()  # the disclosure log commits with the data it describes
        except LearnersErased:
            # Erased while this ran: the answer cannot be logged, so it is not given.
            await session.rollback()
            return status_info(403, "forbidden", "the learner's record was erased while this request ran")
        await session.commit()
        return response


def _int_param(request: Request, name: str, default: int, minimum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HostError(400, "invalid_query_parameter", f"{name} must be an integer") from None
    if value < minimum or value > 10**9:
        raise HostError(400, "invalid_query_parameter", f"{name} must be at least {minimum}")
    return value


def _since(request: Request) -> datetime | None:
    raw = request.query_params.get("since")
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise HostError(400, "invalid_query_parameter", "since must be an ISO 8601 date-time") from None
    if value.tzinfo is None:
        raise HostError(400, "invalid_query_parameter", "since needs a UTC offset (e.g. 2026-01-01T00:00:00Z)")
    return value


def _links(base: str, total: int, limit: int, offset: int, since: str | None) -> str:
    """RFC 8288 ``Link`` header: next, last, first, prev (OB 3.0 §6.2.1.3 "Pagination")."""
    def url(at: int) -> str:
        query = {"limit": limit, "offset": at, **({"since": since} if since else {})}
        return f"<{base}?{urlencode(query)}>"

    last = max(0, (total - 1) // limit * limit)
    links = []
    if offset + limit < total:
        links.append(f'{url(offset + limit)}; rel="next"')
    links.append(f'{url(last)}; rel="last"')
    links.append(f'{url(0)}; rel="first"')
    if offset > 0:
        links.append(f'{url(max(0, offset - limit))}; rel="prev"')
    return ", ".join(links)


def _credential_types(data: dict[str, Any] | str) -> list[str]:
    if isinstance(data, str):
        try:
            _, payload = vcjwt.unverified_parts(data)
        except vcjwt.JwtError as exc:
            raise HostError(400, "invalid_data", str(exc)) from None
        data = payload.get("vc") if isinstance(payload.get("vc"), dict) else payload
    value = data.get("type") if isinstance(data, dict) else None
    return [value] if isinstance(value, str) else [t for t in value if isinstance(t, str)] if isinstance(value, list) else []


def make_router(binding: str) -> APIRouter:
    prefix, _ = PREFIXES[binding]
    router = APIRouter(prefix=prefix, tags=["1edtech"])
    accepted_kinds = service.HELD_KINDS[binding]  # type: ignore[index]

    @router.get("/discovery")
    async def discovery(request: Request) -> JSONResponse:
        settings = request.app.state.hub.settings
        base = settings.issuer.rstrip("/")
        return JSONResponse(service_description(binding, settings.issuer, f"{base}/privacy"),
                            headers={"Cache-Control": "public, max-age=3600"})

    @router.get("/credentials")
    async def get_credentials(request: Request) -> Response:
        hub = request.app.state.hub

        async def handler(session: AsyncSession, access: ProviderAccess, learner_id: UUID, token: TokenContext) -> Response:
            limit = min(_int_param(request, "limit", hub.settings.max_page_size, 1), hub.settings.max_page_size)
            offset = _int_param(request, "offset", 0, 0)
            since = _since(request)
            allowed = await access.authorize(learner_id, "badges", Action.READ)
            kit = _kit(request)
            subject_id = await _subject(session, token, learner_id)
            view = await _record_view(access, kit, learner_id, token, subject_id, allowed) if binding == "clr" else None
            page = await service.list_credentials(
                session=session, kit=kit, binding=binding, access=allowed, learner_id=learner_id,  # type: ignore[arg-type]
                provider_id=token.provider_id, limit=limit, offset=offset, since=since, now=access.now,
                subject_id=subject_id, view=view)
            fresh = 1 if page.record_counts else 0
            access.disclosed(learner_id, "badges", Action.READ, page.count - fresh + page.record_counts.get("badges", 0))
            for section in (view.decisions if view is not None else ()):
                if section != "badges":
                    access.disclosed(learner_id, section, Action.READ, page.record_counts.get(section, 0))
            body: dict[str, Any] = {}
            if page.credential:
                body["credential"] = page.credential
            if page.compact_jws:
                body["compactJwsString"] = page.compact_jws
            base = f"{hub.settings.issuer.rstrip('/')}{prefix}/credentials"
            return JSONResponse(body, headers={
                "X-Total-Count": str(page.total),
                "Link": _links(base, page.total, limit, offset, request.query_params.get("since")),
            })

        return await _protected(request, binding, handler)

    @router.post("/credentials")
    async def upsert_credential(request: Request) -> Response:
        async def handler(session: AsyncSession, access: ProviderAccess, learner_id: UUID, token: TokenContext) -> Response:
            # The consent gate first: a refused provider learns nothing about its input.
            await access.authorize(learner_id, "badges", Action.CONTRIBUTE)
            raw = await request.body()
            if len(raw) > MAX_BODY_BYTES:
                raise HostError(413, "invalid_data", f"a credential may be at most {MAX_BODY_BYTES} bytes")
            try:
                data = load_input(raw)
            except ValueError as exc:
                raise HostError(400, "invalid_data", str(exc)) from None
            if not set(_credential_types(data)) & set(accepted_kinds):
                raise HostError(400, "invalid_data", f"this endpoint takes {' or '.join(accepted_kinds)}")
            kit = _kit(request)
            try:
                outcome = await import_credential(
                    session, kit, learner_id, data, now=access.now, access=access,
                    trusted=getattr(request.app.state, "credential_trusted_keys", ()),
                )
            except ImportRefused as exc:
                raise HostError(400, "invalid_data", f"the credential does not verify: {exc}") from None
            # OB 3.0 §6.2.2 upsertCredential: 201 when created, 200 when it replaced (or matched)
            # the held credential with the same issuer.id and id (the spec's equality rule).
            status = 201 if outcome.outcome == "created" else 200
            if isinstance(data, str):
                return PlainTextResponse(data, status_code=status)
            return JSONResponse(data, status_code=status)

        return await _protected(request, binding, handler)

    @router.get("/profile")
    async def get_profile(request: Request) -> Response:
        async def handler(session: AsyncSession, access: ProviderAccess, learner_id: UUID, token: TokenContext) -> Response:
            allowed = await access.authorize(learner_id, "profile", Action.READ)
            statement = await service.latest_profile(session=session, access=allowed, learner_id=learner_id,
                                                     provider_id=token.provider_id)
            access.disclosed(learner_id, "profile", Action.READ, 1 if statement else 0)
            return JSONResponse(service.profile_document(await _subject(session, token, learner_id), statement))

        return await _protected(request, binding, handler)

    @router.put("/profile")
    async def put_profile(request: Request) -> Response:
        async def handler(session: AsyncSession, access: ProviderAccess, learner_id: UUID, token: TokenContext) -> Response:
            allowed = await access.authorize(learner_id, "profile", Action.CONTRIBUTE)
            raw = await request.body()
            if len(raw) > MAX_BODY_BYTES:
                raise HostError(413, "invalid_data", "the profile is too large")
            try:
                statement = service.profile_statement(json.loads(raw), access.now)
            except (ValueError, UnicodeDecodeError) as exc:
                raise HostError(400, "invalid_data", _reason(exc)) from None
            result = await record_service.contribute_entries(
                session=session, access=allowed, section="profile", learner_id=learner_id,
                provider_id=token.provider_id, entries=[statement], now=access.now)
            access.disclosed(learner_id, "profile", Action.CONTRIBUTE, result.created + result.updated)
            return JSONResponse(service.profile_document(await _subject(session, token, learner_id), statement))

        return await _protected(request, binding, handler)

    return router


def _reason(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors(include_url=False)[0]
        return f"{'.'.join(map(str, first['loc'])) or 'profile'}: {error_message(first)}"
    return str(exc) or "the body is not a Profile"


def _kit(request: Request):  # type: ignore[no-untyped-def]
    try:
        return credential_kit(request)
    except CredentialsNotConfigured as exc:
        raise HostError(503, "server_busy", f"credentials are not configured on this hub: {exc}") from None


async def _record_view(access: ProviderAccess, kit: Any, learner_id: UUID, token: TokenContext, subject_id: str,
                       badges: Any) -> ClrView:
    """The sections of the fresh ClrCredential: badges (already allowed), and each record section
    the token carries the read scope of, when the live grants allow it (a refusal is logged and
    the section left out, as a refused GraphQL field is null)."""
    decisions = {"badges": badges}
    for section in CLR_RECORD_SECTIONS:
        if scope_for(section, Action.READ) in access.token_scopes:
            try:
                decisions[section] = await access.authorize(learner_id, section, Action.READ)
            except AccessDenied:
                continue
    return ClrView(provider_id=token.provider_id, decisions=decisions, subject_id=subject_id,
                   credential_id=clr_view_id(kit, learner_id, token.provider_id))


async def _subject(session: AsyncSession, token: TokenContext, learner_id: UUID) -> str:
    """The learner as this provider knows them: its pairwise id (never the hub's own id)."""
    return f"urn:kinfolio:learner:{await pairwise_of(session, token.provider_id, learner_id)}"


ob_router = make_router("ob")
clr_router = make_router("clr")


privacy_router = APIRouter(include_in_schema=False)


@privacy_router.get("/privacy")
async def privacy(request: Request) -> Response:
    """The page ``x-imssf-privacyPolicyUrl`` points to: what the hub does with a learner's record."""
    from hub.web.session import page

    return page(request, "message.html", heading="Privacy",
                message="Kinfolio keeps one learner record per child, controlled by the family. An app sees or adds "
                        "only what the family has consented to, section by section; every access is logged and "
                        "shown to the family, and consent can be revoked at any time, effective on the app's next "
                        "request. Families can download everything (one archive) or delete the record.")
