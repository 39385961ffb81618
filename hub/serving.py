"""``kinfolio serve --workers N``: N uvicorn worker processes, each with its own listening socket.

Why not uvicorn's own ``--workers``: its workers share one listening socket, and each worker's
event loop accepts every connection that is waiting when it wakes. Clients that open their
connections together and keep them alive (a sync job's pool, a reverse proxy's upstream pool,
the benchmark's clients) then all land on whichever worker woke first, which runs at 100 % of
one core while the others idle: with 2 workers and 16 clients, 2 runs in 3 put every connection
on one worker (BENCHMARKS.md, eleventh session). Here every worker binds its own socket to the
same address with ``SO_REUSEPORT``, and Linux spreads new connections over the sockets by a hash
of their addresses.

The supervisor makes the sockets, one per worker slot, and hands each to its worker. SIGHUP
restarts the workers one at a time: the new worker gets the old one's socket, listening, and
answers from it before the old one stops, so the connections queued on that socket are answered
too. (Had each worker its own socket, the old worker's close would reset the connections the
kernel had already queued on it: ``tests/hub/test_serving.py`` saw that under load.) A worker that
dies has its socket closed and its slot gets a new one, so no connection waits on a dead worker.

Linux only: elsewhere ``SO_REUSEPORT`` does not spread connections, so uvicorn's own supervisor
is used.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from multiprocessing.connection import wait
from typing import Any, NamedTuple

import uvicorn
from uvicorn.config import STARTUP_FAILURE

# uvicorn's own error logger: the supervisor's lines look like the workers'.
log = logging.getLogger("uvicorn.error")

# How long workers get to finish their requests after SIGTERM before they are killed.
SHUTDOWN_SECONDS = 30.0
# How long a stopping worker waits, after it stopped accepting, for the requests of the connections
# it had just accepted (a request arrives within milliseconds of its connection).
DRAIN_SECONDS = 0.5


class AddressInUse(Exception):
    """Something else already listens on the address."""


def balanced_workers_supported() -> bool:
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def _address(host: str, port: int) -> tuple[int, Any]:
    family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    return family, sockaddr


def check_address_free(host: str, port: int) -> None:
    """Bind once without ``SO_REUSEPORT``: a port held by anything, including an earlier Kinfolio
    still serving with ``SO_REUSEPORT``, refuses, where the workers' own binds would share it and
    split the traffic with the old server."""
    family, sockaddr = _address(host, port)
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a TIME_WAIT is not a listener
        try:
            probe.bind(sockaddr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise AddressInUse(f"{host}:{port} is already in use") from None
            raise


def reuseport_socket(host: str, port: int) -> socket.socket:
    """Bound, not listening: the event loop listens once the app's startup has finished, so the
    kernel sends no connection to a worker that cannot answer yet (it spreads connections over
    the listening sockets only)."""
    family, sockaddr = _address(host, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(sockaddr)
    sock.set_inheritable(False)
    return sock


class _Worker(uvicorn.Server):
    """uvicorn's server, telling the supervisor once it has started (lifespan done, listening), and
    stopping in two steps: no new connections first, then uvicorn's shutdown."""

    def __init__(self, config: uvicorn.Config, ready: Any) -> None:
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._watch_supervisor()
            self._ready.set()

    def _watch_supervisor(self) -> None:
        """Stop, as on SIGTERM, once the supervisor is gone: killed (SIGKILL, the OOM killer), it
        cannot stop its workers, which would go on serving with no one to restart or stop them.
        ``multiprocessing``'s parent sentinel becomes readable when the supervisor's process ends."""
        parent = multiprocessing.parent_process()
        if parent is None:
            return
        loop = asyncio.get_running_loop()

        def supervisor_gone() -> None:
            loop.remove_reader(parent.sentinel)
            log.warning("the supervisor (pid %s) is gone; worker %d stops", parent.pid, os.getpid())
            self.should_exit = True

        loop.add_reader(parent.sentinel, supervisor_gone)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn's shutdown closes at once every connection that has not sent a complete request
        # yet, which includes one accepted a moment ago whose request is on its way: that client
        # gets no answer. So stop accepting first (the socket stays open in the supervisor and in
        # a restart's new worker, which take over its queue), and give those requests time to
        # arrive; uvicorn then finishes them.
        for server in self.servers:
            server.close()
        await asyncio.sleep(DRAIN_SECONDS)
        await super().shutdown(sockets=sockets)


