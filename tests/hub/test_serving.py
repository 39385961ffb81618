"""``kinfolio serve --workers N`` (hub/serving.py): connections spread over the workers, a dead
worker is replaced, SIGHUP swaps every worker without failing a request, workers stop when the
supervisor is killed, a busy port and a worker that cannot start stop the server with a reason."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hub.serving import AddressInUse, balanced_workers_supported, check_address_free, serve_workers
from tests.live_server import _free_port, server_env

pytestmark = pytest.mark.skipif(not balanced_workers_supported(), reason="SO_REUSEPORT balancing is Linux's")


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(child) for child in (task / "children").read_text().split())
    return found


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    return inodes


def _tcp_sockets(port: int) -> Iterator[tuple[int, str, str]]:
    """(remote port, state, inode) of the IPv4 sockets on local port ``port`` (proc(5), /proc/net/tcp)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port:
            yield int(fields[2].split(":")[1], 16), fields[3], fields[9]


def _server_side_inodes(port: int, client_ports: set[int]) -> set[str]:
    """Inodes of the server ends of our established connections (state 01)."""
    return {inode for remote, state, inode in _tcp_sockets(port) if remote in client_ports and state == "01"}


def _healthz(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n")
    sock.settimeout(10)
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    return answer.split(b"\r\n", 1)[0]


@pytest.fixture()
def two_workers(database_url, signing_key_pem, tmp_path, engine) -> Iterator[tuple[subprocess.Popen, int]]:  # type: ignore[no-untyped-def]
    port = _free_port()
    env = {**server_env(database_url=database_url, signing_key_pem=signing_key_pem, data_dir=str(tmp_path), port=port),
           "KINFOLIO_HOST": "127.0.0.1", "KINFOLIO_PORT": str(port)}
    process = subprocess.Popen(
        [sys.executable, "-c", "from hub.cli import app; app()", "serve", "--workers", "2", "--no-access-log",
         "--log-level", "warning"], env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while len(_listening_workers(process.pid, port)) < 2:
            assert process.poll() is None, "kinfolio serve exited"
            assert time.monotonic() < deadline, "two workers did not start listening"
            time.sleep(0.2)
        yield process, port
    finally:
        if process.poll() is None:  # (a test may have killed it)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=40) == 0


def _listening_workers(supervisor: int, port: int) -> set[int]:
    """The supervisor's children that hold a socket listening on the port (state 0A)."""
    listening = {inode for _, state, inode in _tcp_sockets(port) if state == "0A"}
    return {child for child in _children(supervisor) if _socket_inodes(child) & listening}


def _connect_all(port: int, count: int) -> list[socket.socket]:
    """``count`` connections opened at once, as a client pool does, each answered once."""
    clients = [socket.socket() for _ in range(count)]
    for client in clients:  # every SYN sent before any handshake is waited for
        client.setblocking(False)
        client.connect_ex(("127.0.0.1", port))
    for client in clients:
        select.select([], [client], [], 10)
        client.setblocking(True)
    for client in clients:
        assert _healthz(client) == b"HTTP/1.1 200 OK"
    return clients


def test_connections_opened_together_spread_over_the_workers(two_workers) -> None:  # type: ignore[no-untyped-def]
    # uvicorn's own --workers share one socket, and the first worker to wake accepts every
    # connection waiting (all 24 here). Three pools in turn; it is a race, and with uvicorn's own
    # --workers this test failed in 3 of 8 runs.
    process, port = two_workers
    for _ in range(3):
        clients = _connect_all(port, 24)
        try:
            ours = _server_side_inodes(port, {c.getsockname()[1] for c in clients})
            assert len(ours) == 24
            held = {worker: len(_socket_inodes(worker) & ours) for worker in _listening_workers(process.pid, port)}
            assert len(held) == 2 and sum(held.values()) == 24
            assert min(held.values()) >= 1, held
        finally:
            for client in clients:
                client.close()


def test_a_dead_worker_is_replaced_and_no_connection_waits_on_it(two_workers) -> None:  # type: ignore[no-untyped-def]
    process, port = two_workers
    victim = min(_listening_workers(process.pid, port))
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:
        workers = _listening_workers(process.pid, port)
        if len(workers) == 2 and victim not in workers:
            break
        assert process.poll() is None, "the supervisor exited instead of replacing the worker"
        assert time.monotonic() < deadline, "no new worker"
        time.sleep(0.2)
    # Every new connection lands on a live worker and is answered.
    for client in _connect_all(port, 16):
        client.close()
    assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200


def test_sighup_restarts_every_worker_without_refusing_a_connection(two_workers) -> None:  # type: ignore[no-untyped-def]
    """Clients opening a new connection for every request all through the swap: every request is
    answered. With a socket per worker, the connections queued on an old worker's socket when it
    closed were reset, and uvicorn closed those it had accepted a moment before it stopped,
    unanswered: this failed in 2 of 4 runs; with the socket handed over but no pause before uvicorn's
    shutdown, in 1 of 4."""
    process, port = two_workers
    before = _listening_workers(process.pid, port)
    answers: list[int] = []
    failures: list[str] = []
    swapped = threading.Event()

    def client() -> None:
        while not swapped.is_set():
            try:
                answers.append(httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10,
                                         headers={"Connection": "close"}).status_code)
            except httpx.HTTPError as exc:
                failures.append(repr(exc))

    clients = [threading.Thread(target=client) for _ in range(6)]
    for thread in clients:
        thread.start()
    try:
        time.sleep(0.3)
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 90
        # Until both old workers have stopped listening and exited, and two new ones listen.
        while before & _children(process.pid) or len(_listening_workers(process.pid, port)) != 2:
            assert process.poll() is None, "the supervisor exited"
            assert time.monotonic() < deadline, f"workers not replaced: {before} -> {_children(process.pid)}"
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        swapped.set()
        for thread in clients:
            thread.join(30)
    assert failures == [] and set(answers) == {200}, (failures[:3], len(failures), len(answers))
    assert len(answers) > 50
    assert not before & _listening_workers(process.pid, port)


def test_workers_stop_when_the_supervisor_is_killed(two_workers) -> None:  # type: ignore[no-untyped-def]
    """SIGKILL (or the OOM killer) gives the supervisor no chance to stop its workers: they notice
    it is gone, finish, and free the port, instead of serving on with no one to restart them."""
    process, port = two_workers
    workers = _listening_workers(process.pid, port)
    assert len(workers) == 2
    process.kill()
    process.wait(timeout=10)
    try:
        deadline = time.monotonic() + 30
        while any(_state(worker) not in ("Z", "gone") for worker in workers):
            assert time.monotonic() < deadline, f"workers still running: {workers}"
            time.sleep(0.1)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    finally:
        for worker in workers:  # none are left behind, whatever the outcome
            if _state(worker) not in ("Z", "gone"):
                os.kill(worker, signal.SIGKILL)


def _state(pid: int) -> str:
    """A process's state letter (proc(5)): "Z" for one that has exited and awaits its parent's wait."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


@pytest.mark.parametrize("reuse_port", [False, True])
def test_a_port_in_use_is_refused_even_by_an_so_reuseport_listener(reuse_port: bool) -> None:
    # An earlier `kinfolio serve --workers N` listens with SO_REUSEPORT: without the probe, new
    # workers would join its group and the two servers would split the traffic.
    port = _free_port()
    with socket.socket() as holder:
        if reuse_port:
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind(("127.0.0.1", port))
        holder.listen()
        with pytest.raises(AddressInUse, match=f"127.0.0.1:{port} is already in use"):
            check_address_free("127.0.0.1", port)
        answer = subprocess.run(
            [sys.executable, "-c", "from hub.cli import app; app()", "serve", "--workers", "2"],
            env={**os.environ, "KINFOLIO_HOST": "127.0.0.1", "KINFOLIO_PORT": str(port), "KINFOLIO_ENVIRONMENT": "development"},
            capture_output=True, text=True, timeout=60,
        )
    assert answer.returncode == 2
    assert "is already in use" in answer.stderr and "KINFOLIO_PORT" in answer.stderr
    check_address_free("127.0.0.1", port)  # free again once the holder closed


def test_an_unknown_log_level_is_refused() -> None:
    answer = subprocess.run([sys.executable, "-c", "from hub.cli import app; app()", "serve", "--log-level", "loud"],
                            env={**os.environ, "KINFOLIO_ENVIRONMENT": "development"}, capture_output=True, text=True,
                            timeout=60)
    assert answer.returncode == 2
    assert "unknown log level 'loud'" in answer.stderr


def test_a_worker_that_cannot_start_stops_the_server_instead_of_looping() -> None:
    started = time.monotonic()
    status = serve_workers("tests.no_such_module:app", host="127.0.0.1", port=_free_port(), workers=2, log_level="critical")
    assert status != 0
    assert time.monotonic() - started < 30
