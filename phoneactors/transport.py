"""The one thing a call needs from its transport: a message socket."""

from __future__ import annotations

from typing import Protocol

__all__ = ["CallSocket"]


class CallSocket(Protocol):
    """A websocket as the call runtime sees it. The server adapts quart's websocket to this;
    :mod:`phoneactors.testing` provides an in-memory one.

    ``receive`` and ``send`` raise :class:`~phoneactors.errors.SocketClosed` once the socket is
    closed by either side. ``close`` is idempotent and never raises.
    """

    async def receive(self) -> str | bytes: ...

    async def send(self, message: str) -> None: ...

    async def close(self) -> None: ...
