"""A minimal keep-alive HTTP/1.1 client on asyncio streams, and a closed-loop load runner.

httpx costs ~0.3 ms of client CPU per request; on a 2-core machine shared with the server that
would be measured as server time. This client sends pre-encoded requests and reads responses by
Content-Length (or chunked), nothing else.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
import uvloop

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on uvloop, as the hub runs: the load generator shares the machine's two cores
    with the hub and PostgreSQL, so CPU it spends is taken from the server it measures."""
    return uvloop.run(main)


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        # The last response's `Server-Timing: app;dur=<ms>` (hub/server_timing.py), if it had one.
        self.server_ms: float | None = None

    async def _open(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port, limit=2**24)

    async def request(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        if self._writer is None:
            await self._open()
        assert self._reader is not None and self._writer is not None
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self._writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        status_line = await self._reader.readline()
        if not status_line:
            self._writer = None
            raise ConnectionError("server closed the connection")
        status = int(status_line.split()[1])
        length, chunked, close = None, False, False
        self.server_ms = None
        while True:
            line = await self._reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection" and "close" in value.lower():
                close = True
            elif name == "server-timing":
                self.server_ms = server_timing_ms(value)
        if chunked:
            parts = []
            while True:
                size = int((await self._reader.readline()).strip(), 16)
                if size == 0:
                    await self._reader.readline()
                    break
                parts.append(await self._reader.readexactly(size))
                await self._reader.readline()
            data = b"".join(parts)
        else:
            data = await self._reader.readexactly(length or 0)
        if close:
            self.close()
        return status, data

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def server_timing_ms(header: str, metric: str = "app") -> float | None:
    """The ``dur`` of one metric of a ``Server-Timing`` header value (W3C Server Timing)."""
    for entry in header.split(","):
        name, *params = (part.strip() for part in entry.split(";"))
        if name == metric:
            for param in params:
                key, _, value = param.partition("=")
                if key.strip() == "dur":
                    try:
                        return float(value.strip().strip('"'))
                    except ValueError:
                        return None
    return None


def graphql_body(query: str, variables: dict[str, Any] | None = None) -> bytes:
    return orjson.dumps({"query": query, "variables": variables or {}})


async def post_graphql(conn: Connection, token: str, body: bytes) -> dict[str, Any]:
    status, data = await conn.request(
        "POST", "/graphql", body, {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    )
    if status != 200:
        raise RuntimeError(f"HTTP {status}: {data[:300]!r}")
    return orjson.loads(data)


async def get_token(host: str, port: int, client_id: str, secret: str) -> str:
    conn = Connection(host, port)
    try:
        body = f"grant_type=client_credentials&client_id={client_id}&client_secret={secret}".encode()
        status, data = await conn.request("POST", "/oauth/token", body, {"Content-Type": "application/x-www-form-urlencoded"})
    finally:
        conn.close()
    if status != 200:
        raise RuntimeError(f"token request failed: HTTP {status} {data[:200]!r}")
    return orjson.loads(data)["access_token"]


@dataclass
class LoadResult:
    seconds: float
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests
    errors: int = 0
    server_ms: list[float] = field(default_factory=list)  # Server-Timing of successful requests that had one

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies) * 1000 if self.latencies else float("nan")

    @property
    def server_p50_ms(self) -> float:
        return statistics.median(self.server_ms) if self.server_ms else float("nan")


async def closed_loop(
    host: str, port: int, concurrency: int, *, duration: float | None = None, requests: int | None = None,
    send: Callable[[Connection, int], Awaitable[bool]],
) -> LoadResult:
    """``concurrency`` clients each sending the next request when the last one answered.

    ``send(conn, i)`` performs request number ``i`` and says whether it succeeded. Stops after
    ``duration`` seconds or ``requests`` requests in total.
    """
    latencies: list[float] = []
    server_ms: list[float] = []
    errors = 0
    counter = 0
    started = time.perf_counter()
    deadline = started + duration if duration else float("inf")

    async def worker() -> None:
        nonlocal counter, errors
        conn = Connection(host, port)
        try:
            while True:
                if requests is not None and counter >= requests:
                    return
                if time.perf_counter() >= deadline:
                    return
                i = counter
                counter += 1
                t0 = time.perf_counter()
                ok = await send(conn, i)
                if ok:
                    latencies.append(time.perf_counter() - t0)
                    if conn.server_ms is not None:
                        server_ms.append(conn.server_ms)
                else:
                    errors += 1
        finally:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return LoadResult(seconds=time.perf_counter() - started, latencies=latencies, errors=errors, server_ms=server_ms)
