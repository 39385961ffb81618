"""The family portal in a real headless Chromium (Playwright), against a real uvicorn server.

As a guardian: sign in, find the pending request, approve two of its three sections, check the
sharing matrix, stop one cell and see the app's very next GraphQL call (real token) refused,
download the export and check it, read the disclosure history. Then the child (14) accepts an
invitation and sees their own record. Every page is checked with axe-core (no serious or
critical WCAG 2.x A/AA violation), must not scroll sideways at 360 px, and is photographed at
1280 and 360 px into ``test-artifacts/screenshots/`` (not committed).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from hub.accounts.models import OutboxMessage
from tests.browser.test_connect_journey import CHROMIUM_ARGS
from tests.factories import learner_id_for
from tests.portal_helpers import PASSWORD, make_world

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "tests" / "js" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
AXE_RUN = """async () => {
  const result = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']}});
  return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' '))}));
}"""
BADGES_QUERY = "query($id: ID!) { learner(id: $id) { badges { nodes { achievement { name } } } activities(first: 1) { nodes { timestamp } } } }"


def check_page(page, name: str, checked: list[str]) -> None:  # type: ignore[no-untyped-def]
    """axe-core, no sideways scrolling at 360 px, screenshots at 1280 and 360 px."""
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate(AXE_RUN)
    serious = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert serious == [], (name, serious)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-1280.png"), full_page=True)
    page.set_viewport_size({"width": 360, "height": 740})
    wide = page.evaluate("""() => [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > 360
        && !e.closest('.scroll')).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))""")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360, (name, wide)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-360.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})
    checked.append(name)


def _provider_reads(hub: str, world, learner: str) -> dict:  # type: ignore[no-untyped-def]
    token = httpx.post(f"{hub}/oauth/token", data={"grant_type": "client_credentials"},
                       auth=(world.client_id, world.client_secret)).json()["access_token"]
    return httpx.post(f"{hub}/graphql", json={"query": BADGES_QUERY, "variables": {"id": learner}},
                      headers={"Authorization": f"Bearer {token}"}).json()


def _guardian_journey(hub: str, world, learner: str, checked: list[str], downloads: Path) -> dict:  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    seen: dict = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"), headless=True, args=CHROMIUM_ARGS)
        try:
            # bypass_csp: only so the test can inject axe-core; the pages themselves run no script.
            context = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True, accept_downloads=True)
            page = context.new_page()
            page.goto(f"{hub}/family")
            page.wait_for_url("**/account/login**")
            check_page(page, "sign-in", checked)
            page.fill("#email", world.email)
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{hub}/family")
            assert "1 pending request" in page.inner_text("main")
            check_page(page, "home", checked)

            # Keyboard: the first link in the page is reachable with Tab and visibly focused.
            page.keyboard.press("Tab")
            assert page.evaluate("document.activeElement.tagName") == "A"

            page.click("text=Requests")
            assert "Reading Buddy asks for access" in page.inner_text("main")
            check_page(page, "requests", checked)
            page.uncheck("input[name=item][value='skills:read']")
            page.click("button[value=some]")
            page.wait_for_url("**/sharing")
            assert "Approved: Reading Buddy may now see activities, see badges." in page.inner_text("#flash")
            check_page(page, "sharing", checked)
            row = page.locator("tr[data-provider='Reading Buddy']")
            assert "✓ Shared" in row.locator("td[data-section=badges] div[data-action=read]").inner_text()
            assert "✓ Shared" in row.locator("td[data-section=activities] div[data-action=read]").inner_text()
            assert "✗ Not shared" in row.locator("td[data-section=skills] div[data-action=read]").inner_text()
            seen["before"] = _provider_reads(hub, world, learner)

            row.locator("td[data-section=badges] div[data-action=read] button").click()
            page.wait_for_url("**/sharing")
            assert "can no longer read Kim's badges" in page.inner_text("#flash")
            assert "✗ Not shared (stopped" in page.locator(
                "tr[data-provider='Reading Buddy'] td[data-section=badges] div[data-action=read]").inner_text()
            seen["after"] = _provider_reads(hub, world, learner)

            page.click("nav.learner >> text=Record")
            assert "Bookworm 2" in page.inner_text("main")
            assert page.locator("svg.chart").count() == 1 and page.locator("svg.spark").count() == 1
            check_page(page, "record", checked)
            page.click("text=All activities")
            check_page(page, "section", checked)
            page.click("text=Older entries")
            assert "Book 0" in page.inner_text("main")

            page.click("nav.learner >> text=Export")
            check_page(page, "export", checked)
            with page.expect_download() as info:
                page.click("#export-json")
            target = downloads / info.value.suggested_filename
            info.value.save_as(target)
            seen["export"] = json.loads(target.read_text())

            page.click("nav.learner >> text=Disclosure history")
            assert "✓ Verified" in page.inner_text("#verified")
            check_page(page, "history", checked)
            page.select_option("#f-section", "badges")
            page.click("text=Filter")
            page.wait_for_url("**section=badges**")
            seen["history"] = page.inner_text("#history")

            page.click("nav.learner >> text=Delete")
            check_page(page, "delete", checked)
            page.click("text=Delete the whole record…")
            assert "Delete Kim's whole record?" in page.inner_text("h1")
            check_page(page, "delete-confirm", checked)
            page.click("text=No, go back")

            page.goto(f"{hub}/family/learners/{world.learner_id}/sign-in")
            check_page(page, "learner-sign-in", checked)
            page.fill("#email", "kim@example.org")
            page.click("text=Send an invitation")
            assert "We sent Kim an invitation" in page.inner_text("#flash")
            page.goto(f"{hub}/family/learners/{world.learner_id}/nope")
            assert page.inner_text("h1") == "Not found"
            check_page(page, "not-found", checked)
        finally:
            browser.close()
    return seen


def _learner_journey(hub: str, link: str, checked: list[str]) -> str:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True).new_page()
            page.goto(link)
            check_page(page, "learner-invite", checked)
            page.fill("#password", "kim's own password")
            page.click("button[type=submit]")
            page.wait_for_url(f"{hub}/family")
            check_page(page, "learner-home", checked)
            page.click("text=Open your record")
            assert "Sharing" not in page.inner_text("nav.learner")
            page.click("nav.learner >> text=Disclosure history")
            check_page(page, "learner-history", checked)
            page.goto(page.url.replace("/history", "/sharing"))
            text = page.inner_text("main")
        finally:
            browser.close()
    return text


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium is not installed")
@pytest.mark.skipif(not AXE.is_file(), reason="axe-core is not installed (make test runs npm ci in tests/js)")
async def test_family_portal_in_a_real_browser(live_server, engine, tmp_path):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    world = await make_world(engine, age=14)
    learner = learner_id_for(world, world)  # type: ignore[arg-type]
    checked: list[str] = []
    seen = await asyncio.to_thread(_guardian_journey, live_server, world, learner, checked, tmp_path)

    # Before the revocation the app read the badges; its very next call after it is refused.
    assert len(seen["before"]["data"]["learner"]["badges"]["nodes"]) == 3
    after = seen["after"]
    assert after["data"]["learner"]["badges"] is None and after["data"]["learner"]["activities"]["nodes"]
    assert [(e["extensions"]["code"], e["extensions"]["reason"]) for e in after["errors"]] == [("CONSENT_REQUIRED", "grant_revoked")]

    export = seen["export"]
    assert export["learner"]["given_name"] == "Kim"
    assert [b["name"] for b in export["sections"]["badges"]["entries"]] == ["Bookworm 2", "Bookworm 1", "Bookworm 0"]
    assert len(export["sections"]["activities"]["entries"]) == 25
    reads = {(g["section"], g["action"], g["revoked_at"] is None) for g in export["grants"] if g["action"] == "read"}
    assert reads == {("badges", "read", False), ("activities", "read", True)}
    assert [e["outcome"] for e in export["disclosureLog"] if e["section"] == "badges"] == ["allowed", "denied"]

    assert "✓ Allowed" in seen["history"] and "✗ Refused (grant revoked)" in seen["history"]
    assert "activities" not in seen["history"]  # filtered to badges

    async with engine.connect() as conn:
        body = (await conn.execute(select(OutboxMessage.body).where(OutboxMessage.to_address == "kim@example.org"))).scalar_one()
    link = re.search(r"(http://\S+/account/learner-invite/\S+)", body).group(1)  # type: ignore[union-attr]
    sharing = await asyncio.to_thread(_learner_journey, live_server, link, checked)
    assert "Your family manages sharing until you are 18" in sharing
    assert len(checked) == 15 and all((SCREENSHOTS / f"{n}-360.png").is_file() for n in checked)
