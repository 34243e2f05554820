"""``phoneactors --workers N``: one server as ``N`` processes on one port.

The supervisor (this process) reserves the port, makes the workers' private folder
(:mod:`phoneactors.workers`) and starts each worker as ``python -m phoneactors serve`` with the
same options, the port it reserved and its share of the inference threads. Each worker binds
the port with ``SO_REUSEPORT``; the kernel spreads connections over them.

The workers leave signals to the supervisor (a terminal's Ctrl-C and systemd's stop reach
every process of the group): the supervisor tells them what to do on their standard input,
``drain`` (take no new calls, let those in progress finish) or ``now`` (end them). If the
supervisor itself dies, a worker sees its standard input end and drains.

A worker that fails before it is ready stops the whole server with its exit status (the
configuration is wrong, or its engines would not load); one that dies later is started again,
after a pause that grows while it keeps dying.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Final

import trio

from ..engines.base import default_thread_count
from ..server import listening_socket
from ..workers import ENV_COUNT, ENV_FOLDER, ENV_INDEX, WorkerBoard
from .common import EXIT_FAILURE, PROG, error, run_trio

__all__ = ["supervise", "worker_command"]

logger = logging.getLogger("phoneactors.cli")

RESTART_PAUSES: Final = (1.0, 2.0, 5.0, 10.0, 30.0)
"""Seconds before a worker that died is started again, growing while it keeps dying."""
STABLE_AFTER: Final = 60.0
"""A worker that ran this long before dying is started again after the first pause."""
_READY_POLL: Final = 0.1


def worker_command(argv: Sequence[str], port: int, threads: int | None) -> list[str]:
    """The command line of a worker: this one, on the reserved ``port`` and, unless ``threads``
    is ``None`` (the user chose), with that share of the inference threads."""
    command = [sys.executable, "-m", "phoneactors", "serve", *argv, "--port", str(port)]
    if threads is not None:
        command += ["--threads", str(threads)]
    return command


@dataclass
class _Worker:
    index: int
    process: trio.Process | None = None
    ready_once: bool = False
    failure: int | None = None
    restarts: list[float] = field(default_factory=list)


class _Supervisor:
    def __init__(self, command: list[str], board: WorkerBoard, env: dict[str, str]) -> None:
        self.command = command
        self.board = board
        self.env = env
        self.workers = [_Worker(index) for index in range(board.count)]
        self.stopping: str | None = None  # None, "drain" or "now"
        self.failed: int | None = None

    async def tell(self, worker: _Worker, order: str) -> None:
        process = worker.process
        if process is None or process.stdin is None or process.returncode is not None:
            return
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await process.stdin.send_all(order.encode("ascii") + b"\n")  # unless it has ended

    async def stop(self, order: str) -> None:
        self.stopping = order
        for worker in self.workers:
            await self.tell(worker, order)

    async def keep_running(self, worker: _Worker) -> None:
        deaths = 0  # in a row, each soon after its start
        while self.stopping is None:
            started = trio.current_time()
            env = self.env | {ENV_INDEX: str(worker.index)}
            async with trio.open_nursery() as nursery:
                # Cancelled (the supervisor failing), run_process ends the worker.
                worker.process = await nursery.start(
                    partial(
                        trio.run_process,
                        self.command,
                        stdin=subprocess.PIPE,
                        env=env,
                        check=False,
                    )
                )
                code = await worker.process.wait()
            self.board.reset(worker.index)
            if self.stopping is not None:
                return
            if not worker.ready_once:
                logger.error("worker %d failed to start (exit status %s)", worker.index, code)
                self.failed = code if code > 0 else EXIT_FAILURE
                await self.stop("now")
                return
            deaths = 1 if trio.current_time() - started > STABLE_AFTER else deaths + 1
            wait = RESTART_PAUSES[min(deaths, len(RESTART_PAUSES)) - 1]
            logger.error(
                "worker %d ended (%s); starting it again in %g s",
                worker.index,
                f"exit status {code}" if code >= 0 else signal.Signals(-code).name,
                wait,
            )
            await trio.sleep(wait)

    async def watch_ready(self, url: str) -> None:
        announced = False
        while True:
            for worker, ready in zip(self.workers, self.board.ready(), strict=True):
                worker.ready_once |= ready
            if not announced and all(worker.ready_once for worker in self.workers):
                announced = True
                count = len(self.workers)
                print(
                    f"{PROG} listening on {url} (webhook POST /, stream /stream; {count} workers)",
                    flush=True,
                )
                logger.info("ready: listening on %s with %d workers", url, count)
            await trio.sleep(_READY_POLL)

    async def watch_signals(self, signals: AsyncIterator[int]) -> None:
        async for signum in signals:
            name = signal.Signals(signum).name
            if self.stopping is None:
                logger.info(
                    "%s: shutting down %d workers (send it again to end calls in progress now)",
                    name,
                    len(self.workers),
                )
                await self.stop("drain")
            else:
                logger.warning("%s again: ending calls in progress now", name)
                await self.stop("now")


def supervise(
    argv: Sequence[str], count: int, host: str, port: int, *, threads_chosen: bool
) -> int:
    """Run ``count`` workers of this server until a signal; the exit status. Unless the user
    chose ``--threads``, each worker gets its share of the cores for inference."""
    try:
        reservation = listening_socket(host, port, shared=True)  # holds the port; never listens
    except OSError as exc:
        error(str(exc))
        return EXIT_FAILURE
    cores = default_thread_count()
    threads = max(1, cores // count)
    if count > cores:
        logger.warning("%d workers on %d cores: they will compete for the CPU", count, cores)
    folder = Path(tempfile.mkdtemp(prefix="phoneactors-workers-"))  # made owner-only
    try:
        board = WorkerBoard.create(folder, count)
        env = dict(os.environ) | {ENV_FOLDER: str(folder), ENV_COUNT: str(count)}
        bound = reservation.getsockname()[1]
        command = worker_command(argv, bound, None if threads_chosen else threads)
        supervisor = _Supervisor(command, board, env)
        address = f"[{host.strip('[]')}]" if ":" in host else host
        status = run_trio(
            lambda: _run(supervisor, f"http://{address}:{bound}"), "the supervisor failed"
        )
        board.close()
        return supervisor.failed if supervisor.failed is not None else status
    finally:
        reservation.close()
        shutil.rmtree(folder, ignore_errors=True)


async def _run(supervisor: _Supervisor, url: str) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as outer:
            outer.start_soon(supervisor.watch_signals, signals)
            outer.start_soon(supervisor.watch_ready, url)
            async with trio.open_nursery() as nursery:
                for worker in supervisor.workers:
                    nursery.start_soon(supervisor.keep_running, worker)
            outer.cancel_scope.cancel()
    if supervisor.failed is None and supervisor.stopping is not None:
        logger.info("all workers have ended")
    return None
