"""A real uvicorn server (a child process) on the test database, for black-box clients."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

PSEUDONYM_KEY = bytes(range(32))  # = tests.conftest.PSEUDONYM_KEY (no circular import)

# KINFOLIO_TEST_PORTS=8300-8349 moves the servers tests start when several runs share a machine.
_LOW, _, _HIGH = os.environ.get("KINFOLIO_TEST_PORTS", "8100-8149").partition("-")
PORTS = range(int(_LOW), int(_HIGH) + 1)


def _free_port() -> int:
    for port in PORTS:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


def server_env(*, database_url: str, signing_key_pem: str, data_dir: str, port: int) -> dict[str, str]:
    """The environment of a hub server a test starts on the test database, issuing as itself."""
    return {
        **os.environ,
        "KINFOLIO_ENVIRONMENT": "test",
        "KINFOLIO_DATABASE_URL": database_url,
        "KINFOLIO_DATA_DIR": data_dir,
        "KINFOLIO_ISSUER": f"http://127.0.0.1:{port}",
        "KINFOLIO_SIGNING_KEY_PEM": signing_key_pem,
        "KINFOLIO_PSEUDONYM_KEY_HEX": PSEUDONYM_KEY.hex(),
        "KINFOLIO_SESSION_SECRET_HEX": "ab" * 32,
    }


@pytest.fixture(scope="session")
def live_server(database_url, signing_key_pem, tmp_path_factory, engine) -> Iterator[str]:  # type: ignore[no-untyped-def]
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = server_env(database_url=database_url, signing_key_pem=signing_key_pem,
                     data_dir=str(tmp_path_factory.mktemp("live-data")), port=port)
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "hub.asgi:app", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env,
    )
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz", timeout=0.5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise RuntimeError("the live server did not start")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)
