"""Websocket frames (RFC 6455, section 5), server side, sans-IO: bytes in, frames out.

The media-stream socket (:mod:`phoneactors.websocket`) reads 50 frames a second per call
through :class:`FrameReader` and writes with :func:`encode_frame`; wsproto answers only the
opening handshake. A frame costs about 1.5 µs here against about 11 µs through wsproto's
general-purpose machinery (events, incremental UTF-8, extensions), and that difference is
about a tenth of a talking call's CPU with instant engines (``benchmarks/capacity.py
--profile``). No extensions are offered, so reserved bits are errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "BINARY",
    "CLOSE",
    "CONTINUATION",
    "PING",
    "PONG",
    "TEXT",
    "Frame",
    "FrameError",
    "FrameReader",
    "FrameTooBig",
    "close_payload",
    "encode_frame",
    "parse_close",
]

CONTINUATION: Final = 0x0
TEXT: Final = 0x1
BINARY: Final = 0x2
CLOSE: Final = 0x8
PING: Final = 0x9
PONG: Final = 0xA
_KNOWN: Final = frozenset({CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG})

NORMAL: Final = 1000
PROTOCOL_ERROR: Final = 1002
INVALID_DATA: Final = 1007
TOO_BIG: Final = 1009
NO_STATUS: Final = 1005


class FrameError(Exception):
    """The peer broke the framing; ``code`` is the close code to answer with."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class FrameTooBig(FrameError):
    """A data frame longer than the reader takes: ``size`` bytes, the last of its message or
    not (``fin``)."""

    def __init__(self, size: int, fin: bool) -> None:
        super().__init__(TOO_BIG, f"a frame of {size} bytes")
        self.size = size
        self.fin = fin


@dataclass(frozen=True, slots=True)
class Frame:
    opcode: int
    fin: bool
    payload: bytes


def _unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR ``payload`` with the repeating 4-byte ``mask``, as one big integer."""
    length = len(payload)
    key = int.from_bytes(mask * ((length + 3) // 4), "little")
    return (int.from_bytes(payload, "little") ^ key).to_bytes(length + 4, "little")[:length]


class FrameReader:
    """Splits the client's bytes into unmasked frames; :class:`FrameError` for a broken one.

    A data frame longer than ``max_payload`` is refused from its header (code 1009), before
    its payload is buffered, so a peer cannot make the reader hold more than that.
    """

    def __init__(self, max_payload: int) -> None:
        self._max_payload = max_payload
        self._buffer = b""

    def feed(self, data: bytes) -> list[Frame]:
        """Add ``data``; return the frames it completes (none if it ends mid-frame)."""
        buffer = self._buffer + data if self._buffer else data
        frames: list[Frame] = []
        position = 0
        size = len(buffer)
        while size - position >= 2:
            first, second = buffer[position], buffer[position + 1]
            opcode = first & 0x0F
            fin = bool(first & 0x80)
            if first & 0x70:
                raise FrameError(PROTOCOL_ERROR, "reserved bits set (no extension was agreed)")
            if not second & 0x80:
                raise FrameError(PROTOCOL_ERROR, "an unmasked frame from the client")
            if opcode not in _KNOWN:
                raise FrameError(PROTOCOL_ERROR, f"unknown opcode {opcode:#x}")
            length = second & 0x7F
            header = 2
            if length == 126:
                header = 4
                if size - position < header:
                    break
                length = int.from_bytes(buffer[position + 2 : position + 4], "big")
            elif length == 127:
                header = 10
                if size - position < header:
                    break
                length = int.from_bytes(buffer[position + 2 : position + 10], "big")
                if length >> 63:
                    raise FrameError(PROTOCOL_ERROR, "a 64-bit length with its top bit set")
            if opcode >= CLOSE and (not fin or length > 125):
                raise FrameError(PROTOCOL_ERROR, "a control frame fragmented or over 125 bytes")
            if length > self._max_payload:
                raise FrameTooBig(length, fin)
            start = position + header + 4
            end = start + length
            if end > size:
                break
            mask = buffer[start - 4 : start]
            frames.append(Frame(opcode, fin, _unmask(buffer[start:end], mask)))
            position = end
        self._buffer = buffer[position:]
        return frames


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One unfragmented, unmasked frame (servers do not mask)."""
    length = len(payload)
    if length < 126:
        header = bytes((0x80 | opcode, length))
    elif length < 1 << 16:
        header = bytes((0x80 | opcode, 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 127)) + length.to_bytes(8, "big")
    return header + payload


def close_payload(code: int, reason: str = "") -> bytes:
    """A close frame's payload: the code, then the reason cut to fit 125 bytes (at a
    character's end)."""
    text = reason.encode("utf-8")[:123].decode("utf-8", "ignore")
    return code.to_bytes(2, "big") + text.encode("utf-8")


def _valid_close_code(code: int) -> bool:
    """A code a peer may send (RFC 6455, 7.4): the defined ones that go on the wire, and
    those registered for libraries and applications."""
    return code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014) or (
        3000 <= code <= 4999
    )


def parse_close(payload: bytes) -> tuple[int, str]:
    """The code and reason of a close frame (1005, no status, when it has none)."""
    if not payload:
        return NO_STATUS, ""
    if len(payload) == 1:
        raise FrameError(PROTOCOL_ERROR, "a close frame with a one-byte payload")
    code = int.from_bytes(payload[:2], "big")
    if not _valid_close_code(code):
        raise FrameError(PROTOCOL_ERROR, f"a close frame with the invalid code {code}")
    try:
        return code, payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError(INVALID_DATA, "a close reason that is not UTF-8") from None
