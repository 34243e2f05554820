"""Media-stream websockets served straight on trio, without the ASGI layers.

Twilio sends a media message every 20 ms per call, so the cost of reading one small websocket
message is what a box's call count hangs on once the speech engines are elsewhere.
:mod:`phoneactors.front_door` hands every ``/stream`` upgrade here. The upgrade is answered
(refused, or accepted and the call served) by the same
:data:`~phoneactors.transport.StreamAnswerer` as the ASGI route; wsproto reads the handshake,
and :class:`WebsocketCallSocket` reads and writes the frames itself (:mod:`phoneactors.frames`).
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from typing import Final, NoReturn

import trio
from werkzeug.datastructures import Headers
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, RejectConnection, RejectData, Request
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from .errors import ProtocolError, SocketClosed
from .frames import (
    BINARY,
    CLOSE,
    CONTINUATION,
    INVALID_DATA,
    NO_STATUS,
    NORMAL,
    PING,
    PONG,
    PROTOCOL_ERROR,
    TEXT,
    TOO_BIG,
    Frame,
    FrameError,
    FrameReader,
    FrameTooBig,
    close_payload,
    encode_frame,
    parse_close,
)
from .transport import CallSocket, StreamAnswerer, StreamRequest

__all__ = ["WebsocketCallSocket", "serve_websocket"]

logger = logging.getLogger("phoneactors.server")

READ_BYTES: Final = 65536
CLOSE_GRACE: Final = 5.0
"""Seconds a closing connection waits for the peer's close frame before the TCP close."""


class WebsocketCallSocket:
    """A server-side websocket on a trio stream as a :class:`~phoneactors.transport.CallSocket`,
    once the handshake is done (``first``: bytes the client sent after its request head).

    One task receives (pings are answered as they come); any task may send. ``receive`` raises
    :class:`~phoneactors.errors.ProtocolError` for a message over ``max_bytes`` (UTF-8 bytes, for
    text) and for a frame that breaks the protocol; closing then says why (code 1009, 1002 or
    1007).
    """

    def __init__(self, stream: trio.abc.Stream, max_bytes: int, first: bytes = b"") -> None:
        self._stream = stream
        self._max_bytes = max_bytes
        self._reader = FrameReader(max_bytes)
        self._sending = trio.StrictFIFOLock()  # one writer at a time, frames in order
        self._pending: deque[Frame] = deque()
        self._first = first
        self._parts: list[bytes] = []
        self._opcode = 0  # of the fragmented message being put together
        self._size = 0
        self._closed = False  # for the call: no more receiving or sending
        self._close_sent = False
        self._close_received = False
        self._broken = False  # a write failed or stalled: no more frames, not even a close
        self._close_code = NORMAL
        self._close_reason = ""

    async def receive(self) -> str | bytes:
        if self._closed:
            raise SocketClosed("the socket is closed")
        while True:
            while self._pending:
                message = await self._take(self._pending.popleft())
                if message is not None:
                    return message
            data = await self._read()
            if not data:
                self._closed = True
                raise SocketClosed("Twilio closed the socket")
            try:
                self._pending.extend(self._reader.feed(data))
            except FrameTooBig as exc:
                self._too_big(self._size + exc.size, finished=exc.fin)
            except FrameError as exc:
                self._close_code, self._close_reason = exc.code, "bad frame"
                raise ProtocolError(f"a broken websocket frame: {exc}") from None

    async def _read(self) -> bytes:
        if self._first:
            first, self._first = self._first, b""
            return first
        try:
            return bytes(await self._stream.receive_some(READ_BYTES))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return b""

    async def _take(self, frame: Frame) -> str | bytes | None:
        """A whole message, or ``None`` once ``frame`` is handled and more must be read."""
        opcode = frame.opcode
        if opcode == TEXT and frame.fin and not self._parts:  # the usual message
            return self._text(frame.payload)  # the reader refuses frames over max_bytes
        if opcode in (TEXT, BINARY, CONTINUATION):
            if (opcode == CONTINUATION) != bool(self._parts):
                self._close_code, self._close_reason = PROTOCOL_ERROR, "bad frame"
                raise ProtocolError("a broken websocket frame: fragments out of order")
            if opcode != CONTINUATION:
                self._opcode = opcode
            self._size += len(frame.payload)
            if self._size > self._max_bytes:
                self._too_big(self._size, finished=frame.fin)
            self._parts.append(frame.payload)
            if not frame.fin:
                return None
            data, self._parts, self._size = b"".join(self._parts), [], 0
            return self._text(data) if self._opcode == TEXT else data
        if opcode == PING:
            await self._send_frame(PONG, frame.payload)
            return None
        if opcode == CLOSE:
            try:
                code, _ = parse_close(frame.payload)
            except FrameError as exc:
                self._close_code, self._close_reason = exc.code, "bad frame"
                raise ProtocolError(f"a broken websocket frame: {exc}") from None
            self._closed = self._close_received = True
            if code != NO_STATUS:
                self._close_code = code  # echoed in our reply
            raise SocketClosed("Twilio closed the socket")
        return None  # a pong

    def _text(self, payload: bytes) -> str:
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError:
            self._close_code, self._close_reason = INVALID_DATA, "not UTF-8"
            raise ProtocolError("a text message that is not UTF-8") from None

    def _too_big(self, size: int, *, finished: bool) -> NoReturn:
        self._close_code, self._close_reason = TOO_BIG, "message too big"
        size_text = f"{size}" if finished else f"at least {size}"
        raise ProtocolError(
            f"a message of {size_text} bytes is over the {self._max_bytes}-byte limit"
        )

    async def send(self, message: str) -> None:
        if self._closed:
            raise SocketClosed("the socket is closed")
        await self._send_frame(TEXT, message.encode("utf-8"))

    async def _send_frame(self, opcode: int, payload: bytes) -> None:
        async with self._sending:
            if self._close_sent or self._broken:
                raise SocketClosed("the socket is closed")
            if opcode == CLOSE:
                self._close_sent = True
            # A frame is written whole or the connection is given up: a cancelled write would
            # leave half a frame, and whatever followed it would be read as its payload.
            with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_GRACE) as timer:
                try:
                    await self._stream.send_all(encode_frame(opcode, payload))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    timer.cancel()  # not slow: gone
                    self._broken = True
            if timer.cancelled_caught or self._broken:
                self._closed = self._broken = True
                raise SocketClosed("the socket is closed (the peer stopped reading)")

    async def close(self) -> None:
        """Send our close frame, once (the reply to theirs, if they closed first)."""
        self._closed = True
        with trio.move_on_after(CLOSE_GRACE) as scope:
            scope.shield = True  # closing also runs when the call was cancelled
            with contextlib.suppress(SocketClosed):  # sent already, or the peer is gone
                await self._send_frame(CLOSE, close_payload(self._close_code, self._close_reason))

    async def finish(self) -> None:
        """After :meth:`close`: read until the peer's close frame or EOF (for ``CLOSE_GRACE``
        seconds at most), so the TCP close loses nothing the peer still sends."""
        with trio.move_on_after(CLOSE_GRACE):
            while not self._close_received:
                data = await self._read()
                if not data:
                    return
                try:
                    frames = self._reader.feed(data)
                except FrameError:
                    return
                self._close_received = any(frame.opcode == CLOSE for frame in frames)


