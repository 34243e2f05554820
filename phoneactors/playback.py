"""Keep track of what the caller has actually heard, from Twilio's mark echoes, and pace output.

:class:`ReplyLedger` is pure bookkeeping for one reply: sentences generated, chunks sent (each
followed by a named mark), marks echoed. Twilio echoes a mark once the audio before it has
played, so the last echoed mark tells how far playback got: whole sentences before it were heard,
and of the sentence it falls in, the same fraction of words as of audio.

:class:`ReplyAudio` holds a reply's synthesized sentences, :class:`Playback` pauses and resumes
its playing, and :func:`rewind` finds where a resumed reply starts again: the start of the word
the caller was hearing when it paused.

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
import numpy.typing as npt
import trio

from .audio import PCM, SAMPLE_RATE
from .conversation import Interruption

__all__ = [
    "REWIND_MS",
    "SILENCE_FLOOR",
    "Pacer",
    "Playback",
    "ReplyAudio",
    "ReplyLedger",
    "rewind",
    "trim_silence",
]

SILENCE_FLOOR: Final = 16
"""Samples at or below this magnitude (about -66 dBFS) count as silence when trimming: far below
any breath or soft consonant, so only the engine's padding is cut."""
REWIND_MS: Final = 800
"""How far back a resumed reply may start before the caller's last heard place: two or three
words, enough to find the start of the word that was cut."""
_GAP_WINDOW: Final = 160
"""20 ms: a stretch this long and quiet between words is a gap."""
_GAP_HOP: Final = 80
_GAP_SHARE: Final = 0.02
"""A gap's energy is under 2 % (-17 dB) of the sentence's loud parts (90th percentile)."""


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


@dataclass(frozen=True, slots=True)
class _Chunk:
    sentence: int
    end: int
    """Sample offset in the sentence's audio where this chunk ends."""
    fraction: float
    """Share of the sentence's audio that has played once this chunk has."""


