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
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Final

import trio

from ..engines.base import default_thread_count
from ..server import listening_socket
from ..workers import ENV_COUNT, ENV_FOLDER, ENV_INDEX, WorkerBoard
from .common import EXIT_FAILURE, PROG, error, run_trio

__all__ = ["supervise", "thread_shares", "worker_command"]

logger = logging.getLogger("phoneactors.cli")

RESTART_PAUSES: Final = (1.0, 2.0, 5.0, 10.0, 30.0)
"""Seconds before a worker that died is started again, growing while it keeps dying."""
STABLE_AFTER: Final = 60.0
"""A worker that ran this long before dying is started again after the first pause."""
_READY_POLL: Final = 0.1
END_NOW_GRACE: Final = 15.0
"""Seconds a worker told to end its calls now (the supervisor failing) has before it is killed."""


def _how_it_ended(code: int) -> str:
    if code >= 0:
        return f"exit status {code}"
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


async def _end_now(process: trio.Process) -> None:
    """The supervisor is failing: tell the worker to end its calls now, then make sure."""
    if process.stdin is not None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await process.stdin.send_all(b"now\n")
    with trio.move_on_after(END_NOW_GRACE):
        await process.wait()
    process.kill()


def thread_shares(cores: int, count: int) -> list[int]:
    """Each worker's inference threads: the cores split as evenly as they go (at least one)."""
    base, extra = divmod(cores, count)
    return [max(1, base + (index < extra)) for index in range(count)]


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
    command: list[str]
    process: trio.Process | None = None
    ready_once: bool = False


class _Supervisor:
    def __init__(self, commands: list[list[str]], board: WorkerBoard, env: dict[str, str]) -> None:
        self.board = board
        self.env = env
        self.workers = [_Worker(index, command) for index, command in enumerate(commands)]
        self.stopping: str | None = None  # None, "drain" or "now"
        self.stopped = trio.Event()
        self.failed: int | None = None
        self._telling = trio.Lock()
        self._retiring = trio.Lock()  # workers ending together merge into one file in turn

    async def tell(self, worker: _Worker, order: str) -> None:
        process = worker.process
        if process is None or process.stdin is None or process.returncode is not None:
            return
        async with self._telling:  # one writer at a time on each pipe
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await process.stdin.send_all(order.encode("ascii") + b"\n")  # unless it ended

    async def stop(self, order: str) -> None:
        self.stopping = order
        self.stopped.set()
        for worker in self.workers:
            await self.tell(worker, order)

    async def keep_running(self, worker: _Worker) -> None:
        deaths = 0  # in a row, each soon after its start
        while self.stopping is None:
            started = trio.current_time()
            env = self.env | {ENV_INDEX: str(worker.index)}
            async with trio.open_nursery() as nursery:
                worker.process = await nursery.start(
                    partial(
                        trio.run_process,
                        worker.command,
                        stdin=subprocess.PIPE,
                        env=env,
                        check=False,
                        deliver_cancel=_end_now,  # the supervisor failing: end its calls
                    )
                )
                if self.stopping is not None:  # the order came while it was starting
                    await self.tell(worker, self.stopping)
                code = await worker.process.wait()
            worker.ready_once |= self.board.ready()[worker.index]  # before the poll saw it
            self.board.reset(worker.index)
            async with self._retiring:
                await trio.to_thread.run_sync(self.board.retire, worker.index)
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
                _how_it_ended(code),
                wait,
            )
            with trio.move_on_after(wait):
                await self.stopped.wait()

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
    shares = thread_shares(cores, count)
    if count > cores:
        logger.warning("%d workers on %d cores: they will compete for the CPU", count, cores)
    folder = Path(tempfile.mkdtemp(prefix="phoneactors-workers-"))  # made owner-only
    try:
        board = WorkerBoard.create(folder, count)
        env = dict(os.environ) | {ENV_FOLDER: str(folder), ENV_COUNT: str(count)}
        bound = reservation.getsockname()[1]
        commands = [
            worker_command(argv, bound, None if threads_chosen else share) for share in shares
        ]
        supervisor = _Supervisor(commands, board, env)
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
