"""Quart-trio's websocket as a :class:`~phoneactors.transport.CallSocket`, for apps served by
hypercorn or another ASGI server (:func:`phoneactors.server.create_app`); :func:`serve
<phoneactors.server.serve>` serves media streams on trio directly (:mod:`phoneactors.front_door`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

import trio
from quart import Websocket
from quart_trio.asgi import TrioASGIWebsocketConnection

from .errors import ProtocolError, SocketClosed

__all__ = ["QuartCallSocket", "StreamConnection"]

logger = logging.getLogger("phoneactors.server")

_CLOSE_NORMAL: Final = 1000
_CLOSE_TOO_BIG: Final = 1009


class StreamConnection(TrioASGIWebsocketConnection):
    """quart-trio's websocket connection, except that the peer closing the socket ends the
    stream of messages (``receive`` raises ``trio.EndOfChannel``) instead of cancelling the
    handler. A call then ends the way it does when :class:`CallSocket` reports the close: its
    reason is logged and its hooks run, rather than being cut off mid-step."""

    async def handle_messages(  # type: ignore[override]  # as quart-trio's own
        self, nursery: trio.Nursery, receive: Callable[[], Awaitable[Any]]
    ) -> None:
        async with self.send_channel:
            while True:
                event = await receive()
                if event["type"] == "websocket.receive":
                    data = event.get("bytes")
                    await self.send_channel.send(data if data is not None else event["text"])
                elif event["type"] == "websocket.disconnect":
                    return


class QuartCallSocket:
    """Quart's websocket as a :class:`~phoneactors.transport.CallSocket`.

    ``receive`` raises :class:`~phoneactors.errors.ProtocolError` for a message larger than
    ``max_bytes`` (UTF-8 bytes, for text); closing then uses code 1009 (message too big).
    """

    def __init__(self, ws: Websocket, max_bytes: int) -> None:
        self._ws = ws
        self._max_bytes = max_bytes
        self._closed = False
        self._close_code = _CLOSE_NORMAL
        self._close_reason = ""

    async def receive(self) -> str | bytes:
        if self._closed:
            raise SocketClosed("the socket is closed")
        try:
            message: str | bytes = await self._ws.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            self._closed = True
            raise SocketClosed("Twilio closed the socket") from None
        size = len(message)
        if isinstance(message, str) and size * 4 > self._max_bytes:
            size = len(message.encode("utf-8", "surrogatepass"))
        if size > self._max_bytes:
            self._close_code = _CLOSE_TOO_BIG
            self._close_reason = "message too big"
            raise ProtocolError(
                f"a message of {size} bytes is over the {self._max_bytes}-byte limit"
            )
        return message

    async def send(self, message: str) -> None:
        if self._closed:
            raise SocketClosed("the socket is closed")
        await self._ws.send(message)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._ws.close(self._close_code, self._close_reason)
        except Exception as exc:  # the peer may be gone already; closing must not fail
            logger.debug("closing a stream socket failed: %r", exc)
