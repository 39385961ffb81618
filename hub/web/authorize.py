"""The authorization endpoint (RFC 6749 §3.1, §4.1.1-4.1.2) with the family's consent page.

GET shows the consent page (after sign-in); POST records the family's decision. Approval creates
the consent grants (one per ticked section × action) and a short-lived, single-use code bound to
the client, the exact redirect URI, the learner and the PKCE S256 challenge; the code is redeemed
at ``/oauth/token`` (``hub.oauth.server.AuthorizationCodeGrant``).

Errors before the client and redirect URI are verified are shown on a page and never redirected
(RFC 6749 §4.1.2.1, RFC 9700 §4.11.2: no open redirector); later errors go back to the client
with ``state`` and ``iss`` (RFC 9207).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from authlib.common.urls import add_params_to_uri
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from consent import Action, get_section, parse_scope
from consent.sections import IMS_SCOPES
from hub.accounts.service import learners_of
from hub.config import control_policy, pseudonym_key
from hub.db import utcnow
from hub.grants.family import Actor, NotPermitted, grant_by
from hub.oauth import service as oauth_service
from hub.oauth.server import RegisteredClient
from hub.web.session import csrf_ok, current_guardian, page

router = APIRouter(tags=["oauth"], include_in_schema=False)

PARAMS = ("response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge", "code_challenge_method")
# RFC 7636 §4.2: BASE64URL(SHA256(verifier)) is 43 characters of the unreserved set.
CHALLENGE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


class ShowError(Exception):
    """Cannot trust the redirect URI: show the problem, never redirect."""


class RedirectError(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error


@dataclass(frozen=True)
class ValidRequest:
    client: RegisteredClient
    redirect_uri: str
    scopes: list[str]
    state: str | None
    code_challenge: str

    def hidden_params(self) -> list[tuple[str, str]]:
        params = [("response_type", "code"), ("client_id", self.client.client_id), ("redirect_uri", self.redirect_uri),
                  ("scope", " ".join(self.scopes)), ("code_challenge", self.code_challenge),
                  ("code_challenge_method", "S256")]
        if self.state is not None:
            params.append(("state", self.state))
        return params


def _single(values: Any, name: str) -> str | None:
    found = values.getlist(name)
    if len(found) > 1:
        raise RedirectError("invalid_request", f"parameter {name} repeated")  # RFC 6749 §3.1
    return found[0] if found else None


async def validate(session: Any, values: Any) -> tuple[ValidRequest | None, str | None, str | None]:
    """Returns (request, redirect_uri, state); raises ShowError or RedirectError."""
    for name in ("client_id", "redirect_uri"):
        if len(values.getlist(name)) > 1:
            raise ShowError(f"The request repeats {name}.")
    client_id, redirect_uri = _single(values, "client_id"), _single(values, "redirect_uri")
    client = await oauth_service.load_client(session, client_id)
    if client is None:
        raise ShowError("The app that sent you here is not registered with Kinfolio.")
    # RFC 9700 §2.1 / §4.1.3: the redirect URI must be given and must equal a registered one
    # exactly (no prefix, suffix, path, port or case variations).
    if not redirect_uri or not client.check_redirect_uri(redirect_uri):
        raise ShowError("The app asked to send you back to an address it has not registered.")
    state = values.get("state")
    try:
        if len(values.getlist("state")) > 1:
            raise RedirectError("invalid_request", "parameter state repeated")
        state = _single(values, "state")
        if state is not None and len(state) > 500:
            raise RedirectError("invalid_request", "state is too long")
        response_type = _single(values, "response_type")
        if response_type != "code":
            raise RedirectError("unsupported_response_type", "only response_type=code is supported")
        if not client.check_response_type("code"):
            raise RedirectError("unauthorized_client", "this client may not use the authorization-code flow")
        # RFC 7636 §4.3 and RFC 9700 §2.1.1: PKCE is required for every client, S256 only. A
        # missing method means "plain" (RFC 7636 §4.3), so it is refused as well.
        challenge, method = _single(values, "code_challenge"), _single(values, "code_challenge_method")
        if not challenge:
            raise RedirectError("invalid_request", "code_challenge is required (PKCE, RFC 7636)")
        if method != "S256":
            raise RedirectError("invalid_request", "code_challenge_method must be S256")
        if not CHALLENGE.match(challenge):
            raise RedirectError("invalid_request", "code_challenge is malformed")
        # RFC 6749 §3.3: requested scopes must be registered for the client.
        scope = _single(values, "scope")
        allowed = client.get_allowed_scope(scope)
        if allowed is None:
            raise RedirectError("invalid_scope", "the requested scope is not registered for this client")
    except RedirectError as error:
        error.redirect_uri = redirect_uri  # type: ignore[attr-defined]
        error.state = state  # type: ignore[attr-defined]
        raise
    return ValidRequest(client, redirect_uri, allowed.split(), state, challenge), redirect_uri, state


def _redirect(request: Request, redirect_uri: str, params: dict[str, str | None], status: int) -> RedirectResponse:
    issuer = request.app.state.hub.settings.issuer
    # RFC 9207 §2: iss in every authorization response (mix-up defence).
    pairs = [(k, v) for k, v in params.items() if v is not None] + [("iss", issuer)]
    return RedirectResponse(add_params_to_uri(redirect_uri, pairs), status_code=status)


def _error_redirect(request: Request, error: RedirectError, status: int) -> RedirectResponse:
    return _redirect(request, error.redirect_uri,  # type: ignore[attr-defined]
                     {"error": error.error, "error_description": str(error), "state": error.state},  # type: ignore[attr-defined]
                     status)


# 1EdTech scopes (OB 3.0 / CLR 2.0 §6.3) in the family's words: each names the Kinfolio section
# it grants (consent.sections.IMS_SCOPES), never the URI.
_IMS_WORDS = {
    ("badges", Action.READ): "See your child's badges and certificates (digital credentials)",
    ("badges", Action.CONTRIBUTE): "Add badges and certificates to your child's badges",
    ("profile", Action.READ): "See your child's profile: preferred name, pronouns and languages",
    ("profile", Action.CONTRIBUTE): "Update your child's profile: preferred name, pronouns and languages",
}


def describe(scope: str) -> dict[str, Any]:
    section, action = parse_scope(scope)
    what = get_section(section.name)
    if scope in IMS_SCOPES and (section.name, action) in _IMS_WORDS:
        text = _IMS_WORDS[(section.name, action)]
    elif action is Action.READ:
        text = f"See your child's {section.name}"
    else:
        text = f"Add new {section.name} to your child's record"
    return {"scope": scope, "text": text, "sensitive": what.sensitive}


@router.get("/oauth/authorize")
async def authorize_page(request: Request) -> Response:
    hub = request.app.state.hub
    async with hub.sessions() as session:
        try:
            valid, _, _ = await validate(session, request.query_params)
        except ShowError as exc:
            return page(request, "error.html", 400, message=str(exc))
        except RedirectError as error:
            return _error_redirect(request, error, 302)
        assert valid is not None
        guardian = await current_guardian(request, session)
        if guardian is None:
            target = "/oauth/authorize?" + urlencode(list(request.query_params.multi_items()))
            return RedirectResponse("/account/login?" + urlencode({"next": target}), status_code=303)
        learners = await learners_of(session=session, guardian_id=guardian.id)
    if not learners:
        return page(request, "message.html", 400, heading="No child to connect",
                    message="No learner is linked to your account yet, so there is nothing to share.")
    return page(request, "consent.html", client=valid.client, guardian=guardian, learners=learners,
                params=valid.hidden_params(), requested=[describe(s) for s in valid.scopes])


@router.post("/oauth/authorize")
async def authorize_decision(request: Request) -> Response:
    hub = request.app.state.hub
    form = await request.form()
    async with hub.sessions() as session:
        try:
            valid, _, _ = await validate(session, form)
        except ShowError as exc:
            return page(request, "error.html", 400, message=str(exc))
        except RedirectError as error:
            return _error_redirect(request, error, 303)
        assert valid is not None
        # CSRF on the consent form (RFC 6749 §10.12, RFC 9700 §4.7): nothing is granted without it.
        if not csrf_ok(request, form):
            return page(request, "error.html", 403, message="This consent form did not come from Kinfolio. Nothing was shared.")
        guardian = await current_guardian(request, session)
        if guardian is None:
            return page(request, "error.html", 401, message="You are no longer signed in. Nothing was shared.")
        deny = RedirectError("access_denied", "the family did not allow access")
        deny.redirect_uri, deny.state = valid.redirect_uri, valid.state  # type: ignore[attr-defined]
        if form.get("decision") != "approve":
            return _error_redirect(request, deny, 303)
        learners = {str(learner.id): learner for learner in await learners_of(session=session, guardian_id=guardian.id)}
        learner = learners.get(str(form.get("learner", "")))
        if learner is None:
            return page(request, "error.html", 400, message="Choose one of your children. Nothing was shared.")
        # Per-section opt-out: only ticked scopes that were requested are granted.
        chosen = sorted({s for s in form.getlist("allow") if isinstance(s, str)} & set(valid.scopes))
        if not chosen:
            return _error_redirect(request, deny, 303)
        now = utcnow()
        try:
            # A section scope and its 1EdTech alias (consent.sections.IMS_SCOPES) are one grant.
            pairs = {(parse_scope(scope)[0], parse_scope(scope)[1]) for scope in chosen}
            for section, action in sorted(pairs, key=lambda pair: (pair[0].name, pair[1].value)):
                # Through the family service, so the age rules (who controls this record today) apply.
                await grant_by(
                    session=session, actor=Actor.guardian(guardian.id), learner_id=learner.id,
                    provider_id=valid.client.provider_id, section=section.name, action=action,
                    purpose=f"Connected app “{valid.client.name}” (approved on the consent page)",
                    now=now, pseudonym_key=pseudonym_key(hub.settings), policy=control_policy(hub.settings),
                )
        except NotPermitted as exc:
            await session.rollback()
            return page(request, "error.html", 403, message=f"You cannot share this record: {exc}. Nothing was shared.")
        code = await oauth_service.create_code(
            session=session, client=valid.client, redirect_uri=valid.redirect_uri, scope=" ".join(chosen),
            learner_id=UUID(str(learner.id)), guardian_id=guardian.id, code_challenge=valid.code_challenge, now=now,
            ttl_seconds=hub.settings.authorization_code_ttl_seconds,
        )
        await session.commit()
    # RFC 6749 §4.1.2; 303 so the browser does not re-post the form to the client (RFC 9700 §4.12).
    return _redirect(request, valid.redirect_uri, {"code": code, "state": valid.state}, 303)
