"""The short way for media streams: the front door's dispatch and the wsproto call socket.

Under MockClock. The socket is driven over an in-memory stream by a wsproto client, so every
frame is the client's own choosing (fragments, pings, bad frames); the whole server path over real
sockets is in ``test_server.py`` (both ways) and the end-to-end tests.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing
from trio.testing import MockClock
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    Request,
    TextMessage,
)

from phoneactors.errors import ProtocolError, SocketClosed
from phoneactors.front_door import HEAD_LIMIT, _read_head, head_length, stream_upgrade
from phoneactors.websocket import WebsocketCallSocket

UPGRADE = (
    b"GET /stream?softphone=abc HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\nX-Twilio-Signature: sig\r\n\r\n"
)


@pytest.mark.parametrize(
    "head",
    [
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /stream HTTP/1.1\r\nHost: a\r\n\r\n",  # no upgrade: hypercorn's 404s and 400s
        b"GET /streams HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
        b"GET /phone/stream HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
        b"GET /stream HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n\r\n",
        b"GET /stream HTTP/1.1\r\nHost: a\r\nUpgrade: websocket",  # not all there
        b"GET /stream HTTP/9\r\n\r\n",  # h11 cannot parse it
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        UPGRADE.replace(b"HTTP/1.1", b"HTTP/1.0"),  # hypercorn refuses it
        b"",
    ],
)
def test_only_stream_upgrades_go_the_short_way(head: bytes) -> None:
    assert stream_upgrade(head, "/stream") is None


def test_a_stream_upgrade_keeps_its_headers_as_sent() -> None:
    headers = stream_upgrade(UPGRADE + b"\x81\x85", "/stream")  # a frame may follow the head
    assert headers is not None
    assert (b"X-Twilio-Signature", b"sig") in headers
    assert (b"Upgrade", b"websocket") in headers


async def test_the_head_is_read_in_pieces_until_it_ends() -> None:
    client, server = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:

        async def send() -> None:
            for piece in (UPGRADE[:10], UPGRADE[10:50], UPGRADE[50:]):
                await client.send_all(piece)
                await trio.testing.wait_all_tasks_blocked()

        nursery.start_soon(send)
        assert await _read_head(server) == UPGRADE  # type: ignore[arg-type]


async def test_a_peer_that_leaves_mid_head_gives_no_head() -> None:
    client, server = trio.testing.memory_stream_pair()
    await client.send_all(b"GET / HTTP/1.1\r\n")
    await client.send_stream.aclose()
    assert await _read_head(server) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "length"),
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\nrest", 27),
        (b"GET / HTTP/1.1\nHost: a\n\nrest", 24),  # bare line feeds, as h11 takes them
        (b"GET / HTTP/1.1\r\nHost: a\r\n", None),
    ],
)
def test_the_head_ends_at_the_first_blank_line(data: bytes, length: int | None) -> None:
    assert head_length(data) == length


async def test_an_endless_head_stops_being_read_past_the_limit() -> None:
    client, server = trio.testing.memory_stream_pair()
    endless = b"GET / HTTP/1.1\r\nX: " + b"y" * (HEAD_LIMIT + 10)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.send_all, endless + b"\r\n\r\n")
        head = await _read_head(server)  # type: ignore[arg-type]
        nursery.cancel_scope.cancel()
    assert HEAD_LIMIT < len(head) <= len(endless) + 4


class Peer:
    """The client end: a wsproto client on one half of an in-memory stream."""

    def __init__(self, stream: trio.testing.StapledStream) -> None:  # type: ignore[type-arg]
        self.stream = stream
        self.ws = WSConnection(ConnectionType.CLIENT)

    async def send(self, event: Event) -> None:
        await self.stream.send_all(self.ws.send(event))

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def events(self) -> list[Event]:
        """What the server sent, until it sends nothing for a (mock-clock) second."""
        events: list[Event] = []
        while True:
            with trio.move_on_after(1):
                data = await self.stream.receive_some(65536)
                if not data:
                    return events
                self.ws.receive_data(bytes(data))
                events += list(self.ws.events())
                continue
            return events


async def connected(max_bytes: int = 1000) -> tuple[Peer, WebsocketCallSocket]:
    client, server = trio.testing.memory_stream_pair()
    peer = Peer(client)
    await peer.send(Request(host="example.com", target="/stream"))
    ws = WSConnection(ConnectionType.SERVER)
    ws.receive_data(bytes(await server.receive_some(65536)))
    assert isinstance(next(ws.events()), Request)
    await server.send_all(ws.send(AcceptConnection()))
    await peer.events()  # the 101
    return peer, WebsocketCallSocket(server, max_bytes)


async def test_messages_come_whole_even_in_fragments_and_pings_are_answered(
    autojump_clock: MockClock,
) -> None:
    peer, socket = await connected()
    await peer.send(TextMessage("hello", message_finished=True))
    assert await socket.receive() == "hello"
    await peer.send(TextMessage("hel", message_finished=False))
    await peer.send(Ping(b"are you there"))
    await peer.send(TextMessage("lo, ", message_finished=False))
    await peer.send(TextMessage("world", message_finished=True))
    await peer.send(BytesMessage(b"\x00\x01", message_finished=True))
    assert await socket.receive() == "hello, world"
    assert await socket.receive() == b"\x00\x01"
    assert Pong(b"are you there") in await peer.events()
    await socket.send('{"event":"clear"}')
    assert [e.data for e in await peer.events() if isinstance(e, TextMessage)] == [
        '{"event":"clear"}'
    ]


async def test_the_peer_closing_ends_receive_and_is_answered(autojump_clock: MockClock) -> None:
    peer, socket = await connected()
    await peer.send(CloseConnection(1000, "bye"))
    with pytest.raises(SocketClosed, match="Twilio closed"):
        await socket.receive()
    with pytest.raises(SocketClosed):
        await socket.send("late")
    await socket.close()
    await socket.close()  # idempotent
    answers = [e for e in await peer.events() if isinstance(e, CloseConnection)]
    assert [a.code for a in answers] == [1000]


async def test_the_connection_dropping_ends_receive(autojump_clock: MockClock) -> None:
    peer, socket = await connected()
    await peer.stream.send_stream.aclose()
    with pytest.raises(SocketClosed):
        await socket.receive()


async def test_a_message_over_the_limit_is_refused_even_in_small_fragments(
    autojump_clock: MockClock,
) -> None:
    peer, socket = await connected(max_bytes=100)
    for _ in range(3):
        await peer.send(TextMessage("é" * 20, message_finished=False))  # 40 bytes each
    with pytest.raises(ProtocolError, match="at least 120 bytes is over the 100-byte limit"):
        await socket.receive()
    await socket.close()
    closes = [e for e in await peer.events() if isinstance(e, CloseConnection)]
    assert [(c.code, c.reason) for c in closes] == [(1009, "message too big")]


async def test_a_broken_frame_ends_the_call_with_a_protocol_error(
    autojump_clock: MockClock,
) -> None:
    peer, socket = await connected()
    await peer.send_raw(b"\x81\x05hello")  # unmasked: a client must mask
    with pytest.raises(ProtocolError, match="broken websocket frame"):
        await socket.receive()
    await socket.close()
    closes = [e for e in await peer.events() if isinstance(e, CloseConnection)]
    assert [c.code for c in closes] == [1002]


async def test_closing_first_waits_for_the_peers_close(autojump_clock: MockClock) -> None:
    peer, socket = await connected()
    await socket.close()
    assert [e for e in await peer.events() if isinstance(e, CloseConnection)]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(socket.finish)
        await trio.testing.wait_all_tasks_blocked()
        await peer.send(CloseConnection(1000))
    with pytest.raises(SocketClosed):
        await socket.send("late")


async def test_text_that_is_not_utf8_or_stray_fragments_end_the_call(
    autojump_clock: MockClock,
) -> None:
    peer, socket = await connected()
    masked_text = b"\x81\x82\x00\x00\x00\x00\xff\xfe"  # a mask of zeros leaves the bytes as sent
    await peer.send_raw(masked_text)
    with pytest.raises(ProtocolError, match="not UTF-8"):
        await socket.receive()
    await socket.close()
    assert [e.code for e in await peer.events() if isinstance(e, CloseConnection)] == [1007]

    peer, socket = await connected()
    await peer.send_raw(b"\x80\x82\x00\x00\x00\x00hi")  # a continuation with nothing to continue
    with pytest.raises(ProtocolError, match="fragments out of order"):
        await socket.receive()


async def test_frames_sent_with_the_head_are_read_first(autojump_clock: MockClock) -> None:
    client, server = trio.testing.memory_stream_pair()
    first = b"\x81\x82\x00\x00\x00\x00hi"
    socket = WebsocketCallSocket(server, 100, first)  # type: ignore[arg-type]
    assert await socket.receive() == "hi"
    await client.send_all(b"\x81\x83\x00\x00\x00\x00you")
    assert await socket.receive() == "you"


async def test_a_peer_that_stops_reading_is_given_up_whole_frames_only(
    autojump_clock: MockClock,
) -> None:
    _client, server = trio.testing.lockstep_stream_pair()  # a write waits for the reader
    socket = WebsocketCallSocket(server, 1000)  # type: ignore[arg-type]
    started = trio.current_time()
    with (
        trio.move_on_after(1),  # the call is cancelled while the write stalls
        pytest.raises(SocketClosed, match="stopped reading"),
    ):
        await socket.send("x" * 500)
    assert trio.current_time() - started == pytest.approx(5.0)  # the write was shielded
    with pytest.raises(SocketClosed):
        await socket.send("more")
    await socket.close()  # no close frame after a half-written one: nothing more is written
    assert trio.current_time() - started == pytest.approx(5.0)
