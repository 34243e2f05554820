"""Who runs inference next: the process's CPU threads, handed out by urgency.

Every engine of a process shares one :class:`InferenceSlots`. Its size is the number of CPU
threads inference may use at once (one per core by default), and each inference claims as many
as it runs on (:attr:`Claim.cost`: faster-whisper's ``cpu_threads``, 1 for hibari), so the
cores are never oversubscribed: two transcriptions on two threads each never run at once on two
cores, each slowing the other down.

Waiting inferences are served by :class:`Priority`, then in arrival order: a sentence that a
caller is about to hear (``SPEAK``) goes before a transcription (``LISTEN``), which goes before
loading and warm-ups (``PREPARE``). Under load, text-to-speech (tens of milliseconds) no longer
waits behind speech-to-text (hundreds).

Every wait is measured: :attr:`InferenceSlots.waits` (for ``/metrics``) and
:meth:`InferenceSlots.recent_wait` (for admission control: a server refuses new calls while
inference is queueing). All time is trio's clock.

A plain :class:`trio.CapacityLimiter` still works wherever the engines take a limiter (one token
an inference, first come first served), as before.

The budget only holds if an inference really runs on the threads it claims: numpy's OpenBLAS
starts threads of its own for a matrix product inside one (faster-whisper's mel filterbank),
which spin for a while after it and take a core from the next inference.
:func:`one_blas_thread` stops that; the server calls it once its engines have loaded.
"""

from __future__ import annotations

import collections
import enum
import heapq
import itertools
import logging
import os
from dataclasses import dataclass, field
from typing import Final

import trio

from ..errors import ConfigurationError

__all__ = ["Claim", "InferenceSlots", "Priority", "WaitStats", "one_blas_thread"]

logger = logging.getLogger(__name__)

BLAS_THREAD_VARIABLES: Final = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")
"""Environment variables that set BLAS threads: when one is set, :func:`one_blas_thread`
leaves the threads as they are."""

RECENT_WINDOW_S: Final = 5.0
"""How far back :meth:`InferenceSlots.recent_wait` looks."""
MIN_SAMPLES: Final = 5
"""Waits :meth:`InferenceSlots.recent_wait` needs before it takes their percentile."""
WAIT_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Upper bounds (seconds) of the wait histogram's buckets; one more counts everything."""


class Priority(enum.IntEnum):
    """How urgent an inference is; lower goes first."""

    SPEAK = 0
    """Text-to-speech (and per-frame voice activity): a caller is waiting to hear it."""
    LISTEN = 1
    """Speech-to-text."""
    PREPARE = 2
    """Loading a model and warming it up."""


@dataclass
class WaitStats:
    """The waits for threads of one priority since start: how many, their sum, and a
    histogram (``buckets[i]`` counts the waits up to ``WAIT_BUCKETS[i]``; the last, all)."""

    count: int = 0
    total_s: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(WAIT_BUCKETS) + 1))

    def add(self, seconds: float) -> None:
        self.count += 1
        self.total_s += seconds
        for i, bound in enumerate(WAIT_BUCKETS):
            if seconds <= bound:
                self.buckets[i] += 1
        self.buckets[-1] += 1


@dataclass(order=True)
class _Waiter:
    priority: int
    arrival: int
    cost: int = field(compare=False)
    since: float = field(compare=False)
    event: trio.Event = field(compare=False, default_factory=trio.Event)
    granted: bool = field(compare=False, default=False)


