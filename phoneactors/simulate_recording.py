"""The recording side of :func:`phoneactors.simulate.simulate`: the caller's frames kept as the
fake Twilio sends them (:class:`CallerFrameTap`; not the server's
:class:`phoneactors.recording.RecordingSocket`, which writes as the call goes), both sides
placed on one timeline (:func:`stereo`), and the stereo WAV file written
(:func:`write_recording`).
"""

from __future__ import annotations

import wave
from os import PathLike
from typing import Final

import numpy as np
import trio

from . import twilio
from .audio import PCM, SAMPLE_RATE, ulaw_decode
from .errors import ProtocolError
from .testing import Played
from .transport import CallSocket

__all__ = ["CallerFrameTap", "stereo", "write_recording"]

_SNAP: Final = 0.01
"""Bot audio starting within this many seconds of the previous chunk's end continues it in the
recording (real time jitters by a millisecond or two)."""


class CallerFrameTap:
    """The fake Twilio's end of the socket, keeping every caller frame it sends, with its time."""

    def __init__(self, inner: CallSocket) -> None:
        self._inner = inner
        self.frames: list[tuple[int, PCM]] = []
        """(timestamp in ms since the stream started, audio) of each caller frame."""
        self.stream_started: float | None = None
        """trio time of the first caller frame (timestamp 0)."""

    async def receive(self) -> str | bytes:
        return await self._inner.receive()

    async def send(self, message: str) -> None:
        if message.startswith('{"event":"media"'):
            try:
                event = twilio.parse_event(message)
            except ProtocolError:  # pragma: no cover - the fake sends what it parses
                event = None
            if isinstance(event, twilio.Media):
                if self.stream_started is None:
                    self.stream_started = trio.current_time() - event.timestamp / 1000
                self.frames.append((event.timestamp, ulaw_decode(event.payload)))
        await self._inner.send(message)

    async def close(self) -> None:
        await self._inner.close()


def stereo(
    caller: list[tuple[int, PCM]], bot: list[Played], stream_started: float
) -> tuple[PCM, PCM]:
    """The two channels, time-aligned at 8 kHz from the stream's start."""
    placed_bot: list[tuple[int, PCM]] = []
    end_time, end_sample = -1.0, 0
    for played in bot:
        if abs(played.start - end_time) <= _SNAP:
            at = end_sample
        else:
            at = max(0, round((played.start - stream_started) * SAMPLE_RATE))
        placed_bot.append((at, played.audio))
        end_time, end_sample = played.end, at + len(played.audio)
    placed_caller = [(timestamp * SAMPLE_RATE // 1000, audio) for timestamp, audio in caller]
    length = max((at + len(a) for at, a in placed_caller + placed_bot), default=0)
    left = np.zeros(length, dtype=np.int16)
    right = np.zeros(length, dtype=np.int16)
    for channel, pieces in ((left, placed_caller), (right, placed_bot)):
        for at, audio in pieces:
            channel[at : at + len(audio)] = audio
    return left, right


def write_recording(path: str | PathLike[str], left: PCM, right: PCM) -> None:
    """Write a stereo 16-bit 8 kHz WAV file (``left`` and ``right`` of equal length)."""
    frames = np.empty(2 * len(left), dtype="<i2")
    frames[0::2] = left
    frames[1::2] = right
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(frames.tobytes())
