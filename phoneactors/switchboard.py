r"""Which calls a server takes, and its shutdown: the calls in progress, counted and cancellable.

One :class:`Switchboard` per app. The webhook and the stream upgrade ask it for a
:meth:`~Switchboard.refusal` (the server shutting down, the engines loading, every line busy,
or, for a new caller, inference running behind); each call runs inside a
:meth:`~Switchboard.line`; shutdown :meth:`~Switchboard.drain`\ s it. With ``--workers`` the
limits hold for all the server's processes together (:class:`~phoneactors.workers.WorkerBoard`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import trio

from .engines import Engines
from .workers import WorkerBoard

__all__ = ["Switchboard"]

logger = logging.getLogger("phoneactors.switchboard")


class Switchboard:
    """The calls in progress, and whether new ones are taken. One per app."""

    def __init__(
        self,
        engines: Engines,
        max_calls: int,
        max_inference_wait: float | None = None,
        peers: WorkerBoard | None = None,
    ) -> None:
        self.engines = engines
        self.max_calls = max_calls
        self.max_inference_wait = max_inference_wait
        self.peers = peers
        """The other workers of this server (``--workers``): the limits hold for them all."""
        self.active = 0
        self.draining = False
        self._scopes: set[trio.CancelScope] = set()
        self._changed = trio.Event()

    def refusal(self, *, new_caller: bool = False) -> str | None:
        """Why a call cannot be taken now, or ``None`` if it can. A ``new_caller`` (Twilio's
        webhook, where the busy message can still be played) is also refused while the speech
        engines are behind: more calls would slow every call down."""
        if self.draining:
            return "the server is shutting down"
        if not self.engines.ready.is_set():
            return "the speech engines are still loading"
        if self.active + (0 if self.peers is None else self.peers.others_active()) >= (
            self.max_calls
        ):
            return f"all {self.max_calls} lines are busy"
        if new_caller and self.max_inference_wait is not None:
            wait = self.inference_wait()
            if self.peers is not None:
                wait = max(wait, self.peers.others_wait())
            if wait > self.max_inference_wait:
                return (
                    f"the speech engines are behind: inferences wait {wait * 1000:.0f} ms for a "
                    f"CPU thread (over {self.max_inference_wait * 1000:.0f} ms)"
                )
        return None

    def inference_wait(self) -> float:
        """This process's recent inference wait, in seconds (0 without inference slots)."""
        slots = self.engines.inference
        return 0.0 if slots is None else slots.recent_wait()

    def publish(self) -> None:
        """Tell the other workers (if any) this one's state."""
        if self.peers is not None:
            self.peers.publish(
                ready=self.engines.ready.is_set() and not self.draining,
                active=self.active,
                wait=self.inference_wait(),
            )

    @contextmanager
    def line(self) -> Iterator[trio.CancelScope]:
        """Count one call for as long as the block runs; shutdown may cancel the scope."""
        scope = trio.CancelScope()
        self.active += 1
        self._scopes.add(scope)
        self.publish()
        try:
            with scope:
                yield scope
        finally:
            self._scopes.discard(scope)
            self.active -= 1
            self.publish()
            self._changed.set()
            self._changed = trio.Event()

    async def wait_until_idle(self) -> None:
        while self.active:
            await self._changed.wait()

    async def drain(self, limit: float, grace: float) -> None:
        """Take no new calls; let those in progress finish for ``limit`` seconds, then cancel
        them and wait up to ``grace`` seconds for them to close."""
        self.draining = True
        self.publish()
        if not self.active:
            logger.info("shutting down: no calls in progress")
            return
        logger.info(
            "shutting down: taking no new calls; waiting up to %g s for %d in progress",
            limit,
            self.active,
        )
        with trio.move_on_after(limit):
            await self.wait_until_idle()
        if self.active:
            logger.warning(
                "drain timeout (%g s) passed: ending %d call(s) in progress", limit, self.active
            )
            self.cancel_calls()
            with trio.move_on_after(grace):
                await self.wait_until_idle()
        if self.active:
            logger.warning("%d call(s) still closing", self.active)
        else:
            logger.info("all calls have ended")

    def cancel_calls(self) -> None:
        for scope in self._scopes:
            scope.cancel()
