"""What a call needs from its transport (a message socket), and what a server knows of a
websocket upgrade before it answers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from werkzeug.datastructures import Headers

__all__ = ["CallSocket", "StreamAnswerer", "StreamRequest"]


class CallSocket(Protocol):
    """A websocket as the call runtime sees it. The server adapts its websockets to this;
    :mod:`phoneactors.testing` provides an in-memory one.

    ``receive`` and ``send`` raise :class:`~phoneactors.errors.SocketClosed` once the socket is
    closed by either side. ``close`` is idempotent and never raises.
    """

    async def receive(self) -> str | bytes: ...

    async def send(self, message: str) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class StreamRequest:
    """A media-stream websocket upgrade, as much of it as deciding to take the call needs."""

    query_string: bytes
    """The URL's query, without the ``?``."""
    headers: Headers
    remote_addr: str
    scheme: str
    """``ws`` or ``wss``, as the connection arrived (a proxy's ``X-Forwarded-Proto`` aside)."""


StreamAnswerer = Callable[
    [StreamRequest, Callable[[], Awaitable[CallSocket]]], Awaitable[tuple[int, str] | None]
]
"""Answers one upgrade: either refuses it, returning ``(HTTP status, text)`` without calling
``accept``, or calls ``accept()`` for the socket, serves the call on it and returns ``None``."""
