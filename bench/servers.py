"""Starting and stopping hub servers (uvicorn subprocesses) for a benchmark run."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from collections.abc import AsyncIterator
from pathlib import Path

from bench.http import Connection

HOST = "127.0.0.1"


def server_env(*, database_url: str, data_dir: Path, issuer_port: int, pseudonym_key_hex: str,
               bypass_consent: bool = False, pool_size: int = 10) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINFOLIO_")}
    env.update({
        "KINFOLIO_ENVIRONMENT": "development",
        "KINFOLIO_DATABASE_URL": database_url,
        "KINFOLIO_DATA_DIR": str(data_dir),
        "KINFOLIO_SIGNING_KEY_FILE": str(data_dir / "jwt-signing-key.pem"),
        # Every server of a run shares one issuer, so a token from one is valid on all.
        "KINFOLIO_ISSUER": f"http://{HOST}:{issuer_port}",
        "KINFOLIO_PSEUDONYM_KEY_HEX": pseudonym_key_hex,
        "KINFOLIO_DATABASE_POOL_SIZE": str(pool_size),
        "KINFOLIO_BENCHMARK_BYPASS_CONSENT": "1" if bypass_consent else "0",
        # Server time per response (hub/server_timing.py), reported beside the client's round trip.
        "KINFOLIO_SERVER_TIMING": "1",
        # The load generators are one client each: the per-client limiter (100/s by default) would
        # answer 429 once refusals get cheap (the revocation run) and measure the limiter instead.
        "KINFOLIO_RATE_LIMIT_PER_MINUTE": "100000000",
        "KINFOLIO_RATE_LIMIT_BURST": "1000000",
    })
    return env


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (proc(5))


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (uvicorn's worker), from /proc."""
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return sum(cpu_seconds(process) for process in [pid, *map(int, children)])


@asynccontextmanager
async def hub_server(port: int, env: dict[str, str], *, workers: int = 1, log: Path | None = None,
                     cwd: Path | None = None, command: list[str] | None = None) -> AsyncIterator[subprocess.Popen]:
    """uvicorn serving the hub; ``cwd`` (default: ours) is the checkout whose code it imports;
    ``command``: one worker started by this command instead (bench.gc_share).

    Several workers run as ``kinfolio serve --workers N`` does in production (hub/serving.py:
    one SO_REUSEPORT socket per worker); one worker is plain uvicorn, which is what that command
    runs for one worker and what older checkouts (bench.compare_commits) can run too.
    """
    if command is not None:
        cmd = command
    elif workers == 1:
        cmd = [sys.executable, "-m", "uvicorn", "hub.asgi:app", "--host", HOST, "--port", str(port),
               "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
    else:
        cmd = [sys.executable, "-c", "from hub.cli import app; app()", "serve", "--workers", str(workers),
               "--no-access-log", "--log-level", "warning"]
        env = {**env, "KINFOLIO_HOST": HOST, "KINFOLIO_PORT": str(port)}
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=out, start_new_session=True, cwd=cwd)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server on port {port} exited with {proc.returncode} (log: {log})")
            try:
                conn = Connection(HOST, port)
                status, _ = await conn.request("GET", "/healthz")
                conn.close()
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server on port {port} did not start (log: {log})")
            await asyncio.sleep(0.2)
        # With several workers, give every worker time to boot before measuring.
        await asyncio.sleep(1.0 + 0.5 * workers if workers > 1 else 0)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # our own process group only (start_new_session)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if log:
            out.close()
