"""Guardian invitations from roster imports: ``/family/invitations/{token}``.

A school's roster names a parent; the hub mails them a single-use link (``hub.roster.service``,
30 days). GET shows who invites them to which learner's record; accepting (POST, CSRF) needs a
family account signed in with **the invited address**: the link's bearer alone is not enough.
Accepting makes the account a guardian of the learner and grants nothing: sharing stays off until
the family decides. Unknown, used and expired links, and a different signed-in address, each get
a clear page (never a 500).
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from hub.db import utcnow
from hub.roster.service import InvitationView, accept_invitation, invitation_view
from hub.web.session import csrf_ok, current_guardian, current_learner_account, page

router = APIRouter(tags=["portal"], include_in_schema=False)

_STATES = {
    "unknown": (404, "Invitation not found", "This invitation link is not valid. Check that you opened the whole link "
                "from the e-mail, or ask the school to send a new invitation."),
    "used": (410, "Invitation already accepted", "This invitation has already been accepted. Sign in to see the record."),
    "expired": (410, "Invitation expired", "This invitation link has expired. Ask the school to send a new invitation."),
}


def _closed(request: Request, view: InvitationView) -> Response:
    status, heading, message = _STATES[view.state]
    return page(request, "message.html", status, heading=heading, message=message,
                link="/family" if view.state == "used" else "/account/login",
                link_text="Your family's records" if view.state == "used" else "Sign in")


async def _load(request: Request, token: str):  # type: ignore[no-untyped-def]
    async with request.app.state.hub.sessions() as session:
        view = await invitation_view(session=session, token=token, now=utcnow())
        guardian = await current_guardian(request, session)
        learner_account = None if guardian else await current_learner_account(request, session)
    return view, guardian, learner_account


def _show(request: Request, token: str, view: InvitationView, guardian, learner_account, status: int = 200) -> Response:  # type: ignore[no-untyped-def]
    here = f"/family/invitations/{quote(token, safe='')}"
    mismatch = guardian is not None and guardian.email.lower() != (view.email or "")
    if learner_account is not None:
        status = 403
    elif mismatch and status == 200:
        status = 403
    return page(request, "invitation.html", status, token=quote(token, safe=""), view=view, guardian=guardian,
                learner_account=learner_account, mismatch=mismatch, next=here)


@router.get("/family/invitations/{token}")
async def invitation(request: Request, token: str) -> Response:
    view, guardian, learner_account = await _load(request, token)
    if view.state != "open":
        return _closed(request, view)
    return _show(request, token, view, guardian, learner_account)


@router.post("/family/invitations/{token}")
async def accept(request: Request, token: str) -> Response:
    form = await request.form()
    if not csrf_ok(request, form):
        return page(request, "message.html", 403, heading="Please try again",
                    message="This form has expired or did not come from Kinfolio. Reload the page and submit it again.")
    view, guardian, learner_account = await _load(request, token)
    if view.state != "open":
        return _closed(request, view)
    if guardian is None or guardian.email.lower() != view.email:
        return _show(request, token, view, guardian, learner_account, status=403 if guardian or learner_account else 401)
    async with request.app.state.hub.sessions() as session:
        learner_id = await accept_invitation(session=session, token=token, guardian_id=guardian.id, now=utcnow())
        if learner_id is None:  # accepted or expired in between
            return _closed(request, await invitation_view(session=session, token=token, now=utcnow()))
        await session.commit()
    return RedirectResponse(f"/family/learners/{learner_id}", status_code=303)


@router.get("/account/invitation/{token}")
async def old_link(token: str) -> Response:
    """Links mailed before the page existed pointed here."""
    return RedirectResponse(f"/family/invitations/{quote(token, safe='')}", status_code=303)