class InferenceSlots:
    """``total`` CPU threads for inference, shared by every engine of the process.

    :meth:`claim` gives what ``trio.to_thread.run_sync(limiter=…)`` takes for one inference;
    :func:`~phoneactors.engines.run_inference` does that for the engines. The threads are
    released when the worker thread finishes, even if the task that waited for it was
    cancelled, so cancelled inferences never let more run than ``total`` allows.
    """

    def __init__(self, total: int) -> None:
        if isinstance(total, bool) or not isinstance(total, int) or total < 1:
            raise ConfigurationError(f"inference threads must be at least 1, got {total!r}")
        self.total = total
        self.in_use = 0
        self.running = 0
        """Inferences running now."""
        self.waits: dict[Priority, WaitStats] = {priority: WaitStats() for priority in Priority}
        self.abandoned: dict[Priority, int] = dict.fromkeys(Priority, 0)
        """Inferences cancelled while they waited for threads, by priority: work shed (a
        transcription made stale, a reply cut off) before it cost any CPU."""
        self._queue: list[_Waiter] = []
        self._arrivals = itertools.count()
        self._recent: collections.deque[tuple[float, float]] = collections.deque()

    def __repr__(self) -> str:
        return (
            f"InferenceSlots(total={self.total}, in_use={self.in_use}, waiting={len(self._queue)})"
        )

    @property
    def waiting(self) -> int:
        """Inferences waiting for threads now."""
        return len(self._queue)

    def claim(self, cost: int = 1, priority: Priority = Priority.LISTEN) -> Claim:
        """One inference's claim on ``cost`` threads (at most :attr:`total`) at ``priority``."""
        return Claim(self, max(1, min(int(cost), self.total)), Priority(priority))

    def recent_wait(self) -> float:
        """How far behind the engines are, in seconds: the 90th percentile of the waits for
        threads of the inferences that started in the last :data:`RECENT_WINDOW_S` seconds,
        counting those still waiting with their wait so far (loading and warm-ups aside). With
        fewer than :data:`MIN_SAMPLES` waits, only those still waiting count: one slow
        inference a while ago says little. 0 when nothing waits."""
        now = trio.current_time()
        self._forget_before(now - RECENT_WINDOW_S)
        waiting = [now - w.since for w in self._queue if w.priority != Priority.PREPARE]
        waits = sorted([wait for _, wait in self._recent] + waiting)
        if len(waits) < MIN_SAMPLES:  # too few to tell: only those still waiting count
            return max(waiting, default=0.0)
        return waits[min(len(waits) - 1, int(0.9 * len(waits)))]

    # -- the claims' side -------------------------------------------------------------------

    async def _acquire(self, cost: int, priority: Priority) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        now = trio.current_time()
        if not self._queue and self.in_use + cost <= self.total:
            self.in_use += cost
            self.running += 1
            self._note_wait(priority, 0.0)
            await trio.lowlevel.cancel_shielded_checkpoint()  # holding threads: no cancel now
            return
        waiter = _Waiter(int(priority), next(self._arrivals), cost, now)
        heapq.heappush(self._queue, waiter)
        self._grant()  # it may be the new head, and fit where the old head did not
        try:
            await waiter.event.wait()
        except BaseException:
            if waiter.granted:  # granted as the cancellation came: hand the threads on
                self._release(cost)
            else:
                self._queue.remove(waiter)
                heapq.heapify(self._queue)
                self.abandoned[priority] += 1
                self._grant()
            raise
        self._note_wait(priority, trio.current_time() - now)

    def _note_wait(self, priority: Priority, seconds: float) -> None:
        self.waits[priority].add(seconds)
        if priority == Priority.PREPARE:
            return  # loading is not a sign of load
        now = trio.current_time()
        self._recent.append((now, seconds))
        self._forget_before(now - RECENT_WINDOW_S)

    def _forget_before(self, moment: float) -> None:
        while self._recent and self._recent[0][0] < moment:
            self._recent.popleft()

    def _release(self, cost: int) -> None:
        self.in_use -= cost
        self.running -= 1
        self._grant()

    def _grant(self) -> None:
        """Start the waiters at the head of the queue while their threads are free. The head
        waits for enough threads even if a cheaper waiter behind it would fit, so a costly
        inference is never starved by a stream of cheap ones of its own priority."""
        while self._queue and self.in_use + self._queue[0].cost <= self.total:
            waiter = heapq.heappop(self._queue)
            self.in_use += waiter.cost
            self.running += 1
            waiter.granted = True
            waiter.event.set()


class Claim:
    """One inference's claim on an :class:`InferenceSlots`: a limiter for
    ``trio.to_thread.run_sync`` that acquires ``cost`` threads at ``priority``."""

    def __init__(self, slots: InferenceSlots, cost: int, priority: Priority) -> None:
        self.slots = slots
        self.cost = cost
        self.priority = priority

    async def acquire_on_behalf_of(self, borrower: object) -> None:
        await self.slots._acquire(self.cost, self.priority)

    def release_on_behalf_of(self, borrower: object) -> None:
        self.slots._release(self.cost)


def one_blas_thread() -> bool:
    """Make the BLAS libraries loaded in this process (numpy's and scipy's OpenBLAS, MKL, BLIS)
    run each call on the calling thread alone; returns whether it did.

    Each inference already has its thread from :class:`InferenceSlots`; BLAS threads on top of
    it oversubscribe the cores (measured at 20 calls on 2 cores: ``docs/benchmarks.md``).
    Affects the whole process, and only the libraries loaded by then, so call it after the
    engines load. Does nothing when one of :data:`BLAS_THREAD_VARIABLES` is set: that choice
    is the user's.
    """
    if chosen := [name for name in BLAS_THREAD_VARIABLES if os.environ.get(name)]:
        logger.info("BLAS threads left as %s sets them", chosen[0])
        return False
    from threadpoolctl import threadpool_limits

    had = threadpool_limits(1, user_api="blas").get_original_num_threads().get("blas")
    logger.info("BLAS runs each call on one thread (it had %s)", had)
    return True
