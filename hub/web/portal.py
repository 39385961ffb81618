"""The family portal: a learner's record, who sees what, requests, history, export, deletion.

Server-rendered pages and plain HTML forms (no JavaScript needed). Every page:

- needs a signed-in guardian or learner (``hub.web.session``), else sign-in (GET) or 401 (POST);
- checks the CSRF token first on every POST (403, nothing changes);
- resolves the learner through ``hub.portal.access.access_to``: a learner the person is not
  linked to is 404, exactly like an id that does not exist (no IDOR, no probing);
- then what the age rules allow: view (record, export), log (history), manage (sharing,
  requests, deletion); otherwise 403 with the reason.

Families never go through the provider consent gate: they see their own learners' records.
Changes go through the consent engine (``hub.grants.family``), which checks control again.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from consent import Action, get_section
from consent.sections import UnknownSection, catalogue
from hub.accounts import service as accounts
from hub.config import control_policy, pseudonym_key
from hub.db import utcnow
from hub.grants.family import NotPermitted, decide_request, list_requests, revoke_by
from hub.grants.models import AccessRequest
from hub.portal import record
from hub.portal.access import LearnerAccess, NotFound, Viewer, access_to, visible_learners
from hub.providers.models import Provider
from hub.records.models import SECTION_MODELS
from hub.records.service import InvalidCursor, set_entry_state
from hub.web import charts
from hub.web.session import PAGE_HEADERS, csrf_ok, current_guardian, current_learner_account, page

router = APIRouter(prefix="/family", tags=["portal"], include_in_schema=False)

PAGE_SIZE = 20
PREVIEW = 5
HISTORY_PAGE = 50
LEARNER_INVITE_TTL_SECONDS = 7 * 24 * 3600


class Stop(Exception):
    """End the request with this response (a refusal page or a redirect)."""

    def __init__(self, response: Response) -> None:
        self.response = response


def _refusal(request: Request, status: int, heading: str, message: str, link: str = "/family",
             link_text: str = "Back to your family") -> Response:
    return page(request, "message.html", status, heading=heading, message=message, link=link, link_text=link_text)


def _not_found(request: Request) -> Response:
    return _refusal(request, 404, "Not found", "There is no such page, or it is not part of your family's records.")


def _show(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    context["flash"] = request.session.pop("flash", None)
    context.setdefault("sections", record.sections())
    context.setdefault("current", {"section": "record"}.get(template[7:-5], template[7:-5]))
    return page(request, template, status, **context)


def _done(request: Request, url: str, message: str) -> Response:
    """Changes take effect at once; the next page shows what happened (post/redirect/get)."""
    request.session["flash"] = message
    return RedirectResponse(url, status_code=303)


async def _viewer(request: Request, session: Any) -> Viewer | None:
    guardian = await current_guardian(request, session)
    if guardian is not None:
        return Viewer(guardian=guardian)
    account = await current_learner_account(request, session)
    return Viewer(learner_account=account) if account is not None else None


async def _signed_in(request: Request, session: Any) -> Viewer:
    viewer = await _viewer(request, session)
    if viewer is None:
        if request.method == "GET":
            raise Stop(RedirectResponse("/account/login?" + urlencode({"next": request.url.path}), status_code=303))
        raise Stop(_refusal(request, 401, "Please sign in", "You are not signed in, so nothing was changed.",
                            "/account/login", "Sign in"))
    return viewer


async def _open(request: Request, session: Any, learner: str, need: str) -> tuple[Viewer, LearnerAccess]:
    viewer = await _signed_in(request, session)
    try:
        learner_id = UUID(learner)
    except ValueError:
        raise Stop(_not_found(request)) from None
    hub = request.app.state.hub
    try:
        access = await access_to(session=session, viewer=viewer, learner_id=learner_id, today=utcnow().date(),
                                 policy=control_policy(hub.settings))
    except NotFound:
        raise Stop(_not_found(request)) from None
    allowed = {"view": access.may_view, "log": access.may_view_log, "manage": access.may_manage}[need]
    if not allowed:
        what = {"view": "this record", "log": "this disclosure history", "manage": "sharing or deletion for this record"}[need]
        raise Stop(_refusal(request, 403, "Not allowed", f"You cannot open {what}. {access.why_not}".strip(),
                            f"/family/learners/{learner_id}" if access.may_view else "/family",
                            "Back to the record" if access.may_view else "Back to your family"))
    return viewer, access


async def _form(request: Request) -> Any:
    form = await request.form()
    if not csrf_ok(request, form):
        raise Stop(_refusal(request, 403, "Please try again",
                            "This form has expired or did not come from Kinfolio, so nothing was changed. "
                            "Reload the page and submit it again."))
    return form


def _base(access: LearnerAccess) -> str:
    return f"/family/learners/{access.learner.id}"


def _confirm(request: Request, access: LearnerAccess, viewer: Viewer, *, heading: str, message: str, action: str,
             fields: dict[str, str], button: str, back: str) -> Response:
    return _show(request, "portal_confirm.html", viewer=viewer, access=access, heading=heading, message=message,
                 action=action, fields=fields, button=button, back=back)


def _uuid_or_none(value: Any) -> UUID | None:
    try:
        return UUID(str(value)) if value else None
    except ValueError:
        return None


# -- home ---------------------------------------------------------------------------------


@router.get("")
async def home(request: Request) -> Response:
    hub = request.app.state.hub
    async with hub.sessions() as session:
        try:
            viewer = await _signed_in(request, session)
        except Stop as stop:
            return stop.response
        learners = await visible_learners(session=session, viewer=viewer, today=utcnow().date(),
                                          policy=control_policy(hub.settings))
        ids = [a.learner.id for a in learners]
        counts = await record.section_counts(session=session, learner_ids=ids)
        pending = await record.pending_counts(session=session, learner_ids=ids)
        accounts_by_learner = {}
        for a in learners:
            accounts_by_learner[a.learner.id] = await accounts.learner_account_of(session=session, learner_id=a.learner.id)
    return _show(request, "portal_home.html", viewer=viewer, learners=learners, counts=counts, pending=pending,
                 learner_accounts=accounts_by_learner, policy=control_policy(hub.settings))


# -- the record ---------------------------------------------------------------------------


@router.get("/learners/{learner}")
async def record_view(request: Request, learner: str) -> Response:
    async with request.app.state.hub.sessions() as session:
        try:
            viewer, access = await _open(request, session, learner, "view")
        except Stop as stop:
            return stop.response
        lid = access.learner.id
        previews = {s.name: await record.family_page(session=session, learner_id=lid, section=s.name, first=PREVIEW)
                    for s in record.sections()}
        counts = (await record.section_counts(session=session, learner_ids=[lid]))[lid]
        weeks = await record.activity_per_week(session=session, learner_id=lid)
        lines = await record.skill_lines(session=session, learner_id=lid)
    name = access.learner.given_name
    chart = charts.weekly_bars(weeks, label=f"Activities per week for {name}, last {len(weeks)} weeks")
    sparks = [(line, charts.sparkline(line.points, low=line.scale_min, high=line.scale_max, uid=f"s{n}",
                                      label=f"{line.label} over time ({line.scale_name})")) for n, line in enumerate(lines)]
    return _show(request, "portal_record.html", viewer=viewer, access=access, previews=previews, counts=counts,
                 weeks=weeks, chart=chart, sparks=sparks, record=record)


@router.get("/learners/{learner}/sections/{section}")
async def section_view(request: Request, learner: str, section: str, after: str | None = None) -> Response:
    async with request.app.state.hub.sessions() as session:
        try:
            viewer, access = await _open(request, session, learner, "view")
        except Stop as stop:
            return stop.response
        if section not in SECTION_MODELS or section not in catalogue():
            return _not_found(request)
        try:
            entries = await record.family_page(session=session, learner_id=access.learner.id, section=section,
                                               first=PAGE_SIZE, after=after)
        except InvalidCursor:
            return _refusal(request, 400, "Bad link", "This page link is not valid. Start again from the first page.",
                            f"{_base(access)}/sections/{section}", "First page")
        names = await record.provider_names(session=session, ids={e.provider_id for e in entries.entries})
    return _show(request, "portal_section.html", viewer=viewer, access=access, section=get_section(section),
                 entries=entries, names=names, record=record, first_page=after is None)


@router.post("/learners/{learner}/entries/{section}/{entry_id}")
async def entry_action(request: Request, learner: str, section: str, entry_id: str) -> Response:
    hub = request.app.state.hub
    async with hub.sessions() as session:
        try:
            form = await _form(request)
            viewer, access = await _open(request, session, learner, "manage")
        except Stop as stop:
            return stop.response
        state = str(form.get("action", ""))
        if section not in SECTION_MODELS or not entry_id.isdigit() or len(entry_id) > 18:
            return _not_found(request)
        back = f"{_base(access)}/sections/{section}"
        model = SECTION_MODELS[section]
        entry = await session.get(model, int(entry_id))
        if entry is None or entry.learner_id != access.learner.id or entry.deleted_at is not None:
            return _not_found(request)
        if state not in ("hide", "unhide", "delete"):
            return _refusal(request, 400, "Unknown action", "Choose hide, show again or delete.", back, "Back")
        title = record.entry_title(section, entry)
        if state == "delete" and form.get("confirm") != "yes":
            return _confirm(request, access, viewer, heading="Delete this entry?",
                            message=f"“{title}” will be removed from the record at once and can no longer be read by "
                                    "anyone. This cannot be undone.",
                            action=f"{_base(access)}/entries/{section}/{entry_id}",
                            fields={"action": "delete"}, button="Yes, delete it", back=back)
        await set_entry_state(session=session, section=section, learner_id=access.learner.id, entry_id=int(entry_id),
                              now=utcnow(), state=state)
        await session.commit()
    done = {"hide": "is now hidden from every app", "unhide": "is visible to apps you share with again",
            "delete": "has been deleted"}[state]
    return _done(request, back, f"“{title}” {done}.")


# -- sharing -------------------------------------------------------------------------------


@router.get("/learners/{learner}/sharing")
async def sharing(request: Request, learner: str) -> Response:
    async with request.app.state.hub.sessions() as session:
        try:
            viewer, access = await _open(request, session, learner, "manage")
        except Stop as stop:
            return stop.response
        rows = await record.sharing_matrix(session=session, learner_id=access.learner.id, now=utcnow())
    return _show(request, "portal_sharing.html", viewer=viewer, access=access, rows=rows, now=utcnow())


@router.post("/learners/{learner}/sharing/revoke")
async def revoke(request: Request, learner: str) -> Response:
    hub = request.app.state.hub
    async with hub.sessions() as session:
        try:
            form = await _form(request)
            viewer, access = await _open(request, session, learner, "manage")
        except Stop as stop:
            return stop.response
        back = f"{_base(access)}/sharing"
        scope = str(form.get("scope", ""))
        section = str(form.get("section", "")) or None
        action_text = str(form.get("action", "")) or None
        if scope not in ("cell", "provider", "all") or (scope == "cell" and not (section and action_text)):
            return _refusal(request, 400, "Unknown change", "Choose what to stop sharing.", back, "Back to sharing")
        try:
            action = Action(action_text) if scope == "cell" else None
            if scope == "cell":
                get_section(str(section))
        except (ValueError, UnknownSection):
            return _refusal(request, 400, "Unknown change", "That section or permission does not exist.", back,
                            "Back to sharing")
        rows = await record.sharing_matrix(session=session, learner_id=access.learner.id, now=utcnow())
        if scope == "all":
            targets = [r for r in rows if r.live]
        else:
            provider_id = _uuid_or_none(form.get("provider"))
            targets = [r for r in rows if r.provider_id == provider_id]
            if not targets:
                return _refusal(request, 400, "Nothing to stop", "This app has no access to this record.", back,
                                "Back to sharing")
        name = access.learner.given_name
        if scope != "cell" and form.get("confirm") != "yes":
            who = "every app and organisation" if scope == "all" else targets[0].provider_name
            fields = {"scope": scope} | ({"provider": str(targets[0].provider_id)} if scope == "provider" else {})
            return _confirm(request, access, viewer, heading=f"Stop all sharing with {who}?",
                            message=f"{who} will no longer be able to read or add to {name}'s record, from their very "
                                    "next request. Entries they already added stay in the record.",
                            action=f"{back}/revoke", fields=fields, button="Yes, stop sharing", back=back)
        total = 0
        try:
            for row in targets:
                count, _ = await revoke_by(session=session, actor=viewer.actor, learner_id=access.learner.id,
                                           provider_id=row.provider_id, now=utcnow(),
                                           policy=control_policy(hub.settings),
                                           section=section if scope == "cell" else None, action=action)
                total += count
        except NotPermitted as exc:
            await session.rollback()
            return _refusal(request, 403, "Not allowed", f"Nothing was changed: {exc}.", back, "Back to sharing")
        await session.commit()
    if scope == "cell":
        verb = "read" if action is Action.READ else "add to"
        message = f"Done: {targets[0].provider_name} can no longer {verb} {name}'s {section}."
    elif scope == "provider":
        message = f"Done: {targets[0].provider_name} can no longer read or add to {name}'s record."
    else:
        message = f"Done: nobody can read or add to {name}'s record any more ({total} permissions stopped)."
    if not total:
        message = "Nothing was being shared there, so nothing changed."
    return _done(request, back, message)


# -- requests ------------------------------------------------------------------------------


@router.get("/learners/{learner}/requests")
async def requests_page(request: Request, learner: str) -> Response:
    async with request.app.state.hub.sessions() as session:
        try:
            viewer, access = await _open(request, session, learner, "manage")
        except Stop as stop:
            return stop.response
        all_requests = await list_requests(session=session, learner_id=access.learner.id)
        names = await record.provider_names(session=session, ids={r.provider_id for r in all_requests})
    pending = [r for r in all_requests if r.status == "pending"]
    past = [r for r in all_requests if r.status != "pending"][:20]
    return _show(request, "portal_requests.html", viewer=viewer, access=access, pending=pending, past=past,
                 names=names, describe=_describe)


def _describe(item: str) -> tuple[str, bool]:
    section, _, action = item.partition(":")
    try:
        sensitive = get_section(section).sensitive
    except UnknownSection:
        sensitive = False
    return (f"See {section}" if action == "read" else f"Add to {section}"), sensitive


@router.post("/learners/{learner}/requests/{request_id}")
async def decide(request: Request, learner: str, request_id: str) -> Response:
    hub = request.app.state.hub
    async with hub.sessions() as session:
        try:
            form = await _form(request)
            viewer, access = await _open(request, session, learner, "manage")
        except Stop as stop:
            return stop.response
        back = f"{_base(access)}/requests"
        rid = _uuid_or_none(request_id)
        ask = await session.get(AccessRequest, rid) if rid else None
        if ask is None or ask.learner_id != access.learner.id:
            return _not_found(request)
        provider = await session.get(Provider, ask.provider_id)
        decision = str(form.get("decision", ""))
        chosen = [str(v) for v in form.getlist("item")]
        if decision not in ("all", "some", "deny"):
            return _refusal(request, 400, "Choose a decision", "Approve all, approve the ticked items, or deny.", back,
                            "Back to requests")
        if decision == "some" and not chosen:
            return _refusal(request, 400, "Nothing ticked", "Tick at least one item to approve, or deny the request.",
                            back, "Back to requests")
        try:
            decided = await decide_request(
                session=session, actor=viewer.actor, request_id=ask.id, now=utcnow(),
                pseudonym_key=pseudonym_key(hub.settings), policy=control_policy(hub.settings),
                approve=None if decision == "all" else (chosen if decision == "some" else None),
                deny=decision == "deny",
            )
        except NotPermitted as exc:
            await session.rollback()
            return _refusal(request, 403, "Not allowed", f"Nothing was changed: {exc}.", back, "Back to requests")
        except ValueError as exc:
            await session.rollback()
            return _refusal(request, 400, "Cannot decide", f"Nothing was changed: {exc}.", back, "Back to requests")
        approved, status = list(decided.approved_items), decided.status
        await session.commit()
    who = provider.name if provider else "The app"
    if decision == "deny":
        return _done(request, back, f"Denied: {who} gets nothing it asked for.")
    shared = ", ".join(_describe(i)[0].lower() for i in approved)
    waiting = " Some items wait for the other guardian's approval." if status == "pending" else ""
    return _done(request, f"{_base(access)}/sharing", f"Approved: {who} may now {shared}.{waiting}")


# -- disclosure history --------------------------------------------------------------------


@router.get("/learners/{learner}/history")
async def history(request: Request, learner: str, provider: str | None = None, section: str | None = None,
                  before: str | None = None) -> Response:
    async with request.app.state.hub.sessions() as session:
        try:
            viewer, access = await _open(request, session, learner, "log")
        except Stop as stop:
            return stop.response
        provider_id = _uuid_or_none(provider)
        bad = (provider and provider_id is None) or (section and section not in catalogue()) or (
            before and (not before.isdigit() or len(before) > 12))
        if bad:
            return _refusal(request, 400, "Bad filter", "That filter is not valid.", f"{_base(access)}/history",
                            "All history")
        events, more, names, verified, checked = await record.history(
            session=session, learner_id=access.learner.id, first=HISTORY_PAGE,
            before_seq=int(before) if before else None, provider_id=provider_id, section=section or None)
    older = None
    if more and events:
        older = "?" + urlencode({k: v for k, v in (("provider", provider or ""), ("section", section or ""),
                                                   ("before", str(events[-1].seq))) if v})
    return _show(request, "portal_history.html", viewer=viewer, access=access, events=events, names=names,
                 verified=verified, checked=checked, provider=provider or "", section=section or "", older=older)


# -- export --------------------------------------------------------------------------------


@router.get("/learners/{learner}/export")
async def export_page(request: Request, learner: str) -> Response:
    async with request.app.state.hub.sessions() as session:
        try:
            viewer, access = await _open(request, session, learner, "view")
        except Stop as stop:
            return stop.response
    bundle_available = request.app.state.hub.settings.jsonld_contexts_dir is not None
    return _show(request, "portal_export.html", viewer=viewer, access=access, bundle_available=bundle_available)


@router.get("/learners/{learner}/export.zip")
async def export_bundle(request: Request, learner: str) -> Response:
    """Everything in one signed archive (GDPR Art. 20): the portability bundle of `kinfolio export`."""
    from hub.credentials.service import CredentialsNotConfigured, kit_from_settings
    from hub.portability.bundle import write_bundle

    hub = request.app.state.hub
    async with hub.sessions() as session:
        try:
            _, access = await _open(request, session, learner, "view")
        except Stop as stop:
            return stop.response
        try:
            kit = kit_from_settings(hub.settings)
        except CredentialsNotConfigured:
            return Response("Signed exports are not configured on this hub; download the JSON export instead.",
                            status_code=503, media_type="text/plain", headers=PAGE_HEADERS)
        buffer = io.BytesIO()
        await write_bundle(session, kit=kit, receipt_keys=hub.signing_keys.private, learner_id=access.learner.id,
                           out=buffer, now=utcnow())
    return Response(buffer.getvalue(), media_type="application/zip",
                    headers={**PAGE_HEADERS, "Content-Disposition": _attachment(access.learner, "zip")})


@router.get("/learners/{learner}/export.json")
async def export_json(request: Request, learner: str) -> Response:
    async with request.app.state.hub.sessions() as session:
        try:
            _, access = await _open(request, session, learner, "view")
        except Stop as stop:
            return stop.response
        data = await record.export_record(session=session, learner_id=access.learner.id, now=utcnow())
    return Response(json.dumps(data, indent=2, ensure_ascii=False), media_type="application/json",
                    headers={**PAGE_HEADERS, "Content-Disposition": _attachment(access.learner, "json")})


def _attachment(learner: Any, extension: str) -> str:
    """``Content-Disposition`` of an export: kinfolio-<given name>-<date>.<extension>, ASCII only."""
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    slug = "".join(c for c in learner.given_name.lower() if c.isascii() and c.isalnum()) or "learner"
    return f'attachment; filename="kinfolio-{slug}-{stamp}.{extension}"'


# -- deletion ------------------------------------------------------------------------------


@router.get("/learners/{learner}/delete")
async def delete_page(request: Request, learner: str) -> Response:
    async with request.app.state.hub.sessions() as session:
        try:
            viewer, access = await _open(request, session, learner, "manage")
        except Stop as stop:
            return stop.response
        contributors: set[UUID] = set()
        for model in SECTION_MODELS.values():
            contributors |= set((await session.execute(select(model.provider_id).where(
                model.learner_id == access.learner.id, model.deleted_at.is_(None)).distinct())).scalars())
        names = await record.provider_names(session=session, ids=contributors)
    return _show(request, "portal_delete.html", viewer=viewer, access=access,
                 contributors=sorted(names.items(), key=lambda kv: kv[1].lower()))


@router.post("/learners/{learner}/delete")
async def delete(request: Request, learner: str) -> Response:
    hub = request.app.state.hub
    async with hub.sessions() as session:
        try:
            form = await _form(request)
            viewer, access = await _open(request, session, learner, "manage")
        except Stop as stop:
            return stop.response
        base, name = _base(access), access.learner.given_name
        what = str(form.get("what", ""))
        policy, now = control_policy(hub.settings), utcnow()
        if what == "provider":
            provider_id = _uuid_or_none(form.get("provider"))
            provider = await session.get(Provider, provider_id) if provider_id else None
            if provider is None:
                return _refusal(request, 400, "Choose an app", "Choose whose entries to delete.", f"{base}/delete",
                                "Back")
            if form.get("confirm") != "yes":
                return _confirm(request, access, viewer, heading=f"Delete everything {provider.name} added?",
                                message=f"Every entry {provider.name} added to {name}'s record is deleted at once, and "
                                        f"{provider.name} can no longer add to it. This cannot be undone.",
                                action=f"{base}/delete", fields={"what": "provider", "provider": str(provider.id)},
                                button="Yes, delete their entries", back=f"{base}/delete")
            _, deleted = await revoke_by(session=session, actor=viewer.actor, learner_id=access.learner.id,
                                         provider_id=provider.id, now=now, policy=policy, action=Action.CONTRIBUTE,
                                         delete_contributions=True)
            await session.commit()
            return _done(request, base, f"Deleted {deleted} entries added by {provider.name}.")
        if what == "record":
            if form.get("confirm") != "yes":
                return _confirm(request, access, viewer, heading=f"Delete {name}'s whole record?",
                                message="Every entry in every section and every imported credential is deleted at "
                                        "once, every app loses access, and pending requests are refused. Kept as "
                                        "evidence: who was given access when, and the disclosure history. This cannot "
                                        "be undone: download an export first if you want a copy.",
                                action=f"{base}/delete", fields={"what": "record"},
                                button="Yes, delete the whole record", back=f"{base}/delete")
            counts = await record.delete_whole_record(session=session, actor=viewer.actor,
                                                      learner_id=access.learner.id, now=now, policy=policy)
            await session.commit()
            return _done(request, base, f"{name}'s record is deleted: {counts['deleted']} entries removed, "
                                        f"{counts['revoked']} permissions stopped.")
    return _refusal(request, 400, "Choose what to delete", "Choose an app's entries or the whole record.",
                    f"{base}/delete", "Back")


# -- the learner's own sign-in ---------------------------------------------------------------


@router.get("/learners/{learner}/sign-in")
async def learner_sign_in_page(request: Request, learner: str) -> Response:
    async with request.app.state.hub.sessions() as session:
        try:
            viewer, access = await _open(request, session, learner, "manage")
        except Stop as stop:
            return stop.response
        account = await accounts.learner_account_of(session=session, learner_id=access.learner.id)
    return _show(request, "portal_learner_account.html", viewer=viewer, access=access, account=account,
                 policy=control_policy(request.app.state.hub.settings))


@router.post("/learners/{learner}/sign-in")
async def learner_sign_in_invite(request: Request, learner: str) -> Response:
    hub = request.app.state.hub
    async with hub.sessions() as session:
        try:
            form = await _form(request)
            viewer, access = await _open(request, session, learner, "manage")
        except Stop as stop:
            return stop.response
        email = str(form.get("email", ""))[:320]
        try:
            await accounts.invite_learner(
                session=session, learner_id=access.learner.id, email=email, base_url=hub.settings.issuer, now=utcnow(),
                ttl_seconds=LEARNER_INVITE_TTL_SECONDS, may_sign_in=access.control.learner_sees_record,
            )
        except accounts.LearnerAccountRefused as exc:
            account = await accounts.learner_account_of(session=session, learner_id=access.learner.id)
            return _show(request, "portal_learner_account.html", 400, viewer=viewer, access=access, account=account,
                         policy=control_policy(hub.settings), error=str(exc).capitalize() + ".")
        await session.commit()
    return _done(request, f"{_base(access)}/sign-in",
                 f"We sent {access.learner.given_name} an invitation to {email.strip().lower()}.")


@router.api_route("/{rest:path}", methods=["GET", "POST"])
async def unknown(request: Request, rest: str) -> Response:
    """Any other portal address: the same HTML 'not found' page (never a bare JSON error)."""
    del rest
    return _not_found(request)
