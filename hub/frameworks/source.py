"""Reading a CFPackage from a file or a URL (shared by ``kinfolio frameworks import`` and the
``case-package`` connector).

A URL is fetched with ``GET`` and ``Accept: application/json`` (a CASE provider's
``/ims/case/v1p0/CFPackages/{sourcedId}`` endpoint, CASE 1.1 REST binding §3, or any static
export), following redirects, at most ``MAX_BYTES``. Files and bodies must be UTF-8 JSON (a BOM
is accepted).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

MAX_BYTES = 64 * 1024 * 1024


class SourceError(ValueError):
    """The package could not be read (missing file, HTTP error, not JSON)."""


def is_url(source: str) -> bool:
    return source.startswith(("https://", "http://"))


def parse(raw: bytes, where: str) -> Any:
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise SourceError(f"{where}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except ValueError as exc:
        raise SourceError(f"{where}: not JSON ({exc})") from None


async def read_package(source: str, http: httpx.AsyncClient | None = None) -> Any:
    if not is_url(source):
        path = Path(source)
        try:
            if path.stat().st_size > MAX_BYTES:
                raise SourceError(f"{source}: larger than {MAX_BYTES} bytes")
            return parse(path.read_bytes(), source)
        except OSError as exc:
            raise SourceError(f"{source}: {exc.strerror}") from None
    own = http is None
    http = http or httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=10.0), follow_redirects=True)
    try:
        async with http.stream("GET", source, headers={"Accept": "application/json"}) as response:
            if response.status_code != 200:
                raise SourceError(f"{source}: HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_BYTES:
                    raise SourceError(f"{source}: larger than {MAX_BYTES} bytes")
    except httpx.HTTPError as exc:
        raise SourceError(f"{source}: {type(exc).__name__}: {exc}") from None
    finally:
        if own:
            await http.aclose()
    return parse(bytes(body), source)