def _worker(app: str, host: str, port: int, options: dict[str, Any], ready: Any, sock: socket.socket) -> None:
    config = uvicorn.Config(app, host=host, port=port, **options)
    server = _Worker(config, ready)
    server.run(sockets=[sock])  # it listens on the socket once the app has started
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def serve_workers(app: str, *, host: str, port: int, workers: int, **options: Any) -> int:
    """Run ``workers`` processes until SIGINT or SIGTERM (SIGHUP: a rolling restart); returns the
    exit status."""
    # Built here too for its checks and its logging set-up, before any worker starts.
    uvicorn.Config(app, host=host, port=port, **options)
    check_address_free(host, port)
    spawn = multiprocessing.get_context("spawn")
    stopping = restart_requested = False

    def stop(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    def restart(_signum: int, _frame: Any) -> None:
        nonlocal restart_requested
        restart_requested = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, restart)

    def start(sock: socket.socket) -> _Slot:
        ready = spawn.Event()
        process = spawn.Process(target=_worker, args=(app, host, port, options, ready, sock), name="kinfolio-worker")
        process.start()
        return _Slot(process, ready, sock)

    status = 0
    running = [start(reuseport_socket(host, port)) for _ in range(workers)]
    log.info("serving on %s:%d with %d worker processes (pids %s)", host, port, workers,
             ", ".join(str(slot.process.pid) for slot in running))
    try:
        while not stopping:
            wait([slot.process.sentinel for slot in running], timeout=0.5)
            if restart_requested and not stopping:
                restart_requested = False
                _rolling_restart(running, start, lambda: stopping)
            for i, (process, ready, sock) in enumerate(running):
                if process.is_alive() or stopping:
                    continue
                # Its socket goes with it (the connections queued there are reset, as they would be
                # by the dead worker's own close); the kernel sends new ones to the other workers.
                sock.close()
                if not ready.is_set():
                    # It never started (a bad setting, an import error, an unreachable database):
                    # starting it again would only loop, so the whole server stops.
                    log.error("worker %d exited with %s before it started; stopping", process.pid, process.exitcode)
                    # (a signal's negative exitcode is no exit status: report uvicorn's own)
                    status = process.exitcode if process.exitcode and process.exitcode > 0 else STARTUP_FAILURE
                    stopping = True
                    break
                log.warning("worker %d exited with %s; starting another", process.pid, process.exitcode)
                running[i] = start(reuseport_socket(host, port))
    finally:
        for slot in running:
            if slot.process.is_alive():
                slot.process.terminate()  # SIGTERM: uvicorn finishes the requests in flight
        deadline = time.monotonic() + SHUTDOWN_SECONDS
        for slot in running:
            slot.process.join(max(0.0, deadline - time.monotonic()))
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join()
            slot.socket.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status


class _Slot(NamedTuple):
    process: Any
    ready: Any  # set once the worker has started
    socket: socket.socket  # the slot's listening socket; the supervisor keeps it open for the next worker


def _rolling_restart(running: list[_Slot], start: Any, stopping: Any) -> None:
    """SIGHUP: replace the workers one at a time, each new one accepting on its slot's socket before
    the old one stops, so no connection goes unanswered (e.g. after ``kinfolio credentials
    rotate-key``, whose new key file a worker reads at its start). A new worker that cannot start is
    logged, and the workers still running are kept."""
    log.info("SIGHUP: restarting %d workers one at a time", len(running))
    for i, old in enumerate(list(running)):
        new = start(old.socket)
        while not new.ready.wait(0.2):
            if not new.process.is_alive():
                log.error("worker %d exited with %s before it started; keeping the running workers",
                          new.process.pid, new.process.exitcode)
                return
            if stopping():
                running.append(new)  # stopped with the others (their shared socket closes with them)
                return
        running[i] = new
        # SIGTERM: it stops accepting (its copy of the socket closes; the new worker's and ours stay
        # open, so the socket keeps listening) and finishes its requests in flight.
        old.process.terminate()
        old.process.join(SHUTDOWN_SECONDS)
        if old.process.is_alive():
            old.process.kill()
            old.process.join()
    log.info("SIGHUP: every worker restarted")


def serve(app: str, *, host: str, port: int, workers: int, **options: Any) -> int:
    """One process for one worker; otherwise balanced workers where the platform allows."""
    if workers == 1 or not balanced_workers_supported():
        uvicorn.run(app, host=host, port=port, workers=workers, **options)
        return 0
    return serve_workers(app, host=host, port=port, workers=workers, **options)
