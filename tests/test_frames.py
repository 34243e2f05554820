"""Websocket frames, sans-IO: the reader against frames wsproto's client writes, and back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, BytesMessage, CloseConnection, Request, TextMessage

from phoneactors.frames import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    TEXT,
    Frame,
    FrameError,
    FrameReader,
    FrameTooBig,
    close_payload,
    encode_frame,
    parse_close,
)


def client() -> WSConnection:
    """A wsproto client past its handshake: it masks every frame with a random key."""
    ws = WSConnection(ConnectionType.CLIENT)
    server = WSConnection(ConnectionType.SERVER)
    server.receive_data(ws.send(Request(host="example.com", target="/stream")))
    list(server.events())
    ws.receive_data(server.send(AcceptConnection()))
    list(ws.events())
    return ws


@given(
    messages=st.lists(st.one_of(st.text(max_size=300), st.binary(max_size=70_000)), max_size=4),
    cut=st.integers(min_value=1, max_value=5000),
)
def test_frames_come_out_as_sent_however_the_bytes_are_cut(
    messages: list[str | bytes], cut: int
) -> None:
    ws = client()
    wire = b"".join(
        ws.send(TextMessage(m) if isinstance(m, str) else BytesMessage(m)) for m in messages
    )
    reader = FrameReader(max_payload=1 << 20)
    frames: list[Frame] = []
    for start in range(0, len(wire), cut):
        frames += reader.feed(wire[start : start + cut])
    assert [f.payload.decode() if f.opcode == TEXT else f.payload for f in frames] == messages
    assert all(f.fin and f.opcode in (TEXT, BINARY) for f in frames)


def test_fragments_keep_their_opcodes_and_fin() -> None:
    ws = client()
    wire = ws.send(TextMessage("hel", message_finished=False)) + ws.send(TextMessage("lo"))
    frames = FrameReader(100).feed(wire)
    assert [(f.opcode, f.fin, f.payload) for f in frames] == [
        (TEXT, False, b"hel"),
        (CONTINUATION, True, b"lo"),
    ]


@pytest.mark.parametrize(
    ("wire", "code", "reason"),
    [
        (b"\x81\x05hello", 1002, "unmasked"),
        (b"\xc1\x80\x00\x00\x00\x00", 1002, "reserved bits"),
        (b"\x83\x80\x00\x00\x00\x00", 1002, "unknown opcode 0x3"),
        (b"\x09\x80\x00\x00\x00\x00", 1002, "control frame"),  # a ping without fin
        (b"\x89\xfe\x00\x7e" + b"\x00" * 130, 1002, "control frame"),  # a 126-byte ping
        (b"\x82\xff\x80" + b"\x00" * 11, 1002, "top bit"),  # a 64-bit length over 2**63
    ],
)
def test_broken_frames_are_errors_with_their_close_code(
    wire: bytes, code: int, reason: str
) -> None:
    with pytest.raises(FrameError, match=reason) as caught:
        FrameReader(1000).feed(wire)
    assert caught.value.code == code


def test_a_frame_over_the_limit_is_refused_from_its_header() -> None:
    header = b"\x01\xff" + (10**9).to_bytes(8, "big")  # a gigabyte announced, not sent
    with pytest.raises(FrameTooBig) as caught:
        FrameReader(65536).feed(header)
    assert (caught.value.code, caught.value.size, caught.value.fin) == (1009, 10**9, False)


def test_an_incomplete_header_waits_for_more() -> None:
    reader = FrameReader(100_000)
    frame = client().send(BytesMessage(b"x" * 70_000))  # a 64-bit length
    for size in (1, 2, 9, 13):
        assert FrameReader(100_000).feed(frame[:size]) == []
    assert reader.feed(frame[:5]) == []
    assert reader.feed(frame[5:]) == [Frame(BINARY, True, b"x" * 70_000)]


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_our_frames_read_back_in_a_client(size: int) -> None:
    ws = client()
    ws.receive_data(encode_frame(TEXT, b"a" * size) + encode_frame(PING, b"hi"))
    events = list(ws.events())
    assert isinstance(events[0], TextMessage)
    assert events[0].data == "a" * size
    assert events[1].payload == b"hi"  # type: ignore[attr-defined]


def test_close_payloads() -> None:
    assert parse_close(close_payload(1009, "message too big")) == (1009, "message too big")
    assert parse_close(b"") == (1005, "")
    cut = close_payload(1000, "é" * 70)
    assert len(cut) <= 125
    assert parse_close(cut) == (1000, "é" * 61)  # cut at a character's end
    with pytest.raises(FrameError, match="one-byte"):
        parse_close(b"\x03")
    with pytest.raises(FrameError) as caught:
        parse_close(b"\x03\xe8\xff")
    assert caught.value.code == 1007
    frames = FrameReader(10).feed(client().send(CloseConnection(1000, "bye")))
    assert [(f.opcode, parse_close(f.payload)) for f in frames] == [(CLOSE, (1000, "bye"))]


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 1016, 2999, 5000])
def test_close_codes_a_peer_may_not_send_are_protocol_errors(code: int) -> None:
    with pytest.raises(FrameError, match=f"invalid code {code}") as caught:
        parse_close(code.to_bytes(2, "big"))
    assert caught.value.code == 1002


@pytest.mark.parametrize("code", [1000, 1001, 1011, 1014, 3000, 4999])
def test_close_codes_a_peer_may_send(code: int) -> None:
    assert parse_close(code.to_bytes(2, "big") + b"why") == (code, "why")