def _request(event: Request, headers: list[tuple[bytes, bytes]], remote: str) -> StreamRequest:
    _, _, query = event.target.partition("?")
    parsed = Headers([(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers])
    return StreamRequest(query.encode("latin-1"), parsed, remote, "ws")


async def serve_websocket(
    stream: trio.SocketStream,
    head: bytes,
    head_length: int,
    headers: list[tuple[bytes, bytes]],
    remote: str,
    answer: StreamAnswerer,
    max_bytes: int,
) -> None:
    """Serve one ``/stream`` upgrade from ``remote`` whose request head (the first
    ``head_length`` bytes of ``head``, and any bytes after it) has been read from ``stream``;
    ``headers`` are its raw headers, as received."""
    ws = WSConnection(ConnectionType.SERVER)
    try:
        ws.receive_data(head)
        event = next(ws.events(), None)
    except RemoteProtocolError as exc:
        event, reason = None, str(exc)
    else:
        reason = "incomplete request"
    if not isinstance(event, Request):
        logger.warning("stream upgrade from %s refused: %s", remote, reason)
        await _reject(stream, ws, 400, f"bad websocket upgrade: {reason}")
        return
    asked = _request(event, headers, remote)
    accepted: list[WebsocketCallSocket] = []

    async def accept() -> CallSocket:
        try:
            await stream.send_all(ws.send(AcceptConnection()))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise SocketClosed("the caller left before the stream was accepted") from None
        after_head = head[head_length:]  # frames the client sent at once
        accepted.append(WebsocketCallSocket(stream, max_bytes, after_head))
        return accepted[0]

    try:
        refused = await answer(asked, accept)
    except SocketClosed as exc:
        logger.info("stream from %s: %s", remote, exc)
        return
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
