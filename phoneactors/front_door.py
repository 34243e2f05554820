"""The server's one listening socket: media-stream upgrades go the short way, the rest to hypercorn.

Every connection's request head is read here first. A websocket upgrade of ``/stream`` is served
by :mod:`phoneactors.websocket` on trio alone (wsproto reads the handshake): that is 50
messages a second for every call, and the short way costs a half to two thirds of the CPU per
message that hypercorn's ASGI websockets do (``benchmarks/stack_floor.py``). Anything else
(the webhook, ``/healthz``, ``/metrics``, the softphone page) is handed, with the bytes already
read, to hypercorn's own per-connection server, so HTTP keeps all of hypercorn's behaviour.

Hypercorn is driven through its trio connection server (``hypercorn.trio.tcp_server``) and its
lifespan and worker context, the pieces ``hypercorn.trio.serve`` puts together; the versions
it works with are pinned in ``pyproject.toml``.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Final

import h11
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import repr_socket_addr, wrap_app

from .transport import StreamAnswerer
from .websocket import serve_websocket

__all__ = ["serve_front_door"]

logger = logging.getLogger("phoneactors.server")

HEAD_LIMIT: Final = 16 * 1024
"""A request head longer than this goes to hypercorn, which refuses it."""
_READ: Final = 65536


class _Replayed(trio.abc.HalfCloseableStream):
    """A socket stream whose first bytes, already read, are given back before the rest."""

    def __init__(self, stream: trio.SocketStream, first: bytes) -> None:
        self.socket = stream.socket  # hypercorn reads the addresses from it
        self._stream = stream
        self._first = first

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._first:
            first, self._first = self._first, b""
            return first
        return bytes(await self._stream.receive_some(max_bytes))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()


_HEAD_END: Final = re.compile(rb"\n\r?\n")
"""Where a request head ends: a blank line (h11 also takes bare line feeds)."""


def head_length(data: bytes) -> int | None:
    """How many bytes of ``data`` are the request head, or ``None`` if it has not ended yet."""
    end = _HEAD_END.search(data)
    return None if end is None else end.end()


async def _read_head(stream: trio.SocketStream) -> bytes | None:
    """The bytes read until the end of the request head (maybe more), or past
    :data:`HEAD_LIMIT` without its end (hypercorn refuses that); ``None`` if the peer stopped
    first. Its caller bounds the time it takes."""
    data = b""
    while len(data) <= HEAD_LIMIT:
        try:
            chunk = await stream.receive_some(_READ)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return None
        if not chunk:
            return None
        data += chunk
        if head_length(data) is not None:
            break
    return data


def _peer(stream: trio.SocketStream) -> str:
    """The peer's address, as quart gives ``remote_addr``."""
    address = stream.socket.getpeername()
    return str(address[0]) if isinstance(address, tuple) else str(address)


def stream_upgrade(head: bytes, path: str) -> list[tuple[bytes, bytes]] | None:
    """The headers of ``head`` if it asks to upgrade ``path`` (with any query) to a websocket;
    ``None`` for any other request, or one h11 cannot parse (hypercorn answers those)."""
    if not head.startswith(b"GET "):
        return None
    parser = h11.Connection(h11.SERVER)
    try:
        parser.receive_data(head)
        event = parser.next_event()
    except h11.RemoteProtocolError:
        return None
    if not isinstance(event, h11.Request) or event.http_version != b"1.1":
        return None
    if event.target.split(b"?", 1)[0].decode("latin-1") != path:
        return None
    for name, value in event.headers:
        if name == b"upgrade" and b"websocket" in value.lower():
            return list(event.headers.raw_items())
    return None


async def serve_front_door(
    app: Any,
    config: HypercornConfig,
    sock: socket.socket,
    stream_path: str,
    answer_stream: StreamAnswerer,
    max_message_bytes: int,
    *,
    shutdown_trigger: Callable[[], Awaitable[object]],
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` (ASGI) and the media streams on ``sock`` (bound, not yet listening) until
    ``shutdown_trigger()`` returns; then stop listening and give the remaining connections
    ``config.graceful_timeout`` seconds. Reports ``["http://host:port"]`` when listening."""
    wrapped = wrap_app(app, config.wsgi_max_body_size, "asgi")
    lifespan_state: dict[str, Any] = {}
    lifespan = Lifespan(wrapped, config, lifespan_state)
    context = WorkerContext(None)

    async def connection(stream: trio.SocketStream) -> None:
        try:
            await dispatch(stream)
        except Exception:  # one connection's failure is logged and ends it, nothing else
            logger.exception("a connection failed")
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def dispatch(stream: trio.SocketStream) -> None:
        head = None
        with trio.move_on_after(config.keep_alive_timeout):  # as hypercorn waits on idle ones
            head = await _read_head(stream)
        if head is None:
            with trio.CancelScope(shield=True):
                await stream.aclose()
            return
        headers = stream_upgrade(head, stream_path)
        if headers is not None:
            length = head_length(head)
            assert length is not None  # h11 found the whole head
            try:
                remote = _peer(stream)
            except OSError as exc:  # the peer reset the connection as it came
                logger.info("a stream connection ended before it began: %s", exc)
                remote = None
            try:
                if remote is not None:
                    await serve_websocket(
                        stream, head, length, headers, remote, answer_stream, max_message_bytes
                    )
            finally:
                with trio.CancelScope(shield=True):
                    await stream.aclose()
            return
        state = ConnectionState(lifespan_state.copy())
        await TCPServer(wrapped, config, context, state, _Replayed(stream, head))  # type: ignore[arg-type]

    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        async with trio.open_nursery() as connections:
            sock.listen(config.backlog)
            listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
            bind = repr_socket_addr(sock.family, sock.getsockname())
            task_status.started([f"http://{bind}"])
            async with trio.open_nursery() as accepting:
                accepting.start_soon(
                    partial(
                        trio.serve_listeners, connection, [listener], handler_nursery=connections
                    )
                )
                await shutdown_trigger()
                accepting.cancel_scope.cancel()
            await listener.aclose()
            await context.terminated.set()  # hypercorn's connections close once idle
            connections.cancel_scope.deadline = trio.current_time() + config.graceful_timeout
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()
