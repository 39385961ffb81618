"""The whole "Connect this app" journey in a real headless Chromium (Playwright).

A tiny client app (a thread serving two pages) redirects to Kinfolio with PKCE; the guardian
signs in, unticks one section and approves; the app exchanges the code and shows its GraphQL
read, which must contain exactly the approved sections.

Playwright's sync API runs in its own thread so it never touches pytest-asyncio's event loop
(see STACK_NOTES: the two do not share a thread).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.hub.oauth_helpers import PASSWORD, make_code_client, make_guardian
from tests.live_server import _free_port

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
QUERY = "{ learners { nodes { id badges { nodes { achievement { name } } } skills { nodes { proficiency } } activities(first: 5) { nodes { timestamp } } } } }"


class ClientApp:
    """A minimal confidential web client: /start redirects to Kinfolio, /cb redeems the code."""

    def __init__(self, hub: str, port: int) -> None:
        self.hub, self.base = hub, f"http://127.0.0.1:{port}"
        self.redirect_uri = f"{self.base}/cb"
        self.client_id = self.client_secret = ""
        self.result: dict | None = None
        app = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
                return

            def do_GET(self) -> None:  # noqa: N802
                url = urlsplit(self.path)
                if url.path == "/start":
                    app.verifier, app.state = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
                    challenge = base64.urlsafe_b64encode(hashlib.sha256(app.verifier.encode()).digest()).rstrip(b"=").decode()
                    query = urlencode({"response_type": "code", "client_id": app.client_id, "redirect_uri": app.redirect_uri,
                                       "scope": "badges:read skills:read activities:read", "state": app.state,
                                       "code_challenge": challenge, "code_challenge_method": "S256"})
                    self.send_response(302)
                    self.send_header("Location", f"{app.hub}/oauth/authorize?{query}")
                    self.end_headers()
                    return
                params = {k: v[0] for k, v in parse_qs(url.query).items()}
                assert params.get("state") == app.state
                token = httpx.post(f"{app.hub}/oauth/token", auth=(app.client_id, app.client_secret), data={
                    "grant_type": "authorization_code", "code": params["code"], "redirect_uri": app.redirect_uri,
                    "code_verifier": app.verifier}).json()
                read = httpx.post(f"{app.hub}/graphql", json={"query": QUERY},
                                  headers={"Authorization": f"Bearer {token['access_token']}"}).json()
                app.result = {"token": token, "read": read}
                body = f"<html><body><h1>Connected</h1><pre id='scope'>{token['scope']}</pre></body></html>".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


def _journey(app: ClientApp, email: str) -> str:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{app.base}/start")
            page.wait_for_url("**/account/login**")
            page.fill("#email", email)
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url("**/oauth/authorize**")
            assert "Connect “Journey App”?" in page.content()
            page.uncheck("input[name=allow][value='skills:read']")
            page.click("button[value=approve]")
            page.wait_for_url(f"{app.redirect_uri}**")
            return page.inner_text("#scope")
        finally:
            browser.close()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium is not installed")
async def test_connect_this_app_in_a_real_browser(live_server, engine):
    port = _free_port()
    app = ClientApp(live_server, port)
    family = await make_guardian(engine, "browser@example.org")
    client = await make_code_client(engine, "Journey App", redirect_uris=[app.redirect_uri],
                                    scopes=["activities:read", "badges:read", "skills:read"])
    app.client_id, app.client_secret = client.client_id, client.client_secret or ""
    app.thread.start()
    try:
        shown_scope = await asyncio.to_thread(_journey, app, "browser@example.org")
    finally:
        app.server.shutdown()
        app.server.server_close()
    assert shown_scope == "activities:read badges:read"
    assert app.result is not None
    read = app.result["read"]
    node = read["data"]["learners"]["nodes"][0]
    assert node["id"] == app.result["token"]["learner"]
    assert node["badges"] == {"nodes": []} and node["activities"] == {"nodes": []}
    assert node["skills"] is None  # the unticked section is refused
    assert [e["extensions"]["code"] for e in read["errors"]] == ["INSUFFICIENT_SCOPE"]
    assert json.dumps(read).count("lrn_") == 1
    _ = family
