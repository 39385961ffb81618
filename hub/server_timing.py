"""``Server-Timing`` response header (W3C Server Timing): how long the hub took to answer.

Off by default (``KINFOLIO_SERVER_TIMING``): the W3C specification's privacy and security section
warns that timing data can reveal what a server did, e.g. whether a learner exists or how much data
a query touched. The benchmarks turn it on to report *server* time, as issue 9's read target is
stated, beside the round trip their client sees.
"""

from __future__ import annotations

import time
from typing import Any

Scope = dict[str, Any]


class ServerTimingMiddleware:
    """Pure ASGI: ``Server-Timing: app;dur=<ms>`` on every HTTP response, measured from the
    request reaching the application to the response's first message (its status and headers,
    sent once the handler has the body)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                millis = (time.perf_counter() - started) * 1000
                headers = list(message.get("headers", ()))
                headers.append((b"server-timing", f"app;dur={millis:.3f}".encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, timed_send)