class ReplyLedger:
    """What one reply generated, sent and had played. Mark names are ``<prefix>.<n>``.

    A reply can be paused (``clear``) and resumed from a little before where the caller last
    heard it, so the chunks sent are not always in order of their place in the reply: the
    *furthest* place any echoed mark reached says what was heard, and the *last* echoed mark
    says where playback stood when it stopped (:meth:`resume_point`).
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.sentences: list[str] = []
        self._chunks: list[_Chunk] = []
        self._last = -1  # index of the chunk whose mark was echoed most recently
        self._furthest: _Chunk | None = None  # the furthest place played, for heard text
        self._void_below = 0  # marks sent before the last clear are never heard after it
        self._closed = False
        self.all_played = trio.Event()
        """Set when the final mark of a finished reply is echoed."""
        self._finished_sending = False

    def add_sentence(self, text: str) -> int:
        self.sentences.append(text)
        return len(self.sentences) - 1

    @property
    def chunks_sent(self) -> int:
        """How many chunks of audio have been sent (whether played or not)."""
        return len(self._chunks)

    def chunk_sent(self, sentence: int, fraction: float, end: int = 0) -> str:
        """Record a chunk sent (``end``: its end as a sample offset in the sentence's audio);
        returns the name of the mark to send after it."""
        self._chunks.append(_Chunk(sentence, end, fraction))
        return f"{self.prefix}.{len(self._chunks) - 1}"

    def finished_sending(self) -> None:
        """No more chunks will come; ``all_played`` is set once the last one has played."""
        self._finished_sending = True
        self._check_done()

    def cleared(self) -> None:
        """Twilio was told to ``clear``: it echoes the marks still pending without playing
        their audio, so from now on those echoes don't count as heard. Sending may resume."""
        self._void_below = len(self._chunks)
        self._finished_sending = False

    def mark_echoed(self, name: str) -> bool:
        """Feed a mark echo; returns whether it belonged to this reply (and counted)."""
        prefix, _, number = name.rpartition(".")
        if self._closed or prefix != self.prefix or not number.isdecimal():
            return False
        index = int(number)
        if not self._void_below <= index < len(self._chunks):
            return False
        self._last = index
        chunk = self._chunks[index]
        furthest = self._furthest
        if furthest is None or (chunk.sentence, chunk.fraction) > (
            furthest.sentence,
            furthest.fraction,
        ):
            self._furthest = chunk
        self._check_done()
        return True

    def resume_point(self) -> tuple[int, int]:
        """Where playback stood when it last stopped: ``(sentence, sample offset)`` just after
        the last chunk whose mark was echoed, or the start when none was."""
        if self._last < 0:
            return (0, 0)
        chunk = self._chunks[self._last]
        return (chunk.sentence, chunk.end)

    def close(self) -> Interruption:
        """Stop counting echoes (the ones Twilio sends after ``clear`` were never heard) and
        split the reply's text into heard and unheard."""
        self._closed = True
        heard: list[str] = []
        unheard: list[str] = []
        played = self._furthest
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
        if self._finished_sending and self._last == len(self._chunks) - 1:
            self.all_played.set()


def rewind(audio: PCM, offset: int, *, max_ms: int = REWIND_MS) -> int:
    """A place at or before ``offset`` in ``audio`` to play again from, so the word that was
    being spoken at ``offset`` is heard whole: the start of the latest gap between words within
    ``max_ms`` before it (a 20 ms stretch much quieter than the sentence's loud parts), else the
    quietest place there, else the start of ``audio``.
    """
    offset = max(0, min(offset, len(audio)))
    first = max(0, offset - max_ms * SAMPLE_RATE // 1000)
    if offset - first < _GAP_WINDOW:
        return first
    energy = _window_energies(audio)
    loud = float(np.percentile(energy, 90)) if len(energy) else 0.0
    # window i covers audio[i * _GAP_HOP : i * _GAP_HOP + _GAP_WINDOW]
    lo = -(-first // _GAP_HOP)
    hi = (offset - _GAP_WINDOW) // _GAP_HOP
    if hi < lo:
        return first
    candidates = energy[lo : hi + 1]
    gaps = np.flatnonzero(candidates <= loud * _GAP_SHARE)
    if len(gaps):
        # The end of the latest gap's run of quiet windows is where the next word starts;
        # go back to the middle of that window so the onset is not clipped.
        index = lo + int(gaps[-1])
        return index * _GAP_HOP + _GAP_WINDOW // 2
    return (lo + int(np.argmin(candidates))) * _GAP_HOP


def _window_energies(audio: PCM) -> npt.NDArray[np.float64]:
    """Mean square of each 20 ms window of ``audio``, every 10 ms."""
    if len(audio) < _GAP_WINDOW:
        return np.zeros(0)
    samples = audio.astype(np.float64)
    squares = np.concatenate([[0.0], np.cumsum(samples * samples)])
    starts = np.arange(0, len(audio) - _GAP_WINDOW + 1, _GAP_HOP)
    return np.asarray((squares[starts + _GAP_WINDOW] - squares[starts]) / _GAP_WINDOW)


class ReplyAudio:
    """The synthesized sentences of one reply, in order, as they become ready.

    Sentences are numbered as in the reply's :class:`ReplyLedger`, from ``first``. The
    synthesizer adds each sentence's audio (:meth:`add`), then :meth:`finish`; the player takes
    them with :meth:`get`, waiting for the next with :meth:`wait_for`, and says which one it is
    sending (:meth:`playing`), so the synthesizer stays at most ``lookahead`` sentences ahead of
    it (:meth:`wait_for_room`; at least 1, or the next sentence would never be ready).
    """

    def __init__(self, lookahead: int = 1, *, first: int = 0) -> None:
        if lookahead < 1:
            raise ValueError(f"lookahead must be at least 1, got {lookahead}")
        self.lookahead = lookahead
        self.first = first
        self.finished = False
        self._sentences: list[PCM] = []
        self._playing = first
        self._changed = trio.Event()

    @property
    def end(self) -> int:
        """One past the number of the last sentence synthesized so far."""
        return self.first + len(self._sentences)

    def add(self, audio: PCM) -> None:
        self._sentences.append(audio)
        self._notify()

    def finish(self) -> None:
        """No more sentences will come."""
        self.finished = True
        self._notify()

    def get(self, sentence: int) -> PCM | None:
        """Sentence number ``sentence``'s audio, if it has been synthesized."""
        if self.first <= sentence < self.end:
            return self._sentences[sentence - self.first]
        return None

    def playing(self, sentence: int) -> None:
        self._playing = sentence
        self._notify()

    async def wait_for(self, sentence: int) -> None:
        """Wait until sentence number ``sentence`` is synthesized, or none will come."""
        while sentence >= self.end and not self.finished:
            await self._changed.wait()

    async def wait_for_room(self) -> None:
        """Wait until the next sentence is within ``lookahead`` of the one playing."""
        while self.end > self._playing + self.lookahead:
            await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()


class Playback:
    """Pause and resume one reply's playback; the speaker runs each stretch of playing inside
    :meth:`playing`, and :meth:`pause` cancels it.

    A pause is a cancellation of the speaker's current stretch, never a flag it polls; the
    reply itself (its generation, its synthesized audio, its ledger) lives on until it is
    resumed or its own scope is cancelled.
    """

    def __init__(self) -> None:
        self.paused = False
        self.pauses = 0
        self._scope: trio.CancelScope | None = None
        self._resumed = trio.Event()

    def pause(self) -> bool:
        """Stop playing now; returns False if already paused."""
        if self.paused:
            return False
        self.paused = True
        self.pauses += 1
        self._resumed = trio.Event()
        if self._scope is not None:
            self._scope.cancel()
        return True

    def resume(self) -> None:
        """Play again (from where :meth:`ReplyLedger.resume_point` says, rewound)."""
        self.paused = False
        self._resumed.set()

    async def wait_resumed(self) -> None:
        while self.paused:
            await self._resumed.wait()

    def playing(self) -> trio.CancelScope:
        """A cancel scope for one stretch of playing; already cancelled if paused."""
        scope = trio.CancelScope()
        self._scope = scope
        if self.paused:
            scope.cancel()
        return scope


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
