"""Keep track of what the caller has actually heard, from Twilio's mark echoes, and pace output.

:class:`ReplyLedger` is pure bookkeeping for one reply: sentences generated, chunks sent (each
followed by a named mark), marks echoed. Twilio echoes a mark once the audio before it has
played, so the last echoed mark tells how far playback got: whole sentences before it were heard,
and of the sentence it falls in, the same fraction of words as of audio.

:class:`Pacer` keeps the audio queued at Twilio within a lead over real time: Twilio buffers
minutes of audio, and whatever it holds when the caller barges in is audio we send ``clear`` for.

:func:`trim_silence` cuts the digital silence that TTS engines put around a sentence (hibari:
about 300 ms before and 400 ms after), which the caller would otherwise hear as latency and as
long gaps between sentences.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import trio

from .audio import PCM, SAMPLE_RATE
from .conversation import Interruption

__all__ = ["SILENCE_FLOOR", "Pacer", "ReplyLedger", "trim_silence"]

SILENCE_FLOOR: Final = 16
"""Samples at or below this magnitude (about -66 dBFS) count as silence when trimming: far below
any breath or soft consonant, so only the engine's padding is cut."""


def trim_silence(audio: PCM, *, leading_ms: int | None, trailing_ms: int | None) -> PCM:
    """Keep at most ``leading_ms`` of silence before the first sound and ``trailing_ms`` after
    the last (``None``: keep all of it). Audio that is silent throughout becomes empty (a
    sentence spoken as silence is then not sent at all). Raises ``ValueError`` for a negative
    duration."""
    if (leading_ms is not None and leading_ms < 0) or (trailing_ms is not None and trailing_ms < 0):
        raise ValueError(f"silence to keep must be at least 0 ms, got {leading_ms}, {trailing_ms}")
    if leading_ms is None and trailing_ms is None:
        return audio
    loud = np.flatnonzero(np.abs(audio.astype(np.int32)) > SILENCE_FLOOR)
    if len(loud) == 0:
        return audio[:0]
    start, end = 0, len(audio)
    if leading_ms is not None:
        start = max(0, int(loud[0]) - leading_ms * SAMPLE_RATE // 1000)
    if trailing_ms is not None:
        end = min(len(audio), int(loud[-1]) + 1 + trailing_ms * SAMPLE_RATE // 1000)
    return audio[start:end]


@dataclass(slots=True)
class _Chunk:
    sentence: int
    fraction: float
    """Share of the sentence's audio that has played once this chunk has."""


class ReplyLedger:
    """What one reply generated, sent and had played. Mark names are ``<prefix>.<n>``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.sentences: list[str] = []
        self._chunks: list[_Chunk] = []
        self._played = -1  # index of the last chunk whose mark was echoed
        self._closed = False
        self.all_played = trio.Event()
        """Set when the final mark of a finished reply is echoed."""
        self._finished_sending = False

    def add_sentence(self, text: str) -> int:
        self.sentences.append(text)
        return len(self.sentences) - 1

    def chunk_sent(self, sentence: int, fraction: float) -> str:
        """Record a chunk sent; returns the name of the mark to send after it."""
        self._chunks.append(_Chunk(sentence, fraction))
        return f"{self.prefix}.{len(self._chunks) - 1}"

    def finished_sending(self) -> None:
        """No more chunks will come; ``all_played`` is set once the last one has played."""
        self._finished_sending = True
        self._check_done()

    def mark_echoed(self, name: str) -> bool:
        """Feed a mark echo; returns whether it belonged to this reply (and counted)."""
        prefix, _, number = name.rpartition(".")
        if self._closed or prefix != self.prefix or not number.isdecimal():
            return False
        index = int(number)
        if index >= len(self._chunks):
            return False
        self._played = max(self._played, index)
        self._check_done()
        return True

    def close(self) -> Interruption:
        """Stop counting echoes (the ones Twilio sends after ``clear`` were never heard) and
        split the reply's text into heard and unheard."""
        self._closed = True
        heard: list[str] = []
        unheard: list[str] = []
        played = self._chunks[self._played] if self._played >= 0 else None
        for index, sentence in enumerate(self.sentences):
            if played is None or index > played.sentence:
                unheard.append(sentence)
            elif index < played.sentence or played.fraction >= 1.0:
                heard.append(sentence)
            else:
                words = sentence.split()
                cut = int(len(words) * played.fraction)
                heard.append(" ".join(words[:cut]))
                unheard.append(" ".join(words[cut:]))
        return Interruption(
            heard=" ".join(h for h in heard if h), unheard=" ".join(u for u in unheard if u)
        )

    def _check_done(self) -> None:
        if self._finished_sending and self._played == len(self._chunks) - 1:
            self.all_played.set()


class Pacer:
    """Send audio no more than ``lead`` seconds ahead of (estimated) playback.

    One per call: Twilio has one playback buffer per stream. All time is trio's clock.
    """

    def __init__(self, lead: float) -> None:
        if lead <= 0:
            raise ValueError(f"lead must be positive, got {lead}")
        self.lead = lead
        self._playhead = 0.0  # trio time at which everything sent so far will have played

    async def wait_for_room(self, duration: float) -> None:
        """Sleep until ``duration`` more seconds of audio fit within the lead."""
        await trio.sleep_until(self._playhead + duration - self.lead)

    def sent(self, duration: float) -> None:
        self._playhead = max(self._playhead, trio.current_time()) + duration

    def cleared(self) -> None:
        """Twilio dropped its buffer: nothing is queued any more."""
        self._playhead = trio.current_time()

    @property
    def queued(self) -> float:
        """Seconds of audio estimated to be waiting at Twilio right now."""
        return max(0.0, self._playhead - trio.current_time())
