"""Family sign-in sessions and CSRF tokens.

Sessions are Starlette's signed cookies (itsdangerous): ``HttpOnly``, ``SameSite=Lax``, and
``Secure`` whenever the hub is served over TLS (see ``hub.app``). The cookie carries the
guardian id and a fingerprint of the password hash, so a password change or reset signs every
other session out. Every state-changing form carries the session's CSRF token
(synchroniser-token pattern), checked in constant time.
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path
from typing import Any
from uuid import UUID

from fastapi import Request
from fastapi.templating import Jinja2Templates
from sqlalchemy.ext.asyncio import AsyncSession

from hub.accounts.models import LearnerAccount
from hub.accounts.service import session_version
from hub.people.models import Guardian

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

# Pages that render forms must not be framed (clickjacking on the consent page, RFC 9700 §4.16).
PAGE_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'; default-src 'self'; img-src https: http: data:; style-src 'unsafe-inline'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def csrf_ok(request: Request, form: Any) -> bool:
    expected = request.session.get("csrf")
    sent = form.get("csrf")
    return bool(expected) and isinstance(sent, str) and hmac.compare_digest(expected, sent)


def sign_in_session(request: Request, guardian: Guardian) -> None:
    # A fresh session on sign-in (no fixation): a new CSRF token too.
    request.session.clear()
    request.session["gid"] = str(guardian.id)
    request.session["sv"] = session_version(guardian.password_hash)
    request.session["csrf"] = secrets.token_urlsafe(32)


def sign_in_learner_session(request: Request, account: LearnerAccount) -> None:
    """A learner's own session (13+): the same cookie, keyed by the learner account instead."""
    request.session.clear()
    request.session["lid"] = str(account.id)
    request.session["sv"] = session_version(account.password_hash)
    request.session["csrf"] = secrets.token_urlsafe(32)


async def current_learner_account(request: Request, session: AsyncSession) -> LearnerAccount | None:
    lid = request.session.get("lid")
    if not lid:
        return None
    try:
        account = await session.get(LearnerAccount, UUID(lid))
    except ValueError:
        account = None
    if account is None or account.password_hash is None or not hmac.compare_digest(
        str(request.session.get("sv", "")), session_version(account.password_hash)
    ):
        request.session.clear()
        return None
    return account


async def current_guardian(request: Request, session: AsyncSession) -> Guardian | None:
    gid = request.session.get("gid")
    if not gid:
        return None
    try:
        guardian = await session.get(Guardian, UUID(gid))
    except ValueError:
        guardian = None
    if guardian is None or not hmac.compare_digest(str(request.session.get("sv", "")), session_version(guardian.password_hash)):
        request.session.clear()
        return None
    return guardian


def page(request: Request, template: str, status: int = 200, **context: Any):  # type: ignore[no-untyped-def]
    context.setdefault("error", None)
    context["csrf"] = csrf_token(request)
    return templates.TemplateResponse(request, template, context, status_code=status, headers=PAGE_HEADERS)
