"""Test doubles that are real servers or transports, not mocks: a flaky network, a small LRS."""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

# KINFOLIO_TEST_PORTS=8300-8349 (as for tests/live_server.py) keeps runs sharing a machine apart:
# a hub started here on another run's port would answer for the wrong database.
_LOW, _, _HIGH = os.environ.get("KINFOLIO_TEST_PORTS", "8250-8299").partition("-")
PORTS = range(int(_LOW), int(_HIGH) + 1)


def free_port() -> int:
    for port in PORTS:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


class FlakyTransport(httpx.AsyncBaseTransport):
    """Wraps the hub: the first requests fail as configured, then everything passes.

    ``script`` is consumed one entry per request: "503" / "429" answer without reaching the hub;
    "lost" forwards the request (the hub commits) and then answers 503, as a proxy timing out would;
    "reset" raises a connection error; None passes through.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, script: list[str | None], retry_after: str = "0") -> None:
        self.inner = inner
        self.script = list(script)
        self.retry_after = retry_after
        self.seen: list[tuple[str, str | None]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        step = self.script.pop(0) if self.script else None
        self.seen.append((request.url.path, step))
        if step == "reset":
            raise httpx.ConnectError("connection reset", request=request)
        if step in ("503", "429"):
            return httpx.Response(int(step), headers={"Retry-After": self.retry_after}, request=request)
        response = await self.inner.handle_async_request(request)
        if step == "lost":
            await response.aread()
            return httpx.Response(503, request=request)
        return response


class FakeLrs:
    """An LRS Statement API: GET /xapi/statements with since/ascending/limit and ``more`` paging."""

    def __init__(self, statements: list[dict[str, Any]], username: str, password: str) -> None:
        self.statements = statements  # each carries "stored"
        self.expected_auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.requests: list[dict[str, Any]] = []
        self.port = 0

    def _page(self, since: str | None, offset: int, limit: int) -> dict[str, Any]:
        # ``since`` is exclusive (xAPI 1.0.3 Communication §2.1.3); compare instants, not strings.
        after = datetime.fromisoformat(since) if since else None
        matching = sorted(
            (s for s in self.statements if after is None or datetime.fromisoformat(s["stored"]) > after),
            key=lambda s: datetime.fromisoformat(s["stored"]),
        )
        chunk = matching[offset : offset + limit]
        more = ""
        if offset + limit < len(matching):
            more = "/xapi/statements?" + urlencode({"more": offset + limit, "since": since or "", "limit": limit})
        return {"statements": chunk, "more": more}

    @contextmanager
    def serve(self) -> Iterator[str]:
        lrs = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                lrs.requests.append({"path": parts.path, "query": query, "headers": dict(self.headers)})
                if self.headers.get("X-Experience-API-Version") != "1.0.3":
                    return self._send(400, {"error": "X-Experience-API-Version 1.0.3 required"})
                if self.headers.get("Authorization") != lrs.expected_auth:
                    return self._send(401, {"error": "unauthorised"})
                if parts.path != "/xapi/statements":
                    return self._send(404, {})
                since = query.get("since") or None
                body = lrs._page(since, int(query.get("more", 0)), int(query.get("limit", 100)))
                self._send(200, body)

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Experience-API-Version", "1.0.3")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.port = free_port()
        with running(Handler, self.port):
            yield f"http://127.0.0.1:{self.port}/xapi/"


@contextmanager
def running(handler: type[BaseHTTPRequestHandler], port: int) -> Iterator[int]:
    """A threaded HTTP server on 127.0.0.1:``port`` (0: the OS chooses) for the block; yields the port."""
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def static_server(routes: dict[str, tuple[Any, ...]], seen: list[str] | None = None) -> Iterator[str]:
    """Serves fixed documents, 404 otherwise; yields the base URL. A route is path -> (content type,
    body) or (content type, body, status, extra headers); ``routes`` may be changed while serving.
    Requested paths are appended to ``seen``."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return None

        def do_GET(self) -> None:  # noqa: N802
            if seen is not None:
                seen.append(self.path)
            if self.path not in routes:
                self.send_error(404)
                return
            content_type, body, *rest = routes[self.path]
            self.send_response(rest[0] if rest else 200)
            for name, value in (rest[1] if len(rest) > 1 else {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with running(Handler, 0) as port:
        yield f"http://127.0.0.1:{port}"
