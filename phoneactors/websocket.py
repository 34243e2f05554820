"""Media-stream websockets served straight on trio and wsproto, without the ASGI layers.

Twilio sends a media message every 20 ms per call, so the cost of reading one small websocket
message is what a box's call count hangs on once the speech engines are elsewhere.
:mod:`phoneactors.front_door` hands every ``/stream`` upgrade here: the upgrade is answered
(refused, or accepted and the call served) by the same :data:`~phoneactors.transport.StreamAnswerer`
as the ASGI route, and :class:`WebsocketCallSocket` reads and writes the messages itself.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Final

import trio
from werkzeug.datastructures import Headers
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from .errors import ProtocolError, SocketClosed
from .transport import CallSocket, StreamAnswerer, StreamRequest

__all__ = ["WebsocketCallSocket", "serve_websocket"]

logger = logging.getLogger("phoneactors.server")

READ_BYTES: Final = 65536
CLOSE_NORMAL: Final = 1000
CLOSE_PROTOCOL_ERROR: Final = 1002
CLOSE_TOO_BIG: Final = 1009
CLOSE_GRACE: Final = 5.0
"""Seconds a closing connection waits for the peer's close frame before the TCP close."""


class WebsocketCallSocket:
    """A server-side websocket on a trio stream as a :class:`~phoneactors.transport.CallSocket`.

    One task receives (pings are answered as they come); any task may send. ``receive`` raises
    :class:`~phoneactors.errors.ProtocolError` for a message over ``max_bytes`` (UTF-8 bytes, for
    text) and for a frame that breaks the protocol; closing then says why (code 1009 or 1002).
    """

    def __init__(self, stream: trio.abc.Stream, connection: WSConnection, max_bytes: int) -> None:
        self._stream = stream
        self._ws = connection
        self._max_bytes = max_bytes
        self._sending = trio.StrictFIFOLock()  # one writer at a time, frames in order
        self._pending: deque[Event] = deque(connection.events())
        self._parts: list[str | bytes] = []
        self._size = 0
        self._closed = False
        self._close_code = CLOSE_NORMAL
        self._close_reason = ""

    async def receive(self) -> str | bytes:
        if self._closed:
            raise SocketClosed("the socket is closed")
        while True:
            while self._pending:
                message = await self._take(self._pending.popleft())
                if message is not None:
                    return message
            try:
                data = await self._stream.receive_some(READ_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                self._closed = True
                raise SocketClosed("Twilio closed the socket")
            self._ws.receive_data(bytes(data))
            self._pending.extend(self._ws.events())

    async def _take(self, event: Event) -> str | bytes | None:
        """A whole message, or ``None`` once ``event`` is handled and more must be read."""
        if isinstance(event, TextMessage | BytesMessage):
            data = event.data if isinstance(event.data, str) else bytes(event.data)
            size = len(data)
            if isinstance(data, str):
                if event.message_finished and not self._parts and size * 4 <= self._max_bytes:
                    return data  # the usual message: whole, and small whatever its characters
                size = len(data.encode("utf-8", "surrogatepass"))
            self._size += size
            if self._size > self._max_bytes:
                self._close_code, self._close_reason = CLOSE_TOO_BIG, "message too big"
                size_text = f"{self._size}" if event.message_finished else f"at least {self._size}"
                raise ProtocolError(
                    f"a message of {size_text} bytes is over the {self._max_bytes}-byte limit"
                )
            if event.message_finished and not self._parts:
                self._size = 0
                return data
            self._parts.append(data)
            if not event.message_finished:
                return None
            parts, self._parts, self._size = self._parts, [], 0
            return "".join(parts) if isinstance(data, str) else b"".join(parts)  # type: ignore[arg-type]
        if isinstance(event, Ping):
            await self._send_event(event.response())
            return None
        if isinstance(event, CloseConnection):
            if self._ws.state is ConnectionState.OPEN:  # not their close: a frame we can't read
                self._close_code, self._close_reason = event.code, "bad frame"
                raise ProtocolError(f"a broken websocket frame: {event.reason}")
            self._closed = True
            raise SocketClosed("Twilio closed the socket")
        return None  # a pong

    async def send(self, message: str) -> None:
        if self._closed:
            raise SocketClosed("the socket is closed")
        await self._send_event(TextMessage(data=message))

    async def _send_event(self, event: Event) -> None:
        async with self._sending:
            try:
                data = self._ws.send(event)
                await self._stream.send_all(data)
            except (LocalProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
                self._closed = True
                raise SocketClosed("the socket is closed") from None

    async def close(self) -> None:
        """Send our close frame (once; the peer's own close is answered by wsproto)."""
        self._closed = True
        with trio.move_on_after(CLOSE_GRACE) as scope:
            scope.shield = True  # closing also runs when the call was cancelled
            try:
                await self._send_close()
            except Exception as exc:  # the peer may be gone already; closing must not fail
                logger.debug("closing a stream socket failed: %r", exc)

    async def _send_close(self) -> None:
        async with self._sending:
            state = self._ws.state
            if state is ConnectionState.OPEN:
                event = CloseConnection(self._close_code, self._close_reason)
            elif state is ConnectionState.REMOTE_CLOSING:
                event = CloseConnection(self._close_code)  # the reply to theirs
            else:
                return
            await self._stream.send_all(self._ws.send(event))

    async def finish(self) -> None:
        """After :meth:`close`: read until the peer's close frame or EOF (for ``CLOSE_GRACE``
        seconds at most), so the TCP close loses nothing the peer still sends."""
        with trio.move_on_after(CLOSE_GRACE):
            while self._ws.state is not ConnectionState.CLOSED:
                try:
                    data = await self._stream.receive_some(READ_BYTES)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
                if not data:
                    return
                self._ws.receive_data(bytes(data))
                for event in self._ws.events():
                    if isinstance(event, CloseConnection):
                        await self._send_close()


def _request(event: Request, headers: list[tuple[bytes, bytes]], remote: str) -> StreamRequest:
    _, _, query = event.target.partition("?")
    parsed = Headers([(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers])
    return StreamRequest(query.encode("latin-1"), parsed, remote, "ws")


async def serve_websocket(
    stream: trio.SocketStream,
    head: bytes,
    headers: list[tuple[bytes, bytes]],
    answer: StreamAnswerer,
    max_bytes: int,
) -> None:
    """Serve one ``/stream`` upgrade whose request ``head`` (and any bytes after it) has been
    read from ``stream``; ``headers`` are its raw headers, as received."""
    ws = WSConnection(ConnectionType.SERVER)
    try:
        ws.receive_data(head)
        event = next(ws.events(), None)
    except RemoteProtocolError as exc:
        event, reason = None, str(exc)
    else:
        reason = "incomplete request"
    if not isinstance(event, Request):
        peer = stream.socket.getpeername()
        logger.warning("stream upgrade from %s refused: %s", peer[0], reason)
        await _reject(stream, ws, 400, f"bad websocket upgrade: {reason}")
        return
    peer = stream.socket.getpeername()
    asked = _request(event, headers, str(peer[0]) if isinstance(peer, tuple) else str(peer))
    accepted: list[WebsocketCallSocket] = []

    async def accept() -> CallSocket:
        await stream.send_all(ws.send(AcceptConnection()))
        accepted.append(WebsocketCallSocket(stream, ws, max_bytes))
        return accepted[0]

    try:
        refused = await answer(asked, accept)
    finally:
        if accepted:
            await accepted[0].close()
    if refused is not None:
        await _reject(stream, ws, *refused)
    elif accepted:
        await accepted[0].finish()


async def _reject(stream: trio.SocketStream, ws: WSConnection, status: int, text: str) -> None:
    body = text.encode("utf-8")
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode("ascii")),
        (b"connection", b"close"),
    ]
    try:
        data = ws.send(RejectConnection(status_code=status, headers=headers, has_body=True))
        data += ws.send(RejectData(data=body))
        with trio.move_on_after(CLOSE_GRACE):
            await stream.send_all(data)
    except (LocalProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
        pass
