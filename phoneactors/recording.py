"""Each call as a stereo WAV file: the caller on the left, the bot on the right, in line time.

``phoneactors --recordings DIR`` writes ``DIR/<stream sid>.wav`` for every call, readable by its
owner only, and links it from the call records. The caller's audio is placed by Twilio's own
timestamps; the bot's by when it was sent (Twilio plays what it is sent back to back, from
then on), and a ``clear`` cuts what was still to play, as the caller heard it. Audio is written
as the call goes (every second, in a worker thread), so a long call never piles up in memory.

:class:`StereoTimeline` is the pure part (no I/O, no event loop); :class:`RecordingSocket` taps a
call's socket; :func:`record_call` writes the file.
"""

from __future__ import annotations

import os
import wave
from pathlib import Path
from typing import BinaryIO, Final

import numpy as np
import trio

from . import twilio
from .audio import PCM, SAMPLE_RATE, ulaw_decode
from .errors import ProtocolError
from .transport import CallSocket

__all__ = ["RecordingSocket", "StereoTimeline", "record_call", "recording_path"]

SLACK_S: Final = 1.0
"""Audio younger than this is not written yet: the bot's audio is sent ahead of playing, and a
``clear`` may still cut it."""
FLUSH_EVERY_S: Final = 1.0


class StereoTimeline:
    """Two channels of 8 kHz int16 audio from the stream's start, handed out as they become
    final (:meth:`take`). Positions are samples since the stream started."""

    def __init__(self) -> None:
        self.taken = 0
        """Samples handed out so far (both channels)."""
        self.bot_end = 0
        """Where the bot's audio sent so far ends."""
        self._left = np.zeros(0, dtype=np.int16)
        self._right = np.zeros(0, dtype=np.int16)

    def caller(self, at: int, audio: PCM) -> None:
        """The caller's ``audio``, starting at sample ``at`` (Twilio's timestamp)."""
        self._put(True, at, audio)

    def bot(self, now: int, audio: PCM) -> None:
        """Bot ``audio`` sent at sample ``now``: it plays after what was sent before it."""
        at = max(self.bot_end, now)
        self._put(False, at, audio)
        self.bot_end = at + len(audio)

    def clear(self, now: int) -> None:
        """Twilio drops what it has not played yet at sample ``now``."""
        if self.bot_end > now:
            start = max(now, self.taken) - self.taken
            self._right[start : self.bot_end - self.taken] = 0
            self.bot_end = max(now, self.taken)

    def take(self, until: int) -> tuple[PCM, PCM]:
        """Both channels from :attr:`taken` up to sample ``until``; they are final."""
        count = max(0, until - self.taken)
        self._grow(count)
        left, right = self._left[:count].copy(), self._right[:count].copy()
        self._left, self._right = self._left[count:], self._right[count:]
        self.taken += count
        return left, right

    def _put(self, left: bool, at: int, audio: PCM) -> None:
        start = at - self.taken
        if start < 0:  # too late: that part is written already
            audio, start = audio[-start:], 0
        if not len(audio):
            return
        self._grow(start + len(audio))
        target = self._left if left else self._right
        target[start : start + len(audio)] = audio

    def _grow(self, size: int) -> None:
        if len(self._left) < size:
            extra = np.zeros(size - len(self._left), dtype=np.int16)
            self._left = np.concatenate([self._left, extra])
        if len(self._right) < size:
            extra = np.zeros(size - len(self._right), dtype=np.int16)
            self._right = np.concatenate([self._right, extra])


class RecordingSocket:
    """A :class:`~phoneactors.transport.CallSocket` that copies both directions' audio into a
    :class:`StereoTimeline` as it passes, in trio time."""

    def __init__(self, inner: CallSocket) -> None:
        self._inner = inner
        self.timeline = StereoTimeline()
        self.stream_sid: str | None = None
        self.started_at: float | None = None
        """trio time of Twilio's ``start`` message: sample 0."""
        self.started = trio.Event()

    def now(self) -> int:
        """Samples since the stream started (0 before it has)."""
        if self.started_at is None:
            return 0
        return round((trio.current_time() - self.started_at) * SAMPLE_RATE)

    async def receive(self) -> str | bytes:
        message = await self._inner.receive()
        try:
            event = twilio.parse_event(message)
        except ProtocolError:
            return message  # the call deals with it
        if isinstance(event, twilio.Media) and self.started_at is not None:
            at = event.timestamp * SAMPLE_RATE // 1000
            self.timeline.caller(at, ulaw_decode(event.payload))
        elif isinstance(event, twilio.Start) and self.started_at is None:
            self.stream_sid = event.stream_sid
            self.started_at = trio.current_time()
            self.started.set()
        return message

    async def send(self, message: str) -> None:
        await self._inner.send(message)
        if self.started_at is None:
            return
        try:
            _, event = twilio.parse_outbound(message)
        except ProtocolError:  # pragma: no cover - the runtime sends only what it encodes
            return
        if isinstance(event, twilio.SendMedia):
            self.timeline.bot(self.now(), ulaw_decode(event.payload))
        elif isinstance(event, twilio.SendClear):
            self.timeline.clear(self.now())

    async def close(self) -> None:
        await self._inner.close()


def recording_path(folder: Path, stream_sid: str) -> Path:
    """Where a stream's recording goes."""
    return folder / f"{''.join(c for c in stream_sid if c.isalnum() or c in '-_') or 'stream'}.wav"


async def record_call(socket: RecordingSocket, folder: Path) -> None:
    """Write the call on ``socket`` to :func:`recording_path` as it goes, until cancelled; then
    write the rest and close the file. Nothing is written if the stream never starts."""
    await socket.started.wait()
    assert socket.stream_sid is not None
    file, wav = await trio.to_thread.run_sync(_open, recording_path(folder, socket.stream_sid))
    try:
        while True:
            await trio.sleep(FLUSH_EVERY_S)
            await _write(wav, socket, socket.now() - round(SLACK_S * SAMPLE_RATE))
    finally:
        with trio.CancelScope(shield=True):
            await _write(wav, socket, max(socket.now(), socket.timeline.bot_end))
            await trio.to_thread.run_sync(_close, file, wav)


def _open(path: Path) -> tuple[BinaryIO, wave.Wave_write]:
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    file = os.fdopen(fd, "wb")
    wav = wave.open(file, "wb")  # noqa: SIM115 (closed by _close, after the call)
    wav.setnchannels(2)
    wav.setsampwidth(2)
    wav.setframerate(SAMPLE_RATE)
    return file, wav


def _close(file: BinaryIO, wav: wave.Wave_write) -> None:
    try:
        wav.close()  # writes the header's sizes
    finally:
        file.close()


async def _write(wav: wave.Wave_write, socket: RecordingSocket, until: int) -> None:
    left, right = socket.timeline.take(until)
    if not len(left):
        return
    frames = np.empty(2 * len(left), dtype="<i2")
    frames[0::2], frames[1::2] = left, right
    await trio.to_thread.run_sync(wav.writeframes, frames.tobytes())
