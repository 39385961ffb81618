"""Family accounts: sign-up, sign-in (throttled), sign-out, password reset. Plain HTML forms."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from hub.accounts import service as accounts
from hub.db import utcnow
from hub.web.session import (
    csrf_ok, current_guardian, current_learner_account, page, sign_in_learner_session, sign_in_session,
)

router = APIRouter(prefix="/account", tags=["accounts"], include_in_schema=False)


def safe_next(value: str | None) -> str:
    """Only local paths of this hub: ``next`` must never become an open redirect."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/account"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not (
        parts.path in ("/account", "/family") or parts.path.startswith(("/account/", "/family/", "/oauth/authorize"))
    ):
        return "/account"
    return value


def _csrf_refused(request: Request) -> Response:
    return page(request, "message.html", 403, heading="Please try again",
                message="This form has expired or did not come from Kinfolio. Reload the page and submit it again.")


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    return page(request, "login.html", next=safe_next(next))


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    if not csrf_ok(request, form):
        return _csrf_refused(request)
    hub = request.app.state.hub
    email, password = str(form.get("email", ""))[:320], str(form.get("password", ""))[:1024]
    target = safe_next(str(form.get("next", "")))
    async with hub.sessions() as session:
        result = await accounts.sign_in(
            session=session, email=email, password=password, now=utcnow(),
            max_failures=hub.settings.login_max_failures, lockout_seconds=hub.settings.login_lockout_seconds,
        )
        await session.commit()
    if result.throttled:
        return page(request, "login.html", 429, next=target, email=email,
                    error="Too many failed attempts. Wait a few minutes, or reset your password.")
    if result.learner_account is not None:
        # A learner's own sign-in sees only their portal pages (never the consent page for apps).
        sign_in_learner_session(request, result.learner_account)
        return RedirectResponse(target if target.startswith("/family") else "/family", status_code=303)
    if result.guardian is None:
        return page(request, "login.html", 401, next=target, email=email, error="That email and password do not match.")
    sign_in_session(request, result.guardian)
    return RedirectResponse(target, status_code=303)


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await request.form()
    if not csrf_ok(request, form):
        return _csrf_refused(request)
    request.session.clear()
    return RedirectResponse("/account/login", status_code=303)


@router.get("/signup")
async def signup_form(request: Request, next: str | None = None, email: str | None = None) -> Response:
    return page(request, "signup.html", next=safe_next(next), email=(email or "")[:320])


@router.post("/signup")
async def signup(request: Request) -> Response:
    form = await request.form()
    if not csrf_ok(request, form):
        return _csrf_refused(request)
    name, email, password = (str(form.get(k, ""))[:1024] for k in ("name", "email", "password"))
    target = safe_next(str(form.get("next", "")))
    async with request.app.state.hub.sessions() as session:
        try:
            guardian = await accounts.sign_up(session=session, email=email, display_name=name[:200], password=password)
        except ValueError as exc:  # weak password, bad email, taken address
            return page(request, "signup.html", 400, name=name, email=email, next=target, error=str(exc))
        await session.commit()
    sign_in_session(request, guardian)
    return RedirectResponse(target, status_code=303)


@router.get("")
async def home(request: Request) -> Response:
    async with request.app.state.hub.sessions() as session:
        guardian = await current_guardian(request, session)
        if guardian is None:
            if await current_learner_account(request, session) is not None:
                return RedirectResponse("/family", status_code=303)
            return RedirectResponse("/account/login", status_code=303)
        learners = await accounts.learners_of(session=session, guardian_id=guardian.id)
    return page(request, "account.html", guardian=guardian, learners=learners)


@router.get("/reset")
async def reset_request_form(request: Request) -> Response:
    return page(request, "reset_request.html")


@router.post("/reset")
async def reset_request(request: Request) -> Response:
    form = await request.form()
    if not csrf_ok(request, form):
        return _csrf_refused(request)
    hub = request.app.state.hub
    async with hub.sessions() as session:
        await accounts.request_password_reset(
            session=session, email=str(form.get("email", ""))[:320], base_url=hub.settings.issuer, now=utcnow(),
            ttl_seconds=hub.settings.password_reset_ttl_seconds,
        )
        await session.commit()
    # The same answer whether or not the account exists.
    return page(request, "message.html", heading="Check your mail",
                message="If an account exists for that address, we have sent it a link to choose a new password.")


@router.get("/reset/{token}")
async def reset_form(request: Request, token: str) -> Response:
    async with request.app.state.hub.sessions() as session:
        valid = await accounts.reset_token_guardian(session=session, token=token, now=utcnow())
    if valid is None:
        return page(request, "message.html", 400, heading="Link expired",
                    message="This reset link is invalid, used or expired. Ask for a new one.",
                    link="/account/reset", link_text="Reset your password")
    return page(request, "reset.html", token=token)


@router.post("/reset/{token}")
async def reset(request: Request, token: str) -> Response:
    form = await request.form()
    if not csrf_ok(request, form):
        return _csrf_refused(request)
    async with request.app.state.hub.sessions() as session:
        try:
            done = await accounts.complete_password_reset(
                session=session, token=token, password=str(form.get("password", ""))[:1024], now=utcnow()
            )
        except accounts.WeakPassword as exc:
            return page(request, "reset.html", 400, token=token, error=str(exc))
        await session.commit()
    if not done:
        return page(request, "message.html", 400, heading="Link expired",
                    message="This reset link is invalid, used or expired. Ask for a new one.",
                    link="/account/reset", link_text="Reset your password")
    request.session.clear()
    return page(request, "message.html", heading="Password changed", message="Your password has been changed.",
                link="/account/login", link_text="Sign in")


_INVITE_EXPIRED = {"heading": "Link expired", "message": "This invitation link is invalid, used or expired. Ask your family for a new one.",
                   "link": "/account/login", "link_text": "Sign in"}


@router.get("/learner-invite/{token}")
async def learner_invite_form(request: Request, token: str) -> Response:
    async with request.app.state.hub.sessions() as session:
        account = await accounts.learner_invite(session=session, token=token, now=utcnow())
    if account is None:
        return page(request, "message.html", 400, **_INVITE_EXPIRED)
    return page(request, "learner_invite.html", token=token, email=account.email)


@router.post("/learner-invite/{token}")
async def learner_invite_accept(request: Request, token: str) -> Response:
    form = await request.form()
    if not csrf_ok(request, form):
        return _csrf_refused(request)
    async with request.app.state.hub.sessions() as session:
        try:
            account = await accounts.accept_learner_invite(
                session=session, token=token, password=str(form.get("password", ""))[:1024], now=utcnow()
            )
        except accounts.WeakPassword as exc:
            pending = await accounts.learner_invite(session=session, token=token, now=utcnow())
            return page(request, "learner_invite.html", 400, token=token, email=pending.email if pending else "",
                        error=str(exc))
        if account is None:
            return page(request, "message.html", 400, **_INVITE_EXPIRED)
        await session.commit()
    sign_in_learner_session(request, account)
    return RedirectResponse("/family", status_code=303)
